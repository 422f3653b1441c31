use symgrad::differentiable;

#[differentiable]
fn f(v: [f64; 3]) -> f64 {
    let [a, b, c] = v;
    a * b + c
}

fn main() {}

use symgrad::differentiable;

#[differentiable]
fn f(a: [f64; 3]) -> f64 {
    a[0] = 1.0;
    a[1] * a[2]
}

fn main() {}

use symgrad::differentiable;

#[differentiable]
fn f(a: [f64; 3], x: f64) -> f64 {
    a[x] * 2.0
}

fn main() {}

use symgrad::differentiable;

fn g(x: f64) -> f64 {
    x * x
}

#[differentiable]
fn f(x: f64) -> f64 {
    let y = x + 1.0;
    g(y) * 2.0
}

fn main() {}

use symgrad::differentiable;

#[differentiable(forward, wrt(x))]
fn g(x: f64, c: f64) -> f64 {
    x * c
}

#[differentiable(forward)]
fn f(x: f64, y: f64) -> f64 {
    g(x, y)
}

fn main() {}

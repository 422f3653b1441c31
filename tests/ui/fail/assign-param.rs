use symgrad::differentiable;

#[differentiable]
fn f(x: f64, y: f64) -> f64 {
    x = x * y;
    x
}

fn main() {}

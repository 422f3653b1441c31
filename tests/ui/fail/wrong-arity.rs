use symgrad::differentiable;

#[differentiable]
fn f(x: f64, y: f64) -> f64 {
    x.atan2(y, 1.0)
}

fn main() {}

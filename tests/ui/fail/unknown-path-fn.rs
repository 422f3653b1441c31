use symgrad::differentiable;

#[differentiable]
fn f(x: f64) -> f64 {
    f64::floor(x) * x
}

fn main() {}

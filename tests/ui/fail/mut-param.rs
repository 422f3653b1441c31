use symgrad::differentiable;

#[differentiable]
fn f(mut x: f64) -> f64 {
    x *= 2.0;
    x
}

fn main() {}

use symgrad::differentiable;

#[differentiable]
fn f(x: f64, o: Option<f64>) -> f64 {
    let y = o?;
    x * y
}

fn main() {}

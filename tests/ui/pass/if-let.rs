use symgrad::differentiable;

#[differentiable]
fn f(x: f64, o: Option<i32>) -> f64 {
    if let Some(k) = o { x.powi(k) } else { x }
}

fn main() {}

use symgrad::differentiable;

#[differentiable]
fn f(xs: &[f64]) -> f64 {
    let tail = &xs[1..];
    tail.iter().map(|t| t * t).sum::<f64>()
}

fn main() {}

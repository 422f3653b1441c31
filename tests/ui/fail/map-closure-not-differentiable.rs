use symgrad::prelude::*;

#[differentiable]
fn f(x: &DVector<f64>) -> f64 {
    x.map(|v| v.floor() * 2.0).sum()
}

fn main() {}

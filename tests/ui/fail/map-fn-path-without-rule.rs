use symgrad::prelude::*;

#[differentiable]
fn f(x: &DVector<f64>) -> f64 {
    x.map(f64::floor).sum()
}

fn main() {}

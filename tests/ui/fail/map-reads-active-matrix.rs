use symgrad::prelude::*;

#[differentiable]
fn f(x: &DVector<f64>, w: &DMatrix<f64>) -> f64 {
    x.map(|v| v * w.sum()).sum()
}

fn main() {}

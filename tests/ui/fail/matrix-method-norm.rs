use symgrad::prelude::*;

#[differentiable]
fn f(w: &DMatrix<f64>) -> f64 {
    w.normalize().sum()
}

fn main() {}

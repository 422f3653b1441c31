use symgrad::prelude::*;

fn pick() -> fn(f64) -> f64 {
    f64::exp
}

#[differentiable]
fn f(x: &DVector<f64>) -> f64 {
    x.map(pick()).sum()
}

fn main() {}

use symgrad::differentiable;
use symgrad::nalgebra::DMatrix;

// Matrices (and parameter structs) are not supported by `_hvp`/`_hessian` yet.
#[differentiable(hessian)]
fn f(w: &DMatrix<f64>) -> f64 {
    w.sum()
}

fn main() {}

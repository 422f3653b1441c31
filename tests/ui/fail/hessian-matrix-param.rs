use symgrad::differentiable;
use symgrad::nalgebra::DMatrix;

// `_hvp` takes matrices and parameter structs by reference only.
#[differentiable(hessian)]
fn f(w: DMatrix<f64>) -> f64 {
    w.sum()
}

fn main() {}

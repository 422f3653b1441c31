use symgrad::differentiable;
use symgrad::nalgebra::DMatrix;

// `_hvp` and `_hessian` are for scalar-valued functions.
#[differentiable(hessian, wrt(x))]
fn f(x: f64, m: &DMatrix<f64>) -> DMatrix<f64> {
    m * x
}

fn main() {}

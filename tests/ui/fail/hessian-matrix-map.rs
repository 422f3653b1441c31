use symgrad::differentiable;
use symgrad::nalgebra::DMatrix;

// A `map` closure over a matrix has no second order.
#[differentiable(hessian)]
fn f(w: &DMatrix<f64>) -> f64 {
    w.map(|v| v.exp()).sum()
}

fn main() {}

use symgrad::differentiable;
use symgrad::nalgebra::DMatrix;
use symgrad::ops::log_softmax;

// `log_softmax` has reverse and forward rules but no second-order rule yet.
#[differentiable(hessian)]
fn f(w: &DMatrix<f64>) -> f64 {
    log_softmax(w).sum()
}

fn main() {}

use symgrad::differentiable;
use symgrad::nalgebra::DMatrix;

// A function of a matrix has `_hvp` but no dense `_hessian`.
#[differentiable(hessian)]
fn f(w: &DMatrix<f64>) -> f64 {
    w.component_mul(w).sum()
}

fn main() {
    let w = DMatrix::<f64>::zeros(2, 2);
    let _ = f_hvp(&w, &w);
    let _ = f_hessian(&w);
}

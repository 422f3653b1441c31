use symgrad::differentiable;

// Reverse mode differentiates `p` (it is not an integer type); the Hessian needs a flat
// vector of floats, and `Option<f64>` is none.
#[differentiable(hessian)]
fn f(x: f64, p: Option<f64>) -> f64 {
    x * 2.0
}

fn main() {}

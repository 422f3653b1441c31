use symgrad::differentiable;

// Reverse mode differentiates `p` (a tuple is not an integer type); the Hessian needs a flat
// vector of floats, and `(f64, f64)` is none.
#[differentiable(hessian)]
fn f(x: f64, p: (f64, f64)) -> f64 {
    x * 2.0
}

fn main() {}

use symgrad::differentiable;

// Reverse mode differentiates `p` (a tuple is not an integer type); forward mode needs a tangent
// of its type, and `(f64, f64)` has none.
#[differentiable(forward)]
fn f(x: f64, p: (f64, f64)) -> f64 {
    x * 2.0
}

fn main() {}

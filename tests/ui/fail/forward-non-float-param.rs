use symgrad::differentiable;

// Reverse mode differentiates `p` (it is not an integer type); forward mode needs a tangent
// of its type, and `Option<f64>` has none.
#[differentiable(forward)]
fn f(x: f64, p: Option<f64>) -> f64 {
    x * 2.0
}

fn main() {}

use symgrad::differentiable;

// `g` has reverse mode only: a forward caller needs its `g_fwd`.
#[differentiable]
fn g(x: f64) -> f64 {
    x * x
}

#[differentiable(forward)]
fn f(x: f64) -> f64 {
    g(x) + 1.0
}

fn main() {}

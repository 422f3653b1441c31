use symgrad::differentiable;

// `g` has reverse mode only: a `hessian` caller needs its `__g_hdir` (the directional
// derivative, which `#[differentiable(hessian)]` on `g` writes).
#[differentiable]
fn g(x: f64) -> f64 {
    x * x
}

#[differentiable(hessian)]
fn f(x: f64) -> f64 {
    g(x) + 1.0
}

fn main() {}

//! Regression (was a macro bug): `for i in 0..xs.len()` over an active slice is rejected ("`xs` carries a gradient
//! and cannot be used here"), although `len()` is structural and `let n = xs.len();` then
//! `for i in 0..n` is accepted.
use symgrad::differentiable;

#[differentiable]
fn f(xs: &[f64]) -> f64 {
    let mut s = 0.0;
    for i in 0..xs.len() {
        s += xs[i] * xs[i];
    }
    s
}

fn fd(f: impl Fn(f64) -> f64, x: f64) -> f64 {
    let h = 1e-6;
    (f(x + h) - f(x - h)) / (2.0 * h)
}

fn assert_close(got: f64, want: f64) {
    assert!(
        (got - want).abs() <= 1e-6 * (1.0 + want.abs()),
        "got {got}, finite difference {want}"
    );
}

fn main() {
    let xs = [0.5, -1.0, 2.0];
    let (_, g) = f_grad(&xs);
    for i in 0..3 {
        let fi = |t: f64| {
            let mut y = xs;
            y[i] = t;
            f(&y)
        };
        assert_close(g[i], fd(fi, xs[i]));
    }
}

//! Regression (was a macro bug): `f64::NAME(literal, x)` forwards as `(literal).NAME(x)`, whose float type rustc
//! cannot infer (`can't call method `hypot` on ambiguous numeric type `{float}``). The
//! original `f64::hypot(3.0, y)` is fine Rust. Same for `f64::powf(2.0, x)`, `f64::max(0.0, x)`...
use symgrad::differentiable;

#[differentiable]
fn f(x: f64) -> f64 {
    f64::hypot(3.0, x) + f64::powf(2.0, x) + f64::max(0.0, x)
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
    for x in [-0.5, 0.7, 2.0] {
        assert_close(f_grad(x).1, fd(f, x));
    }
}

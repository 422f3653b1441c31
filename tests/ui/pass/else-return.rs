//! Regression (was a macro bug): an `if` whose `then` branch rebinds a `let mut` value and whose `else` branch
//! returns does not compile (`cannot find value `__a_3``).
use symgrad::differentiable;

#[differentiable]
fn f(x: f64) -> f64 {
    let mut a = x * 2.0;
    if x < 1.0 {
        a *= x;
    } else {
        return a;
    }
    a
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
    for x in [0.5, 3.0] {
        assert_close(f_grad(x).1, fd(f, x));
    }
}

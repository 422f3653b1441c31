//! Regression: an `if` inside a `for` loop rebinding a loop-carried value (the zero adjoint of
//! the loop head must be kept on the tape).
use symgrad::differentiable;

#[differentiable]
fn f(x: f64) -> f64 {
    let mut t = x;
    for _ in 0..4 {
        if t > 1.0 {
            t = t.sqrt();
        }
    }
    t
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
    for x in [0.5, 3.0, 20.0] {
        assert_close(f_grad(x).1, fd(f, x));
    }
}

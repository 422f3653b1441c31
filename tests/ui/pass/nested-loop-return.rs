//! Regression: an early `return` inside a loop nested in another loop (the inner tape is read
//! before its element type is known).
use symgrad::differentiable;

#[differentiable]
fn f(x: f64) -> f64 {
    let mut s = 0.0;
    for _ in 0..4 {
        for _ in 0..3 {
            s += x;
            if s > 3.0 {
                return s * x;
            }
        }
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
    for x in [0.1, 0.45, 2.0] {
        assert_close(f_grad(x).1, fd(f, x));
    }
}

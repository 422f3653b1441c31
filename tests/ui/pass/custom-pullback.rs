//! A custom derivative: a plain function with a hand-written `NAME_pullback` in the protocol
//! generated code calls: `NAME_pullback(args) -> (value, closure)`, where the closure gets
//! the arguments again, the seed and a mask with one entry per parameter, and returns one
//! gradient per parameter (`()` for a constant one).
use symgrad::differentiable;

/// Rounds, with a straight-through derivative of 1.
fn round_st(x: f64) -> f64 {
    x.round()
}

#[allow(clippy::type_complexity)]
fn round_st_pullback(x: f64) -> (f64, impl FnOnce(f64, f64, [bool; 1]) -> (f64,) + use<>) {
    (round_st(x), |_x: f64, seed: f64, _need: [bool; 1]| (seed,))
}

/// Scales by an integer factor that is a constant.
fn times(x: f64, k: i32) -> f64 {
    x * f64::from(k)
}

#[allow(clippy::type_complexity)]
fn times_pullback(
    x: f64,
    k: i32,
) -> (
    f64,
    impl FnOnce(f64, i32, f64, [bool; 2]) -> (f64, ()) + use<>,
) {
    (
        times(x, k),
        |_x: f64, k: i32, seed: f64, _need: [bool; 2]| (seed * f64::from(k), ()),
    )
}

#[differentiable]
fn f(x: f64) -> f64 {
    round_st(x * 3.0) * x + times(x, 4)
}

fn main() {
    // d/dx [round(3x) x + 4x] with the straight-through rule: 3x + round(3x) + 4.
    let x = 0.4;
    let (v, g) = f_grad(x);
    assert_eq!(v, (3.0f64 * x).round() * x + 4.0 * x);
    assert!((g - (3.0 * x + (3.0f64 * x).round() + 4.0)).abs() < 1e-12);
}

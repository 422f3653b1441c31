//! Custom derivatives: a hand-written `NAME_vjp` marked `#[custom_vjp]` is what generated
//! callers of `NAME` use.

use symgrad::{custom_vjp, differentiable};

/// softplus(x) = ln(1 + e^x), computed stably.
fn softplus(x: f64) -> f64 {
    if x > 30.0 { x } else { x.exp().ln_1p() }
}

/// d softplus / dx = sigmoid(x) = 1 / (1 + e^-x), written by hand.
#[custom_vjp]
fn softplus_vjp(x: f64, seed: f64) -> (f64, f64) {
    (softplus(x), seed / (1.0 + (-x).exp()))
}

/// A "straight-through" rounding: the value rounds, the gradient passes unchanged. No
/// derivative rule could give this; a custom one can.
fn round_st(x: f64, _scale: i32) -> f64 {
    x.round()
}

#[custom_vjp]
fn round_st_vjp(x: f64, scale: i32, seed: f64) -> (f64, f64) {
    (round_st(x, scale), seed)
}

#[differentiable]
fn uses_custom(x: f64, y: f64) -> f64 {
    softplus(x * y) + round_st(3.0 * x, 1) * y
}

#[test]
fn custom_vjp_is_used_by_callers() {
    for &(x, y) in &[(0.3, -1.2), (1.7, 0.4), (-2.0, 2.5)] {
        let (v, (gx, gy)) = uses_custom_grad(x, y);
        assert_eq!(v, uses_custom(x, y));
        // by hand: d/dx = y·σ(xy) + 3y (straight-through), d/dy = x·σ(xy) + round(3x)
        let s = 1.0 / (1.0 + (-(x * y)).exp());
        assert!((gx - (y * s + 3.0 * y)).abs() < 1e-12, "{gx}");
        assert!((gy - (x * s + (3.0 * x).round())).abs() < 1e-12, "{gy}");
    }
}

#[test]
fn custom_vjp_generates_the_pullback() {
    // The generated pullback of softplus calls the hand-written vjp with the seed.
    let (v, pb) = softplus_pullback(0.5);
    let (g,) = pb(0.5, 2.0, [true]);
    assert_eq!(v, softplus(0.5));
    assert!((g - 2.0 / (1.0 + (-0.5f64).exp())).abs() < 1e-15);
}

#[differentiable]
fn half_detached(x: f64) -> f64 {
    x * symgrad::no_grad(x) + symgrad::no_grad(x.sin())
}

#[test]
fn no_grad_stops_the_gradient() {
    // by hand: the detached factor and term are constants, so d/dx = no_grad(x) = x
    for x in [-1.5, 0.2, 3.0] {
        let (v, g) = half_detached_grad(x);
        assert_eq!(v, half_detached(x));
        assert_eq!(v, x * x + x.sin());
        assert_eq!(g, x);
    }
}

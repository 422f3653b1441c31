//! Classic functions whose gradients are derived by hand here, in the comments above each
//! assert, and checked against the generated `_grad` / `_vjp`; plus the documented
//! conventions at kinks (abs at 0, max/min ties, relu at 0).

// The plain functions are only used through their generated `_grad` / `_vjp`.
#![allow(dead_code)]

use symgrad::differentiable;

/// `|got - want| <= 1e-12 * (1 + |want|)`: the formulas and the generated code may round
/// differently, nothing more.
fn close(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() <= 1e-12 * (1.0 + want.abs()),
        "{what}: got {got:e}, formula gives {want:e}"
    );
}

const POINTS: [(f64, f64); 8] = [
    (1.0, 1.0),
    (-1.2, 1.0),
    (0.0, 0.0),
    (0.5, -0.75),
    (2.0, 3.5),
    (-3.0, -2.0),
    (3.0, 2.0),
    (-0.25, 4.0),
];

#[differentiable]
fn rosenbrock(x: f64, y: f64) -> f64 {
    let a = 1.0;
    let b = 100.0;
    (a - x).powi(2) + b * (y - x * x).powi(2)
}

#[test]
fn rosenbrock_gradient() {
    for (x, y) in POINTS {
        let (v, (gx, gy)) = rosenbrock_grad(x, y);
        close(v, (1.0 - x).powi(2) + 100.0 * (y - x * x).powi(2), "value");
        // f = (1 - x)^2 + 100 (y - x^2)^2
        // df/dx = 2 (1 - x)(-1) + 100 * 2 (y - x^2)(-2x) = -2 (1 - x) - 400 x (y - x^2)
        close(
            gx,
            -2.0 * (1.0 - x) - 400.0 * x * (y - x * x),
            "rosenbrock d/dx",
        );
        // df/dy = 100 * 2 (y - x^2) = 200 (y - x^2)
        close(gy, 200.0 * (y - x * x), "rosenbrock d/dy");
    }
    // The minimum (1, 1): f = 0 and the gradient vanishes exactly.
    assert_eq!(rosenbrock_grad(1.0, 1.0), (0.0, (0.0, 0.0)));
    // The vjp is the gradient times the seed: seed * df/dx at (-1.2, 1):
    // -2 (2.2) - 400 (-1.2)(1 - 1.44) = -4.4 - 211.2 = -215.6; df/dy = 200 (-0.44) = -88.
    let (_, (gx, gy)) = rosenbrock_vjp(-1.2, 1.0, 0.5);
    close(gx, 0.5 * -215.6, "rosenbrock vjp d/dx");
    close(gy, 0.5 * -88.0, "rosenbrock vjp d/dy");
}

#[differentiable]
fn himmelblau(x: f64, y: f64) -> f64 {
    let u = x * x + y - 11.0;
    let w = x + y * y - 7.0;
    u * u + w * w
}

#[test]
fn himmelblau_gradient() {
    for (x, y) in POINTS {
        let (v, (gx, gy)) = himmelblau_grad(x, y);
        let u = x * x + y - 11.0;
        let w = x + y * y - 7.0;
        close(v, u * u + w * w, "value");
        // f = u^2 + w^2, u = x^2 + y - 11, w = x + y^2 - 7
        // df/dx = 2u du/dx + 2w dw/dx = 2u (2x) + 2w = 4x u + 2w
        close(gx, 4.0 * x * u + 2.0 * w, "himmelblau d/dx");
        // df/dy = 2u du/dy + 2w dw/dy = 2u + 2w (2y) = 2u + 4y w
        close(gy, 2.0 * u + 4.0 * y * w, "himmelblau d/dy");
    }
    // (3, 2) is a minimum: u = 0, w = 0, so the gradient is exactly 0.
    assert_eq!(himmelblau_grad(3.0, 2.0), (0.0, (0.0, 0.0)));
}

#[differentiable]
fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

#[differentiable]
fn softplus(x: f64) -> f64 {
    (1.0 + x.exp()).ln()
}

#[test]
fn sigmoid_and_softplus() {
    for x in [-6.0f64, -2.5, -0.3, 0.0, 0.7, 1.0, 4.0, 9.0] {
        let s = 1.0 / (1.0 + (-x).exp());
        let (v, g) = sigmoid_grad(x);
        close(v, s, "sigmoid value");
        // s = (1 + e^-x)^-1; ds/dx = -(1 + e^-x)^-2 * (-e^-x) = e^-x / (1 + e^-x)^2
        //   = s * (e^-x / (1 + e^-x)) = s (1 - s)
        close(g, s * (1.0 - s), "sigmoid'");
        let (_, g) = softplus_grad(x);
        // d/dx ln(1 + e^x) = e^x / (1 + e^x) = 1 / (e^-x + 1) = s
        close(g, s, "softplus'");
    }
    // At 0: s = 1/2, s' = 1/4 exactly, softplus' = 1/2.
    assert_eq!(sigmoid_grad(0.0), (0.5, 0.25));
    assert_eq!(softplus_grad(0.0).1, 0.5);
}

/// ln(e^a + e^b + e^c), stabilised by the maximum (which does not change the gradient).
#[differentiable]
fn logsumexp3(a: f64, b: f64, c: f64) -> f64 {
    let m = a.max(b).max(c);
    let s = (a - m).exp() + (b - m).exp() + (c - m).exp();
    m + s.ln()
}

#[differentiable]
fn logsumexp3_plain(a: f64, b: f64, c: f64) -> f64 {
    (a.exp() + b.exp() + c.exp()).ln()
}

#[test]
fn logsumexp_gradient_is_softmax() {
    for (a, b, c) in [
        (0.1f64, 0.2f64, 0.3f64),
        (-1.0, 2.0, 0.5),
        (3.0, -4.0, 1.0),
        (0.0, 0.5, -0.5),
        (10.0, 9.5, 7.0),
    ] {
        // f = ln(sum_j e^x_j); df/dx_i = e^x_i / sum_j e^x_j = softmax_i.
        // With m = max: f = m + ln(sum_j e^(x_j - m)); the m terms give
        // dm/dx_i (1 - sum_j e^(x_j-m) / sum_j e^(x_j-m)) = 0, so the gradient is the same.
        let z = a.exp() + b.exp() + c.exp();
        let want = [a.exp() / z, b.exp() / z, c.exp() / z];
        for (v, (ga, gb, gc)) in [logsumexp3_grad(a, b, c), logsumexp3_plain_grad(a, b, c)] {
            close(v, z.ln(), "lse value");
            close(ga, want[0], "lse d/da");
            close(gb, want[1], "lse d/db");
            close(gc, want[2], "lse d/dc");
        }
    }
}

/// p(x) = c[0] + c[1] x + ... + c[n-1] x^(n-1), by Horner's rule from the top.
#[differentiable]
fn horner(c: &[f64], x: f64) -> f64 {
    let n = c.len();
    let mut acc = 0.0;
    for i in (0..n).rev() {
        acc = acc * x + c[i];
    }
    acc
}

#[test]
fn horner_polynomial() {
    let c = [0.5, -2.0, 3.0, 0.25, -1.0];
    for x in [-2.0, -0.5, 0.0, 0.3, 1.0, 1.7] {
        let (v, (gc, gx)) = horner_grad(&c, x);
        close(v, (0..5).map(|k| c[k] * x.powi(k as i32)).sum(), "p(x)");
        // dp/dx = sum_{k>=1} k c[k] x^(k-1) = -2 + 6x + 0.75x^2 - 4x^3
        close(gx, -2.0 + 6.0 * x + 0.75 * x * x - 4.0 * x.powi(3), "p'(x)");
        // dp/dc[k] = x^k
        assert_eq!(gc.len(), 5);
        for (k, g) in gc.iter().enumerate() {
            close(*g, x.powi(k as i32), "dp/dc_k");
        }
    }
}

/// x^2 for x < 0, else 3x + 1, through an early return.
#[differentiable]
fn early(x: f64, y: f64) -> f64 {
    if x < 0.0 {
        return x * x * y;
    }
    3.0 * x + y.sin()
}

#[test]
fn early_return_gradient() {
    for (x, y) in POINTS {
        let (_, (gx, gy)) = early_grad(x, y);
        if x < 0.0 {
            // f = x^2 y: df/dx = 2xy, df/dy = x^2
            close(gx, 2.0 * x * y, "early d/dx (returned)");
            close(gy, x * x, "early d/dy (returned)");
        } else {
            // f = 3x + sin y: df/dx = 3, df/dy = cos y
            close(gx, 3.0, "early d/dx (fell through)");
            close(gy, y.cos(), "early d/dy (fell through)");
        }
    }
}

// ----- conventions at kinks -----

#[differentiable]
fn abs(x: f64) -> f64 {
    x.abs()
}

#[differentiable]
fn max(x: f64, y: f64) -> f64 {
    x.max(y)
}

#[differentiable]
fn min(x: f64, y: f64) -> f64 {
    x.min(y)
}

#[differentiable]
fn max_self(x: f64) -> f64 {
    x.max(x)
}

#[differentiable]
fn relu(x: f64) -> f64 {
    if x > 0.0 { x } else { 0.0 }
}

#[differentiable]
fn signum(x: f64) -> f64 {
    x.signum() * 2.0
}

#[test]
fn kink_conventions() {
    // |x|' = sign(x) away from 0, and 0 at 0 by convention.
    assert_eq!(abs_grad(0.0), (0.0, 0.0));
    assert_eq!(abs_grad(-0.0).1, 0.0);
    assert_eq!(abs_grad(2.0).1, 1.0);
    assert_eq!(abs_grad(-2.0).1, -1.0);
    // max(x, y) on a tie sends the whole gradient to the FIRST argument.
    assert_eq!(max_grad(1.5, 1.5), (1.5, (1.0, 0.0)));
    assert_eq!(max_grad(1.0, 2.0).1, (0.0, 1.0));
    assert_eq!(max_grad(3.0, 2.0).1, (1.0, 0.0));
    // min(x, y) likewise.
    assert_eq!(min_grad(-0.5, -0.5), (-0.5, (1.0, 0.0)));
    assert_eq!(min_grad(1.0, 2.0).1, (1.0, 0.0));
    assert_eq!(min_grad(3.0, 2.0).1, (0.0, 1.0));
    // max(x, x) = x: both slots are x, so the derivative is 1 + 0 = 1.
    assert_eq!(max_self_grad(0.7), (0.7, 1.0));
    // relu = if x > 0 { x } else { 0 }: at 0 the else branch runs, derivative 0.
    assert_eq!(relu_grad(0.0), (0.0, 0.0));
    assert_eq!(relu_grad(1e-300).1, 1.0);
    assert_eq!(relu_grad(-1e-300).1, 0.0);
    // signum is piecewise constant: derivative 0 everywhere (also at 0).
    assert_eq!(signum_grad(0.0).1, 0.0);
    assert_eq!(signum_grad(-3.0).1, 0.0);
    // The vjp follows the same conventions, scaled by the seed.
    assert_eq!(max_vjp(1.5, 1.5, -2.0).1, (-2.0, 0.0));
    assert_eq!(abs_vjp(0.0, 5.0).1, 0.0);
}

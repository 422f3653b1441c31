//! Generated code is lint-clean: this file denies strict rustc and clippy lints (clippy runs
//! on it in CI) and expands the macro over scalar, control-flow and tensor functions.
#![deny(
    warnings,
    unused,
    unused_qualifications,
    unused_results,
    trivial_casts,
    trivial_numeric_casts,
    unsafe_code,
    rust_2018_idioms,
    clippy::all,
    clippy::pedantic
)]
#![allow(clippy::cast_precision_loss, clippy::many_single_char_names)]

use symgrad::prelude::*;

/// A scalar function with every kind of control flow.
#[differentiable(wrt(x, y))]
#[must_use]
pub fn scalar(x: f64, y: f64, n: usize) -> f64 {
    let mut s = x * y;
    for i in 0..n {
        s += (i as f64) * x.sin();
        if s > 10.0 {
            return s.sqrt();
        }
    }
    if y > 0.0 { s * y } else { s - y }
}

/// The same with the second order (`_hvp`, `_hessian`), over a slice too.
#[differentiable(hessian, wrt(x, y, z))]
#[must_use]
pub fn second(x: f64, y: f64, z: &[f64], n: usize) -> f64 {
    let mut s = x * y + z[0];
    for i in 0..n {
        s += (i as f64) * x.sin() * z[i % z.len()];
        if s > 10.0 {
            return s.sqrt();
        }
    }
    if y > 0.0 { s * y } else { s - y }
}

/// A layer stack over a parameter struct.
#[derive(Clone, Debug, Params)]
pub struct Net {
    /// first layer
    pub a: Linear,
    /// second layer
    pub b: Linear,
}

/// Mean squared error of a two-layer network.
#[differentiable(wrt(net))]
#[must_use]
pub fn net_loss(net: &Net, x: &DMatrix<f32>, target: &DMatrix<f32>) -> f32 {
    let h = tanh(&net.a.forward(x));
    mse(&net.b.forward(&h), target)
}

#[test]
fn strict_lints_compile_and_run() {
    let (v, (gx, gy)) = scalar_grad(0.5, 2.0, 3);
    assert!(v.is_finite() && gx.is_finite() && gy.is_finite());
    let z = [1.0, -0.5];
    let (v2, (hx, _, _), (hvx, _, _)) = second_hvp(0.5, 2.0, &z, 3, 1.0, 0.0, &[0.0, 0.0]);
    assert!(v2.is_finite() && hx.is_finite() && hvx.is_finite());
    let (_, _, h) = second_hessian(0.5, 2.0, &z, 3);
    assert_eq!(h.nrows(), 4);
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(1);
    let net = Net {
        a: Linear::new(3, 4, &mut rng),
        b: Linear::new(4, 2, &mut rng),
    };
    let x = DMatrix::from_element(5, 3, 0.5f32);
    let t = DMatrix::from_element(5, 2, 1.0f32);
    let (l, g) = net_loss_grad(&net, &x, &t);
    assert!(l.is_finite());
    assert_eq!(g.a.weight.shape(), (4, 3));
    assert!((net_loss(&net, &x, &t) - l).abs() < 1e-6);
}

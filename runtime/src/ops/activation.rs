//! Elementwise activations: `relu`, `leaky_relu`, `sigmoid`, `tanh` (all but `leaky_relu` on
//! `DMatrix` and `DVector`).

use nalgebra::{DMatrix, RealField};

use super::{assert_arg_shape, assert_seed_shape, lazy_zero};
use crate::ad::linalg::Scalar;
use crate::ad::matrix::Elements;

/// `relu(x) = max(x, 0)`, elementwise, on a `DMatrix` or a `DVector`.
///
/// Derivative: 1 where `x > 0`, 0 where `x <= 0` — in particular **0 at `x = 0`**, PyTorch's
/// convention. NaN inputs propagate to the output.
pub fn relu<M: Elements>(x: &M) -> M {
    x.map_elems(|v| if v <= zero() { zero() } else { v })
}

/// [`relu`] and its pullback: `dx = seed` where `x > 0`, `0` where `x <= 0`.
///
/// The pullback, called as `pb(&x, seed, need)`, reads `x` from its re-passed argument (it
/// captures only the shape) and zeroes the seed in place.
pub fn relu_pullback<M: Elements>(x: &M) -> (M, impl FnOnce(&M, M, [bool; 1]) -> (M,) + use<M>) {
    let shape = x.dims();
    (relu(x), move |x: &M, mut seed: M, need: [bool; 1]| {
        arg_shape("relu", "x", x.dims(), shape);
        seed_shape("relu", seed.dims(), shape);
        if !need[0] {
            return (M::empty(),);
        }
        for (g, &v) in seed.elems_mut().iter_mut().zip(x.elems()) {
            if v <= zero() {
                *g = zero();
            }
        }
        (seed,)
    })
}

/// [`relu`]'s value and its gradient `seed .* [x > 0]`.
pub fn relu_vjp<M: Elements>(x: &M, seed: M) -> (M, M) {
    let (y, pb) = relu_pullback(x);
    (y, pb(x, seed, [true]).0)
}

/// `leaky_relu(x, slope) = x` where `x > 0`, `slope * x` where `x <= 0`, elementwise.
///
/// `slope` is a constant (no gradient). Derivative: 1 where `x > 0`, `slope` where `x <= 0` —
/// **`slope` at `x = 0`**, PyTorch's convention.
pub fn leaky_relu<T: RealField + Copy>(x: &DMatrix<T>, slope: T) -> DMatrix<T> {
    x.map(|v| if v > T::zero() { v } else { slope * v })
}

/// [`leaky_relu`] and its pullback: `dx = seed` where `x > 0`, `slope * seed` where `x <= 0`;
/// `()` for the constant `slope`.
///
/// The pullback, called as `pb(&x, slope, seed, need)`, reads `x` and `slope` from its
/// re-passed arguments (it captures only the shape) and scales the seed in place.
pub fn leaky_relu_pullback<T: RealField + Copy>(
    x: &DMatrix<T>,
    slope: T,
) -> (
    DMatrix<T>,
    impl FnOnce(&DMatrix<T>, T, DMatrix<T>, [bool; 2]) -> (DMatrix<T>, ()) + use<T>,
) {
    let shape = x.shape();
    (
        leaky_relu(x, slope),
        move |x: &DMatrix<T>, slope: T, mut seed: DMatrix<T>, need: [bool; 2]| {
            assert_arg_shape("leaky_relu", "x", x, shape);
            assert_seed_shape("leaky_relu", &seed, shape);
            if !need[0] {
                return (lazy_zero(), ());
            }
            for (g, &v) in seed.iter_mut().zip(x.iter()) {
                if v <= T::zero() {
                    *g *= slope;
                }
            }
            (seed, ())
        },
    )
}

/// [`leaky_relu`]'s value and its gradient with respect to `x` (`slope` is constant).
pub fn leaky_relu_vjp<T: RealField + Copy>(
    x: &DMatrix<T>,
    slope: T,
    seed: DMatrix<T>,
) -> (DMatrix<T>, DMatrix<T>) {
    let (y, pb) = leaky_relu_pullback(x, slope);
    (y, pb(x, slope, seed, [true, true]).0)
}

/// The logistic function of one value, evaluated without overflow for any sign.
#[inline]
fn sigmoid_scalar<T: Scalar>(v: T) -> T {
    if v >= T::zero() {
        T::one() / (T::one() + (-v).exp())
    } else {
        let e = v.exp();
        e / (T::one() + e)
    }
}

/// `sigmoid(x) = 1 / (1 + exp(-x))`, elementwise (evaluated stably for large `|x|`), on a
/// `DMatrix` or a `DVector`.
///
/// Smooth everywhere; derivative `sigmoid(x) * (1 - sigmoid(x))`.
pub fn sigmoid<M: Elements>(x: &M) -> M {
    x.map_elems(sigmoid_scalar)
}

/// [`sigmoid`] and its pullback: `dx = seed .* y .* (1 - y)` with `y = sigmoid(x)`.
///
/// The pullback, called as `pb(&x, seed, need)`, owns a copy of the forward output `y` (no
/// exponentials are recomputed; `x` is only shape-checked) and writes into the seed in place.
pub fn sigmoid_pullback<M: Elements>(x: &M) -> (M, impl FnOnce(&M, M, [bool; 1]) -> (M,) + use<M>) {
    let y = sigmoid(x);
    let saved = y.clone();
    (y, move |x: &M, mut seed: M, need: [bool; 1]| {
        arg_shape("sigmoid", "x", x.dims(), saved.dims());
        seed_shape("sigmoid", seed.dims(), saved.dims());
        if !need[0] {
            return (M::empty(),);
        }
        for (g, &s) in seed.elems_mut().iter_mut().zip(saved.elems()) {
            *g *= s * (one::<M::Elem>() - s);
        }
        (seed,)
    })
}

/// [`sigmoid`]'s value and its gradient `seed .* y .* (1 - y)`.
pub fn sigmoid_vjp<M: Elements>(x: &M, seed: M) -> (M, M) {
    let (y, pb) = sigmoid_pullback(x);
    (y, pb(x, seed, [true]).0)
}

/// `tanh(x)`, the hyperbolic tangent applied elementwise (not the matrix function), on a
/// `DMatrix` or a `DVector`.
///
/// Smooth everywhere; derivative `1 - tanh(x)^2`.
pub fn tanh<M: Elements>(x: &M) -> M {
    x.map_elems(tanh_scalar)
}

/// [`tanh`] and its pullback: `dx = seed .* (1 - y^2)` with `y = tanh(x)`.
///
/// The pullback, called as `pb(&x, seed, need)`, owns a copy of the forward output `y` (`x` is
/// only shape-checked) and writes into the seed in place.
pub fn tanh_pullback<M: Elements>(x: &M) -> (M, impl FnOnce(&M, M, [bool; 1]) -> (M,) + use<M>) {
    let y = tanh(x);
    let saved = y.clone();
    (y, move |x: &M, mut seed: M, need: [bool; 1]| {
        arg_shape("tanh", "x", x.dims(), saved.dims());
        seed_shape("tanh", seed.dims(), saved.dims());
        if !need[0] {
            return (M::empty(),);
        }
        for (g, &t) in seed.elems_mut().iter_mut().zip(saved.elems()) {
            *g *= one::<M::Elem>() - t * t;
        }
        (seed,)
    })
}

/// [`tanh`]'s value and its gradient `seed .* (1 - tanh(x)^2)`.
pub fn tanh_vjp<M: Elements>(x: &M, seed: M) -> (M, M) {
    let (y, pb) = tanh_pullback(x);
    (y, pb(x, seed, [true]).0)
}

#[inline]
fn tanh_scalar<T: Scalar>(v: T) -> T {
    v.tanh()
}

#[inline]
fn zero<T: Scalar>() -> T {
    T::zero()
}

#[inline]
fn one<T: Scalar>() -> T {
    T::one()
}

/// Panics unless the argument handed again to a pullback has the forward's shape.
#[track_caller]
fn arg_shape(op: &str, name: &str, got: (usize, usize), want: (usize, usize)) {
    if got != want {
        panic!(
            "{op}: {name} handed to the pullback is {}x{} but the forward's was {}x{}",
            got.0, got.1, want.0, want.1
        );
    }
}

/// Panics unless the seed has the output's shape.
#[track_caller]
fn seed_shape(op: &str, got: (usize, usize), want: (usize, usize)) {
    if got != want {
        panic!(
            "{op}: seed is {}x{} but the output is {}x{}",
            got.0, got.1, want.0, want.1
        );
    }
}

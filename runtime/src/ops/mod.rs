//! Hand-written tensor functions in the `#[differentiable]` pullback protocol.
//!
//! Every function `NAME` comes in three forms:
//!
//! * `NAME(args)` — the plain forward value;
//! * `NAME_pullback(args)` — the forward value and a pullback closure (protocol v2). The
//!   closure is called as `pb(args, seed, need)`:
//!   - first the **same arguments again**, in the same order and of the same types as the
//!     forward call (`&DMatrix<T>` for matrices, `&[u8]` for labels, `T` for slopes). The
//!     reference lifetimes are higher-ranked, so the caller may pass references to its own
//!     locals at call time. The arguments must be the forward's ones (cheap shape checks
//!     panic otherwise);
//!   - then the adjoint (seed) of the output **by value**;
//!   - then a mask `need: [bool; N]` with one entry per parameter (N counts constant
//!     parameters too).
//!
//!   It returns a tuple with one entry per parameter (a 1-tuple for one parameter): the
//!   gradient for a differentiable parameter, `()` for a constant one (labels, masks,
//!   slopes). When `need[i]` is false the entry is a *lazy zero* — `DMatrix::zeros(0, 0)` /
//!   `DVector::zeros(0)`, which does not allocate — and no work is done for it.
//!
//!   The closure **captures no borrowed input**: its type is `impl FnOnce(..) + use<T>`, so
//!   it can be stored next to the forward values it will be handed again (as the
//!   `#[differentiable]` macro does) without making that stash self-referential. It may
//!   *own* what the forward pass computed (softmax probabilities, activations), so nothing
//!   is recomputed; the inputs the backward needs (`x` for `relu`, the mask for `dropout`,
//!   the labels for `cross_entropy`, ...) are read from the re-passed arguments;
//! * `NAME_vjp(args, seed)` — the user-facing form: the value and the gradient(s) scaled by
//!   `seed`. One differentiable parameter gives the bare gradient, several give a tuple of
//!   gradients in parameter order; constant parameters are omitted.
//!
//! ```
//! use nalgebra::DMatrix;
//! use symgrad_runtime::ops::relu_pullback;
//!
//! let x = DMatrix::from_row_slice(1, 3, &[-1.0, 0.5, 2.0]);
//! let (y, pb) = relu_pullback(&x);
//! assert_eq!(y, DMatrix::from_row_slice(1, 3, &[0.0, 0.5, 2.0]));
//! let (dx,) = pb(&x, DMatrix::from_element(1, 3, 3.0), [true]);
//! assert_eq!(dx, DMatrix::from_row_slice(1, 3, &[0.0, 3.0, 3.0]));
//! ```
//!
//! Scalar-valued functions (losses) take a scalar seed `T`.
//!
//! A batch is a `DMatrix` with one sample per **row** (batch × features). The pullbacks reuse
//! the seed buffer in place where the gradient has the seed's shape and keep what the forward
//! pass computed (probabilities, activations) rather than recomputing it.
//!
//! Shape mismatches panic with a message naming the operation and both shapes, e.g.
//! `add_bias: x is 64x128 but bias has length 10`, or
//! `relu: x handed to the pullback is 2x2 but the forward's was 2x3`.

// The `(value, impl FnOnce(..) -> (..))` return types are the protocol itself, and an
// `impl Trait` cannot be named by a `type` alias on stable Rust.
#![allow(clippy::type_complexity)]

mod activation;
mod bias;
mod dropout;
mod elementwise;
mod forward;
mod hdir;
mod linalg;
mod loss;
mod softmax;

pub use crate::ad::linalg::{matmul_nt, matmul_tn};
pub use activation::{
    leaky_relu, leaky_relu_pullback, leaky_relu_vjp, relu, relu_pullback, relu_vjp, sigmoid,
    sigmoid_pullback, sigmoid_vjp, tanh, tanh_pullback, tanh_vjp,
};
pub use bias::{
    add_bias, add_bias_pullback, add_bias_relu, add_bias_relu_pullback, add_bias_relu_vjp,
    add_bias_vjp, add_col_bias, add_col_bias_pullback, add_col_bias_vjp,
};
pub use dropout::{dropout, dropout_mask, dropout_pullback, dropout_vjp};
pub use elementwise::{
    abs, abs_fwd, abs_jvp, abs_pullback, abs_vjp, cos, cos_fwd, cos_jvp, cos_pullback, cos_vjp,
    exp, exp_fwd, exp_jvp, exp_pullback, exp_vjp, gelu, gelu_fwd, gelu_jvp, gelu_pullback,
    gelu_vjp, ln, ln_fwd, ln_jvp, ln_pullback, ln_vjp, powi, powi_fwd, powi_jvp, powi_pullback,
    powi_vjp, sin, sin_fwd, sin_jvp, sin_pullback, sin_vjp, softplus, softplus_fwd, softplus_jvp,
    softplus_pullback, softplus_vjp, sqrt, sqrt_fwd, sqrt_jvp, sqrt_pullback, sqrt_vjp,
};
pub use forward::{
    add_bias_fwd, add_bias_jvp, add_col_bias_fwd, add_col_bias_jvp, cross_entropy_fwd,
    cross_entropy_jvp, dropout_fwd, dropout_jvp, l2_penalty_fwd, l2_penalty_jvp, leaky_relu_fwd,
    leaky_relu_jvp, log_softmax_fwd, log_softmax_jvp, matmul_nt_fwd, matmul_nt_jvp, matmul_tn_fwd,
    matmul_tn_jvp, mse_fwd, mse_jvp, relu_fwd, relu_jvp, sigmoid_fwd, sigmoid_jvp, softmax_fwd,
    softmax_jvp, tanh_fwd, tanh_jvp,
};
pub use hdir::{
    cross_entropy_dir, cross_entropy_dir_pullback, relu_dir, relu_dir_pullback, sigmoid_dir,
    sigmoid_dir_pullback, softmax_dir, softmax_dir_pullback, tanh_dir, tanh_dir_pullback,
};
pub use linalg::{matmul_nt_pullback, matmul_nt_vjp, matmul_tn_pullback, matmul_tn_vjp};
pub use loss::{l2_penalty, l2_penalty_pullback, l2_penalty_vjp, mse, mse_pullback, mse_vjp};
pub use softmax::{
    cross_entropy, cross_entropy_pullback, cross_entropy_vjp, log_softmax, log_softmax_pullback,
    log_softmax_vjp, softmax, softmax_pullback, softmax_vjp,
};

use nalgebra::{DMatrix, RealField};

/// Converts an `f64` constant to `T`.
#[inline]
pub(crate) fn lit<T: RealField + Copy>(v: f64) -> T {
    nalgebra::convert(v)
}

/// The lazy zero of a matrix gradient: an empty matrix, which does not allocate.
#[inline]
pub(crate) fn lazy_zero<T: RealField + Copy>() -> DMatrix<T> {
    DMatrix::zeros(0, 0)
}

/// Panics unless `a` and `b` have the same shape, naming the operation and both shapes.
#[track_caller]
pub(crate) fn assert_same_shape<T>(
    op: &str,
    a_name: &str,
    a: &DMatrix<T>,
    b_name: &str,
    b: &DMatrix<T>,
) {
    if a.shape() != b.shape() {
        panic!(
            "{op}: {a_name} is {}x{} but {b_name} is {}x{}",
            a.nrows(),
            a.ncols(),
            b.nrows(),
            b.ncols()
        );
    }
}

/// Panics unless the seed handed to a pullback has the output's shape `(rows, cols)`.
#[track_caller]
pub(crate) fn assert_seed_shape<T>(op: &str, seed: &DMatrix<T>, shape: (usize, usize)) {
    if seed.shape() != shape {
        panic!(
            "{op}: seed is {}x{} but the output is {}x{}",
            seed.nrows(),
            seed.ncols(),
            shape.0,
            shape.1
        );
    }
}

/// Panics unless the argument `name` handed again to a pullback has the forward's shape.
#[track_caller]
pub(crate) fn assert_arg_shape<T>(op: &str, name: &str, arg: &DMatrix<T>, shape: (usize, usize)) {
    if arg.shape() != shape {
        panic!(
            "{op}: {name} handed to the pullback is {}x{} but the forward's was {}x{}",
            arg.nrows(),
            arg.ncols(),
            shape.0,
            shape.1
        );
    }
}

/// The columns of a column-major buffer with `rows` rows (nothing when `rows == 0`).
#[inline]
pub(crate) fn columns<T>(data: &[T], rows: usize) -> std::slice::ChunksExact<'_, T> {
    data.chunks_exact(rows.max(1))
}

/// Mutable columns of a column-major buffer with `rows` rows (nothing when `rows == 0`).
#[inline]
pub(crate) fn columns_mut<T>(data: &mut [T], rows: usize) -> std::slice::ChunksExactMut<'_, T> {
    data.chunks_exact_mut(rows.max(1))
}

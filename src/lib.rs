#![doc = include_str!("../README.md")]

pub use nalgebra;
pub use symgrad_macro::{Params, custom_jvp, custom_vjp, differentiable};
pub use symgrad_runtime::ad::Real;
pub use symgrad_runtime::ad::no_grad;
/// `num_traits::Float`, the bound of generic `#[differentiable]` functions (`fn f<T: Float>`).
pub use symgrad_runtime::num_traits;
/// rand 0.8, the version whose `Rng` `Linear::new` and `dropout` take: use
/// `symgrad::rand::SeedableRng` rather than a `rand` of your own (its latest version is a
/// different crate whose generators do not implement this `Rng`).
pub use symgrad_runtime::rand;
/// The ChaCha generators of rand 0.8: `symgrad::rand_chacha::ChaCha8Rng::seed_from_u64(0)`.
pub use symgrad_runtime::rand_chacha;
pub use symgrad_runtime::{Params, Tensor};
pub use symgrad_runtime::{ad, fpu, gemm, metrics, nn, ops, optim, parallel, tempfiles};

#[cfg(feature = "checkpoint")]
pub use symgrad_runtime::checkpoint;
#[cfg(feature = "data")]
pub use symgrad_runtime::data;
#[cfg(feature = "plot")]
pub use symgrad_runtime::plot;
#[cfg(feature = "train")]
pub use symgrad_runtime::train;

/// What a model file needs: the macro, the derive, layers, tensor functions with their
/// pullbacks, and nalgebra's matrix types.
pub mod prelude {
    pub use crate::{Params, Tensor, custom_jvp, custom_vjp, differentiable, no_grad};
    pub use nalgebra::{DMatrix, DVector};
    pub use symgrad_runtime::nn::Linear;
    pub use symgrad_runtime::ops::*;
}

#[doc(hidden)]
pub use symgrad_runtime::__private;

#![doc = include_str!("../README.md")]

pub use nalgebra;
pub use symgrad_macro::{Params, custom_vjp, differentiable};
pub use symgrad_runtime::ad::no_grad;
pub use symgrad_runtime::{Params, Tensor};
pub use symgrad_runtime::{
    ad, checkpoint, data, gemm, metrics, nn, ops, optim, parallel, plot, tempfiles, train,
};

/// What a model file needs: the macro, the derive, layers, tensor functions with their
/// pullbacks, and nalgebra's matrix types.
pub mod prelude {
    pub use crate::{Params, Tensor, custom_vjp, differentiable, no_grad};
    pub use nalgebra::{DMatrix, DVector};
    pub use symgrad_runtime::nn::Linear;
    pub use symgrad_runtime::ops::*;
}

#[doc(hidden)]
pub use symgrad_runtime::__private;

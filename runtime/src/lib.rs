//! Runtime of symgrad: the derivative rules that `#[differentiable]` code calls, a SIMD GEMM,
//! layers, optimizers, data loading and a training loop.

pub mod checkpoint;
pub mod gemm;
pub mod metrics;
pub mod ops;
pub mod optim;
pub mod params;
pub mod plot;
pub mod train;

pub use params::{Params, Tensor};

#![doc = include_str!("../README.md")]

pub use symgrad_macro::{Params, differentiable};
pub use symgrad_runtime as runtime;
pub use symgrad_runtime::{Params, Tensor};

#[doc(hidden)]
pub use symgrad_runtime::__private;

pub use symgrad_macro::differentiable;
pub use symgrad_runtime as runtime;

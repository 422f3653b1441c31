//! Layers whose forward functions are `#[differentiable]`: their backward pass is written
//! by the macro, not by hand.

mod linear;

pub use linear::{Linear, SecondOrderLinear, second_order_linear};

//! One of the optimizers chosen at run time (e.g. from a command-line flag).

use super::{Adam, AdamW, OptimStateError, Optimizer, OptimizerState, Sgd, StatefulOptimizer};
use crate::params::Params;

/// [`Adam`], [`AdamW`] or [`Sgd`], chosen at run time.
#[derive(Debug, Clone)]
pub enum AnyOptimizer {
    /// Adam (coupled L2 weight decay).
    Adam(Adam),
    /// AdamW (decoupled weight decay).
    AdamW(AdamW),
    /// SGD with optional momentum.
    Sgd(Sgd),
}

impl AnyOptimizer {
    /// `"adam"`, `"adamw"` or `"sgd"` (the kind of its [`OptimizerState`]).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Adam(_) => "adam",
            Self::AdamW(_) => "adamw",
            Self::Sgd(_) => "sgd",
        }
    }
}

impl Optimizer for AnyOptimizer {
    fn step<P: Params>(&mut self, params: &mut P, grads: &P) {
        match self {
            Self::Adam(o) => o.step(params, grads),
            Self::AdamW(o) => o.step(params, grads),
            Self::Sgd(o) => o.step(params, grads),
        }
    }
    fn lr(&self) -> f32 {
        match self {
            Self::Adam(o) => o.lr(),
            Self::AdamW(o) => o.lr(),
            Self::Sgd(o) => o.lr(),
        }
    }
    fn set_lr(&mut self, lr: f32) {
        match self {
            Self::Adam(o) => o.set_lr(lr),
            Self::AdamW(o) => o.set_lr(lr),
            Self::Sgd(o) => o.set_lr(lr),
        }
    }
    fn steps(&self) -> u64 {
        match self {
            Self::Adam(o) => o.steps(),
            Self::AdamW(o) => o.steps(),
            Self::Sgd(o) => o.steps(),
        }
    }
    fn export_state(&self) -> Option<OptimizerState> {
        Some(self.state())
    }
}

impl StatefulOptimizer for AnyOptimizer {
    fn state(&self) -> OptimizerState {
        match self {
            Self::Adam(o) => o.state(),
            Self::AdamW(o) => o.state(),
            Self::Sgd(o) => o.state(),
        }
    }
    fn load_state<P: Params + ?Sized>(
        &mut self,
        model: &P,
        state: &OptimizerState,
    ) -> Result<(), OptimStateError> {
        match self {
            Self::Adam(o) => o.load_state(model, state),
            Self::AdamW(o) => o.load_state(model, state),
            Self::Sgd(o) => o.load_state(model, state),
        }
    }
}

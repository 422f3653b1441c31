//! Saving and restoring an optimizer's state (moments, momentum buffers, step count), so that
//! training resumed from a checkpoint continues exactly where it stopped.

use std::collections::BTreeMap;

use super::Optimizer;
use crate::params::Params;

/// An optimizer's state as named `f32` buffers, PyTorch-style: `exp_avg.NAME` and
/// `exp_avg_sq.NAME` for Adam/AdamW, `momentum_buffer.NAME` for SGD with momentum, where
/// `NAME` is the parameter's name (`layer1.weight`). Each buffer has the parameter's number of
/// elements, in the parameter's storage order ([`crate::Tensor::as_slice`]: column-major for a
/// matrix). [`crate::checkpoint::save_optimizer`] writes it as a safetensors file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OptimizerState {
    /// Which optimizer: `"adam"`, `"adamw"` or `"sgd"`.
    pub kind: String,
    /// Steps taken ([`Optimizer::steps`]); Adam's bias correction depends on it.
    pub steps: u64,
    /// The buffers by name (empty before the first step).
    pub tensors: BTreeMap<String, Vec<f32>>,
}

/// Why an [`OptimizerState`] does not fit an optimizer and model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptimStateError {
    /// The state is another optimizer's.
    WrongKind {
        /// This optimizer's kind.
        expected: String,
        /// The state's kind.
        found: String,
    },
    /// A buffer the model needs is missing.
    Missing {
        /// The buffer's name.
        name: String,
        /// The buffers the state does have.
        available: Vec<String>,
    },
    /// A buffer's length differs from its parameter's.
    Length {
        /// The buffer's name.
        name: String,
        /// The parameter's number of elements.
        expected: usize,
        /// The buffer's number of elements.
        found: usize,
    },
    /// The state has buffers for parameters the model does not have.
    Unexpected {
        /// The unused buffers, sorted.
        names: Vec<String>,
    },
    /// A buffer holds NaN or infinite values.
    NonFinite {
        /// The buffer's name.
        name: String,
    },
}

impl std::fmt::Display for OptimStateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::WrongKind { expected, found } => write!(
                f,
                "the optimizer state is for `{found}` but the optimizer is `{expected}`"
            ),
            Self::Missing { available, name } => write!(
                f,
                "the optimizer state has no `{name}` (it has {available:?})"
            ),
            Self::Length {
                expected,
                found,
                name,
            } => write!(
                f,
                "optimizer buffer `{name}` has {found} elements but the parameter has {expected}"
            ),
            Self::Unexpected { names } => write!(
                f,
                "the optimizer state has buffers {names:?} for tensors the model does not have"
            ),
            Self::NonFinite { name } => {
                write!(f, "optimizer buffer `{name}` holds a non-finite value")
            }
        }
    }
}

impl std::error::Error for OptimStateError {}

/// An optimizer whose state can be saved and restored ([`OptimizerState`]).
pub trait StatefulOptimizer: Optimizer {
    /// A copy of the current state.
    fn state(&self) -> OptimizerState;

    /// Replaces the state by `state`, checked against `model` (the parameters the optimizer
    /// will update): every buffer must exist with the parameter's size, and no buffer may be
    /// left over. The hyper-parameters (learning rate, ...) are not part of the state.
    ///
    /// # Errors
    /// [`OptimStateError`] naming the buffer; the optimizer is unchanged on error.
    fn load_state<P: Params + ?Sized>(
        &mut self,
        model: &P,
        state: &OptimizerState,
    ) -> Result<(), OptimStateError>;
}

/// Checks `state` against `kind` and takes buffers out of it by name; [`Taker::finish`]
/// reports the ones never taken.
pub(crate) struct Taker<'a> {
    state: &'a OptimizerState,
    used: Vec<String>,
}

impl<'a> Taker<'a> {
    pub(crate) fn new(kind: &str, state: &'a OptimizerState) -> Result<Self, OptimStateError> {
        if state.kind != kind {
            return Err(OptimStateError::WrongKind {
                expected: kind.to_string(),
                found: state.kind.clone(),
            });
        }
        Ok(Self {
            state,
            used: Vec::new(),
        })
    }

    /// The buffer `prefix.name`, which must have `len` finite elements; `None` if absent and
    /// `optional`.
    pub(crate) fn take(
        &mut self,
        prefix: &str,
        name: &str,
        len: usize,
        optional: bool,
    ) -> Result<Option<Vec<f32>>, OptimStateError> {
        let key = format!("{prefix}.{name}");
        let Some(buf) = self.state.tensors.get(&key) else {
            if optional {
                return Ok(None);
            }
            return Err(OptimStateError::Missing {
                name: key,
                available: self.state.tensors.keys().cloned().collect(),
            });
        };
        if buf.len() != len {
            return Err(OptimStateError::Length {
                name: key,
                expected: len,
                found: buf.len(),
            });
        }
        if !buf.iter().all(|x| x.is_finite()) {
            return Err(OptimStateError::NonFinite { name: key });
        }
        self.used.push(key);
        Ok(Some(buf.clone()))
    }

    /// Fails if some buffers were never taken.
    pub(crate) fn finish(self) -> Result<(), OptimStateError> {
        if self.used.len() == self.state.tensors.len() {
            return Ok(());
        }
        let names = self
            .state
            .tensors
            .keys()
            .filter(|k| !self.used.contains(k))
            .cloned()
            .collect();
        Err(OptimStateError::Unexpected { names })
    }
}

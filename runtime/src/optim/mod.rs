//! Optimizers: [`Adam`], [`AdamW`] and [`Sgd`] (with momentum and Nesterov), all with
//! PyTorch's update rules.
//!
//! An optimizer walks a model and its gradient together with [`Params::visit_with`] and keeps
//! its per-tensor state (moments, momentum buffers) in a `Vec` indexed by visit order. The
//! state is created on the first [`Optimizer::step`]; every later step checks that the model
//! still has the same tensors (same names, same sizes, same order) and panics with a clear
//! message otherwise, so an optimizer can never silently apply one tensor's moments to another.
//!
//! ```
//! use nalgebra::DVector;
//! use symgrad_runtime::optim::{Adam, AdamConfig, Optimizer};
//!
//! let mut w = DVector::from_vec(vec![1.0_f32, -2.0]);
//! let mut opt = Adam::new(AdamConfig { lr: 0.1, ..AdamConfig::default() });
//! for _ in 0..200 {
//!     let grad = w.map(|x| 2.0 * x); // d/dw of |w|^2
//!     opt.step(&mut w, &grad);
//! }
//! assert!(w.norm() < 0.05);
//! ```

mod adam;
mod any;
mod plain;
mod schedule;
mod sgd;
mod state;

pub use adam::{Adam, AdamConfig, AdamW, AdamWConfig};
pub use any::AnyOptimizer;
pub use plain::gradient_step;
pub use schedule::{LrSchedule, Schedule};
pub use sgd::{Sgd, SgdConfig};
pub use state::{OptimStateError, OptimizerState, StatefulOptimizer};

use crate::params::{Params, Tensor};

/// A first-order optimizer: updates parameters in place from a gradient of the same type.
pub trait Optimizer {
    /// Applies one update to `params` given `grads` (the gradient of the loss with respect to
    /// `params`, a value of the same type and structure).
    ///
    /// # Panics
    /// If `params` does not have the same tensors (names, sizes, order) as at the first step,
    /// or if a gradient tensor's size differs from its parameter's.
    fn step<P: Params>(&mut self, params: &mut P, grads: &P);

    /// The current learning rate.
    fn lr(&self) -> f32;

    /// Sets the learning rate for the following steps (learning-rate schedules).
    fn set_lr(&mut self, lr: f32);

    /// The number of steps taken so far.
    fn steps(&self) -> u64;

    /// A copy of the optimizer's state for a checkpoint, if it can be saved (see
    /// [`StatefulOptimizer`]; the optimizers of this module all return `Some`). Default `None`.
    fn export_state(&self) -> Option<OptimizerState> {
        None
    }
}

/// Per-tensor optimizer state kept in visit order, with the name and size checks that keep it
/// aligned with the model. `S` is the state of one tensor.
#[derive(Debug, Clone)]
pub(crate) struct SlotState<S> {
    slots: Vec<(String, usize, S)>,
    initialised: bool,
}

impl<S> Default for SlotState<S> {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            initialised: false,
        }
    }
}

impl<S> SlotState<S> {
    /// Walks `params` and `grads` together and calls `f(param, grad, state)` for every tensor,
    /// creating the state with `init(len)` on the first walk.
    pub(crate) fn for_each<P: Params>(
        &mut self,
        who: &str,
        params: &mut P,
        grads: &P,
        init: impl Fn(usize) -> S,
        mut f: impl FnMut(&mut [f32], &[f32], &mut S),
    ) {
        let first = !self.initialised;
        let mut index = 0usize;
        let slots = &mut self.slots;
        params.visit_with(
            grads,
            "",
            &mut |name, p: &mut dyn Tensor, g: &dyn Tensor| {
                let p = p.as_mut_slice();
                let g = g.as_slice();
                assert_eq!(
                    p.len(),
                    g.len(),
                    "{who}: gradient of `{name}` has {} elements but the parameter has {}",
                    g.len(),
                    p.len()
                );
                if first {
                    slots.push((name.to_string(), p.len(), init(p.len())));
                }
                let Some((slot_name, slot_len, state)) = slots.get_mut(index) else {
                    panic!(
                        "{who}: the model now has more tensors than at the first step \
                     (`{name}` is tensor #{index}, the optimizer state has {} tensors)",
                        index
                    );
                };
                assert!(
                    slot_name == name && *slot_len == p.len(),
                    "{who}: tensor #{index} is `{name}` with {} elements, but the optimizer state \
                 was created for `{slot_name}` with {slot_len} elements; \
                 use one optimizer per model",
                    p.len()
                );
                f(p, g, state);
                index += 1;
            },
        );
        assert_eq!(
            index,
            self.slots.len(),
            "{who}: the model now has {index} tensors, the optimizer state has {}; \
             use one optimizer per model",
            self.slots.len()
        );
        self.initialised = true;
    }

    /// The per-tensor states in visit order with the tensor names; empty before the first
    /// step.
    pub(crate) fn slots(&self) -> impl Iterator<Item = (&str, &S)> {
        self.slots.iter().map(|(name, _, s)| (name.as_str(), s))
    }

    /// Replaces the state with one built for `model`'s tensors in visit order: `make(name,
    /// len)` gives each tensor's state. With `fresh`, the state is forgotten instead (as
    /// before the first step). Nothing changes if `make` fails.
    pub(crate) fn import<P: Params + ?Sized, E>(
        &mut self,
        model: &P,
        fresh: bool,
        mut make: impl FnMut(&str, usize) -> Result<S, E>,
    ) -> Result<(), E> {
        if fresh {
            *self = Self::default();
            return Ok(());
        }
        let mut slots = Vec::new();
        let mut error = None;
        model.visit("", &mut |name, t: &dyn Tensor| {
            if error.is_some() {
                return;
            }
            let len = t.as_slice().len();
            match make(name, len) {
                Ok(s) => slots.push((name.to_string(), len, s)),
                Err(e) => error = Some(e),
            }
        });
        if let Some(e) = error {
            return Err(e);
        }
        self.slots = slots;
        self.initialised = true;
        Ok(())
    }
}

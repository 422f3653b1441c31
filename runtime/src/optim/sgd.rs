//! Stochastic gradient descent with momentum.

use std::collections::BTreeMap;

use super::state::Taker;
use super::{OptimStateError, Optimizer, OptimizerState, SlotState, StatefulOptimizer};
use crate::params::Params;

/// Hyper-parameters of [`Sgd`], with PyTorch's `torch.optim.SGD` meaning. [`Default`] gives
/// PyTorch's defaults except `lr`, which PyTorch requires and which is `0.01` here.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdConfig {
    /// Learning rate. Default `0.01`.
    pub lr: f32,
    /// Momentum factor μ (`0` = plain SGD). Default `0`.
    pub momentum: f32,
    /// Dampening τ of the momentum: `buf = μ buf + (1 - τ) g`. Default `0`.
    pub dampening: f32,
    /// L2 penalty: `weight_decay * param` is added to the gradient. Default `0`.
    pub weight_decay: f32,
    /// Nesterov momentum: step along `g + μ buf` instead of `buf`. Needs `momentum > 0`
    /// and `dampening == 0`. Default `false`.
    pub nesterov: bool,
}

impl Default for SgdConfig {
    fn default() -> Self {
        Self {
            lr: 0.01,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
        }
    }
}

/// SGD with PyTorch's `torch.optim.SGD` update:
///
/// ```text
/// g   = grad + weight_decay * p
/// buf = g                              (first step)
/// buf = μ buf + (1 - dampening) g      (later steps)
/// d   = g + μ buf  if nesterov  else  buf      (d = g when momentum == 0)
/// p  -= lr * d
/// ```
#[derive(Debug, Clone)]
pub struct Sgd {
    /// The hyper-parameters; may be changed between steps.
    pub config: SgdConfig,
    t: u64,
    /// Momentum buffers, created at the first step that uses momentum.
    state: SlotState<Option<Vec<f32>>>,
}

impl Sgd {
    /// A new optimizer; the momentum buffers are created on the first step.
    ///
    /// # Panics
    /// On a negative or non-finite `lr`, negative `momentum`/`weight_decay`, or `nesterov`
    /// without `momentum > 0` and `dampening == 0` (as PyTorch).
    pub fn new(config: SgdConfig) -> Self {
        let c = config;
        assert!(c.lr >= 0.0 && c.lr.is_finite(), "Sgd: invalid lr {}", c.lr);
        assert!(c.momentum >= 0.0, "Sgd: invalid momentum {}", c.momentum);
        assert!(
            c.weight_decay >= 0.0,
            "Sgd: invalid weight_decay {}",
            c.weight_decay
        );
        assert!(
            !c.nesterov || (c.momentum > 0.0 && c.dampening == 0.0),
            "Sgd: Nesterov momentum requires a momentum and zero dampening"
        );
        Self {
            config,
            t: 0,
            state: SlotState::default(),
        }
    }
}

impl Default for Sgd {
    fn default() -> Self {
        Self::new(SgdConfig::default())
    }
}

impl Optimizer for Sgd {
    fn step<P: Params>(&mut self, params: &mut P, grads: &P) {
        self.t += 1;
        let SgdConfig {
            lr,
            momentum,
            dampening,
            weight_decay: wd,
            nesterov,
        } = self.config;
        let one_damp = 1.0 - dampening;
        let use_momentum = momentum != 0.0;
        self.state.for_each(
            "Sgd",
            params,
            grads,
            |_| None,
            |p, g, buf: &mut Option<Vec<f32>>| {
                let n = p.len();
                let g = &g[..n];
                if !use_momentum {
                    for i in 0..n {
                        p[i] -= lr * (g[i] + wd * p[i]);
                    }
                    return;
                }
                // PyTorch starts the buffer as a copy of the first gradient.
                let (mu, damp) = if buf.is_some() {
                    (momentum, one_damp)
                } else {
                    (0.0, 1.0)
                };
                let buf = &mut buf.get_or_insert_with(|| vec![0.0; n])[..n];
                for i in 0..n {
                    let gi = g[i] + wd * p[i];
                    let bi = mu * buf[i] + damp * gi;
                    buf[i] = bi;
                    let d = if nesterov { gi + momentum * bi } else { bi };
                    p[i] -= lr * d;
                }
            },
        );
    }
    fn lr(&self) -> f32 {
        self.config.lr
    }
    fn set_lr(&mut self, lr: f32) {
        self.config.lr = lr;
    }
    fn steps(&self) -> u64 {
        self.t
    }
    fn export_state(&self) -> Option<OptimizerState> {
        Some(self.state())
    }
}

impl StatefulOptimizer for Sgd {
    /// PyTorch's `momentum_buffer` per parameter (none without momentum).
    fn state(&self) -> OptimizerState {
        let mut tensors = BTreeMap::new();
        for (name, buf) in self.state.slots() {
            if let Some(buf) = buf {
                tensors.insert(format!("momentum_buffer.{name}"), buf.clone());
            }
        }
        OptimizerState {
            kind: "sgd".to_string(),
            steps: self.t,
            tensors,
        }
    }
    fn load_state<P: Params + ?Sized>(
        &mut self,
        model: &P,
        state: &OptimizerState,
    ) -> Result<(), OptimStateError> {
        let mut taker = Taker::new("sgd", state)?;
        let mut restored = SlotState::default();
        // Without momentum there are no buffers, but the step count still matters.
        let fresh = state.tensors.is_empty() && state.steps == 0;
        restored.import(model, fresh, |name, len| {
            taker.take("momentum_buffer", name, len, true)
        })?;
        taker.finish()?;
        self.state = restored;
        self.t = state.steps;
        Ok(())
    }
}

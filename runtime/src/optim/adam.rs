//! Adam and AdamW.

use std::collections::BTreeMap;

use super::state::Taker;
use super::{OptimStateError, Optimizer, OptimizerState, SlotState, StatefulOptimizer};
use crate::params::Params;

/// Hyper-parameters of [`Adam`] (Kingma & Ba, 2015) with PyTorch's `torch.optim.Adam`
/// semantics. [`Default`] gives the paper's and PyTorch's defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    /// Learning rate (step size) α. Default `1e-3`.
    pub lr: f32,
    /// Exponential decay rate β₁ of the first-moment (mean) estimate. Default `0.9`.
    pub beta1: f32,
    /// Exponential decay rate β₂ of the second-moment (uncentred variance) estimate.
    /// Default `0.999`.
    pub beta2: f32,
    /// Term added to the denominator `sqrt(v̂)` for numerical stability. Default `1e-8`.
    pub eps: f32,
    /// L2 penalty: `weight_decay * param` is added to the gradient before the moments are
    /// updated (classic, coupled weight decay, as `torch.optim.Adam`). Default `0`.
    /// For decoupled decay use [`AdamW`].
    pub weight_decay: f32,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// Hyper-parameters of [`AdamW`] (Loshchilov & Hutter, 2019) with PyTorch's
/// `torch.optim.AdamW` semantics. [`Default`] gives PyTorch's defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    /// Learning rate (step size) α. Default `1e-3`.
    pub lr: f32,
    /// Exponential decay rate β₁ of the first-moment estimate. Default `0.9`.
    pub beta1: f32,
    /// Exponential decay rate β₂ of the second-moment estimate. Default `0.999`.
    pub beta2: f32,
    /// Term added to the denominator `sqrt(v̂)` for numerical stability. Default `1e-8`.
    pub eps: f32,
    /// Decoupled weight decay λ: before each Adam update the parameters are multiplied by
    /// `1 - lr * weight_decay`; the gradient and the moments do not see it. Default `0.01`.
    pub weight_decay: f32,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

/// First and second moment of one tensor.
#[derive(Debug, Clone)]
struct Moments {
    m: Vec<f32>,
    v: Vec<f32>,
}

fn validate(who: &str, lr: f32, beta1: f32, beta2: f32, eps: f32, weight_decay: f32) {
    assert!(lr >= 0.0 && lr.is_finite(), "{who}: invalid lr {lr}");
    assert!((0.0..1.0).contains(&beta1), "{who}: invalid beta1 {beta1}");
    assert!((0.0..1.0).contains(&beta2), "{who}: invalid beta2 {beta2}");
    assert!(eps >= 0.0, "{who}: invalid eps {eps}");
    assert!(
        weight_decay >= 0.0,
        "{who}: invalid weight_decay {weight_decay}"
    );
}

/// Tensors at least this long are updated on several threads (when
/// [`crate::parallel::set_threads`] allows it).
const PARALLEL_MIN_LEN: usize = 1 << 14;

/// The shared Adam update. `l2` is the coupled weight decay (Adam), `decoupled` the
/// decoupled one (AdamW).
#[allow(clippy::too_many_arguments)]
fn adam_step<P: Params>(
    who: &str,
    state: &mut SlotState<Moments>,
    t: u64,
    params: &mut P,
    grads: &P,
    (lr, beta1, beta2, eps): (f32, f32, f32, f32),
    l2: f32,
    decoupled: f32,
) {
    // Scalars in f64 like PyTorch's Python floats, then one f32 each for the loop.
    let bc1 = 1.0 - f64::from(beta1).powf(t as f64);
    let bc2 = 1.0 - f64::from(beta2).powf(t as f64);
    let step_size = (f64::from(lr) / bc1) as f32;
    let inv_sqrt_bc2 = (1.0 / bc2.sqrt()) as f32;
    let decay = (1.0 - f64::from(lr) * f64::from(decoupled)) as f32;
    let (b1, b2) = (beta1, beta2);
    let (one_b1, one_b2) = (1.0 - beta1, 1.0 - beta2);
    state.for_each(
        who,
        params,
        grads,
        |n| Moments {
            m: vec![0.0; n],
            v: vec![0.0; n],
        },
        |p, g, Moments { m, v }| {
            // Memory-bound: big tensors are split across `parallel::threads()` threads, in
            // 4 pieces per thread so that a thread that is slow to start (asleep, or
            // descheduled on a busy machine) holds up little: the others take the rest.
            let parts = if p.len() >= PARALLEL_MIN_LEN && crate::parallel::threads() > 1 {
                4 * crate::parallel::threads()
            } else {
                1
            };
            crate::parallel::zip4(parts, p, g, m, v, &|p, g, m, v| {
                let n = p.len();
                let (g, m, v) = (&g[..n], &mut m[..n], &mut v[..n]);
                for i in 0..n {
                    let pi = p[i] * decay;
                    let gi = g[i] + l2 * pi;
                    let mi = b1 * m[i] + one_b1 * gi;
                    let vi = b2 * v[i] + one_b2 * gi * gi;
                    m[i] = mi;
                    v[i] = vi;
                    p[i] = pi - step_size * mi / (vi.sqrt() * inv_sqrt_bc2 + eps);
                }
            });
        },
    );
}

/// Adam with PyTorch's `torch.optim.Adam` update (bias-corrected moments, `eps` added
/// outside the square root, optional L2 `weight_decay` added to the gradient):
///
/// ```text
/// g  = grad + weight_decay * p
/// m  = β₁ m + (1 - β₁) g           v = β₂ v + (1 - β₂) g²
/// p -= lr * (m / (1 - β₁ᵗ)) / (sqrt(v / (1 - β₂ᵗ)) + eps)
/// ```
#[derive(Debug, Clone)]
pub struct Adam {
    /// The hyper-parameters; may be changed between steps.
    pub config: AdamConfig,
    t: u64,
    state: SlotState<Moments>,
}

impl Adam {
    /// A new optimizer; the state is created on the first step.
    ///
    /// # Panics
    /// On a negative or non-finite `lr`, betas outside `[0, 1)`, or negative `eps`/`weight_decay`.
    pub fn new(config: AdamConfig) -> Self {
        let c = config;
        validate("Adam", c.lr, c.beta1, c.beta2, c.eps, c.weight_decay);
        Self {
            config,
            t: 0,
            state: SlotState::default(),
        }
    }
}

impl Default for Adam {
    fn default() -> Self {
        Self::new(AdamConfig::default())
    }
}

impl Optimizer for Adam {
    fn step<P: Params>(&mut self, params: &mut P, grads: &P) {
        self.t += 1;
        let c = self.config;
        adam_step(
            "Adam",
            &mut self.state,
            self.t,
            params,
            grads,
            (c.lr, c.beta1, c.beta2, c.eps),
            c.weight_decay,
            0.0,
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

/// AdamW with PyTorch's `torch.optim.AdamW` update: decoupled weight decay
/// `p *= 1 - lr * weight_decay`, then the Adam update of [`Adam`] without L2 term.
#[derive(Debug, Clone)]
pub struct AdamW {
    /// The hyper-parameters; may be changed between steps.
    pub config: AdamWConfig,
    t: u64,
    state: SlotState<Moments>,
}

impl AdamW {
    /// A new optimizer; the state is created on the first step.
    ///
    /// # Panics
    /// On a negative or non-finite `lr`, betas outside `[0, 1)`, or negative `eps`/`weight_decay`.
    pub fn new(config: AdamWConfig) -> Self {
        let c = config;
        validate("AdamW", c.lr, c.beta1, c.beta2, c.eps, c.weight_decay);
        Self {
            config,
            t: 0,
            state: SlotState::default(),
        }
    }
}

impl Default for AdamW {
    fn default() -> Self {
        Self::new(AdamWConfig::default())
    }
}

impl Optimizer for AdamW {
    fn step<P: Params>(&mut self, params: &mut P, grads: &P) {
        self.t += 1;
        let c = self.config;
        adam_step(
            "AdamW",
            &mut self.state,
            self.t,
            params,
            grads,
            (c.lr, c.beta1, c.beta2, c.eps),
            0.0,
            c.weight_decay,
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

/// The state of Adam or AdamW: PyTorch's `exp_avg` and `exp_avg_sq` per parameter.
fn moments_state(kind: &str, t: u64, state: &SlotState<Moments>) -> OptimizerState {
    let mut tensors = BTreeMap::new();
    for (name, s) in state.slots() {
        tensors.insert(format!("exp_avg.{name}"), s.m.clone());
        tensors.insert(format!("exp_avg_sq.{name}"), s.v.clone());
    }
    OptimizerState {
        kind: kind.to_string(),
        steps: t,
        tensors,
    }
}

/// Restores `slots` and `t` from `state` (see [`StatefulOptimizer::load_state`]).
fn load_moments<P: Params + ?Sized>(
    kind: &str,
    slots: &mut SlotState<Moments>,
    t: &mut u64,
    model: &P,
    state: &OptimizerState,
) -> Result<(), OptimStateError> {
    let mut taker = Taker::new(kind, state)?;
    let mut restored = SlotState::default();
    restored.import(model, state.tensors.is_empty(), |name, len| {
        let m = taker.take("exp_avg", name, len, false)?.unwrap_or_default();
        let v = taker
            .take("exp_avg_sq", name, len, false)?
            .unwrap_or_default();
        Ok(Moments { m, v })
    })?;
    taker.finish()?;
    *slots = restored;
    *t = state.steps;
    Ok(())
}

impl StatefulOptimizer for Adam {
    fn state(&self) -> OptimizerState {
        moments_state("adam", self.t, &self.state)
    }
    fn load_state<P: Params + ?Sized>(
        &mut self,
        model: &P,
        state: &OptimizerState,
    ) -> Result<(), OptimStateError> {
        load_moments("adam", &mut self.state, &mut self.t, model, state)
    }
}

impl StatefulOptimizer for AdamW {
    fn state(&self) -> OptimizerState {
        moments_state("adamw", self.t, &self.state)
    }
    fn load_state<P: Params + ?Sized>(
        &mut self,
        model: &P,
        state: &OptimizerState,
    ) -> Result<(), OptimStateError> {
        load_moments("adamw", &mut self.state, &mut self.t, model, state)
    }
}

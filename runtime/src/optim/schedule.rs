//! Learning-rate schedules with linear warm-up, as closed forms of the step number. Plug an
//! [`LrSchedule`] into [`crate::train::fit`] as a callback: it sets the optimizer's rate before
//! every step. Being a function of the global step alone, a schedule resumes exactly.

#[cfg(feature = "train")]
use crate::train::{Callbacks, StepStart};

/// The shape of the rate after the warm-up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Schedule {
    /// The base rate throughout.
    Constant,
    /// Cosine annealing from the base rate to `min_lr`, reached at step `total_steps`
    /// (PyTorch's `CosineAnnealingLR` with `T_max = total_steps - warmup`), then held.
    Cosine {
        /// The last step of training (warm-up included).
        total_steps: u64,
        /// The final rate.
        min_lr: f32,
    },
    /// The base rate times `gamma` every `every` steps (PyTorch's `StepLR`).
    Step {
        /// Steps between two decays (at least 1).
        every: u64,
        /// The factor of each decay.
        gamma: f32,
    },
}

/// A learning-rate schedule: `warmup_steps` steps rising linearly to `base_lr`, then
/// [`Schedule`].
///
/// For the `s`-th step (1-based), with `w = warmup_steps`, `k = s - w - 1`:
///
/// ```text
/// s <= w:    lr = base_lr * s / w
/// Constant:  lr = base_lr
/// Cosine:    lr = min_lr + (base_lr - min_lr) * (1 + cos(pi * min(k, T) / T)) / 2,  T = total_steps - w
/// Step:      lr = base_lr * gamma^floor(k / every)
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrSchedule {
    /// The rate after warm-up (the optimizer's configured rate).
    pub base_lr: f32,
    /// Steps of linear warm-up (`0` = none).
    pub warmup_steps: u64,
    /// What follows the warm-up.
    pub schedule: Schedule,
}

impl LrSchedule {
    /// The rate of step `step` (1-based; step 0 is treated as step 1).
    pub fn lr_at(&self, step: u64) -> f32 {
        let s = step.max(1);
        let base = f64::from(self.base_lr);
        let w = self.warmup_steps;
        if s <= w {
            return (base * s as f64 / w as f64) as f32;
        }
        let k = s - w - 1;
        let lr = match self.schedule {
            Schedule::Constant => base,
            Schedule::Cosine {
                total_steps,
                min_lr,
            } => {
                let t = total_steps.saturating_sub(w);
                if t == 0 {
                    f64::from(min_lr)
                } else {
                    let min = f64::from(min_lr);
                    let phase = std::f64::consts::PI * k.min(t) as f64 / t as f64;
                    min + (base - min) * (1.0 + phase.cos()) / 2.0
                }
            }
            Schedule::Step { every, gamma } => {
                let decays = k / every.max(1);
                base * f64::from(gamma).powf(decays as f64)
            }
        };
        lr as f32
    }
}

#[cfg(feature = "train")]
impl<M: ?Sized> Callbacks<M> for LrSchedule {
    fn before_step(&mut self, info: &StepStart, lr: &mut f32) {
        *lr = self.lr_at(info.step);
    }
}

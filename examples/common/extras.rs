//! The `mnist` example's optimizer and schedule flags, resumable checkpoints, validation split,
//! metrics file and best-weights checkpoint, as one set of training callbacks.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::ValueEnum;
use symgrad::checkpoint::{self, TrainState};
use symgrad::metrics::MetricsLog;
use symgrad::optim::{
    Adam, AdamConfig, AdamW, AdamWConfig, AnyOptimizer, LrSchedule, OptimizerState, Schedule, Sgd,
    SgdConfig,
};
use symgrad::train::{self, Callbacks, DataRef, EpochStats, StepInfo};

use super::{Mlp, logits};

/// `--optimizer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OptimizerKind {
    /// Adam (PyTorch's `torch.optim.Adam`; `--weight-decay` is the coupled L2 penalty).
    Adam,
    /// AdamW (decoupled `--weight-decay`, default 0.01).
    Adamw,
    /// SGD, with `--momentum`.
    Sgd,
}

/// `--schedule`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ScheduleKind {
    /// `--lr` throughout (after `--warmup`).
    Constant,
    /// Cosine annealing from `--lr` to `--lr / 100` at the last step.
    Cosine,
    /// `--lr` times `--lr-gamma` every `--lr-step-epochs` epochs.
    Step,
}

/// A value parser: a finite number `>= 0`.
pub fn non_negative(s: &str) -> Result<f32, String> {
    let v: f32 = s
        .parse()
        .map_err(|e| format!("{s:?} is not a number: {e}"))?;
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("{v} is not a finite number >= 0"))
    }
}

/// A value parser: a fraction strictly between 0 and 1.
pub fn fraction(s: &str) -> Result<f32, String> {
    let v: f32 = s
        .parse()
        .map_err(|e| format!("{s:?} is not a number: {e}"))?;
    if v > 0.0 && v < 1.0 {
        Ok(v)
    } else {
        Err(format!("{v} is not a fraction between 0 and 1 (exclusive)"))
    }
}

/// A value parser: a momentum in `[0, 1)`.
pub fn momentum(s: &str) -> Result<f32, String> {
    let v: f32 = s
        .parse()
        .map_err(|e| format!("{s:?} is not a number: {e}"))?;
    if (0.0..1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not in [0, 1)"))
    }
}

/// The optimizer of the flags. `--momentum` belongs to SGD only.
pub fn build_optimizer(
    kind: OptimizerKind,
    lr: f32,
    weight_decay: Option<f32>,
    momentum: f32,
) -> Result<AnyOptimizer, String> {
    if momentum != 0.0 && kind != OptimizerKind::Sgd {
        return Err(format!(
            "--momentum {momentum} applies to --optimizer sgd only (Adam's momentum is beta1 = 0.9)"
        ));
    }
    Ok(match kind {
        OptimizerKind::Adam => AnyOptimizer::Adam(Adam::new(AdamConfig {
            lr,
            weight_decay: weight_decay.unwrap_or(0.0),
            ..AdamConfig::default()
        })),
        OptimizerKind::Adamw => AnyOptimizer::AdamW(AdamW::new(AdamWConfig {
            lr,
            weight_decay: weight_decay.unwrap_or(AdamWConfig::default().weight_decay),
            ..AdamWConfig::default()
        })),
        OptimizerKind::Sgd => AnyOptimizer::Sgd(Sgd::new(SgdConfig {
            lr,
            momentum,
            weight_decay: weight_decay.unwrap_or(0.0),
            ..SgdConfig::default()
        })),
    })
}

/// The schedule of the flags for a run of `total_steps` steps of `steps_per_epoch`.
pub fn build_schedule(
    kind: ScheduleKind,
    lr: f32,
    warmup: u64,
    total_steps: u64,
    steps_per_epoch: u64,
    step_epochs: u64,
    gamma: f32,
) -> LrSchedule {
    let schedule = match kind {
        ScheduleKind::Constant => Schedule::Constant,
        ScheduleKind::Cosine => Schedule::Cosine {
            total_steps,
            min_lr: lr / 100.0,
        },
        ScheduleKind::Step => Schedule::Step {
            every: (step_epochs * steps_per_epoch).max(1),
            gamma,
        },
    };
    LrSchedule {
        base_lr: lr,
        warmup_steps: warmup,
        schedule,
    }
}

/// Compares the settings a checkpoint was trained with (`saved`, JSON) with this run's and
/// lists every difference that changes the training trajectory; `threads` and `epochs` only
/// warn (other threads change the rounding of the summed shard gradients; more epochs
/// stretch a cosine schedule).
pub fn check_resume_config(saved: &str, now: &serde_json::Value) -> Result<(), String> {
    let saved: serde_json::Value = serde_json::from_str(saved)
        .map_err(|e| format!("the checkpoint's settings are not readable JSON: {e}"))?;
    let mut errors = Vec::new();
    let Some(fields) = now.as_object() else {
        return Ok(());
    };
    for (key, value) in fields {
        let old = saved.get(key).unwrap_or(&serde_json::Value::Null);
        if old == value {
            continue;
        }
        match key.as_str() {
            "threads" => eprintln!(
                "warning: resuming with {value} thread(s) where the checkpoint used {old}: \
                 training continues, but not bit for bit as an uninterrupted run"
            ),
            "epochs" => {
                if now.get("schedule").and_then(|s| s.as_str()) == Some("cosine") {
                    eprintln!(
                        "warning: --epochs {value} differs from the checkpoint's {old}: the \
                         cosine schedule is stretched to the new length"
                    );
                }
            }
            _ => errors.push(format!(
                "--{} is {value} but the checkpoint was trained with {old}",
                key.replace('_', "-")
            )),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "cannot resume with other settings: {}; pass the flags of the original run (or use \
             --load to start a new run from these weights)",
            errors.join("; ")
        ))
    }
}

/// Per-epoch work beside training: validation metrics, the metrics file, resumable and
/// best-weights checkpoints, and the per-step losses for the plot. The first error is kept
/// and stops training through `stop`.
pub struct Extras<'a> {
    /// The validation split (`--val-split`).
    pub val: Option<DataRef<'a>>,
    /// The metrics file (`--metrics`).
    pub metrics: Option<MetricsLog>,
    /// Resumable checkpoint after every epoch (`--save`).
    pub save: Option<PathBuf>,
    /// Best weights by validation (else test) accuracy (`--save-best`).
    pub save_best: Option<PathBuf>,
    /// The best accuracy so far and its epoch.
    pub best: Option<(f32, usize)>,
    /// Seed, settings and history for the checkpoints' metadata.
    pub state: TrainState,
    /// `(x in epochs, loss)` of every step.
    pub step_losses: Vec<(f64, f32)>,
    /// The last epoch saved with `--save`.
    pub saved_epoch: Option<usize>,
    /// The first failure (saving, writing metrics).
    pub error: Option<String>,
    /// Set on failure, to stop training.
    pub stop: Arc<AtomicBool>,
}

impl Extras<'_> {
    fn fail(&mut self, e: String) {
        if self.error.is_none() {
            eprintln!("\nerror: {e}; stopping");
            self.error = Some(e);
        }
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Callbacks<Mlp> for Extras<'_> {
    fn on_step(&mut self, info: &StepInfo) {
        let x = (info.epoch - 1) as f64 + info.step_in_epoch as f64 / info.steps_per_epoch as f64;
        self.step_losses.push((x, info.loss));
    }

    fn on_evaluate(&mut self, stats: &mut EpochStats, model: &Mlp) {
        if let Some(val) = self.val {
            let e = train::evaluate_metrics(model, val, 1000, logits);
            stats.val_accuracy = Some(e.accuracy);
            stats.val_loss = Some(e.loss);
        }
    }

    fn on_epoch_end(
        &mut self,
        stats: &EpochStats,
        model: &Mlp,
        optimizer_state: &dyn Fn() -> Option<OptimizerState>,
    ) {
        let accuracy = stats.val_accuracy.unwrap_or(stats.test_accuracy);
        self.state.history.push(*stats);
        self.state.position = train::ResumePoint {
            epochs_done: stats.epoch,
            steps_done: stats.total_steps,
            steps_into_epoch: 0,
        };
        self.state.accuracy = Some(accuracy);
        if let Some(log) = &mut self.metrics
            && let Err(e) = log.push(stats)
        {
            return self.fail(format!("writing metrics: {e}"));
        }
        if let Some(path) = self.save.clone() {
            let Some(opt) = optimizer_state() else {
                return self.fail("the optimizer's state cannot be saved".into());
            };
            match checkpoint::save_training_state(model, &opt, &path, &self.state) {
                Ok(()) => self.saved_epoch = Some(stats.epoch),
                Err(e) => {
                    return self.fail(format!(
                        "saving the checkpoint failed after epoch {}: {e}",
                        stats.epoch
                    ));
                }
            }
        }
        if let Some(path) = self.save_best.clone()
            && self.best.is_none_or(|(b, _)| accuracy > b)
        {
            self.best = Some((accuracy, stats.epoch));
            let meta = self.state.to_metadata();
            if let Err(e) = checkpoint::save_with_metadata(model, &path, &meta) {
                self.fail(format!("saving the best weights: {e}"));
            }
        }
    }
}

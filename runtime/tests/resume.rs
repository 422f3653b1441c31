//! Resumable training: a run split into two (at an epoch boundary or in the middle of an
//! epoch, through a checkpoint on disk) ends with bit-for-bit the weights of the straight run,
//! for every optimizer, with a learning-rate schedule, on one thread and on two. And the
//! checkpoint's failure modes: a missing or mismatched optimizer file, a state for another
//! optimizer or model.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use nalgebra::{DMatrix, DVector};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use symgrad_runtime::checkpoint::{self, CheckpointError, TrainState};
use symgrad_runtime::optim::{
    Adam, AdamConfig, AdamW, AdamWConfig, AnyOptimizer, LrSchedule, Optimizer, Schedule, Sgd,
    SgdConfig, StatefulOptimizer,
};
use symgrad_runtime::params::{Params, Tensor, join_name};
use symgrad_runtime::train::{
    Callbacks, DataRef, EpochStats, FitReport, ResumePoint, StepInfo, StepStart, TrainConfig, fit,
};

/// A two-layer perceptron `logits = relu(x W1ᵀ + b1) W2ᵀ + b2` with a hand-written gradient.
#[derive(Clone, Debug, PartialEq)]
struct Mlp {
    w1: DMatrix<f32>,
    b1: DVector<f32>,
    w2: DMatrix<f32>,
    b2: DVector<f32>,
}

impl Mlp {
    fn new(inputs: usize, hidden: usize, classes: usize, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut r = |rows, cols| DMatrix::from_fn(rows, cols, |_, _| rng.gen_range(-0.5..0.5f32));
        let w1 = r(hidden, inputs);
        let w2 = r(classes, hidden);
        Self {
            w1,
            b1: DVector::from_element(hidden, 0.01),
            w2,
            b2: DVector::zeros(classes),
        }
    }
    fn hidden(&self, x: &DMatrix<f32>) -> DMatrix<f32> {
        let mut h = x * self.w1.transpose();
        for mut row in h.row_iter_mut() {
            row += self.b1.transpose();
        }
        h.map(|v| v.max(0.0))
    }
    fn forward(&self, x: &DMatrix<f32>) -> DMatrix<f32> {
        let mut z = self.hidden(x) * self.w2.transpose();
        for mut row in z.row_iter_mut() {
            row += self.b2.transpose();
        }
        z
    }
    /// Bit patterns of every parameter, for exact comparison.
    fn bits(&self) -> Vec<u32> {
        let mut out = Vec::new();
        self.visit("", &mut |_, t: &dyn Tensor| {
            out.extend(t.as_slice().iter().map(|x| x.to_bits()))
        });
        out
    }
}

impl Params for Mlp {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &dyn Tensor)) {
        self.w1.visit(&join_name(prefix, "layer1.weight"), f);
        self.b1.visit(&join_name(prefix, "layer1.bias"), f);
        self.w2.visit(&join_name(prefix, "layer2.weight"), f);
        self.b2.visit(&join_name(prefix, "layer2.bias"), f);
    }
    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut dyn Tensor)) {
        self.w1.visit_mut(&join_name(prefix, "layer1.weight"), f);
        self.b1.visit_mut(&join_name(prefix, "layer1.bias"), f);
        self.w2.visit_mut(&join_name(prefix, "layer2.weight"), f);
        self.b2.visit_mut(&join_name(prefix, "layer2.bias"), f);
    }
    fn visit_with(
        &mut self,
        o: &Self,
        prefix: &str,
        f: &mut dyn FnMut(&str, &mut dyn Tensor, &dyn Tensor),
    ) {
        self.w1
            .visit_with(&o.w1, &join_name(prefix, "layer1.weight"), f);
        self.b1
            .visit_with(&o.b1, &join_name(prefix, "layer1.bias"), f);
        self.w2
            .visit_with(&o.w2, &join_name(prefix, "layer2.weight"), f);
        self.b2
            .visit_with(&o.b2, &join_name(prefix, "layer2.bias"), f);
    }
}

/// Mean softmax cross-entropy and its gradient by hand (backpropagation through the ReLU).
fn loss_grad(m: &Mlp, x: &DMatrix<f32>, labels: &[u8]) -> (f32, Mlp) {
    let b = x.nrows();
    let h = m.hidden(x);
    let mut z = m.forward(x);
    let mut loss = 0.0f64;
    for (r, mut row) in z.row_iter_mut().enumerate() {
        let max = row.max();
        row.apply(|v| *v = (*v - max).exp());
        let sum = row.sum();
        row /= sum;
        let y = usize::from(labels[r]);
        loss -= f64::from(row[y].max(1e-30)).ln();
        row[y] -= 1.0;
    }
    z /= b as f32;
    let mut dh = &z * &m.w2;
    dh.zip_apply(&h, |d, hv| {
        if hv <= 0.0 {
            *d = 0.0
        }
    });
    let grad = Mlp {
        w1: dh.transpose() * x,
        b1: DVector::from_iterator(dh.ncols(), dh.column_iter().map(|c| c.sum())),
        w2: z.transpose() * &h,
        b2: DVector::from_iterator(z.ncols(), z.column_iter().map(|c| c.sum())),
    };
    ((loss / b as f64) as f32, grad)
}

fn predict(m: &Mlp, x: &DMatrix<f32>) -> DMatrix<f32> {
    m.forward(x)
}

/// `n` 4x4 images in 4 classes: class `c` lights row `c` over noise.
fn synthetic(n: usize, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let c = rng.gen_range(0..4usize);
        labels.push(c as u8);
        for p in 0..16 {
            let base: u8 = if p / 4 == c { 120 } else { 0 };
            images.push(base + rng.gen_range(0..130u8));
        }
    }
    (images, labels)
}

fn optimizers() -> Vec<AnyOptimizer> {
    vec![
        AnyOptimizer::Adam(Adam::new(AdamConfig {
            lr: 0.02,
            weight_decay: 1e-3,
            ..AdamConfig::default()
        })),
        AnyOptimizer::AdamW(AdamW::new(AdamWConfig {
            lr: 0.02,
            weight_decay: 0.05,
            ..AdamWConfig::default()
        })),
        AnyOptimizer::Sgd(Sgd::new(SgdConfig {
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 1e-4,
            ..SgdConfig::default()
        })),
    ]
}

/// Stops training (through the stop flag) after step `at`.
struct StopAt {
    at: u64,
    flag: Arc<AtomicBool>,
}

impl Callbacks<Mlp> for StopAt {
    fn on_step(&mut self, info: &StepInfo) {
        if info.step == self.at {
            self.flag.store(true, Ordering::Relaxed);
        }
    }
}

const EPOCHS: usize = 10;
const BATCH: usize = 32; // 300 samples: 10 steps per epoch, the last one of 12 samples

fn schedule(base_lr: f32) -> LrSchedule {
    LrSchedule {
        base_lr,
        warmup_steps: 7,
        schedule: Schedule::Cosine {
            total_steps: 100,
            min_lr: base_lr / 20.0,
        },
    }
}

fn config(threads: usize) -> TrainConfig {
    TrainConfig {
        epochs: EPOCHS,
        batch_size: BATCH,
        seed: 5,
        eval_batch_size: 64,
        threads,
        ..TrainConfig::default()
    }
}

/// Trains to the end, stopping once after `stop_at` steps, saving a training checkpoint,
/// restoring it into a fresh model and optimizer (other weights, other state) and going on.
fn split_run(
    opt: &AnyOptimizer,
    threads: usize,
    stop_at: u64,
    dir: &std::path::Path,
) -> (Mlp, FitReport, FitReport) {
    let (images, labels) = synthetic(300, 1);
    let (ti, tl) = synthetic(100, 2);
    let train = DataRef::new(&images, &labels, 16);
    let test = DataRef::new(&ti, &tl, 16);
    let mut model = Mlp::new(16, 8, 4, 3);
    let mut first_opt = opt.clone();
    let flag = Arc::new(AtomicBool::new(false));
    let cfg = TrainConfig {
        stop: Some(Arc::clone(&flag)),
        ..config(threads)
    };
    let mut hooks = (
        schedule(first_opt.lr()),
        StopAt {
            at: stop_at,
            flag: Arc::clone(&flag),
        },
    );
    let first = fit(
        &mut model,
        &mut first_opt,
        train,
        test,
        &cfg,
        loss_grad,
        predict,
        &mut hooks,
    )
    .unwrap();
    assert!(first.stopped);
    assert_eq!(first.position.steps_done, stop_at);

    let path = dir.join("run.safetensors");
    let state = TrainState {
        position: first.position,
        seed: cfg.seed,
        config: "{\"test\":true}".into(),
        accuracy: first.history.last().map(|s| s.test_accuracy),
        history: first.history.clone(),
        version: String::new(),
    };
    checkpoint::save_training(&model, &first_opt, &path, &state).unwrap();

    // A different model and an optimizer with a different state: everything must come from
    // the files.
    let mut resumed = Mlp::new(16, 8, 4, 99);
    let mut second_opt = opt.clone();
    second_opt.set_lr(123.0);
    let loaded = checkpoint::load_training(&mut resumed, &mut second_opt, &path).unwrap();
    assert_eq!(loaded.position, first.position);
    assert_eq!(loaded.seed, 5);
    assert_eq!(loaded.history.len(), first.history.len());
    assert_eq!(resumed, model);
    assert_eq!(second_opt.state(), first_opt.state());
    let cfg = TrainConfig {
        resume: loaded.position,
        ..config(threads)
    };
    let second = fit(
        &mut resumed,
        &mut second_opt,
        train,
        test,
        &cfg,
        loss_grad,
        predict,
        &mut schedule(opt.lr()),
    )
    .unwrap();
    (resumed, first, second)
}

fn straight_run(opt: &AnyOptimizer, threads: usize) -> (Mlp, FitReport) {
    let (images, labels) = synthetic(300, 1);
    let (ti, tl) = synthetic(100, 2);
    let train = DataRef::new(&images, &labels, 16);
    let test = DataRef::new(&ti, &tl, 16);
    let mut model = Mlp::new(16, 8, 4, 3);
    let mut hooks = schedule(opt.lr());
    let mut opt = opt.clone();
    let report = fit(
        &mut model,
        &mut opt,
        train,
        test,
        &config(threads),
        loss_grad,
        predict,
        &mut hooks,
    )
    .unwrap();
    (model, report)
}

/// Test accuracy and loss must agree exactly; times naturally differ. An epoch whose steps all
/// ran before the restart (stopped after its last step, evaluated after resuming) has no step
/// after the restart: no training loss, and the optimizer's rate as it was restored.
fn same_metrics(a: &EpochStats, b: &EpochStats) {
    assert_eq!(
        (a.epoch, a.total_steps, a.test_loss.to_bits()),
        (b.epoch, b.total_steps, b.test_loss.to_bits()),
        "{a}\n{b}"
    );
    if !a.train_loss.is_nan() {
        assert_eq!(a.lr.to_bits(), b.lr.to_bits(), "{a}\n{b}");
    }
    assert_eq!(a.test_accuracy.to_bits(), b.test_accuracy.to_bits());
}

#[test]
fn five_plus_five_epochs_equal_ten_bit_for_bit() {
    for threads in [1, 2] {
        for opt in optimizers() {
            let (straight, full) = straight_run(&opt, threads);
            assert!(
                full.history.last().unwrap().test_accuracy > 0.9,
                "{} learns: {}",
                opt.kind(),
                full.history.last().unwrap()
            );
            // At an epoch boundary (after 5 epochs of 10 steps) and in the middle of epoch 4.
            for stop_at in [50, 37] {
                let dir = tempfile::tempdir().unwrap();
                let (resumed, first, second) = split_run(&opt, threads, stop_at, dir.path());
                assert_eq!(
                    resumed.bits(),
                    straight.bits(),
                    "{} threads {threads}, stopped after step {stop_at}",
                    opt.kind()
                );
                assert_eq!(second.steps, 100);
                assert_eq!(
                    second.position,
                    ResumePoint {
                        epochs_done: 10,
                        steps_done: 100,
                        steps_into_epoch: 0
                    }
                );
                // The resumed run's epochs are the straight run's last epochs.
                let done = first.history.len();
                assert_eq!(done + second.history.len(), EPOCHS);
                for (a, b) in second.history.iter().zip(&full.history[done..]) {
                    same_metrics(a, b);
                }
            }
        }
    }
}

#[test]
fn resuming_without_the_optimizer_state_is_not_the_same() {
    // The control experiment: restoring only the weights (Adam restarting) diverges, so the
    // test above does detect a lost optimizer state.
    let opt = &optimizers()[0];
    let (straight, _) = straight_run(opt, 1);
    let dir = tempfile::tempdir().unwrap();
    let (images, labels) = synthetic(300, 1);
    let train = DataRef::new(&images, &labels, 16);
    let mut model = Mlp::new(16, 8, 4, 3);
    let mut o = opt.clone();
    let cfg = TrainConfig {
        epochs: 5,
        ..config(1)
    };
    let base = o.lr();
    let r = fit(
        &mut model,
        &mut o,
        train,
        train,
        &cfg,
        loss_grad,
        predict,
        &mut schedule(base),
    )
    .unwrap();
    checkpoint::save(&model, dir.path().join("w.safetensors")).unwrap();
    let mut fresh = opt.clone();
    let cfg = TrainConfig {
        resume: r.position,
        ..config(1)
    };
    fit(
        &mut model,
        &mut fresh,
        train,
        train,
        &cfg,
        loss_grad,
        predict,
        &mut schedule(base),
    )
    .unwrap();
    assert_ne!(model.bits(), straight.bits());
}

/// A saved checkpoint of 5 epochs of Adam, for the failure tests.
fn saved(dir: &std::path::Path) -> (std::path::PathBuf, Mlp, AnyOptimizer) {
    let (images, labels) = synthetic(300, 1);
    let train = DataRef::new(&images, &labels, 16);
    let mut model = Mlp::new(16, 8, 4, 3);
    let mut opt = optimizers().remove(0);
    let cfg = TrainConfig {
        epochs: 5,
        ..config(1)
    };
    let r = fit(
        &mut model,
        &mut opt,
        train,
        train,
        &cfg,
        loss_grad,
        predict,
        &mut (),
    )
    .unwrap();
    let path = dir.join("ckpt.safetensors");
    let state = TrainState {
        position: r.position,
        seed: 5,
        config: "{\"lr\":0.02}".into(),
        accuracy: Some(r.history[4].test_accuracy),
        history: r.history.clone(),
        version: String::new(),
    };
    checkpoint::save_training(&model, &opt, &path, &state).unwrap();
    (path, model, opt)
}

#[test]
fn the_model_file_is_a_plain_state_dict_with_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let (path, model, _) = saved(dir.path());
    // Exactly the model's tensors (what PyTorch's strict load_state_dict requires).
    let mut plain = Mlp::new(16, 8, 4, 42);
    checkpoint::load(&mut plain, &path).unwrap();
    assert_eq!(plain, model);
    let meta = checkpoint::read_metadata(&path).unwrap();
    for key in [
        "epoch",
        "step",
        "seed",
        "config",
        "accuracy",
        "symgrad_version",
        "history",
    ] {
        assert!(meta.contains_key(key), "metadata lacks {key}: {meta:?}");
    }
    assert_eq!(meta["epoch"], "5");
    assert_eq!(meta["step"], "50");
    assert_eq!(meta["steps_into_epoch"], "0");
    assert_eq!(meta["config"], "{\"lr\":0.02}");
    assert_eq!(meta["symgrad_version"], env!("CARGO_PKG_VERSION"));
    let history = symgrad_runtime::metrics::history_from_json(&meta["history"]).unwrap();
    assert_eq!(history.len(), 5);
    assert_eq!(history[4].epoch, 5);
    // The optimizer file beside it, with PyTorch's buffer names.
    let opt_path = checkpoint::optimizer_path(&path);
    assert_eq!(opt_path, dir.path().join("ckpt.optim.safetensors"));
    let (state, opt_meta) = checkpoint::load_optimizer(&opt_path).unwrap();
    assert_eq!(state.kind, "adam");
    assert_eq!(state.steps, 50);
    assert_eq!(opt_meta["step"], "50");
    assert!(state.tensors.contains_key("exp_avg.layer1.weight"));
    assert!(state.tensors.contains_key("exp_avg_sq.layer2.bias"));
    assert_eq!(state.tensors.len(), 8);
}

#[test]
fn broken_training_checkpoints_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (path, model, opt) = saved(dir.path());
    let opt_path = checkpoint::optimizer_path(&path);

    // A plain checkpoint (no training metadata).
    let plain = dir.path().join("plain.safetensors");
    checkpoint::save(&model, &plain).unwrap();
    let err = checkpoint::load_training(&mut model.clone(), &mut opt.clone(), &plain).unwrap_err();
    assert!(matches!(err, CheckpointError::Resume { .. }), "{err}");
    assert!(err.to_string().contains("no `epoch`"), "{err}");

    // The optimizer file of another step (a save torn between the two files).
    let other = dir.path().join("other.safetensors");
    let mut state =
        checkpoint::TrainState::from_metadata(&checkpoint::read_metadata(&path).unwrap()).unwrap();
    state.position.steps_done = 49;
    checkpoint::save_with_metadata(&model, &other, &state.to_metadata()).unwrap();
    std::fs::copy(&opt_path, checkpoint::optimizer_path(&other)).unwrap();
    let err = checkpoint::load_training(&mut model.clone(), &mut opt.clone(), &other).unwrap_err();
    assert!(err.to_string().contains("from step 49"), "{err}");

    // The optimizer file is missing.
    std::fs::remove_file(checkpoint::optimizer_path(&other)).unwrap();
    let err = checkpoint::load_training(&mut model.clone(), &mut opt.clone(), &other).unwrap_err();
    assert!(err.to_string().contains("optimizer state"), "{err}");
    assert!(err.to_string().contains("other.optim.safetensors"), "{err}");

    // Another optimizer kind: the optimizer is unchanged.
    let mut sgd = optimizers().remove(2);
    let before = sgd.state();
    let err = checkpoint::load_training(&mut model.clone(), &mut sgd, &path).unwrap_err();
    assert!(err.to_string().contains("`adam`"), "{err}");
    assert_eq!(sgd.state(), before);

    // A state that does not fit the model (another hidden size).
    let mut wider = Mlp::new(16, 9, 4, 0);
    let (state, _) = checkpoint::load_optimizer(&opt_path).unwrap();
    let mut fresh = optimizers().remove(0);
    let err = fresh.load_state(&wider, &state).unwrap_err();
    assert!(err.to_string().contains("exp_avg.layer1.weight"), "{err}");
    assert!(
        err.to_string().contains("144") && err.to_string().contains("128"),
        "{err}"
    );
    // ... which the model load rejects first when going through load_training.
    assert!(checkpoint::load_training(&mut wider, &mut fresh, &path).is_err());

    // A buffer too many.
    let mut extra = state.clone();
    extra
        .tensors
        .insert("exp_avg.layer3.weight".into(), vec![0.0; 4]);
    let err = optimizers()
        .remove(0)
        .load_state(&model, &extra)
        .unwrap_err();
    assert!(err.to_string().contains("exp_avg.layer3.weight"), "{err}");

    // Resuming with another batch size lands outside the epoch: an error, not a silent skip.
    let (images, labels) = synthetic(300, 1);
    let train = DataRef::new(&images, &labels, 16);
    let cfg = TrainConfig {
        batch_size: 150,
        resume: ResumePoint {
            epochs_done: 3,
            steps_done: 37,
            steps_into_epoch: 7,
        },
        ..config(1)
    };
    let mut o = opt.clone();
    let r = fit(
        &mut model.clone(),
        &mut o,
        train,
        train,
        &cfg,
        loss_grad,
        predict,
        &mut (),
    );
    assert!(r.is_err());
}

/// A callback that sets the rate; `fit` applies it before the step and rejects a bad one.
struct SetLr(f32);

impl Callbacks<Mlp> for SetLr {
    fn before_step(&mut self, _: &StepStart, lr: &mut f32) {
        *lr = self.0;
    }
}

#[test]
fn a_callback_sets_the_learning_rate() {
    let (images, labels) = synthetic(64, 1);
    let train = DataRef::new(&images, &labels, 16);
    let cfg = TrainConfig {
        epochs: 1,
        batch_size: 64,
        ..config(1)
    };
    // Plain SGD, one step: p1 = p0 - lr * g, with g from the same batch.
    let m0 = Mlp::new(16, 8, 4, 3);
    let mut batch = symgrad_runtime::train::Batch::new();
    batch.fill(train, &symgrad_runtime::train::epoch_permutation(5, 0, 64));
    let (_, g) = loss_grad(&m0, &batch.x, &batch.labels);
    let mut m = m0.clone();
    let mut sgd = Sgd::new(SgdConfig {
        lr: 1.0,
        ..SgdConfig::default()
    });
    let r = fit(
        &mut m,
        &mut sgd,
        train,
        train,
        &cfg,
        loss_grad,
        predict,
        &mut SetLr(0.25),
    )
    .unwrap();
    assert_eq!(r.history[0].lr, 0.25);
    assert_eq!(sgd.config.lr, 0.25);
    let expected: Vec<f32> = m0
        .w2
        .iter()
        .zip(g.w2.iter())
        .map(|(p, g)| p - 0.25 * g)
        .collect();
    assert_eq!(m.w2.as_slice(), expected.as_slice());

    let err = fit(
        &mut m,
        &mut sgd,
        train,
        train,
        &cfg,
        loss_grad,
        predict,
        &mut SetLr(f32::NAN),
    )
    .unwrap_err();
    assert!(err.to_string().contains("learning rate to NaN"), "{err}");
}

/// Saves a training checkpoint after epoch `at` from `on_epoch_end`, as the mnist example does.
struct SaveAt {
    at: usize,
    path: std::path::PathBuf,
    seed: u64,
}

impl Callbacks<Mlp> for SaveAt {
    fn on_epoch_end(
        &mut self,
        stats: &EpochStats,
        model: &Mlp,
        optimizer_state: &dyn Fn() -> Option<symgrad_runtime::optim::OptimizerState>,
    ) {
        if stats.epoch == self.at {
            let state = TrainState {
                position: ResumePoint {
                    epochs_done: stats.epoch,
                    steps_done: stats.total_steps,
                    steps_into_epoch: 0,
                },
                seed: self.seed,
                ..TrainState::default()
            };
            let opt = optimizer_state().expect("the optimizers here export their state");
            checkpoint::save_training_state(model, &opt, &self.path, &state).unwrap();
        }
    }
}

#[test]
fn a_checkpoint_saved_by_a_callback_resumes_exactly() {
    let opt = optimizers().remove(1); // AdamW
    let (straight, _) = straight_run(&opt, 1);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("epoch5.safetensors");
    // The full run saves after epoch 5; resuming from that file gives the same end.
    let (images, labels) = synthetic(300, 1);
    let train = DataRef::new(&images, &labels, 16);
    let mut model = Mlp::new(16, 8, 4, 3);
    let mut o = opt.clone();
    let mut hooks = (
        schedule(opt.lr()),
        SaveAt {
            at: 5,
            path: path.clone(),
            seed: 5,
        },
    );
    fit(
        &mut model,
        &mut o,
        train,
        train,
        &config(1),
        loss_grad,
        predict,
        &mut hooks,
    )
    .unwrap();
    let mut resumed = Mlp::new(16, 8, 4, 0);
    let mut o = opt.clone();
    let state = checkpoint::load_training(&mut resumed, &mut o, &path).unwrap();
    assert_eq!(state.position.steps_done, 50);
    let cfg = TrainConfig {
        resume: state.position,
        ..config(1)
    };
    let (ti, tl) = synthetic(100, 2);
    let test = DataRef::new(&ti, &tl, 16);
    fit(
        &mut resumed,
        &mut o,
        train,
        test,
        &cfg,
        loss_grad,
        predict,
        &mut schedule(opt.lr()),
    )
    .unwrap();
    assert_eq!(resumed.bits(), straight.bits());
}

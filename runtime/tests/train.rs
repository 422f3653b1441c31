//! Training-loop pieces: shuffling, batch assembly, NaN handling, stop flag, and `fit` on a
//! small separable problem.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use nalgebra::{DMatrix, DVector};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use symgrad_runtime::metrics::{RunningMean, accuracy, argmax_rows};
use symgrad_runtime::optim::{Adam, AdamConfig, Sgd, SgdConfig};
use symgrad_runtime::params::{Params, Tensor, join_name};
use symgrad_runtime::train::{
    Batch, Callbacks, DataRef, EpochStats, FnCallbacks, ProgressBarCallbacks, StepInfo,
    TrainConfig, TrainError, epoch_permutation, evaluate, fill_batch, fit, force_shard_mode,
};

/// A linear classifier `logits = x W^T + b` (PyTorch `nn.Linear` layout).
#[derive(Clone, Debug, PartialEq)]
struct Linear {
    weight: DMatrix<f32>,
    bias: DVector<f32>,
}

impl Linear {
    fn zeros(inputs: usize, classes: usize) -> Self {
        Self {
            weight: DMatrix::zeros(classes, inputs),
            bias: DVector::zeros(classes),
        }
    }
    fn forward(&self, x: &DMatrix<f32>) -> DMatrix<f32> {
        let mut z = x * self.weight.transpose();
        for mut row in z.row_iter_mut() {
            row += self.bias.transpose();
        }
        z
    }
}

impl Params for Linear {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &dyn Tensor)) {
        self.weight.visit(&join_name(prefix, "weight"), f);
        self.bias.visit(&join_name(prefix, "bias"), f);
    }
    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut dyn Tensor)) {
        self.weight.visit_mut(&join_name(prefix, "weight"), f);
        self.bias.visit_mut(&join_name(prefix, "bias"), f);
    }
    fn visit_with(
        &mut self,
        other: &Self,
        prefix: &str,
        f: &mut dyn FnMut(&str, &mut dyn Tensor, &dyn Tensor),
    ) {
        self.weight
            .visit_with(&other.weight, &join_name(prefix, "weight"), f);
        self.bias
            .visit_with(&other.bias, &join_name(prefix, "bias"), f);
    }
}

/// Mean softmax cross-entropy and its gradient, by hand:
/// `dZ = (softmax(Z) - onehot(y)) / B`, `dW = dZ^T X`, `db = column sums of dZ`.
fn softmax_ce(model: &Linear, x: &DMatrix<f32>, labels: &[u8]) -> (f32, Linear) {
    let b = x.nrows();
    let mut z = model.forward(x);
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
    let grad = Linear {
        weight: z.transpose() * x,
        bias: DVector::from_iterator(z.ncols(), z.column_iter().map(|c| c.sum())),
    };
    ((loss / b as f64) as f32, grad)
}

/// `n` images of 4x4 pixels in `classes` classes: class `c` lights pixels `4c..4c+4` (one
/// row of the image) on top of uniform noise, so a linear model separates them.
fn synthetic(n: usize, classes: usize, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut images = Vec::with_capacity(n * 16);
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        let c = rng.gen_range(0..classes);
        labels.push(c as u8);
        for p in 0..16 {
            let base: u8 = if p / 4 == c { 160 } else { 0 };
            images.push(base + rng.gen_range(0..90u8));
        }
    }
    (images, labels)
}

#[test]
fn shuffle_is_deterministic_per_seed_and_epoch() {
    let a = epoch_permutation(42, 0, 1000);
    assert_eq!(a, epoch_permutation(42, 0, 1000), "same seed, same order");
    assert_ne!(a, epoch_permutation(43, 0, 1000), "different seed");
    assert_ne!(a, epoch_permutation(42, 1, 1000), "different epoch");
    assert_ne!(a, (0..1000).collect::<Vec<_>>(), "actually shuffled");
    let mut sorted = a.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..1000).collect::<Vec<_>>(), "a permutation");
    assert!(epoch_permutation(1, 0, 0).is_empty());
}

#[test]
fn batch_rows_are_samples_scaled_to_unit_range() {
    // Three 2x2 images (4 pixels each).
    let images = [0u8, 51, 102, 255, 10, 20, 30, 40, 255, 0, 255, 0];
    let labels = [7u8, 8, 9];
    let data = DataRef::new(&images, &labels, 4);
    let mut batch = Batch::new();
    batch.fill(data, &[2, 0]);
    assert_eq!(batch.x.shape(), (2, 4));
    assert_eq!(batch.labels, [9, 7]);
    let expected = DMatrix::from_row_slice(
        2,
        4,
        &[1.0, 0.0, 1.0, 0.0, 0.0, 51.0 / 255.0, 102.0 / 255.0, 1.0],
    );
    assert!((&batch.x - &expected).amax() < 1e-7, "{}", batch.x);
    assert_eq!(batch.x[(1, 2)], 102.0 / 255.0);

    // Range filling matches index filling.
    let mut by_range = Batch::new();
    by_range.fill_range(data, 1, 3);
    let mut by_index = Batch::new();
    by_index.fill(data, &[1, 2]);
    assert_eq!(by_range.x, by_index.x);
    assert_eq!(by_range.labels, [8, 9]);
}

#[test]
fn partial_last_batch_resizes_and_reuses_the_buffer() {
    let (images, labels) = synthetic(5, 3, 1);
    let data = DataRef::new(&images, &labels, 16);
    let order = epoch_permutation(0, 0, 5);
    let mut x = DMatrix::zeros(0, 0);
    let mut y = Vec::new();
    let mut shapes = Vec::new();
    let mut first_ptr = None;
    for chunk in order.chunks(2) {
        fill_batch(data, chunk, &mut x, &mut y);
        shapes.push(x.shape());
        assert_eq!(y.len(), chunk.len());
        for (r, &i) in chunk.iter().enumerate() {
            assert_eq!(y[r], labels[i]);
            for c in 0..16 {
                assert_eq!(x[(r, c)], f32::from(images[i * 16 + c]) / 255.0);
            }
        }
        first_ptr.get_or_insert(x.as_ptr());
    }
    assert_eq!(shapes, [(2, 16), (2, 16), (1, 16)]);
    // Growing back to a full batch reuses the allocation.
    fill_batch(data, &order[..2], &mut x, &mut y);
    assert_eq!(x.shape(), (2, 16));
    assert_eq!(Some(x.as_ptr()), first_ptr);
}

#[test]
fn metrics_argmax_accuracy_running_mean() {
    let logits = DMatrix::from_row_slice(3, 3, &[0.1, 0.7, 0.2, 5.0, -1.0, 5.0, -3.0, -2.0, -1.0]);
    assert_eq!(argmax_rows(&logits), [1, 0, 2]); // ties go to the first index
    assert!((accuracy(&logits, &[1, 0, 0]) - 2.0 / 3.0).abs() < 1e-6);
    let mut m = RunningMean::new();
    assert!(m.mean().is_nan());
    m.add_weighted(1.0, 3.0);
    m.add(5.0);
    assert_eq!(m.mean(), 2.0);
}

#[test]
fn evaluate_in_batches() {
    let (images, labels) = synthetic(2500, 4, 2);
    let data = DataRef::new(&images, &labels, 16);
    // A perfect "model": predicts the brightest image row.
    let predict = |_: &(), x: &DMatrix<f32>| {
        DMatrix::from_fn(x.nrows(), 4, |r, c| (0..4).map(|k| x[(r, 4 * c + k)]).sum())
    };
    assert_eq!(evaluate(&(), data, 1000, predict), 1.0);
    let wrong = |_: &(), x: &DMatrix<f32>| DMatrix::from_element(x.nrows(), 4, 0.0f32);
    let zeros = labels.iter().filter(|&&l| l == 0).count() as f32 / 2500.0;
    assert!((evaluate(&(), data, 1000, wrong) - zeros).abs() < 1e-6);
}

#[test]
fn nan_loss_stops_at_the_step_without_applying_it() {
    let (images, labels) = synthetic(40, 2, 3);
    let data = DataRef::new(&images, &labels, 16);
    let mut model = Linear::zeros(16, 2);
    let mut opt = Sgd::new(SgdConfig {
        lr: 0.1,
        ..SgdConfig::default()
    });
    let cfg = TrainConfig {
        epochs: 3,
        batch_size: 8, // 5 steps per epoch
        ..TrainConfig::default()
    };
    let calls = std::sync::atomic::AtomicUsize::new(0);
    // Gradient of all ones; the loss turns NaN at the 8th call (epoch 2, step 3).
    let loss_grad = |m: &Linear, _: &DMatrix<f32>, _: &[u8]| {
        let call = calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let loss = if call == 8 { f32::NAN } else { 1.0 };
        let g = Linear {
            weight: DMatrix::from_element(m.weight.nrows(), m.weight.ncols(), 1.0),
            bias: DVector::from_element(m.bias.len(), 1.0),
        };
        (loss, g)
    };
    let predict = |m: &Linear, x: &DMatrix<f32>| m.forward(x);
    let err = fit(
        &mut model,
        &mut opt,
        data,
        data,
        &cfg,
        loss_grad,
        predict,
        &mut (),
    )
    .unwrap_err();
    match &err {
        TrainError::NonFiniteLoss {
            step,
            epoch,
            step_in_epoch,
            history,
            loss,
        } => {
            assert_eq!((*step, *epoch, *step_in_epoch), (8, 2, 3));
            assert!(loss.is_nan());
            assert_eq!(history.len(), 1);
        }
        other => panic!("unexpected error {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("step 8") && msg.contains("NaN"), "{msg}");
    // 7 good steps of -0.1 each were applied, the 8th was not.
    for &w in model.weight.iter().chain(model.bias.iter()) {
        assert!((w + 0.7).abs() < 1e-5, "{w}");
    }
}

#[test]
fn non_finite_gradient_stops_naming_the_tensor() {
    // On one thread (a pass of its own) and on two (checked while the shards are combined).
    for threads in [1, 2] {
        non_finite_gradient_with(threads);
    }
}

fn non_finite_gradient_with(threads: usize) {
    let (images, labels) = synthetic(16, 2, 4);
    let data = DataRef::new(&images, &labels, 16);
    let mut model = Linear::zeros(16, 2);
    let before = model.clone();
    let cfg = TrainConfig {
        epochs: 1,
        batch_size: 4,
        threads,
        ..TrainConfig::default()
    };
    let loss_grad = |m: &Linear, _: &DMatrix<f32>, _: &[u8]| {
        let mut g = Linear::zeros(16, 2);
        g.bias[1] = f32::INFINITY;
        let _ = m;
        (0.5, g)
    };
    let err = fit(
        &mut model,
        &mut Adam::default(),
        data,
        data,
        &cfg,
        loss_grad,
        |m: &Linear, x: &DMatrix<f32>| m.forward(x),
        &mut (),
    )
    .unwrap_err();
    assert!(
        matches!(&err, TrainError::NonFiniteGradient { step: 1, tensor, .. } if tensor == "bias"),
        "{err}"
    );
    assert_eq!(model, before);
}

#[test]
fn stop_flag_ends_training_after_the_current_step() {
    let (images, labels) = synthetic(100, 2, 5);
    let data = DataRef::new(&images, &labels, 16);
    let stop = Arc::new(AtomicBool::new(false));
    let cfg = TrainConfig {
        epochs: 5,
        batch_size: 10,
        stop: Some(stop.clone()),
        ..TrainConfig::default()
    };
    let mut model = Linear::zeros(16, 2);
    let mut steps_seen = Vec::new();
    let mut hooks = FnCallbacks(
        |info: &StepInfo| {
            steps_seen.push(info.step);
            if info.step == 13 {
                stop.store(true, Ordering::Relaxed);
            }
        },
        |_: &EpochStats, _: &Linear| {},
    );
    let report = fit(
        &mut model,
        &mut Adam::default(),
        data,
        data,
        &cfg,
        softmax_ce,
        |m: &Linear, x: &DMatrix<f32>| m.forward(x),
        &mut hooks,
    )
    .unwrap();
    assert!(report.stopped);
    assert_eq!(report.steps, 13);
    assert_eq!(
        report.history.len(),
        1,
        "the interrupted epoch is not reported"
    );
    assert_eq!(steps_seen, (1..=13).collect::<Vec<u64>>());
}

/// Records everything `fit` reports and checks a checkpoint-like model access per epoch.
#[derive(Default)]
struct Recorder {
    steps: Vec<StepInfo>,
    epochs: Vec<EpochStats>,
    bias_norms: Vec<f32>,
}

impl Callbacks<Linear> for Recorder {
    fn on_step(&mut self, info: &StepInfo) {
        self.steps.push(*info);
    }
    fn on_epoch(&mut self, stats: &EpochStats, model: &Linear) {
        self.epochs.push(*stats);
        self.bias_norms.push(model.bias.norm());
    }
}

#[test]
fn fit_learns_a_separable_problem() {
    let (train_images, train_labels) = synthetic(1000, 4, 10);
    let (test_images, test_labels) = synthetic(300, 4, 11);
    let train = DataRef::new(&train_images, &train_labels, 16);
    let test = DataRef::new(&test_images, &test_labels, 16);
    let mut model = Linear::zeros(16, 4);
    let mut opt = Adam::new(AdamConfig {
        lr: 0.05,
        ..AdamConfig::default()
    });
    let cfg = TrainConfig {
        epochs: 4,
        batch_size: 32,
        seed: 7,
        eval_batch_size: 128,
        ..TrainConfig::default()
    };
    let mut recorder = Recorder::default();
    let mut hooks = (
        ProgressBarCallbacks::new(indicatif::ProgressBar::hidden()),
        &mut recorder,
    );
    let report = fit(
        &mut model,
        &mut opt,
        train,
        test,
        &cfg,
        softmax_ce,
        |m: &Linear, x: &DMatrix<f32>| m.forward(x),
        &mut hooks,
    )
    .unwrap();
    assert!(!report.stopped);
    assert_eq!(report.history.len(), 4);
    assert_eq!(report.steps, 4 * 32); // ceil(1000 / 32) = 32 steps per epoch
    let last = report.history.last().unwrap();
    assert!(last.test_accuracy > 0.97, "{last}");
    assert!(last.train_accuracy > 0.97, "{last}");
    assert!(
        last.train_loss < report.history[0].train_loss,
        "{:?}",
        report.history
    );
    assert!(last.seconds > 0.0 && last.samples_per_sec > 0.0);
    assert_eq!(recorder.epochs, report.history);
    assert_eq!(recorder.steps.len(), 128);
    let s = recorder.steps[40];
    assert_eq!(
        (s.epoch, s.step_in_epoch, s.steps_per_epoch, s.step),
        (2, 9, 32, 41)
    );
    assert_eq!(recorder.bias_norms.len(), 4);
    assert!(last.to_string().contains("test acc"));

    // Same seed, same run.
    let mut again = Linear::zeros(16, 4);
    let mut opt = Adam::new(AdamConfig {
        lr: 0.05,
        ..AdamConfig::default()
    });
    fit(
        &mut again,
        &mut opt,
        train,
        test,
        &cfg,
        softmax_ce,
        |m: &Linear, x: &DMatrix<f32>| m.forward(x),
        &mut (),
    )
    .unwrap();
    assert_eq!(again, model);
}

impl Callbacks<Linear> for &mut Recorder {
    fn on_step(&mut self, info: &StepInfo) {
        (**self).on_step(info)
    }
    fn on_epoch(&mut self, stats: &EpochStats, model: &Linear) {
        (**self).on_epoch(stats, model)
    }
}

#[test]
fn invalid_setups_are_errors() {
    let (images, labels) = synthetic(10, 2, 6);
    let data = DataRef::new(&images, &labels, 16);
    let empty = DataRef::new(&[], &[], 16);
    let predict = |m: &Linear, x: &DMatrix<f32>| m.forward(x);
    let mut model = Linear::zeros(16, 2);
    let cfg = TrainConfig {
        batch_size: 0,
        ..TrainConfig::default()
    };
    let r = fit(
        &mut model,
        &mut Adam::default(),
        data,
        data,
        &cfg,
        softmax_ce,
        predict,
        &mut (),
    );
    assert!(matches!(r, Err(TrainError::InvalidConfig(_))));
    let r = fit(
        &mut model,
        &mut Adam::default(),
        empty,
        data,
        &TrainConfig::default(),
        softmax_ce,
        predict,
        &mut (),
    );
    assert!(matches!(r, Err(TrainError::InvalidConfig(_))));
}

#[test]
fn plot_history_writes_an_svg_atomically() {
    let history: Vec<EpochStats> = (1..=5)
        .map(|e| EpochStats {
            epoch: e,
            train_loss: 1.0 / e as f32,
            train_accuracy: 0.8 + 0.03 * e as f32,
            test_accuracy: if e == 3 {
                f32::NAN
            } else {
                0.78 + 0.03 * e as f32
            },
            test_loss: 0.5 / e as f32,
            val_accuracy: None,
            val_loss: None,
            lr: 1e-3,
            total_steps: 10 * e as u64,
            seconds: 1.0,
            eval_seconds: 0.1,
            samples_per_sec: 1000.0,
            steps: 10,
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("curves.svg");
    let written = symgrad_runtime::plot::plot_history(&history, &path).unwrap();
    assert_eq!(written, path);
    let svg = std::fs::read_to_string(&path).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..100.min(svg.len())]);
    for text in [
        "train loss",
        "test loss",
        "accuracy (%)",
        "train",
        "test",
        "epoch",
    ] {
        assert!(svg.contains(text), "missing {text:?}");
    }
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(files.len(), 1, "no temporary files left");

    // One epoch still draws; no epoch is an error; a bad directory names the file.
    symgrad_runtime::plot::plot_history(&history[..1], &path).unwrap();
    assert!(matches!(
        symgrad_runtime::plot::plot_history(&[], &path),
        Err(symgrad_runtime::plot::PlotError::Empty)
    ));
    let err =
        symgrad_runtime::plot::plot_history(&history, dir.path().join("no/x.svg")).unwrap_err();
    assert!(err.to_string().contains("x.svg"), "{err}");
}

/// Data parallelism: with the batch split into shards computed on two threads, each step's
/// gradient is the size-weighted mean of the shards' gradients, which is the whole batch's
/// gradient up to rounding; so training follows the single-thread run closely, and the same
/// thread count gives the same result twice.
#[test]
fn data_parallel_training_matches_one_thread() {
    let (images, labels) = synthetic(203, 3, 9); // 203 = 6 full batches of 32 and 11 left over
    let data = DataRef::new(&images, &labels, 16);
    let train_with = |threads: usize| {
        let cfg = TrainConfig {
            epochs: 2,
            batch_size: 32,
            eval_batch_size: 50,
            threads,
            ..TrainConfig::default()
        };
        let mut model = Linear::zeros(16, 3);
        let report = fit(
            &mut model,
            &mut Adam::default(),
            data,
            data,
            &cfg,
            softmax_ce,
            |m: &Linear, x: &DMatrix<f32>| m.forward(x),
            &mut (),
        )
        .unwrap();
        (model, report)
    };
    let (one, r1) = train_with(1);
    let (two, r2) = train_with(2);
    let (two_again, _) = train_with(2);
    assert_eq!(
        two.weight, two_again.weight,
        "deterministic for a thread count"
    );
    let diff = (&one.weight - &two.weight).abs().max();
    assert!(
        diff < 1e-4,
        "weights differ by {diff} between 1 and 2 threads"
    );
    for (a, b) in r1.history.iter().zip(&r2.history) {
        assert!((a.train_loss - b.train_loss).abs() < 1e-4);
        assert_eq!(
            a.test_accuracy, b.test_accuracy,
            "the split evaluation counts the same"
        );
    }
}

/// Where the shards of a step run (at once on the pool's threads, one after the other on the
/// calling thread, or chosen step by step from measured times, the default) changes only the
/// speed: the weights are the same bit for bit.
#[test]
fn shard_placement_never_changes_the_result() {
    let (images, labels) = synthetic(203, 3, 10);
    let data = DataRef::new(&images, &labels, 16);
    let train_with = |mode: Option<bool>| {
        force_shard_mode(mode);
        let cfg = TrainConfig {
            epochs: 3,
            batch_size: 32,
            eval_batch_size: 50,
            threads: 2,
            ..TrainConfig::default()
        };
        let mut model = Linear::zeros(16, 3);
        let report = fit(
            &mut model,
            &mut Adam::default(),
            data,
            data,
            &cfg,
            softmax_ce,
            |m: &Linear, x: &DMatrix<f32>| m.forward(x),
            &mut (),
        )
        .unwrap();
        force_shard_mode(None);
        (model, report.history.last().unwrap().test_accuracy)
    };
    let parallel = train_with(Some(false));
    assert_eq!(train_with(Some(true)), parallel, "inline");
    assert_eq!(train_with(None), parallel, "adaptive");
}

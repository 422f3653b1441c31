//! Trains a 784-128-64-10 perceptron on MNIST (or Fashion-MNIST). The gradient of the loss is
//! written at compile time by `#[differentiable]`; there is no hand-written backward pass.
//!
//! Data: the four IDX files (raw or `.gz`) in `--data DIR`, else `$MNIST_DIR`, else
//! `./data/mnist`. Missing MNIST files are downloaded there from public mirrors and checked by
//! SHA-256 (offline, this fails with a message saying where to put the files). Fashion-MNIST
//! (`--dataset fashion`) is read from `--data`, `$FASHION_MNIST_DIR` or
//! `/usr/share/datasets/fashion-mnist` (Debian: `apt-get install dataset-fashion-mnist`).
//!
//! ```text
//! cargo run --release --example mnist                         # 10 epochs, ~97.5% test accuracy
//! cargo run --release --example mnist -- --epochs 1 --save mnist.safetensors --plot mnist.svg
//! cargo run --release --example mnist -- --load mnist.safetensors --eval-only
//! cargo run --release --example mnist -- --epochs 5 --save run.safetensors
//! cargo run --release --example mnist -- --epochs 10 --resume run.safetensors --save run.safetensors
//! cargo run --release --example mnist -- --optimizer sgd --momentum 0.9 --lr 0.05 --schedule cosine --warmup 200
//! cargo run --release --example mnist -- --val-split 0.1 --save-best best.safetensors --metrics run.jsonl --plot run.png
//! cargo run --release --example mnist -- --help               # all flags
//! ```
//!
//! `--save` writes a resumable checkpoint after every epoch: the weights (a PyTorch
//! `state_dict` with the run's settings, epoch, step and history in the safetensors metadata)
//! and the optimizer state beside it in `NAME.optim.safetensors`. `--resume` continues such a
//! run exactly where it stopped: same flags, `--epochs` the new total.
//!
//! Ctrl-C stops after the current step (and saves with `--save`); a second Ctrl-C exits at once.

mod common;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use clap::{Parser, ValueEnum};
use common::extras::{self, Extras, OptimizerKind, ScheduleKind};
use common::{Mlp, Progress, load_data, logits, loss, loss_grad, loss_grad_counted, peak_rss_mib};
use symgrad::checkpoint;
use symgrad::checkpoint::TrainState;
use symgrad::data::DatasetKind;
use symgrad::metrics::MetricsLog;
use symgrad::optim::{Adam, AdamConfig, Optimizer};
use symgrad::plot::TrainingCurves;
use symgrad::train::{self, Batch, DataRef, TrainConfig};
use symgrad::{Params, gemm};

#[derive(Parser)]
#[command(about = "Train a 784-128-64-10 MLP on MNIST with compile-time gradients")]
struct Args {
    /// Passes over the training set (0: only set up and evaluate nothing).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(0..=1_000_000), allow_negative_numbers = true)]
    epochs: u32,
    /// Samples per Adam step (at least 1).
    #[arg(long, default_value_t = 64, value_parser = common::parse_positive)]
    batch_size: usize,
    /// Adam learning rate (a finite number above 0; betas 0.9, 0.999, eps 1e-8).
    #[arg(long, default_value_t = 1e-3, value_parser = common::parse_lr, allow_negative_numbers = true)]
    lr: f32,
    /// Seed of the initial weights and of the per-epoch shuffles.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Threads: each batch is split into this many shards computed at once (data
    /// parallelism; default: the number of cores, also the most allowed without
    /// --force-threads). The GEMM inside each shard runs on one.
    #[arg(long, value_parser = common::parse_positive)]
    threads: Option<usize>,
    /// Directory with the four IDX files (default: $MNIST_DIR, else ./data/mnist).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Which data set.
    #[arg(long, value_enum, default_value_t = Dataset::Mnist)]
    dataset: Dataset,
    /// Write the trained weights here (safetensors, PyTorch state_dict names; after every
    /// epoch and at the end, atomically).
    #[arg(long, value_name = "PATH")]
    save: Option<PathBuf>,
    /// Start from these weights instead of a random initialisation.
    #[arg(long, value_name = "PATH")]
    load: Option<PathBuf>,
    /// Only evaluate the test accuracy (with --load).
    #[arg(long, requires = "load")]
    eval_only: bool,
    /// Write the loss and accuracy curves here (SVG).
    #[arg(long, value_name = "PATH")]
    plot: Option<PathBuf>,
    /// Exit with an error if the final test accuracy (in %, 0 to 100) is below this.
    #[arg(long, value_name = "PCT", value_parser = common::parse_percent, allow_negative_numbers = true)]
    min_accuracy: Option<f32>,
    /// Use --threads even if it exceeds the number of cores.
    #[arg(long)]
    force_threads: bool,
    /// After training, time the parts of a training step (200 steps) and print them.
    #[arg(long)]
    profile: bool,
    /// Continue the run saved in this checkpoint (written by --save): weights, optimizer state,
    /// epoch and step counters and the shuffle order. Pass the original run's flags; --epochs
    /// is the new total.
    #[arg(long, value_name = "CKPT", conflicts_with = "load")]
    resume: Option<PathBuf>,
    /// Keep the weights of the best epoch here, by validation accuracy with --val-split, else by
    /// test accuracy.
    #[arg(long, value_name = "PATH")]
    save_best: Option<PathBuf>,
    /// Hold out this fraction of the training set (its last samples) as a validation set,
    /// evaluated after every epoch.
    #[arg(long, value_name = "F", value_parser = extras::fraction)]
    val_split: Option<f32>,
    /// Write per-epoch metrics here: .jsonl (one JSON object per line), .json or .csv.
    #[arg(long, value_name = "FILE")]
    metrics: Option<PathBuf>,
    /// The optimizer.
    #[arg(long, value_enum, default_value_t = OptimizerKind::Adam)]
    optimizer: OptimizerKind,
    /// Weight decay (default: 0; 0.01 for adamw, where it is decoupled).
    #[arg(long, value_name = "W", value_parser = extras::non_negative)]
    weight_decay: Option<f32>,
    /// SGD momentum, in [0, 1).
    #[arg(long, default_value_t = 0.0, value_parser = extras::momentum)]
    momentum: f32,
    /// Learning-rate schedule after the warm-up.
    #[arg(long, value_enum, default_value_t = ScheduleKind::Constant)]
    schedule: ScheduleKind,
    /// Steps of linear learning-rate warm-up.
    #[arg(long, value_name = "STEPS", default_value_t = 0)]
    warmup: u64,
    /// With --schedule step: epochs between two decays.
    #[arg(long, value_name = "EPOCHS", default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    lr_step_epochs: u64,
    /// With --schedule step: the factor of each decay.
    #[arg(long, value_name = "G", default_value_t = 0.1, value_parser = extras::non_negative)]
    lr_gamma: f32,
    /// Train on only the first N training images (quick runs).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    train_size: Option<u64>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Dataset {
    Mnist,
    Fashion,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // Ctrl-C / SIGTERM: installed before any download or training starts.
    let stop = match common::install_stop_handler() {
        Ok(stop) => stop,
        Err(e) => return common::exit_code(Err(e), None),
    };
    let result = run(args, &stop);
    common::exit_code(result, Some(&stop))
}

fn run(args: Args, stop: &Arc<AtomicBool>) -> Result<(), String> {
    let threads = common::resolve_threads(args.threads, args.force_threads);
    symgrad::parallel::set_threads(threads);
    let (kind, name) = match args.dataset {
        Dataset::Mnist => (DatasetKind::Mnist, "MNIST"),
        Dataset::Fashion => (DatasetKind::Fashion, "Fashion-MNIST"),
    };
    // A checkpoint that cannot be written is found out now, not after training.
    if let Some(path) = &args.save {
        checkpoint::check_writable(path).map_err(|e| format!("--save: {e}"))?;
    }
    let data = load_data(kind, args.data.as_deref(), Some(Arc::clone(stop)))?;
    let pixels = data.train.rows * data.train.cols;
    let train = DataRef::new(&data.train.images, &data.train.labels, pixels);
    let test = DataRef::new(&data.test.images, &data.test.labels, pixels);
    let train = train.head(args.train_size.map_or(usize::MAX, |n| n as usize));
    // --val-split: the last samples of the training set.
    let (train, val) = match args.val_split {
        Some(f) => {
            let n_val =
                ((train.len() as f64 * f64::from(f)).round() as usize).clamp(1, train.len());
            let n = train.len() - n_val;
            if n == 0 {
                return Err(format!(
                    "--val-split {f} leaves no training images of {}",
                    train.len()
                ));
            }
            let val = DataRef::new(&train.images()[n * pixels..], &train.labels()[n..], pixels);
            (train.head(n), Some(val))
        }
        None => (train, None),
    };
    println!(
        "{name}: {} training{} and {} test images of {}x{}",
        train.len(),
        val.map_or(String::new(), |v| format!(", {} validation", v.len())),
        test.len(),
        data.train.rows,
        data.train.cols
    );
    // Files written during training are checked before it starts.
    if let Some(path) = &args.metrics {
        symgrad::metrics::MetricsFormat::from_path(path).map_err(|e| e.to_string())?;
    }
    if let Some(path) = &args.plot {
        symgrad::plot::PlotFormat::from_path(path).map_err(|e| e.to_string())?;
    }

    let mut model = Mlp::new(args.seed);
    if let Some(path) = &args.load {
        checkpoint::load(&mut model, path).map_err(|e| e.to_string())?;
        println!("loaded {}", path.display());
    }
    if args.eval_only {
        let eval = train::evaluate_metrics(&model, test, 1000, logits);
        println!(
            "test loss {:.4}, test accuracy {:.2}%",
            eval.loss,
            100.0 * eval.accuracy
        );
        let classes = 10;
        println!("confusion matrix (rows: true class, columns: predicted class):");
        println!(
            "{}",
            train::confusion_matrix(&model, test, 1000, classes, logits)
        );
        return check_accuracy(eval.accuracy, args.min_accuracy);
    }

    let adam = AdamConfig {
        lr: args.lr,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
    };
    let mut opt =
        extras::build_optimizer(args.optimizer, args.lr, args.weight_decay, args.momentum)?;
    let steps_per_epoch = train.len().div_ceil(args.batch_size.max(1)) as u64;
    let schedule = extras::build_schedule(
        args.schedule,
        args.lr,
        args.warmup,
        steps_per_epoch * args.epochs as u64,
        steps_per_epoch,
        args.lr_step_epochs,
        args.lr_gamma,
    );
    let settings = run_settings(&args, name, threads, train.len());
    let mut state = TrainState {
        seed: args.seed,
        config: settings.to_string(),
        ..TrainState::default()
    };
    if let Some(path) = &args.resume {
        let saved = symgrad::checkpoint::load_training(&mut model, &mut opt, path)
            .map_err(|e| e.to_string())?;
        extras::check_resume_config(&saved.config, &settings)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        println!(
            "resuming {} after epoch {} (step {}{})",
            path.display(),
            saved.position.epochs_done,
            saved.position.steps_done,
            if saved.position.steps_into_epoch > 0 {
                format!(
                    ", {} steps into the next epoch",
                    saved.position.steps_into_epoch
                )
            } else {
                String::new()
            }
        );
        if saved.position.epochs_done >= args.epochs as usize {
            println!(
                "nothing to do: the checkpoint has {} epoch(s), --epochs is {}",
                saved.position.epochs_done, args.epochs
            );
        }
        state = TrainState {
            config: state.config,
            ..saved
        };
    }
    let title = plot_title(&args, name, threads);
    println!(
        "model 784-128-64-10 ({} parameters), {title}, GEMM kernel {:?}",
        model.num_params(),
        gemm::selected_kernel()
    );

    // Training stops after the current step when `stop` is set: by Ctrl-C / SIGTERM, or by a
    // failed save, so a run never goes on with weights it cannot keep.
    let cfg = TrainConfig {
        epochs: args.epochs as usize,
        batch_size: args.batch_size,
        seed: args.seed,
        stop: Some(Arc::clone(stop)),
        threads,
        resume: state.position,
        ..TrainConfig::default()
    };
    // A resumed run's metrics file starts with the checkpoint's epochs.
    let metrics = match &args.metrics {
        Some(path) => Some(MetricsLog::create(path, &state.history).map_err(|e| e.to_string())?),
        None => None,
    };
    // After each epoch: validation, metrics, a resumable checkpoint (a later failure such as
    // a NaN loss keeps it), the best weights.
    let extras = Extras {
        val,
        metrics,
        save: args.save.clone(),
        save_best: args.save_best.clone(),
        best: None,
        state,
        step_losses: Vec::new(),
        saved_epoch: None,
        error: None,
        stop: Arc::clone(stop),
    };
    let progress = Progress::new();
    let mut callbacks = (progress, (schedule, extras));
    let started = Instant::now();
    let result = train::fit(
        &mut model,
        &mut opt,
        train,
        test,
        &cfg,
        loss_grad_counted,
        logits,
        &mut callbacks,
    );
    let wall = started.elapsed();
    let (progress, (_, extras)) = callbacks;
    progress.finish();
    let saved_epoch = extras.saved_epoch;
    if let Some(e) = extras.error {
        // Not an interruption: the exit status is the error's.
        stop.store(false, Ordering::Relaxed);
        let kept = match saved_epoch {
            Some(epoch) => format!("the checkpoint of epoch {epoch} is the last one saved"),
            None => "no checkpoint was saved".into(),
        };
        return Err(format!("{e}; training stopped ({kept})"));
    }
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            let kept = match (&args.save, saved_epoch) {
                (Some(path), Some(epoch)) => {
                    format!(
                        "; kept the checkpoint of epoch {epoch} in {}",
                        path.display()
                    )
                }
                (Some(_), None) => "; no checkpoint was written (no epoch completed)".into(),
                (None, _) => String::new(),
            };
            return Err(format!("{e}{kept}"));
        }
    };

    if report.stopped {
        println!("interrupted after {} steps", report.steps);
    }
    if let Some(path) = &args.save {
        // The run as it ended (mid-epoch after Ctrl-C), resumable from there.
        let state = TrainState {
            position: report.position,
            ..extras.state.clone()
        };
        checkpoint::save_training(&model, &opt, path, &state).map_err(|e| e.to_string())?;
        println!(
            "saved {} and {}",
            path.display(),
            checkpoint::optimizer_path(path).display()
        );
    }
    if let (Some(path), Some((acc, epoch))) = (&args.save_best, extras.best) {
        println!(
            "best {} accuracy {:.2}% (epoch {epoch}) saved in {}",
            if val.is_some() { "validation" } else { "test" },
            100.0 * acc,
            path.display()
        );
    }
    let all_history = &extras.state.history;
    if let Some(path) = &args.plot {
        if all_history.is_empty() {
            println!("no epoch completed, no plot written");
        } else {
            let curves = TrainingCurves {
                history: all_history,
                step_losses: &extras.step_losses,
                title: &title,
            };
            let path = symgrad::plot::write_plot(&curves, path).map_err(|e| e.to_string())?;
            println!("wrote training curves to {}", path.display());
        }
    }

    // The summary. The last epoch's test accuracy is the final one unless Ctrl-C cut an
    // epoch short; then evaluate the model as it is.
    let final_accuracy = match report.history.last() {
        Some(last) if !report.stopped => last.test_accuracy,
        _ => train::evaluate(&model, test, 1000, logits),
    };
    let train_seconds: f64 = report.history.iter().map(|s| s.seconds).sum();
    let eval_seconds: f64 = report.history.iter().map(|s| s.eval_seconds).sum();
    let samples = report.history.len() * train.len();
    if !report.history.is_empty() {
        println!(
            "{} full epoch(s) ({} steps) trained in {train_seconds:.1}s ({:.0} samples/s on {} \
             thread(s)), evaluation {eval_seconds:.1}s, wall {:.1}s",
            report.history.len(),
            report.history.iter().map(|s| s.steps).sum::<usize>(),
            samples as f64 / train_seconds.max(1e-9),
            threads,
            wall.as_secs_f64()
        );
    }
    if let Some(best) = report
        .history
        .iter()
        .max_by(|a, b| a.test_accuracy.total_cmp(&b.test_accuracy))
    {
        println!(
            "best test accuracy {:.2}% (epoch {})",
            100.0 * best.test_accuracy,
            best.epoch
        );
    }
    println!("final test accuracy {:.2}%", 100.0 * final_accuracy);
    if !report.history.is_empty() {
        let matrix = train::confusion_matrix(&model, test, 1000, 10, logits);
        let recalls: Vec<String> = matrix
            .per_class()
            .iter()
            .enumerate()
            .map(|(c, s)| format!("{c}: {:.1}%", 100.0 * s.recall))
            .collect();
        println!("test accuracy per class: {}", recalls.join("  "));
    }
    if let Some(mib) = peak_rss_mib() {
        println!("peak RSS {mib:.0} MiB");
    }
    if args.profile && !report.stopped {
        print_step_breakdown(&model, train, args.batch_size, adam, args.seed);
    }
    check_accuracy(final_accuracy, args.min_accuracy)
}

/// The settings that determine the training trajectory (stored in checkpoints, compared on
/// --resume).
fn run_settings(args: &Args, dataset: &str, threads: usize, train_len: usize) -> serde_json::Value {
    // f32 flags as their shortest decimal ("0.001"), as typed.
    let f = |x: f32| x.to_string();
    serde_json::json!({
        "dataset": dataset,
        "train_size": train_len,
        "val_split": args.val_split.map(f),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "optimizer": format!("{:?}", args.optimizer).to_lowercase(),
        "lr": f(args.lr),
        "weight_decay": args.weight_decay.map(f),
        "momentum": f(args.momentum),
        "schedule": format!("{:?}", args.schedule).to_lowercase(),
        "warmup": args.warmup,
        "lr_step_epochs": args.lr_step_epochs,
        "lr_gamma": f(args.lr_gamma),
        "threads": threads,
    })
}

/// The run's settings in one line (the plot's title).
fn plot_title(args: &Args, dataset: &str, threads: usize) -> String {
    let mut opt = format!("{:?} lr {}", args.optimizer, args.lr).to_lowercase();
    if let Some(wd) = args.weight_decay {
        opt += &format!(" wd {wd}");
    }
    if args.momentum != 0.0 {
        opt += &format!(" momentum {}", args.momentum);
    }
    let mut schedule = format!("{:?}", args.schedule).to_lowercase();
    if args.schedule == ScheduleKind::Step {
        schedule += &format!(" x{} every {} epochs", args.lr_gamma, args.lr_step_epochs);
    }
    if args.warmup > 0 {
        schedule += &format!(", warm-up {} steps", args.warmup);
    }
    format!(
        "{dataset} 784-128-64-10, {opt}, {schedule}, batch {}, {} epochs, seed {}, {threads} thread(s)",
        args.batch_size, args.epochs, args.seed
    )
}

fn check_accuracy(accuracy: f32, min_percent: Option<f32>) -> Result<(), String> {
    match min_percent {
        Some(min) if accuracy.is_nan() || 100.0 * accuracy < min => Err(format!(
            "test accuracy {:.2}% is below --min-accuracy {min}%",
            100.0 * accuracy
        )),
        _ => Ok(()),
    }
}

/// Times the parts of a training step on a copy of the model: assembling the batch, the
/// forward and backward pass (`loss_grad`), the Adam step, and for comparison the forward pass
/// alone (`loss`). Medians over 200 steps, robust to other processes on the machine.
fn print_step_breakdown(
    model: &Mlp,
    train: DataRef<'_>,
    batch_size: usize,
    adam: AdamConfig,
    seed: u64,
) {
    const WARMUP: usize = 20;
    const STEPS: usize = 200;
    // As in training (`train::fit` flushes subnormals to zero).
    let _ftz = symgrad::fpu::FlushDenormals::new();
    let mut model = model.clone();
    let mut opt = Adam::new(adam);
    let order = train::epoch_permutation(seed, 1000, train.len());
    let mut batch = Batch::with_capacity(batch_size, train.pixels());
    // Per step: [batch assembly, forward+backward, Adam step, forward alone], in seconds.
    let mut times: Vec<[f64; 4]> = Vec::with_capacity(STEPS);
    let batches = order.chunks_exact(batch_size).cycle().take(WARMUP + STEPS);
    for (i, indices) in batches.enumerate() {
        let t0 = Instant::now();
        batch.fill(train, indices);
        let t1 = Instant::now();
        let (_, grad) = loss_grad(&model, &batch.x, &batch.labels);
        let t2 = Instant::now();
        opt.step(&mut model, &grad);
        let t3 = Instant::now();
        std::hint::black_box(loss(&model, &batch.x, &batch.labels));
        let t4 = Instant::now();
        if i >= WARMUP {
            times.push([t1 - t0, t2 - t1, t3 - t2, t4 - t3].map(|d| d.as_secs_f64()));
        }
    }
    let median_ms = |part: usize| {
        let mut v: Vec<f64> = times.iter().map(|t| t[part]).collect();
        v.sort_by(f64::total_cmp);
        1e3 * v[v.len() / 2]
    };
    let [fill, grad, step, forward] = [0, 1, 2, 3].map(median_ms);
    let total = fill + grad + step;
    let pct = |ms: f64| 100.0 * ms / total;
    println!("one training step, batch {batch_size}, median of {STEPS} steps:");
    println!("  batch assembly    {fill:7.3} ms {:5.1}%", pct(fill));
    println!(
        "  forward+backward  {grad:7.3} ms {:5.1}%  (forward alone {forward:.3} ms)",
        pct(grad)
    );
    println!("  Adam step         {step:7.3} ms {:5.1}%", pct(step));
    println!(
        "  total             {total:7.3} ms  = {:.0} samples/s on one thread",
        1e3 * batch_size as f64 / total
    );
}

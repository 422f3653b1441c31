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
//! cargo run --release --example mnist -- --help               # all flags
//! ```
//!
//! Ctrl-C stops after the current step (and saves with `--save`); a second Ctrl-C exits at once.

mod common;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use clap::{Parser, ValueEnum};
use common::{Mlp, Progress, load_data, logits, loss, loss_grad, loss_grad_counted, peak_rss_mib};
use symgrad::checkpoint;
use symgrad::data::DatasetKind;
use symgrad::optim::{Adam, AdamConfig, Optimizer};
use symgrad::train::{self, Batch, DataRef, FnCallbacks, TrainConfig};
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
    println!(
        "{name}: {} training and {} test images of {}x{}",
        train.len(),
        test.len(),
        data.train.rows,
        data.train.cols
    );

    let mut model = Mlp::new(args.seed);
    if let Some(path) = &args.load {
        checkpoint::load(&mut model, path).map_err(|e| e.to_string())?;
        println!("loaded {}", path.display());
    }
    if args.eval_only {
        let accuracy = train::evaluate(&model, test, 1000, logits);
        println!("test accuracy {:.2}%", 100.0 * accuracy);
        return check_accuracy(accuracy, args.min_accuracy);
    }

    let adam = AdamConfig {
        lr: args.lr,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
    };
    let mut opt = Adam::new(adam);
    println!(
        "model 784-128-64-10 ({} parameters), Adam lr {}, batch {}, {} epoch(s), seed {}, \
         {} thread(s), GEMM kernel {:?}",
        model.num_params(),
        args.lr,
        args.batch_size,
        args.epochs,
        args.seed,
        threads,
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
        ..TrainConfig::default()
    };
    // After each epoch, save the model: a later failure (NaN loss) keeps this checkpoint.
    let mut saved_epoch = None;
    let mut save_error = None;
    let save_each_epoch = FnCallbacks(
        |_: &train::StepInfo| {},
        |stats: &train::EpochStats, model: &Mlp| {
            if let Some(path) = &args.save {
                match checkpoint::save(model, path) {
                    Ok(()) => saved_epoch = Some(stats.epoch),
                    Err(e) => {
                        save_error = Some(format!("after epoch {}: {e}", stats.epoch));
                        stop.store(true, Ordering::Relaxed);
                    }
                }
            }
        },
    );
    let progress = Progress::new();
    let mut callbacks = (progress, save_each_epoch);
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
    let (progress, _) = callbacks;
    progress.finish();
    if let Some(e) = save_error {
        // Not an interruption: the exit status is the error's.
        stop.store(false, Ordering::Relaxed);
        let kept = match saved_epoch {
            Some(epoch) => format!("the checkpoint of epoch {epoch} is the last one saved"),
            None => "no checkpoint was saved".into(),
        };
        return Err(format!(
            "saving the checkpoint failed {e}; training stopped ({kept})"
        ));
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
        checkpoint::save(&model, path).map_err(|e| e.to_string())?;
        println!("saved {}", path.display());
    }
    if let Some(path) = &args.plot {
        if report.history.is_empty() {
            println!("no epoch completed, no plot written");
        } else {
            let path = symgrad_runtime::plot::plot_history(&report.history, path)
                .map_err(|e| e.to_string())?;
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
    if let Some(mib) = peak_rss_mib() {
        println!("peak RSS {mib:.0} MiB");
    }
    if args.profile && !report.stopped {
        print_step_breakdown(&model, train, args.batch_size, adam, args.seed);
    }
    check_accuracy(final_accuracy, args.min_accuracy)
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

//! Fine-tunes the MNIST model of the `mnist` example on Fashion-MNIST: loads its checkpoint,
//! replaces the output layer by a new one, optionally freezes the first layers, trains on a
//! subset of Fashion-MNIST and compares with the same model trained from scratch for the same
//! number of steps.
//!
//! ```text
//! cargo run --release --example mnist -- --save mnist.safetensors
//! cargo run --release --example finetune -- --load mnist.safetensors --freeze 2
//! ```
//!
//! Fashion-MNIST is read from `--data`, `$FASHION_MNIST_DIR` or
//! `/usr/share/datasets/fashion-mnist` (Debian: `apt-get install dataset-fashion-mnist`).

#[allow(dead_code)] // this example uses only part of it
mod common;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use clap::Parser;
use common::{Mlp, Progress, load_data, logits, loss_grad, peak_rss_mib};
use symgrad::data::DatasetKind;
use symgrad::optim::{Adam, AdamConfig};
use symgrad::train::{self, DataRef, FitReport, TrainConfig};
use symgrad::{Params, Tensor, checkpoint};

#[derive(Parser)]
#[command(
    about = "Fine-tune the MNIST model on Fashion-MNIST and compare with training from scratch"
)]
struct Args {
    /// The MNIST checkpoint (written by `cargo run --release --example mnist -- --save PATH`).
    #[arg(long, value_name = "PATH", default_value = "mnist.safetensors")]
    load: PathBuf,
    /// Freeze the first N layers (0-2; the new output layer is always trained).
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    freeze: u8,
    /// Train on the first this many Fashion-MNIST training images (at least 1).
    #[arg(long, default_value_t = 10_000, value_parser = common::parse_positive)]
    train_size: usize,
    /// Passes over that subset (at least 1).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    epochs: u32,
    /// Samples per Adam step (at least 1).
    #[arg(long, default_value_t = 64, value_parser = common::parse_positive)]
    batch_size: usize,
    /// Adam learning rate (a finite number above 0).
    #[arg(long, default_value_t = 1e-3, value_parser = common::parse_lr, allow_negative_numbers = true)]
    lr: f32,
    /// Seed of the new output layer, the from-scratch model and the shuffles.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Threads: each batch is split into this many shards computed at once (data
    /// parallelism; default: the number of cores, also the most allowed without
    /// --force-threads). The GEMM inside each shard runs on one.
    #[arg(long, value_parser = common::parse_positive)]
    threads: Option<usize>,
    /// Directory with the Fashion-MNIST IDX files.
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Use --threads even if it exceeds the number of cores.
    #[arg(long)]
    force_threads: bool,
}

const LAYERS: [&str; 3] = ["layer1", "layer2", "layer3"];

/// An `Mlp` whose layers named in `frozen` are not trained: its `Params` visitors skip them, so
/// the optimizer never sees (or keeps state for) a frozen tensor. Gradients have the same type.
#[derive(Clone)]
struct PartlyFrozen {
    model: Mlp,
    frozen: &'static [&'static str],
}

/// Whether the tensor `name` (relative to `prefix`) lies in one of the `frozen` layers.
fn is_frozen(frozen: &[&str], prefix: &str, name: &str) -> bool {
    let name = name.strip_prefix(prefix).unwrap_or(name);
    let name = name.trim_start_matches('.');
    frozen
        .iter()
        .any(|layer| name.strip_prefix(layer).is_some_and(|r| r.starts_with('.')))
}

impl Params for PartlyFrozen {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &dyn Tensor)) {
        self.model.visit(prefix, &mut |name, t| {
            if !is_frozen(self.frozen, prefix, name) {
                f(name, t)
            }
        });
    }
    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut dyn Tensor)) {
        let frozen = self.frozen;
        self.model.visit_mut(prefix, &mut |name, t| {
            if !is_frozen(frozen, prefix, name) {
                f(name, t)
            }
        });
    }
    fn visit_with(
        &mut self,
        other: &Self,
        prefix: &str,
        f: &mut dyn FnMut(&str, &mut dyn Tensor, &dyn Tensor),
    ) {
        let frozen = self.frozen;
        self.model
            .visit_with(&other.model, prefix, &mut |name, p, g| {
                if !is_frozen(frozen, prefix, name) {
                    f(name, p, g)
                }
            });
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    // Ctrl-C / SIGTERM: the first stops training after the current step, a second exits.
    let stop = match common::install_stop_handler() {
        Ok(stop) => stop,
        Err(e) => return common::exit_code(Err(e), None),
    };
    let result = run(args, &stop);
    common::exit_code(result, Some(&stop))
}

fn run(args: Args, stop: &Arc<AtomicBool>) -> Result<(), String> {
    symgrad::parallel::set_threads(common::resolve_threads(args.threads, args.force_threads));
    if !args.load.exists() {
        return Err(format!(
            "checkpoint {0} not found; create it with\n  \
             cargo run --release --example mnist -- --save {0}",
            args.load.display()
        ));
    }
    let data = load_data(DatasetKind::Fashion, args.data.as_deref(), None)?;
    let pixels = data.train.rows * data.train.cols;
    let train = DataRef::new(&data.train.images, &data.train.labels, pixels).head(args.train_size);
    let test = DataRef::new(&data.test.images, &data.test.labels, pixels);

    // The MNIST layers 1 and 2 with a new, seeded output layer (`layer3` is not loaded).
    let mut pretrained = Mlp::new(args.seed);
    checkpoint::load_partial(&mut pretrained, &args.load, &["layer3"])
        .map_err(|e| e.to_string())?;
    let finetuned = PartlyFrozen {
        model: pretrained,
        frozen: &LAYERS[..usize::from(args.freeze)],
    };
    // The same architecture and output layer, every layer freshly initialised and trained.
    let scratch = PartlyFrozen {
        model: Mlp::new(args.seed),
        frozen: &[],
    };

    println!(
        "Fashion-MNIST: training on {} images for {} epoch(s), testing on {}",
        train.len(),
        args.epochs,
        test.len()
    );
    let frozen = match args.freeze {
        0 => "nothing frozen".to_string(),
        1 => "layer 1 frozen".to_string(),
        n => format!("layers 1-{n} frozen"),
    };
    let what = format!("fine-tuned from {} ({frozen})", args.load.display());
    let finetuned = train_model(&args, finetuned, train, test, &what, stop)?;
    if finetuned.stopped {
        return Err("interrupted during fine-tuning; no comparison".into());
    }
    let scratch = train_model(&args, scratch, train, test, "from scratch", stop)?;
    if scratch.stopped {
        return Err("interrupted during training from scratch; no comparison".into());
    }

    let accuracy = |r: &FitReport| r.history.last().map_or(f32::NAN, |s| s.test_accuracy);
    let (a, b) = (accuracy(&finetuned), accuracy(&scratch));
    println!("test accuracy after {} steps each:", finetuned.steps);
    println!(
        "  {:<30} {:6.2}%",
        format!("fine-tuned, {frozen}"),
        100.0 * a
    );
    println!("  {:<30} {:6.2}%", "from scratch", 100.0 * b);
    println!("  {:<30} {:+6.2} points", "difference", 100.0 * (a - b));
    if let Some(mib) = peak_rss_mib() {
        println!("peak RSS {mib:.0} MiB");
    }
    Ok(())
}

/// Trains `model` with Adam on `train` and reports the test accuracy per epoch.
fn train_model(
    args: &Args,
    mut model: PartlyFrozen,
    train: DataRef<'_>,
    test: DataRef<'_>,
    what: &str,
    stop: &Arc<AtomicBool>,
) -> Result<FitReport, String> {
    let total = model.model.num_params();
    println!(
        "{what}: training {} of {total} parameters",
        model.num_params()
    );
    let mut opt = Adam::new(AdamConfig {
        lr: args.lr,
        ..AdamConfig::default()
    });
    let cfg = TrainConfig {
        epochs: args.epochs as usize,
        batch_size: args.batch_size,
        seed: args.seed,
        stop: Some(Arc::clone(stop)),
        threads: symgrad::parallel::threads(),
        ..TrainConfig::default()
    };
    let mut progress = Progress::new();
    let report = train::fit(
        &mut model,
        &mut opt,
        train,
        test,
        &cfg,
        |m: &PartlyFrozen, x, labels| {
            let (loss, grad) = loss_grad(&m.model, x, labels);
            let grad = PartlyFrozen {
                model: grad,
                frozen: m.frozen,
            };
            (loss, grad)
        },
        |m: &PartlyFrozen, x| logits(&m.model, x),
        &mut progress,
    );
    progress.finish();
    report.map_err(|e| e.to_string())
}

//! What the `mnist` and `finetune` examples share: the model, data loading and progress output.

pub mod extras;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use symgrad::data::{self, DatasetKind, Mnist};
use symgrad::prelude::*;
use symgrad::train::{Callbacks, EpochStats, ProgressBarCallbacks, StepInfo};

// ---------------------------------------------------------------------------------------------
// The model: a 784-128-64-10 perceptron. The gradient of `loss` is written by the macro.
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Params)]
pub struct Mlp {
    pub layer1: Linear,
    pub layer2: Linear,
    pub layer3: Linear,
}

/// Mean cross-entropy of the batch `x` (one image per row). `#[differentiable]` also generates
/// `loss_grad(&model, &x, &labels) -> (f32, Mlp)`: the loss and its gradient, an `Mlp` too.
#[differentiable(wrt(model))]
pub fn loss(model: &Mlp, x: &DMatrix<f32>, labels: &[u8]) -> f32 {
    // `forward_relu` = `relu(&forward(..))` with the bias and the ReLU fused into one pass
    // (and, in the gradient, the ReLU mask and the bias gradient into one pass).
    let h1 = model.layer1.forward_relu(x);
    let h2 = model.layer2.forward_relu(&h1);
    let logits = model.layer3.forward(&h2);
    cross_entropy(&logits, labels)
}

/// The class scores (`batch x 10`) for evaluation; the same forward pass without the loss.
/// `#[differentiable]` also generates `logits_pullback`, used by [`loss_grad_counted`].
#[differentiable(wrt(model))]
pub fn logits(model: &Mlp, x: &DMatrix<f32>) -> DMatrix<f32> {
    let h1 = model.layer1.forward_relu(x);
    let h2 = model.layer2.forward_relu(&h1);
    model.layer3.forward(&h2)
}

/// [`loss`] and its gradient (the same arithmetic as `loss_grad`), plus the number of samples
/// of the batch the model classifies correctly, read off the logits of the same forward pass:
/// `train::fit` then reports the training accuracy of the epoch's batches instead of running
/// the model over the whole training set again.
pub fn loss_grad_counted(model: &Mlp, x: &DMatrix<f32>, labels: &[u8]) -> (f32, Mlp, usize) {
    let (z, logits_back) = logits_pullback(model, x);
    let correct = symgrad::metrics::count_correct(&z, labels);
    let (loss, loss_back) = cross_entropy_pullback(&z, labels);
    let (dz, ()) = loss_back(&z, labels, 1.0, [true, false]);
    let (grad, ()) = logits_back(model, x, dz, [true, false]);
    (loss, grad, correct)
}

/// The default thread count of the examples: the cores this process may use.
pub fn default_threads() -> usize {
    symgrad::parallel::max_threads()
}

/// The thread count to use for `--threads requested`: the default if not given; more threads
/// than cores are clamped to the cores with a warning (each pool round wakes every worker, so
/// oversubscription makes training crawl) unless `force` (`--force-threads`).
pub fn resolve_threads(requested: Option<usize>, force: bool) -> usize {
    let cores = default_threads();
    match requested {
        None => cores,
        Some(n) if n > cores && !force => {
            eprintln!(
                "warning: --threads {n} is more than the {cores} core(s) available; using \
                 {cores} (pass --force-threads to use {n} anyway)"
            );
            cores
        }
        Some(n) => {
            if n > cores {
                // The pool caps its busy threads at the cores unless told otherwise.
                symgrad::parallel::set_max_threads(n);
            }
            n
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Flag value parsers: out-of-range numbers are rejected by clap with the flag's name.
// ---------------------------------------------------------------------------------------------

/// A learning rate: a finite number above 0.
pub fn parse_lr(s: &str) -> Result<f32, String> {
    let v: f32 = s
        .parse()
        .map_err(|e| format!("`{s}` is not a number: {e}"))?;
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(format!("`{s}` must be a finite number above 0"))
    }
}

/// A percentage: a finite number from 0 to 100.
pub fn parse_percent(s: &str) -> Result<f32, String> {
    let v: f32 = s
        .parse()
        .map_err(|e| format!("`{s}` is not a number: {e}"))?;
    if v.is_finite() && (0.0..=100.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("`{s}` must be a number from 0 to 100"))
    }
}

/// A whole number of at least 1 (batch sizes, thread counts, subset sizes).
pub fn parse_positive(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(v) => Ok(v),
        Err(e) => Err(format!("`{s}` is not a whole number: {e}")),
    }
}

// ---------------------------------------------------------------------------------------------
// Ctrl-C and SIGTERM.
// ---------------------------------------------------------------------------------------------

/// Installs the Ctrl-C / SIGTERM handler (before any download or training starts) and returns
/// its flag: the first signal sets it (a download in progress is abandoned and its partial
/// file removed; training stops after the current step), a second one removes the temporary
/// files being written (a checkpoint being saved) and exits at once with status 130.
pub fn install_stop_handler() -> Result<Arc<AtomicBool>, String> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::Relaxed) {
            symgrad::tempfiles::remove_in_progress();
            std::process::exit(130);
        }
        eprintln!("\nstopping (Ctrl-C again to quit now)");
    })
    .map_err(|e| format!("installing the Ctrl-C handler: {e}"))?;
    Ok(stop)
}

/// The exit status of a run: 130 if it was interrupted by a signal (after printing the error
/// if there is one), 1 on error, 0 otherwise.
pub fn exit_code(result: Result<(), String>, stop: Option<&AtomicBool>) -> ExitCode {
    let interrupted = stop.is_some_and(|s| s.load(Ordering::Relaxed));
    if let Err(e) = &result {
        eprintln!("error: {e}");
    }
    if interrupted {
        eprintln!("interrupted");
        ExitCode::from(130)
    } else if result.is_err() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

impl Mlp {
    /// A freshly initialised model (PyTorch's `nn.Linear` initialisation), seeded.
    pub fn new(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Mlp {
            layer1: Linear::new(784, 128, &mut rng),
            layer2: Linear::new(128, 64, &mut rng),
            layer3: Linear::new(64, 10, &mut rng),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Data, progress output, memory.
// ---------------------------------------------------------------------------------------------

/// The image size the model takes: 28x28.
pub const IMAGE_SIZE: (usize, usize) = (28, 28);

/// Loads MNIST or Fashion-MNIST from `--data`, else `$MNIST_DIR` / `$FASHION_MNIST_DIR`, else
/// `./data/mnist` / `/usr/share/datasets/fashion-mnist`, checking that the images are 28x28.
/// Missing MNIST files are downloaded (checked by SHA-256; abandoned when `stop` is set);
/// missing Fashion-MNIST files are reported with how to get them.
pub fn load_data(
    kind: DatasetKind,
    explicit: Option<&Path>,
    stop: Option<Arc<AtomicBool>>,
) -> Result<Mnist, String> {
    let dir = data::find_data_dir(explicit, kind);
    match data::load_dir_with(&dir, kind, Some(IMAGE_SIZE)) {
        Err(data::DataError::Missing { .. }) if kind == DatasetKind::Mnist => {
            eprintln!("MNIST not found in {}; downloading it", dir.display());
            let options = data::DownloadOptions {
                stop,
                ..data::DownloadOptions::default()
            };
            data::ensure_files_with(&dir, &data::MNIST_FILES, &data::DEFAULT_MIRRORS, &options)
                .map_err(|e| e.to_string())?;
            data::load_dir_with(&dir, kind, Some(IMAGE_SIZE)).map_err(|e| e.to_string())
        }
        Err(e @ data::DataError::Missing { .. }) => Err(format!(
            "{e}\n(Fashion-MNIST: `apt-get install dataset-fashion-mnist` installs it in {}, \
             or download it from https://github.com/zalandoresearch/fashion-mnist)",
            DatasetKind::Fashion.default_dir().display()
        )),
        result => result.map_err(|e| e.to_string()),
    }
}

/// Progress output for `train::fit`: an indicatif bar per epoch (running loss, samples/s; on
/// stderr, hidden when it is not a terminal) and one line per epoch on stdout.
pub struct Progress {
    bar: ProgressBarCallbacks,
}

impl Progress {
    pub fn new() -> Self {
        Progress {
            bar: ProgressBarCallbacks::stderr(),
        }
    }

    /// Prints `line` on stdout without garbling the bar.
    pub fn println(&self, line: impl std::fmt::Display) {
        self.bar.bar.suspend(|| println!("{line}"));
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.bar.finish_and_clear();
    }
}

impl<M> Callbacks<M> for Progress {
    fn on_step(&mut self, info: &StepInfo) {
        Callbacks::<M>::on_step(&mut self.bar, info);
    }
    fn on_epoch(&mut self, stats: &EpochStats, _model: &M) {
        self.println(stats);
    }
}

/// The peak resident set size in MiB (`VmHWM` of `/proc/self/status`; Linux only).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

//! What the `mnist` and `finetune` examples share: the model, data loading and progress output.

pub mod extras;

use std::path::Path;

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
    let h1 = relu(&model.layer1.forward(x));
    let h2 = relu(&model.layer2.forward(&h1));
    let logits = model.layer3.forward(&h2);
    cross_entropy(&logits, labels)
}

/// The class scores (`batch x 10`) for evaluation; the same forward pass without the loss.
pub fn logits(model: &Mlp, x: &DMatrix<f32>) -> DMatrix<f32> {
    let h1 = relu(&model.layer1.forward(x));
    let h2 = relu(&model.layer2.forward(&h1));
    model.layer3.forward(&h2)
}

/// The default thread count of the examples: the cores this process may use.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
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

/// Loads MNIST or Fashion-MNIST from `--data`, else `$MNIST_DIR` / `$FASHION_MNIST_DIR`, else
/// `./data/mnist` / `/usr/share/datasets/fashion-mnist`. Missing MNIST files are downloaded
/// (checked by SHA-256); missing Fashion-MNIST files are reported with how to get them.
pub fn load_data(kind: DatasetKind, explicit: Option<&Path>) -> Result<Mnist, String> {
    let dir = data::find_data_dir(explicit, kind);
    match data::load_dir(&dir) {
        Err(data::DataError::Missing { .. }) if kind == DatasetKind::Mnist => {
            eprintln!("MNIST not found in {}; downloading it", dir.display());
            data::ensure_mnist(&dir, &data::DEFAULT_MIRRORS, true).map_err(|e| e.to_string())?;
            data::load_dir(&dir).map_err(|e| e.to_string())
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

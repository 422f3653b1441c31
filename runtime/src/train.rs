//! Reusable pieces of a supervised training loop for `u8` image data with `u8` labels:
//! a seeded epoch shuffler, a minibatch assembler that reuses its buffers, evaluation in
//! large batches, and a generic [`fit`] loop with per-step and per-epoch callbacks,
//! non-finite loss detection and a stop flag.
//!
//! Batches are `batch x pixels` [`DMatrix<f32>`]s with one sample per row and pixel values
//! scaled to `[0, 1]` (`byte / 255`). Models see the batch through two closures:
//! `loss_grad(model, x, labels) -> (mean loss, gradient)` (the gradient has the model's type)
//! and `predict(model, x) -> logits` (`batch x classes`).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use nalgebra::DMatrix;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::metrics::{RunningMean, count_correct, cross_entropy_sum};
use crate::optim::Optimizer;
use crate::params::{Params, Tensor};

/// A borrowed view of a labelled `u8` image data set: `images` holds `len() * pixels` bytes,
/// image after image (each image row-major), and `labels` one byte per image.
///
/// Build it from a loaded data set without copying, e.g.
/// `DataRef::new(&ds.images, &ds.labels, ds.rows * ds.cols)`.
#[derive(Debug, Clone, Copy)]
pub struct DataRef<'a> {
    images: &'a [u8],
    labels: &'a [u8],
    pixels: usize,
}

impl<'a> DataRef<'a> {
    /// A view of `labels.len()` images of `pixels_per_image` bytes each.
    ///
    /// # Panics
    /// If `images.len() != labels.len() * pixels_per_image` or `pixels_per_image == 0`.
    pub fn new(images: &'a [u8], labels: &'a [u8], pixels_per_image: usize) -> Self {
        assert!(pixels_per_image > 0, "DataRef: pixels_per_image is 0");
        assert_eq!(
            images.len(),
            labels.len() * pixels_per_image,
            "DataRef: {} image bytes for {} labels of {pixels_per_image} pixels each",
            images.len(),
            labels.len()
        );
        Self {
            images,
            labels,
            pixels: pixels_per_image,
        }
    }
    /// The number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// Pixels per image (the number of columns of a batch).
    pub fn pixels(&self) -> usize {
        self.pixels
    }
    /// The bytes of image `i`.
    pub fn image(&self, i: usize) -> &'a [u8] {
        &self.images[i * self.pixels..(i + 1) * self.pixels]
    }
    /// The label of sample `i`.
    pub fn label(&self, i: usize) -> u8 {
        self.labels[i]
    }
    /// All image bytes.
    pub fn images(&self) -> &'a [u8] {
        self.images
    }
    /// All labels.
    pub fn labels(&self) -> &'a [u8] {
        self.labels
    }
    /// The first `n` samples (all of them if `n >= len()`).
    pub fn head(&self, n: usize) -> DataRef<'a> {
        let n = n.min(self.len());
        Self {
            images: &self.images[..n * self.pixels],
            labels: &self.labels[..n],
            pixels: self.pixels,
        }
    }
}

/// The sample order of epoch `epoch` (0-based): a permutation of `0..n` drawn with
/// [`ChaCha8Rng`] seeded from `seed`, on stream `epoch`. The same `(seed, epoch, n)` always
/// gives the same order (on every platform); different seeds or epochs give different orders.
pub fn epoch_permutation(seed: u64, epoch: u64, n: usize) -> Vec<usize> {
    let mut order = Vec::with_capacity(n);
    shuffle_epoch(seed, epoch, n, &mut order);
    order
}

/// [`epoch_permutation`] into a reused buffer.
pub fn shuffle_epoch(seed: u64, epoch: u64, n: usize, order: &mut Vec<usize>) {
    order.clear();
    order.extend(0..n);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(epoch);
    order.shuffle(&mut rng);
}

/// Resizes `x` to `rows x cols` keeping its allocation where possible (no allocation when the
/// new size fits the old capacity, e.g. the last partial batch and the next full one).
fn resize_reusing(x: &mut DMatrix<f32>, rows: usize, cols: usize) {
    if x.shape() == (rows, cols) {
        return;
    }
    let old = std::mem::replace(x, DMatrix::zeros(0, 0));
    let mut storage: Vec<f32> = old.data.into();
    storage.resize(rows * cols, 0.0);
    *x = DMatrix::from_vec(rows, cols, storage);
}

/// Fills `x` (resized to `indices.len() x pixels`, one sample per row, `byte / 255`) and
/// `labels` with the samples `indices` of `data`. Buffers are reused: after the first call
/// nothing is allocated unless a batch is larger than every earlier one.
///
/// # Panics
/// If an index is out of range.
pub fn fill_batch(
    data: DataRef<'_>,
    indices: &[usize],
    x: &mut DMatrix<f32>,
    labels: &mut Vec<u8>,
) {
    let (n, p) = (indices.len(), data.pixels);
    resize_reusing(x, n, p);
    labels.clear();
    labels.extend(indices.iter().map(|&i| data.labels[i]));
    write_pixels(x.as_mut_slice(), n, indices.iter().map(|&i| data.image(i)));
}

/// Writes image `r` of `images` into row `r` of the column-major `n`-row matrix `out`,
/// scaled to `[0, 1]`.
///
/// Column-major storage puts element `(r, c)` at `c * n + r`, so one image is a strided row.
/// Writing it pixel by pixel touches a new cache line per pixel (about 117 µs for a 64-image
/// MNIST batch). Instead the images are taken [`ROWS_PER_BLOCK`] at a time and the block is
/// transposed: each column segment is written as one contiguous run of `ROWS_PER_BLOCK`
/// floats, read from as many sequential streams of bytes (with AVX2: 8x8 tiles converted and
/// transposed in registers).
fn write_pixels<'a>(out: &mut [f32], n: usize, images: impl Iterator<Item = &'a [u8]>) {
    let mut images = images.peekable();
    let Some(p) = images.peek().map(|img| img.len()) else {
        return;
    };
    assert_eq!(out.len(), n * p, "fill_batch: output of the wrong size");
    let simd = crate::gemm::avx2_fma_available();
    let mut block: [&[u8]; ROWS_PER_BLOCK] = [&[]; ROWS_PER_BLOCK];
    let mut r0 = 0;
    loop {
        let mut rows = 0;
        for slot in block.iter_mut() {
            match images.next() {
                Some(img) => {
                    assert_eq!(img.len(), p, "fill_batch: images of different sizes");
                    *slot = img;
                    rows += 1;
                }
                None => break,
            }
        }
        assert!(r0 + rows <= n, "fill_batch: more images than rows");
        if rows == ROWS_PER_BLOCK {
            #[cfg(target_arch = "x86_64")]
            if simd {
                // SAFETY: AVX2 is available (checked above); `out` holds `n * p` floats, the
                // block's rows `r0..r0 + 8` are below `n` and its 8 images hold `p` bytes each
                // (both asserted above).
                unsafe { write_block_avx2(out, n, r0, p, &block) };
                r0 += rows;
                continue;
            }
            let _ = simd;
            write_block(out, n, r0, p, &block);
        } else {
            // The last, partial block.
            for (dr, img) in block[..rows].iter().enumerate() {
                for (c, &b) in img.iter().enumerate() {
                    out[c * n + r0 + dr] = PIXEL[usize::from(b)];
                }
            }
        }
        r0 += rows;
        if rows < ROWS_PER_BLOCK {
            break;
        }
    }
}

/// Images per block of [`write_pixels`].
const ROWS_PER_BLOCK: usize = 8;

/// Rows `r0..r0 + 8` of `out` (column-major, `n` rows, `p` columns) from the 8 images of
/// `block` (each `p` bytes): column by column, 8 contiguous floats each.
fn write_block(out: &mut [f32], n: usize, r0: usize, p: usize, block: &[&[u8]; ROWS_PER_BLOCK]) {
    let imgs: [&[u8]; ROWS_PER_BLOCK] = std::array::from_fn(|i| &block[i][..p]);
    for (c, col) in out.chunks_exact_mut(n).take(p).enumerate() {
        for (d, img) in col[r0..r0 + ROWS_PER_BLOCK].iter_mut().zip(&imgs) {
            *d = PIXEL[usize::from(img[c])];
        }
    }
}

/// [`write_block`] with AVX2: 8 pixels of each of the 8 images are widened to `f32`, divided
/// by 255 (the same correctly rounded division as [`PIXEL`]), transposed in registers and
/// stored as 8 columns of 8 contiguous floats.
///
/// # Safety
/// The CPU must support AVX2; `out.len() >= n * p`, `r0 + 8 <= n`, and every image of `block`
/// holds at least `p` bytes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn write_block_avx2(
    out: &mut [f32],
    n: usize,
    r0: usize,
    p: usize,
    block: &[&[u8]; ROWS_PER_BLOCK],
) {
    use core::arch::x86_64::*;
    let dst = out.as_mut_ptr();
    let scale = _mm256_set1_ps(255.0);
    let mut c = 0;
    while c + 8 <= p {
        // SAFETY: bytes `c..c + 8` of each image exist (`c + 8 <= p`, images hold `p` bytes);
        // the stores write `out[(c + j) * n + r0 ..][..8]`, inside `out` because
        // `(c + j) * n + r0 + 8 <= (p - 1) * n + n = p * n`. Unaligned loads and stores.
        unsafe {
            let row = |i: usize| {
                let bytes = _mm_loadl_epi64(block[i].as_ptr().add(c).cast::<__m128i>());
                _mm256_div_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes)), scale)
            };
            // Row i holds pixels c..c + 8 of image i; transpose so vector j holds pixel c + j
            // of images 0..8.
            let (a0, a1, a2, a3) = (row(0), row(1), row(2), row(3));
            let (a4, a5, a6, a7) = (row(4), row(5), row(6), row(7));
            let (t0, t1) = (_mm256_unpacklo_ps(a0, a1), _mm256_unpackhi_ps(a0, a1));
            let (t2, t3) = (_mm256_unpacklo_ps(a2, a3), _mm256_unpackhi_ps(a2, a3));
            let (t4, t5) = (_mm256_unpacklo_ps(a4, a5), _mm256_unpackhi_ps(a4, a5));
            let (t6, t7) = (_mm256_unpacklo_ps(a6, a7), _mm256_unpackhi_ps(a6, a7));
            let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
            let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
            let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
            let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
            let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
            let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
            let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
            let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
            let cols = [
                _mm256_permute2f128_ps::<0x20>(u0, u4),
                _mm256_permute2f128_ps::<0x20>(u1, u5),
                _mm256_permute2f128_ps::<0x20>(u2, u6),
                _mm256_permute2f128_ps::<0x20>(u3, u7),
                _mm256_permute2f128_ps::<0x31>(u0, u4),
                _mm256_permute2f128_ps::<0x31>(u1, u5),
                _mm256_permute2f128_ps::<0x31>(u2, u6),
                _mm256_permute2f128_ps::<0x31>(u3, u7),
            ];
            for (j, v) in cols.into_iter().enumerate() {
                _mm256_storeu_ps(dst.add((c + j) * n + r0), v);
            }
        }
        c += 8;
    }
    // The last `p % 8` pixels.
    for c in c..p {
        for (i, img) in block.iter().enumerate() {
            out[c * n + r0 + i] = PIXEL[usize::from(img[c])];
        }
    }
}

/// `b / 255` for every byte `b`, computed exactly as the division would (a table lookup
/// instead of a division per pixel).
const PIXEL: [f32; 256] = {
    let mut t = [0.0f32; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = b as f32 / 255.0;
        b += 1;
    }
    t
};

/// Like [`fill_batch`] for the contiguous samples `start..end` (evaluation order).
///
/// # Panics
/// If `start > end` or `end > data.len()`.
pub fn fill_batch_range(
    data: DataRef<'_>,
    start: usize,
    end: usize,
    x: &mut DMatrix<f32>,
    labels: &mut Vec<u8>,
) {
    assert!(
        start <= end && end <= data.len(),
        "fill_batch_range: bad range {start}..{end} of {}",
        data.len()
    );
    let (n, p) = (end - start, data.pixels);
    resize_reusing(x, n, p);
    labels.clear();
    labels.extend_from_slice(&data.labels[start..end]);
    let images = &data.images[start * p..end * p];
    write_pixels(x.as_mut_slice(), n, images.chunks_exact(p));
}

/// A reusable minibatch: inputs `x` (`batch x pixels`, one sample per row, in `[0, 1]`) and
/// the matching labels.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Inputs, one sample per row.
    pub x: DMatrix<f32>,
    /// Labels, one per row of `x`.
    pub labels: Vec<u8>,
}

impl Default for Batch {
    fn default() -> Self {
        Self::new()
    }
}

impl Batch {
    /// An empty batch; buffers grow on the first fill.
    pub fn new() -> Self {
        Self {
            x: DMatrix::zeros(0, 0),
            labels: Vec::new(),
        }
    }
    /// A batch with room for `batch_size` samples of `pixels` pixels.
    pub fn with_capacity(batch_size: usize, pixels: usize) -> Self {
        Self {
            x: DMatrix::zeros(batch_size, pixels),
            labels: Vec::with_capacity(batch_size),
        }
    }
    /// Refills the batch with the samples `indices` of `data` (see [`fill_batch`]).
    pub fn fill(&mut self, data: DataRef<'_>, indices: &[usize]) {
        fill_batch(data, indices, &mut self.x, &mut self.labels);
    }
    /// Refills the batch with the samples `start..end` of `data` (see [`fill_batch_range`]).
    pub fn fill_range(&mut self, data: DataRef<'_>, start: usize, end: usize) {
        fill_batch_range(data, start, end, &mut self.x, &mut self.labels);
    }
    /// The number of samples in the batch.
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// The accuracy in `[0, 1]` of `predict` on `data`, evaluated in order in batches of
/// `batch_size` (e.g. 1000); `NaN` for an empty data set.
///
/// # Panics
/// If `batch_size == 0` or `predict` returns a number of rows other than the batch size.
pub fn evaluate<M: ?Sized>(
    model: &M,
    data: DataRef<'_>,
    batch_size: usize,
    predict: impl Fn(&M, &DMatrix<f32>) -> DMatrix<f32>,
) -> f32 {
    evaluate_serial(model, data, batch_size, &predict, &mut Batch::new(), false).accuracy
}

/// Accuracy and mean cross-entropy loss of a classifier on a data set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    /// Fraction of samples classified correctly, in `[0, 1]` (`NaN` for no samples).
    pub accuracy: f32,
    /// Mean softmax cross-entropy of the logits against the labels (`NaN` for no samples).
    pub loss: f32,
    /// Samples classified correctly.
    pub correct: usize,
    /// Samples evaluated.
    pub samples: usize,
}

impl Evaluation {
    fn from_sums(correct: usize, loss_sum: f64, samples: usize) -> Self {
        Self {
            accuracy: (correct as f64 / samples as f64) as f32,
            loss: (loss_sum / samples as f64) as f32,
            correct,
            samples,
        }
    }
}

/// The accuracy and the mean cross-entropy loss (softmax of the logits) of `predict` on `data`,
/// evaluated in order in batches of `batch_size`.
///
/// # Panics
/// As [`evaluate`].
pub fn evaluate_metrics<M: ?Sized>(
    model: &M,
    data: DataRef<'_>,
    batch_size: usize,
    predict: impl Fn(&M, &DMatrix<f32>) -> DMatrix<f32>,
) -> Evaluation {
    evaluate_serial(model, data, batch_size, &predict, &mut Batch::new(), true)
}

/// The confusion matrix of `predict` on `data` over `classes` classes (see
/// [`crate::metrics::ConfusionMatrix`]).
///
/// # Panics
/// As [`evaluate`], or if a label or prediction is not below `classes`.
pub fn confusion_matrix<M: ?Sized>(
    model: &M,
    data: DataRef<'_>,
    batch_size: usize,
    classes: usize,
    predict: impl Fn(&M, &DMatrix<f32>) -> DMatrix<f32>,
) -> crate::metrics::ConfusionMatrix {
    assert!(batch_size > 0, "confusion_matrix: batch_size is 0");
    let mut matrix = crate::metrics::ConfusionMatrix::new(classes);
    let mut batch = Batch::new();
    let mut start = 0;
    while start < data.len() {
        let end = (start + batch_size).min(data.len());
        batch.fill_range(data, start, end);
        matrix.add(&predict(model, &batch.x), &batch.labels);
        start = end;
    }
    matrix
}

/// The number of correct predictions of `predict` on samples `start..end` of `data`, and
/// their summed cross-entropy if `with_loss` (else 0).
fn batch_sums<M: ?Sized>(
    model: &M,
    data: DataRef<'_>,
    (start, end): (usize, usize),
    predict: &impl Fn(&M, &DMatrix<f32>) -> DMatrix<f32>,
    batch: &mut Batch,
    with_loss: bool,
) -> (usize, f64) {
    batch.fill_range(data, start, end);
    let logits = predict(model, &batch.x);
    assert_eq!(
        logits.nrows(),
        batch.len(),
        "evaluate: predict returned {} rows for a batch of {} samples (one sample per row)",
        logits.nrows(),
        batch.len()
    );
    let loss = if with_loss {
        cross_entropy_sum(&logits, &batch.labels)
    } else {
        0.0
    };
    (count_correct(&logits, &batch.labels), loss)
}

/// [`batch_sums`] over all of `data` in order, in batches of `batch_size`, as an [`Evaluation`]
/// (`loss` is 0 unless `with_loss`).
fn evaluate_serial<M: ?Sized>(
    model: &M,
    data: DataRef<'_>,
    batch_size: usize,
    predict: &impl Fn(&M, &DMatrix<f32>) -> DMatrix<f32>,
    batch: &mut Batch,
    with_loss: bool,
) -> Evaluation {
    assert!(batch_size > 0, "evaluate: batch_size is 0");
    let (mut correct, mut loss) = (0usize, 0.0f64);
    let mut start = 0;
    while start < data.len() {
        let end = (start + batch_size).min(data.len());
        let (c, l) = batch_sums(model, data, (start, end), predict, batch, with_loss);
        correct += c;
        loss += l;
        start = end;
    }
    Evaluation::from_sums(correct, loss, data.len())
}

/// What the `loss_grad` closure of [`fit`] returns: `(loss, gradient)`, or
/// `(loss, gradient, correct)` where `correct` is how many samples of the batch the model
/// classified correctly in the same forward pass (e.g. [`crate::metrics::count_correct`] on
/// the logits). With the count, [`EpochStats::train_accuracy`] is the running accuracy over the
/// epoch's training batches, as PyTorch scripts report it, and the extra pass over the training
/// set after each epoch is skipped.
pub trait LossGradOutput<M> {
    /// `(loss, gradient, correct count if reported)`.
    fn into_parts(self) -> (f32, M, Option<usize>);
}

impl<M> LossGradOutput<M> for (f32, M) {
    fn into_parts(self) -> (f32, M, Option<usize>) {
        (self.0, self.1, None)
    }
}

impl<M> LossGradOutput<M> for (f32, M, usize) {
    fn into_parts(self) -> (f32, M, Option<usize>) {
        (self.0, self.1, Some(self.2))
    }
}

/// Settings of [`fit`].
#[derive(Debug, Clone)]
pub struct TrainConfig {
    /// Number of passes over the training set. Default `10`.
    pub epochs: usize,
    /// Samples per optimizer step; the last batch of an epoch may be smaller. Default `64`.
    pub batch_size: usize,
    /// Seed of the epoch shuffles ([`epoch_permutation`]). Default `0`.
    pub seed: u64,
    /// Batch size of the accuracy evaluations. Default `1000`.
    pub eval_batch_size: usize,
    /// Evaluate the training accuracy on only the first this many training samples (saves
    /// time on large sets); `None` = the whole training set. Default `None`.
    pub train_eval_samples: Option<usize>,
    /// Also stop when a gradient has a NaN or infinite element (costs one pass over the
    /// gradient per step). Default `true`.
    pub check_gradients: bool,
    /// Set to `true` (e.g. from a Ctrl-C handler) to stop after the current step; [`fit`]
    /// then returns `Ok` with [`FitReport::stopped`] set. Default `None`.
    pub stop: Option<Arc<AtomicBool>>,
    /// Data parallelism: each batch is split into this many contiguous shards whose losses and
    /// gradients are computed at the same time on the runtime's worker threads
    /// ([`crate::parallel`]) and averaged, weighted by shard size (the same gradient as the
    /// whole batch, up to rounding; deterministic for a given value). Evaluation is split the
    /// same way. Capped at [`crate::parallel::max_threads`] (the cores this process may use):
    /// more shards than cores only add work (8 shards on 2 cores trained at a third of the
    /// speed of 2), so results are deterministic for a given `min(threads, max_threads())`;
    /// `SYMGRAD_MAX_THREADS` (or [`crate::parallel::set_max_threads`]) raises the cap, e.g. to
    /// reproduce a run made on a machine with more cores. Default `1`.
    pub threads: usize,
    /// Where training starts: after `epochs_done` epochs and `steps_done` steps, e.g. from a
    /// checkpoint ([`crate::checkpoint::TrainState`]). Epoch `epochs_done + 1` skips its first
    /// `steps_into_epoch` batches, so with the model and optimizer state restored, training
    /// continues bit for bit as if it had never stopped (the resumed epoch's
    /// [`EpochStats::train_loss`] averages only the steps after the restart). [`TrainConfig::epochs`]
    /// stays the total. Default: the start.
    pub resume: ResumePoint,
}

/// A position in training: what [`fit`] has done. See [`TrainConfig::resume`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResumePoint {
    /// Epochs completed.
    pub epochs_done: usize,
    /// Optimizer steps taken in total.
    pub steps_done: u64,
    /// Steps taken in the epoch after the completed ones (0 at an epoch boundary).
    pub steps_into_epoch: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 10,
            batch_size: 64,
            seed: 0,
            eval_batch_size: 1000,
            train_eval_samples: None,
            check_gradients: true,
            stop: None,
            threads: 1,
            resume: ResumePoint::default(),
        }
    }
}

/// Progress after one optimizer step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepInfo {
    /// The epoch, 1-based.
    pub epoch: usize,
    /// The step within the epoch, 1-based.
    pub step_in_epoch: usize,
    /// Steps per epoch (`ceil(train.len() / batch_size)`).
    pub steps_per_epoch: usize,
    /// The step since the start of [`fit`], 1-based.
    pub step: u64,
    /// This batch's loss.
    pub loss: f32,
    /// The per-sample mean loss of the epoch so far.
    pub running_loss: f32,
    /// Training throughput of the epoch so far.
    pub samples_per_sec: f64,
}

/// What [`Callbacks::before_step`] is told about the step about to be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepStart {
    /// The epoch, 1-based.
    pub epoch: usize,
    /// The step within the epoch, 1-based.
    pub step_in_epoch: usize,
    /// Steps per epoch.
    pub steps_per_epoch: usize,
    /// The step since the start of training (resumed runs included), 1-based.
    pub step: u64,
}

/// The results of one epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochStats {
    /// The epoch, 1-based.
    pub epoch: usize,
    /// The per-sample mean of the batch losses during the epoch.
    pub train_loss: f32,
    /// Accuracy on the training set: when `loss_grad` reports correct counts
    /// ([`LossGradOutput`]), the running accuracy over the epoch's training batches (each
    /// batch judged by the model before its step, as PyTorch scripts report it); otherwise
    /// measured after the epoch on the training set (or its first
    /// [`TrainConfig::train_eval_samples`]).
    pub train_accuracy: f32,
    /// Accuracy on the test set after the epoch (`NaN` if the test set is empty).
    pub test_accuracy: f32,
    /// Mean cross-entropy loss on the test set after the epoch (`NaN` if it is empty).
    pub test_loss: f32,
    /// Accuracy on a validation set, if a callback measured one ([`Callbacks::on_evaluate`]).
    pub val_accuracy: Option<f32>,
    /// Mean loss on a validation set, if a callback measured one.
    pub val_loss: Option<f32>,
    /// The learning rate of the epoch's last step.
    pub lr: f32,
    /// Optimizer steps since the start of training (resumed runs included) at the end of the
    /// epoch.
    pub total_steps: u64,
    /// Seconds spent training (without evaluation).
    pub seconds: f64,
    /// Seconds spent evaluating the two accuracies.
    pub eval_seconds: f64,
    /// Training samples per second.
    pub samples_per_sec: f64,
    /// Optimizer steps in the epoch.
    pub steps: usize,
}

impl fmt::Display for EpochStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "epoch {:>3}: loss {:.4}  train acc {:.2}%  test loss {:.4}  test acc {:.2}%",
            self.epoch,
            self.train_loss,
            100.0 * self.train_accuracy,
            self.test_loss,
            100.0 * self.test_accuracy,
        )?;
        if let (Some(loss), Some(acc)) = (self.val_loss, self.val_accuracy) {
            write!(f, "  val loss {loss:.4}  val acc {:.2}%", 100.0 * acc)?;
        }
        write!(
            f,
            "  {:.1}s ({:.0} samples/s, eval {:.1}s)",
            self.seconds, self.samples_per_sec, self.eval_seconds
        )
    }
}

/// What [`fit`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FitReport {
    /// One entry per completed epoch.
    pub history: Vec<EpochStats>,
    /// Optimizer steps taken.
    pub steps: u64,
    /// Whether [`TrainConfig::stop`] ended training early (the interrupted epoch is not in
    /// `history`).
    pub stopped: bool,
    /// Where training stands: pass it as [`TrainConfig::resume`] (with the model and the
    /// optimizer state) to continue.
    pub position: ResumePoint,
}

/// Why [`fit`] stopped with an error.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TrainError {
    /// The loss of a batch was NaN or infinite. The optimizer step was not applied, so the
    /// model holds the parameters from before this step.
    #[error(
        "loss is {loss} at step {step} (epoch {epoch}, step {step_in_epoch} of the epoch); \
         training stopped before applying this step"
    )]
    NonFiniteLoss {
        /// The step since the start of [`fit`], 1-based.
        step: u64,
        /// The epoch, 1-based.
        epoch: usize,
        /// The step within the epoch, 1-based.
        step_in_epoch: usize,
        /// The loss.
        loss: f32,
        /// The epochs completed before the error.
        history: Vec<EpochStats>,
    },
    /// A gradient had a NaN or infinite element ([`TrainConfig::check_gradients`]). The step
    /// was not applied.
    #[error(
        "gradient of `{tensor}` is not finite at step {step} (epoch {epoch}, step \
         {step_in_epoch} of the epoch, loss {loss}); training stopped before applying this step"
    )]
    NonFiniteGradient {
        /// The step since the start of [`fit`], 1-based.
        step: u64,
        /// The epoch, 1-based.
        epoch: usize,
        /// The step within the epoch, 1-based.
        step_in_epoch: usize,
        /// The first tensor (visit order) with a non-finite gradient element.
        tensor: String,
        /// The batch's loss.
        loss: f32,
        /// The epochs completed before the error.
        history: Vec<EpochStats>,
    },
    /// The configuration or data cannot be trained on.
    #[error("invalid training setup: {0}")]
    InvalidConfig(String),
}

/// Hooks that [`fit`] calls; every method does nothing by default. `()` is the no-op hook,
/// a pair `(A, B)` calls both, [`ProgressBarCallbacks`] drives an indicatif bar and
/// [`FnCallbacks`] wraps closures.
pub trait Callbacks<M: ?Sized> {
    /// Before each optimizer step, with the optimizer's learning rate in `lr`: a callback may
    /// change it (a learning-rate schedule, e.g. [`crate::optim::LrSchedule`]); [`fit`] then
    /// sets it on the optimizer for this step and the following ones.
    fn before_step(&mut self, info: &StepStart, lr: &mut f32) {
        let _ = (info, lr);
    }
    /// After each epoch's evaluation and before [`Callbacks::on_epoch`]: a callback may add
    /// measurements to `stats` (e.g. [`EpochStats::val_accuracy`] on a validation split).
    fn on_evaluate(&mut self, stats: &mut EpochStats, model: &M) {
        let _ = (stats, model);
    }
    /// After each optimizer step.
    fn on_step(&mut self, info: &StepInfo) {
        let _ = info;
    }
    /// After each epoch's evaluation, with the model (e.g. to save a checkpoint).
    fn on_epoch(&mut self, stats: &EpochStats, model: &M) {
        let _ = (stats, model);
    }
    /// After [`Callbacks::on_epoch`], for resumable checkpoints: `optimizer_state()` returns
    /// the optimizer's state ([`Optimizer::export_state`], computed only when called). The
    /// position is `epochs_done = stats.epoch`, `steps_done = stats.total_steps`,
    /// `steps_into_epoch = 0` (see [`crate::checkpoint::save_training_state`]).
    fn on_epoch_end(
        &mut self,
        stats: &EpochStats,
        model: &M,
        optimizer_state: &dyn Fn() -> Option<crate::optim::OptimizerState>,
    ) {
        let _ = (stats, model, optimizer_state);
    }
}

impl<M: ?Sized> Callbacks<M> for () {}

impl<M: ?Sized, A: Callbacks<M>, B: Callbacks<M>> Callbacks<M> for (A, B) {
    fn before_step(&mut self, info: &StepStart, lr: &mut f32) {
        self.0.before_step(info, lr);
        self.1.before_step(info, lr);
    }
    fn on_evaluate(&mut self, stats: &mut EpochStats, model: &M) {
        self.0.on_evaluate(stats, model);
        self.1.on_evaluate(stats, model);
    }
    fn on_step(&mut self, info: &StepInfo) {
        self.0.on_step(info);
        self.1.on_step(info);
    }
    fn on_epoch(&mut self, stats: &EpochStats, model: &M) {
        self.0.on_epoch(stats, model);
        self.1.on_epoch(stats, model);
    }
    fn on_epoch_end(
        &mut self,
        stats: &EpochStats,
        model: &M,
        optimizer_state: &dyn Fn() -> Option<crate::optim::OptimizerState>,
    ) {
        self.0.on_epoch_end(stats, model, optimizer_state);
        self.1.on_epoch_end(stats, model, optimizer_state);
    }
}

/// [`Callbacks`] from two closures: `on_step(&StepInfo)` and `on_epoch(&EpochStats, &M)`.
pub struct FnCallbacks<S, E>(pub S, pub E);

impl<M: ?Sized, S: FnMut(&StepInfo), E: FnMut(&EpochStats, &M)> Callbacks<M> for FnCallbacks<S, E> {
    fn on_step(&mut self, info: &StepInfo) {
        (self.0)(info)
    }
    fn on_epoch(&mut self, stats: &EpochStats, model: &M) {
        (self.1)(stats, model)
    }
}

/// [`Callbacks`] that show an indicatif progress bar per epoch (running loss and samples/s)
/// and print each epoch's [`EpochStats`] line above it.
#[derive(Debug, Clone)]
pub struct ProgressBarCallbacks {
    /// The bar (its length and position are set per epoch).
    pub bar: ProgressBar,
    /// Redraw the message every this many steps (formatting it every step costs time).
    pub update_every: usize,
}

impl ProgressBarCallbacks {
    /// Drives `bar` (e.g. `ProgressBar::hidden()` in tests).
    pub fn new(bar: ProgressBar) -> Self {
        Self {
            bar,
            update_every: 20,
        }
    }
    /// A bar on stderr with a style showing the epoch, steps, ETA and the running loss.
    pub fn stderr() -> Self {
        let bar = ProgressBar::new(0);
        if let Ok(style) = ProgressStyle::with_template(
            "{prefix:>9} [{bar:30}] {pos}/{len} steps {elapsed_precise}<{eta_precise} {msg}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        Self::new(bar)
    }
}

impl<M: ?Sized> Callbacks<M> for ProgressBarCallbacks {
    fn on_step(&mut self, info: &StepInfo) {
        if info.step_in_epoch == 1 {
            self.bar.reset();
            self.bar.set_length(info.steps_per_epoch as u64);
            self.bar.set_prefix(format!("epoch {}", info.epoch));
        }
        if info.step_in_epoch.is_multiple_of(self.update_every.max(1))
            || info.step_in_epoch == info.steps_per_epoch
        {
            self.bar.set_position(info.step_in_epoch as u64);
            self.bar.set_message(format!(
                "loss {:.4}  {:.0} samples/s",
                info.running_loss, info.samples_per_sec
            ));
        }
    }
    fn on_epoch(&mut self, stats: &EpochStats, _model: &M) {
        self.bar.println(stats.to_string());
    }
}

/// The name of the first tensor of `grads` with a NaN or infinite element.
/// Whether no element is NaN or infinite: an OR of exponent tests over blocks of 1024 (which
/// vectorises, unlike a short-circuiting `all(is_finite)`), stopping at the first bad block.
fn all_finite(x: &[f32]) -> bool {
    const EXP: u32 = 0x7f80_0000;
    x.chunks(1024).all(|block| {
        block
            .iter()
            .fold(0u32, |bad, v| bad | u32::from(v.to_bits() & EXP == EXP))
            == 0
    })
}

fn first_non_finite<P: Params + ?Sized>(grads: &P) -> Option<String> {
    let mut found = None;
    grads.visit("", &mut |name, t: &dyn Tensor| {
        if found.is_none() && !all_finite(t.as_slice()) {
            found = Some(name.to_string());
        }
    });
    found
}

/// Trains `model` with `opt` on `train` for [`TrainConfig::epochs`] epochs and evaluates the
/// training and test accuracy after each epoch.
///
/// Per step: the next shuffled minibatch is assembled into reused buffers, `loss_grad`
/// returns the batch's mean loss and the gradient (same type as the model), the loss (and,
/// with [`TrainConfig::check_gradients`], the gradient) is checked to be finite *before* the
/// optimizer step, the step is applied, [`Callbacks::on_step`] is called and the stop flag
/// is checked. After each epoch both accuracies are computed with `predict` in batches of
/// [`TrainConfig::eval_batch_size`] and [`Callbacks::on_epoch`] is called.
///
/// Before each step [`Callbacks::before_step`] may change the learning rate. Training starts
/// at [`TrainConfig::resume`]; [`FitReport::position`] says where it ended.
///
/// Subnormal floats are flushed to zero during the call, on every thread that works for it
/// ([`crate::fpu`], like `torch.set_flush_denormal(True)`); the caller's mode is restored
/// when it returns. On Linux with glibc, the first call also sets `malloc`'s trim and mmap
/// thresholds to 64 MiB for the rest of the process, so that the memory a step frees is
/// reused by the next step instead of being returned to the OS and faulted in again.
///
/// With several [`TrainConfig::threads`], each step's shards run either at once on the pool's
/// threads or one after the other on the calling thread, whichever was faster in the last
/// steps (on a machine where other processes hold the cores, waiting for a descheduled worker
/// costs more than it saves). The shards and their combination are the same either way, so
/// the results do not depend on the choice; `SYMGRAD_SHARDS=parallel` or `inline` forces it.
///
/// # Errors
/// [`TrainError::NonFiniteLoss`] / [`TrainError::NonFiniteGradient`] naming the step (the
/// model keeps its state from before that step); [`TrainError::InvalidConfig`] for a zero
/// batch size or an empty training set.
#[allow(clippy::too_many_arguments)]
pub fn fit<M, O, L, R, F, C>(
    model: &mut M,
    opt: &mut O,
    train: DataRef<'_>,
    test: DataRef<'_>,
    cfg: &TrainConfig,
    loss_grad: L,
    predict: F,
    callbacks: &mut C,
) -> Result<FitReport, TrainError>
where
    M: Params + Sync + Send,
    O: Optimizer,
    L: Fn(&M, &DMatrix<f32>, &[u8]) -> R + Sync,
    R: LossGradOutput<M>,
    F: Fn(&M, &DMatrix<f32>) -> DMatrix<f32> + Sync,
    C: Callbacks<M>,
{
    if cfg.batch_size == 0 || cfg.eval_batch_size == 0 {
        return Err(TrainError::InvalidConfig(
            "batch_size and eval_batch_size must be positive".into(),
        ));
    }
    if train.is_empty() {
        return Err(TrainError::InvalidConfig(
            "the training set is empty".into(),
        ));
    }
    if !test.is_empty() && test.pixels() != train.pixels() {
        return Err(TrainError::InvalidConfig(format!(
            "training images have {} pixels but test images {}",
            train.pixels(),
            test.pixels()
        )));
    }
    // Subnormal arithmetic is slow; flush it for the run (restored on return). See `fpu`.
    let _flush_denormals = crate::fpu::FlushDenormals::new();
    keep_freed_memory();
    let stop_requested = || cfg.stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed));
    let n = train.len();
    let steps_per_epoch = n.div_ceil(cfg.batch_size);
    let train_eval = train.head(cfg.train_eval_samples.unwrap_or(n));
    let mut order = Vec::with_capacity(n);
    let mut batch = Batch::with_capacity(cfg.batch_size, train.pixels());
    let mut eval_batch = Batch::new();
    let mut shards = Shards::new(cfg.threads.min(crate::parallel::max_threads()));
    let mut schedule = ShardSchedule::new(shards.len() > 1);
    let mut report = FitReport::default();
    let start = cfg.resume;
    // `steps_into_epoch == steps_per_epoch`: stopped after the epoch's last step but before
    // its evaluation; the resumed run evaluates it.
    if start.steps_into_epoch > steps_per_epoch {
        return Err(TrainError::InvalidConfig(format!(
            "resuming {} steps into an epoch of {steps_per_epoch} steps (a different batch size \
             or training set than the run being resumed?)",
            start.steps_into_epoch
        )));
    }
    report.steps = start.steps_done;
    report.position = start;

    'epochs: for epoch in start.epochs_done + 1..=cfg.epochs {
        if stop_requested() {
            report.stopped = true;
            break;
        }
        shuffle_epoch(cfg.seed, (epoch - 1) as u64, n, &mut order);
        let skip = if epoch == start.epochs_done + 1 {
            start.steps_into_epoch
        } else {
            0
        };
        let started = Instant::now();
        let mut epoch_loss = RunningMean::new();
        let mut samples = 0usize;
        // Correct training predictions of the epoch, while every step reports them.
        let mut train_correct = Some(0usize);
        for (i, indices) in order.chunks(cfg.batch_size).enumerate().skip(skip) {
            // The whole iteration is timed for `ShardSchedule`, callbacks included.
            let step_started = Instant::now();
            let mut lr = opt.lr();
            callbacks.before_step(
                &StepStart {
                    epoch,
                    step_in_epoch: i + 1,
                    steps_per_epoch,
                    step: report.steps + 1,
                },
                &mut lr,
            );
            if lr != opt.lr() {
                if !(lr.is_finite() && lr >= 0.0) {
                    return Err(TrainError::InvalidConfig(format!(
                        "a callback set the learning rate to {lr} at step {}",
                        report.steps + 1
                    )));
                }
                opt.set_lr(lr);
            }
            // Where the shards run this step (see `ShardSchedule`); the same results either way.
            let inline = schedule.inline();
            let _inline_rounds = crate::gemm::pool::InlineRounds::new(inline);
            // `finite`: the shard combine already saw every gradient element is finite.
            let (loss, grad, finite, correct) = if shards.len() > 1 && indices.len() > 1 {
                shards.loss_grad(model, train, indices, &loss_grad)
            } else {
                batch.fill(train, indices);
                let (loss, grad, correct) = loss_grad(model, &batch.x, &batch.labels).into_parts();
                (loss, grad, false, correct)
            };
            train_correct = train_correct.zip(correct).map(|(a, b)| a + b);
            let step = report.steps + 1;
            if !loss.is_finite() {
                return Err(TrainError::NonFiniteLoss {
                    step,
                    epoch,
                    step_in_epoch: i + 1,
                    loss,
                    history: report.history,
                });
            }
            if cfg.check_gradients
                && !finite
                && let Some(tensor) = first_non_finite(&grad)
            {
                return Err(TrainError::NonFiniteGradient {
                    step,
                    epoch,
                    step_in_epoch: i + 1,
                    tensor,
                    loss,
                    history: report.history,
                });
            }
            opt.step(model, &grad);
            drop(_inline_rounds);
            report.steps = step;
            report.position = ResumePoint {
                epochs_done: epoch - 1,
                steps_done: step,
                steps_into_epoch: i + 1,
            };
            epoch_loss.add_weighted(f64::from(loss), indices.len() as f64);
            samples += indices.len();
            callbacks.on_step(&StepInfo {
                epoch,
                step_in_epoch: i + 1,
                steps_per_epoch,
                step,
                loss,
                running_loss: epoch_loss.mean() as f32,
                samples_per_sec: samples as f64 / started.elapsed().as_secs_f64().max(1e-9),
            });
            if indices.len() == cfg.batch_size {
                schedule.record(inline, step_started.elapsed());
            }
            if stop_requested() {
                report.stopped = true;
                break 'epochs;
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        let eval_started = Instant::now();
        let _inline_rounds = crate::gemm::pool::InlineRounds::new(schedule.prefers_inline());
        let train_accuracy = match train_correct {
            Some(c) => (c as f64 / samples.max(1) as f64) as f32,
            None => {
                shards
                    .evaluate(
                        model,
                        train_eval,
                        cfg.eval_batch_size,
                        &predict,
                        &mut eval_batch,
                        false,
                    )
                    .accuracy
            }
        };
        let test_eval = shards.evaluate(
            model,
            test,
            cfg.eval_batch_size,
            &predict,
            &mut eval_batch,
            true,
        );
        report.position = ResumePoint {
            epochs_done: epoch,
            steps_done: report.steps,
            steps_into_epoch: 0,
        };
        let mut stats = EpochStats {
            epoch,
            train_loss: epoch_loss.mean() as f32,
            train_accuracy,
            test_accuracy: test_eval.accuracy,
            test_loss: test_eval.loss,
            val_accuracy: None,
            val_loss: None,
            lr: opt.lr(),
            total_steps: report.steps,
            seconds,
            eval_seconds: eval_started.elapsed().as_secs_f64(),
            samples_per_sec: samples as f64 / seconds.max(1e-9),
            steps: steps_per_epoch,
        };
        callbacks.on_evaluate(&mut stats, model);
        callbacks.on_epoch(&stats, model);
        callbacks.on_epoch_end(&stats, model, &|| opt.export_state());
        report.history.push(stats);
    }
    Ok(report)
}

/// Whether the shards of a data-parallel step run at the same time on the pool's threads
/// ("parallel") or one after the other on the calling thread ("inline"), chosen step by step
/// from measured step times, so that a busy machine (another process on a core) does not make
/// the default threads slower than one.
///
/// The arithmetic is the same either way (the same shards, combined in the same order), so the
/// choice changes the speed only, never the results: a run stays deterministic for its thread
/// count. Nothing spins: in inline mode the workers are not woken at all.
///
/// Policy: the mean of the last [`RECENT`] full-batch iteration times (wall clock, the whole
/// loop iteration) is kept for each mode. The mean, not the median: on a shared machine the
/// cost of a mode is mostly in its rare long steps (a worker, or the caller, descheduled for a
/// few milliseconds), and two threads also get more CPU time from the OS than one, so only the
/// mean tells which mode trains faster. The schedule starts parallel and, after
/// [`FIRST_PROBE`] steps, tries the other mode for [`PROBE_STEPS`] steps; it then keeps the
/// faster one (the other must be at least 3% faster to win); a probe whose first
/// [`PROBE_MIN`] steps are already 25% slower than the current mode ends there. Probes recur
/// after an interval that doubles each time they confirm the choice (up to [`MAX_INTERVAL`]
/// steps, so probing costs little), and sooner when the current mode's mean becomes 30% slower than the other's
/// last one (another process started). Set `SYMGRAD_SHARDS=parallel` or
/// `SYMGRAD_SHARDS=inline` to force one mode (measurements).
struct ShardSchedule {
    /// Whether there is anything to choose (more than one shard) and it is not forced.
    adaptive: bool,
    /// The chosen mode: `true` = inline.
    current: bool,
    /// Steps of the other mode still to run in the current probe.
    probing: u32,
    /// Steps since the last probe ended.
    since_probe: u64,
    /// Steps between two probes.
    interval: u64,
    /// Recent step times (seconds), parallel then inline.
    recent: [Vec<f64>; 2],
}

/// Step times kept per mode.
const RECENT: usize = 32;
/// Steps of the other mode per probe.
const PROBE_STEPS: u32 = 32;
/// Steps a probe runs before it may end early ([`PROBE_GIVE_UP`]).
const PROBE_MIN: u32 = 4;
/// A probe whose mean step time is this many times the current mode's ends early.
const PROBE_GIVE_UP: f64 = 1.25;
/// Steps before the first probe (the first steps warm caches and start the workers).
const FIRST_PROBE: u64 = 16;
/// The longest interval between probes.
const MAX_INTERVAL: u64 = 4096;

thread_local! {
    static FORCED_SHARDS: std::cell::Cell<Option<Option<bool>>> = const { std::cell::Cell::new(None) };
}

/// Forces where [`fit`] calls made **on this thread** run the shards of a step: `Some(true)`
/// one after the other on the calling thread, `Some(false)` at the same time on the pool's
/// threads, `None` chosen from measured step times (the default). The results are the same in
/// every mode, only the speed differs; for tests and measurements (`SYMGRAD_SHARDS=inline` or
/// `parallel` does the same for the whole process).
#[doc(hidden)]
pub fn force_shard_mode(inline: Option<bool>) {
    FORCED_SHARDS.with(|c| c.set(Some(inline)));
}

/// The forced mode: [`force_shard_mode`] on this thread, else `SYMGRAD_SHARDS`.
fn forced_shard_mode() -> Option<bool> {
    if let Some(forced) = FORCED_SHARDS.with(|c| c.get()) {
        return forced;
    }
    match std::env::var("SYMGRAD_SHARDS").as_deref() {
        Ok("parallel") => Some(false),
        Ok("inline") | Ok("serial") => Some(true),
        _ => None,
    }
}

impl ShardSchedule {
    fn new(shards: bool) -> Self {
        Self::with_forced(shards, forced_shard_mode())
    }

    fn with_forced(shards: bool, forced: Option<bool>) -> Self {
        ShardSchedule {
            adaptive: shards && forced.is_none(),
            current: shards && forced == Some(true),
            probing: 0,
            since_probe: 0,
            interval: FIRST_PROBE,
            recent: [Vec::with_capacity(RECENT), Vec::with_capacity(RECENT)],
        }
    }

    /// Whether this step runs inline.
    fn inline(&self) -> bool {
        if self.probing > 0 {
            !self.current
        } else {
            self.current
        }
    }

    /// The chosen mode (for the evaluation between epochs).
    fn prefers_inline(&self) -> bool {
        self.current
    }

    fn mean(v: &[f64]) -> Option<f64> {
        if v.is_empty() {
            return None;
        }
        Some(v.iter().sum::<f64>() / v.len() as f64)
    }

    /// Records the time of a full-batch step run in mode `inline`.
    fn record(&mut self, inline: bool, took: std::time::Duration) {
        if !self.adaptive {
            return;
        }
        let recent = &mut self.recent[usize::from(inline)];
        if recent.len() == RECENT {
            recent.remove(0);
        }
        recent.push(took.as_secs_f64());
        let (cur, other) = (usize::from(self.current), usize::from(!self.current));
        if self.probing > 0 {
            self.probing -= 1;
            // A probe that is clearly slower after its first few steps ends there: on a busy
            // machine a probe of the parallel mode waits for a descheduled worker at every
            // step, and 32 such steps every few hundred cost more than the probing finds.
            // It then ends as any probe that confirms the current mode does.
            let probed = PROBE_STEPS - self.probing;
            if probed >= PROBE_MIN
                && let (Some(c), Some(o)) = (
                    Self::mean(&self.recent[cur]),
                    Self::mean(&self.recent[other]),
                )
                && o > PROBE_GIVE_UP * c
            {
                self.probing = 0;
            }
            if self.probing == 0 {
                let (c, o) = (
                    Self::mean(&self.recent[cur]),
                    Self::mean(&self.recent[other]),
                );
                if let (Some(c), Some(o)) = (c, o) {
                    if o < 0.97 * c {
                        self.current = !self.current;
                        self.interval = FIRST_PROBE;
                    } else {
                        self.interval = (2 * self.interval).min(MAX_INTERVAL);
                    }
                }
                self.since_probe = 0;
            }
            return;
        }
        self.since_probe += 1;
        let slower = self.since_probe >= 2 * RECENT as u64
            && self.since_probe.is_multiple_of(16)
            && match (
                Self::mean(&self.recent[cur]),
                Self::mean(&self.recent[other]),
            ) {
                (Some(c), Some(o)) => c > 1.3 * o,
                _ => false,
            };
        if self.since_probe >= self.interval || slower {
            // Measure the other mode afresh.
            self.recent[other].clear();
            self.probing = PROBE_STEPS;
        }
    }
}

/// Tells glibc's `malloc` to keep freed memory for reuse (once per process): the trim and
/// mmap thresholds are set to 64 MiB instead of glibc's adaptive ones (128 KiB to 32 MiB).
///
/// A training step allocates and frees the same few hundred KiB every time (each shard's
/// gradient, the activations). With the adaptive thresholds the top of the heap was often
/// free at the end of a step, so glibc gave it back to the OS and the next step faulted it in
/// again: with two shards, 1.5 to 3 `brk` or `madvise` calls and about a hundred page faults
/// per step, which made two shards run one after the other twice as slow as one thread. The
/// process keeps at most 64 MiB of freed memory at the top of a heap (what it used before,
/// so the peak is unchanged). Other allocators (a `#[global_allocator]`) are not affected.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            unsafe extern "C" {
                fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
            }
            // glibc's <malloc.h>.
            const M_TRIM_THRESHOLD: std::ffi::c_int = -1;
            const M_MMAP_THRESHOLD: std::ffi::c_int = -3;
            const SIXTY_FOUR_MIB: std::ffi::c_int = 64 << 20;
            // SAFETY: `mallopt` is glibc's (this is a gnu target), takes two ints and only
            // changes the allocator's tuning parameters; it is thread-safe (it takes the
            // arenas' locks).
            unsafe {
                mallopt(M_MMAP_THRESHOLD, SIXTY_FOUR_MIB);
                mallopt(M_TRIM_THRESHOLD, SIXTY_FOUR_MIB);
            }
        });
    }
}

/// A shard's loss, gradient and correct count (if reported).
type ShardResult<M> = (f32, M, Option<usize>);

/// The per-thread batch buffers and results of a data-parallel step.
struct Shards<M> {
    batches: Vec<std::sync::Mutex<Batch>>,
    results: Vec<std::sync::Mutex<Option<ShardResult<M>>>>,
    /// Batch buffers of the evaluation, one per thread that may run ([`crate::parallel::max_threads`]).
    eval_batches: Vec<std::sync::Mutex<Batch>>,
}

impl<M: Params + Sync + Send> Shards<M> {
    fn new(threads: usize) -> Self {
        let k = threads.max(1);
        Shards {
            batches: (0..k)
                .map(|_| std::sync::Mutex::new(Batch::new()))
                .collect(),
            results: (0..k).map(|_| std::sync::Mutex::new(None)).collect(),
            eval_batches: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.batches.len()
    }

    /// The loss and gradient of the batch `indices`: each shard on its own thread, then
    /// `loss = Σ wₛ lossₛ`, `grad = Σ wₛ gradₛ` with `wₛ` the shard's share of the batch; and
    /// whether every element of that sum was seen to be finite.
    fn loss_grad<R: LossGradOutput<M>>(
        &mut self,
        model: &M,
        data: DataRef<'_>,
        indices: &[usize],
        loss_grad: &(impl Fn(&M, &DMatrix<f32>, &[u8]) -> R + Sync),
    ) -> (f32, M, bool, Option<usize>) {
        let parts: Vec<&[usize]> = indices.chunks(indices.len().div_ceil(self.len())).collect();
        let (batches, results) = (&self.batches, &self.results);
        crate::parallel::run(parts.len(), &|s| {
            let mut b = batches[s].lock().unwrap_or_else(|e| e.into_inner());
            b.fill(data, parts[s]);
            let r = loss_grad(model, &b.x, &b.labels).into_parts();
            *results[s].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
        });
        let n = indices.len() as f32;
        let mut correct = Some(0usize);
        let mut taken = parts.iter().zip(&self.results).map(|(part, slot)| {
            let (l, g, c) = slot
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .expect("every shard ran");
            correct = correct.zip(c).map(|(a, b)| a + b);
            (part.len() as f32 / n, l, g)
        });
        let (w0, mut loss, mut total) = taken.next().expect("a batch has at least one shard");
        loss *= w0;
        // total = w0 g0 + w1 g1 + ..., one fused pass per further shard, big tensors split
        // across the threads.
        let mut scale = w0;
        let mut finite = false;
        let mut shards_left = parts.len() - 1;
        for (w, l, g) in taken {
            loss += w * l;
            shards_left -= 1;
            // The last pass also checks that the sum is finite, for `check_gradients`.
            let last = shards_left == 0;
            let bad = std::sync::atomic::AtomicBool::new(false);
            total.visit_with(&g, "", &mut |_, a, b| {
                // Small tensors in one piece (a pool round costs more than they do); big ones
                // in 4 pieces per thread, so a slow thread holds up little.
                let pieces = if a.as_slice().len() >= 1 << 14 {
                    4 * self.len()
                } else {
                    1
                };
                crate::parallel::zip2(pieces, a.as_mut_slice(), b.as_slice(), &|a, b| {
                    let mut ok = true;
                    for (x, y) in a.iter_mut().zip(b) {
                        *x = scale * *x + w * y;
                        ok &= x.is_finite();
                    }
                    if !ok {
                        bad.store(true, Ordering::Relaxed);
                    }
                });
            });
            finite = last && !bad.load(Ordering::Relaxed);
            scale = 1.0;
        }
        if scale != 1.0 {
            total.visit_mut("", &mut |_, t| {
                t.as_mut_slice().iter_mut().for_each(|x| *x *= scale)
            });
        }
        (loss, total, finite, correct)
    }

    /// The accuracy on `data` in batches of `batch_size`, and the mean loss if `with_loss`.
    /// With more than one shard the batches are handed out to all the threads the pool may
    /// use, each batch to whichever thread is free first; the sums are taken in batch order,
    /// so the result does not depend on who ran which batch.
    fn evaluate(
        &mut self,
        model: &M,
        data: DataRef<'_>,
        batch_size: usize,
        predict: &(impl Fn(&M, &DMatrix<f32>) -> DMatrix<f32> + Sync),
        batch: &mut Batch,
        with_loss: bool,
    ) -> Evaluation {
        if self.len() == 1 || data.len() < 2 * batch_size {
            return evaluate_serial(model, data, batch_size, predict, batch, with_loss);
        }
        let threads = crate::parallel::max_threads();
        while self.eval_batches.len() < threads {
            self.eval_batches.push(std::sync::Mutex::new(Batch::new()));
        }
        let batches = data.len().div_ceil(batch_size);
        let sums: Vec<std::sync::Mutex<(usize, f64)>> = (0..batches)
            .map(|_| std::sync::Mutex::new((0, 0.0)))
            .collect();
        let buffers = &self.eval_batches;
        crate::parallel::run(batches, &|i| {
            let range = (i * batch_size, ((i + 1) * batch_size).min(data.len()));
            // At most `threads` pieces run at once, so a buffer is free.
            let mut b = buffers
                .iter()
                .find_map(|m| match m.try_lock() {
                    Ok(g) => Some(g),
                    Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
                    Err(std::sync::TryLockError::WouldBlock) => None,
                })
                .expect("evaluate: a free batch buffer");
            let r = batch_sums(model, data, range, predict, &mut b, with_loss);
            *sums[i].lock().unwrap_or_else(|e| e.into_inner()) = r;
        });
        let (mut correct, mut loss) = (0usize, 0.0f64);
        for s in sums {
            let (c, l) = s.into_inner().unwrap_or_else(|e| e.into_inner());
            correct += c;
            loss += l;
        }
        Evaluation::from_sums(correct, loss, data.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Runs `steps` steps with step times `time(inline)` (µs); returns the modes used.
    fn drive(s: &mut ShardSchedule, steps: usize, time: impl Fn(bool) -> u64) -> Vec<bool> {
        (0..steps)
            .map(|_| {
                let inline = s.inline();
                s.record(inline, Duration::from_micros(time(inline)));
                inline
            })
            .collect()
    }

    #[test]
    fn keeps_parallel_while_it_is_faster_and_probes_rarely() {
        let mut s = ShardSchedule::with_forced(true, None);
        let modes = drive(&mut s, 20_000, |inline| if inline { 500 } else { 300 });
        assert!(!s.prefers_inline());
        let probes = modes.iter().filter(|&&m| m).count();
        // 32-step probes at intervals 16, 32, ... 4096, then every 4096 steps.
        assert!(probes <= 32 * 13, "{probes} inline steps in 20,000");
    }

    #[test]
    fn switches_to_inline_when_parallel_steps_wait_and_back_when_they_stop() {
        let mut s = ShardSchedule::with_forced(true, None);
        drive(&mut s, 200, |inline| if inline { 500 } else { 300 });
        assert!(!s.prefers_inline());
        // Another process takes a core: parallel steps wait for a descheduled worker.
        let modes = drive(&mut s, 250, |inline| if inline { 500 } else { 1500 });
        assert!(s.prefers_inline());
        // Detected within a hundred steps; then parallel only in the (rarer) probes.
        let parallel = modes[100..].iter().filter(|&&m| !m).count();
        assert!(
            parallel <= 2 * 32,
            "{parallel} parallel steps of 150 after switching"
        );
        // The core is free again: found at the next probe (at most 4096 + 7 steps later).
        drive(&mut s, 5000, |inline| if inline { 500 } else { 300 });
        assert!(!s.prefers_inline());
    }

    #[test]
    fn a_clearly_slower_probe_ends_early() {
        // One core busy elsewhere from the start: parallel steps cost three times inline ones.
        let mut s = ShardSchedule::with_forced(true, None);
        let modes = drive(&mut s, 2000, |inline| if inline { 500 } else { 1500 });
        assert!(s.prefers_inline());
        // The first FIRST_PROBE steps are parallel; after the switch each probe of the
        // parallel mode ends after PROBE_MIN steps instead of 32.
        let parallel = modes[FIRST_PROBE as usize..]
            .iter()
            .filter(|&&m| !m)
            .count();
        assert!(
            parallel <= 6 * PROBE_MIN as usize,
            "{parallel} parallel steps of 2000 after the first switch"
        );
        // A probe only a little slower (10%) runs to its end, so noise does not end it.
        let mut s = ShardSchedule::with_forced(true, None);
        let modes = drive(&mut s, FIRST_PROBE as usize + 32, |inline| {
            if inline { 330 } else { 300 }
        });
        assert_eq!(modes.iter().filter(|&&m| m).count(), 32);
    }

    #[test]
    fn all_finite_finds_every_kind_of_bad_value() {
        let mut x = vec![1.0f32; 3000];
        assert!(all_finite(&x));
        assert!(all_finite(&[]));
        x[5] = f32::MAX;
        x[6] = f32::MIN_POSITIVE / 4.0;
        x[7] = -0.0;
        assert!(all_finite(&x));
        for (at, bad) in [
            (0, f32::NAN),
            (1500, f32::INFINITY),
            (2999, f32::NEG_INFINITY),
        ] {
            let mut y = x.clone();
            y[at] = bad;
            assert!(!all_finite(&y), "{bad} at {at}");
        }
    }

    #[test]
    fn forced_and_single_shard_never_change() {
        for (shards, forced, inline) in [
            (true, Some(true), true),
            (true, Some(false), false),
            (false, None, false),
        ] {
            let mut s = ShardSchedule::with_forced(shards, forced);
            let modes = drive(&mut s, 1000, |inline| if inline { 100 } else { 1000 });
            assert!(modes.iter().all(|&m| m == inline), "{shards} {forced:?}");
        }
    }
}

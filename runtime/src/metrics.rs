//! Classification metrics: per-row argmax, accuracy of logits against `u8` labels, and a
//! running (weighted) mean.
//!
//! Logits are a `batch x classes` [`DMatrix`], one sample per row.

use nalgebra::DMatrix;

/// The index of the largest element of each row (the predicted class of each sample).
///
/// Ties go to the first (lowest) index, as `torch.argmax`. `NaN` entries never win unless a
/// whole row is `NaN`, in which case the row's prediction is `0`.
pub fn argmax_rows(logits: &DMatrix<f32>) -> Vec<usize> {
    let mut out = Vec::new();
    argmax_rows_into(logits, &mut out);
    out
}

/// [`argmax_rows`] into a reused buffer (cleared first).
pub fn argmax_rows_into(logits: &DMatrix<f32>, out: &mut Vec<usize>) {
    let (rows, cols) = logits.shape();
    out.clear();
    out.resize(rows, 0);
    if cols == 0 {
        return;
    }
    // Column-major storage: walk column by column, keeping each row's best so far.
    let mut best: Vec<f32> = logits.column(0).iter().copied().collect();
    for c in 1..cols {
        for (r, &x) in logits.column(c).iter().enumerate() {
            if x > best[r] || (best[r].is_nan() && !x.is_nan()) {
                best[r] = x;
                out[r] = c;
            }
        }
    }
}

/// The number of rows of `logits` whose argmax equals the row's label.
///
/// # Panics
/// If `labels.len()` differs from the number of rows.
pub fn count_correct(logits: &DMatrix<f32>, labels: &[u8]) -> usize {
    assert_eq!(
        logits.nrows(),
        labels.len(),
        "count_correct: {} rows of logits but {} labels",
        logits.nrows(),
        labels.len()
    );
    argmax_rows(logits)
        .iter()
        .zip(labels)
        .filter(|&(&p, &l)| p == usize::from(l))
        .count()
}

/// The fraction in `[0, 1]` of rows of `logits` whose argmax equals the label; `NaN` for an
/// empty batch.
///
/// # Panics
/// If `labels.len()` differs from the number of rows.
pub fn accuracy(logits: &DMatrix<f32>, labels: &[u8]) -> f32 {
    (count_correct(logits, labels) as f64 / labels.len() as f64) as f32
}

/// A running mean of `f64` values, optionally weighted (e.g. a batch's mean loss weighted by
/// the batch size gives the per-sample mean of the epoch).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RunningMean {
    sum: f64,
    weight: f64,
}

impl RunningMean {
    /// An empty mean.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds one value with weight 1.
    pub fn add(&mut self, value: f64) {
        self.add_weighted(value, 1.0);
    }
    /// Adds a value with a weight (e.g. the number of samples it averages).
    pub fn add_weighted(&mut self, value: f64, weight: f64) {
        self.sum += value * weight;
        self.weight += weight;
    }
    /// The mean so far; `NaN` when nothing was added.
    pub fn mean(&self) -> f64 {
        if self.weight == 0.0 {
            f64::NAN
        } else {
            self.sum / self.weight
        }
    }
    /// The total weight added (the count when every value had weight 1).
    pub fn weight(&self) -> f64 {
        self.weight
    }
    /// Forgets everything added.
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

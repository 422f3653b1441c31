//! Classification metrics: per-row argmax, accuracy and cross-entropy of logits against `u8`
//! labels, a running (weighted) mean, a confusion matrix with per-class precision and recall,
//! and [`MetricsLog`], which writes one record per epoch as JSON lines, JSON or CSV.
//!
//! Logits are a `batch x classes` [`DMatrix`], one sample per row.

use std::fmt;

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

/// The summed softmax cross-entropy `Σᵣ -log softmax(logitsᵣ)[labelᵣ]` of the rows of `logits`
/// (`batch x classes`), computed stably in `f64` (log-sum-exp around the row's maximum).
///
/// # Panics
/// If `labels.len()` differs from the number of rows or a label is not a column index.
pub fn cross_entropy_sum(logits: &DMatrix<f32>, labels: &[u8]) -> f64 {
    assert_eq!(
        logits.nrows(),
        labels.len(),
        "cross_entropy_sum: {} rows of logits but {} labels",
        logits.nrows(),
        labels.len()
    );
    let mut total = 0.0f64;
    for (r, &label) in labels.iter().enumerate() {
        let row = logits.row(r);
        let y = usize::from(label);
        assert!(
            y < row.len(),
            "cross_entropy_sum: label {y} of row {r} but only {} classes",
            row.len()
        );
        let max = row
            .iter()
            .fold(f64::NEG_INFINITY, |m, &x| m.max(f64::from(x)));
        let sum: f64 = row.iter().map(|&x| (f64::from(x) - max).exp()).sum();
        total += max + sum.ln() - f64::from(row[y]);
    }
    total
}

/// A confusion matrix: `count(truth, predicted)` over `classes` classes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfusionMatrix {
    classes: usize,
    counts: Vec<u64>,
}

/// Per-class figures of a [`ConfusionMatrix`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClassStats {
    /// Samples of this class (row sum).
    pub support: u64,
    /// Of the samples predicted as this class, the fraction that are (`NaN` if none).
    pub precision: f64,
    /// Of the samples of this class, the fraction predicted as it (`NaN` if none).
    pub recall: f64,
}

impl ConfusionMatrix {
    /// An empty matrix of `classes x classes`.
    pub fn new(classes: usize) -> Self {
        Self {
            classes,
            counts: vec![0; classes * classes],
        }
    }
    /// The number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }
    /// Counts one sample of class `truth` predicted as `predicted`.
    ///
    /// # Panics
    /// If either is not below [`ConfusionMatrix::classes`].
    pub fn record(&mut self, truth: usize, predicted: usize) {
        assert!(
            truth < self.classes && predicted < self.classes,
            "ConfusionMatrix: class {truth} predicted as {predicted}, but there are {} classes",
            self.classes
        );
        self.counts[truth * self.classes + predicted] += 1;
    }
    /// Counts the argmax of each row of `logits` against its label.
    ///
    /// # Panics
    /// If `labels.len()` differs from the number of rows, or a class is out of range.
    pub fn add(&mut self, logits: &DMatrix<f32>, labels: &[u8]) {
        assert_eq!(
            logits.nrows(),
            labels.len(),
            "ConfusionMatrix::add: {} rows of logits but {} labels",
            logits.nrows(),
            labels.len()
        );
        for (p, &l) in argmax_rows(logits).into_iter().zip(labels) {
            self.record(usize::from(l), p);
        }
    }
    /// How many samples of class `truth` were predicted as `predicted`.
    pub fn count(&self, truth: usize, predicted: usize) -> u64 {
        self.counts[truth * self.classes + predicted]
    }
    /// All samples counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
    /// The fraction on the diagonal (`NaN` if empty).
    pub fn accuracy(&self) -> f64 {
        let diag: u64 = (0..self.classes).map(|c| self.count(c, c)).sum();
        diag as f64 / self.total() as f64
    }
    /// Precision, recall and support of each class.
    pub fn per_class(&self) -> Vec<ClassStats> {
        (0..self.classes)
            .map(|c| {
                let support: u64 = (0..self.classes).map(|p| self.count(c, p)).sum();
                let predicted: u64 = (0..self.classes).map(|t| self.count(t, c)).sum();
                let hit = self.count(c, c) as f64;
                ClassStats {
                    support,
                    precision: hit / predicted as f64,
                    recall: hit / support as f64,
                }
            })
            .collect()
    }
}

impl fmt::Display for ConfusionMatrix {
    /// The matrix (rows: true class, columns: predicted class) with each class's recall and
    /// precision.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .counts
            .iter()
            .max()
            .map_or(1, |m| m.to_string().len())
            .max(3);
        write!(f, "true\\pred")?;
        for p in 0..self.classes {
            write!(f, " {p:>width$}")?;
        }
        writeln!(f, "   recall  precision")?;
        for (t, stats) in self.per_class().iter().enumerate() {
            write!(f, "{t:>9}")?;
            for p in 0..self.classes {
                write!(f, " {:>width$}", self.count(t, p))?;
            }
            writeln!(
                f,
                "  {:>6.2}%    {:>6.2}%",
                100.0 * stats.recall,
                100.0 * stats.precision
            )?;
        }
        write!(
            f,
            "accuracy {:.2}% of {} samples",
            100.0 * self.accuracy(),
            self.total()
        )
    }
}

#[cfg(feature = "train")]
mod log;
#[cfg(feature = "train")]
pub use log::*;

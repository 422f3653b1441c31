//! Row-wise softmax, log-softmax and the cross-entropy loss on logits.
//!
//! All three work on each sample (each ROW) and subtract the row maximum before
//! exponentiating (log-sum-exp), so finite logits of any magnitude give finite results.

use nalgebra::{DMatrix, RealField};

use super::{assert_arg_shape, assert_seed_shape, columns, columns_mut, lazy_zero, lit};

/// The maximum of each row (zeros when there are no columns).
fn row_max<T: RealField + Copy>(x: &DMatrix<T>) -> Vec<T> {
    let rows = x.nrows();
    let mut cols = columns(x.as_slice(), rows);
    let mut m = match cols.next() {
        Some(first) => first.to_vec(),
        None => return vec![T::zero(); rows],
    };
    for col in cols {
        for (mi, &v) in m.iter_mut().zip(col) {
            if v > *mi {
                *mi = v;
            }
        }
    }
    m
}

/// Per row: `m_i = max_j x_ij` and `s_i = sum_j exp(x_ij - m_i)`, without storing the
/// exponentials.
fn row_max_sumexp<T: RealField + Copy>(x: &DMatrix<T>) -> (Vec<T>, Vec<T>) {
    let rows = x.nrows();
    let m = row_max(x);
    let mut s = vec![T::zero(); rows];
    for col in columns(x.as_slice(), rows) {
        for ((si, &mi), &v) in s.iter_mut().zip(&m).zip(col) {
            *si += (v - mi).exp();
        }
    }
    (m, s)
}

/// Per row: the softmax probabilities `p_ij = exp(x_ij - m_i) / s_i`, plus `m` and `s`.
pub(super) fn softmax_parts<T: RealField + Copy>(x: &DMatrix<T>) -> (DMatrix<T>, Vec<T>, Vec<T>) {
    let rows = x.nrows();
    let m = row_max(x);
    let mut p = x.clone();
    let mut s = vec![T::zero(); rows];
    for col in columns_mut(p.as_mut_slice(), rows) {
        for ((si, &mi), v) in s.iter_mut().zip(&m).zip(col) {
            *v = (*v - mi).exp();
            *si += *v;
        }
    }
    let inv: Vec<T> = s.iter().map(|&si| T::one() / si).collect();
    for col in columns_mut(p.as_mut_slice(), rows) {
        for (v, &r) in col.iter_mut().zip(&inv) {
            *v *= r;
        }
    }
    (p, m, s)
}

/// `softmax(x)_ij = exp(x_ij) / sum_k exp(x_ik)` over each row (each sample).
///
/// Computed as `exp(x_ij - max_k x_ik) / sum_k exp(x_ik - max_k x_ik)`; smooth everywhere.
/// Rows must be finite (a row of all `-inf` or containing `+inf` gives NaN).
pub fn softmax<T: RealField + Copy>(x: &DMatrix<T>) -> DMatrix<T> {
    softmax_parts(x).0
}

/// [`softmax`] and its pullback: `dx_ij = p_ij * (g_ij - sum_k g_ik p_ik)` with `p` the
/// softmax output and `g` the seed.
///
/// The pullback, called as `pb(&x, seed, need)`, owns a copy of `p` from the forward pass
/// (`x` is only shape-checked) and writes into the seed in place.
pub fn softmax_pullback<T: RealField + Copy>(
    x: &DMatrix<T>,
) -> (
    DMatrix<T>,
    impl FnOnce(&DMatrix<T>, DMatrix<T>, [bool; 1]) -> (DMatrix<T>,) + use<T>,
) {
    let p = softmax(x);
    let saved = p.clone();
    (
        p,
        move |x: &DMatrix<T>, mut g: DMatrix<T>, need: [bool; 1]| {
            assert_arg_shape("softmax", "x", x, saved.shape());
            assert_seed_shape("softmax", &g, saved.shape());
            if !need[0] {
                return (lazy_zero(),);
            }
            let rows = g.nrows();
            let mut dot = vec![T::zero(); rows];
            for (gc, pc) in columns(g.as_slice(), rows).zip(columns(saved.as_slice(), rows)) {
                for ((d, &gv), &pv) in dot.iter_mut().zip(gc).zip(pc) {
                    *d += gv * pv;
                }
            }
            for (gc, pc) in columns_mut(g.as_mut_slice(), rows).zip(columns(saved.as_slice(), rows))
            {
                for ((gv, &pv), &d) in gc.iter_mut().zip(pc).zip(&dot) {
                    *gv = pv * (*gv - d);
                }
            }
            (g,)
        },
    )
}

/// [`softmax`]'s value and its gradient `p .* (seed - rowsum(seed .* p))`.
pub fn softmax_vjp<T: RealField + Copy>(
    x: &DMatrix<T>,
    seed: DMatrix<T>,
) -> (DMatrix<T>, DMatrix<T>) {
    let (y, pb) = softmax_pullback(x);
    (y, pb(x, seed, [true]).0)
}

/// `log_softmax(x)_ij = x_ij - log sum_k exp(x_ik)` over each row (each sample).
///
/// Computed as `(x_ij - m_i) - log sum_k exp(x_ik - m_i)` with `m_i = max_k x_ik`
/// (log-sum-exp), so finite logits of any magnitude give finite, accurate results. Smooth
/// everywhere.
pub fn log_softmax<T: RealField + Copy>(x: &DMatrix<T>) -> DMatrix<T> {
    let (m, s) = row_max_sumexp(x);
    shifted_log(x, &m, &s)
}

/// `y_ij = (x_ij - m_i) - ln s_i`: subtracting the maximum first keeps the small digits.
fn shifted_log<T: RealField + Copy>(x: &DMatrix<T>, m: &[T], s: &[T]) -> DMatrix<T> {
    let rows = x.nrows();
    let ln_s: Vec<T> = s.iter().map(|&si| si.ln()).collect();
    let mut y = x.clone();
    for col in columns_mut(y.as_mut_slice(), rows) {
        for ((v, &mi), &l) in col.iter_mut().zip(m).zip(&ln_s) {
            *v = (*v - mi) - l;
        }
    }
    y
}

/// [`log_softmax`] and its pullback: `dx_ij = g_ij - p_ij * sum_k g_ik` with
/// `p = softmax(x)` and `g` the seed.
///
/// The forward pass keeps the probabilities it exponentiated anyway, so the pullback (called as
/// `pb(&x, seed, need)`; `x` is only shape-checked) does no exponentials; it writes into the
/// seed in place.
pub fn log_softmax_pullback<T: RealField + Copy>(
    x: &DMatrix<T>,
) -> (
    DMatrix<T>,
    impl FnOnce(&DMatrix<T>, DMatrix<T>, [bool; 1]) -> (DMatrix<T>,) + use<T>,
) {
    let rows = x.nrows();
    let (p, m, s) = softmax_parts(x);
    let y = shifted_log(x, &m, &s);
    (
        y,
        move |x: &DMatrix<T>, mut g: DMatrix<T>, need: [bool; 1]| {
            assert_arg_shape("log_softmax", "x", x, p.shape());
            assert_seed_shape("log_softmax", &g, p.shape());
            if !need[0] {
                return (lazy_zero(),);
            }
            let mut sum = vec![T::zero(); rows];
            for gc in columns(g.as_slice(), rows) {
                for (acc, &gv) in sum.iter_mut().zip(gc) {
                    *acc += gv;
                }
            }
            for (gc, pc) in columns_mut(g.as_mut_slice(), rows).zip(columns(p.as_slice(), rows)) {
                for ((gv, &pv), &sg) in gc.iter_mut().zip(pc).zip(&sum) {
                    *gv -= pv * sg;
                }
            }
            (g,)
        },
    )
}

/// [`log_softmax`]'s value and its gradient `seed - softmax(x) .* rowsum(seed)`.
pub fn log_softmax_vjp<T: RealField + Copy>(
    x: &DMatrix<T>,
    seed: DMatrix<T>,
) -> (DMatrix<T>, DMatrix<T>) {
    let (y, pb) = log_softmax_pullback(x);
    (y, pb(x, seed, [true]).0)
}

/// Panics unless there is one label per row and every label indexes a column.
#[track_caller]
pub(super) fn check_labels<T>(logits: &DMatrix<T>, labels: &[u8]) {
    check_label_count(logits, labels);
    check_label_range(logits, labels);
}

/// Panics unless there is one label per row.
#[track_caller]
fn check_label_count<T>(logits: &DMatrix<T>, labels: &[u8]) {
    if labels.len() != logits.nrows() {
        panic!(
            "cross_entropy: logits are {}x{} but there are {} labels (one per row expected)",
            logits.nrows(),
            logits.ncols(),
            labels.len()
        );
    }
}

/// Panics unless every label indexes a column.
#[track_caller]
fn check_label_range<T>(logits: &DMatrix<T>, labels: &[u8]) {
    if let Some((i, &l)) = labels
        .iter()
        .enumerate()
        .find(|&(_, &l)| usize::from(l) >= logits.ncols())
    {
        panic!(
            "cross_entropy: label {l} of sample {i} is out of range for logits of shape {}x{} ({} classes)",
            logits.nrows(),
            logits.ncols(),
            logits.ncols()
        );
    }
}

/// One pass over the logits, sample by sample (row by row): the row maximum `m_i`, the
/// shifted exponentials `e_ij = exp(x_ij - m_i)` (written into `keep` when given, in the
/// logits' layout), their sum `s_i` (into `sums` when given) and the summed loss terms
/// `(m_i - x_{i,labels[i]}) + ln s_i`. The row's values are read from memory once; the second
/// look (the exponentials) finds them in L1.
pub(super) fn cross_entropy_pass<T: RealField + Copy>(
    logits: &DMatrix<T>,
    labels: &[u8],
    mut keep: Option<&mut [T]>,
    mut sums: Option<&mut [T]>,
) -> T {
    let (rows, cols) = logits.shape();
    let x = logits.as_slice();
    let mut total = T::zero();
    for (i, &l) in labels.iter().enumerate() {
        let at = |j: usize| x[j * rows + i];
        // The same maximum and the same order of summation as `row_max_sumexp`, so the value
        // equals `cross_entropy`'s bit for bit.
        let mut m = if cols == 0 { T::zero() } else { at(0) };
        for j in 1..cols {
            let v = at(j);
            if v > m {
                m = v;
            }
        }
        let mut s = T::zero();
        for j in 0..cols {
            let e = (at(j) - m).exp();
            if let Some(keep) = keep.as_deref_mut() {
                keep[j * rows + i] = e;
            }
            s += e;
        }
        if let Some(sums) = sums.as_deref_mut() {
            sums[i] = s;
        }
        // (m - x) is exact for nearby values; adding ln s last keeps its digits at |x| ~ 1e4.
        total += (m - at(usize::from(l))) + s.ln();
    }
    total
}

/// `cross_entropy(logits, labels) = (1/B) sum_i -log softmax(logits)_{i, labels[i]}`, the mean
/// over the `B` rows (samples) of the negative log-likelihood of each sample's label.
///
/// Evaluated as `(1/B) sum_i ((m_i - logits_{i,labels[i]}) + log sum_k exp(logits_ik - m_i))`
/// with `m_i` the row maximum (log-sum-exp), so logits of magnitude `1e4` (or larger, while finite) give a finite loss.
/// `labels` are constants. Smooth in the logits everywhere. An empty batch gives NaN (0/0),
/// like PyTorch's mean reduction.
///
/// # Panics
/// If `labels.len() != logits.nrows()` or a label is `>= logits.ncols()`.
#[track_caller]
pub fn cross_entropy<T: RealField + Copy>(logits: &DMatrix<T>, labels: &[u8]) -> T {
    check_labels(logits, labels);
    cross_entropy_pass(logits, labels, None, None) / lit::<T>(logits.nrows() as f64)
}

/// [`cross_entropy`] and its pullback: `d logits = seed * (softmax(logits) - onehot(labels)) / B`;
/// `()` for the constant labels.
///
/// Fused: the forward pass goes over the logits once, sample by sample, computing the loss and
/// keeping the shifted exponentials `e_ij = exp(x_ij - m_i)` and their row sums `s_i`. The
/// pullback, called as `pb(&logits, &labels, seed, need)`, turns that buffer into the gradient
/// in place in one pass, `e_ij * (seed / (B s_i))`, and subtracts `seed / B` at each label (no
/// allocation, no exponentials, no separate normalisation or scaling pass). It reads the labels
/// from its re-passed argument; the logits are only shape-checked.
///
/// # Panics
/// As [`cross_entropy`]; the pullback panics if the re-passed logits do not have the
/// forward's shape or the re-passed labels are not one valid label per row.
#[track_caller]
pub fn cross_entropy_pullback<T: RealField + Copy>(
    logits: &DMatrix<T>,
    labels: &[u8],
) -> (
    T,
    impl FnOnce(&DMatrix<T>, &[u8], T, [bool; 2]) -> (DMatrix<T>, ()) + use<T>,
) {
    check_labels(logits, labels);
    let (rows, cols) = logits.shape();
    let mut e = Vec::with_capacity(rows * cols);
    // Every element is written by the pass below before anything reads it.
    e.resize(rows * cols, T::zero());
    let mut s = vec![T::zero(); rows];
    let total = cross_entropy_pass(logits, labels, Some(&mut e), Some(&mut s));
    let loss = total / lit::<T>(rows as f64);
    (
        loss,
        move |logits: &DMatrix<T>, labels: &[u8], seed: T, need: [bool; 2]| {
            assert_arg_shape("cross_entropy", "logits", logits, (rows, cols));
            check_label_count(logits, labels);
            if !need[0] {
                return (lazy_zero(), ());
            }
            check_label_range(logits, labels);
            let scale = seed / lit::<T>(rows as f64);
            // Per sample: softmax = e / s, times seed / B.
            for si in s.iter_mut() {
                *si = scale / *si;
            }
            for col in columns_mut(&mut e, rows) {
                for (v, &c) in col.iter_mut().zip(&s) {
                    *v *= c;
                }
            }
            for (i, &l) in labels.iter().enumerate() {
                e[usize::from(l) * rows + i] -= scale;
            }
            (DMatrix::from_vec(rows, cols, e), ())
        },
    )
}

/// [`cross_entropy`]'s value and its gradient with respect to the logits,
/// `seed * (softmax(logits) - onehot(labels)) / B` (labels are constant).
///
/// # Panics
/// As [`cross_entropy`].
#[track_caller]
pub fn cross_entropy_vjp<T: RealField + Copy>(
    logits: &DMatrix<T>,
    labels: &[u8],
    seed: T,
) -> (T, DMatrix<T>) {
    let (loss, pb) = cross_entropy_pullback(logits, labels);
    (loss, pb(logits, labels, seed, [true, true]).0)
}

//! Broadcast bias additions: `add_bias` (per feature, to every row) and `add_col_bias` (to
//! every column), and `add_bias_relu`, a linear layer's bias and ReLU fused into one pass.

use nalgebra::{DMatrix, DVector, RealField};

use super::{assert_arg_shape, assert_seed_shape, columns, columns_mut, lazy_zero};

/// Panics unless the bias handed again to a pullback has the forward's length.
#[track_caller]
fn assert_bias_len<T>(op: &str, b: &DVector<T>, len: usize) {
    if b.len() != len {
        panic!(
            "{op}: bias handed to the pullback has length {} but the forward's had length {len}",
            b.len()
        );
    }
}

/// Lazy zero of a vector gradient: an empty vector, which does not allocate.
fn lazy_zero_vec<T: RealField + Copy>() -> DVector<T> {
    DVector::zeros(0)
}

/// `add_bias(x, b)_ij = x_ij + b_j`: adds `b` to every ROW of `x` (one bias per feature, as a
/// linear layer does). Requires `b.len() == x.ncols()`. Linear; both arguments differentiable.
///
/// # Panics
/// If `b.len() != x.ncols()`.
#[track_caller]
pub fn add_bias<T: RealField + Copy>(x: &DMatrix<T>, b: &DVector<T>) -> DMatrix<T> {
    if b.len() != x.ncols() {
        panic!(
            "add_bias: x is {}x{} but bias has length {} (one per column expected)",
            x.nrows(),
            x.ncols(),
            b.len()
        );
    }
    let rows = x.nrows();
    // One pass: read x, write x + b (not a copy followed by an update).
    let mut out = Vec::with_capacity(x.len());
    for (col, &bj) in x.as_slice().chunks_exact(rows.max(1)).zip(b.iter()) {
        out.extend(col.iter().map(|&v| v + bj));
    }
    DMatrix::from_vec(rows, x.ncols(), out)
}

/// [`add_bias`] and its pullback: `dx = seed` (the seed buffer itself) and
/// `db_j = sum_i seed_ij` (column sums of the seed).
///
/// The pullback, called as `pb(&x, &b, seed, need)`, needs neither input (they are only
/// shape-checked) and captures only the shapes.
///
/// # Panics
/// If `b.len() != x.ncols()`; the pullback panics if the seed or the re-passed arguments do
/// not have the forward's shapes.
#[track_caller]
pub fn add_bias_pullback<T: RealField + Copy>(
    x: &DMatrix<T>,
    b: &DVector<T>,
) -> (
    DMatrix<T>,
    impl FnOnce(&DMatrix<T>, &DVector<T>, DMatrix<T>, [bool; 2]) -> (DMatrix<T>, DVector<T>) + use<T>,
) {
    let y = add_bias(x, b);
    let (shape, len) = (y.shape(), b.len());
    (
        y,
        move |x: &DMatrix<T>, b: &DVector<T>, seed: DMatrix<T>, need: [bool; 2]| {
            assert_arg_shape("add_bias", "x", x, shape);
            assert_bias_len("add_bias", b, len);
            assert_seed_shape("add_bias", &seed, shape);
            let db = if need[1] {
                seed.row_sum_tr()
            } else {
                lazy_zero_vec()
            };
            let dx = if need[0] { seed } else { lazy_zero() };
            (dx, db)
        },
    )
}

/// [`add_bias`]'s value and its gradients `(dx, db) = (seed, column sums of seed)`.
///
/// # Panics
/// If `b.len() != x.ncols()`.
#[track_caller]
pub fn add_bias_vjp<T: RealField + Copy>(
    x: &DMatrix<T>,
    b: &DVector<T>,
    seed: DMatrix<T>,
) -> (DMatrix<T>, (DMatrix<T>, DVector<T>)) {
    let (y, pb) = add_bias_pullback(x, b);
    (y, pb(x, b, seed, [true, true]))
}

/// `add_col_bias(x, b)_ij = x_ij + b_i`: adds `b` to every COLUMN of `x`. Requires
/// `b.len() == x.nrows()`. Linear; both arguments differentiable.
///
/// # Panics
/// If `b.len() != x.nrows()`.
#[track_caller]
pub fn add_col_bias<T: RealField + Copy>(x: &DMatrix<T>, b: &DVector<T>) -> DMatrix<T> {
    if b.len() != x.nrows() {
        panic!(
            "add_col_bias: x is {}x{} but bias has length {} (one per row expected)",
            x.nrows(),
            x.ncols(),
            b.len()
        );
    }
    let rows = x.nrows();
    let mut y = x.clone();
    for col in columns_mut(y.as_mut_slice(), rows) {
        for (v, &bi) in col.iter_mut().zip(b.iter()) {
            *v += bi;
        }
    }
    y
}

/// [`add_col_bias`] and its pullback: `dx = seed` (the seed buffer itself) and
/// `db_i = sum_j seed_ij` (row sums of the seed).
///
/// The pullback, called as `pb(&x, &b, seed, need)`, needs neither input (they are only
/// shape-checked) and captures only the shapes.
///
/// # Panics
/// If `b.len() != x.nrows()`; the pullback panics if the seed or the re-passed arguments do
/// not have the forward's shapes.
#[track_caller]
pub fn add_col_bias_pullback<T: RealField + Copy>(
    x: &DMatrix<T>,
    b: &DVector<T>,
) -> (
    DMatrix<T>,
    impl FnOnce(&DMatrix<T>, &DVector<T>, DMatrix<T>, [bool; 2]) -> (DMatrix<T>, DVector<T>) + use<T>,
) {
    let y = add_col_bias(x, b);
    let (shape, len) = (y.shape(), b.len());
    (
        y,
        move |x: &DMatrix<T>, b: &DVector<T>, seed: DMatrix<T>, need: [bool; 2]| {
            assert_arg_shape("add_col_bias", "x", x, shape);
            assert_bias_len("add_col_bias", b, len);
            assert_seed_shape("add_col_bias", &seed, shape);
            let db = if need[1] {
                seed.column_sum()
            } else {
                lazy_zero_vec()
            };
            let dx = if need[0] { seed } else { lazy_zero() };
            (dx, db)
        },
    )
}

/// [`add_col_bias`]'s value and its gradients `(dx, db) = (seed, row sums of seed)`.
///
/// # Panics
/// If `b.len() != x.nrows()`.
#[track_caller]
pub fn add_col_bias_vjp<T: RealField + Copy>(
    x: &DMatrix<T>,
    b: &DVector<T>,
    seed: DMatrix<T>,
) -> (DMatrix<T>, (DMatrix<T>, DVector<T>)) {
    let (y, pb) = add_col_bias_pullback(x, b);
    (y, pb(x, b, seed, [true, true]))
}

/// `add_bias_relu(x, b) = relu(add_bias(x, b))`, i.e. `max(x_ij + b_j, 0)`: a linear layer's
/// bias and ReLU in one pass (one read of `x`, one write of the result). Requires
/// `b.len() == x.ncols()`. The value equals `relu(&add_bias(x, b))` bit for bit; derivative 0
/// where `x_ij + b_j <= 0` (PyTorch's convention at 0, as [`super::relu`]).
///
/// # Panics
/// If `b.len() != x.ncols()`.
#[track_caller]
pub fn add_bias_relu<T: RealField + Copy>(x: &DMatrix<T>, b: &DVector<T>) -> DMatrix<T> {
    if b.len() != x.ncols() {
        panic!(
            "add_bias_relu: x is {}x{} but bias has length {} (one per column expected)",
            x.nrows(),
            x.ncols(),
            b.len()
        );
    }
    let rows = x.nrows();
    let mut out = Vec::with_capacity(x.len());
    for (col, &bj) in columns(x.as_slice(), rows).zip(b.iter()) {
        out.extend(col.iter().map(|&v| {
            let z = v + bj;
            if z <= T::zero() { T::zero() } else { z }
        }));
    }
    DMatrix::from_vec(rows, x.ncols(), out)
}

/// Lanes of the column sums of [`add_bias_relu_pullback`]: the sum of a column is taken as
/// this many interleaved partial sums (added up in a fixed order at the end), so that it
/// vectorises and is the same on every machine and thread count.
const SUM_LANES: usize = 8;

/// [`add_bias_relu`] and its pullback, fused: in one pass over the seed, `dx_ij = seed_ij`
/// where `x_ij + b_j > 0` and `0` elsewhere (the ReLU mask, written into the seed in place),
/// and `db_j = sum_i dx_ij` (the bias gradient, summed in the same pass while the column is
/// in registers).
///
/// The pullback, called as `pb(&x, &b, seed, need)`, recomputes the mask from its re-passed
/// arguments (the same `x_ij + b_j` as the forward pass, so the same mask; it captures only
/// the shapes).
///
/// # Panics
/// If `b.len() != x.ncols()`; the pullback panics if the seed or the re-passed arguments do
/// not have the forward's shapes.
#[track_caller]
pub fn add_bias_relu_pullback<T: RealField + Copy>(
    x: &DMatrix<T>,
    b: &DVector<T>,
) -> (
    DMatrix<T>,
    impl FnOnce(&DMatrix<T>, &DVector<T>, DMatrix<T>, [bool; 2]) -> (DMatrix<T>, DVector<T>) + use<T>,
) {
    let y = add_bias_relu(x, b);
    let (shape, len) = (y.shape(), b.len());
    (
        y,
        move |x: &DMatrix<T>, b: &DVector<T>, mut seed: DMatrix<T>, need: [bool; 2]| {
            assert_arg_shape("add_bias_relu", "x", x, shape);
            assert_bias_len("add_bias_relu", b, len);
            assert_seed_shape("add_bias_relu", &seed, shape);
            if need == [false, false] {
                return (lazy_zero(), lazy_zero_vec());
            }
            let rows = shape.0;
            let mut db = if need[1] {
                DVector::zeros(len)
            } else {
                lazy_zero_vec()
            };
            let cols = columns_mut(seed.as_mut_slice(), rows).zip(columns(x.as_slice(), rows));
            for (j, (g, xc)) in cols.enumerate() {
                let bj = b[j];
                // A select and an unconditional store (a conditional store does not
                // vectorise); NaN in `x + b` keeps the seed, as `relu`'s pullback does.
                let mask = |g: &mut T, v: T| {
                    *g = if v + bj <= T::zero() { T::zero() } else { *g };
                };
                if !need[1] {
                    g.iter_mut().zip(xc).for_each(|(g, &v)| mask(g, v));
                    continue;
                }
                let mut acc = [T::zero(); SUM_LANES];
                let mut g_lanes = g.chunks_exact_mut(SUM_LANES);
                let mut x_lanes = xc.chunks_exact(SUM_LANES);
                for (gl, xl) in (&mut g_lanes).zip(&mut x_lanes) {
                    for ((a, g), &v) in acc.iter_mut().zip(gl).zip(xl) {
                        mask(g, v);
                        *a += *g;
                    }
                }
                for ((a, g), &v) in acc
                    .iter_mut()
                    .zip(g_lanes.into_remainder())
                    .zip(x_lanes.remainder())
                {
                    mask(g, v);
                    *a += *g;
                }
                // ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))
                let mut width = SUM_LANES;
                while width > 1 {
                    width /= 2;
                    for k in 0..width {
                        acc[k] = acc[2 * k] + acc[2 * k + 1];
                    }
                }
                db[j] = acc[0];
            }
            let dx = if need[0] { seed } else { lazy_zero() };
            (dx, db)
        },
    )
}

/// [`add_bias_relu`]'s value and its gradients `(dx, db)`: the seed masked where
/// `x_ij + b_j <= 0`, and that masked seed's column sums.
///
/// # Panics
/// If `b.len() != x.ncols()`.
#[track_caller]
pub fn add_bias_relu_vjp<T: RealField + Copy>(
    x: &DMatrix<T>,
    b: &DVector<T>,
    seed: DMatrix<T>,
) -> (DMatrix<T>, (DMatrix<T>, DVector<T>)) {
    let (y, pb) = add_bias_relu_pullback(x, b);
    (y, pb(x, b, seed, [true, true]))
}

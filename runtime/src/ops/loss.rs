//! Scalar losses and penalties: `mse`, `l2_penalty`.

use nalgebra::{DMatrix, RealField};

use super::{assert_arg_shape, assert_same_shape, lazy_zero, lit};

/// `mse(pred, target) = (1/n) sum_ij (pred_ij - target_ij)^2`, the mean over all `n`
/// elements of the squared differences (PyTorch's `MSELoss` with mean reduction).
///
/// Both arguments are differentiable; smooth everywhere. Empty matrices give NaN (0/0).
///
/// # Panics
/// If the shapes differ.
#[track_caller]
pub fn mse<T: RealField + Copy>(pred: &DMatrix<T>, target: &DMatrix<T>) -> T {
    assert_same_shape("mse", "pred", pred, "target", target);
    mean_square(
        pred.iter().zip(target.iter()).map(|(&a, &b)| a - b),
        pred.len(),
    )
}

/// `(1/n) sum d^2`, summed in iteration order (so `mse` and `mse_pullback` agree bit for bit).
fn mean_square<T: RealField + Copy>(diffs: impl Iterator<Item = T>, n: usize) -> T {
    diffs.fold(T::zero(), |acc, d| acc + d * d) / lit::<T>(n as f64)
}

/// [`mse`] and its pullback: `d pred = (2 seed / n) (pred - target)`, `d target = -d pred`.
///
/// The forward pass allocates nothing. The pullback, called as `pb(&pred, &target, seed,
/// need)`, reads both from its re-passed arguments (it captures only the shape) and writes
/// each needed gradient straight into its own buffer (`d target` is negated from `d pred`
/// when both are needed).
///
/// # Panics
/// If the shapes differ; the pullback panics if the re-passed arguments do not have the
/// forward's shape.
#[track_caller]
pub fn mse_pullback<T: RealField + Copy>(
    pred: &DMatrix<T>,
    target: &DMatrix<T>,
) -> (
    T,
    impl FnOnce(&DMatrix<T>, &DMatrix<T>, T, [bool; 2]) -> (DMatrix<T>, DMatrix<T>) + use<T>,
) {
    let loss = mse(pred, target);
    let shape = pred.shape();
    (
        loss,
        move |pred: &DMatrix<T>, target: &DMatrix<T>, seed: T, need: [bool; 2]| {
            assert_arg_shape("mse", "pred", pred, shape);
            assert_arg_shape("mse", "target", target, shape);
            let scale = lit::<T>(2.0) * seed / lit::<T>(pred.len() as f64);
            match need {
                [true, true] => {
                    let dp = pred.zip_map(target, |p, t| (p - t) * scale);
                    let dt = -&dp;
                    (dp, dt)
                }
                [true, false] => (pred.zip_map(target, |p, t| (p - t) * scale), lazy_zero()),
                [false, true] => (lazy_zero(), pred.zip_map(target, |p, t| (t - p) * scale)),
                [false, false] => (lazy_zero(), lazy_zero()),
            }
        },
    )
}

/// [`mse`]'s value and its gradients `(d pred, d target)`, scaled by `seed`.
///
/// # Panics
/// If the shapes differ.
#[track_caller]
pub fn mse_vjp<T: RealField + Copy>(
    pred: &DMatrix<T>,
    target: &DMatrix<T>,
    seed: T,
) -> (T, (DMatrix<T>, DMatrix<T>)) {
    let (loss, pb) = mse_pullback(pred, target);
    (loss, pb(pred, target, seed, [true, true]))
}

/// `l2_penalty(w) = 0.5 * sum_ij w_ij^2` — the weight-decay term; note the factor `1/2`, so
/// that the gradient is exactly `w` (times the seed). Not averaged over anything.
pub fn l2_penalty<T: RealField + Copy>(w: &DMatrix<T>) -> T {
    lit::<T>(0.5) * w.norm_squared()
}

/// [`l2_penalty`] and its pullback: `dw = seed * w`.
///
/// The pullback, called as `pb(&w, seed, need)`, reads `w` from its re-passed argument (it
/// captures only the shape).
pub fn l2_penalty_pullback<T: RealField + Copy>(
    w: &DMatrix<T>,
) -> (
    T,
    impl FnOnce(&DMatrix<T>, T, [bool; 1]) -> (DMatrix<T>,) + use<T>,
) {
    let shape = w.shape();
    (
        l2_penalty(w),
        move |w: &DMatrix<T>, seed: T, need: [bool; 1]| {
            assert_arg_shape("l2_penalty", "w", w, shape);
            if !need[0] {
                return (lazy_zero(),);
            }
            (w * seed,)
        },
    )
}

/// [`l2_penalty`]'s value and its gradient `seed * w`.
pub fn l2_penalty_vjp<T: RealField + Copy>(w: &DMatrix<T>, seed: T) -> (T, DMatrix<T>) {
    let (v, pb) = l2_penalty_pullback(w);
    (v, pb(w, seed, [true]).0)
}

//! Dropout with an explicit, pre-scaled mask.

use nalgebra::{DMatrix, RealField};
use rand::Rng;

use super::{assert_arg_shape, assert_same_shape, assert_seed_shape, lazy_zero, lit};

/// `dropout(x, mask) = x .* mask`, elementwise.
///
/// `mask` is a constant, already scaled by `1 / (1 - p)` (inverted dropout), as made by
/// [`dropout_mask`]. Linear in `x`, so the derivative is `mask` everywhere.
///
/// # Panics
/// If the shapes differ.
#[track_caller]
pub fn dropout<T: RealField + Copy>(x: &DMatrix<T>, mask: &DMatrix<T>) -> DMatrix<T> {
    assert_same_shape("dropout", "x", x, "mask", mask);
    x.component_mul(mask)
}

/// [`dropout`] and its pullback: `dx = seed .* mask`; `()` for the constant mask.
///
/// The pullback, called as `pb(&x, &mask, seed, need)`, reads the mask from its re-passed
/// argument (it captures only the shape) and multiplies the seed in place.
///
/// # Panics
/// If the shapes differ; the pullback panics if the seed or the re-passed arguments do not
/// have the forward's shape.
#[track_caller]
pub fn dropout_pullback<T: RealField + Copy>(
    x: &DMatrix<T>,
    mask: &DMatrix<T>,
) -> (
    DMatrix<T>,
    impl FnOnce(&DMatrix<T>, &DMatrix<T>, DMatrix<T>, [bool; 2]) -> (DMatrix<T>, ()) + use<T>,
) {
    let y = dropout(x, mask);
    let shape = y.shape();
    (
        y,
        move |x: &DMatrix<T>, mask: &DMatrix<T>, mut seed: DMatrix<T>, need: [bool; 2]| {
            assert_arg_shape("dropout", "x", x, shape);
            assert_arg_shape("dropout", "mask", mask, shape);
            assert_seed_shape("dropout", &seed, shape);
            if !need[0] {
                return (lazy_zero(), ());
            }
            seed.component_mul_assign(mask);
            (seed, ())
        },
    )
}

/// [`dropout`]'s value and its gradient `seed .* mask` (the mask is constant).
///
/// # Panics
/// If the shapes differ.
#[track_caller]
pub fn dropout_vjp<T: RealField + Copy>(
    x: &DMatrix<T>,
    mask: &DMatrix<T>,
    seed: DMatrix<T>,
) -> (DMatrix<T>, DMatrix<T>) {
    let (y, pb) = dropout_pullback(x, mask);
    (y, pb(x, mask, seed, [true, true]).0)
}

/// A `rows x cols` inverted-dropout mask: each entry is independently `0` with probability
/// `p` and `1 / (1 - p)` otherwise, so `E[x .* mask] = x`.
///
/// Entries are drawn in column-major order from `rng` (one `f64` per entry; an entry is
/// dropped when the draw is `< p`), so a seeded rng gives a reproducible mask. `p = 0` gives
/// all ones, `p = 1` all zeros.
///
/// # Panics
/// If `p` is not in `[0, 1]`.
#[track_caller]
pub fn dropout_mask<T: RealField + Copy, R: Rng + ?Sized>(
    rows: usize,
    cols: usize,
    p: f64,
    rng: &mut R,
) -> DMatrix<T> {
    assert!(
        (0.0..=1.0).contains(&p),
        "dropout_mask: drop probability p = {p} is not in [0, 1]"
    );
    if p >= 1.0 {
        return DMatrix::zeros(rows, cols);
    }
    let keep: T = lit(1.0 / (1.0 - p));
    DMatrix::from_fn(rows, cols, |_, _| {
        if rng.gen_range(0.0..1.0) < p {
            T::zero()
        } else {
            keep
        }
    })
}

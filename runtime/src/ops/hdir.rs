//! Tangent rules of the tensor functions for the second order (`#[differentiable(hessian)]`),
//! written as differentiable functions: `__f_hdir`, the directional-derivative function that
//! the macro writes for a `hessian` function, computes the tangent of `relu(x)` as
//! `relu_dir(&y, &dx)` (with `y = relu(x)`), and the reverse mode then differentiates that
//! call like any other, through `relu_dir_pullback`. So each rule here has a value, which is
//! the forward-mode tangent of the tensor function, and a pullback with respect to both the
//! primal (second derivatives of the function) and the tangent (the first derivative again).
//!
//! The primal argument of the activations is their *output* `y` (available in `__f_hdir`
//! without recomputation): `relu'(x) = [y > 0]`, `sigmoid' = y (1 - y)`, `tanh' = 1 - y²`,
//! and the softmax Jacobian is a function of `y` only. `cross_entropy_dir` takes the logits.
//!
//! Linear functions need no rule: `matmul_nt`, `add_bias`, `+`, `-`, transposes, sums apply to
//! the tangents as they are.

use nalgebra::{DMatrix, RealField};

use super::softmax::softmax_parts;
use super::{assert_arg_shape, assert_same_shape, assert_seed_shape, lazy_zero, lit};

/// The row sums of `a .* b`.
fn row_dots<T: RealField + Copy>(a: &DMatrix<T>, b: &DMatrix<T>) -> Vec<T> {
    let rows = a.nrows();
    let mut r = vec![T::zero(); rows];
    for (k, (&x, &y)) in a.iter().zip(b.iter()).enumerate() {
        r[k % rows] += x * y;
    }
    r
}

/// The tangent of `relu` at an input whose output is `y`, along `dx`: `dx` where `y > 0`,
/// 0 elsewhere (0 at a kink, as `relu`'s pullback).
#[track_caller]
pub fn relu_dir<T: RealField + Copy>(y: &DMatrix<T>, dx: &DMatrix<T>) -> DMatrix<T> {
    assert_same_shape("relu_dir", "y", y, "dx", dx);
    y.zip_map(dx, |v, d| if v > T::zero() { d } else { T::zero() })
}

/// [`relu_dir`] and its pullback: `d dx = seed` where `y > 0`; `d y = 0` (the mask is
/// piecewise constant).
#[track_caller]
pub fn relu_dir_pullback<T: RealField + Copy>(
    y: &DMatrix<T>,
    dx: &DMatrix<T>,
) -> (
    DMatrix<T>,
    impl FnOnce(&DMatrix<T>, &DMatrix<T>, DMatrix<T>, [bool; 2]) -> (DMatrix<T>, DMatrix<T>) + use<T>,
) {
    let shape = y.shape();
    (
        relu_dir(y, dx),
        move |y: &DMatrix<T>, _dx: &DMatrix<T>, mut seed: DMatrix<T>, need: [bool; 2]| {
            assert_arg_shape("relu_dir", "y", y, shape);
            assert_seed_shape("relu_dir", &seed, shape);
            if !need[1] {
                return (lazy_zero(), lazy_zero());
            }
            for (g, &v) in seed.iter_mut().zip(y.iter()) {
                if v <= T::zero() {
                    *g = T::zero();
                }
            }
            (lazy_zero(), seed)
        },
    )
}

/// The tangent of an element-wise activation whose derivative is `d(y)` at output `y`:
/// `d(y) .* dx`.
#[track_caller]
fn act_dir<T: RealField + Copy>(
    name: &str,
    y: &DMatrix<T>,
    dx: &DMatrix<T>,
    d: fn(T) -> T,
) -> DMatrix<T> {
    assert_same_shape(name, "y", y, "dx", dx);
    y.zip_map(dx, |v, t| d(v) * t)
}

/// [`act_dir`] and its pullback: `d y = seed dx d'(y)` (`dd` is `d'`), `d dx = seed d(y)`.
#[track_caller]
fn act_dir_pullback<T: RealField + Copy>(
    name: &'static str,
    y: &DMatrix<T>,
    dx: &DMatrix<T>,
    d: fn(T) -> T,
    dd: fn(T) -> T,
) -> (
    DMatrix<T>,
    impl FnOnce(&DMatrix<T>, &DMatrix<T>, DMatrix<T>, [bool; 2]) -> (DMatrix<T>, DMatrix<T>) + use<T>,
) {
    let shape = y.shape();
    (
        act_dir(name, y, dx, d),
        move |y: &DMatrix<T>, dx: &DMatrix<T>, seed: DMatrix<T>, need: [bool; 2]| {
            assert_arg_shape(name, "y", y, shape);
            assert_arg_shape(name, "dx", dx, shape);
            assert_seed_shape(name, &seed, shape);
            let gy = if need[0] {
                let mut g = seed.component_mul(dx);
                for (g, &v) in g.iter_mut().zip(y.iter()) {
                    *g *= dd(v);
                }
                g
            } else {
                lazy_zero()
            };
            let gd = if need[1] {
                let mut g = seed;
                for (g, &v) in g.iter_mut().zip(y.iter()) {
                    *g *= d(v);
                }
                g
            } else {
                lazy_zero()
            };
            (gy, gd)
        },
    )
}

fn sigmoid_d<T: RealField + Copy>(v: T) -> T {
    v * (T::one() - v)
}

fn sigmoid_dd<T: RealField + Copy>(v: T) -> T {
    T::one() - lit::<T>(2.0) * v
}

fn tanh_d<T: RealField + Copy>(v: T) -> T {
    T::one() - v * v
}

fn tanh_dd<T: RealField + Copy>(v: T) -> T {
    -lit::<T>(2.0) * v
}

/// The tangent of `sigmoid` at an input whose output is `y`, along `dx`: `y (1 - y) dx`.
#[track_caller]
pub fn sigmoid_dir<T: RealField + Copy>(y: &DMatrix<T>, dx: &DMatrix<T>) -> DMatrix<T> {
    act_dir("sigmoid_dir", y, dx, sigmoid_d)
}

/// [`sigmoid_dir`] and its pullback: `d y = seed dx (1 - 2y)`, `d dx = seed y (1 - y)`.
#[track_caller]
pub fn sigmoid_dir_pullback<T: RealField + Copy>(
    y: &DMatrix<T>,
    dx: &DMatrix<T>,
) -> (
    DMatrix<T>,
    impl FnOnce(&DMatrix<T>, &DMatrix<T>, DMatrix<T>, [bool; 2]) -> (DMatrix<T>, DMatrix<T>) + use<T>,
) {
    act_dir_pullback("sigmoid_dir", y, dx, sigmoid_d, sigmoid_dd)
}

/// The tangent of `tanh` at an input whose output is `y`, along `dx`: `(1 - y²) dx`.
#[track_caller]
pub fn tanh_dir<T: RealField + Copy>(y: &DMatrix<T>, dx: &DMatrix<T>) -> DMatrix<T> {
    act_dir("tanh_dir", y, dx, tanh_d)
}

/// [`tanh_dir`] and its pullback: `d y = -2 seed dx y`, `d dx = seed (1 - y²)`.
#[track_caller]
pub fn tanh_dir_pullback<T: RealField + Copy>(
    y: &DMatrix<T>,
    dx: &DMatrix<T>,
) -> (
    DMatrix<T>,
    impl FnOnce(&DMatrix<T>, &DMatrix<T>, DMatrix<T>, [bool; 2]) -> (DMatrix<T>, DMatrix<T>) + use<T>,
) {
    act_dir_pullback("tanh_dir", y, dx, tanh_d, tanh_dd)
}

/// The tangent of the row-wise `softmax` at an input whose output is `y`, along `dx`:
/// `y .* (dx - r)` with `r_i = sum_j y_ij dx_ij` per row.
#[track_caller]
pub fn softmax_dir<T: RealField + Copy>(y: &DMatrix<T>, dx: &DMatrix<T>) -> DMatrix<T> {
    assert_same_shape("softmax_dir", "y", y, "dx", dx);
    let rows = y.nrows();
    let r = row_dots(y, dx);
    let mut out = dx.clone();
    for (k, (o, &v)) in out.iter_mut().zip(y.iter()).enumerate() {
        *o = v * (*o - r[k % rows]);
    }
    out
}

/// [`softmax_dir`] and its pullback, with `g` the seed, `r = rowsum(y .* dx)` and
/// `q = rowsum(g .* y)`: `d dx = y .* (g - q)`, `d y = g .* (dx - r) - dx .* q`.
#[track_caller]
pub fn softmax_dir_pullback<T: RealField + Copy>(
    y: &DMatrix<T>,
    dx: &DMatrix<T>,
) -> (
    DMatrix<T>,
    impl FnOnce(&DMatrix<T>, &DMatrix<T>, DMatrix<T>, [bool; 2]) -> (DMatrix<T>, DMatrix<T>) + use<T>,
) {
    let shape = y.shape();
    (
        softmax_dir(y, dx),
        move |y: &DMatrix<T>, dx: &DMatrix<T>, seed: DMatrix<T>, need: [bool; 2]| {
            assert_arg_shape("softmax_dir", "y", y, shape);
            assert_arg_shape("softmax_dir", "dx", dx, shape);
            assert_seed_shape("softmax_dir", &seed, shape);
            let rows = shape.0;
            let q = row_dots(&seed, y);
            let gy = if need[0] {
                let r = row_dots(y, dx);
                let mut g = seed.clone();
                for (k, (g, &d)) in g.iter_mut().zip(dx.iter()).enumerate() {
                    *g = *g * (d - r[k % rows]) - d * q[k % rows];
                }
                g
            } else {
                lazy_zero()
            };
            let gd = if need[1] {
                let mut g = seed;
                for (k, (g, &v)) in g.iter_mut().zip(y.iter()).enumerate() {
                    *g = v * (*g - q[k % rows]);
                }
                g
            } else {
                lazy_zero()
            };
            (gy, gd)
        },
    )
}

/// The tangent of `cross_entropy(logits, labels)` along `dlogits`:
/// `(1/B) sum_ij (softmax(logits) - onehot(labels))_ij dlogits_ij`.
///
/// # Panics
/// As `cross_entropy`, or if `dlogits` does not have the logits' shape.
#[track_caller]
pub fn cross_entropy_dir<T: RealField + Copy>(
    logits: &DMatrix<T>,
    labels: &[u8],
    dlogits: &DMatrix<T>,
) -> T {
    cross_entropy_dir_pullback(logits, labels, dlogits).0
}

/// [`cross_entropy_dir`] and its pullback, with `p = softmax(logits)`, `c = seed / B` and
/// `r = rowsum(p .* dlogits)`: `d logits = c p .* (dlogits - r)` (the softmax Hessian applied
/// to `dlogits`), `d dlogits = c (p - onehot(labels))`, `()` for the labels.
#[track_caller]
pub fn cross_entropy_dir_pullback<T: RealField + Copy>(
    logits: &DMatrix<T>,
    labels: &[u8],
    dlogits: &DMatrix<T>,
) -> (
    T,
    impl FnOnce(&DMatrix<T>, &[u8], &DMatrix<T>, T, [bool; 3]) -> (DMatrix<T>, (), DMatrix<T>) + use<T>,
) {
    assert_same_shape("cross_entropy_dir", "logits", logits, "dlogits", dlogits);
    let (rows, cols) = logits.shape();
    assert_eq!(
        labels.len(),
        rows,
        "cross_entropy_dir: {} labels for {} rows of logits",
        labels.len(),
        rows
    );
    for &l in labels {
        assert!(
            usize::from(l) < cols,
            "cross_entropy_dir: label {l} out of range for {cols} classes"
        );
    }
    let (p, _, _) = softmax_parts(logits);
    let mut total = T::zero();
    for (&pv, &d) in p.iter().zip(dlogits.iter()) {
        total += pv * d;
    }
    for (i, &l) in labels.iter().enumerate() {
        total -= dlogits[(i, usize::from(l))];
    }
    let value = total / lit::<T>(rows as f64);
    (
        value,
        move |logits: &DMatrix<T>,
              labels: &[u8],
              dlogits: &DMatrix<T>,
              seed: T,
              need: [bool; 3]| {
            assert_arg_shape("cross_entropy_dir", "logits", logits, (rows, cols));
            assert_arg_shape("cross_entropy_dir", "dlogits", dlogits, (rows, cols));
            let c = seed / lit::<T>(rows as f64);
            let gz = if need[0] {
                let r = row_dots(&p, dlogits);
                let mut g = dlogits.clone();
                for (k, (g, &pv)) in g.iter_mut().zip(p.iter()).enumerate() {
                    *g = c * pv * (*g - r[k % rows]);
                }
                g
            } else {
                lazy_zero()
            };
            let gd = if need[2] {
                let mut g = p;
                g.iter_mut().for_each(|v| *v *= c);
                for (i, &l) in labels.iter().enumerate() {
                    g[(i, usize::from(l))] -= c;
                }
                g
            } else {
                lazy_zero()
            };
            (gz, (), gd)
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{cross_entropy, relu, sigmoid, softmax, tanh};

    fn mat(rows: usize, cols: usize, seed: u64) -> DMatrix<f64> {
        // A small deterministic generator: values in (-1.5, 1.5), none at 0.
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        DMatrix::from_fn(rows, cols, |_, _| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let u = ((s >> 11) as f64) / ((1u64 << 53) as f64);
            let v = 3.0 * u - 1.5;
            if v.abs() < 0.05 { 0.3 } else { v }
        })
    }

    fn dot(a: &DMatrix<f64>, b: &DMatrix<f64>) -> f64 {
        a.component_mul(b).sum()
    }

    /// Central difference of `f` at `x` along `d`.
    fn fd<F: Fn(&DMatrix<f64>) -> DMatrix<f64>>(
        f: F,
        x: &DMatrix<f64>,
        d: &DMatrix<f64>,
    ) -> DMatrix<f64> {
        let h = 1e-6;
        (f(&(x + d * h)) - f(&(x - d * h))) / (2.0 * h)
    }

    fn close(a: &DMatrix<f64>, b: &DMatrix<f64>, tol: f64) {
        let scale = 1.0 + b.amax();
        assert!((a - b).amax() < tol * scale, "{a} vs {b}");
    }

    /// Each activation's `_dir` value is the finite difference of the activation along `dx`,
    /// and its pullback the finite differences of `<seed, dir(y(x), dx)>` with respect to `x`
    /// (through `y`) and to `dx`.
    #[test]
    fn activation_rules_against_finite_differences() {
        type Act = fn(&DMatrix<f64>) -> DMatrix<f64>;
        type Dir = fn(&DMatrix<f64>, &DMatrix<f64>) -> DMatrix<f64>;
        let cases: [(&str, Act, Dir); 4] = [
            ("relu", relu, relu_dir),
            ("sigmoid", sigmoid, sigmoid_dir),
            ("tanh", tanh, tanh_dir),
            ("softmax", softmax, softmax_dir),
        ];
        let (x, dx, seed, u) = (mat(3, 4, 1), mat(3, 4, 2), mat(3, 4, 3), mat(3, 4, 4));
        for (name, act, dir) in cases {
            let y = act(&x);
            let t = dir(&y, &dx);
            close(&t, &fd(act, &x, &dx), 1e-7);
            // <seed, dir(act(x), dx)> as a function of x and of dx.
            let (gy, gd) = match name {
                "relu" => {
                    let (v, pb) = relu_dir_pullback(&y, &dx);
                    assert_eq!(v, t);
                    pb(&y, &dx, seed.clone(), [true, true])
                }
                "sigmoid" => {
                    let (v, pb) = sigmoid_dir_pullback(&y, &dx);
                    assert_eq!(v, t);
                    pb(&y, &dx, seed.clone(), [true, true])
                }
                "tanh" => {
                    let (v, pb) = tanh_dir_pullback(&y, &dx);
                    assert_eq!(v, t);
                    pb(&y, &dx, seed.clone(), [true, true])
                }
                _ => {
                    let (v, pb) = softmax_dir_pullback(&y, &dx);
                    assert_eq!(v, t);
                    pb(&y, &dx, seed.clone(), [true, true])
                }
            };
            // d/d dx along u.
            let along_d = dot(&fd(|d| dir(&y, d), &dx, &u), &seed);
            assert!((dot(&gd, &u) - along_d).abs() < 1e-7, "{name}: d dx");
            // d/d y along u (relu: the mask is constant, its gradient 0).
            let along_y = dot(&fd(|yy| dir(yy, &dx), &y, &u), &seed);
            let got = if gy.is_empty() { 0.0 } else { dot(&gy, &u) };
            if name == "relu" {
                assert_eq!(got, 0.0);
            } else {
                assert!(
                    (got - along_y).abs() < 1e-7,
                    "{name}: d y {got} vs {along_y}"
                );
            }
        }
    }

    /// The value is the finite difference of `cross_entropy` along `dlogits`; the pullback
    /// gives the finite differences with respect to the logits and to `dlogits`.
    #[test]
    fn cross_entropy_rule_against_finite_differences() {
        let (z, dz, u) = (mat(4, 3, 5), mat(4, 3, 6), mat(4, 3, 7));
        let labels = [0u8, 2, 1, 2];
        let h = 1e-6;
        let ce = |z: &DMatrix<f64>| cross_entropy(z, &labels);
        let along = (ce(&(&z + &dz * h)) - ce(&(&z - &dz * h))) / (2.0 * h);
        let (v, pb) = cross_entropy_dir_pullback(&z, &labels, &dz);
        assert!((v - along).abs() < 1e-8, "{v} vs {along}");
        assert_eq!(v, cross_entropy_dir(&z, &labels, &dz));
        let (gz, (), gd) = pb(&z, &labels, &dz, 2.0, [true, false, true]);
        let dir = |z: &DMatrix<f64>, d: &DMatrix<f64>| 2.0 * cross_entropy_dir(z, &labels, d);
        let fz = (dir(&(&z + &u * h), &dz) - dir(&(&z - &u * h), &dz)) / (2.0 * h);
        let fd_ = (dir(&z, &(&dz + &u * h)) - dir(&z, &(&dz - &u * h))) / (2.0 * h);
        assert!((dot(&gz, &u) - fz).abs() < 1e-7, "{} vs {fz}", dot(&gz, &u));
        assert!(
            (dot(&gd, &u) - fd_).abs() < 1e-7,
            "{} vs {fd_}",
            dot(&gd, &u)
        );
        // Not needed: lazy zeros.
        let (_, pb) = cross_entropy_dir_pullback(&z, &labels, &dz);
        let (gz, (), gd) = pb(&z, &labels, &dz, 1.0, [false, false, false]);
        assert!(gz.is_empty() && gd.is_empty());
    }

    /// A wrong rule is caught: the harness is able to fail.
    #[test]
    fn checks_can_fail() {
        let (x, dx) = (mat(3, 4, 1), mat(3, 4, 2));
        let y = tanh(&x);
        let wrong = y.zip_map(&dx, |v, d| (1.0 - v * v) * d * 1.001);
        let r = std::panic::catch_unwind(|| close(&wrong, &fd(tanh, &x, &dx), 1e-7));
        assert!(r.is_err());
    }
}

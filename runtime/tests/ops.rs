//! Checks of `symgrad_runtime::ops`: every gradient is compared with central finite
//! differences of the plain forward function (or with a hand derivation), never with the
//! code's own gradient.

use nalgebra::{DMatrix, DVector};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use symgrad_runtime::ops::*;

/// Finite-difference step.
const H: f64 = 1e-5;
/// Relative tolerance of the gradient comparisons.
const RTOL: f64 = 1e-6;
/// Absolute floor, for the round-off of central differences (~1e-16 * |loss| / H).
const ATOL: f64 = 1e-8;
/// Random trials (random shapes) per check.
const TRIALS: u64 = 4;

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

fn rand_shape(rng: &mut ChaCha8Rng) -> (usize, usize) {
    (rng.gen_range(1..=5), rng.gen_range(1..=6))
}

fn rand_mat(rng: &mut ChaCha8Rng, r: usize, c: usize) -> DMatrix<f64> {
    DMatrix::from_fn(r, c, |_, _| rng.gen_range(-2.0..2.0))
}

/// Entries with `0.1 <= |x| <= 2`, so `x ± H` never crosses the kink at 0.
fn rand_mat_off_zero(rng: &mut ChaCha8Rng, r: usize, c: usize) -> DMatrix<f64> {
    DMatrix::from_fn(r, c, |_, _| {
        let m = rng.gen_range(0.1..2.0);
        if rng.gen_bool(0.5) { m } else { -m }
    })
}

fn rand_vec(rng: &mut ChaCha8Rng, n: usize) -> DVector<f64> {
    DVector::from_fn(n, |_, _| rng.gen_range(-2.0..2.0))
}

/// Central differences of a scalar function of a flat parameter list.
fn fd(x: &[f64], f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    let mut xp = x.to_vec();
    (0..x.len())
        .map(|k| {
            xp[k] = x[k] + H;
            let fp = f(&xp);
            xp[k] = x[k] - H;
            let fm = f(&xp);
            xp[k] = x[k];
            (fp - fm) / (2.0 * H)
        })
        .collect()
}

fn fd_mat(x: &DMatrix<f64>, f: impl Fn(&DMatrix<f64>) -> f64) -> DMatrix<f64> {
    let (r, c) = x.shape();
    let g = fd(x.as_slice(), |v| f(&DMatrix::from_column_slice(r, c, v)));
    DMatrix::from_vec(r, c, g)
}

fn fd_vec(x: &DVector<f64>, f: impl Fn(&DVector<f64>) -> f64) -> DVector<f64> {
    DVector::from_vec(fd(x.as_slice(), |v| f(&DVector::from_column_slice(v))))
}

#[track_caller]
fn assert_close(what: &str, got: &[f64], want: &[f64]) {
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: length {} vs {}",
        got.len(),
        want.len()
    );
    for (k, (&g, &w)) in got.iter().zip(want).enumerate() {
        let tol = RTOL * g.abs().max(w.abs()) + ATOL;
        assert!(
            (g - w).abs() <= tol,
            "{what}: entry {k}: got {g:e}, expected {w:e} (diff {:e} > tol {tol:e})",
            (g - w).abs()
        );
    }
}

#[track_caller]
fn assert_mat_close(what: &str, got: &DMatrix<f64>, want: &DMatrix<f64>) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    assert_close(what, got.as_slice(), want.as_slice());
}

#[track_caller]
fn assert_lazy_zero(what: &str, m: &DMatrix<f64>) {
    assert_eq!(m.shape(), (0, 0), "{what}: expected the lazy zero 0x0");
}

/// `<s, m>`, the loss whose gradient a seed `s` pulls back.
fn dot(s: &DMatrix<f64>, m: &DMatrix<f64>) -> f64 {
    s.component_mul(m).sum()
}

/// Checks a matrix -> matrix function with one differentiable parameter: for random shapes,
/// random `x` and a random seed `s`, both `pullback(x, s)` and `vjp(x, s)` (each returning
/// value and gradient) must give the forward value and the finite-difference gradient of
/// `x -> <s, forward(x)>`.
fn check_unary(
    name: &str,
    seed: u64,
    off_zero: bool,
    forward: impl Fn(&DMatrix<f64>) -> DMatrix<f64>,
    pullback: impl Fn(&DMatrix<f64>, DMatrix<f64>) -> (DMatrix<f64>, DMatrix<f64>),
    vjp: impl Fn(&DMatrix<f64>, DMatrix<f64>) -> (DMatrix<f64>, DMatrix<f64>),
) {
    let mut rng = rng(seed);
    for trial in 0..TRIALS {
        let (r, c) = rand_shape(&mut rng);
        let x = if off_zero {
            rand_mat_off_zero(&mut rng, r, c)
        } else {
            rand_mat(&mut rng, r, c)
        };
        let s = rand_mat(&mut rng, r, c);
        let want = fd_mat(&x, |x| dot(&s, &forward(x)));
        let y = forward(&x);
        for (form, (v, g)) in [
            ("pullback", pullback(&x, s.clone())),
            ("vjp", vjp(&x, s.clone())),
        ] {
            let what = format!("{name} {form} trial {trial} ({r}x{c})");
            assert_eq!(v, y, "{what}: value differs from the forward function");
            assert_mat_close(&what, &g, &want);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// relu / leaky_relu / sigmoid / tanh

#[test]
fn relu_matches_finite_differences() {
    check_unary(
        "relu",
        1,
        true,
        relu,
        |x, s| {
            let (y, pb) = relu_pullback(x);
            (y, pb(x, s, [true]).0)
        },
        relu_vjp,
    );
}

#[test]
fn relu_values_and_derivative_at_zero() {
    let x = DMatrix::from_row_slice(1, 4, &[-1.5, 0.0, 2.0, -0.0]);
    assert_eq!(
        relu(&x),
        DMatrix::from_row_slice(1, 4, &[0.0, 0.0, 2.0, 0.0])
    );
    // d relu / dx is 0 at x = 0 (PyTorch's convention), 1 for x > 0.
    let (_, g) = relu_vjp(&x, DMatrix::from_element(1, 4, 3.0));
    assert_eq!(g, DMatrix::from_row_slice(1, 4, &[0.0, 0.0, 3.0, 0.0]));
}

#[test]
fn leaky_relu_matches_finite_differences() {
    for slope in [0.01, 0.2, -0.5] {
        check_unary(
            "leaky_relu",
            2,
            true,
            |x| leaky_relu(x, slope),
            |x, s| {
                let (y, pb) = leaky_relu_pullback(x, slope);
                let (g, ()) = pb(x, slope, s, [true, false]);
                (y, g)
            },
            |x, s| leaky_relu_vjp(x, slope, s),
        );
    }
}

#[test]
fn leaky_relu_values_and_derivative_at_zero() {
    let x = DMatrix::from_row_slice(1, 3, &[-2.0, 0.0, 3.0]);
    assert_eq!(
        leaky_relu(&x, 0.1),
        DMatrix::from_row_slice(1, 3, &[-0.2, 0.0, 3.0])
    );
    // derivative at 0 is the slope (PyTorch's convention)
    let (_, g) = leaky_relu_vjp(&x, 0.1, DMatrix::from_element(1, 3, 2.0));
    assert_eq!(g, DMatrix::from_row_slice(1, 3, &[0.2, 0.2, 2.0]));
}

#[test]
fn sigmoid_matches_finite_differences() {
    check_unary(
        "sigmoid",
        3,
        false,
        sigmoid,
        |x, s| {
            let (y, pb) = sigmoid_pullback(x);
            (y, pb(x, s, [true]).0)
        },
        sigmoid_vjp,
    );
}

#[test]
fn sigmoid_values_are_stable() {
    let x = DMatrix::from_row_slice(1, 4, &[0.0, 1000.0, -1000.0, 2.0]);
    let y = sigmoid(&x);
    assert_eq!(y[0], 0.5);
    assert_eq!(y[1], 1.0);
    assert_eq!(y[2], 0.0);
    assert!((y[3] - 1.0 / (1.0 + (-2.0f64).exp())).abs() < 1e-15);
    // sigmoid'(0) = 1/4
    let (_, g) = sigmoid_vjp(
        &DMatrix::from_element(1, 1, 0.0),
        DMatrix::from_element(1, 1, 1.0),
    );
    assert_eq!(g[0], 0.25);
}

#[test]
fn tanh_matches_finite_differences() {
    check_unary(
        "tanh",
        4,
        false,
        tanh,
        |x, s| {
            let (y, pb) = tanh_pullback(x);
            (y, pb(x, s, [true]).0)
        },
        tanh_vjp,
    );
}

#[test]
fn tanh_is_elementwise() {
    // Elementwise, not the matrix function: off-diagonal zeros stay zero.
    let x = DMatrix::from_row_slice(2, 2, &[0.5, 0.0, 0.0, -1.0]);
    let y = tanh(&x);
    assert_eq!(
        y,
        DMatrix::from_row_slice(2, 2, &[0.5f64.tanh(), 0.0, 0.0, (-1.0f64).tanh()])
    );
}

// ---------------------------------------------------------------------------------------------
// softmax / log_softmax

#[test]
fn softmax_matches_finite_differences() {
    check_unary(
        "softmax",
        5,
        false,
        softmax,
        |x, s| {
            let (y, pb) = softmax_pullback(x);
            (y, pb(x, s, [true]).0)
        },
        softmax_vjp,
    );
}

#[test]
fn log_softmax_matches_finite_differences() {
    check_unary(
        "log_softmax",
        6,
        false,
        log_softmax,
        |x, s| {
            let (y, pb) = log_softmax_pullback(x);
            (y, pb(x, s, [true]).0)
        },
        log_softmax_vjp,
    );
}

#[test]
fn softmax_hand_derived_1x3() {
    // x = [0, ln 2, ln 3]  =>  exp(x) = [1, 2, 3], sum = 6
    //   softmax(x)     = [1/6, 2/6, 3/6] = [1/6, 1/3, 1/2]
    //   log_softmax(x) = [ln(1/6), ln(1/3), ln(1/2)]
    let x = DMatrix::from_row_slice(1, 3, &[0.0, 2f64.ln(), 3f64.ln()]);
    let want = [1.0 / 6.0, 1.0 / 3.0, 1.0 / 2.0];
    assert_close("softmax 1x3", softmax(&x).as_slice(), &want);
    let want_log: Vec<f64> = want.iter().map(|p| p.ln()).collect();
    assert_close("log_softmax 1x3", log_softmax(&x).as_slice(), &want_log);
    // Shifting a row by a constant changes nothing (and does not overflow).
    let shifted = x.add_scalar(1e4);
    assert_close("softmax shifted", softmax(&shifted).as_slice(), &want);
    // Seed e_0 through softmax: d p_0 / d x_j = p_0 (δ_0j - p_j)
    //   = [1/6 * 5/6, -1/6 * 1/3, -1/6 * 1/2] = [5/36, -1/18, -1/12]
    let (_, g) = softmax_vjp(&x, DMatrix::from_row_slice(1, 3, &[1.0, 0.0, 0.0]));
    assert_close(
        "softmax grad 1x3",
        g.as_slice(),
        &[5.0 / 36.0, -1.0 / 18.0, -1.0 / 12.0],
    );
}

#[test]
fn softmax_is_per_row() {
    // Two samples: rows normalise independently.
    let x = DMatrix::from_row_slice(2, 2, &[0.0, 0.0, 3f64.ln(), 0.0]);
    // row 0: [1/2, 1/2]; row 1: exp = [3, 1] -> [3/4, 1/4]
    let p = softmax(&x);
    assert_close(
        "softmax rows",
        p.transpose().as_slice(),
        &[0.5, 0.5, 0.75, 0.25],
    );
}

// ---------------------------------------------------------------------------------------------
// cross_entropy

fn rand_labels(rng: &mut ChaCha8Rng, n: usize, classes: usize) -> Vec<u8> {
    (0..n).map(|_| rng.gen_range(0..classes) as u8).collect()
}

#[test]
fn cross_entropy_matches_finite_differences() {
    let mut rng = rng(7);
    for trial in 0..TRIALS {
        let (r, c) = rand_shape(&mut rng);
        let logits = rand_mat(&mut rng, r, c);
        let labels = rand_labels(&mut rng, r, c);
        let seed = rng.gen_range(0.5..2.0);
        let want = fd_mat(&logits, |x| cross_entropy(x, &labels)) * seed;
        let value = cross_entropy(&logits, &labels);

        let (v, pb) = cross_entropy_pullback(&logits, &labels);
        assert_eq!(v, value);
        let (g, ()) = pb(&logits, &labels, seed, [true, false]);
        assert_mat_close(&format!("cross_entropy pullback trial {trial}"), &g, &want);

        let (v, g) = cross_entropy_vjp(&logits, &labels, seed);
        assert_eq!(v, value);
        assert_mat_close(&format!("cross_entropy vjp trial {trial}"), &g, &want);
    }
}

#[test]
fn cross_entropy_hand_derived() {
    // logits [0, ln 2, ln 3], label 1: softmax = [1/6, 1/3, 1/2]
    //   loss = -ln(1/3) = ln 3
    //   grad = softmax - onehot = [1/6, -2/3, 1/2]   (batch of 1)
    let x = DMatrix::from_row_slice(1, 3, &[0.0, 2f64.ln(), 3f64.ln()]);
    let (loss, g) = cross_entropy_vjp(&x, &[1], 1.0);
    assert!((loss - 3f64.ln()).abs() < 1e-15);
    assert_close("ce grad", g.as_slice(), &[1.0 / 6.0, -2.0 / 3.0, 1.0 / 2.0]);
}

#[test]
fn cross_entropy_is_stable_for_huge_logits() {
    // Row 0: [1e4, -1e4, 0], label 0: softmax = [1, 0, 0] to f64 precision, loss 0.
    // Row 1: [-1e4, 1e4, 1e4], label 2: softmax = [0, 1/2, 1/2], loss = ln 2.
    // Mean over the batch of 2: ln 2 / 2.
    // Gradient (softmax - onehot) / 2 = [[0, 0, 0], [0, 1/4, -1/4]].
    let logits: DMatrix<f64> = DMatrix::from_row_slice(2, 3, &[1e4, -1e4, 0.0, -1e4, 1e4, 1e4]);
    let labels = [0u8, 2];
    let loss = cross_entropy(&logits, &labels);
    assert!(loss.is_finite());
    assert!((loss - 2f64.ln() / 2.0).abs() < 1e-15, "loss {loss}");
    let (v, g) = cross_entropy_vjp(&logits, &labels, 1.0);
    assert_eq!(v, loss);
    assert!(g.iter().all(|v| v.is_finite()));
    let want = DMatrix::from_row_slice(2, 3, &[0.0, 0.0, 0.0, 0.0, 0.25, -0.25]);
    assert!((&g - &want).amax() < 1e-15, "gradient {g} vs {want}");
    // A wrong label at 1e4 margin: loss 2e4 / 2 exactly representable, still finite.
    let loss = cross_entropy(&logits, &[1, 0]);
    // row 0 label 1: lse = 1e4 -> 1e4 - (-1e4) = 2e4; row 1 label 0: lse = 1e4 + ln 2 -> 2e4 + ln 2
    assert!((loss - (4e4 + 2f64.ln()) / 2.0).abs() < 1e-9, "loss {loss}");
    // f32 as well
    let logits32 = logits.map(|v| v as f32);
    let (l32, g32) = cross_entropy_vjp(&logits32, &labels, 1.0f32);
    assert!(l32.is_finite() && g32.iter().all(|v| v.is_finite()));
    assert!((l32 - 2f32.ln() / 2.0).abs() < 1e-6);
}

#[test]
fn cross_entropy_pullback_lazy_zero() {
    let x = DMatrix::from_row_slice(1, 2, &[0.5, -0.5]);
    let (_, pb) = cross_entropy_pullback(&x, &[0]);
    let (g, ()) = pb(&x, &[0], 1.0, [false, false]);
    assert_lazy_zero("cross_entropy", &g);
}

#[test]
#[should_panic(expected = "cross_entropy: logits are 3x4 but there are 2 labels")]
fn cross_entropy_label_count_panics() {
    cross_entropy(&DMatrix::<f64>::zeros(3, 4), &[0, 1]);
}

#[test]
#[should_panic(expected = "cross_entropy: label 4 of sample 1 is out of range")]
fn cross_entropy_label_range_panics() {
    cross_entropy(&DMatrix::<f64>::zeros(2, 4), &[0, 4]);
}

#[test]
#[should_panic(expected = "cross_entropy: label 9 of sample 0 is out of range")]
fn cross_entropy_pullback_label_range_panics() {
    let _ = cross_entropy_pullback(&DMatrix::<f64>::zeros(1, 4), &[9]);
}

// ---------------------------------------------------------------------------------------------
// mse / l2_penalty

#[test]
fn mse_matches_finite_differences_in_both_arguments() {
    let mut rng = rng(8);
    for trial in 0..TRIALS {
        let (r, c) = rand_shape(&mut rng);
        let pred = rand_mat(&mut rng, r, c);
        let target = rand_mat(&mut rng, r, c);
        let seed = rng.gen_range(0.5..2.0);
        let want_p = fd_mat(&pred, |p| mse(p, &target)) * seed;
        let want_t = fd_mat(&target, |t| mse(&pred, t)) * seed;
        let value = mse(&pred, &target);

        let (v, (gp, gt)) = mse_vjp(&pred, &target, seed);
        assert_eq!(v, value);
        assert_mat_close(&format!("mse vjp pred {trial}"), &gp, &want_p);
        assert_mat_close(&format!("mse vjp target {trial}"), &gt, &want_t);

        let (v, pb) = mse_pullback(&pred, &target);
        assert_eq!(v, value);
        let (gp, gt) = pb(&pred, &target, seed, [true, true]);
        assert_mat_close("mse pullback pred", &gp, &want_p);
        assert_mat_close("mse pullback target", &gt, &want_t);

        let (_, pb) = mse_pullback(&pred, &target);
        let (gp, gt) = pb(&pred, &target, seed, [true, false]);
        assert_mat_close("mse pullback pred only", &gp, &want_p);
        assert_lazy_zero("mse target", &gt);

        let (_, pb) = mse_pullback(&pred, &target);
        let (gp, gt) = pb(&pred, &target, seed, [false, true]);
        assert_lazy_zero("mse pred", &gp);
        assert_mat_close("mse pullback target only", &gt, &want_t);

        let (_, pb) = mse_pullback(&pred, &target);
        let (gp, gt) = pb(&pred, &target, seed, [false, false]);
        assert_lazy_zero("mse pred", &gp);
        assert_lazy_zero("mse target", &gt);
    }
}

#[test]
fn mse_hand_derived() {
    // pred [1, 2], target [0, 4]: diffs [1, -2], mean of squares (1 + 4) / 2 = 2.5
    // d pred = 2 (pred - target) / n = [1, -2]; d target = [-1, 2]
    let pred = DMatrix::from_row_slice(1, 2, &[1.0, 2.0]);
    let target = DMatrix::from_row_slice(1, 2, &[0.0, 4.0]);
    let (v, (gp, gt)) = mse_vjp(&pred, &target, 1.0);
    assert_eq!(v, 2.5);
    assert_eq!(gp, DMatrix::from_row_slice(1, 2, &[1.0, -2.0]));
    assert_eq!(gt, DMatrix::from_row_slice(1, 2, &[-1.0, 2.0]));
}

#[test]
#[should_panic(expected = "mse: pred is 2x3 but target is 3x2")]
fn mse_shape_mismatch_panics() {
    mse(&DMatrix::<f64>::zeros(2, 3), &DMatrix::<f64>::zeros(3, 2));
}

#[test]
#[should_panic(expected = "mse: pred is 2x3 but target is 2x2")]
fn mse_pullback_shape_mismatch_panics() {
    let _ = mse_pullback(&DMatrix::<f64>::zeros(2, 3), &DMatrix::<f64>::zeros(2, 2));
}

#[test]
fn l2_penalty_matches_finite_differences() {
    let mut rng = rng(9);
    for trial in 0..TRIALS {
        let (r, c) = rand_shape(&mut rng);
        let w = rand_mat(&mut rng, r, c);
        let seed = rng.gen_range(0.5..2.0);
        let want = fd_mat(&w, l2_penalty) * seed;
        let (v, g) = l2_penalty_vjp(&w, seed);
        assert_eq!(v, l2_penalty(&w));
        assert_mat_close(&format!("l2_penalty vjp {trial}"), &g, &want);
        let (_, pb) = l2_penalty_pullback(&w);
        assert_mat_close("l2_penalty pullback", &pb(&w, seed, [true]).0, &want);
        let (_, pb) = l2_penalty_pullback(&w);
        assert_lazy_zero("l2_penalty", &pb(&w, seed, [false]).0);
    }
}

#[test]
fn l2_penalty_hand_derived() {
    // 0.5 * (1 + 4 + 9 + 0) = 7; gradient = seed * w
    let w = DMatrix::from_row_slice(2, 2, &[1.0, -2.0, 3.0, 0.0]);
    let (v, g) = l2_penalty_vjp(&w, 2.0);
    assert_eq!(v, 7.0);
    assert_eq!(g, DMatrix::from_row_slice(2, 2, &[2.0, -4.0, 6.0, 0.0]));
}

// ---------------------------------------------------------------------------------------------
// dropout

#[test]
fn dropout_matches_finite_differences() {
    let mut mask_rng = rng(100);
    let mut rng = rng(10);
    for trial in 0..TRIALS {
        let (r, c) = rand_shape(&mut rng);
        let x = rand_mat(&mut rng, r, c);
        let s = rand_mat(&mut rng, r, c);
        let mask: DMatrix<f64> = dropout_mask(r, c, 0.3, &mut mask_rng);
        let want = fd_mat(&x, |x| dot(&s, &dropout(x, &mask)));
        let (y, g) = dropout_vjp(&x, &mask, s.clone());
        assert_eq!(y, dropout(&x, &mask));
        assert_mat_close(&format!("dropout vjp {trial}"), &g, &want);
        let (_, pb) = dropout_pullback(&x, &mask);
        let (g, ()) = pb(&x, &mask, s.clone(), [true, false]);
        assert_mat_close("dropout pullback", &g, &want);
        let (_, pb) = dropout_pullback(&x, &mask);
        let (g, ()) = pb(&x, &mask, s, [false, false]);
        assert_lazy_zero("dropout", &g);
    }
}

#[test]
fn dropout_mask_values() {
    // Reproducible from the seed, entries in {0, 1/(1-p)}, about p of them dropped.
    let a: DMatrix<f64> = dropout_mask(40, 50, 0.25, &mut rng(11));
    let b: DMatrix<f64> = dropout_mask(40, 50, 0.25, &mut rng(11));
    assert_eq!(a, b);
    let keep = 1.0 / 0.75;
    assert!(a.iter().all(|&v| v == 0.0 || v == keep));
    let dropped = a.iter().filter(|&&v| v == 0.0).count() as f64 / a.len() as f64;
    assert!((dropped - 0.25).abs() < 0.05, "dropped fraction {dropped}");
    let ones: DMatrix<f32> = dropout_mask(3, 4, 0.0, &mut rng(12));
    assert_eq!(ones, DMatrix::from_element(3, 4, 1.0f32));
    let zeros: DMatrix<f64> = dropout_mask(3, 4, 1.0, &mut rng(13));
    assert_eq!(zeros, DMatrix::zeros(3, 4));
}

#[test]
#[should_panic(expected = "dropout_mask: drop probability p = 1.5 is not in [0, 1]")]
fn dropout_mask_bad_p_panics() {
    let _: DMatrix<f64> = dropout_mask(2, 2, 1.5, &mut rng(14));
}

#[test]
#[should_panic(expected = "dropout: x is 2x3 but mask is 2x2")]
fn dropout_shape_mismatch_panics() {
    dropout(&DMatrix::<f64>::zeros(2, 3), &DMatrix::<f64>::zeros(2, 2));
}

// ---------------------------------------------------------------------------------------------
// add_bias / add_col_bias

#[test]
fn add_bias_matches_finite_differences() {
    let mut rng = rng(15);
    for trial in 0..TRIALS {
        let (r, c) = rand_shape(&mut rng);
        let x = rand_mat(&mut rng, r, c);
        let b = rand_vec(&mut rng, c);
        let s = rand_mat(&mut rng, r, c);
        let want_x = fd_mat(&x, |x| dot(&s, &add_bias(x, &b)));
        let want_b = fd_vec(&b, |b| dot(&s, &add_bias(&x, b)));

        let (y, (gx, gb)) = add_bias_vjp(&x, &b, s.clone());
        assert_eq!(y, add_bias(&x, &b));
        assert_mat_close(&format!("add_bias vjp x {trial}"), &gx, &want_x);
        assert_close(
            &format!("add_bias vjp b {trial}"),
            gb.as_slice(),
            want_b.as_slice(),
        );

        let (_, pb) = add_bias_pullback(&x, &b);
        let (gx, gb) = pb(&x, &b, s.clone(), [true, false]);
        assert_mat_close("add_bias pullback x", &gx, &want_x);
        assert_eq!(gb.len(), 0, "add_bias: lazy zero bias gradient");

        let (_, pb) = add_bias_pullback(&x, &b);
        let (gx, gb) = pb(&x, &b, s, [false, true]);
        assert_lazy_zero("add_bias x", &gx);
        assert_close("add_bias pullback b", gb.as_slice(), want_b.as_slice());
    }
}

#[test]
fn add_bias_hand_derived() {
    // bias [1, 2, 3] is added to every row (sample); db = column sums of the seed
    let x = DMatrix::from_row_slice(2, 3, &[0.0, 0.0, 0.0, 10.0, 20.0, 30.0]);
    let b = DVector::from_vec(vec![1.0, 2.0, 3.0]);
    let seed = DMatrix::from_row_slice(2, 3, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let (y, (_, gb)) = add_bias_vjp(&x, &b, seed);
    assert_eq!(
        y,
        DMatrix::from_row_slice(2, 3, &[1.0, 2.0, 3.0, 11.0, 22.0, 33.0])
    );
    assert_eq!(gb, DVector::from_vec(vec![5.0, 7.0, 9.0]));
}

#[test]
fn add_col_bias_matches_finite_differences() {
    let mut rng = rng(16);
    for trial in 0..TRIALS {
        let (r, c) = rand_shape(&mut rng);
        let x = rand_mat(&mut rng, r, c);
        let b = rand_vec(&mut rng, r);
        let s = rand_mat(&mut rng, r, c);
        let want_x = fd_mat(&x, |x| dot(&s, &add_col_bias(x, &b)));
        let want_b = fd_vec(&b, |b| dot(&s, &add_col_bias(&x, b)));

        let (y, (gx, gb)) = add_col_bias_vjp(&x, &b, s.clone());
        assert_eq!(y, add_col_bias(&x, &b));
        assert_mat_close(&format!("add_col_bias vjp x {trial}"), &gx, &want_x);
        assert_close(
            &format!("add_col_bias vjp b {trial}"),
            gb.as_slice(),
            want_b.as_slice(),
        );

        let (_, pb) = add_col_bias_pullback(&x, &b);
        let (gx, gb) = pb(&x, &b, s.clone(), [true, false]);
        assert_mat_close("add_col_bias pullback x", &gx, &want_x);
        assert_eq!(gb.len(), 0, "add_col_bias: lazy zero bias gradient");

        let (_, pb) = add_col_bias_pullback(&x, &b);
        let (gx, gb) = pb(&x, &b, s, [false, true]);
        assert_lazy_zero("add_col_bias x", &gx);
        assert_close("add_col_bias pullback b", gb.as_slice(), want_b.as_slice());
    }
}

#[test]
fn add_col_bias_hand_derived() {
    // bias [1, 2] is added to every column; db = row sums of the seed
    let x = DMatrix::from_row_slice(2, 3, &[0.0; 6]);
    let b = DVector::from_vec(vec![1.0, 2.0]);
    let seed = DMatrix::from_row_slice(2, 3, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let (y, (_, gb)) = add_col_bias_vjp(&x, &b, seed);
    assert_eq!(
        y,
        DMatrix::from_row_slice(2, 3, &[1.0, 1.0, 1.0, 2.0, 2.0, 2.0])
    );
    assert_eq!(gb, DVector::from_vec(vec![6.0, 15.0]));
}

// ---------------------------------------------------------------------------------------------
// fused: add_bias_relu, cross_entropy at the MLP's shapes

/// `x` and `b` with every `|x_ij + b_j| >= 0.1`, so `x ± H` (or `b ± H`) never crosses the
/// ReLU's kink.
fn rand_bias_relu_input(rng: &mut ChaCha8Rng, r: usize, c: usize) -> (DMatrix<f64>, DVector<f64>) {
    let b = rand_vec(rng, c);
    let z = rand_mat_off_zero(rng, r, c);
    let x = DMatrix::from_fn(r, c, |i, j| z[(i, j)] - b[j]);
    (x, b)
}

#[test]
fn add_bias_relu_matches_finite_differences() {
    let mut rng = rng(21);
    // Random small shapes, then the MLP's (rows not a multiple of the 8 summation lanes too).
    let mut shapes: Vec<(usize, usize)> = (0..TRIALS).map(|_| rand_shape(&mut rng)).collect();
    shapes.extend([(64, 16), (37, 5), (8, 1), (1, 9)]);
    for (trial, &(r, c)) in shapes.iter().enumerate() {
        let (x, b) = rand_bias_relu_input(&mut rng, r, c);
        let s = rand_mat(&mut rng, r, c);
        let want_x = fd_mat(&x, |x| dot(&s, &add_bias_relu(x, &b)));
        let want_b = fd_vec(&b, |b| dot(&s, &add_bias_relu(&x, b)));

        let (y, (gx, gb)) = add_bias_relu_vjp(&x, &b, s.clone());
        assert_eq!(y, relu(&add_bias(&x, &b)), "add_bias_relu value {trial}");
        assert_mat_close(
            &format!("add_bias_relu vjp x {trial} ({r}x{c})"),
            &gx,
            &want_x,
        );
        assert_close(
            &format!("add_bias_relu vjp b {trial} ({r}x{c})"),
            gb.as_slice(),
            want_b.as_slice(),
        );

        let (_, pb) = add_bias_relu_pullback(&x, &b);
        let (gx, gb) = pb(&x, &b, s.clone(), [true, false]);
        assert_mat_close("add_bias_relu pullback x", &gx, &want_x);
        assert_eq!(gb.len(), 0, "add_bias_relu: lazy zero bias gradient");

        let (_, pb) = add_bias_relu_pullback(&x, &b);
        let (gx, gb) = pb(&x, &b, s.clone(), [false, true]);
        assert_lazy_zero("add_bias_relu x", &gx);
        assert_close("add_bias_relu pullback b", gb.as_slice(), want_b.as_slice());

        let (_, pb) = add_bias_relu_pullback(&x, &b);
        let (gx, gb) = pb(&x, &b, s, [false, false]);
        assert_lazy_zero("add_bias_relu x (nothing needed)", &gx);
        assert_eq!(gb.len(), 0);
    }
}

#[test]
fn add_bias_relu_equals_the_unfused_chain() {
    // Same value bit for bit, same dx bit for bit, same db up to the order of summation;
    // including exact zeros of x + b (derivative 0 there, as relu's) and f32.
    let mut rng = rng(22);
    let (r, c) = (67, 13);
    let mut x = rand_mat(&mut rng, r, c).map(|v| v as f32);
    let b = rand_vec(&mut rng, c).map(|v| v as f32);
    for i in 0..r {
        x[(i, i % c)] = -b[i % c];
    }
    let s = rand_mat(&mut rng, r, c).map(|v| v as f32);
    let (y, (gx, gb)) = add_bias_relu_vjp(&x, &b, s.clone());
    let (z, pb_bias) = add_bias_pullback(&x, &b);
    let (h, pb_relu) = relu_pullback(&z);
    let (dz,) = pb_relu(&z, s, [true]);
    let (dx, db) = pb_bias(&x, &b, dz, [true, true]);
    assert_eq!(y, h);
    assert_eq!(gx, dx);
    for (k, (&a, &w)) in gb.iter().zip(db.iter()).enumerate() {
        assert!(
            (a - w).abs() <= 1e-5 * w.abs().max(1.0),
            "db[{k}]: {a} vs {w}"
        );
    }
}

#[test]
#[should_panic(expected = "add_bias_relu: x is 64x128 but bias has length 10")]
fn add_bias_relu_shape_mismatch_panics() {
    let _ = add_bias_relu_pullback(&DMatrix::<f32>::zeros(64, 128), &DVector::zeros(10));
}

#[test]
fn fused_cross_entropy_matches_finite_differences_at_the_mlp_shape() {
    // A 64x10 batch of logits (the MNIST step), value equal to the plain forward bit for bit.
    let mut rng = rng(23);
    for trial in 0..2 {
        let (r, c) = (64, 10);
        let logits = rand_mat(&mut rng, r, c) * 3.0;
        let labels = rand_labels(&mut rng, r, c);
        let seed = rng.gen_range(0.5..2.0);
        let want = fd_mat(&logits, |x| cross_entropy(x, &labels)) * seed;
        let (v, pb) = cross_entropy_pullback(&logits, &labels);
        assert_eq!(v, cross_entropy(&logits, &labels), "value, trial {trial}");
        let (g, ()) = pb(&logits, &labels, seed, [true, false]);
        assert_mat_close(
            &format!("fused cross_entropy 64x10 trial {trial}"),
            &g,
            &want,
        );
        // (softmax - onehot) / B, written directly: every row sums to 0.
        for i in 0..r {
            assert!(
                g.row(i).sum().abs() < 1e-15,
                "row {i} sums to {}",
                g.row(i).sum()
            );
        }
    }
}

#[test]
#[should_panic(expected = "add_bias: x is 4x3 but bias has length 2")]
fn add_bias_shape_mismatch_panics() {
    add_bias(&DMatrix::<f64>::zeros(4, 3), &DVector::zeros(2));
}

#[test]
#[should_panic(expected = "add_bias: x is 64x128 but bias has length 10")]
fn add_bias_pullback_shape_mismatch_panics() {
    let _ = add_bias_pullback(&DMatrix::<f32>::zeros(64, 128), &DVector::zeros(10));
}

#[test]
#[should_panic(expected = "add_col_bias: x is 4x3 but bias has length 3")]
fn add_col_bias_shape_mismatch_panics() {
    add_col_bias(&DMatrix::<f64>::zeros(4, 3), &DVector::zeros(3));
}

// ---------------------------------------------------------------------------------------------
// protocol: lazy zeros, seed shape checks, in-place reuse of the seed, f32

#[test]
fn unary_pullbacks_return_lazy_zero_when_not_needed() {
    let x = rand_mat(&mut rng(17), 3, 4);
    let s = || DMatrix::from_element(3, 4, 1.0);
    assert_lazy_zero("relu", &relu_pullback(&x).1(&x, s(), [false]).0);
    assert_lazy_zero(
        "leaky_relu",
        &leaky_relu_pullback(&x, 0.1).1(&x, 0.1, s(), [false, true]).0,
    );
    assert_lazy_zero("sigmoid", &sigmoid_pullback(&x).1(&x, s(), [false]).0);
    assert_lazy_zero("tanh", &tanh_pullback(&x).1(&x, s(), [false]).0);
    assert_lazy_zero("softmax", &softmax_pullback(&x).1(&x, s(), [false]).0);
    assert_lazy_zero(
        "log_softmax",
        &log_softmax_pullback(&x).1(&x, s(), [false]).0,
    );
}

#[test]
fn pullbacks_reuse_the_seed_buffer() {
    let x = rand_mat(&mut rng(18), 3, 4);
    let check = |name: &str, f: &dyn Fn(DMatrix<f64>) -> DMatrix<f64>| {
        let seed = DMatrix::from_element(3, 4, 1.0);
        let ptr = seed.as_ptr();
        assert_eq!(
            f(seed).as_ptr(),
            ptr,
            "{name}: gradient should reuse the seed buffer"
        );
    };
    check("relu", &|s| relu_pullback(&x).1(&x, s, [true]).0);
    check("leaky_relu", &|s| {
        leaky_relu_pullback(&x, 0.1).1(&x, 0.1, s, [true, false]).0
    });
    check("sigmoid", &|s| sigmoid_pullback(&x).1(&x, s, [true]).0);
    check("tanh", &|s| tanh_pullback(&x).1(&x, s, [true]).0);
    check("softmax", &|s| softmax_pullback(&x).1(&x, s, [true]).0);
    check("log_softmax", &|s| {
        log_softmax_pullback(&x).1(&x, s, [true]).0
    });
    let mask = DMatrix::from_element(3, 4, 2.0);
    check("dropout", &|s| {
        dropout_pullback(&x, &mask).1(&x, &mask, s, [true, false]).0
    });
    let b = DVector::zeros(4);
    check("add_bias", &|s| {
        add_bias_pullback(&x, &b).1(&x, &b, s, [true, true]).0
    });
    let b = DVector::zeros(3);
    check("add_col_bias", &|s| {
        add_col_bias_pullback(&x, &b).1(&x, &b, s, [true, true]).0
    });
}

#[test]
#[should_panic(expected = "relu: seed is 2x2 but the output is 2x3")]
fn pullback_seed_shape_mismatch_panics() {
    let x = DMatrix::<f64>::zeros(2, 3);
    let (_, pb) = relu_pullback(&x);
    let _ = pb(&x, DMatrix::zeros(2, 2), [true]);
}

#[test]
fn f32_works() {
    let x = DMatrix::from_row_slice(2, 2, &[0.5f32, -1.0, 2.0, 0.0]);
    let s = DMatrix::from_element(2, 2, 1.0f32);
    let (_, g) = relu_vjp(&x, s.clone());
    assert_eq!(g, DMatrix::from_row_slice(2, 2, &[1.0, 0.0, 1.0, 0.0]));
    let (_, g) = leaky_relu_vjp(&x, 0.5, s.clone());
    assert_eq!(g, DMatrix::from_row_slice(2, 2, &[1.0, 0.5, 1.0, 0.5]));
    let _ = (sigmoid_vjp(&x, s.clone()), tanh_vjp(&x, s.clone()));
    let (p, _) = softmax_vjp(&x, s.clone());
    assert!((p.row(0).sum() - 1.0).abs() < 1e-6);
    let _ = log_softmax_vjp(&x, s.clone());
    let (_, (gp, _)) = mse_vjp(&x, &s, 1.0f32);
    assert_eq!(gp.shape(), (2, 2));
    let (v, _) = l2_penalty_vjp(&x, 1.0f32);
    assert_eq!(v, 0.5 * (0.25 + 1.0 + 4.0));
    let mask: DMatrix<f32> = dropout_mask(2, 2, 0.5, &mut rng(19));
    let _ = dropout_vjp(&x, &mask, s.clone());
    let _ = add_bias_vjp(&x, &DVector::from_element(2, 1.0f32), s.clone());
    let _ = add_col_bias_vjp(&x, &DVector::from_element(2, 1.0f32), s);
}

// ---------------------------------------------------------------------------------------------
// protocol v2: the pullback captures no borrowed input and gets the arguments again

/// Compiles only if `f` borrows nothing (with `T = f64`, `+ use<T>` makes it `'static`).
fn owns_everything<F: 'static>(f: F) -> F {
    f
}

#[test]
fn pullbacks_capture_no_borrow() {
    let x = rand_mat(&mut rng(21), 3, 4);
    let b4 = DVector::zeros(4);
    let b3 = DVector::zeros(3);
    let mask = DMatrix::from_element(3, 4, 2.0);
    let labels = vec![0u8, 3, 1];
    let _ = owns_everything(relu_pullback(&x).1);
    let _ = owns_everything(leaky_relu_pullback(&x, 0.1).1);
    let _ = owns_everything(sigmoid_pullback(&x).1);
    let _ = owns_everything(tanh_pullback(&x).1);
    let _ = owns_everything(softmax_pullback(&x).1);
    let _ = owns_everything(log_softmax_pullback(&x).1);
    let _ = owns_everything(cross_entropy_pullback(&x, &labels).1);
    let _ = owns_everything(mse_pullback(&x, &mask).1);
    let _ = owns_everything(l2_penalty_pullback(&x).1);
    let _ = owns_everything(dropout_pullback(&x, &mask).1);
    let _ = owns_everything(add_bias_pullback(&x, &b4).1);
    let _ = owns_everything(add_col_bias_pullback(&x, &b3).1);
}

/// What the macro-generated code does: the forward values and the pullbacks live in one stash,
/// and the pullbacks are later handed references into that stash.
#[test]
fn pullbacks_called_on_a_stash_match_finite_differences() {
    struct Stash<A, B, C> {
        x: DMatrix<f64>,
        target: DMatrix<f64>,
        labels: Vec<u8>,
        relu: A,
        ce: B,
        mse: C,
    }
    let mut r = rng(22);
    let x = rand_mat_off_zero(&mut r, 3, 4);
    let target = rand_mat(&mut r, 3, 4);
    let s = rand_mat(&mut r, 3, 4);
    let labels = vec![2u8, 0, 3];
    let (_, relu_pb) = relu_pullback(&x);
    let (_, ce_pb) = cross_entropy_pullback(&x, &labels);
    let (_, mse_pb) = mse_pullback(&x, &target);
    // Moving the inputs next to the closures would not compile if the closures borrowed them.
    let stash = Stash {
        x,
        target,
        labels,
        relu: relu_pb,
        ce: ce_pb,
        mse: mse_pb,
    };
    let want = fd_mat(&stash.x, |x| dot(&s, &relu(x)));
    let (g,) = (stash.relu)(&stash.x, s.clone(), [true]);
    assert_mat_close("relu from stash", &g, &want);
    let want = fd_mat(&stash.x, |x| cross_entropy(x, &stash.labels)) * 1.5;
    let (g, ()) = (stash.ce)(&stash.x, &stash.labels, 1.5, [true, false]);
    assert_mat_close("cross_entropy from stash", &g, &want);
    let want_p = fd_mat(&stash.x, |p| mse(p, &stash.target)) * 0.5;
    let want_t = fd_mat(&stash.target, |t| mse(&stash.x, t)) * 0.5;
    let (gp, gt) = (stash.mse)(&stash.x, &stash.target, 0.5, [true, true]);
    assert_mat_close("mse pred from stash", &gp, &want_p);
    assert_mat_close("mse target from stash", &gt, &want_t);
}

#[test]
#[should_panic(expected = "relu: x handed to the pullback is 2x2 but the forward's was 2x3")]
fn pullback_repassed_x_shape_mismatch_panics() {
    let x = DMatrix::<f64>::zeros(2, 3);
    let (_, pb) = relu_pullback(&x);
    let _ = pb(&DMatrix::zeros(2, 2), DMatrix::zeros(2, 3), [true]);
}

#[test]
#[should_panic(expected = "sigmoid: x handed to the pullback is 3x2 but the forward's was 2x3")]
fn sigmoid_pullback_repassed_x_shape_mismatch_panics() {
    let x = DMatrix::<f64>::zeros(2, 3);
    let (_, pb) = sigmoid_pullback(&x);
    let _ = pb(&DMatrix::zeros(3, 2), DMatrix::zeros(2, 3), [false]);
}

#[test]
#[should_panic(expected = "mse: target handed to the pullback is 3x2 but the forward's was 2x3")]
fn mse_pullback_repassed_shape_mismatch_panics() {
    let x = DMatrix::<f64>::zeros(2, 3);
    let (_, pb) = mse_pullback(&x, &x);
    let _ = pb(&x, &DMatrix::zeros(3, 2), 1.0, [true, true]);
}

#[test]
#[should_panic(expected = "dropout: mask handed to the pullback is 1x3 but the forward's was 2x3")]
fn dropout_pullback_repassed_mask_shape_mismatch_panics() {
    let x = DMatrix::<f64>::zeros(2, 3);
    let (_, pb) = dropout_pullback(&x, &x);
    let _ = pb(
        &x,
        &DMatrix::zeros(1, 3),
        DMatrix::zeros(2, 3),
        [true, false],
    );
}

#[test]
#[should_panic(
    expected = "add_bias: bias handed to the pullback has length 2 but the forward's had length 3"
)]
fn add_bias_pullback_repassed_bias_length_panics() {
    let x = DMatrix::<f64>::zeros(4, 3);
    let (_, pb) = add_bias_pullback(&x, &DVector::zeros(3));
    let _ = pb(&x, &DVector::zeros(2), DMatrix::zeros(4, 3), [true, true]);
}

#[test]
#[should_panic(
    expected = "add_col_bias: x handed to the pullback is 4x2 but the forward's was 4x3"
)]
fn add_col_bias_pullback_repassed_x_shape_mismatch_panics() {
    let x = DMatrix::<f64>::zeros(4, 3);
    let b = DVector::zeros(4);
    let (_, pb) = add_col_bias_pullback(&x, &b);
    let _ = pb(
        &DMatrix::zeros(4, 2),
        &b,
        DMatrix::zeros(4, 3),
        [true, true],
    );
}

#[test]
#[should_panic(expected = "cross_entropy: logits are 2x3 but there are 1 labels")]
fn cross_entropy_pullback_repassed_label_count_panics() {
    let x = DMatrix::<f64>::zeros(2, 3);
    let (_, pb) = cross_entropy_pullback(&x, &[0, 1]);
    let _ = pb(&x, &[0], 1.0, [false, false]);
}

#[test]
#[should_panic(expected = "cross_entropy: label 7 of sample 1 is out of range")]
fn cross_entropy_pullback_repassed_label_range_panics() {
    let x = DMatrix::<f64>::zeros(2, 3);
    let (_, pb) = cross_entropy_pullback(&x, &[0, 1]);
    let _ = pb(&x, &[0, 7], 1.0, [true, false]);
}

#[test]
#[should_panic(expected = "l2_penalty: w handed to the pullback is 1x1 but the forward's was 2x2")]
fn l2_penalty_pullback_repassed_shape_mismatch_panics() {
    let w = DMatrix::<f64>::zeros(2, 2);
    let (_, pb) = l2_penalty_pullback(&w);
    let _ = pb(&DMatrix::zeros(1, 1), 1.0, [true]);
}

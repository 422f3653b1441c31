//! Loops nested in loops, whose instances share one tape (the inner loop's entries are
//! scalars and indices): `while` in `for`, loops in branches of loops, three levels, early
//! returns and `break`s inside the inner loop, an inner loop that runs zero times, and an inner
//! loop over matrices (which keeps one tape per instance). Every gradient is checked against
//! central finite differences of the original function, and `cbrt_sum` against its
//! derivative by hand.

#![allow(clippy::needless_range_loop, clippy::needless_return)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use symgrad::differentiable;
use symgrad::prelude::DMatrix;

mod common;
use common::{close, fd};

type Grad<'a> = &'a dyn Fn(&[f64]) -> (f64, Vec<f64>);

/// Checks `grad` against finite differences of `f` at 30 random points in `lo..hi`^n (points
/// whose two step sizes disagree, a kink in the stencil, are skipped; most must be usable).
fn check(what: &str, n: usize, lo: f64, hi: f64, f: &dyn Fn(&[f64]) -> f64, grad: Grad) {
    let mut rng = ChaCha8Rng::seed_from_u64(n as u64 * 31 + what.len() as u64);
    let (mut used, total) = (0, 30);
    for _ in 0..total {
        let x: Vec<f64> = (0..n).map(|_| rng.gen_range(lo..hi)).collect();
        let want = fd(f, &x, 1e-6);
        let coarse = fd(f, &x, 1e-4);
        if want.iter().zip(&coarse).any(|(a, b)| !close(*a, *b, 1e-3)) {
            continue;
        }
        used += 1;
        let (v, g) = grad(&x);
        assert!(close(v, f(&x), 1e-12), "{what}: value at {x:?}");
        for (k, (a, b)) in g.iter().zip(&want).enumerate() {
            assert!(
                close(*a, *b, 1e-5),
                "{what}: d/dx{k} at {x:?}: got {a}, finite difference {b}"
            );
        }
    }
    assert!(used * 4 >= total * 3, "{what}: only {used} usable points");
}

#[differentiable]
fn cbrt_sum(xs: &[f64]) -> f64 {
    let mut s = 0.0;
    for &a in xs {
        let mut y = 1.0;
        let mut it = 0;
        while (y * y * y - a).abs() > 1e-12 * a && it < 50 {
            y -= (y * y * y - a) / (3.0 * y * y);
            it += 1;
        }
        s += y;
    }
    s
}

#[test]
fn while_in_for_against_hand_derivative() {
    let xs: Vec<f64> = (1..40).map(|i| 0.3 * i as f64).collect();
    let (v, g) = cbrt_sum_grad(&xs);
    assert!(close(v, cbrt_sum(&xs), 0.0));
    for (a, d) in xs.iter().zip(&g) {
        // d cbrt(a) / da = 1 / (3 a^(2/3)), up to the Newton tolerance
        let want = 1.0 / (3.0 * a.cbrt() * a.cbrt());
        assert!(close(*d, want, 1e-8), "a = {a}: {d} vs {want}");
    }
    check("cbrt_sum", 7, 0.2, 5.0, &|x| cbrt_sum(x), &|x| {
        cbrt_sum_grad(x)
    });
}

/// The inner loop runs a data-dependent number of times, zero for some elements.
#[differentiable]
fn damped(xs: &[f64], w: f64) -> f64 {
    let mut total = 0.0;
    for i in 0..xs.len() {
        let mut v = xs[i];
        while v > 1.0 {
            v = v * w - 0.1;
        }
        total += v * xs[i];
    }
    total
}

/// An inner loop inside a branch of the outer one, and a second inner loop after it.
#[differentiable]
fn branchy(xs: &[f64], c: f64) -> f64 {
    let mut acc = c;
    for i in 0..xs.len() {
        if xs[i] > 0.0 {
            let mut k = 0;
            let mut p = xs[i];
            while k < 3 {
                p = p * acc + 0.5;
                k += 1;
            }
            acc += p.sin();
        } else {
            acc *= xs[i];
        }
        for j in 0..2 {
            acc = acc + (j as f64) * xs[i] * acc.cos();
        }
    }
    acc
}

/// Three levels: the middle loop keeps its own tape, the innermost shares one.
#[differentiable]
fn three_levels(xs: &[f64]) -> f64 {
    let mut s = 0.0;
    for i in 0..xs.len() {
        let mut t = xs[i];
        for _j in 0..2 {
            let mut u = t;
            let mut n = 0;
            while n < 2 {
                u = u * xs[i] + 0.25;
                n += 1;
            }
            t += u.tanh();
        }
        s += t * t;
    }
    s
}

/// A `return` from inside the inner loop, and a `break`.
#[differentiable]
fn early_exit(xs: &[f64], w: f64) -> f64 {
    let mut acc = 0.0;
    for i in 0..xs.len() {
        let mut y = xs[i];
        let mut k = 0;
        while k < 4 {
            y = y * w + acc * 0.1;
            if y > 50.0 {
                return acc + y;
            }
            if y < -50.0 {
                break;
            }
            k += 1;
        }
        acc += y;
    }
    acc
}

#[test]
fn shared_tapes_against_finite_differences() {
    check(
        "damped",
        6,
        0.0,
        3.0,
        &|x| damped(&x[..5], x[5] * 0.1 + 0.5),
        &|x| {
            let (v, (gx, gw)) = damped_grad(&x[..5], x[5] * 0.1 + 0.5);
            let mut g = gx;
            g.push(gw * 0.1);
            (v, g)
        },
    );
    check("branchy", 6, -1.0, 1.0, &|x| branchy(&x[..5], x[5]), &|x| {
        let (v, (gx, gc)) = branchy_grad(&x[..5], x[5]);
        let mut g = gx;
        g.push(gc);
        (v, g)
    });
    check("three_levels", 5, -1.0, 1.0, &|x| three_levels(x), &|x| {
        three_levels_grad(x)
    });
    // Inputs large enough that some points return early and some break.
    check(
        "early_exit",
        6,
        -3.0,
        3.0,
        &|x| early_exit(&x[..5], x[5]),
        &|x| {
            let (v, (gx, gw)) = early_exit_grad(&x[..5], x[5]);
            let mut g = gx;
            g.push(gw);
            (v, g)
        },
    );
}

/// An inner loop whose entries are matrices keeps a tape per instance; the gradient is the
/// same either way.
#[differentiable]
fn matrix_inner(ws: &DMatrix<f64>, xs: &[f64]) -> f64 {
    let mut s = 0.0;
    for i in 0..xs.len() {
        let mut m = ws * xs[i];
        let mut k = 0;
        while k < 2 {
            m = m.component_mul(ws);
            k += 1;
        }
        s += m.sum();
    }
    s
}

#[test]
fn matrix_inner_loop() {
    check(
        "matrix_inner",
        7,
        -1.0,
        1.0,
        &|x| matrix_inner(&DMatrix::from_column_slice(2, 2, &x[..4]), &x[4..]),
        &|x| {
            let (v, (gw, gx)) =
                matrix_inner_grad(&DMatrix::from_column_slice(2, 2, &x[..4]), &x[4..]);
            let mut g: Vec<f64> = gw.as_slice().to_vec();
            g.extend(gx);
            (v, g)
        },
    );
}

/// The same `while` over a matrix in forward mode (the loop's values and tangents are moved
/// back when the condition ends it).
#[differentiable(forward)]
fn matrix_while_fwd(ws: &DMatrix<f64>, a: f64) -> f64 {
    let mut m = ws * a;
    let mut k = 0;
    while k < 3 {
        m = m.component_mul(ws);
        k += 1;
    }
    m.sum()
}

#[test]
fn matrix_while_forward_mode() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for _ in 0..10 {
        let x: Vec<f64> = (0..5).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let d: Vec<f64> = (0..5).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let f = |x: &[f64]| matrix_while_fwd(&DMatrix::from_column_slice(2, 2, &x[..4]), x[4]);
        let want: f64 = fd(&f, &x, 1e-6).iter().zip(&d).map(|(g, d)| g * d).sum();
        let (v, t) = matrix_while_fwd_jvp(
            &DMatrix::from_column_slice(2, 2, &x[..4]),
            x[4],
            &DMatrix::from_column_slice(2, 2, &d[..4]),
            d[4],
        );
        assert!(close(v, f(&x), 1e-12));
        assert!(close(t, want, 1e-6), "jvp {t} vs finite difference {want}");
    }
}

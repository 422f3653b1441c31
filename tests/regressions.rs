//! Regressions of issue 8 (and of the random-program tester's findings): functions that once
//! failed to compile or were miscompiled by `#[differentiable]`.
//!
//! Every gradient is compared with a central finite difference of the ORIGINAL function at
//! random points, never with another output of the macro. Points whose finite differences
//! with two step sizes disagree (a branch boundary inside the stencil) are skipped, and each
//! check asserts that most points were usable.

// The fuzz programs are kept as found: dead stores and plain functions only differentiated.
#![allow(
    dead_code,
    unused_variables,
    unused_assignments,
    clippy::assign_op_pattern,
    clippy::needless_range_loop,
    clippy::needless_return,
    clippy::too_many_arguments,
    clippy::type_complexity
)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use symgrad::prelude::DMatrix;

mod common;
use common::{close, fd};

type F<'a> = &'a dyn Fn(&[f64]) -> f64;
type G<'a> = &'a dyn Fn(&[f64]) -> (f64, Vec<f64>);
type V<'a> = &'a dyn Fn(&[f64], f64) -> (f64, Vec<f64>);

/// Checks `grad` (seed 1) and `vjp` (random seed) against finite differences of `f` at 40
/// points of `n` coordinates uniform in `lo..hi`; `rtol` is the relative tolerance.
#[allow(clippy::too_many_arguments)]
fn check(what: &str, seed: u64, n: usize, lo: f64, hi: f64, rtol: f64, f: F, grad: G, vjp: V) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut used = 0;
    let total = 40;
    for _ in 0..total {
        let x: Vec<f64> = (0..n).map(|_| rng.gen_range(lo..hi)).collect();
        let s: f64 = rng.gen_range(-3.0..3.0);
        let want = fd(f, &x, 1e-6);
        let coarse = fd(f, &x, 1e-4);
        if want.iter().zip(&coarse).any(|(a, b)| !close(*a, *b, 1e-3)) {
            continue; // a kink inside the stencil
        }
        used += 1;
        let v = f(&x);
        let (gv, g) = grad(&x);
        assert!(
            close(gv, v, 1e-12),
            "{what}_grad value at {x:?}: {gv} vs {v}"
        );
        assert_eq!(g.len(), n, "{what}_grad: number of gradients");
        for (k, (a, b)) in g.iter().zip(&want).enumerate() {
            assert!(
                close(*a, *b, rtol),
                "{what}_grad d/dx{k} at {x:?}: got {a}, finite difference {b}"
            );
        }
        let (vv, gs) = vjp(&x, s);
        assert!(
            close(vv, v, 1e-12),
            "{what}_vjp value at {x:?}: {vv} vs {v}"
        );
        for (k, (a, b)) in gs.iter().zip(&want).enumerate() {
            assert!(
                close(*a, b * s, rtol),
                "{what}_vjp d/dx{k} at {x:?} seed {s}: got {a}, finite difference {}",
                b * s
            );
        }
    }
    assert!(
        used * 4 >= total * 3,
        "{what}: only {used} of {total} points away from kinks"
    );
}

fn mat(x: &[f64], r: usize, c: usize) -> DMatrix<f64> {
    DMatrix::from_column_slice(r, c, x)
}

mod fns {
    use symgrad::differentiable;
    use symgrad::prelude::*;

    /// Issue 8: an `if` inside a `for` whose branch values are not all read by a rule.
    #[differentiable]
    pub fn acc_branch(w: f64, xs: &[f64]) -> f64 {
        let mut acc = w;
        for i in 0..xs.len() {
            let a = 0.5 * acc;
            let r = if acc > xs[i] { acc * acc } else { 3.0 * a };
            acc = r;
        }
        acc
    }

    /// Issue 8: a loop-carried value rebound to an `if` expression.
    #[differentiable]
    pub fn rebind_if_expr(x: f64) -> f64 {
        let mut s = x;
        for _ in 0..4 {
            s = if s > 1.0 { s * 2.0 } else { s * 3.0 };
        }
        s
    }

    #[differentiable]
    pub fn rebind_if_expr_f32(x: f32) -> f32 {
        let mut s = x;
        for _ in 0..4 {
            s = if s > 1.0 { s * 2.0 } else { s * 3.0 };
        }
        s
    }

    /// Issue 8: an `if` statement without a value as the last expression of a loop body.
    #[differentiable]
    pub fn if_stmt_tail_of_for(x: f64, y: f64) -> f64 {
        let mut s = x;
        for _ in 0..3 {
            if s > y {
                s = s * 0.5 + y;
            } else {
                s = s * s + 1.0;
            }
        }
        s
    }

    /// The same, at function level before the tail.
    #[differentiable]
    pub fn if_stmt_before_tail(x: f64, y: f64) -> f64 {
        let mut s = 0.0;
        if x > y {
            s = x * y;
        } else {
            s = x.sin() - y;
        }
        s * x
    }

    /// The same, nested: the last expression of a branch of an `if` in a loop, and an
    /// `else if` chain without values.
    #[differentiable]
    pub fn nested_if_stmt_tail(x: f64, y: f64) -> f64 {
        let mut s = x;
        for i in 0..3 {
            if i % 2 == 0 {
                if s > 0.0 {
                    s = s * y;
                } else {
                    s = s - y;
                }
            } else if s > 1.0 {
                s = s + x;
            } else {
                s = s * 0.5;
            }
        }
        s
    }

    /// Issue 8: `c += 1.0` on a local that carries no gradient.
    #[differentiable]
    pub fn counter(x: f64) -> f64 {
        let mut c = 0.0;
        let mut s = x;
        for _ in 0..4 {
            c += 1.0;
            s = s * c + x;
        }
        c *= 2.0;
        c -= 0.5;
        s + c
    }

    #[differentiable]
    pub fn counter_f32(x: f32) -> f32 {
        let mut c = 1.0;
        let mut s = x;
        for _ in 0..3 {
            c /= 2.0;
            s = s * s * c + x;
        }
        s
    }

    /// Issue 8: a scalar times a transpose is not a matrix product.
    #[differentiable]
    pub fn scalar_times_transpose(s: f64, w: &DMatrix<f64>) -> f64 {
        let a = s * w.transpose();
        let b = w.transpose() * s;
        (a.component_mul(&b)).sum() + (2.0 * w.transpose()).sum()
    }

    /// Issue 8: an early `return` inside a `for` loop over matrices.
    #[differentiable]
    pub fn return_in_matrix_loop(w: &DMatrix<f64>, x: f64) -> f64 {
        let mut m = w * x;
        for _ in 0..4 {
            m = m.component_mul(w) + w;
            if m.sum() > 10.0 {
                return m.mean() * x;
            }
        }
        m.sum()
    }

    /// Issue 8: the same with a call in the loop (its pullback is read from the tape before
    /// rustc knows the tape's type: E0282 at the attribute).
    #[differentiable]
    pub fn return_in_matrix_loop_call(w: &DMatrix<f64>, x: &DMatrix<f64>) -> f64 {
        let mut h = x.clone();
        for _ in 0..3 {
            h = relu(&(&h * w));
            if h.sum() > 5.0 {
                return h.sum() * 0.5;
            }
        }
        h.mean()
    }

    /// Fuzz finding A: an `if` statement ending a loop body.
    #[differentiable]
    pub fn fuzz_a(x: f64) -> f64 {
        let mut s = x;
        for _ in 0..3 {
            if s > 1.0 {
                s = s * 0.5;
            } else {
                s = s + x;
            }
        }
        s
    }

    /// Fuzz finding B: compound assignments on typed inactive locals.
    #[differentiable]
    pub fn fuzz_b_f(x: f64) -> f64 {
        let mut c: f64 = 0.5;
        c *= 0.5;
        x * c
    }

    #[differentiable]
    pub fn fuzz_b_g(x: f64) -> f64 {
        let mut c: f64 = 0.0;
        c += 1.0;
        x + c
    }

    #[differentiable]
    pub fn fuzz_b_h(x: f64) -> f64 {
        let mut c: f64 = 0.0;
        for _ in 0..2 {
            c -= 0.5;
        }
        x * c
    }

    #[differentiable]
    pub fn fuzz_b_k(x: f64) -> f64 {
        let mut c: f64 = 0.16;
        c += 1.0;
        x * x
    }

    #[differentiable]
    pub fn fuzz_b_exp(x: f64) -> f64 {
        let mut c: f64 = 3.0;
        c /= 2.0;
        x * c.exp() + c
    }

    /// Fuzz finding C: a typed f32 local reassigned from literals keeps its type.
    #[differentiable]
    pub fn fuzz_c(x: f32) -> f32 {
        let mut c: f32 = -0.34;
        c = 1.94 * 0.46;
        if c.cos() >= -0.58 { x * 2.0 } else { x }
    }

    #[differentiable]
    pub fn fuzz_c2(x: f32) -> f32 {
        let mut c: f32 = -0.34;
        c = 0.25;
        x * c.exp()
    }

    /// More than 64 parameters (the activity sets were a 64-bit mask): the last one only
    /// flows through a call's pullback, whose need mask names its position.
    #[differentiable]
    pub fn many(
        x0: f64,
        x1: f64,
        x2: f64,
        x3: f64,
        x4: f64,
        x5: f64,
        x6: f64,
        x7: f64,
        x8: f64,
        x9: f64,
        x10: f64,
        x11: f64,
        x12: f64,
        x13: f64,
        x14: f64,
        x15: f64,
        x16: f64,
        x17: f64,
        x18: f64,
        x19: f64,
        x20: f64,
        x21: f64,
        x22: f64,
        x23: f64,
        x24: f64,
        x25: f64,
        x26: f64,
        x27: f64,
        x28: f64,
        x29: f64,
        x30: f64,
        x31: f64,
        x32: f64,
        x33: f64,
        x34: f64,
        x35: f64,
        x36: f64,
        x37: f64,
        x38: f64,
        x39: f64,
        x40: f64,
        x41: f64,
        x42: f64,
        x43: f64,
        x44: f64,
        x45: f64,
        x46: f64,
        x47: f64,
        x48: f64,
        x49: f64,
        x50: f64,
        x51: f64,
        x52: f64,
        x53: f64,
        x54: f64,
        x55: f64,
        x56: f64,
        x57: f64,
        x58: f64,
        x59: f64,
        x60: f64,
        x61: f64,
        x62: f64,
        x63: f64,
        x64: f64,
        x65: f64,
        x66: f64,
        x67: f64,
        x68: f64,
        x69: f64,
    ) -> f64 {
        let s = x0 * 1.0
            + x1 * 2.0
            + x2 * 3.0
            + x3 * 4.0
            + x4 * 5.0
            + x5 * 6.0
            + x6 * 7.0
            + x7 * 8.0
            + x8 * 9.0
            + x9 * 10.0
            + x10 * 11.0
            + x11 * 12.0
            + x12 * 13.0
            + x13 * 14.0
            + x14 * 15.0
            + x15 * 16.0
            + x16 * 17.0
            + x17 * 18.0
            + x18 * 19.0
            + x19 * 20.0
            + x20 * 21.0
            + x21 * 22.0
            + x22 * 23.0
            + x23 * 24.0
            + x24 * 25.0
            + x25 * 26.0
            + x26 * 27.0
            + x27 * 28.0
            + x28 * 29.0
            + x29 * 30.0
            + x30 * 31.0
            + x31 * 32.0
            + x32 * 33.0
            + x33 * 34.0
            + x34 * 35.0
            + x35 * 36.0
            + x36 * 37.0
            + x37 * 38.0
            + x38 * 39.0
            + x39 * 40.0
            + x40 * 41.0
            + x41 * 42.0
            + x42 * 43.0
            + x43 * 44.0
            + x44 * 45.0
            + x45 * 46.0
            + x46 * 47.0
            + x47 * 48.0
            + x48 * 49.0
            + x49 * 50.0
            + x50 * 51.0
            + x51 * 52.0
            + x52 * 53.0
            + x53 * 54.0
            + x54 * 55.0
            + x55 * 56.0
            + x56 * 57.0
            + x57 * 58.0
            + x58 * 59.0
            + x59 * 60.0
            + x60 * 61.0
            + x61 * 62.0
            + x62 * 63.0
            + x63 * 64.0
            + x64 * 65.0
            + x65 * 66.0
            + x66 * 67.0
            + x67 * 68.0
            + x68 * 69.0;
        s + sq(x69)
    }

    /// A caller: `many`'s pullback runs with a need mask of 70 entries.
    #[differentiable]
    pub fn uses_many(y: f64) -> f64 {
        many(
            y, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0,
            16.0, 17.0, 18.0, 19.0, 20.0, 21.0, 22.0, 23.0, 24.0, 25.0, 26.0, 27.0, 28.0, 29.0,
            30.0, 31.0, 32.0, 33.0, 34.0, 35.0, 36.0, 37.0, 38.0, 39.0, 40.0, 41.0, 42.0, 43.0,
            44.0, 45.0, 46.0, 47.0, 48.0, 49.0, 50.0, 51.0, 52.0, 53.0, 54.0, 55.0, 56.0, 57.0,
            58.0, 59.0, 60.0, 61.0, 62.0, 63.0, 64.0, 65.0, 66.0, 67.0, 68.0, y,
        )
    }

    #[differentiable]
    pub fn sq(x: f64) -> f64 {
        x * x
    }

    /// Issue 8: `x.len() as f64` on a slice that carries a gradient.
    #[differentiable]
    pub fn mean_by_len(x: &[f64]) -> f64 {
        let mut s = 0.0;
        for i in 0..x.len() {
            s += x[i];
        }
        s / x.len() as f64 + x[0] * (x.len() as f64)
    }
}

#[test]
fn if_in_loop_whose_branch_values_are_not_all_read() {
    let f = |x: &[f64]| fns::acc_branch(x[0], &x[1..]);
    let g = |x: &[f64]| {
        let (v, (gw, gx)) = fns::acc_branch_grad(x[0], &x[1..]);
        (v, [vec![gw], gx].concat())
    };
    let v = |x: &[f64], s: f64| {
        let (v, (gw, gx)) = fns::acc_branch_vjp(x[0], &x[1..], s);
        (v, [vec![gw], gx].concat())
    };
    check("acc_branch", 1, 4, -1.5, 1.5, 1e-5, &f, &g, &v);

    let f = |x: &[f64]| fns::rebind_if_expr(x[0]);
    let g = |x: &[f64]| {
        let (v, g) = fns::rebind_if_expr_grad(x[0]);
        (v, vec![g])
    };
    let v = |x: &[f64], s: f64| {
        let (v, g) = fns::rebind_if_expr_vjp(x[0], s);
        (v, vec![g])
    };
    check("rebind_if_expr", 2, 1, -2.0, 2.0, 1e-6, &f, &g, &v);
    // By hand: every iteration multiplies by 2 or 3, so the derivative is the product.
    let (_, d) = fns::rebind_if_expr_grad(0.5); // 0.5 -> 1.5 -> 3 -> 6 -> 12
    assert_eq!(d, 3.0 * 2.0 * 2.0 * 2.0);

    // f32, by hand on both paths.
    let (v, d) = fns::rebind_if_expr_f32_grad(0.5);
    assert_eq!((v, d), (fns::rebind_if_expr_f32(0.5), 24.0));
    let (vv, d) = fns::rebind_if_expr_f32_vjp(-0.25, 2.0);
    assert_eq!((vv, d), (-0.25 * 81.0, 162.0));
}

#[test]
fn if_statement_without_value_as_last_expression() {
    let f = |x: &[f64]| fns::if_stmt_tail_of_for(x[0], x[1]);
    let g = |x: &[f64]| {
        let (v, (a, b)) = fns::if_stmt_tail_of_for_grad(x[0], x[1]);
        (v, vec![a, b])
    };
    let v = |x: &[f64], s: f64| {
        let (v, (a, b)) = fns::if_stmt_tail_of_for_vjp(x[0], x[1], s);
        (v, vec![a, b])
    };
    check("if_stmt_tail_of_for", 3, 2, -1.5, 1.5, 1e-5, &f, &g, &v);

    let f = |x: &[f64]| fns::if_stmt_before_tail(x[0], x[1]);
    let g = |x: &[f64]| {
        let (v, (a, b)) = fns::if_stmt_before_tail_grad(x[0], x[1]);
        (v, vec![a, b])
    };
    let v = |x: &[f64], s: f64| {
        let (v, (a, b)) = fns::if_stmt_before_tail_vjp(x[0], x[1], s);
        (v, vec![a, b])
    };
    check("if_stmt_before_tail", 4, 2, -2.0, 2.0, 1e-6, &f, &g, &v);
    // By hand, x > y: s = x y, result x^2 y: d/dx = 2 x y, d/dy = x^2.
    let (_, (dx, dy)) = fns::if_stmt_before_tail_grad(1.5, 0.5);
    assert_eq!((dx, dy), (1.5, 2.25));

    let f = |x: &[f64]| fns::nested_if_stmt_tail(x[0], x[1]);
    let g = |x: &[f64]| {
        let (v, (a, b)) = fns::nested_if_stmt_tail_grad(x[0], x[1]);
        (v, vec![a, b])
    };
    let v = |x: &[f64], s: f64| {
        let (v, (a, b)) = fns::nested_if_stmt_tail_vjp(x[0], x[1], s);
        (v, vec![a, b])
    };
    check("nested_if_stmt_tail", 5, 2, -2.0, 2.0, 1e-6, &f, &g, &v);
}

#[test]
fn compound_assignment_on_inactive_local() {
    let f = |x: &[f64]| fns::counter(x[0]);
    let g = |x: &[f64]| {
        let (v, g) = fns::counter_grad(x[0]);
        (v, vec![g])
    };
    let v = |x: &[f64], s: f64| {
        let (v, g) = fns::counter_vjp(x[0], s);
        (v, vec![g])
    };
    check("counter", 6, 1, -2.0, 2.0, 1e-6, &f, &g, &v);
    // By hand: s = (((x + x) * 2 + x) * 3 + x) * 4 + x = 65 x; c = 4 * 2 - 0.5.
    assert_eq!(fns::counter_grad(1.0), (65.0 + 7.5, 65.0));

    let f = |x: &[f64]| f64::from(fns::counter_f32(x[0] as f32));
    let g = |x: &[f64]| {
        let (v, g) = fns::counter_f32_grad(x[0] as f32);
        (f64::from(v), vec![f64::from(g)])
    };
    let v = |x: &[f64], s: f64| {
        let (v, g) = fns::counter_f32_vjp(x[0] as f32, s as f32);
        (f64::from(v), vec![f64::from(g)])
    };
    // f32: values compared loosely through the f32 function itself.
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for _ in 0..20 {
        let x: f64 = rng.gen_range(-1.0..1.0);
        let want = fd(
            &|x: &[f64]| f64::from(fns::counter_f32(x[0] as f32)),
            &[x],
            1e-3,
        )[0];
        let (gv, gd) = g(&[x]);
        assert!(close(gv, f(&[x]), 1e-6));
        assert!(
            close(gd[0], want, 1e-2),
            "counter_f32 at {x}: {} vs {want}",
            gd[0]
        );
        let (_, vd) = v(&[x], 2.0);
        assert!(close(vd[0], 2.0 * want, 1e-2));
    }
}

#[test]
fn scalar_times_transpose() {
    let (r, c) = (2, 3);
    let f = |x: &[f64]| fns::scalar_times_transpose(x[0], &mat(&x[1..], r, c));
    let g = |x: &[f64]| {
        let (v, (gs, gw)) = fns::scalar_times_transpose_grad(x[0], &mat(&x[1..], r, c));
        (v, [vec![gs], gw.as_slice().to_vec()].concat())
    };
    let v = |x: &[f64], s: f64| {
        let (v, (gs, gw)) = fns::scalar_times_transpose_vjp(x[0], &mat(&x[1..], r, c), s);
        (v, [vec![gs], gw.as_slice().to_vec()].concat())
    };
    check(
        "scalar_times_transpose",
        8,
        1 + r * c,
        -2.0,
        2.0,
        1e-6,
        &f,
        &g,
        &v,
    );
    // By hand: f = s^2 sum(w^2) + 2 sum(w): df/ds = 2 s sum(w^2).
    let w = DMatrix::from_element(r, c, 1.0);
    let (val, (gs, gw)) = fns::scalar_times_transpose_grad(3.0, &w);
    assert_eq!(val, 9.0 * 6.0 + 12.0);
    assert_eq!(gs, 2.0 * 3.0 * 6.0);
    assert!(gw.iter().all(|&d| d == 2.0 * 9.0 + 2.0));
}

#[test]
fn early_return_in_loop_over_matrices() {
    let (r, c) = (2, 2);
    let f = |x: &[f64]| fns::return_in_matrix_loop(&mat(&x[1..], r, c), x[0]);
    let g = |x: &[f64]| {
        let (v, (gw, gx)) = fns::return_in_matrix_loop_grad(&mat(&x[1..], r, c), x[0]);
        (v, [vec![gx], gw.as_slice().to_vec()].concat())
    };
    let v = |x: &[f64], s: f64| {
        let (v, (gw, gx)) = fns::return_in_matrix_loop_vjp(&mat(&x[1..], r, c), x[0], s);
        (v, [vec![gx], gw.as_slice().to_vec()].concat())
    };
    check(
        "return_in_matrix_loop",
        9,
        1 + r * c,
        0.2,
        1.6,
        1e-6,
        &f,
        &g,
        &v,
    );
    // By hand, the early exit in the second iteration (w = 1.5 everywhere, x = 1):
    // m = w^2 x + w, f = x mean(m): df/dx = mean(2 w^2 x + w) = 6, df/dw = x (2 w x + 1) / 4 = 1.
    let big = DMatrix::from_element(r, c, 1.5);
    let (val, (gw, gx)) = fns::return_in_matrix_loop_grad(&big, 1.0);
    assert_eq!((val, gx), (3.75, 6.0));
    assert!(gw.iter().all(|&d| d == 1.0), "{gw}");
}

#[test]
fn early_return_in_loop_with_call_over_matrices() {
    let n = 2;
    let f = |x: &[f64]| fns::return_in_matrix_loop_call(&mat(&x[..4], n, n), &mat(&x[4..], n, n));
    let g = |x: &[f64]| {
        let (v, (gw, gx)) =
            fns::return_in_matrix_loop_call_grad(&mat(&x[..4], n, n), &mat(&x[4..], n, n));
        (v, [gw.as_slice(), gx.as_slice()].concat())
    };
    let v = |x: &[f64], s: f64| {
        let (v, (gw, gx)) =
            fns::return_in_matrix_loop_call_vjp(&mat(&x[..4], n, n), &mat(&x[4..], n, n), s);
        (v, [gw.as_slice(), gx.as_slice()].concat())
    };
    check(
        "return_in_matrix_loop_call",
        11,
        8,
        0.1,
        1.8,
        1e-6,
        &f,
        &g,
        &v,
    );
    // By hand, the exit in the first iteration: x = w = 2 I, h = 4 I, f = 4:
    // df/dw = x^T 0.5 = I, df/dx = 0.5 w^T = I (relu is the identity on positive entries).
    let two = DMatrix::from_diagonal_element(n, n, 2.0);
    let (val, (gw, gx)) = fns::return_in_matrix_loop_call_grad(&two, &two);
    assert_eq!(val, 4.0);
    assert_eq!(gw, DMatrix::identity(n, n));
    assert_eq!(gx, DMatrix::identity(n, n));
}

#[test]
fn len_cast_of_active_slice() {
    let f = |x: &[f64]| fns::mean_by_len(x);
    let g = |x: &[f64]| fns::mean_by_len_grad(x);
    let v = |x: &[f64], s: f64| fns::mean_by_len_vjp(x, s);
    check("mean_by_len", 10, 5, -2.0, 2.0, 1e-6, &f, &g, &v);
    // By hand: d/dx0 = 1/n + n, d/dxi = 1/n.
    let (_, d) = fns::mean_by_len_grad(&[1.0, 2.0, 3.0, 4.0]);
    assert_eq!(d, vec![0.25 + 4.0, 0.25, 0.25, 0.25]);
}

#[test]
fn fuzz_findings() {
    let f = |x: &[f64]| fns::fuzz_a(x[0]);
    let g = |x: &[f64]| {
        let (v, g) = fns::fuzz_a_grad(x[0]);
        (v, vec![g])
    };
    let v = |x: &[f64], s: f64| {
        let (v, g) = fns::fuzz_a_vjp(x[0], s);
        (v, vec![g])
    };
    check("fuzz_a", 12, 1, -2.0, 3.0, 1e-6, &f, &g, &v);
    // By hand (derivatives of the exact expressions, not of the generated code):
    assert_eq!(fns::fuzz_b_f_grad(3.0), (0.75, 0.25));
    assert_eq!(fns::fuzz_b_g_grad(3.0), (4.0, 1.0));
    assert_eq!(fns::fuzz_b_h_grad(3.0), (-3.0, -1.0));
    assert_eq!(fns::fuzz_b_k_grad(3.0), (9.0, 6.0));
    assert_eq!(
        fns::fuzz_b_exp_grad(2.0),
        (2.0 * 1.5f64.exp() + 1.5, 1.5f64.exp())
    );
    assert_eq!(fns::fuzz_b_exp_vjp(2.0, 3.0).1, 3.0 * 1.5f64.exp());
    // 1.94 * 0.46 = 0.8924: cos(0.8924) = 0.63 >= -0.58, so 2 x.
    assert_eq!(fns::fuzz_c_grad(1.5), (3.0, 2.0));
    assert_eq!(fns::fuzz_c2_grad(2.0), (2.0 * 0.25f32.exp(), 0.25f32.exp()));
}

#[test]
fn more_than_64_parameters() {
    let x: Vec<f64> = (0..70).map(|i| 0.5 + i as f64 * 0.01).collect();
    let (v, g) = fns::many_grad(
        x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7], x[8], x[9], x[10], x[11], x[12], x[13],
        x[14], x[15], x[16], x[17], x[18], x[19], x[20], x[21], x[22], x[23], x[24], x[25], x[26],
        x[27], x[28], x[29], x[30], x[31], x[32], x[33], x[34], x[35], x[36], x[37], x[38], x[39],
        x[40], x[41], x[42], x[43], x[44], x[45], x[46], x[47], x[48], x[49], x[50], x[51], x[52],
        x[53], x[54], x[55], x[56], x[57], x[58], x[59], x[60], x[61], x[62], x[63], x[64], x[65],
        x[66], x[67], x[68], x[69],
    );
    assert_eq!(
        v,
        fns::many(
            x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7], x[8], x[9], x[10], x[11], x[12], x[13],
            x[14], x[15], x[16], x[17], x[18], x[19], x[20], x[21], x[22], x[23], x[24], x[25],
            x[26], x[27], x[28], x[29], x[30], x[31], x[32], x[33], x[34], x[35], x[36], x[37],
            x[38], x[39], x[40], x[41], x[42], x[43], x[44], x[45], x[46], x[47], x[48], x[49],
            x[50], x[51], x[52], x[53], x[54], x[55], x[56], x[57], x[58], x[59], x[60], x[61],
            x[62], x[63], x[64], x[65], x[66], x[67], x[68], x[69]
        )
    );
    let g = [
        g.0, g.1, g.2, g.3, g.4, g.5, g.6, g.7, g.8, g.9, g.10, g.11, g.12, g.13, g.14, g.15, g.16,
        g.17, g.18, g.19, g.20, g.21, g.22, g.23, g.24, g.25, g.26, g.27, g.28, g.29, g.30, g.31,
        g.32, g.33, g.34, g.35, g.36, g.37, g.38, g.39, g.40, g.41, g.42, g.43, g.44, g.45, g.46,
        g.47, g.48, g.49, g.50, g.51, g.52, g.53, g.54, g.55, g.56, g.57, g.58, g.59, g.60, g.61,
        g.62, g.63, g.64, g.65, g.66, g.67, g.68, g.69,
    ];
    // By hand: d/dx_i = i + 1 for i < 69, and 2 x_69 for the last.
    for (i, d) in g.iter().enumerate() {
        let want = if i < 69 { (i + 1) as f64 } else { 2.0 * x[i] };
        assert_eq!(*d, want, "d/dx{i}");
    }
    // Through a caller: y appears as x0 and x69: d/dy = 1 + 2 y.
    for y in [0.5, -1.25, 3.0] {
        assert_eq!(fns::uses_many_grad(y).1, 1.0 + 2.0 * y);
        assert_eq!(fns::uses_many_vjp(y, 2.0).1, 2.0 * (1.0 + 2.0 * y));
    }
}

// Statement macros run in the forward pass and do not change the gradient; format strings
// may capture locals (`{s}`), including ones that carry a gradient.
#[symgrad::differentiable]
fn with_statement_macros(x: f64, xs: &[f64]) -> f64 {
    let mut s = x;
    assert!(xs.len() >= 2, "need two values, got {}", xs.len());
    for i in 0..xs.len() {
        s = s * xs[i] + x.sin();
        debug_assert!(s.is_finite(), "s = {s} at {i}");
        if s > 10.0 {
            eprint!("");
        }
    }
    assert_eq!(xs.len(), xs.len());
    print!("");
    s * s
}

#[test]
fn statement_macros_run_and_leave_the_gradient_alone() {
    let xs = [0.7, -1.1, 0.4];
    let f = |p: &[f64]| with_statement_macros(p[0], &p[1..]);
    let p = [0.3, 0.7, -1.1, 0.4];
    let (v, (gx, gxs)) = with_statement_macros_grad(p[0], &xs);
    assert_eq!(v, f(&p));
    let want = fd(&f, &p, 1e-6);
    assert!(close(gx, want[0], 1e-6), "{gx} vs {}", want[0]);
    for k in 0..3 {
        assert!(
            close(gxs[k], want[k + 1], 1e-6),
            "{k}: {} vs {}",
            gxs[k],
            want[k + 1]
        );
    }
    // The `assert!` runs in the generated function too.
    let caught = std::panic::catch_unwind(|| with_statement_macros_grad(0.3, &[1.0]));
    assert!(
        caught.is_err(),
        "the assert! in the forward pass did not run"
    );
}

// A copy of one loop-carried local into another that starts with the same constant, the copy
// taken before the source changes in the same iteration (found writing examples/projectile.rs:
// `py` was not seen as carried, "cannot find value").
#[symgrad::differentiable]
fn previous_copy(s: f64) -> f64 {
    let mut y = 1.0;
    let mut py = 1.0;
    for _ in 0..3 {
        py = y;
        y -= s;
    }
    py * y
}

#[symgrad::differentiable]
fn previous_copy_while(s: f64, h: f64) -> f64 {
    let mut y = h;
    let mut py = h;
    let mut n = 0;
    while y > 0.0 {
        py = y;
        y -= s * (1.0 + 0.1 * py);
        n += 1;
    }
    py + y * (n as f64)
}

#[test]
fn a_copy_of_a_carried_value_is_carried_too() {
    // py = 1 - 2s, y = 1 - 3s: d(py y)/ds = -2 (1 - 3s) - 3 (1 - 2s) = -5 + 12 s.
    for s in [0.1, 0.5, -2.0] {
        let (v, g) = previous_copy_grad(s);
        assert!(
            close(v, (1.0 - 2.0 * s) * (1.0 - 3.0 * s), 1e-12),
            "{v} at {s}"
        );
        assert!(close(g, -5.0 + 12.0 * s, 1e-12), "{g} at {s}");
    }
    let f = |p: &[f64]| previous_copy_while(p[0], p[1]);
    let g = |p: &[f64]| {
        let (v, (a, b)) = previous_copy_while_grad(p[0], p[1]);
        (v, vec![a, b])
    };
    let v = |p: &[f64], s: f64| {
        let (v, (a, b)) = previous_copy_while_vjp(p[0], p[1], s);
        (v, vec![a, b])
    };
    check("previous_copy_while", 21, 2, 0.2, 1.5, 1e-6, &f, &g, &v);
}

// A closure passed by name to `map` inside a condition (random programs, seed 12, p00032:
// "the closure `f` cannot be called here").
#[symgrad::differentiable]
fn closure_by_name_in_condition(x: f64, w: &[f64]) -> f64 {
    let f = |t: f64| t * x + 0.5;
    let s = if w.iter().rev().copied().map(f).sum::<f64>() <= 1.5 {
        x * x
    } else {
        3.0 * x
    };
    s + w.iter().copied().map(f).sum::<f64>()
}

#[test]
fn a_closure_passed_by_name_in_a_condition() {
    let f = |p: &[f64]| closure_by_name_in_condition(p[0], &p[1..]);
    let g = |p: &[f64]| {
        let (v, (a, b)) = closure_by_name_in_condition_grad(p[0], &p[1..]);
        let mut out = vec![a];
        out.extend(b);
        (v, out)
    };
    let v = |p: &[f64], s: f64| {
        let (v, (a, b)) = closure_by_name_in_condition_vjp(p[0], &p[1..], s);
        let mut out = vec![a];
        out.extend(b);
        (v, out)
    };
    check("closure_by_name", 22, 4, -1.0, 1.0, 1e-6, &f, &g, &v);
}

// A constant `vec![x; n]` whose length is a local (user-style corpus: "cannot find value `n`";
// the names inside the macro's tokens were not renamed), and a constant `vec![a, b]`.
#[allow(clippy::useless_vec)]
#[symgrad::differentiable]
fn vec_of_local_length(xs: &[f64]) -> f64 {
    let n = xs.len();
    let k = 2.0;
    let mut v = vec![0.0; n];
    let w = vec![k, k * 3.0];
    for i in 0..n {
        v[i] = xs[i] * xs[i] * w[i % 2];
    }
    v.iter().sum::<f64>()
}

#[test]
fn a_constant_vec_of_a_local_length() {
    // by hand: d/dx_i = 2 x_i w_(i mod 2), w = [2, 6]
    let (v, g) = vec_of_local_length_grad(&[1.0, 2.0, 3.0]);
    assert_eq!(v, vec_of_local_length(&[1.0, 2.0, 3.0]));
    assert_eq!(g, vec![4.0, 24.0, 12.0]);
    let f = |p: &[f64]| vec_of_local_length(p);
    let g = |p: &[f64]| vec_of_local_length_grad(p);
    let v = |p: &[f64], s: f64| vec_of_local_length_vjp(p, s);
    check("vec_of_local_length", 23, 4, -2.0, 2.0, 1e-6, &f, &g, &v);
}

// Float methods users reach for, once rejected with "method `exp_m1` is not supported"
// (user-style corpus): exp_m1, ln_1p, asinh, acosh, atanh have rules; clamp, to_radians,
// to_degrees and sin_cos are lowered to max/min, a product and (sin, cos).
#[symgrad::differentiable]
fn more_float_methods(x: f64, y: f64) -> f64 {
    let (s, c) = x.to_radians().sin_cos();
    x.exp_m1()
        + y.ln_1p()
        + x.asinh()
        + (2.0 + y * y).acosh()
        + (0.5 * y).atanh()
        + x.clamp(-0.5, 0.5) * y.to_degrees()
        + s * c
}

#[test]
fn more_float_methods_have_gradients() {
    let f = |p: &[f64]| more_float_methods(p[0], p[1]);
    let g = |p: &[f64]| {
        let (v, (a, b)) = more_float_methods_grad(p[0], p[1]);
        (v, vec![a, b])
    };
    let v = |p: &[f64], s: f64| {
        let (v, (a, b)) = more_float_methods_vjp(p[0], p[1], s);
        (v, vec![a, b])
    };
    check("more_float_methods", 24, 2, -0.9, 0.9, 1e-6, &f, &g, &v);
}

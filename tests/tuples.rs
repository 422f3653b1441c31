//! Tuples as results (issue 9): a `#[differentiable]` fn returning `(f64, f64)` (or nested
//! tuples of floats), and callers that destructure (`let (a, b) = f(..)`), read parts
//! (`p.0`), ignore parts (`_`), in loops and branches.
//!
//! Callers' gradients are compared with central finite differences of the ORIGINAL
//! functions at random points; the `_vjp` of the tuple-valued fn with a Jacobian derived by
//! hand (polar to cartesian).

#![allow(
    dead_code,
    clippy::needless_return,
    clippy::type_complexity,
    clippy::assign_op_pattern
)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use symgrad::differentiable;

mod common;
use common::{close, fd};

// ---------------------------------------------------------------------------------------
// Tuple-valued functions
// ---------------------------------------------------------------------------------------

/// Polar to cartesian coordinates.
#[differentiable]
fn polar(r: f64, t: f64) -> (f64, f64) {
    (r * t.cos(), r * t.sin())
}

#[differentiable]
fn polar32(r: f32, t: f32) -> (f32, f32) {
    (r * t.cos(), r * t.sin())
}

/// The tuple built in `return`s, one part a constant on one path.
#[differentiable]
fn with_returns(a: f64, b: f64) -> (f64, f64) {
    if a < 0.0 {
        return (0.5, a * b);
    }
    let s = a.sqrt();
    return (s * b, s + b);
}

/// A nested tuple.
#[differentiable]
fn nested(a: f64, b: f64) -> (f64, (f64, f64)) {
    let e = a.exp();
    (a * b, (e, b - e * a))
}

/// A tuple-valued fn calling a tuple-valued fn.
#[differentiable]
fn chained(r: f64, t: f64) -> (f64, f64) {
    let (x, y) = polar(r, t);
    (x + y, x * y)
}

/// A tuple result of a slice: the sum and the sum of squares.
#[differentiable]
fn moments(xs: &[f64], w: f64) -> (f64, f64) {
    let mut s = 0.0;
    let mut q = 0.0;
    for &x in xs {
        s += w * x;
        q += x * x;
    }
    (s, q)
}

// ---------------------------------------------------------------------------------------
// Callers
// ---------------------------------------------------------------------------------------

#[differentiable]
fn destructured(r: f64, t: f64) -> f64 {
    let (x, y) = polar(r, t);
    x * y + x.sin()
}

#[differentiable]
fn destructured32(r: f32, t: f32) -> f32 {
    let (x, y) = polar32(r, t);
    x * y + x.sin()
}

#[differentiable]
fn by_field(r: f64, t: f64) -> f64 {
    let p = polar(r, t);
    p.0 * p.1 + p.0
}

#[differentiable]
fn by_field32(r: f32, t: f32) -> f32 {
    let p = polar32(r, t);
    p.0 * p.1 + p.0
}

/// One part unused: its adjoint is zero.
#[differentiable]
fn wildcard(r: f64, t: f64) -> f64 {
    let (_, y) = polar(r, t);
    y * y
}

#[differentiable]
fn in_loop(r: f64, t: f64) -> f64 {
    let mut s = 0.0;
    for i in 0..4 {
        let (a, b) = polar(r + i as f64 * 0.25, t + 0.1 * s);
        if a > b {
            s += a * b;
        } else {
            s -= b;
        }
    }
    s
}

#[differentiable]
fn in_branch(r: f64, t: f64) -> f64 {
    let p = if r > 1.0 { polar(r, t) } else { polar(t, r) };
    p.0 + 2.0 * p.1
}

/// A tuple carried through loop iterations.
#[differentiable]
fn carried(r: f64, t: f64) -> f64 {
    let mut p = polar(r, t);
    for _ in 0..3 {
        p = polar(p.0 * 0.5 + 1.0, p.1);
    }
    p.0 * p.1
}

#[differentiable]
fn while_tuple(r: f64, t: f64) -> f64 {
    let mut x = r;
    let mut k = 0;
    while k < 3 {
        let (a, _) = polar(x, t);
        x = a + 1.0;
        k += 1;
    }
    x
}

#[differentiable]
fn nested_caller(a: f64, b: f64) -> f64 {
    let (x, (y, z)) = nested(a, b);
    let q = nested(b, a);
    x * y + z + (q.1).0 * q.0
}

#[differentiable]
fn chained_caller(r: f64, t: f64) -> f64 {
    let (u, v) = chained(r, t);
    u * v
}

#[differentiable]
fn returns_caller(a: f64, b: f64) -> f64 {
    let (x, y) = with_returns(a, b);
    x * y
}

#[differentiable]
fn local_tuple(a: f64, b: f64) -> f64 {
    let p = (a * b, a + b);
    p.0 * p.1
}

/// Tuples made in branches, destructured after the merge.
#[differentiable]
fn branch_tuples(a: f64, b: f64) -> f64 {
    let (c, d) = if a > 0.5 { (a * b, b) } else { (b, a.exp()) };
    let p = if c > d { (c, d) } else { (d, c) };
    p.0 * 3.0 - p.1 * c
}

/// A method returning a tuple, and a caller of it.
struct Lens {
    k: f64,
}

impl Lens {
    #[differentiable(wrt(r, t))]
    fn project(&self, r: f64, t: f64) -> (f64, f64) {
        (self.k * r * t.cos(), r * t.sin())
    }
}

#[differentiable(wrt(r, t))]
fn method_caller(lens: &Lens, r: f64, t: f64) -> f64 {
    let (x, y) = lens.project(r, t);
    let p = lens.project(y, x);
    x * y + p.1
}

// ---------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------

/// Checks `grad` against finite differences of `f` (step `h`, relative) at 40 points in
/// `lo..hi` (points where two step sizes disagree, at a branch, are skipped; most must be
/// usable).
#[allow(clippy::too_many_arguments)]
fn check(
    what: &str,
    n: usize,
    lo: f64,
    hi: f64,
    h: f64,
    rtol: f64,
    f: &dyn Fn(&[f64]) -> f64,
    grad: &dyn Fn(&[f64]) -> (f64, Vec<f64>),
) {
    let mut rng = ChaCha8Rng::seed_from_u64(what.len() as u64 + 7);
    let total = 40;
    let mut used = 0;
    for _ in 0..total {
        let x: Vec<f64> = (0..n).map(|_| rng.gen_range(lo..hi)).collect();
        let want = fd(f, &x, h);
        let coarse = fd(f, &x, h * 10.0);
        if want
            .iter()
            .zip(&coarse)
            .any(|(a, b)| !close(*a, *b, rtol / 10.0))
        {
            continue;
        }
        used += 1;
        let (v, got) = grad(&x);
        assert!(close(v, f(&x), 1e-5), "{what}: value {v} against {}", f(&x));
        for i in 0..n {
            assert!(
                close(got[i], want[i], rtol),
                "{what}: d/dx{i} = {} against finite differences {} at {x:?}",
                got[i],
                want[i]
            );
        }
    }
    assert!(
        used * 2 >= total,
        "{what}: only {used} of {total} points usable"
    );
}

/// A scalar fn of two f64s, checked.
fn check2(what: &str, f: fn(f64, f64) -> f64, g: fn(f64, f64) -> (f64, (f64, f64))) {
    check(what, 2, -2.0, 2.0, 1e-6, 1e-4, &|x| f(x[0], x[1]), &|x| {
        let (v, (a, b)) = g(x[0], x[1]);
        (v, vec![a, b])
    });
}

/// A scalar fn of two f32s: its finite differences in f32, with a step of 1e-3.
fn check2_f32(what: &str, f: fn(f32, f32) -> f32, g: fn(f32, f32) -> (f32, (f32, f32))) {
    check(
        what,
        2,
        -2.0,
        2.0,
        1e-3,
        2e-2,
        &|x| f64::from(f(x[0] as f32, x[1] as f32)),
        &|x| {
            let (v, (a, b)) = g(x[0] as f32, x[1] as f32);
            (f64::from(v), vec![f64::from(a), f64::from(b)])
        },
    );
}

#[test]
fn polar_vjp_is_the_transposed_jacobian() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for _ in 0..50 {
        let (r, t) = (rng.gen_range(0.1..3.0), rng.gen_range(-3.0..3.0));
        let (u0, u1): (f64, f64) = (rng.gen_range(-1.0..1.0), rng.gen_range(-1.0..1.0));
        let (v, (dr, dt)) = polar_vjp(r, t, (u0, u1));
        assert_eq!(v, polar(r, t));
        // J = [[cos t, -r sin t], [sin t, r cos t]]; Jᵀ u:
        let want_r = u0 * t.cos() + u1 * t.sin();
        let want_t = -u0 * r * t.sin() + u1 * r * t.cos();
        assert!(close(dr, want_r, 1e-12), "{dr} {want_r}");
        assert!(close(dt, want_t, 1e-12), "{dt} {want_t}");
        // The same in f32.
        let (_, (dr32, dt32)) = polar32_vjp(r as f32, t as f32, (u0 as f32, u1 as f32));
        assert!(close(f64::from(dr32), want_r, 1e-4), "{dr32} {want_r}");
        assert!(close(f64::from(dt32), want_t, 1e-4), "{dt32} {want_t}");
    }
}

/// The Jacobian check tells Jᵀ u from J u and from the parts' adjoints swapped: a rule
/// that got either wrong would fail it.
#[test]
fn the_jacobian_check_can_fail() {
    let (r, t, u0, u1) = (1.3f64, 0.7f64, 0.4f64, -0.9f64);
    let (_, (dr, dt)) = polar_vjp(r, t, (u0, u1));
    // J u instead of Jᵀ u.
    let j_u = (
        t.cos() * u0 - r * t.sin() * u1,
        t.sin() * u0 + r * t.cos() * u1,
    );
    assert!(!close(dr, j_u.0, 1e-3) || !close(dt, j_u.1, 1e-3));
    // The seed's parts swapped.
    let (_, (sr, st)) = polar_vjp(r, t, (u1, u0));
    assert!(!close(dr, sr, 1e-3) || !close(dt, st, 1e-3));
    // A zero seed part gives that row only.
    let (_, (xr, xt)) = polar_vjp(r, t, (1.0, 0.0));
    assert!(close(xr, t.cos(), 1e-12) && close(xt, -r * t.sin(), 1e-12));
}

/// `u · f(x)` for a tuple-valued `f`, by finite differences, against `_vjp` with seed `u`.
#[test]
fn tuple_results_against_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for _ in 0..30 {
        let (a, b): (f64, f64) = (rng.gen_range(-2.0..2.0), rng.gen_range(-2.0..2.0));
        let (u0, u1, u2): (f64, f64, f64) = (
            rng.gen_range(-1.0..1.0),
            rng.gen_range(-1.0..1.0),
            rng.gen_range(-1.0..1.0),
        );
        let dot_nested = |x: &[f64]| {
            let (p, (q, s)) = nested(x[0], x[1]);
            u0 * p + u1 * q + u2 * s
        };
        let want = fd(&dot_nested, &[a, b], 1e-6);
        let (v, (da, db)) = nested_vjp(a, b, (u0, (u1, u2)));
        assert_eq!(v, nested(a, b));
        assert!(close(da, want[0], 1e-6) && close(db, want[1], 1e-6));

        let dot_chained = |x: &[f64]| {
            let (p, q) = chained(x[0], x[1]);
            u0 * p + u1 * q
        };
        let want = fd(&dot_chained, &[a, b], 1e-6);
        let (_, (da, db)) = chained_vjp(a, b, (u0, u1));
        assert!(close(da, want[0], 1e-6) && close(db, want[1], 1e-6));

        if a.abs() > 1e-3 {
            let dot_ret = |x: &[f64]| {
                let (p, q) = with_returns(x[0], x[1]);
                u0 * p + u1 * q
            };
            let want = fd(&dot_ret, &[a, b], 1e-6);
            let (_, (da, db)) = with_returns_vjp(a, b, (u0, u1));
            assert!(close(da, want[0], 1e-5) && close(db, want[1], 1e-5));
        }

        let xs = [a, b, u2];
        let dot_moments = |x: &[f64]| {
            let (s, q) = moments(&x[..3], x[3]);
            u0 * s + u1 * q
        };
        let want = fd(&dot_moments, &[a, b, u2, 0.7], 1e-6);
        let (_, (dxs, dw)) = moments_vjp(&xs, 0.7, (u0, u1));
        for i in 0..3 {
            assert!(close(dxs[i], want[i], 1e-6), "{} {}", dxs[i], want[i]);
        }
        assert!(close(dw, want[3], 1e-6));
    }
}

#[test]
fn callers_against_finite_differences() {
    check2("destructured", destructured, destructured_grad);
    check2("by_field", by_field, by_field_grad);
    check2("wildcard", wildcard, wildcard_grad);
    check2("in_loop", in_loop, in_loop_grad);
    check2("in_branch", in_branch, in_branch_grad);
    check2("carried", carried, carried_grad);
    check2("while_tuple", while_tuple, while_tuple_grad);
    check2("nested_caller", nested_caller, nested_caller_grad);
    check2("chained_caller", chained_caller, chained_caller_grad);
    check2("returns_caller", returns_caller, returns_caller_grad);
    check2("local_tuple", local_tuple, local_tuple_grad);
    check2("branch_tuples", branch_tuples, branch_tuples_grad);
    let lens = Lens { k: 1.7 };
    check(
        "method_caller",
        2,
        -2.0,
        2.0,
        1e-6,
        1e-4,
        &|x| method_caller(&lens, x[0], x[1]),
        &|x| {
            let (v, (a, b)) = method_caller_grad(&lens, x[0], x[1]);
            (v, vec![a, b])
        },
    );
}

#[test]
fn callers_f32_against_finite_differences() {
    check2_f32("destructured32", destructured32, destructured32_grad);
    check2_f32("by_field32", by_field32, by_field32_grad);
}

/// The unused part's adjoint is zero: `wildcard` reads only `y = r sin t`.
#[test]
fn an_unused_part_has_a_zero_adjoint() {
    let (r, t) = (1.5f64, 0.4f64);
    let (_, (dr, dt)) = wildcard_grad(r, t);
    let y = r * t.sin();
    assert!(close(dr, 2.0 * y * t.sin(), 1e-12));
    assert!(close(dt, 2.0 * y * r * t.cos(), 1e-12));
}

// ---------------------------------------------------------------------------------------
// Forward mode
// ---------------------------------------------------------------------------------------

#[differentiable(forward, reverse)]
fn polar_fm(r: f64, t: f64) -> (f64, f64) {
    (r * t.cos(), r * t.sin())
}

#[differentiable(forward)]
fn polar_fm32(r: f32, t: f32) -> (f32, f32) {
    (r * t.cos(), r * t.sin())
}

/// A tuple-valued fn of a tuple-valued call, in forward mode; one part inactive.
#[differentiable(forward)]
fn rotate_fm(r: f64, t: f64, k: usize) -> (f64, (f64, f64)) {
    let (x, y) = polar_fm(r, t);
    let p = if x > 0.0 { (x + y, x * y) } else { (y, x) };
    let mut s = 0.0;
    for i in 0..k {
        s += p.0 * i as f64;
    }
    (s, (p.1, 2.0))
}

#[differentiable(forward)]
fn caller_fm(r: f64, t: f64) -> f64 {
    let (x, _) = polar_fm(r, t);
    let q = polar_fm(x, r);
    x * q.1 + q.0
}

/// The tangent of polar along (dr, dt) is J (dr, dt), with J derived by hand.
#[test]
fn polar_jvp_is_the_jacobian() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for _ in 0..50 {
        let (r, t): (f64, f64) = (rng.gen_range(0.1..3.0), rng.gen_range(-3.0..3.0));
        let (dr, dt): (f64, f64) = (rng.gen_range(-1.0..1.0), rng.gen_range(-1.0..1.0));
        let (v, (tx, ty)) = polar_fm_jvp(r, t, dr, dt);
        assert_eq!(v, polar(r, t));
        let want_x = t.cos() * dr - r * t.sin() * dt;
        let want_y = t.sin() * dr + r * t.cos() * dt;
        assert!(close(tx, want_x, 1e-12) && close(ty, want_y, 1e-12));
        let (_, (tx32, ty32)) = polar_fm32_jvp(r as f32, t as f32, dr as f32, dt as f32);
        assert!(close(f64::from(tx32), want_x, 1e-4) && close(f64::from(ty32), want_y, 1e-4));
        // <u, J v> = <Jᵀ u, v> with the reverse mode of the same function.
        let (u0, u1): (f64, f64) = (rng.gen_range(-1.0..1.0), rng.gen_range(-1.0..1.0));
        let (_, (gr, gt)) = polar_fm_vjp(r, t, (u0, u1));
        assert!(close(u0 * tx + u1 * ty, gr * dr + gt * dt, 1e-12));
    }
}

/// Tangents of tuple-valued and scalar forward-mode fns against finite differences of the
/// original functions along the same direction.
#[test]
fn forward_tuples_against_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let h = 1e-6;
    let mut used = 0;
    for _ in 0..40 {
        let (r, t): (f64, f64) = (rng.gen_range(-2.0..2.0), rng.gen_range(-2.0..2.0));
        let (dr, dt): (f64, f64) = (rng.gen_range(-1.0..1.0), rng.gen_range(-1.0..1.0));
        let along = |s: f64| rotate_fm(r + s * dr, t + s * dt, 4);
        let (p, m) = (along(h), along(-h));
        let fd3 = [
            (p.0 - m.0) / (2.0 * h),
            ((p.1).0 - (m.1).0) / (2.0 * h),
            ((p.1).1 - (m.1).1) / (2.0 * h),
        ];
        // A point at the branch (`x > 0`) is skipped: two step sizes disagree there.
        let (p2, m2) = (along(1e-4), along(-1e-4));
        if !close(fd3[0], (p2.0 - m2.0) / 2e-4, 1e-3) {
            continue;
        }
        used += 1;
        let (v, (t0, (t1, t2))) = rotate_fm_jvp(r, t, 4, dr, dt);
        assert_eq!(v, rotate_fm(r, t, 4));
        assert!(close(t0, fd3[0], 1e-5), "{t0} {}", fd3[0]);
        assert!(close(t1, fd3[1], 1e-5), "{t1} {}", fd3[1]);
        assert_eq!(t2, 0.0);
        assert!(close(fd3[2], 0.0, 1e-9));

        let c = |s: f64| caller_fm(r + s * dr, t + s * dt);
        let want = (c(h) - c(-h)) / (2.0 * h);
        let (_, got) = caller_fm_jvp(r, t, dr, dt);
        assert!(close(got, want, 1e-5), "{got} {want}");
    }
    assert!(used >= 20, "only {used} points usable");
}

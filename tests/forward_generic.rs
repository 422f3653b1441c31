//! Forward mode of functions generic over their float type (`fn f<T: Float>`, issue 10):
//! `f_jvp` instantiated at f32 and f64, against central finite differences of the ORIGINAL
//! function along random directions, and (f64) against the reverse mode of the same
//! function (`<u, J v> = <Jᵀ u, v>`).

#![allow(clippy::needless_range_loop, clippy::type_complexity)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use symgrad::differentiable;
use symgrad::num_traits::Float;

mod common;
use common::close;

/// A loop over a slice, a math function, a constant through `T::from`, `max` with a
/// constant and `powi`.
#[differentiable(forward, reverse)]
fn series<T: Float>(x: T, ys: &[T]) -> T {
    let mut s = x;
    for y in ys {
        s = s * *y + x.sin() + T::from(0.5).unwrap();
    }
    s.max(T::one()) + x.powi(2)
}

/// A branch on a value, a `while` loop with a data-dependent exit, and a call of another
/// generic forward-mode fn.
#[differentiable(forward, reverse)]
fn damped<T: Float>(a: T, b: T) -> T {
    let mut v = a * a + b;
    let mut k = 0;
    while v.abs() > T::from(0.1).unwrap() && k < 20 {
        v = v * T::from(0.5).unwrap() - b.tanh() * T::from(0.01).unwrap();
        k += 1;
    }
    let w = if a > T::zero() { bump(a, b) } else { b.exp() };
    v + w
}

#[differentiable(forward, reverse)]
fn bump<T: Float>(a: T, b: T) -> T {
    (a * b).sin() + a / (T::one() + b * b)
}

/// An array parameter and a tuple result.
#[differentiable(forward, reverse)]
fn polar_sum<T: Float>(p: [T; 3], t: T) -> (T, T) {
    let mut x = T::zero();
    let mut y = T::zero();
    for i in 0..3 {
        x = x + p[i] * (t * T::from(i + 1).unwrap()).cos();
        y = y + p[i] * (t * T::from(i + 1).unwrap()).sin();
    }
    (x, y)
}

/// `n` random points in `-2..2` and directions, the function flattened to `&[f64]`, its
/// `_jvp` flattened: the tangent against central differences (step `h`, tolerance `rtol`)
/// of the original along the direction. Points where two step sizes disagree are skipped.
fn check(
    what: &str,
    n: usize,
    h: f64,
    rtol: f64,
    f: &dyn Fn(&[f64]) -> Vec<f64>,
    jvp: &dyn Fn(&[f64], &[f64]) -> (Vec<f64>, Vec<f64>),
) {
    let mut rng = ChaCha8Rng::seed_from_u64(what.len() as u64);
    let mut used = 0;
    for _ in 0..40 {
        let x: Vec<f64> = (0..n).map(|_| rng.gen_range(-2.0..2.0)).collect();
        let v: Vec<f64> = (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let at = |s: f64| -> Vec<f64> {
            let p: Vec<f64> = x.iter().zip(&v).map(|(a, b)| a + s * b).collect();
            f(&p)
        };
        let diff = |h: f64| -> Vec<f64> {
            let (p, m) = (at(h), at(-h));
            p.iter().zip(&m).map(|(a, b)| (a - b) / (2.0 * h)).collect()
        };
        let (want, coarse) = (diff(h), diff(h * 10.0));
        if want
            .iter()
            .zip(&coarse)
            .any(|(a, b)| !close(*a, *b, rtol / 10.0))
        {
            continue;
        }
        used += 1;
        let (value, got) = jvp(&x, &v);
        let f0 = f(&x);
        for k in 0..want.len() {
            assert!(
                close(value[k], f0[k], 1e-6),
                "{what}: value {} against {}",
                value[k],
                f0[k]
            );
            assert!(
                close(got[k], want[k], rtol),
                "{what}: tangent {k} = {} against finite differences {} at {x:?} along {v:?}",
                got[k],
                want[k]
            );
        }
    }
    assert!(used >= 20, "{what}: only {used} of 40 points usable");
}

#[test]
fn series_f64_and_f32() {
    check(
        "series f64",
        3,
        1e-6,
        1e-5,
        &|x| vec![series(x[0], &x[1..])],
        &|x, v| {
            let (y, t) = series_jvp(x[0], &x[1..], v[0], &v[1..]);
            (vec![y], vec![t])
        },
    );
    let f32s = |x: &[f64]| -> Vec<f32> { x.iter().map(|&a| a as f32).collect() };
    check(
        "series f32",
        3,
        1e-3,
        2e-2,
        &|x| {
            let x = f32s(x);
            vec![f64::from(series(x[0], &x[1..]))]
        },
        &|x, v| {
            let (x, v) = (f32s(x), f32s(v));
            let (y, t) = series_jvp(x[0], &x[1..], v[0], &v[1..]);
            (vec![f64::from(y)], vec![f64::from(t)])
        },
    );
}

#[test]
fn damped_f64_and_f32() {
    check(
        "damped f64",
        2,
        1e-6,
        1e-5,
        &|x| vec![damped(x[0], x[1])],
        &|x, v| {
            let (y, t) = damped_jvp(x[0], x[1], v[0], v[1]);
            (vec![y], vec![t])
        },
    );
    check(
        "damped f32",
        2,
        1e-3,
        2e-2,
        &|x| vec![f64::from(damped(x[0] as f32, x[1] as f32))],
        &|x, v| {
            let (y, t) = damped_jvp(x[0] as f32, x[1] as f32, v[0] as f32, v[1] as f32);
            (vec![f64::from(y)], vec![f64::from(t)])
        },
    );
}

#[test]
fn polar_sum_f64_and_f32() {
    check(
        "polar_sum f64",
        4,
        1e-6,
        1e-5,
        &|x| {
            let (a, b) = polar_sum([x[0], x[1], x[2]], x[3]);
            vec![a, b]
        },
        &|x, v| {
            let ((a, b), (ta, tb)) =
                polar_sum_jvp([x[0], x[1], x[2]], x[3], [v[0], v[1], v[2]], v[3]);
            (vec![a, b], vec![ta, tb])
        },
    );
    let c =
        |x: &[f64]| -> ([f32; 3], f32) { ([x[0] as f32, x[1] as f32, x[2] as f32], x[3] as f32) };
    check(
        "polar_sum f32",
        4,
        1e-3,
        2e-2,
        &|x| {
            let (p, t) = c(x);
            let (a, b) = polar_sum(p, t);
            vec![f64::from(a), f64::from(b)]
        },
        &|x, v| {
            let ((p, t), (dp, dt)) = (c(x), c(v));
            let ((a, b), (ta, tb)) = polar_sum_jvp(p, t, dp, dt);
            (
                vec![f64::from(a), f64::from(b)],
                vec![f64::from(ta), f64::from(tb)],
            )
        },
    );
}

/// `<u, J v> = <Jᵀ u, v>`: the generic forward mode against the generic reverse mode.
#[test]
fn generic_jvp_against_vjp() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    for _ in 0..30 {
        let x: [f64; 4] = std::array::from_fn(|_| rng.gen_range(-2.0..2.0));
        let v: [f64; 4] = std::array::from_fn(|_| rng.gen_range(-1.0..1.0));
        let u: (f64, f64) = (rng.gen_range(-1.0..1.0), rng.gen_range(-1.0..1.0));
        let p = [x[0], x[1], x[2]];
        let (_, (ta, tb)) = polar_sum_jvp(p, x[3], [v[0], v[1], v[2]], v[3]);
        let (_, (gp, gt)) = polar_sum_vjp(p, x[3], u);
        let lhs = u.0 * ta + u.1 * tb;
        let rhs = gp[0] * v[0] + gp[1] * v[1] + gp[2] * v[2] + gt * v[3];
        assert!(close(lhs, rhs, 1e-10), "{lhs} {rhs}");

        let (_, t) = damped_jvp(x[0], x[1], v[0], v[1]);
        let (_, (ga, gb)) = damped_vjp(x[0], x[1], u.0);
        assert!(close(u.0 * t, ga * v[0] + gb * v[1], 1e-10));
    }
}

//! The harness of the user-style corpora (`tests/user_style.rs`, `tests/user_style2.rs`):
//! each generated derivative against central differences of the ORIGINAL function at random
//! points (kinks inside the stencil skipped), never against another output of the macro.

#![allow(dead_code)]

use crate::common::{close, fd};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub(crate) type F<'a> = &'a dyn Fn(&[f64]) -> f64;
pub(crate) type G<'a> = &'a dyn Fn(&[f64]) -> (f64, Vec<f64>);

/// Finite-difference settings: f64 functions use small steps, f32 functions large ones.
#[derive(Clone, Copy)]
pub(crate) struct Prec {
    pub(crate) h: f64,
    pub(crate) coarse: f64,
    pub(crate) kink: f64,
    pub(crate) rtol: f64,
    pub(crate) value: f64,
}

pub(crate) const F64: Prec = Prec {
    h: 1e-6,
    coarse: 1e-4,
    kink: 1e-3,
    rtol: 1e-5,
    value: 1e-12,
};

pub(crate) const F32: Prec = Prec {
    h: 4e-3,
    coarse: 1e-2,
    kink: 3e-2,
    rtol: 2e-2,
    value: 1e-5,
};

pub(crate) const POINTS: usize = 20;

pub(crate) fn seed_of(what: &str) -> u64 {
    what.bytes().fold(14695981039346656037u64, |h, b| {
        (h ^ b as u64).wrapping_mul(1099511628211)
    })
}

/// Checks `grad` against central differences of `f` at `POINTS` random points with `n`
/// coordinates uniform in `lo..hi`.
pub(crate) fn check_p(what: &str, p: Prec, n: usize, lo: f64, hi: f64, f: F, grad: G) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed_of(what));
    let mut used = 0;
    for _ in 0..POINTS {
        let x: Vec<f64> = (0..n).map(|_| rng.gen_range(lo..hi)).collect();
        let want = fd(f, &x, p.h);
        let coarse = fd(f, &x, p.coarse);
        if want
            .iter()
            .zip(&coarse)
            .any(|(a, b)| !close(*a, *b, p.kink))
        {
            continue; // a kink inside the stencil
        }
        used += 1;
        let v = f(&x);
        let (gv, g) = grad(&x);
        assert!(
            close(gv, v, p.value),
            "{what}_grad value at {x:?}: {gv} vs {v}"
        );
        assert_eq!(g.len(), n, "{what}_grad: number of gradients");
        for (k, (a, b)) in g.iter().zip(&want).enumerate() {
            assert!(
                close(*a, *b, p.rtol),
                "{what}_grad d/dx{k} at {x:?}: got {a}, finite difference {b}"
            );
        }
    }
    assert!(
        used * 4 >= POINTS * 3,
        "{what}: only {used} of {POINTS} points away from kinks"
    );
}

pub(crate) fn check(what: &str, n: usize, lo: f64, hi: f64, f: F, grad: G) {
    check_p(what, F64, n, lo, hi, f, grad)
}

pub(crate) fn check32(what: &str, n: usize, lo: f64, hi: f64, f: F, grad: G) {
    check_p(what, F32, n, lo, hi, f, grad)
}

/// `_jvp` along a random direction against central differences of `f` along it.
pub(crate) fn check_jvp(
    what: &str,
    n: usize,
    lo: f64,
    hi: f64,
    f: F,
    jvp: &dyn Fn(&[f64], &[f64]) -> (f64, f64),
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed_of(what) ^ 1);
    let mut used = 0;
    for _ in 0..POINTS {
        let x: Vec<f64> = (0..n).map(|_| rng.gen_range(lo..hi)).collect();
        let v: Vec<f64> = (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let along = |t: f64| {
            let y: Vec<f64> = x.iter().zip(&v).map(|(a, b)| a + t * b).collect();
            f(&y)
        };
        let d = |h: f64| (along(h) - along(-h)) / (2.0 * h);
        let (want, coarse) = (d(1e-6), d(1e-4));
        if !close(want, coarse, 1e-3) {
            continue;
        }
        used += 1;
        let (y, t) = jvp(&x, &v);
        assert!(close(y, f(&x), 1e-12), "{what}_jvp value at {x:?}");
        assert!(
            close(t, want, 1e-5),
            "{what}_jvp at {x:?} along {v:?}: got {t}, finite difference {want}"
        );
    }
    assert!(used * 4 >= POINTS * 3, "{what}: only {used} points used");
}

/// `_hvp` along a random direction against central differences of `_grad` along it; the
/// gradient `_hvp` returns against finite differences of `f`.
pub(crate) fn check_hvp(
    what: &str,
    n: usize,
    lo: f64,
    hi: f64,
    f: F,
    grad: G,
    hvp: &dyn Fn(&[f64], &[f64]) -> (f64, Vec<f64>, Vec<f64>),
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed_of(what) ^ 2);
    for _ in 0..POINTS {
        let x: Vec<f64> = (0..n).map(|_| rng.gen_range(lo..hi)).collect();
        let v: Vec<f64> = (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let (y, g, hv) = hvp(&x, &v);
        assert!(close(y, f(&x), 1e-12), "{what}_hvp value at {x:?}");
        let want = fd(f, &x, 1e-6);
        for k in 0..n {
            assert!(
                close(g[k], want[k], 1e-5),
                "{what}_hvp gradient {k} at {x:?}: {} vs {}",
                g[k],
                want[k]
            );
        }
        let h = 1e-5;
        let xp: Vec<f64> = x.iter().zip(&v).map(|(a, b)| a + h * b).collect();
        let xm: Vec<f64> = x.iter().zip(&v).map(|(a, b)| a - h * b).collect();
        let (gp, gm) = (grad(&xp).1, grad(&xm).1);
        for k in 0..n {
            let d = (gp[k] - gm[k]) / (2.0 * h);
            assert!(
                close(hv[k], d, 1e-5),
                "{what}_hvp (H v)[{k}] at {x:?}: {} vs finite difference {d}",
                hv[k]
            );
        }
    }
}

pub(crate) fn s1(r: (f64, f64)) -> (f64, Vec<f64>) {
    (r.0, vec![r.1])
}
pub(crate) fn s2(r: (f64, (f64, f64))) -> (f64, Vec<f64>) {
    (r.0, vec![r.1.0, r.1.1])
}
pub(crate) fn s3(r: (f64, (f64, f64, f64))) -> (f64, Vec<f64>) {
    (r.0, vec![r.1.0, r.1.1, r.1.2])
}
pub(crate) fn sxv(r: (f64, (f64, Vec<f64>))) -> (f64, Vec<f64>) {
    let mut g = vec![r.1.0];
    g.extend(r.1.1);
    (r.0, g)
}
pub(crate) fn svx(r: (f64, (Vec<f64>, f64))) -> (f64, Vec<f64>) {
    let mut g = r.1.0;
    g.push(r.1.1);
    (r.0, g)
}
pub(crate) fn svv(r: (f64, (Vec<f64>, Vec<f64>))) -> (f64, Vec<f64>) {
    let mut g = r.1.0;
    g.extend(r.1.1);
    (r.0, g)
}
pub(crate) fn t1(r: (f32, f32)) -> (f64, Vec<f64>) {
    (r.0 as f64, vec![r.1 as f64])
}
pub(crate) fn t2(r: (f32, (f32, f32))) -> (f64, Vec<f64>) {
    (r.0 as f64, vec![r.1.0 as f64, r.1.1 as f64])
}
pub(crate) fn tv(r: (f32, Vec<f32>)) -> (f64, Vec<f64>) {
    (r.0 as f64, r.1.iter().map(|&v| v as f64).collect())
}
pub(crate) fn v32(p: &[f64]) -> Vec<f32> {
    p.iter().map(|&v| v as f32).collect()
}

pub(crate) fn assert_near(what: &str, got: f64, want: f64) {
    assert!(close(got, want, 1e-9), "{what}: {got}, by hand {want}");
}

//! The checker of generated programs: `NAME_grad` and `NAME_vjp` against central finite
//! differences of the original function.
//!
//! Finite differences: Richardson-extrapolated central differences of the f64 copy
//! `NAME_path` (the same body, in f64 even for an f32 program), `(4 D(h/2) - D(h)) / 3` with
//! `h = 1e-3 max(1, |x_i|)`, whose error is O(h^4). Generated functions are piecewise
//! smooth: `NAME_path` hashes every branch decision it takes, and a point is skipped (not
//! checked) when any of the four stencil points takes another path than the point itself,
//! so a difference quotient never straddles a kink or a jump. Everything else is checked:
//! if fewer than half of the points drawn can be checked, the case fails.

#![allow(dead_code)]

/// One generated program, seen through wrappers taking a flat `&[f64]` of its float inputs.
pub struct Case {
    pub name: &'static str,
    /// The generator's seed of this program.
    pub seed: u64,
    /// Number of float inputs (scalars, then slice/array elements, in parameter order).
    pub inputs: usize,
    /// Written for f32 (looser tolerances).
    pub f32: bool,
    /// The original function.
    pub f: fn(&[f64]) -> f64,
    /// The f64 copy that also hashes its branch decisions into `h`.
    pub path: fn(&[f64], &mut u64) -> f64,
    /// `NAME_grad`, gradients flattened in the order of `inputs`.
    pub grad: fn(&[f64]) -> (f64, Vec<f64>),
    /// `NAME_vjp` with the given seed.
    pub vjp: fn(&[f64], f64) -> (f64, Vec<f64>),
}

/// Folds a branch decision into the path hash; returns the decision. (The condition comes
/// first: it may itself call a `_path` function with `h`.)
pub fn __p(c: bool, h: &mut u64) -> bool {
    *h = (*h ^ (c as u64 + 1)).wrapping_mul(0x0100_0000_01b3);
    c
}

/// Gradients flattened to a `Vec<f64>`, in declaration order.
pub trait Flat {
    fn flat(&self) -> Vec<f64>;
}
impl Flat for f64 {
    fn flat(&self) -> Vec<f64> {
        vec![*self]
    }
}
impl Flat for f32 {
    fn flat(&self) -> Vec<f64> {
        vec![f64::from(*self)]
    }
}
impl<const N: usize> Flat for [f64; N] {
    fn flat(&self) -> Vec<f64> {
        self.to_vec()
    }
}
impl<const N: usize> Flat for [f32; N] {
    fn flat(&self) -> Vec<f64> {
        self.iter().map(|&x| f64::from(x)).collect()
    }
}
impl Flat for Vec<f64> {
    fn flat(&self) -> Vec<f64> {
        self.clone()
    }
}
impl Flat for Vec<f32> {
    fn flat(&self) -> Vec<f64> {
        self.iter().map(|&x| f64::from(x)).collect()
    }
}
macro_rules! flat_tuple {
    ($($t:ident $i:tt),+) => {
        impl<$($t: Flat),+> Flat for ($($t,)+) {
            fn flat(&self) -> Vec<f64> {
                let mut v = Vec::new();
                $(v.extend(self.$i.flat());)+
                v
            }
        }
    };
}
flat_tuple!(A 0, B 1);
flat_tuple!(A 0, B 1, C 2);
flat_tuple!(A 0, B 1, C 2, D 3);
flat_tuple!(A 0, B 1, C 2, D 3, E 4);
flat_tuple!(A 0, B 1, C 2, D 3, E 4, F 5);

/// SplitMix64: the checker's own small generator (points and seeds).
pub struct Mix(pub u64);
impl Mix {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `[lo, hi)`.
    pub fn unif(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * ((self.next() >> 11) as f64 / (1u64 << 53) as f64)
    }
}

/// What a successful check saw.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    /// points where the gradient was compared
    pub checked: usize,
    /// points skipped because the stencil crossed a branch boundary
    pub kinks: usize,
    /// points skipped because the function was not finite there
    pub domain: usize,
}

/// Relative tolerances: f64 and f32 programs.
pub const RTOL_F64: f64 = 1e-6;
pub const RTOL_F32: f64 = 2e-3;

/// Checks `case` at `points` random points in `[-2, 2]^inputs`.
pub fn check(case: &Case, points: usize) -> Result<Stats, String> {
    let mut rng = Mix(case.seed ^ 0x5EED);
    let mut st = Stats::default();
    let rtol = if case.f32 { RTOL_F32 } else { RTOL_F64 };
    let mut draws = 0;
    while st.checked < points && draws < 2 * points {
        draws += 1;
        let mut x: Vec<f64> = (0..case.inputs).map(|_| rng.unif(-2.0, 2.0)).collect();
        if case.f32 {
            // the point must be representable in f32, so that both copies see it
            for xi in &mut x {
                *xi = f64::from(*xi as f32);
            }
        }
        let mut h0 = 0;
        let v64 = (case.path)(&x, &mut h0);
        let v = (case.f)(&x);
        if !v.is_finite() || !v64.is_finite() {
            st.domain += 1;
            continue;
        }
        let Some(fd) = richardson(case, &x, h0) else {
            st.kinks += 1;
            continue;
        };
        st.checked += 1;
        // the value: the plain function, its f64 copy and what `_grad` and `_vjp` return
        let vtol = if case.f32 { 1e-5 } else { 1e-12 } * (1.0 + v.abs());
        if !case.f32 && (v - v64).abs() > vtol {
            return Err(format!(
                "harness: the f64 copy gives {v64}, the function {v}, at {x:?}"
            ));
        }
        let (gv, g) = (case.grad)(&x);
        if (gv - v).abs() > vtol {
            return Err(format!(
                "_grad returns the value {gv}, the function gives {v}, at {x:?}"
            ));
        }
        // Richardson's truncation error can exceed the tolerance where high derivatives are
        // large (iterated exp/tanh, or a cosine of a sum iterated eight times: fuzz seed 31's
        // p00185, whose steps of 1e-3 and 1e-4 give 1566 for a derivative of -11818); a
        // gradient is wrong only if 10x, 100x and 1000x smaller steps disagree too.
        let finer = || {
            [1e-4, 1e-5, 1e-6]
                .into_iter()
                .filter_map(|rel| richardson_step(case, &x, h0, rel))
                .collect::<Vec<_>>()
        };
        if let Err(e) = compare("_grad", &x, &g, &fd, rtol) {
            if !finer()
                .iter()
                .any(|fd2| compare("_grad", &x, &g, fd2, rtol).is_ok())
            {
                return Err(e);
            }
        }
        let s = rng.unif(-3.0, 3.0);
        let s = if case.f32 { f64::from(s as f32) } else { s };
        let (vv, gs) = (case.vjp)(&x, s);
        if (vv - v).abs() > vtol {
            return Err(format!(
                "_vjp returns the value {vv}, the function gives {v}, at {x:?}"
            ));
        }
        let what = format!("_vjp (seed {s})");
        let scaled = |fd: &[f64]| fd.iter().map(|d| d * s).collect::<Vec<f64>>();
        if let Err(e) = compare(&what, &x, &gs, &scaled(&fd), rtol) {
            if !finer()
                .iter()
                .any(|fd2| compare(&what, &x, &gs, &scaled(fd2), rtol).is_ok())
            {
                return Err(e);
            }
        }
    }
    if st.checked * 2 < points {
        return Err(format!(
            "only {} of {points} points could be checked ({} on kinks, {} outside the domain)",
            st.checked, st.kinks, st.domain
        ));
    }
    Ok(st)
}

/// Finite differences of the f64 copy at `x`, or `None` when a stencil point takes another
/// path than `x` (path hash `h0`) or is not finite.
pub fn richardson(case: &Case, x: &[f64], h0: u64) -> Option<Vec<f64>> {
    richardson_step(case, x, h0, 1e-3)
}

/// [`richardson`] with base step `rel` (relative to `max(|x_i|, 1)`).
pub fn richardson_step(case: &Case, x: &[f64], h0: u64, rel: f64) -> Option<Vec<f64>> {
    let mut xp = x.to_vec();
    let mut out = Vec::with_capacity(x.len());
    for i in 0..x.len() {
        let h = rel * x[i].abs().max(1.0);
        let mut d = [0.0; 2];
        for (k, step) in [h, h / 2.0].into_iter().enumerate() {
            let mut fv = [0.0; 2];
            for (j, sign) in [1.0, -1.0].into_iter().enumerate() {
                xp[i] = x[i] + sign * step;
                let mut hh = 0;
                fv[j] = (case.path)(&xp, &mut hh);
                if hh != h0 || !fv[j].is_finite() {
                    return None;
                }
            }
            d[k] = (fv[0] - fv[1]) / (2.0 * step);
        }
        xp[i] = x[i];
        out.push((4.0 * d[1] - d[0]) / 3.0);
    }
    Some(out)
}

/// `got` against the finite differences `want`: `|got - want| <= rtol (1 + |want| + max|want|/10)`.
pub fn compare(what: &str, x: &[f64], got: &[f64], want: &[f64], rtol: f64) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!(
            "{what}: {} gradient entries, {} inputs",
            got.len(),
            want.len()
        ));
    }
    let big = want.iter().fold(0.0f64, |m, w| m.max(w.abs()));
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        let tol = rtol * (1.0 + w.abs() + 0.1 * big);
        let ok = (g - w).abs() <= tol; // false for NaN
        if !ok {
            return Err(format!(
                "{what}: d/dinput{k} at {x:?}: got {g:e}, finite difference {w:e} (|diff| {:e} > tol {tol:e})\n  got  {got:?}\n  want {want:?}",
                (g - w).abs()
            ));
        }
    }
    Ok(())
}

/// Checks every case, returns `(name, error)` for each failure.
pub fn check_all(cases: &[Case], points: usize) -> Vec<(&'static str, String)> {
    cases
        .iter()
        .filter_map(|c| check(c, points).err().map(|e| (c.name, e)))
        .collect()
}

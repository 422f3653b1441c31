//! Finite-difference checks of everything `#[differentiable]` supports.
//!
//! Every gradient here is compared with a central finite difference of the ORIGINAL
//! function (never with another output of the macro), at many random points drawn from a
//! `ChaCha8Rng` with a fixed seed. Both `_grad` and `_vjp` (with a random seed) are checked,
//! and the value they return must be the value of the plain function.
//!
//! Points are kept inside the domains of the functions and away from kinks: when a function
//! has several paths (branches, early returns), a `path` function written here by hand names
//! the path a point takes, points whose neighbourhood crosses a path boundary are drawn
//! again, and each test asserts that every path was hit.

#![allow(
    dead_code,
    unused_assignments,
    clippy::approx_constant,
    clippy::assign_op_pattern,
    clippy::excessive_precision,
    clippy::let_and_return,
    clippy::needless_range_loop,
    clippy::neg_multiply,
    clippy::precedence,
    clippy::type_complexity,
    clippy::manual_range_contains,
    clippy::unnecessary_cast,
    clippy::identity_op,
    clippy::erasing_op,
    clippy::neg_cmp_op_on_partial_ord,
    clippy::needless_return,
    clippy::implicit_saturating_sub,
    clippy::unused_unit
)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;
type R = ChaCha8Rng;

/// Points per check.
const POINTS: usize = 50;

// ---------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------

/// Central finite differences of `f` at `x`, step `1e-6` scaled by `max(1, |x_i|)`.
fn fd(f: impl Fn(&[f64]) -> f64, x: &[f64]) -> Vec<f64> {
    let mut xp = x.to_vec();
    (0..x.len())
        .map(|i| {
            let h = 1e-6 * x[i].abs().max(1.0);
            let (hi, lo) = (x[i] + h, x[i] - h);
            xp[i] = hi;
            let fp = f(&xp);
            xp[i] = lo;
            let fm = f(&xp);
            xp[i] = x[i];
            (fp - fm) / (hi - lo)
        })
        .collect()
}

/// Gradients flattened to a `Vec<f64>` in declaration order.
trait Flat {
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
impl<A: Flat, B: Flat> Flat for (A, B) {
    fn flat(&self) -> Vec<f64> {
        let mut v = self.0.flat();
        v.extend(self.1.flat());
        v
    }
}
impl<A: Flat, B: Flat, C: Flat> Flat for (A, B, C) {
    fn flat(&self) -> Vec<f64> {
        let mut v = self.0.flat();
        v.extend(self.1.flat());
        v.extend(self.2.flat());
        v
    }
}
impl<A: Flat, B: Flat, C: Flat, D: Flat> Flat for (A, B, C, D) {
    fn flat(&self) -> Vec<f64> {
        let mut v = self.0.flat();
        v.extend(self.1.flat());
        v.extend(self.2.flat());
        v.extend(self.3.flat());
        v
    }
}

fn assert_grad(what: &str, x: &[f64], got: &[f64], want: &[f64], scale: f64, rtol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: gradient length at {x:?}");
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        // Relative to the gradient, plus the rounding noise of the difference quotient.
        let tol = rtol * (1.0 + w.abs()) + 1e-9 * scale;
        assert!(
            (g - w).abs() <= tol,
            "{what}: d/dx{k} at {x:?}: got {g:e}, finite difference {w:e} (|diff| {:e} > tol {tol:e})\n got  {got:?}\n want {want:?}",
            (g - w).abs()
        );
    }
}

fn assert_value(what: &str, x: &[f64], got: f64, want: f64) {
    assert!(
        (got - want).abs() <= 1e-12 * (1.0 + want.abs()),
        "{what}: value at {x:?}: got {got}, function gives {want}"
    );
}

type F<'a> = &'a dyn Fn(&[f64]) -> f64;
type G<'a> = &'a dyn Fn(&[f64]) -> (f64, Vec<f64>);
type V<'a> = &'a dyn Fn(&[f64], f64) -> (f64, Vec<f64>);

/// Checks `grad` and `vjp` against finite differences of `f` at `POINTS` points from
/// `sample`. With `path`, points whose neighbourhood (radius 1e-4 per coordinate) changes the
/// path are drawn again; returns the set of paths hit.
fn check_paths(
    what: &str,
    seed: u64,
    sample: &dyn Fn(&mut R) -> Vec<f64>,
    path: Option<&dyn Fn(&[f64]) -> u32>,
    f: F,
    grad: G,
    vjp: V,
) -> BTreeSet<u32> {
    let mut rng = R::seed_from_u64(seed);
    let mut paths = BTreeSet::new();
    let mut n = 0;
    let mut draws = 0;
    while n < POINTS {
        draws += 1;
        assert!(
            draws < 100 * POINTS,
            "{what}: sampler keeps hitting path boundaries"
        );
        let x = sample(&mut rng);
        if let Some(p) = path {
            let id = p(&x);
            let mut stable = true;
            for i in 0..x.len() {
                for d in [-1e-4, 1e-4] {
                    let mut y = x.clone();
                    y[i] += d * x[i].abs().max(1.0);
                    stable &= p(&y) == id;
                }
            }
            if !stable {
                continue;
            }
            paths.insert(id);
        }
        n += 1;
        let v = f(&x);
        assert!(v.is_finite(), "{what}: sampler left the domain at {x:?}");
        let want = fd(f, &x);
        let (gv, g) = grad(&x);
        assert_value(&format!("{what}_grad"), &x, gv, v);
        assert_grad(&format!("{what}_grad"), &x, &g, &want, v.abs(), 1e-6);
        let s: f64 = rng.gen_range(-3.0..3.0);
        let (vv, gs) = vjp(&x, s);
        assert_value(&format!("{what}_vjp"), &x, vv, v);
        let want_s: Vec<f64> = want.iter().map(|w| w * s).collect();
        assert_grad(
            &format!("{what}_vjp(seed {s})"),
            &x,
            &gs,
            &want_s,
            (v * s).abs(),
            1e-6,
        );
    }
    paths
}

fn check(what: &str, seed: u64, sample: &dyn Fn(&mut R) -> Vec<f64>, f: F, grad: G, vjp: V) {
    check_paths(what, seed, sample, None, f, grad, vjp);
}

/// An f32 gradient, checked against finite differences of the f64 twin `f` (looser).
fn check_f32(
    what: &str,
    seed: u64,
    sample: &dyn Fn(&mut R) -> Vec<f64>,
    f: F,
    grad32: &dyn Fn(&[f32]) -> (f32, Vec<f64>),
    vjp32: &dyn Fn(&[f32], f32) -> (f32, Vec<f64>),
) {
    let mut rng = R::seed_from_u64(seed);
    for _ in 0..POINTS {
        // Evaluate the f64 twin at the f32 point, so both see the same inputs.
        let x32: Vec<f32> = sample(&mut rng).iter().map(|&x| x as f32).collect();
        let x: Vec<f64> = x32.iter().map(|&x| f64::from(x)).collect();
        let v = f(&x);
        let want = fd(f, &x);
        let (gv, g) = grad32(&x32);
        assert!(
            (f64::from(gv) - v).abs() <= 1e-5 * (1.0 + v.abs()),
            "{what}: f32 value {gv} vs {v} at {x:?}"
        );
        assert_grad(&format!("{what} (f32)"), &x, &g, &want, v.abs(), 1e-4);
        let s: f32 = rng.gen_range(-3.0..3.0);
        let (_, gs) = vjp32(&x32, s);
        let want_s: Vec<f64> = want.iter().map(|w| w * f64::from(s)).collect();
        assert_grad(
            &format!("{what}_vjp (f32)"),
            &x,
            &gs,
            &want_s,
            v.abs(),
            1e-4,
        );
    }
}

/// `n` coordinates uniform in `lo..hi`.
fn unif(n: usize, lo: f64, hi: f64) -> impl Fn(&mut R) -> Vec<f64> {
    move |r| (0..n).map(|_| r.gen_range(lo..hi)).collect()
}

/// `n` coordinates with `lo <= |x| < hi` and a random sign.
fn away0(n: usize, lo: f64, hi: f64) -> impl Fn(&mut R) -> Vec<f64> {
    move |r| {
        (0..n)
            .map(|_| {
                let m = r.gen_range(lo..hi);
                if r.r#gen::<bool>() { m } else { -m }
            })
            .collect()
    }
}

/// Checks the functions `$f`, `$f_grad`, `$f_vjp` whose parameters are all f64 and active.
macro_rules! check_fns {
    ($seed:expr, [$($a:ident),+], $sample:expr; $f:path, $g:path, $v:path) => {
        check_fns!(@paths $seed, [$($a),+], $sample, None; $f, $g, $v)
    };
    (@paths $seed:expr, [$($a:ident),+], $sample:expr, $path:expr; $f:path, $g:path, $v:path) => {{
        let f = |x: &[f64]| {
            let &[$($a),+] = x else { unreachable!() };
            $f($($a),+)
        };
        let g = |x: &[f64]| {
            let &[$($a),+] = x else { unreachable!() };
            let (v, g) = $g($($a),+);
            (v, g.flat())
        };
        let v = |x: &[f64], s: f64| {
            let &[$($a),+] = x else { unreachable!() };
            let (v, g) = $v($($a,)+ s);
            (v, g.flat())
        };
        check_paths(stringify!($f), $seed, &$sample, $path, &f, &g, &v)
    }};
}

/// The same for the f32 version `$h` of an f64 function `$f`.
macro_rules! check_f32_fns {
    ($seed:expr, [$($a:ident),+], $sample:expr; $f:path; $hg:path, $hv:path) => {{
        let f = |x: &[f64]| {
            let &[$($a),+] = x else { unreachable!() };
            $f($($a),+)
        };
        let g = |x: &[f32]| {
            let &[$($a),+] = x else { unreachable!() };
            let (v, g) = $hg($($a),+);
            (v, g.flat())
        };
        let v = |x: &[f32], s: f32| {
            let &[$($a),+] = x else { unreachable!() };
            let (v, g) = $hv($($a,)+ s);
            (v, g.flat())
        };
        check_f32(stringify!($hg), $seed, &$sample, &f, &g, &v)
    }};
}

// ---------------------------------------------------------------------------------------
// Math functions, one by one: method form `f`, path form `p` (`f64::name(x)`), f32 `h`.
// ---------------------------------------------------------------------------------------

macro_rules! unary_modules {
    ($($m:ident: $meth:ident),* $(,)?) => {$(
        mod $m {
            use symgrad::differentiable;
            #[differentiable]
            pub fn f(x: f64) -> f64 {
                x.$meth()
            }
            #[differentiable]
            pub fn p(x: f64) -> f64 {
                f64::$meth(x)
            }
            #[differentiable]
            pub fn h(x: f32) -> f32 {
                x.$meth()
            }
        }
    )*};
}

unary_modules!(
    m_sin: sin, m_cos: cos, m_tan: tan, m_asin: asin, m_acos: acos, m_atan: atan,
    m_sinh: sinh, m_cosh: cosh, m_tanh: tanh, m_exp: exp, m_exp2: exp2, m_ln: ln,
    m_log10: log10, m_log2: log2, m_sqrt: sqrt, m_cbrt: cbrt, m_abs: abs, m_recip: recip,
    m_signum: signum,
);

macro_rules! unary_tests {
    ($($test:ident: $m:ident, $seed:expr, $sample:expr;)*) => {$(
        #[test]
        fn $test() {
            check_fns!($seed, [x], $sample; $m::f, $m::f_grad, $m::f_vjp);
            check_fns!($seed + 1000, [x], $sample; $m::p, $m::p_grad, $m::p_vjp);
            check_f32_fns!($seed + 2000, [x], $sample; $m::f; $m::h_grad, $m::h_vjp);
        }
    )*};
}

unary_tests! {
    math_sin: m_sin, 1, unif(1, -3.0, 3.0);
    math_cos: m_cos, 2, unif(1, -3.0, 3.0);
    math_tan: m_tan, 3, unif(1, -1.2, 1.2);
    math_asin: m_asin, 4, unif(1, -0.9, 0.9);
    math_acos: m_acos, 5, unif(1, -0.9, 0.9);
    math_atan: m_atan, 6, unif(1, -4.0, 4.0);
    math_sinh: m_sinh, 7, unif(1, -3.0, 3.0);
    math_cosh: m_cosh, 8, unif(1, -3.0, 3.0);
    math_tanh: m_tanh, 9, unif(1, -3.0, 3.0);
    math_exp: m_exp, 10, unif(1, -3.0, 3.0);
    math_exp2: m_exp2, 11, unif(1, -3.0, 3.0);
    math_ln: m_ln, 12, unif(1, 0.1, 5.0);
    math_log10: m_log10, 13, unif(1, 0.1, 5.0);
    math_log2: m_log2, 14, unif(1, 0.1, 5.0);
    math_sqrt: m_sqrt, 15, unif(1, 0.1, 5.0);
    math_cbrt: m_cbrt, 16, away0(1, 0.1, 5.0);
    math_abs: m_abs, 17, away0(1, 0.01, 5.0);
    math_recip: m_recip, 18, away0(1, 0.2, 5.0);
    math_signum: m_signum, 19, away0(1, 0.01, 5.0);
}

mod m_bin {
    use symgrad::differentiable;
    #[differentiable]
    pub fn atan2(y: f64, x: f64) -> f64 {
        y.atan2(x)
    }
    #[differentiable]
    pub fn atan2_p(y: f64, x: f64) -> f64 {
        f64::atan2(y, x)
    }
    #[differentiable]
    pub fn log(x: f64, b: f64) -> f64 {
        x.log(b)
    }
    #[differentiable]
    pub fn log_p(x: f64, b: f64) -> f64 {
        f64::log(x, b)
    }
    #[differentiable]
    pub fn powf(x: f64, p: f64) -> f64 {
        x.powf(p)
    }
    #[differentiable]
    pub fn powf_p(x: f64, p: f64) -> f64 {
        f64::powf(x, p)
    }
    #[differentiable]
    pub fn hypot(x: f64, y: f64) -> f64 {
        x.hypot(y)
    }
    #[differentiable]
    pub fn hypot_p(x: f64, y: f64) -> f64 {
        f64::hypot(x, y)
    }
    #[differentiable]
    pub fn max(x: f64, y: f64) -> f64 {
        x.max(y)
    }
    #[differentiable]
    pub fn max_p(x: f64, y: f64) -> f64 {
        f64::max(x, y)
    }
    #[differentiable]
    pub fn min(x: f64, y: f64) -> f64 {
        x.min(y)
    }
    #[differentiable]
    pub fn min_p(x: f64, y: f64) -> f64 {
        f64::min(x, y)
    }
    #[differentiable]
    pub fn mul_add(a: f64, b: f64, c: f64) -> f64 {
        a.mul_add(b, c)
    }
    #[differentiable]
    pub fn mul_add_p(a: f64, b: f64, c: f64) -> f64 {
        f64::mul_add(a, b, c)
    }
    #[differentiable]
    pub fn powi3(x: f64) -> f64 {
        x.powi(3)
    }
    #[differentiable]
    pub fn powi_m2(x: f64) -> f64 {
        f64::powi(x, -2)
    }
    #[differentiable]
    pub fn powi_n(x: f64, n: i32) -> f64 {
        x.powi(n) + x.powi(n - 1)
    }
    #[differentiable]
    pub fn atan2_h(y: f32, x: f32) -> f32 {
        y.atan2(x)
    }
    #[differentiable]
    pub fn powf_h(x: f32, p: f32) -> f32 {
        x.powf(p)
    }
    #[differentiable]
    pub fn hypot_h(x: f32, y: f32) -> f32 {
        x.hypot(y)
    }
    #[differentiable]
    pub fn mul_add_h(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
    // Constant receivers and constant arguments.
    #[differentiable]
    pub fn consts(x: f64, y: f64) -> f64 {
        x.powf(2.5)
            + 2.0f64.powf(y)
            + x.max(0.5)
            + 0.25f64.min(y)
            + x.mul_add(2.0, y)
            + y.mul_add(x, 1.5)
            + 3.0f64.mul_add(x, y)
            + x.log(10.0)
            + 1.5f64.atan2(y)
            + f64::hypot(3.0f64, y)
            + f64::atan2(x, 2.0)
    }
}

#[test]
fn math_binary() {
    let pos = |r: &mut R| vec![r.gen_range(0.1..5.0), r.gen_range(-2.0..2.0)];
    let base = |r: &mut R| vec![r.gen_range(0.1..5.0), r.gen_range(1.5..6.0)];
    check_fns!(31, [y, x], away0(2, 0.2, 3.0); m_bin::atan2, m_bin::atan2_grad, m_bin::atan2_vjp);
    check_fns!(32, [y, x], away0(2, 0.2, 3.0); m_bin::atan2_p, m_bin::atan2_p_grad, m_bin::atan2_p_vjp);
    check_fns!(33, [x, b], base; m_bin::log, m_bin::log_grad, m_bin::log_vjp);
    check_fns!(34, [x, b], base; m_bin::log_p, m_bin::log_p_grad, m_bin::log_p_vjp);
    check_fns!(35, [x, p], pos; m_bin::powf, m_bin::powf_grad, m_bin::powf_vjp);
    check_fns!(36, [x, p], pos; m_bin::powf_p, m_bin::powf_p_grad, m_bin::powf_p_vjp);
    check_fns!(37, [x, y], away0(2, 0.2, 3.0); m_bin::hypot, m_bin::hypot_grad, m_bin::hypot_vjp);
    check_fns!(38, [x, y], away0(2, 0.2, 3.0); m_bin::hypot_p, m_bin::hypot_p_grad, m_bin::hypot_p_vjp);
    check_fns!(39, [a, b, c], unif(3, -3.0, 3.0); m_bin::mul_add, m_bin::mul_add_grad, m_bin::mul_add_vjp);
    check_fns!(40, [a, b, c], unif(3, -3.0, 3.0); m_bin::mul_add_p, m_bin::mul_add_p_grad, m_bin::mul_add_p_vjp);
    check_fns!(41, [x], away0(1, 0.2, 3.0); m_bin::powi3, m_bin::powi3_grad, m_bin::powi3_vjp);
    check_fns!(42, [x], away0(1, 0.2, 3.0); m_bin::powi_m2, m_bin::powi_m2_grad, m_bin::powi_m2_vjp);
    check_fns!(43, [x, y], pos; m_bin::consts, m_bin::consts_grad, m_bin::consts_vjp);
    check_f32_fns!(44, [y, x], away0(2, 0.2, 3.0); m_bin::atan2; m_bin::atan2_h_grad, m_bin::atan2_h_vjp);
    check_f32_fns!(45, [x, p], pos; m_bin::powf; m_bin::powf_h_grad, m_bin::powf_h_vjp);
    check_f32_fns!(46, [x, y], away0(2, 0.2, 3.0); m_bin::hypot; m_bin::hypot_h_grad, m_bin::hypot_h_vjp);
    check_f32_fns!(47, [a, b, c], unif(3, -3.0, 3.0); m_bin::mul_add; m_bin::mul_add_h_grad, m_bin::mul_add_h_vjp);
}

#[test]
fn math_max_min_both_sides() {
    // Away from ties; both arguments win at some points.
    let side = |x: &[f64]| u32::from(x[0] > x[1]);
    for (seed, which) in [(51, 0), (52, 1), (53, 2), (54, 3)] {
        let paths = match which {
            0 => {
                check_fns!(@paths seed, [x, y], unif(2, -3.0, 3.0), Some(&side); m_bin::max, m_bin::max_grad, m_bin::max_vjp)
            }
            1 => {
                check_fns!(@paths seed, [x, y], unif(2, -3.0, 3.0), Some(&side); m_bin::max_p, m_bin::max_p_grad, m_bin::max_p_vjp)
            }
            2 => {
                check_fns!(@paths seed, [x, y], unif(2, -3.0, 3.0), Some(&side); m_bin::min, m_bin::min_grad, m_bin::min_vjp)
            }
            _ => {
                check_fns!(@paths seed, [x, y], unif(2, -3.0, 3.0), Some(&side); m_bin::min_p, m_bin::min_p_grad, m_bin::min_p_vjp)
            }
        };
        assert_eq!(paths.len(), 2);
    }
}

#[test]
fn math_powi_integer_exponent_param() {
    for n in [-3, -1, 0, 1, 2, 5] {
        let f = move |x: &[f64]| m_bin::powi_n(x[0], n);
        let g = move |x: &[f64]| {
            let (v, g) = m_bin::powi_n_grad(x[0], n);
            (v, g.flat())
        };
        let v = move |x: &[f64], s: f64| {
            let (v, g) = m_bin::powi_n_vjp(x[0], n, s);
            (v, g.flat())
        };
        check("powi_n", (60 + n) as u64, &away0(1, 0.3, 2.0), &f, &g, &v);
    }
}

// ---------------------------------------------------------------------------------------
// Arithmetic, let, shadowing, compound assignment, consts, casts
// ---------------------------------------------------------------------------------------

const K: f64 = 1.5;

mod basic {
    use super::K;
    use symgrad::differentiable;

    #[differentiable]
    pub fn arith(x: f64, y: f64) -> f64 {
        -(x * y) + (x - y) / (y * y + 1.0) - 3.0 * x + x / 2.0 - (-x) + 2.0 / (x * x + 1.0)
            - (x - (y - (x * 0.5)))
    }

    #[differentiable]
    pub fn lets(x: f64, y: f64) -> f64 {
        const L: f64 = 0.25;
        let a: f64 = x * y + K;
        let a = a.sin() + a * L;
        let mut b = a;
        b += x;
        b -= y * 2.0;
        b *= x;
        b /= y * y + 3.0;
        let b = b * b;
        let mut c = 1.0;
        c *= b;
        c += a;
        c -= 0.5;
        c /= 2.0;
        let d = c * y;
        let e = {
            let t = d + x;
            t * t
        };
        e - c
    }

    #[differentiable]
    pub fn assign_plain(x: f64, y: f64) -> f64 {
        let mut a = 0.0;
        a = a + x * y;
        a = a * a + y;
        let mut b = x;
        b = y;
        b = b * a;
        b
    }

    #[differentiable]
    pub fn cast(x: f64, k: usize, j: i32) -> f64 {
        let n = k as f64;
        let m = (j * 2 + 1) as f64;
        x * n + m * x.sin() + (k + 1) as f64 / x.exp()
    }

    #[differentiable]
    pub fn lets_h(x: f32, y: f32) -> f32 {
        let a: f32 = x * y + 1.5;
        let a = a.sin() + a * 0.25;
        let mut b = a;
        b += x;
        b -= y * 2.0;
        b *= x;
        b /= y * y + 3.0;
        let b = b * b;
        let mut c = 1.0;
        c *= b;
        c += a;
        c -= 0.5;
        c /= 2.0;
        let d = c * y;
        let e = {
            let t = d + x;
            t * t
        };
        e - c
    }

    #[differentiable]
    pub fn lets_ref(x: f64, y: f64) -> f64 {
        let a = 1.5;
        let b = a * 2.0;
        let x2 = x;
        let x3 = x2;
        x3 * b + y / a
    }
}

#[test]
fn arithmetic_and_parens() {
    check_fns!(100, [x, y], unif(2, -3.0, 3.0); basic::arith, basic::arith_grad, basic::arith_vjp);
}

#[test]
fn lets_shadowing_compound_assign_consts() {
    check_fns!(101, [x, y], unif(2, -3.0, 3.0); basic::lets, basic::lets_grad, basic::lets_vjp);
    check_fns!(102, [x, y], unif(2, -3.0, 3.0); basic::assign_plain, basic::assign_plain_grad, basic::assign_plain_vjp);
    check_fns!(103, [x, y], unif(2, -3.0, 3.0); basic::lets_ref, basic::lets_ref_grad, basic::lets_ref_vjp);
    check_f32_fns!(104, [x, y], unif(2, -2.0, 2.0); basic::lets; basic::lets_h_grad, basic::lets_h_vjp);
}

#[test]
fn casts_of_integer_params() {
    for (k, j) in [(0usize, 0i32), (1, -1), (3, 2), (7, -4)] {
        let f = move |x: &[f64]| basic::cast(x[0], k, j);
        let g = move |x: &[f64]| {
            // One active parameter: a bare f64 gradient.
            let (v, g): (f64, f64) = basic::cast_grad(x[0], k, j);
            (v, vec![g])
        };
        let v = move |x: &[f64], s: f64| {
            let (v, g): (f64, f64) = basic::cast_vjp(x[0], k, j, s);
            (v, vec![g])
        };
        check("cast", 110 + k as u64, &unif(1, -3.0, 3.0), &f, &g, &v);
    }
}

// ---------------------------------------------------------------------------------------
// if / else
// ---------------------------------------------------------------------------------------

mod branches {
    use symgrad::differentiable;

    #[differentiable]
    pub fn stmt(x: f64, y: f64) -> f64 {
        let mut r = x * y;
        if x > y {
            r += x.sin();
        } else {
            r -= y.exp();
        }
        r * x
    }

    #[differentiable]
    pub fn no_else(x: f64, y: f64) -> f64 {
        let mut r = x * y;
        let mut s = y;
        if x < 0.5 {
            r = r * r + y;
            s = x;
        }
        r + s * 3.0
    }

    #[differentiable]
    pub fn expr(x: f64, y: f64) -> f64 {
        let v = if x > 0.0 { x * x } else { -x.sin() };
        v * y + if y > 1.0 { y.ln() } else { 1.0 - y }
    }

    #[differentiable]
    pub fn chain(x: f64, y: f64) -> f64 {
        let t = x * y;
        if x < -1.0 {
            t + x
        } else if x < 0.0 {
            t * x
        } else if x < 1.0 {
            t.sin() * y
        } else {
            t.exp() / x
        }
    }

    #[differentiable]
    pub fn chain_stmt(x: f64, y: f64) -> f64 {
        let mut a = y;
        if x < -1.0 {
            a *= x;
        } else if x < 1.0 {
            a += x * x;
        } else {
            a = a.sin() * x;
        }
        a * y
    }

    #[differentiable]
    pub fn nested(x: f64, y: f64) -> f64 {
        let mut a = x + y;
        if x > 0.0 {
            if y > 0.0 {
                a = a * x;
            } else {
                a = a * y;
            }
            a += 1.0;
        } else {
            let b = if y > x { y - x } else { x * x };
            a = a * b;
        }
        a
    }

    /// Branch on an integer parameter; the value is constant in one branch.
    #[differentiable]
    pub fn on_int(x: f64, k: i32) -> f64 {
        if k % 2 == 0 { x * x } else { 2.0 }
    }

    #[differentiable]
    pub fn chain_h(x: f32, y: f32) -> f32 {
        let t = x * y;
        if x < -1.0 {
            t + x
        } else if x < 0.0 {
            t * x
        } else if x < 1.0 {
            t.sin() * y
        } else {
            t.exp() / x
        }
    }
}

#[test]
fn if_else_statement() {
    let path = |x: &[f64]| u32::from(x[0] > x[1]);
    let p = check_fns!(@paths 200, [x, y], unif(2, -2.0, 2.0), Some(&path); branches::stmt, branches::stmt_grad, branches::stmt_vjp);
    assert_eq!(p.len(), 2);
    let path = |x: &[f64]| u32::from(x[0] < 0.5);
    let p = check_fns!(@paths 201, [x, y], unif(2, -2.0, 2.0), Some(&path); branches::no_else, branches::no_else_grad, branches::no_else_vjp);
    assert_eq!(p.len(), 2);
}

#[test]
fn if_else_expression() {
    let path = |x: &[f64]| u32::from(x[0] > 0.0) + 2 * u32::from(x[1] > 1.0);
    let p = check_fns!(@paths 202, [x, y], unif(2, -2.0, 3.0), Some(&path); branches::expr, branches::expr_grad, branches::expr_vjp);
    assert_eq!(p.len(), 4);
}

#[test]
fn if_else_if_chains() {
    let path = |x: &[f64]| (x[0] >= -1.0) as u32 + (x[0] >= 0.0) as u32 + (x[0] >= 1.0) as u32;
    let p = check_fns!(@paths 203, [x, y], unif(2, -2.0, 2.0), Some(&path); branches::chain, branches::chain_grad, branches::chain_vjp);
    assert_eq!(p.len(), 4);
    let path2 = |x: &[f64]| (x[0] >= -1.0) as u32 + (x[0] >= 1.0) as u32;
    let p = check_fns!(@paths 204, [x, y], unif(2, -2.0, 2.0), Some(&path2); branches::chain_stmt, branches::chain_stmt_grad, branches::chain_stmt_vjp);
    assert_eq!(p.len(), 3);
    // f32: points away from the chain's boundaries.
    let sample = |r: &mut R| loop {
        let x: f64 = r.gen_range(-2.0..2.0);
        if [-1.0, 0.0, 1.0].iter().all(|b: &f64| (x - b).abs() > 1e-2) {
            return vec![x, r.gen_range(-2.0..2.0)];
        }
    };
    check_f32_fns!(205, [x, y], sample; branches::chain; branches::chain_h_grad, branches::chain_h_vjp);
}

#[test]
fn if_nested() {
    let path = |x: &[f64]| {
        if x[0] > 0.0 {
            u32::from(x[1] > 0.0)
        } else {
            2 + u32::from(x[1] > x[0])
        }
    };
    let p = check_fns!(@paths 206, [x, y], unif(2, -2.0, 2.0), Some(&path); branches::nested, branches::nested_grad, branches::nested_vjp);
    assert_eq!(p.len(), 4);
}

#[test]
fn if_on_integer_param() {
    for k in [0, 1, 2, 3] {
        let f = move |x: &[f64]| branches::on_int(x[0], k);
        let g = move |x: &[f64]| {
            let (v, g) = branches::on_int_grad(x[0], k);
            (v, vec![g])
        };
        let v = move |x: &[f64], s: f64| {
            let (v, g) = branches::on_int_vjp(x[0], k, s);
            (v, vec![g])
        };
        check("on_int", 210 + k as u64, &unif(1, -2.0, 2.0), &f, &g, &v);
    }
}

// ---------------------------------------------------------------------------------------
// for loops
// ---------------------------------------------------------------------------------------

mod loops {
    use symgrad::differentiable;

    /// Forward, bounds from an integer parameter, `i as f64`.
    #[differentiable]
    pub fn forward(x: f64, y: f64, n: usize) -> f64 {
        let mut acc = y;
        for i in 0..n {
            acc = acc * x.sin() + (i as f64) * y;
        }
        acc
    }

    /// Inclusive range: sum_{i=1..=n} x^i / i.
    #[differentiable]
    pub fn inclusive(x: f64, n: i32) -> f64 {
        let mut acc = 0.0;
        for i in 1..=n {
            acc += x.powi(i) / (i as f64);
        }
        acc
    }

    /// Reversed range, constant bounds, several carried values.
    #[differentiable]
    pub fn rev(x: f64, y: f64) -> f64 {
        let mut a = x;
        let mut b = y;
        for i in (0..6).rev() {
            let t = a * 0.5 + b * (i as f64 + 1.0) * 0.1;
            b = (a - b).tanh();
            a = t;
        }
        a * b
    }

    /// Reversed with an integer bound; the carried value starts as a constant.
    #[differentiable]
    pub fn rev_n(x: f64, n: usize) -> f64 {
        let mut p = 1.0;
        for i in (1..n + 1).rev() {
            p = p * x + 1.0 / (i as f64);
        }
        p
    }

    /// Nested loops, `_` loop variable, an inner bound from the outer index.
    /// (An `if` that rebinds a carried value inside a loop does not compile yet:
    /// tests/ui/bugs/loop-if-assign.rs.)
    #[differentiable]
    pub fn nested(x: f64, y: f64) -> f64 {
        let mut s = 0.0;
        for i in 0..3 {
            let mut t = x;
            for j in i..4 {
                t = t * y + (j as f64) * 0.25;
            }
            s += t;
        }
        for _ in 0..2 {
            s = s * 0.5 + x;
        }
        s
    }

    /// An `if` inside a loop that does not rebind a carried value.
    #[differentiable]
    pub fn if_in_loop(x: f64, y: f64) -> f64 {
        let mut s = y;
        for i in 0..5 {
            let t = if s > 1.0 { s.sqrt() } else { s * x };
            s = t + (i as f64) * 0.1;
        }
        s
    }

    /// A loop whose body calls another differentiable fn.
    #[differentiable]
    pub fn with_call(x: f64, n: usize) -> f64 {
        let mut acc = x;
        for _ in 0..n {
            acc = super::calls::a::g(acc, x) * 0.5;
        }
        acc
    }

    #[differentiable]
    pub fn forward_h(x: f32, y: f32, n: usize) -> f32 {
        let mut acc = y;
        for i in 0..n {
            acc = acc * x.sin() + (i as f32) * y;
        }
        acc
    }
}

#[test]
fn loop_forward_bounds_from_param() {
    for n in [0usize, 1, 2, 5, 9] {
        let f = move |x: &[f64]| loops::forward(x[0], x[1], n);
        let g = move |x: &[f64]| {
            let (v, g) = loops::forward_grad(x[0], x[1], n);
            (v, g.flat())
        };
        let v = move |x: &[f64], s: f64| {
            let (v, g) = loops::forward_vjp(x[0], x[1], n, s);
            (v, g.flat())
        };
        check("forward", 300 + n as u64, &unif(2, -2.0, 2.0), &f, &g, &v);
        let f32g = move |x: &[f32]| {
            let (v, g) = loops::forward_h_grad(x[0], x[1], n);
            (v, g.flat())
        };
        let f32v = move |x: &[f32], s: f32| {
            let (v, g) = loops::forward_h_vjp(x[0], x[1], n, s);
            (v, g.flat())
        };
        check_f32(
            "forward_h",
            320 + n as u64,
            &unif(2, -1.5, 1.5),
            &f,
            &f32g,
            &f32v,
        );
    }
}

#[test]
fn loop_inclusive() {
    for n in [0, 1, 4, 8] {
        let f = move |x: &[f64]| loops::inclusive(x[0], n);
        let g = move |x: &[f64]| {
            let (v, g) = loops::inclusive_grad(x[0], n);
            (v, vec![g])
        };
        let v = move |x: &[f64], s: f64| {
            let (v, g) = loops::inclusive_vjp(x[0], n, s);
            (v, vec![g])
        };
        check("inclusive", 330 + n as u64, &unif(1, -1.5, 1.5), &f, &g, &v);
    }
}

#[test]
fn loop_rev() {
    check_fns!(340, [x, y], unif(2, -2.0, 2.0); loops::rev, loops::rev_grad, loops::rev_vjp);
    for n in [0usize, 1, 3, 7] {
        let f = move |x: &[f64]| loops::rev_n(x[0], n);
        let g = move |x: &[f64]| {
            let (v, g) = loops::rev_n_grad(x[0], n);
            (v, vec![g])
        };
        let v = move |x: &[f64], s: f64| {
            let (v, g) = loops::rev_n_vjp(x[0], n, s);
            (v, vec![g])
        };
        check("rev_n", 341 + n as u64, &unif(1, -1.5, 1.5), &f, &g, &v);
    }
}

#[test]
fn loop_nested() {
    check_fns!(350, [x, y], unif(2, -1.5, 1.5); loops::nested, loops::nested_grad, loops::nested_vjp);
}

#[test]
fn loop_with_if_inside() {
    // Path: which of the `s > 1.0` tests fired, computed by a copy of the function.
    let path = |x: &[f64]| {
        let (x, y) = (x[0], x[1]);
        let mut bits = 0u32;
        let mut s = y;
        for i in 0..5 {
            let t = if s > 1.0 {
                bits |= 1 << i;
                s.sqrt()
            } else {
                s * x
            };
            s = t + (i as f64) * 0.1;
        }
        bits
    };
    let p = check_fns!(@paths 351, [x, y], unif(2, -1.5, 2.5), Some(&path); loops::if_in_loop, loops::if_in_loop_grad, loops::if_in_loop_vjp);
    assert!(p.len() >= 3, "paths hit: {p:?}");
}

#[test]
fn loop_calling_differentiable_fn() {
    for n in [0usize, 1, 4] {
        let f = move |x: &[f64]| loops::with_call(x[0], n);
        let g = move |x: &[f64]| {
            let (v, g) = loops::with_call_grad(x[0], n);
            (v, vec![g])
        };
        let v = move |x: &[f64], s: f64| {
            let (v, g) = loops::with_call_vjp(x[0], n, s);
            (v, vec![g])
        };
        check("with_call", 360 + n as u64, &unif(1, -2.0, 2.0), &f, &g, &v);
    }
}

// ---------------------------------------------------------------------------------------
// Early returns
// ---------------------------------------------------------------------------------------

mod returns {
    use symgrad::differentiable;

    #[differentiable]
    pub fn in_if(x: f64, y: f64) -> f64 {
        let a = x * y;
        if x < 0.0 {
            return a * x;
        }
        let b = a.sin() + y;
        b * x
    }

    /// Returns in an `else if` chain (a branch that rebinds a value and an `else` that
    /// returns: tests/ui/pass/else-return.rs).
    #[differentiable]
    pub fn in_else_if(x: f64, y: f64) -> f64 {
        let a = x + y;
        if x < -1.0 {
            return a * a;
        } else if x > 1.0 {
            return a.exp();
        }
        a * y + x
    }

    #[differentiable]
    pub fn in_loop(x: f64, y: f64) -> f64 {
        let mut acc = x;
        for i in 0..8 {
            acc = acc * 1.25 + y * 0.1;
            if acc > 2.0 {
                return acc * (i as f64 + 1.0) + x;
            }
        }
        acc * y
    }

    /// A return inside nested loops does not compile yet:
    /// tests/ui/bugs/nested-loop-return.rs. Here: a return in a loop inside an `if`.
    #[differentiable]
    pub fn loop_in_if(x: f64, y: f64) -> f64 {
        let mut s = x;
        if y > 0.0 {
            for i in 0..6 {
                s = s * 1.5 + y;
                if s > 2.0 {
                    return s * (i as f64);
                }
            }
        }
        s * y
    }

    /// `return` as the last statement, and `return` in both branches.
    #[differentiable]
    pub fn both(x: f64, y: f64) -> f64 {
        let a = x * x;
        if y > 0.0 {
            return a + y;
        } else {
            return a - y * x;
        }
    }

    #[differentiable]
    pub fn tail_return(x: f64) -> f64 {
        let a = x.exp();
        return a * x;
    }
}

#[test]
fn early_return_in_if() {
    let path = |x: &[f64]| u32::from(x[0] < 0.0);
    let p = check_fns!(@paths 400, [x, y], unif(2, -2.0, 2.0), Some(&path); returns::in_if, returns::in_if_grad, returns::in_if_vjp);
    assert_eq!(p.len(), 2);
    let path = |x: &[f64]| (x[0] >= -1.0) as u32 + (x[0] > 1.0) as u32;
    let p = check_fns!(@paths 401, [x, y], unif(2, -2.0, 2.0), Some(&path); returns::in_else_if, returns::in_else_if_grad, returns::in_else_if_vjp);
    assert_eq!(p.len(), 3);
    let path = |x: &[f64]| u32::from(x[1] > 0.0);
    let p = check_fns!(@paths 402, [x, y], unif(2, -2.0, 2.0), Some(&path); returns::both, returns::both_grad, returns::both_vjp);
    assert_eq!(p.len(), 2);
    check_fns!(403, [x], unif(1, -2.0, 2.0); returns::tail_return, returns::tail_return_grad, returns::tail_return_vjp);
}

#[test]
fn early_return_in_loop() {
    // Path: the iteration that returned (8 = none), from a copy of the loop.
    let path = |x: &[f64]| {
        let (x, y) = (x[0], x[1]);
        let mut acc = x;
        for i in 0..8 {
            acc = acc * 1.25 + y * 0.1;
            if acc > 2.0 {
                return i;
            }
        }
        8
    };
    let p = check_fns!(@paths 410, [x, y], unif(2, -1.0, 2.5), Some(&path); returns::in_loop, returns::in_loop_grad, returns::in_loop_vjp);
    assert!(
        p.contains(&8) && p.contains(&0) && p.len() >= 4,
        "paths: {p:?}"
    );

    let path = |x: &[f64]| {
        let (x, y) = (x[0], x[1]);
        let mut s = x;
        if y > 0.0 {
            for i in 0..6 {
                s = s * 1.5 + y;
                if s > 2.0 {
                    return i;
                }
            }
            return 6;
        }
        7
    };
    let p = check_fns!(@paths 411, [x, y], unif(2, -1.0, 1.5), Some(&path); returns::loop_in_if, returns::loop_in_if_grad, returns::loop_in_if_vjp);
    assert!(
        p.contains(&7) && p.contains(&6) && p.len() >= 4,
        "paths: {p:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Calls, also across modules
// ---------------------------------------------------------------------------------------

mod calls {
    use symgrad::differentiable;

    pub mod a {
        use symgrad::differentiable;

        #[differentiable]
        pub fn g(x: f64, y: f64) -> f64 {
            x * y.sin() + x * x * 0.1
        }

        pub mod b {
            use symgrad::differentiable;

            #[differentiable]
            pub fn h(x: f64) -> f64 {
                x.exp() / (1.0 + x * x)
            }
        }

        /// Only `x` is active; `c` is a constant scale.
        #[differentiable(wrt(x))]
        pub fn scaled(x: f64, c: f64) -> f64 {
            (x * c).sin()
        }

        /// An integer parameter in the middle.
        #[differentiable]
        pub fn pow_n(x: f64, n: i32, y: f64) -> f64 {
            x.powi(n) * y
        }

        /// A callee with early returns.
        #[differentiable]
        pub fn piecewise(x: f64) -> f64 {
            if x < 0.0 {
                return x * x;
            }
            x.sin() * 2.0
        }
    }

    #[differentiable]
    fn local(x: f64) -> f64 {
        x * x * x
    }

    #[differentiable]
    pub fn caller(x: f64, y: f64) -> f64 {
        let u = a::g(x, y);
        let v = a::b::h(u) + a::g(y, 2.0);
        v * x + a::g(3.0, x) + self::local(y) + local(x)
    }

    #[differentiable]
    pub fn caller_consts(x: f64, y: f64) -> f64 {
        a::scaled(x * y, 2.0) + a::pow_n(x, 3, y) + a::pow_n(y, -1, 0.5) + a::piecewise(x - y)
    }

    /// Calls inside branches, and a call whose result feeds another call.
    #[differentiable]
    pub fn caller_branches(x: f64, y: f64) -> f64 {
        let t = if x > y { a::g(x, y) } else { a::b::h(x) };
        super::calls::a::g(t, a::b::h(y))
    }
}

#[test]
fn calls_across_modules() {
    check_fns!(500, [x, y], unif(2, -2.0, 2.0); calls::caller, calls::caller_grad, calls::caller_vjp);
    let sample = |r: &mut R| {
        let v = away0(1, 0.3, 2.0)(r);
        vec![v[0], r.gen_range(0.3..2.0)]
    };
    let path = |x: &[f64]| u32::from(x[0] - x[1] < 0.0);
    let p = check_fns!(@paths 501, [x, y], sample, Some(&path); calls::caller_consts, calls::caller_consts_grad, calls::caller_consts_vjp);
    assert_eq!(p.len(), 2);
    let path = |x: &[f64]| u32::from(x[0] > x[1]);
    let p = check_fns!(@paths 502, [x, y], unif(2, -2.0, 2.0), Some(&path); calls::caller_branches, calls::caller_branches_grad, calls::caller_branches_vjp);
    assert_eq!(p.len(), 2);
}

#[test]
fn callee_with_wrt_and_integer_param() {
    // The callee's own generated functions: bare gradient for one active param.
    let f = |x: &[f64]| calls::a::scaled(x[0], 1.7);
    let g = |x: &[f64]| {
        let (v, g): (f64, f64) = calls::a::scaled_grad(x[0], 1.7);
        (v, vec![g])
    };
    let v = |x: &[f64], s: f64| {
        let (v, g): (f64, f64) = calls::a::scaled_vjp(x[0], 1.7, s);
        (v, vec![g])
    };
    check("scaled", 510, &unif(1, -2.0, 2.0), &f, &g, &v);
    let f = |x: &[f64]| calls::a::pow_n(x[0], 4, x[1]);
    let g = |x: &[f64]| {
        let (v, g): (f64, (f64, f64)) = calls::a::pow_n_grad(x[0], 4, x[1]);
        (v, g.flat())
    };
    let v = |x: &[f64], s: f64| {
        let (v, g) = calls::a::pow_n_vjp(x[0], 4, x[1], s);
        (v, g.flat())
    };
    check("pow_n", 511, &unif(2, -2.0, 2.0), &f, &g, &v);
}

#[test]
fn pullback_protocol() {
    // One entry per parameter, `()` for the constant; the mask is honoured as documented
    // (entries not needed may be lazy zeros, needed ones must be right).
    let (x, n, y) = (0.7, 3, 1.3);
    let (v, pb) = calls::a::pow_n_pullback(x, n, y);
    assert_eq!(v, calls::a::pow_n(x, n, y));
    // Protocol v2: the closure gets the arguments again, then the seed and the mask.
    let (gx, (), gy): (f64, (), f64) = pb(x, n, y, 2.0, [true, false, true]);
    let want = fd(|p: &[f64]| calls::a::pow_n(p[0], n, p[1]), &[x, y]);
    assert_grad(
        "pow_n_pullback",
        &[x, y],
        &[gx, gy],
        &[2.0 * want[0], 2.0 * want[1]],
        v,
        1e-6,
    );
}

// ---------------------------------------------------------------------------------------
// Arrays and slices
// ---------------------------------------------------------------------------------------

mod arrays {
    use symgrad::differentiable;

    #[differentiable]
    pub fn arr(v: [f64; 3], s: f64) -> f64 {
        v[0] * v[1] + v[2].sin() * s + v[0] * s * s
    }

    #[differentiable]
    pub fn arr_loop(v: [f64; 4]) -> f64 {
        let mut acc = 0.0;
        for i in 0..4 {
            acc += v[i] * v[i] * (i as f64 + 1.0);
        }
        for i in 0..3 {
            acc += v[i] * v[i + 1];
        }
        acc
    }

    #[differentiable]
    pub fn sl(xs: &[f64]) -> f64 {
        // The `for i in 0..xs.len()` form is checked in tests/ui/pass/slice-len-bound.rs.
        let n = xs.len();
        let mut acc = 0.0;
        for i in 0..n {
            acc += xs[i].exp() * (i as f64 + 0.5);
        }
        acc + xs[0] * xs[xs.len() - 1]
    }

    #[differentiable]
    pub fn dot_rev(xs: &[f64], ys: &[f64]) -> f64 {
        let n = xs.len();
        let mut acc = 0.0;
        for i in (0..n).rev() {
            acc = acc * 0.9 + xs[i] * ys[n - 1 - i];
        }
        acc
    }

    /// Slices with `wrt`: `w` is a constant weight vector.
    #[differentiable(wrt(xs))]
    pub fn weighted(xs: &[f64], w: &[f64]) -> f64 {
        let n = xs.len();
        let mut acc = 0.0;
        for i in 0..n {
            acc += w[i] * xs[i] * xs[i];
        }
        acc
    }

    /// Not every element is read: its gradient entry must be 0.
    #[differentiable]
    pub fn partial(xs: &[f64]) -> f64 {
        xs[1] * xs[1]
    }

    /// Calls a slice function and indexes an array.
    #[differentiable]
    pub fn calls_slice(xs: &[f64], t: f64) -> f64 {
        sl(xs) * t + dot_rev(xs, xs)
    }

    #[differentiable]
    pub fn arr_h(v: [f32; 3], s: f32) -> f32 {
        v[0] * v[1] + v[2].sin() * s + v[0] * s * s
    }

    #[differentiable]
    pub fn sl_h(xs: &[f32]) -> f32 {
        let n = xs.len();
        let mut acc = 0.0;
        for i in 0..n {
            acc += xs[i].exp() * (i as f32 + 0.5);
        }
        acc + xs[0] * xs[xs.len() - 1]
    }
}

#[test]
fn arrays_gradient_is_array() {
    let f = |x: &[f64]| arrays::arr([x[0], x[1], x[2]], x[3]);
    let g = |x: &[f64]| {
        let (v, g): (f64, ([f64; 3], f64)) = arrays::arr_grad([x[0], x[1], x[2]], x[3]);
        (v, g.flat())
    };
    let v = |x: &[f64], s: f64| {
        let (v, g): (f64, ([f64; 3], f64)) = arrays::arr_vjp([x[0], x[1], x[2]], x[3], s);
        (v, g.flat())
    };
    check("arr", 600, &unif(4, -2.0, 2.0), &f, &g, &v);
    let f = |x: &[f64]| arrays::arr_loop([x[0], x[1], x[2], x[3]]);
    let g = |x: &[f64]| {
        let (v, g): (f64, [f64; 4]) = arrays::arr_loop_grad([x[0], x[1], x[2], x[3]]);
        (v, g.to_vec())
    };
    let v = |x: &[f64], s: f64| {
        let (v, g): (f64, [f64; 4]) = arrays::arr_loop_vjp([x[0], x[1], x[2], x[3]], s);
        (v, g.to_vec())
    };
    check("arr_loop", 601, &unif(4, -2.0, 2.0), &f, &g, &v);
    let g32 = |x: &[f32]| {
        let (v, g): (f32, ([f32; 3], f32)) = arrays::arr_h_grad([x[0], x[1], x[2]], x[3]);
        (v, g.flat())
    };
    let v32 = |x: &[f32], s: f32| {
        let (v, g) = arrays::arr_h_vjp([x[0], x[1], x[2]], x[3], s);
        (v, g.flat())
    };
    let f = |x: &[f64]| arrays::arr([x[0], x[1], x[2]], x[3]);
    check_f32("arr_h", 602, &unif(4, -2.0, 2.0), &f, &g32, &v32);
}

#[test]
fn slices_gradient_is_vec() {
    for len in [1usize, 2, 5, 9] {
        let f = |x: &[f64]| arrays::sl(x);
        let g = |x: &[f64]| {
            let (v, g): (f64, Vec<f64>) = arrays::sl_grad(x);
            (v, g)
        };
        let v = |x: &[f64], s: f64| {
            let (v, g): (f64, Vec<f64>) = arrays::sl_vjp(x, s);
            (v, g)
        };
        check("sl", 610 + len as u64, &unif(len, -2.0, 2.0), &f, &g, &v);

        let f = |x: &[f64]| {
            let (a, b) = x.split_at(x.len() / 2);
            arrays::dot_rev(a, b)
        };
        let g = |x: &[f64]| {
            let (a, b) = x.split_at(x.len() / 2);
            let (v, (ga, gb)): (f64, (Vec<f64>, Vec<f64>)) = arrays::dot_rev_grad(a, b);
            (v, [ga, gb].concat())
        };
        let v = |x: &[f64], s: f64| {
            let (a, b) = x.split_at(x.len() / 2);
            let (v, (ga, gb)) = arrays::dot_rev_vjp(a, b, s);
            (v, [ga, gb].concat())
        };
        check(
            "dot_rev",
            620 + len as u64,
            &unif(2 * len, -2.0, 2.0),
            &f,
            &g,
            &v,
        );

        let w: Vec<f64> = (0..len).map(|i| 0.5 + i as f64).collect();
        let f = |x: &[f64]| arrays::weighted(x, &w);
        let g = |x: &[f64]| {
            let (v, g): (f64, Vec<f64>) = arrays::weighted_grad(x, &w);
            (v, g)
        };
        let v = |x: &[f64], s: f64| arrays::weighted_vjp(x, &w, s);
        check(
            "weighted",
            630 + len as u64,
            &unif(len, -2.0, 2.0),
            &f,
            &g,
            &v,
        );

        let f = |x: &[f64]| arrays::calls_slice(&x[1..], x[0]);
        let g = |x: &[f64]| {
            let (v, (gx, gt)): (f64, (Vec<f64>, f64)) = arrays::calls_slice_grad(&x[1..], x[0]);
            (v, [vec![gt], gx].concat())
        };
        let v = |x: &[f64], s: f64| {
            let (v, (gx, gt)) = arrays::calls_slice_vjp(&x[1..], x[0], s);
            (v, [vec![gt], gx].concat())
        };
        check(
            "calls_slice",
            640 + len as u64,
            &unif(len + 1, -1.5, 1.5),
            &f,
            &g,
            &v,
        );

        let g32 = |x: &[f32]| {
            let (v, g): (f32, Vec<f32>) = arrays::sl_h_grad(x);
            (v, g.flat())
        };
        let v32 = |x: &[f32], s: f32| {
            let (v, g) = arrays::sl_h_vjp(x, s);
            (v, g.flat())
        };
        check_f32(
            "sl_h",
            650 + len as u64,
            &unif(len, -1.5, 1.5),
            &|x: &[f64]| arrays::sl(x),
            &g32,
            &v32,
        );
    }
}

#[test]
fn slice_elements_not_read_get_zero() {
    let xs = [0.3, -1.2, 2.0, 0.5];
    let (v, g) = arrays::partial_grad(&xs);
    assert_eq!(v, 1.44);
    assert_eq!(g.len(), 4);
    assert_grad(
        "partial",
        &xs,
        &g,
        &fd(|x: &[f64]| arrays::partial(x), &xs),
        v,
        1e-6,
    );
}

// ---------------------------------------------------------------------------------------
// wrt with constants
// ---------------------------------------------------------------------------------------

mod wrt {
    use symgrad::differentiable;

    #[differentiable(wrt(x))]
    pub fn one(x: f64, c: f64, k: i32) -> f64 {
        x.powi(k) * c + c.sin() * x + c * c
    }

    #[differentiable(wrt(x, z))]
    pub fn two(x: f64, y: f64, z: f64) -> f64 {
        let t = x * y + z;
        if y > 0.0 { t.sin() * z } else { t * y }
    }

    /// Only `y`; `x` is a constant used in a branch condition and a loop.
    #[differentiable(wrt(y))]
    pub fn loop_const(x: f64, y: f64, n: usize) -> f64 {
        let mut acc = y;
        for i in 0..n {
            acc = acc * x + (i as f64) * y.cos();
        }
        acc
    }
}

#[test]
fn wrt_constants() {
    for (c, k) in [(0.5, 2), (-1.3, 3), (2.0, -1)] {
        let f = move |x: &[f64]| wrt::one(x[0], c, k);
        let g = move |x: &[f64]| {
            let (v, g): (f64, f64) = wrt::one_grad(x[0], c, k);
            (v, vec![g])
        };
        let v = move |x: &[f64], s: f64| {
            let (v, g): (f64, f64) = wrt::one_vjp(x[0], c, k, s);
            (v, vec![g])
        };
        check("wrt_one", (700 + k) as u64, &away0(1, 0.3, 2.0), &f, &g, &v);
    }
    for y in [-0.7, 0.4, 1.6] {
        let f = move |x: &[f64]| wrt::two(x[0], y, x[1]);
        let g = move |x: &[f64]| {
            let (v, g): (f64, (f64, f64)) = wrt::two_grad(x[0], y, x[1]);
            (v, g.flat())
        };
        let v = move |x: &[f64], s: f64| {
            let (v, g): (f64, (f64, f64)) = wrt::two_vjp(x[0], y, x[1], s);
            (v, g.flat())
        };
        check("wrt_two", 710, &unif(2, -2.0, 2.0), &f, &g, &v);
    }
    for (x, n) in [(0.5, 0usize), (-0.8, 3), (1.1, 5)] {
        let f = move |p: &[f64]| wrt::loop_const(x, p[0], n);
        let g = move |p: &[f64]| {
            let (v, g): (f64, f64) = wrt::loop_const_grad(x, p[0], n);
            (v, vec![g])
        };
        let v = move |p: &[f64], s: f64| {
            let (v, g) = wrt::loop_const_vjp(x, p[0], n, s);
            (v, vec![g])
        };
        check(
            "wrt_loop_const",
            720 + n as u64,
            &unif(1, -2.0, 2.0),
            &f,
            &g,
            &v,
        );
    }
}

//! Named element-wise functions of matrices and vectors (`DMatrix<T>` and `DVector<T>`,
//! `T` = `f32` or `f64`): `exp`, `ln`, `sqrt`, `abs`, `sin`, `cos`, `softplus`, `gelu` and
//! `powi`, each in the protocol of [`super`] (`NAME`, `NAME_pullback`, `NAME_vjp`) and of
//! forward mode (`NAME_fwd`, `NAME_jvp`).
//!
//! nalgebra has no `.exp()` on matrices; in a `#[differentiable]` fn write `exp(&x)` (these
//! functions) or `x.map(|v| v.exp())` (any scalar closure, differentiated by the macro).
//!
//! The pullbacks keep the element-wise derivative computed in the forward pass, so nothing
//! is recomputed; a lazy-zero (empty) seed gives a lazy-zero gradient.

use crate::ad::linalg::Scalar;
use crate::ad::matrix::Elements;
use crate::ad::tangent::ConstantParameter;

/// `f(x)` element-wise and the derivative `f'(x)` element-wise; `f` returns both.
fn value_and_slope<M: Elements>(x: &M, f: impl Fn(M::Elem) -> (M::Elem, M::Elem)) -> (M, M) {
    let mut y = x.clone();
    let mut d = x.clone();
    for (yv, dv) in y.elems_mut().iter_mut().zip(d.elems_mut()) {
        let (a, b) = f(*yv);
        *yv = a;
        *dv = b;
    }
    (y, d)
}

/// `seed .* d`, in the seed's buffer (a lazy zero for a lazy-zero seed).
#[track_caller]
fn scale_seed<M: Elements>(op: &str, mut seed: M, d: &M) -> M {
    if seed.elems().is_empty() {
        return M::empty();
    }
    assert_eq!(
        seed.dims(),
        d.dims(),
        "{op}: seed is {:?} but the output is {:?}",
        seed.dims(),
        d.dims()
    );
    for (g, &s) in seed.elems_mut().iter_mut().zip(d.elems()) {
        *g *= s;
    }
    seed
}

/// The tangent `dx .* d` (zero for `None`).
#[track_caller]
fn tangent<M: Elements>(op: &str, d: &M, dx: Option<&M>) -> M {
    match dx {
        None => M::zeros_of(d.dims()),
        Some(dx) => {
            assert_eq!(
                dx.dims(),
                d.dims(),
                "{op}: the tangent of x is {:?} but x is {:?}",
                dx.dims(),
                d.dims()
            );
            let mut t = dx.clone();
            for (g, &s) in t.elems_mut().iter_mut().zip(d.elems()) {
                *g *= s;
            }
            t
        }
    }
}

#[inline]
fn c<T: Scalar>(v: f64) -> T {
    nalgebra::convert(v)
}

/// The logistic function, without overflow for any sign.
#[inline]
fn sigmoid1<T: Scalar>(v: T) -> T {
    if v >= T::zero() {
        T::one() / (T::one() + (-v).exp())
    } else {
        let e = v.exp();
        e / (T::one() + e)
    }
}

/// `ln(1 + e^v)` without overflow, and its derivative `sigmoid(v)`.
#[inline]
fn softplus1<T: Scalar>(v: T) -> (T, T) {
    let y = v.max(T::zero()) + (-v.abs()).exp().ln_1p();
    (y, sigmoid1(v))
}

#[inline]
fn exp1<T: Scalar>(v: T) -> (T, T) {
    let y = v.exp();
    (y, y)
}

#[inline]
fn ln1<T: Scalar>(v: T) -> (T, T) {
    (v.ln(), T::one() / v)
}

#[inline]
fn sqrt1<T: Scalar>(v: T) -> (T, T) {
    let y = v.sqrt();
    (y, T::one() / (y + y))
}

#[inline]
fn abs1<T: Scalar>(v: T) -> (T, T) {
    let d = if v > T::zero() {
        T::one()
    } else if v < T::zero() {
        -T::one()
    } else {
        T::zero()
    };
    (v.abs(), d)
}

#[inline]
fn sin1<T: Scalar>(v: T) -> (T, T) {
    (v.sin(), v.cos())
}

#[inline]
fn cos1<T: Scalar>(v: T) -> (T, T) {
    (v.cos(), -v.sin())
}

/// GELU with the tanh approximation and its derivative.
#[inline]
fn gelu1<T: Scalar>(v: T) -> (T, T) {
    let k: T = c(0.797_884_560_802_865_4); // sqrt(2 / pi)
    let a: T = c(0.044_715);
    let half: T = c(0.5);
    let u = k * (v + a * v * v * v);
    let t = u.tanh();
    let y = half * v * (T::one() + t);
    let d = half * (T::one() + t)
        + half * v * (T::one() - t * t) * k * (T::one() + c::<T>(3.0) * a * v * v);
    (y, d)
}

macro_rules! unary_elementwise {
    ($name:ident, $pb:ident, $vjp:ident, $fwd:ident, $jvp:ident, $f:expr, $doc:literal) => {
        #[doc = $doc]
        pub fn $name<M: Elements>(x: &M) -> M
        where
            M::Elem: Scalar,
        {
            let f = $f;
            x.map_elems(|v| f(v).0)
        }

        #[doc = concat!("[`", stringify!($name), "`] and its pullback `dx = seed .* f'(x)`; the closure, called as `pb(&x, seed, need)`, owns `f'(x)` from the forward pass.")]
        pub fn $pb<M: Elements>(
            x: &M,
        ) -> (M, impl FnOnce(&M, M, [bool; 1]) -> (M,) + use<M>)
        where
            M::Elem: Scalar,
        {
            let (y, d) = value_and_slope(x, $f);
            (y, move |x: &M, seed: M, need: [bool; 1]| {
                assert_eq!(
                    x.dims(),
                    d.dims(),
                    concat!(stringify!($name), ": x handed to the pullback has another shape than the forward's")
                );
                if !need[0] {
                    return (M::empty(),);
                }
                (scale_seed(stringify!($name), seed, &d),)
            })
        }

        #[doc = concat!("[`", stringify!($name), "`]'s value and its gradient `seed .* f'(x)`.")]
        pub fn $vjp<M: Elements>(x: &M, seed: M) -> (M, M)
        where
            M::Elem: Scalar,
        {
            let (y, pb) = $pb(x);
            (y, pb(x, seed, [true]).0)
        }

        #[doc = concat!("[`", stringify!($name), "`] in the forward protocol: the value and the tangent `dx .* f'(x)`.")]
        pub fn $fwd<M: Elements>(x: &M, dx: Option<&M>) -> (M, M)
        where
            M::Elem: Scalar,
        {
            let (y, d) = value_and_slope(x, $f);
            let t = tangent(stringify!($name), &d, dx);
            (y, t)
        }

        #[doc = concat!("[`", stringify!($name), "`] and its tangent along `dx`.")]
        pub fn $jvp<M: Elements>(x: &M, dx: &M) -> (M, M)
        where
            M::Elem: Scalar,
        {
            $fwd(x, Some(dx))
        }
    };
}

unary_elementwise!(
    exp,
    exp_pullback,
    exp_vjp,
    exp_fwd,
    exp_jvp,
    exp1::<M::Elem>,
    "`e^x` element-wise; derivative `e^x`."
);
unary_elementwise!(
    ln,
    ln_pullback,
    ln_vjp,
    ln_fwd,
    ln_jvp,
    ln1::<M::Elem>,
    "The natural logarithm element-wise; derivative `1 / x` (NaN for `x < 0`, as `f64::ln`)."
);
unary_elementwise!(
    sqrt,
    sqrt_pullback,
    sqrt_vjp,
    sqrt_fwd,
    sqrt_jvp,
    sqrt1::<M::Elem>,
    "The square root element-wise; derivative `1 / (2 sqrt(x))` (infinite at 0)."
);
unary_elementwise!(
    abs,
    abs_pullback,
    abs_vjp,
    abs_fwd,
    abs_jvp,
    abs1::<M::Elem>,
    "`|x|` element-wise; derivative `sign(x)`, and 0 at 0 (PyTorch's convention)."
);
unary_elementwise!(
    sin,
    sin_pullback,
    sin_vjp,
    sin_fwd,
    sin_jvp,
    sin1::<M::Elem>,
    "`sin(x)` element-wise; derivative `cos(x)`."
);
unary_elementwise!(
    cos,
    cos_pullback,
    cos_vjp,
    cos_fwd,
    cos_jvp,
    cos1::<M::Elem>,
    "`cos(x)` element-wise; derivative `-sin(x)`."
);
unary_elementwise!(
    softplus,
    softplus_pullback,
    softplus_vjp,
    softplus_fwd,
    softplus_jvp,
    softplus1::<M::Elem>,
    "`softplus(x) = ln(1 + e^x)` element-wise, evaluated without overflow; derivative `sigmoid(x)`."
);
unary_elementwise!(
    gelu,
    gelu_pullback,
    gelu_vjp,
    gelu_fwd,
    gelu_jvp,
    gelu1::<M::Elem>,
    "GELU element-wise, with the tanh approximation (PyTorch's `gelu(x, approximate=\"tanh\")`): `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`; its exact derivative."
);

/// `x^n` element-wise for an integer constant `n`; derivative `n x^(n-1)` (0 for `n = 0`).
pub fn powi<M: Elements>(x: &M, n: i32) -> M
where
    M::Elem: Scalar,
{
    x.map_elems(|v| powi1(v, n).0)
}

/// `x^n` and `n x^(n-1)` for one element.
fn powi1<T: Scalar>(v: T, n: i32) -> (T, T) {
    let d = if n == 0 {
        T::zero()
    } else {
        c::<T>(f64::from(n)) * v.powi(n - 1)
    };
    (v.powi(n), d)
}

/// [`powi`] and its pullback `dx = seed .* n x^(n-1)`, `()` for the constant `n`; called as
/// `pb(&x, n, seed, need)`.
pub fn powi_pullback<M: Elements>(
    x: &M,
    n: i32,
) -> (M, impl FnOnce(&M, i32, M, [bool; 2]) -> (M, ()) + use<M>)
where
    M::Elem: Scalar,
{
    let (y, d) = value_and_slope(x, |v| powi1(v, n));
    (y, move |x: &M, _n: i32, seed: M, need: [bool; 2]| {
        assert_eq!(
            x.dims(),
            d.dims(),
            "powi: x handed to the pullback has another shape than the forward's"
        );
        if !need[0] {
            return (M::empty(), ());
        }
        (scale_seed("powi", seed, &d), ())
    })
}

/// [`powi`]'s value and its gradient with respect to `x` (`n` is constant).
pub fn powi_vjp<M: Elements>(x: &M, n: i32, seed: M) -> (M, M)
where
    M::Elem: Scalar,
{
    let (y, pb) = powi_pullback(x, n);
    (y, pb(x, n, seed, [true, false]).0)
}

/// [`powi`] in the forward protocol (`n` is a constant).
pub fn powi_fwd<M: Elements>(
    x: &M,
    n: i32,
    dx: Option<&M>,
    _dn: Option<ConstantParameter>,
) -> (M, M)
where
    M::Elem: Scalar,
{
    let (y, d) = value_and_slope(x, |v| powi1(v, n));
    let t = tangent("powi", &d, dx);
    (y, t)
}

/// [`powi`] and its tangent along `dx`.
pub fn powi_jvp<M: Elements>(x: &M, n: i32, dx: &M) -> (M, M)
where
    M::Elem: Scalar,
{
    powi_fwd(x, n, Some(dx), None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::{DMatrix, DVector};

    /// Central differences of `sum(w .* f(x))` against the pullback with seed `w`.
    fn check<M: Elements<Elem = f64>>(
        name: &str,
        f: impl Fn(&M) -> M,
        pb: impl Fn(&M, M) -> M,
        x: &M,
    ) {
        let w = x.map_elems(|v| 0.3 + 0.1 * v);
        let g = pb(x, w.clone());
        for i in 0..x.elems().len() {
            let h = 1e-6;
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp.elems_mut()[i] += h;
            xm.elems_mut()[i] -= h;
            let dot = |y: &M| {
                y.elems()
                    .iter()
                    .zip(w.elems())
                    .map(|(a, b)| a * b)
                    .sum::<f64>()
            };
            let want = (dot(&f(&xp)) - dot(&f(&xm))) / (2.0 * h);
            let got = g.elems()[i];
            assert!(
                (got - want).abs() < 1e-6 * (1.0 + want.abs()),
                "{name}[{i}]: {got} vs {want}"
            );
        }
    }

    #[test]
    fn pullbacks_match_finite_differences() {
        let x = DMatrix::from_row_slice(2, 3, &[0.3, -1.2, 2.0, 0.7, -0.4, 1.5]);
        let p = x.map(|v: f64| v.abs() + 0.2);
        check("exp", exp, |x, s| exp_vjp(x, s).1, &x);
        check("ln", ln, |x, s| ln_vjp(x, s).1, &p);
        check("sqrt", sqrt, |x, s| sqrt_vjp(x, s).1, &p);
        check("abs", abs, |x, s| abs_vjp(x, s).1, &x);
        check("sin", sin, |x, s| sin_vjp(x, s).1, &x);
        check("cos", cos, |x, s| cos_vjp(x, s).1, &x);
        check("softplus", softplus, |x, s| softplus_vjp(x, s).1, &x);
        check("gelu", gelu, |x, s| gelu_vjp(x, s).1, &x);
        check("powi", |x| powi(x, 3), |x, s| powi_vjp(x, 3, s).1, &x);
        let v = DVector::from_vec(vec![0.5, -2.0, 1.0]);
        check("gelu (vector)", gelu, |x, s| gelu_vjp(x, s).1, &v);
        check(
            "softplus (vector)",
            softplus,
            |x, s| softplus_vjp(x, s).1,
            &v,
        );
    }

    #[test]
    fn values_follow_the_definitions() {
        let x = DVector::from_vec(vec![-800.0f64, -1.0, 0.0, 2.0, 800.0]);
        let s = softplus(&x);
        assert_eq!(s[0], 0.0);
        assert!((s[1] - (1.0 + (-1.0f64).exp()).ln()).abs() < 1e-15);
        assert!((s[2] - 2.0f64.ln()).abs() < 1e-15);
        assert_eq!(s[4], 800.0);
        let g = gelu(&DVector::from_vec(vec![1.0f64]));
        // 0.5 (1 + tanh(sqrt(2/pi) 1.044715))
        assert!((g[0] - 0.841_191_990_607_2).abs() < 1e-9, "{}", g[0]);
        let t = exp_fwd(&x.rows(1, 3).into_owned(), None).1;
        assert_eq!(t, DVector::zeros(3));
    }

    #[test]
    fn lazy_zero_seed_gives_lazy_zero() {
        let x = DMatrix::from_element(2, 2, 1.0f32);
        let (_, pb) = exp_pullback(&x);
        assert!(pb(&x, DMatrix::zeros(0, 0), [true]).0.is_empty());
    }
}

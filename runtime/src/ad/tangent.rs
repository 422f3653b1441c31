//! Tangent rules: what the forward mode (`#[differentiable(forward)]`, `NAME_jvp`) calls.
//!
//! A tangent has the type of its value (`f64` for `f64`, `DMatrix<f32>` for a matrix, a
//! parameter struct for a parameter struct). Each rule maps the primal inputs (and the
//! output `y` where that is cheaper) and the input tangents to the output tangent. Linear
//! operations (`+`, `-`, unary `-`, `transpose`, `sum`, `mean`, indexing, field access) apply
//! to tangents as they are; the generated code calls them directly on the tangents.
//!
//! Conventions at non-differentiable points are those of the reverse rules
//! ([`super::scalar`]), so that `<u, J v>` computed forward and backward agree: `abs` has
//! derivative 0 at 0, `max`/`min` follow the first argument on a tie, `signum` has
//! derivative 0, `powf(x, p)` has `d/dp = 0` at `x = 0`, `atan2` and `hypot` are flat at the
//! origin. A term whose input tangent is exactly zero contributes exactly zero (so a
//! constant exponent `p` of `powf(x, p)` at `x < 0` does not turn the tangent into NaN).

use super::Differentiable;
use super::linalg::{AddSub, Div2, Elementwise, Mul2, Scalar, TnProduct, matmul};
use super::scalar::Float;
use nalgebra::DMatrix;

/// The slot type of a constant parameter in a `NAME_fwd` call: the caller passes `None`.
/// Passing a tangent there (`Some(..)`) is a type error that names this type: the argument
/// carries a tangent but the callee treats that parameter as a constant (list it in the
/// callee's `wrt(..)`, or pass a constant).
#[derive(Clone, Copy, Debug)]
pub struct ConstantParameter;

/// A zero tangent of `x`'s shape (a zero matrix of its size, zeros for each element of a
/// slice, a parameter struct of zero tensors).
#[inline(always)]
pub fn zero_tangent<T: Differentiable + ?Sized>(x: &T) -> T::Grad {
    x.finalize(x.lazy_zero())
}

// ----- arithmetic -----

/// `d(a b) = da b + a db` (scalars, scalar times matrix, matrix products).
#[inline(always)]
pub fn mul_jvp<A, B>(a: &A, da: &A, b: &B, db: &B) -> A::Output
where
    A: Mul2<B> + ?Sized,
    B: Differentiable + ?Sized,
    A::Output: AddSub<Output = A::Output>,
{
    let l = Mul2::mul(a, db);
    let r = Mul2::mul(da, b);
    AddSub::add(&r, &l)
}

/// The tangent of `a / b` along `db` alone: `-a db / b²`.
pub trait DivTangent<Rhs: Differentiable + ?Sized>: Div2<Rhs> {
    /// `-self * drhs / rhs²`
    fn div_jvp_rhs(&self, rhs: &Rhs, drhs: &Rhs) -> Self::Output;
}

macro_rules! div_tangents {
    ($($t:ident),*) => {$(
        impl DivTangent<$t> for $t {
            #[inline(always)]
            fn div_jvp_rhs(&self, rhs: &$t, drhs: &$t) -> $t {
                -(*self * *drhs / (*rhs * *rhs))
            }
        }
        impl DivTangent<$t> for DMatrix<$t> {
            fn div_jvp_rhs(&self, rhs: &$t, drhs: &$t) -> DMatrix<$t> {
                self * (-*drhs / (*rhs * *rhs))
            }
        }
    )*};
}
div_tangents!(f32, f64);

/// The tangent of `a / b` along `db` (with `a` constant): `-a db / b²`.
#[inline(always)]
pub fn div_jvp_rhs<A, B>(a: &A, b: &B, db: &B) -> A::Output
where
    A: DivTangent<B> + ?Sized,
    B: Differentiable + ?Sized,
{
    a.div_jvp_rhs(b, db)
}

/// `d(a / b) = da / b - a db / b²`.
#[inline(always)]
pub fn div_jvp<A, B>(a: &A, da: &A, b: &B, db: &B) -> A::Output
where
    A: DivTangent<B> + ?Sized,
    B: Differentiable + ?Sized,
    A::Output: AddSub<Output = A::Output>,
{
    AddSub::add(&Div2::div(da, b), &a.div_jvp_rhs(b, db))
}

/// `d(a bᵀ) = da bᵀ + a dbᵀ`, neither transpose materialised.
pub fn matmul_nt_jvp<T: Scalar>(
    a: &DMatrix<T>,
    da: &DMatrix<T>,
    b: &DMatrix<T>,
    db: &DMatrix<T>,
) -> DMatrix<T> {
    let mut c = matmul(da, false, b, true);
    c += matmul(a, false, db, true);
    c
}

/// `d(aᵀ b) = daᵀ b + aᵀ db`, neither transpose materialised (`b` a matrix or a vector).
pub fn matmul_tn_jvp<A: TnProduct<B>, B>(a: &A, da: &A, b: &B, db: &B) -> A::Output {
    a.tn_jvp(da, b, db)
}

/// `d(a .* b) = da .* b + a .* db`.
pub fn component_mul_jvp<M>(a: &M, da: &M, b: &M, db: &M) -> M
where
    M: Elementwise + AddSub<Output = M>,
{
    AddSub::add(&M::component_mul(da, b), &M::component_mul(a, db))
}

// ----- scalar math functions: NAME_jvp(x, y, dx) with y = NAME(x) -----

/// `d * f()`, and exactly zero when `d` is zero (whatever `f()` is: an inactive argument's
/// tangent never brings an infinite or NaN partial derivative in).
#[inline(always)]
fn term<T: Float>(d: T, f: impl FnOnce() -> T) -> T {
    if d == T::ZERO { T::ZERO } else { d * f() }
}

/// `x as f64`: the tangent, converted.
#[inline(always)]
pub fn as_f64_jvp<S: Float>(_x: S, _y: f64, dx: S) -> f64 {
    num_traits::ToPrimitive::to_f64(&dx).unwrap()
}

/// `x as f32`: the tangent, converted.
#[inline(always)]
pub fn as_f32_jvp<S: Float>(_x: S, _y: f32, dx: S) -> f32 {
    num_traits::ToPrimitive::to_f32(&dx).unwrap()
}

/// d sin x = cos x dx
#[inline(always)]
pub fn sin_jvp<T: Float>(x: T, _y: T, dx: T) -> T {
    dx * x.cos()
}
/// d cos x = -sin x dx
#[inline(always)]
pub fn cos_jvp<T: Float>(x: T, _y: T, dx: T) -> T {
    -(dx * x.sin())
}
/// d tan x = (1 + y²) dx
#[inline(always)]
pub fn tan_jvp<T: Float>(_x: T, y: T, dx: T) -> T {
    dx * (T::ONE + y * y)
}
/// d asin x = dx / sqrt(1 - x²)
#[inline(always)]
pub fn asin_jvp<T: Float>(x: T, _y: T, dx: T) -> T {
    dx / (T::ONE - x * x).sqrt()
}
/// d acos x = -dx / sqrt(1 - x²)
#[inline(always)]
pub fn acos_jvp<T: Float>(x: T, _y: T, dx: T) -> T {
    -(dx / (T::ONE - x * x).sqrt())
}
/// d atan x = dx / (1 + x²)
#[inline(always)]
pub fn atan_jvp<T: Float>(x: T, _y: T, dx: T) -> T {
    dx / (T::ONE + x * x)
}
/// d atan2(a, b) = (b da - a db) / (a² + b²); 0 at the origin
#[inline(always)]
pub fn atan2_jvp<T: Float>(a: T, b: T, da: T, db: T) -> T {
    let r2 = a * a + b * b;
    if r2 == T::ZERO {
        return T::ZERO;
    }
    (b * da - a * db) / r2
}
/// d sinh x = cosh x dx
#[inline(always)]
pub fn sinh_jvp<T: Float>(x: T, _y: T, dx: T) -> T {
    dx * x.cosh()
}
/// d cosh x = sinh x dx
#[inline(always)]
pub fn cosh_jvp<T: Float>(x: T, _y: T, dx: T) -> T {
    dx * x.sinh()
}
/// d tanh x = (1 - y²) dx
#[inline(always)]
pub fn tanh_jvp<T: Float>(_x: T, y: T, dx: T) -> T {
    dx * (T::ONE - y * y)
}
/// d exp x = y dx
#[inline(always)]
pub fn exp_jvp<T: Float>(_x: T, y: T, dx: T) -> T {
    dx * y
}
/// d 2^x = y ln 2 dx
#[inline(always)]
pub fn exp2_jvp<T: Float>(_x: T, y: T, dx: T) -> T {
    dx * y * T::LN_2
}
/// d ln x = dx / x
#[inline(always)]
pub fn ln_jvp<T: Float>(x: T, _y: T, dx: T) -> T {
    dx / x
}
/// d log10 x = dx / (x ln 10)
#[inline(always)]
pub fn log10_jvp<T: Float>(x: T, _y: T, dx: T) -> T {
    dx / (x * T::LN_10)
}
/// d log2 x = dx / (x ln 2)
#[inline(always)]
pub fn log2_jvp<T: Float>(x: T, _y: T, dx: T) -> T {
    dx / (x * T::LN_2)
}
/// log_b x = ln x / ln b: dx / (x ln b) - ln x db / (b ln² b)
#[inline(always)]
pub fn log_jvp<T: Float>(x: T, b: T, dx: T, db: T) -> T {
    let lb = b.ln();
    term(dx, || T::ONE / (x * lb)) + term(db, || -(x.ln() / (b * lb * lb)))
}
/// d sqrt x = dx / (2y)
#[inline(always)]
pub fn sqrt_jvp<T: Float>(_x: T, y: T, dx: T) -> T {
    dx / (y + y)
}
/// d cbrt x = dx / (3y²)
#[inline(always)]
pub fn cbrt_jvp<T: Float>(_x: T, y: T, dx: T) -> T {
    dx / (T::from_i32(3) * y * y)
}
/// d (e^x - 1) = (y + 1) dx
#[inline(always)]
pub fn exp_m1_jvp<T: Float>(_x: T, y: T, dx: T) -> T {
    dx * (y + T::ONE)
}
/// d ln(1 + x) = dx / (1 + x)
#[inline(always)]
pub fn ln_1p_jvp<T: Float>(x: T, _y: T, dx: T) -> T {
    dx / (T::ONE + x)
}
/// d asinh x = dx / sqrt(x² + 1)
#[inline(always)]
pub fn asinh_jvp<T: Float>(x: T, _y: T, dx: T) -> T {
    dx / (x * x + T::ONE).sqrt()
}
/// d acosh x = dx / sqrt(x² - 1)
#[inline(always)]
pub fn acosh_jvp<T: Float>(x: T, _y: T, dx: T) -> T {
    dx / (x * x - T::ONE).sqrt()
}
/// d atanh x = dx / (1 - x²)
#[inline(always)]
pub fn atanh_jvp<T: Float>(x: T, _y: T, dx: T) -> T {
    dx / (T::ONE - x * x)
}
/// d x^n = n x^(n-1) dx (integer constant n); 0 for n = 0
#[inline(always)]
pub fn powi_jvp<T: Float>(x: T, n: i32, dx: T) -> T {
    if n == 0 {
        T::ZERO
    } else {
        dx * T::from_i32(n) * x.powi(n - 1)
    }
}
/// d x^p = p x^(p-1) dx + y ln x dp; the first term 0 for p = 0, the second 0 at x = 0
#[inline(always)]
pub fn powf_jvp<T: Float>(x: T, p: T, y: T, dx: T, dp: T) -> T {
    let tx = if p == T::ZERO {
        T::ZERO
    } else {
        term(dx, || p * x.powf(p - T::ONE))
    };
    let tp = if x == T::ZERO {
        T::ZERO
    } else {
        term(dp, || y * x.ln())
    };
    tx + tp
}
/// d |x| = sign(x) dx, and 0 at 0
#[inline(always)]
pub fn abs_jvp<T: Float>(x: T, _y: T, dx: T) -> T {
    if x > T::ZERO {
        dx
    } else if x < T::ZERO {
        -dx
    } else {
        T::ZERO
    }
}
/// max(a, b) follows the larger argument, `a` on a tie (and when `b` is NaN)
#[inline(always)]
pub fn max_jvp<T: Float>(a: T, b: T, da: T, db: T) -> T {
    if a >= b || b.is_nan() { da } else { db }
}
/// min(a, b) follows the smaller argument, `a` on a tie (and when `b` is NaN)
#[inline(always)]
pub fn min_jvp<T: Float>(a: T, b: T, da: T, db: T) -> T {
    if a <= b || b.is_nan() { da } else { db }
}
/// d hypot(a, b) = (a da + b db) / y; 0 at the origin
#[inline(always)]
pub fn hypot_jvp<T: Float>(a: T, b: T, y: T, da: T, db: T) -> T {
    if y == T::ZERO {
        T::ZERO
    } else {
        (a * da + b * db) / y
    }
}
/// d (1/x) = -y² dx
#[inline(always)]
pub fn recip_jvp<T: Float>(_x: T, y: T, dx: T) -> T {
    -(dx * y * y)
}
/// d (a b + c) = b da + a db + dc
#[inline(always)]
pub fn mul_add_jvp<T: Float>(a: T, b: T, da: T, db: T, dc: T) -> T {
    da * b + a * db + dc
}
/// signum: derivative 0 everywhere
#[inline(always)]
pub fn signum_jvp<T: Float>(_x: T, _y: T, _dx: T) -> T {
    T::ZERO
}

#[cfg(test)]
#[allow(clippy::type_complexity)]
mod tests {
    use super::*;
    use nalgebra::DVector;

    /// Central difference of `f` at `x` along `dx`.
    fn fd(f: impl Fn(f64) -> f64, x: f64, dx: f64) -> f64 {
        let h = 1e-6;
        (f(x + h * dx) - f(x - h * dx)) / (2.0 * h)
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-6 * (1.0 + a.abs().max(b.abs()))
    }

    #[test]
    fn unary_rules_match_finite_differences() {
        type Rule = fn(f64, f64, f64) -> f64;
        let cases: &[(&str, fn(f64) -> f64, Rule, f64)] = &[
            ("sin", f64::sin, sin_jvp, 0.7),
            ("cos", f64::cos, cos_jvp, 0.7),
            ("tan", f64::tan, tan_jvp, 0.7),
            ("asin", f64::asin, asin_jvp, 0.3),
            ("acos", f64::acos, acos_jvp, 0.3),
            ("atan", f64::atan, atan_jvp, 1.3),
            ("sinh", f64::sinh, sinh_jvp, 0.7),
            ("cosh", f64::cosh, cosh_jvp, 0.7),
            ("tanh", f64::tanh, tanh_jvp, 0.7),
            ("exp", f64::exp, exp_jvp, 0.7),
            ("exp2", f64::exp2, exp2_jvp, 0.7),
            ("ln", f64::ln, ln_jvp, 1.7),
            ("log10", f64::log10, log10_jvp, 1.7),
            ("log2", f64::log2, log2_jvp, 1.7),
            ("sqrt", f64::sqrt, sqrt_jvp, 1.7),
            ("cbrt", f64::cbrt, cbrt_jvp, 1.7),
            ("abs", f64::abs, abs_jvp, -1.7),
            ("recip", f64::recip, recip_jvp, 1.7),
            ("signum", f64::signum, signum_jvp, 1.7),
            ("exp_m1", f64::exp_m1, exp_m1_jvp, 0.7),
            ("ln_1p", f64::ln_1p, ln_1p_jvp, 0.7),
            ("asinh", f64::asinh, asinh_jvp, -0.7),
            ("acosh", f64::acosh, acosh_jvp, 1.7),
            ("atanh", f64::atanh, atanh_jvp, 0.6),
        ];
        for &(name, f, rule, x) in cases {
            for dx in [1.0, -0.3] {
                let got = rule(x, f(x), dx);
                let want = fd(f, x, dx);
                assert!(close(got, want), "{name}: {got} vs {want}");
            }
        }
        // A wrong rule is caught by the same check.
        assert!(!close(sin_jvp(0.7, 0.0, 1.0), fd(f64::cos, 0.7, 1.0)));
    }

    #[test]
    fn binary_rules_match_finite_differences() {
        let (a, b, da, db) = (1.3, 0.6, 0.4, -0.9);
        let along = |f: &dyn Fn(f64, f64) -> f64| {
            let h = 1e-6;
            (f(a + h * da, b + h * db) - f(a - h * da, b - h * db)) / (2.0 * h)
        };
        assert!(close(atan2_jvp(a, b, da, db), along(&|a, b| a.atan2(b))));
        assert!(close(log_jvp(a, b + 2.0, da, db), {
            let h = 1e-6;
            ((a + h * da).log(b + 2.0 + h * db) - (a - h * da).log(b + 2.0 - h * db)) / (2.0 * h)
        }));
        assert!(close(
            powf_jvp(a, b, a.powf(b), da, db),
            along(&|a, b| a.powf(b))
        ));
        assert!(close(
            hypot_jvp(a, b, a.hypot(b), da, db),
            along(&|a, b| a.hypot(b))
        ));
        assert!(close(max_jvp(a, b, da, db), along(&|a, b| a.max(b))));
        assert!(close(min_jvp(a, b, da, db), along(&|a, b| a.min(b))));
        assert!(close(powi_jvp(a, 3, da), fd(|x| x.powi(3), a, da)));
        let c = 0.25;
        let dc = 0.5;
        let h = 1e-6;
        let fdm = ((a + h * da).mul_add(b + h * db, c + h * dc)
            - (a - h * da).mul_add(b - h * db, c - h * dc))
            / (2.0 * h);
        assert!(close(mul_add_jvp(a, b, da, db, dc), fdm));
    }

    #[test]
    fn conventions_at_kinks_and_zero_tangents() {
        assert_eq!(abs_jvp(0.0, 0.0, 1.0), 0.0);
        assert_eq!(max_jvp(1.0, 1.0, 2.0, 3.0), 2.0);
        assert_eq!(min_jvp(1.0, 1.0, 2.0, 3.0), 2.0);
        assert_eq!(atan2_jvp(0.0, 0.0, 1.0, 1.0), 0.0);
        assert_eq!(hypot_jvp(0.0, 0.0, 0.0, 1.0, 1.0), 0.0);
        // A constant exponent at a negative base: the tangent is not NaN.
        let x = -2.0f64;
        let t = powf_jvp(x, 2.0, x.powf(2.0), 1.0, 0.0);
        assert!(close(t, -4.0), "{t}");
        assert_eq!(powf_jvp(0.0f64, 0.5, 0.0, 0.0, 1.0), 0.0);
    }

    #[test]
    fn products_and_quotients() {
        let a = DMatrix::from_row_slice(2, 3, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let da = DMatrix::from_row_slice(2, 3, &[0.5, -1.0, 0.0, 2.0, 1.0, -0.5]);
        let b = DMatrix::from_row_slice(3, 2, &[1.0, -2.0, 0.5, 1.0, 3.0, 0.0]);
        let db = DMatrix::from_row_slice(3, 2, &[0.1, 0.2, 0.3, -0.4, 0.5, 0.6]);
        let h = 1e-6;
        let fd_mat = |f: &dyn Fn(&DMatrix<f64>, &DMatrix<f64>) -> DMatrix<f64>,
                      a: &DMatrix<f64>,
                      da: &DMatrix<f64>,
                      b: &DMatrix<f64>,
                      db: &DMatrix<f64>| {
            (f(&(a + da * h), &(b + db * h)) - f(&(a - da * h), &(b - db * h))) / (2.0 * h)
        };
        let want = fd_mat(&|a, b| a * b, &a, &da, &b, &db);
        assert!((mul_jvp(&a, &da, &b, &db) - &want).amax() < 1e-6);
        let bt = b.transpose();
        let dbt = db.transpose();
        let got = matmul_nt_jvp(&a, &da, &bt, &dbt);
        assert!((got - &want).amax() < 1e-6);
        let at = a.transpose();
        let dat = da.transpose();
        let got = matmul_tn_jvp(&at, &dat, &b, &db);
        assert!((got - &want).amax() < 1e-6);
        // A wrong tangent (one term only) is caught.
        assert!((a.clone() * &db - &want).amax() > 1e-3);

        let c = a.clone() * 0.5;
        let dc = da.clone() * 2.0;
        let want = fd_mat(&|a, b| a.component_mul(b), &a, &da, &c, &dc);
        assert!((component_mul_jvp(&a, &da, &c, &dc) - want).amax() < 1e-6);

        // Scalars: a b, a / b; a matrix over a scalar.
        let (x, dx, y, dy) = (1.5f64, 0.3, -0.7, 0.9);
        assert!(close(mul_jvp(&x, &dx, &y, &dy), dx * y + x * dy));
        let want = ((x + h * dx) / (y + h * dy) - (x - h * dx) / (y - h * dy)) / (2.0 * h);
        assert!(close(div_jvp(&x, &dx, &y, &dy), want));
        assert!(close(div_jvp_rhs(&x, &y, &dy), want - dx / y));
        let m = div_jvp(&a, &da, &y, &dy);
        let want = ((&a + &da * h) / (y + h * dy) - (&a - &da * h) / (y - h * dy)) / (2.0 * h);
        assert!((m - want).amax() < 1e-6);
        // Scalar times matrix.
        let s = mul_jvp(&x, &dx, &a, &da);
        let want = &a * dx + &da * x;
        assert!((s - want).amax() < 1e-12);
    }

    #[test]
    fn zero_tangents_have_the_shape_of_the_value() {
        let m = DMatrix::<f32>::from_element(3, 2, 1.0);
        assert_eq!(zero_tangent(&m), DMatrix::zeros(3, 2));
        let v = DVector::<f64>::from_element(4, 1.0);
        assert_eq!(zero_tangent(&v), DVector::zeros(4));
        let s: &[f64] = &[1.0, 2.0];
        assert_eq!(zero_tangent(s), vec![0.0, 0.0]);
        assert_eq!(zero_tangent(&[1.0f32; 3]), [0.0; 3]);
        assert_eq!(zero_tangent(&2.5f64), 0.0);
    }
}

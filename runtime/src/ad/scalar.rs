//! Derivative rules of the scalar math functions, generic over `f32` and `f64`.
//!
//! Each `NAME_vjp` takes the primal inputs, the primal output `y` where the rule is cheaper
//! with it, and the output adjoint `g`, and returns the input adjoint(s). Conventions at
//! points where a function is not differentiable follow PyTorch: `abs` has derivative 0 at
//! 0, `max`/`min` send the whole gradient to the first argument on a tie, `signum` has
//! derivative 0 everywhere.

use core::ops::{Add, Div, Mul, Neg, Sub};

/// `-g`, as a function: generated code negates adjoints through it, so that rustc need not
/// know their type at that point (an adjoint computed from values read back from a loop's tape).
#[inline(always)]
pub fn neg_grad<T: Neg<Output = T>>(g: T) -> T {
    -g
}

/// The float operations the rules need (`num_traits::Float`'s methods, and a few constants);
/// implemented for `f32` and `f64`.
pub trait Float:
    num_traits::Float
    + Copy
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
{
    /// 0
    const ZERO: Self;
    /// 1
    const ONE: Self;
    /// ln 2
    const LN_2: Self;
    /// ln 10
    const LN_10: Self;
    /// Converts a small integer exactly.
    fn from_i32(n: i32) -> Self;
}

macro_rules! float_impl {
    ($t:ident) => {
        impl Float for $t {
            const ZERO: $t = 0.0;
            const ONE: $t = 1.0;
            const LN_2: $t = core::$t::consts::LN_2;
            const LN_10: $t = core::$t::consts::LN_10;
            #[inline(always)]
            fn from_i32(n: i32) -> $t {
                n as $t
            }
        }
    };
}
float_impl!(f32);
float_impl!(f64);

/// d sin x = cos x
#[inline(always)]
pub fn sin_vjp<T: Float>(x: T, g: T) -> T {
    g * x.cos()
}
/// d cos x = -sin x
#[inline(always)]
pub fn cos_vjp<T: Float>(x: T, g: T) -> T {
    -(g * x.sin())
}
/// d tan x = 1 + tan² x = 1 + y²
#[inline(always)]
pub fn tan_vjp<T: Float>(y: T, g: T) -> T {
    g * (T::ONE + y * y)
}
/// d asin x = 1 / sqrt(1 - x²)
#[inline(always)]
pub fn asin_vjp<T: Float>(x: T, g: T) -> T {
    g / (T::ONE - x * x).sqrt()
}
/// d acos x = -1 / sqrt(1 - x²)
#[inline(always)]
pub fn acos_vjp<T: Float>(x: T, g: T) -> T {
    -(g / (T::ONE - x * x).sqrt())
}
/// d atan x = 1 / (1 + x²)
#[inline(always)]
pub fn atan_vjp<T: Float>(x: T, g: T) -> T {
    g / (T::ONE + x * x)
}
/// atan2(a, b): d/da = b / (a² + b²), d/db = -a / (a² + b²); both 0 at the origin
#[inline(always)]
pub fn atan2_vjp<T: Float>(a: T, b: T, g: T) -> (T, T) {
    let r2 = a * a + b * b;
    if r2 == T::ZERO {
        return (T::ZERO, T::ZERO);
    }
    (g * b / r2, -(g * a / r2))
}
/// d sinh x = cosh x
#[inline(always)]
pub fn sinh_vjp<T: Float>(x: T, g: T) -> T {
    g * x.cosh()
}
/// d cosh x = sinh x
#[inline(always)]
pub fn cosh_vjp<T: Float>(x: T, g: T) -> T {
    g * x.sinh()
}
/// d tanh x = 1 - tanh² x = 1 - y²
#[inline(always)]
pub fn tanh_vjp<T: Float>(y: T, g: T) -> T {
    g * (T::ONE - y * y)
}
/// d exp x = exp x = y
#[inline(always)]
pub fn exp_vjp<T: Float>(y: T, g: T) -> T {
    g * y
}
/// d 2^x = 2^x ln 2 = y ln 2
#[inline(always)]
pub fn exp2_vjp<T: Float>(y: T, g: T) -> T {
    g * y * T::LN_2
}
/// d ln x = 1 / x
#[inline(always)]
pub fn ln_vjp<T: Float>(x: T, g: T) -> T {
    g / x
}
/// d log10 x = 1 / (x ln 10)
#[inline(always)]
pub fn log10_vjp<T: Float>(x: T, g: T) -> T {
    g / (x * T::LN_10)
}
/// d log2 x = 1 / (x ln 2)
#[inline(always)]
pub fn log2_vjp<T: Float>(x: T, g: T) -> T {
    g / (x * T::LN_2)
}
/// log_b x = ln x / ln b: d/dx = 1 / (x ln b), d/db = -ln x / (b ln² b)
#[inline(always)]
pub fn log_vjp<T: Float>(x: T, b: T, g: T) -> (T, T) {
    let lb = b.ln();
    (g / (x * lb), -(g * x.ln() / (b * lb * lb)))
}
/// d sqrt x = 1 / (2 sqrt x) = 1 / (2y)
#[inline(always)]
pub fn sqrt_vjp<T: Float>(y: T, g: T) -> T {
    g / (y + y)
}
/// d cbrt x = 1 / (3 cbrt² x) = 1 / (3y²)
#[inline(always)]
pub fn cbrt_vjp<T: Float>(y: T, g: T) -> T {
    g / (T::from_i32(3) * y * y)
}
/// d (e^x - 1) = e^x = y + 1
#[inline(always)]
pub fn exp_m1_vjp<T: Float>(y: T, g: T) -> T {
    g * (y + T::ONE)
}
/// d ln(1 + x) = 1 / (1 + x)
#[inline(always)]
pub fn ln_1p_vjp<T: Float>(x: T, g: T) -> T {
    g / (T::ONE + x)
}
/// d asinh x = 1 / sqrt(x² + 1)
#[inline(always)]
pub fn asinh_vjp<T: Float>(x: T, g: T) -> T {
    g / (x * x + T::ONE).sqrt()
}
/// d acosh x = 1 / sqrt(x² - 1)
#[inline(always)]
pub fn acosh_vjp<T: Float>(x: T, g: T) -> T {
    g / (x * x - T::ONE).sqrt()
}
/// d atanh x = 1 / (1 - x²)
#[inline(always)]
pub fn atanh_vjp<T: Float>(x: T, g: T) -> T {
    g / (T::ONE - x * x)
}
/// d x^n = n x^(n-1) (integer n is a constant); 0 for n = 0
#[inline(always)]
pub fn powi_vjp<T: Float>(x: T, n: i32, g: T) -> T {
    if n == 0 {
        T::ZERO
    } else {
        g * T::from_i32(n) * x.powi(n - 1)
    }
}
/// x^p: d/dx = p x^(p-1), d/dp = x^p ln x = y ln x (0 where x = 0, as PyTorch does)
#[inline(always)]
pub fn powf_vjp<T: Float>(x: T, p: T, y: T, g: T) -> (T, T) {
    let gx = if p == T::ZERO {
        T::ZERO
    } else {
        g * p * x.powf(p - T::ONE)
    };
    let gp = if x == T::ZERO {
        T::ZERO
    } else {
        g * y * x.ln()
    };
    (gx, gp)
}
/// d |x| = sign x, and 0 at 0 (PyTorch's convention)
#[inline(always)]
pub fn abs_vjp<T: Float>(x: T, g: T) -> T {
    if x > T::ZERO {
        g
    } else if x < T::ZERO {
        -g
    } else {
        T::ZERO
    }
}
/// max(a, b): the gradient goes to the larger argument, to `a` on a tie
#[inline(always)]
pub fn max_vjp<T: Float>(a: T, b: T, g: T) -> (T, T) {
    if a >= b || b.is_nan() {
        (g, T::ZERO)
    } else {
        (T::ZERO, g)
    }
}
/// min(a, b): the gradient goes to the smaller argument, to `a` on a tie
#[inline(always)]
pub fn min_vjp<T: Float>(a: T, b: T, g: T) -> (T, T) {
    if a <= b || b.is_nan() {
        (g, T::ZERO)
    } else {
        (T::ZERO, g)
    }
}
/// hypot(a, b) = y: d/da = a / y, d/db = b / y; both 0 at the origin
#[inline(always)]
pub fn hypot_vjp<T: Float>(a: T, b: T, y: T, g: T) -> (T, T) {
    if y == T::ZERO {
        (T::ZERO, T::ZERO)
    } else {
        (g * a / y, g * b / y)
    }
}
/// d (1/x) = -1/x² = -y²
#[inline(always)]
pub fn recip_vjp<T: Float>(y: T, g: T) -> T {
    -(g * y * y)
}
/// a.mul_add(b, c) = a b + c: (b, a, 1)
#[inline(always)]
pub fn mul_add_vjp<T: Float>(a: T, b: T, g: T) -> (T, T, T) {
    (g * b, g * a, g)
}
/// signum: derivative 0 everywhere (PyTorch's convention)
#[inline(always)]
pub fn signum_vjp<T: Float>(_x: T, _g: T) -> T {
    T::ZERO
}

/// `x as f64` for an `f32` (or `f64`) `x`: the adjoint, in `x`'s type.
#[inline(always)]
pub fn as_f64_vjp<S: Float>(_x: S, g: f64) -> S {
    <S as num_traits::NumCast>::from(g).unwrap()
}
/// `x as f32` for an `f64` (or `f32`) `x`: the adjoint, in `x`'s type.
#[inline(always)]
pub fn as_f32_vjp<S: Float>(_x: S, g: f32) -> S {
    <S as num_traits::NumCast>::from(g).unwrap()
}

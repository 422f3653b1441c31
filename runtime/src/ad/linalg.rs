//! Products and reductions whose rules differ between scalars and matrices.
//!
//! Matrix products, forward and backward, go to [`crate::gemm`] with transpose flags: a
//! transposed operand is never materialised.

use super::Differentiable;
use crate::gemm::{GemmScalar, Trans};
use nalgebra::{DMatrix, DVector, RealField};

/// The element types of matrices that generated code can differentiate (`f32`, `f64`).
pub trait Scalar: RealField + Copy + GemmScalar {}
impl Scalar for f32 {}
impl Scalar for f64 {}

/// `op(a) * op(b)` where `ta`/`tb` say whether each operand is transposed.
///
/// # Panics
/// If the inner dimensions differ; the message names the operation and both shapes.
pub fn matmul<T: Scalar>(a: &DMatrix<T>, ta: bool, b: &DMatrix<T>, tb: bool) -> DMatrix<T> {
    let (ar, ac) = if ta {
        (a.ncols(), a.nrows())
    } else {
        a.shape()
    };
    let (br, bc) = if tb {
        (b.ncols(), b.nrows())
    } else {
        b.shape()
    };
    assert_eq!(
        ac,
        br,
        "matrix product {}: left operand is {}x{}{} and right operand is {}x{}{}",
        match (ta, tb) {
            (false, false) => "a * b",
            (false, true) => "a * b^T",
            (true, false) => "a^T * b",
            (true, true) => "a^T * b^T",
        },
        a.nrows(),
        a.ncols(),
        if ta { " (transposed)" } else { "" },
        b.nrows(),
        b.ncols(),
        if tb { " (transposed)" } else { "" },
    );
    let _ = (ar, bc);
    let t = |yes: bool| if yes { Trans::Yes } else { Trans::No };
    crate::gemm::matmul(a, t(ta), b, t(tb))
}

/// A product with an adjoint in it: a lazy zero (empty) adjoint gives a lazy zero, without
/// the product.
fn seed_product<T: Scalar>(a: &DMatrix<T>, ta: bool, b: &DMatrix<T>, tb: bool) -> DMatrix<T> {
    if a.is_empty() || b.is_empty() {
        return DMatrix::zeros(0, 0);
    }
    matmul(a, ta, b, tb)
}

/// Multiplication as generated code sees it: the forward product and the adjoint of each
/// operand given the output adjoint `g`.
pub trait Mul2<Rhs: Differentiable + ?Sized>: Differentiable {
    /// The type of `self * rhs`.
    type Output;
    /// `self * rhs`
    fn mul(&self, rhs: &Rhs) -> Self::Output;
    /// The adjoint of `self` in `self * rhs`.
    fn mul_grad_lhs(&self, rhs: &Rhs, g: &Self::Output) -> Self::Grad;
    /// The adjoint of `rhs` in `self * rhs`.
    fn mul_grad_rhs(&self, rhs: &Rhs, g: &Self::Output) -> Rhs::Grad;
}

/// Division as generated code sees it.
pub trait Div2<Rhs: Differentiable + ?Sized>: Differentiable {
    /// The type of `self / rhs`.
    type Output;
    /// `self / rhs`
    fn div(&self, rhs: &Rhs) -> Self::Output;
    /// The adjoint of `self` in `self / rhs`.
    fn div_grad_lhs(&self, rhs: &Rhs, g: &Self::Output) -> Self::Grad;
    /// The adjoint of `rhs` in `self / rhs`.
    fn div_grad_rhs(&self, rhs: &Rhs, g: &Self::Output) -> Rhs::Grad;
}

macro_rules! scalar_products {
    ($($t:ident),*) => {$(
        impl Mul2<$t> for $t {
            type Output = $t;
            #[inline(always)]
            fn mul(&self, rhs: &$t) -> $t { *self * *rhs }
            // d(a b)/da = b
            #[inline(always)]
            fn mul_grad_lhs(&self, rhs: &$t, g: &$t) -> $t { *g * *rhs }
            // d(a b)/db = a
            #[inline(always)]
            fn mul_grad_rhs(&self, _rhs: &$t, g: &$t) -> $t { *g * *self }
        }
        impl Div2<$t> for $t {
            type Output = $t;
            #[inline(always)]
            fn div(&self, rhs: &$t) -> $t { *self / *rhs }
            // d(a / b)/da = 1 / b
            #[inline(always)]
            fn div_grad_lhs(&self, rhs: &$t, g: &$t) -> $t { *g / *rhs }
            // d(a / b)/db = -a / b²
            #[inline(always)]
            fn div_grad_rhs(&self, rhs: &$t, g: &$t) -> $t { -(*g * *self / (*rhs * *rhs)) }
        }
        impl Mul2<DMatrix<$t>> for $t {
            type Output = DMatrix<$t>;
            fn mul(&self, rhs: &DMatrix<$t>) -> DMatrix<$t> { rhs * *self }
            // d(s M)/ds = sum(G .* M)
            fn mul_grad_lhs(&self, rhs: &DMatrix<$t>, g: &DMatrix<$t>) -> $t {
                if g.is_empty() { 0.0 } else { g.dot(rhs) }
            }
            // d(s M)/dM = s G
            fn mul_grad_rhs(&self, _rhs: &DMatrix<$t>, g: &DMatrix<$t>) -> DMatrix<$t> { g * *self }
        }
        impl Mul2<$t> for DMatrix<$t> {
            type Output = DMatrix<$t>;
            fn mul(&self, rhs: &$t) -> DMatrix<$t> { self * *rhs }
            fn mul_grad_lhs(&self, rhs: &$t, g: &DMatrix<$t>) -> DMatrix<$t> { g * *rhs }
            fn mul_grad_rhs(&self, _rhs: &$t, g: &DMatrix<$t>) -> $t {
                if g.is_empty() { 0.0 } else { g.dot(self) }
            }
        }
        impl Div2<$t> for DMatrix<$t> {
            type Output = DMatrix<$t>;
            fn div(&self, rhs: &$t) -> DMatrix<$t> { self / *rhs }
            // d(M / s)/dM = G / s
            fn div_grad_lhs(&self, rhs: &$t, g: &DMatrix<$t>) -> DMatrix<$t> { g / *rhs }
            // d(M / s)/ds = -sum(G .* M) / s²
            fn div_grad_rhs(&self, rhs: &$t, g: &DMatrix<$t>) -> $t {
                if g.is_empty() { 0.0 } else { -g.dot(self) / (*rhs * *rhs) }
            }
        }
    )*};
}
scalar_products!(f32, f64);

impl<T: Scalar> Mul2<DMatrix<T>> for DMatrix<T> {
    type Output = DMatrix<T>;
    fn mul(&self, rhs: &DMatrix<T>) -> DMatrix<T> {
        matmul(self, false, rhs, false)
    }
    // C = A B: dA = G B^T
    fn mul_grad_lhs(&self, rhs: &DMatrix<T>, g: &DMatrix<T>) -> DMatrix<T> {
        seed_product(g, false, rhs, true)
    }
    // C = A B: dB = A^T G
    fn mul_grad_rhs(&self, _rhs: &DMatrix<T>, g: &DMatrix<T>) -> DMatrix<T> {
        seed_product(self, true, g, false)
    }
}

/// Addition and subtraction as generated code sees them: plain for scalars, and for
/// matrices and vectors a check that the shapes agree, whose message names both.
pub trait AddSub<Rhs: ?Sized = Self> {
    /// The type of `self + rhs`.
    type Output;
    /// `self + rhs`
    fn add(&self, rhs: &Rhs) -> Self::Output;
    /// `self - rhs`
    fn sub(&self, rhs: &Rhs) -> Self::Output;
}

macro_rules! scalar_add_sub {
    ($($t:ident),*) => {$(
        impl AddSub for $t {
            type Output = $t;
            #[inline(always)]
            fn add(&self, rhs: &$t) -> $t { *self + *rhs }
            #[inline(always)]
            fn sub(&self, rhs: &$t) -> $t { *self - *rhs }
        }
    )*};
}
scalar_add_sub!(f32, f64);

macro_rules! matrix_add_sub {
    ($ty:ident) => {
        impl<T: Scalar> AddSub for $ty<T> {
            type Output = $ty<T>;
            fn add(&self, rhs: &$ty<T>) -> $ty<T> {
                same_shape("+", self.shape(), rhs.shape());
                self + rhs
            }
            fn sub(&self, rhs: &$ty<T>) -> $ty<T> {
                same_shape("-", self.shape(), rhs.shape());
                self - rhs
            }
        }
    };
}
matrix_add_sub!(DMatrix);
matrix_add_sub!(DVector);

/// Panics unless an element-wise operation's operands have the same shape.
#[track_caller]
fn same_shape(op: &str, a: (usize, usize), b: (usize, usize)) {
    assert!(
        a == b,
        "element-wise `{op}`: left operand is {}x{} but right operand is {}x{}",
        a.0,
        a.1,
        b.0,
        b.1
    );
}

/// `a + b` for generated code.
#[inline(always)]
#[track_caller]
pub fn add<A: AddSub<B> + ?Sized, B: ?Sized>(a: &A, b: &B) -> A::Output {
    a.add(b)
}

/// `a - b` for generated code.
#[inline(always)]
#[track_caller]
pub fn sub<A: AddSub<B> + ?Sized, B: ?Sized>(a: &A, b: &B) -> A::Output {
    a.sub(b)
}

/// `a.component_mul(b)` for generated code, with the shapes checked.
#[track_caller]
pub fn component_mul<M: Elementwise>(a: &M, b: &M) -> M {
    M::component_mul(a, b)
}

/// `self * rhs` for generated code.
#[inline(always)]
pub fn mul<A: Mul2<B> + ?Sized, B: Differentiable + ?Sized>(a: &A, b: &B) -> A::Output {
    a.mul(b)
}
/// The adjoint of `a` in `a * b`.
#[inline(always)]
pub fn mul_grad_lhs<A: Mul2<B> + ?Sized, B: Differentiable + ?Sized>(
    a: &A,
    b: &B,
    g: &A::Output,
) -> A::Grad {
    a.mul_grad_lhs(b, g)
}
/// The adjoint of `b` in `a * b`.
#[inline(always)]
pub fn mul_grad_rhs<A: Mul2<B> + ?Sized, B: Differentiable + ?Sized>(
    a: &A,
    b: &B,
    g: &A::Output,
) -> B::Grad {
    a.mul_grad_rhs(b, g)
}
/// `self / rhs` for generated code.
#[inline(always)]
pub fn div<A: Div2<B> + ?Sized, B: Differentiable + ?Sized>(a: &A, b: &B) -> A::Output {
    a.div(b)
}
/// The adjoint of `a` in `a / b`.
#[inline(always)]
pub fn div_grad_lhs<A: Div2<B> + ?Sized, B: Differentiable + ?Sized>(
    a: &A,
    b: &B,
    g: &A::Output,
) -> A::Grad {
    a.div_grad_lhs(b, g)
}
/// The adjoint of `b` in `a / b`.
#[inline(always)]
pub fn div_grad_rhs<A: Div2<B> + ?Sized, B: Differentiable + ?Sized>(
    a: &A,
    b: &B,
    g: &A::Output,
) -> B::Grad {
    a.div_grad_rhs(b, g)
}

/// `a * b^T` without materialising the transpose (what `a * b.transpose()` lowers to).
pub fn matmul_nt<T: Scalar>(a: &DMatrix<T>, b: &DMatrix<T>) -> DMatrix<T> {
    matmul(a, false, b, true)
}
/// C = A B^T: dA = G B
pub fn matmul_nt_grad_lhs<T: Scalar>(
    _a: &DMatrix<T>,
    b: &DMatrix<T>,
    g: &DMatrix<T>,
) -> DMatrix<T> {
    seed_product(g, false, b, false)
}
/// C = A B^T: dB = G^T A
pub fn matmul_nt_grad_rhs<T: Scalar>(
    a: &DMatrix<T>,
    _b: &DMatrix<T>,
    g: &DMatrix<T>,
) -> DMatrix<T> {
    seed_product(g, true, a, false)
}
/// `a^T * b` without materialising the transpose (what `a.transpose() * b` lowers to); `b`
/// is a matrix or a vector ([`TnProduct`]).
pub fn matmul_tn<A: TnProduct<B>, B>(a: &A, b: &B) -> A::Output {
    a.tn(b)
}
/// C = A^T B: dA = B G^T
pub fn matmul_tn_grad_lhs<A: TnProduct<B>, B>(a: &A, b: &B, g: &A::Output) -> A {
    a.tn_grad_lhs(b, g)
}
/// C = A^T B: dB = A G
pub fn matmul_tn_grad_rhs<A: TnProduct<B>, B>(a: &A, b: &B, g: &A::Output) -> B {
    a.tn_grad_rhs(b, g)
}

/// `aᵀ b` for a matrix `a` and a matrix or vector `b`, with its adjoints.
pub trait TnProduct<Rhs>: Sized {
    /// The type of `aᵀ b`.
    type Output;
    /// `selfᵀ b`
    fn tn(&self, b: &Rhs) -> Self::Output;
    /// The adjoint of `self`: `b gᵀ`.
    fn tn_grad_lhs(&self, b: &Rhs, g: &Self::Output) -> Self;
    /// The adjoint of `b`: `self g`.
    fn tn_grad_rhs(&self, b: &Rhs, g: &Self::Output) -> Rhs;
    /// The tangent `daᵀ b + aᵀ db`.
    fn tn_jvp(&self, da: &Self, b: &Rhs, db: &Rhs) -> Self::Output;
}

impl<T: Scalar> TnProduct<DMatrix<T>> for DMatrix<T> {
    type Output = DMatrix<T>;
    fn tn(&self, b: &DMatrix<T>) -> DMatrix<T> {
        matmul(self, true, b, false)
    }
    fn tn_grad_lhs(&self, b: &DMatrix<T>, g: &DMatrix<T>) -> DMatrix<T> {
        seed_product(b, false, g, true)
    }
    fn tn_grad_rhs(&self, _b: &DMatrix<T>, g: &DMatrix<T>) -> DMatrix<T> {
        seed_product(self, false, g, false)
    }
    fn tn_jvp(&self, da: &DMatrix<T>, b: &DMatrix<T>, db: &DMatrix<T>) -> DMatrix<T> {
        let mut c = matmul(da, true, b, false);
        c += matmul(self, true, db, false);
        c
    }
}

impl<T: Scalar> TnProduct<DVector<T>> for DMatrix<T> {
    type Output = DVector<T>;
    #[track_caller]
    fn tn(&self, b: &DVector<T>) -> DVector<T> {
        assert_eq!(
            self.nrows(),
            b.len(),
            "matrix product a^T * x: a is {}x{} (transposed) but x has length {}",
            self.nrows(),
            self.ncols(),
            b.len()
        );
        self.tr_mul(b)
    }
    // y = Aᵀ x: dA = x gᵀ
    fn tn_grad_lhs(&self, b: &DVector<T>, g: &DVector<T>) -> DMatrix<T> {
        if g.is_empty() {
            return DMatrix::zeros(0, 0);
        }
        b * g.transpose()
    }
    // y = Aᵀ x: dx = A g
    fn tn_grad_rhs(&self, _b: &DVector<T>, g: &DVector<T>) -> DVector<T> {
        if g.is_empty() {
            return DVector::zeros(0);
        }
        self * g
    }
    fn tn_jvp(&self, da: &DMatrix<T>, b: &DVector<T>, db: &DVector<T>) -> DVector<T> {
        da.tr_mul(b) + self.tr_mul(db)
    }
}

/// Reductions and element-wise products on matrices and vectors.
pub trait Elementwise: Differentiable + Sized {
    /// The element type.
    type Elem: Scalar;
    /// d sum(X) / dX = a matrix of ones: every element gets `g`.
    fn sum_vjp(&self, g: Self::Elem) -> Self::Grad;
    /// d mean(X) / dX = 1/n everywhere.
    fn mean_vjp(&self, g: Self::Elem) -> Self::Grad;
    /// `a .* b`: the adjoint of `a` is `g .* b`.
    fn component_mul_vjp(other: &Self, g: &Self) -> Self::Grad;
    /// `a .* b`, the shapes checked.
    fn component_mul(a: &Self, b: &Self) -> Self;
}

impl<T: Scalar> Elementwise for DMatrix<T> {
    type Elem = T;
    fn sum_vjp(&self, g: T) -> DMatrix<T> {
        DMatrix::from_element(self.nrows(), self.ncols(), g)
    }
    fn mean_vjp(&self, g: T) -> DMatrix<T> {
        let n = T::from_usize(self.len()).expect("matrix length fits the float type");
        DMatrix::from_element(self.nrows(), self.ncols(), g / n)
    }
    fn component_mul_vjp(other: &Self, g: &Self) -> DMatrix<T> {
        if g.is_empty() {
            return DMatrix::zeros(0, 0);
        }
        g.component_mul(other)
    }
    fn component_mul(a: &Self, b: &Self) -> DMatrix<T> {
        same_shape("component_mul", a.shape(), b.shape());
        a.component_mul(b)
    }
}
impl<T: Scalar> Elementwise for DVector<T> {
    type Elem = T;
    fn sum_vjp(&self, g: T) -> DVector<T> {
        DVector::from_element(self.len(), g)
    }
    fn mean_vjp(&self, g: T) -> DVector<T> {
        let n = T::from_usize(self.len()).expect("vector length fits the float type");
        DVector::from_element(self.len(), g / n)
    }
    fn component_mul_vjp(other: &Self, g: &Self) -> DVector<T> {
        if g.is_empty() {
            return DVector::zeros(0);
        }
        g.component_mul(other)
    }
    fn component_mul(a: &Self, b: &Self) -> DVector<T> {
        same_shape("component_mul", a.shape(), b.shape());
        a.component_mul(b)
    }
}

/// The adjoint of `x` in `x.sum()`.
pub fn sum_vjp<M: Elementwise>(x: &M, g: M::Elem) -> M::Grad {
    x.sum_vjp(g)
}
/// The adjoint of `x` in `x.mean()`.
pub fn mean_vjp<M: Elementwise>(x: &M, g: M::Elem) -> M::Grad {
    x.mean_vjp(g)
}
/// The adjoint of `a` in `a.component_mul(b)` (call with the operands swapped for `b`).
pub fn component_mul_vjp<M: Elementwise>(other: &M, g: &M) -> M::Grad {
    M::component_mul_vjp(other, g)
}
/// The adjoint of `x` in `x.transpose()`.
pub fn transpose_vjp<T: Scalar>(g: &DMatrix<T>) -> DMatrix<T> {
    g.transpose()
}

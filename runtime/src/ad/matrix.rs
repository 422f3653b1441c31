//! Matrix-vector products, vectors scaled by scalars, indexing of matrices and vectors, and
//! element-wise maps (`x.map(|v| ...)`) as generated code sees them.
//!
//! A closure passed to `map` in a `#[differentiable]` fn is differentiated by the macro as a
//! scalar function; at run time [`map_pullback`] evaluates it on every element, keeping the
//! element-wise partial derivatives (one matrix per differentiated input of the closure), and
//! the pullback is `seed .* f'(x)` ([`map_vjp`]), plus `sum(seed .* ∂f/∂a)` for an active
//! scalar `a` the closure captures ([`map_capture_vjp`]).

use super::linalg::{Div2, Elementwise, Mul2, Scalar};
use super::tangent::DivTangent;
use super::{Accumulate, Differentiable};
use nalgebra::{DMatrix, DVector};

/// A dense matrix or vector whose elements generated code maps one by one.
pub trait Elements: Elementwise<Grad = Self> + Clone {
    /// The elements in storage order.
    fn elems(&self) -> &[Self::Elem];
    /// The elements in storage order, mutable.
    fn elems_mut(&mut self) -> &mut [Self::Elem];
    /// `(rows, cols)`
    fn dims(&self) -> (usize, usize);
    /// A zero of the shape `(rows, cols)`.
    fn zeros_of(dims: (usize, usize)) -> Self;
    /// The lazy (empty) zero.
    fn empty() -> Self;
    /// `f` applied to every element.
    fn map_elems(&self, f: impl FnMut(Self::Elem) -> Self::Elem) -> Self;
}

impl<T: Scalar> Elements for DMatrix<T> {
    fn elems(&self) -> &[T] {
        self.as_slice()
    }
    fn elems_mut(&mut self) -> &mut [T] {
        self.as_mut_slice()
    }
    fn dims(&self) -> (usize, usize) {
        self.shape()
    }
    fn zeros_of(dims: (usize, usize)) -> Self {
        DMatrix::zeros(dims.0, dims.1)
    }
    fn empty() -> Self {
        DMatrix::zeros(0, 0)
    }
    fn map_elems(&self, f: impl FnMut(T) -> T) -> Self {
        self.map(f)
    }
}

impl<T: Scalar> Elements for DVector<T> {
    fn elems(&self) -> &[T] {
        self.as_slice()
    }
    fn elems_mut(&mut self) -> &mut [T] {
        self.as_mut_slice()
    }
    fn dims(&self) -> (usize, usize) {
        self.shape()
    }
    fn zeros_of(dims: (usize, usize)) -> Self {
        DVector::zeros(dims.0)
    }
    fn empty() -> Self {
        DVector::zeros(0)
    }
    fn map_elems(&self, f: impl FnMut(T) -> T) -> Self {
        self.map(f)
    }
}

// ----- matrix-vector products and vectors scaled by scalars -----

impl<T: Scalar> Mul2<DVector<T>> for DMatrix<T> {
    type Output = DVector<T>;
    #[track_caller]
    fn mul(&self, rhs: &DVector<T>) -> DVector<T> {
        assert_eq!(
            self.ncols(),
            rhs.len(),
            "matrix-vector product a * x: a is {}x{} but x has length {}",
            self.nrows(),
            self.ncols(),
            rhs.len()
        );
        self * rhs
    }
    // y = A x: dA = g xᵀ
    fn mul_grad_lhs(&self, rhs: &DVector<T>, g: &DVector<T>) -> DMatrix<T> {
        if g.is_empty() {
            return DMatrix::zeros(0, 0);
        }
        g * rhs.transpose()
    }
    // y = A x: dx = Aᵀ g
    fn mul_grad_rhs(&self, _rhs: &DVector<T>, g: &DVector<T>) -> DVector<T> {
        if g.is_empty() {
            return DVector::zeros(0);
        }
        self.tr_mul(g)
    }
}

macro_rules! vector_scalar_products {
    ($($t:ident),*) => {$(
        impl Mul2<DVector<$t>> for $t {
            type Output = DVector<$t>;
            fn mul(&self, rhs: &DVector<$t>) -> DVector<$t> { rhs * *self }
            // d(s v)/ds = g · v
            fn mul_grad_lhs(&self, rhs: &DVector<$t>, g: &DVector<$t>) -> $t {
                if g.is_empty() { 0.0 } else { g.dot(rhs) }
            }
            // d(s v)/dv = s g
            fn mul_grad_rhs(&self, _rhs: &DVector<$t>, g: &DVector<$t>) -> DVector<$t> { g * *self }
        }
        impl Mul2<$t> for DVector<$t> {
            type Output = DVector<$t>;
            fn mul(&self, rhs: &$t) -> DVector<$t> { self * *rhs }
            fn mul_grad_lhs(&self, rhs: &$t, g: &DVector<$t>) -> DVector<$t> { g * *rhs }
            fn mul_grad_rhs(&self, _rhs: &$t, g: &DVector<$t>) -> $t {
                if g.is_empty() { 0.0 } else { g.dot(self) }
            }
        }
        impl Div2<$t> for DVector<$t> {
            type Output = DVector<$t>;
            fn div(&self, rhs: &$t) -> DVector<$t> { self / *rhs }
            // d(v / s)/dv = g / s
            fn div_grad_lhs(&self, rhs: &$t, g: &DVector<$t>) -> DVector<$t> { g / *rhs }
            // d(v / s)/ds = -(g · v) / s²
            fn div_grad_rhs(&self, rhs: &$t, g: &DVector<$t>) -> $t {
                if g.is_empty() { 0.0 } else { -g.dot(self) / (*rhs * *rhs) }
            }
        }
        impl DivTangent<$t> for DVector<$t> {
            fn div_jvp_rhs(&self, rhs: &$t, drhs: &$t) -> DVector<$t> {
                self * (-*drhs / (*rhs * *rhs))
            }
        }
    )*};
}
vector_scalar_products!(f32, f64);

// ----- indexing -----

/// A value whose gradient can be made its full shape ahead of element updates.
pub trait SizeGrad: Differentiable {
    /// Makes a lazy-zero `grad` zeros of the shape of `self` (nothing if it already has it).
    fn size_grad(&self, grad: &mut Self::Grad);
}

/// A value whose elements generated code reads by index `I`; the gradient of an element
/// read is added into the gradient of the whole at that index.
pub trait IndexGrad<I>: SizeGrad {
    /// The element type.
    type Elem;
    /// `grad[i] += g` for a gradient already the shape of `self` ([`SizeGrad::size_grad`]):
    /// no size check, so inside a loop LLVM keeps the gradient in registers and merges the
    /// updates of one element. Panics (index out of bounds) on a lazy-zero gradient.
    fn add_at_sized(&self, grad: &mut Self::Grad, i: I, g: Self::Elem);
    /// `grad[i] += g`, first making a lazy-zero gradient the shape of `self`.
    #[inline(always)]
    fn add_at(&self, grad: &mut Self::Grad, i: I, g: Self::Elem) {
        self.size_grad(grad);
        self.add_at_sized(grad, i, g)
    }
}

impl<B: SizeGrad + ?Sized> SizeGrad for &B {
    #[inline(always)]
    fn size_grad(&self, grad: &mut B::Grad) {
        (**self).size_grad(grad)
    }
}

impl<T: Differentiable<Grad = T> + Accumulate + Copy, const N: usize> SizeGrad for [T; N] {
    #[inline(always)]
    fn size_grad(&self, _grad: &mut [T; N]) {}
}

impl<T: Differentiable<Grad = T> + Accumulate + Copy + Default> SizeGrad for [T] {
    #[inline(always)]
    fn size_grad(&self, grad: &mut Vec<T>) {
        if grad.len() != self.len() {
            grad.resize(self.len(), T::default());
        }
    }
}

impl<T: Differentiable<Grad = T> + Accumulate + Copy + Default> SizeGrad for Vec<T> {
    #[inline(always)]
    fn size_grad(&self, grad: &mut Vec<T>) {
        self.as_slice().size_grad(grad)
    }
}

impl<T: Scalar> SizeGrad for DVector<T> {
    #[inline(always)]
    fn size_grad(&self, grad: &mut DVector<T>) {
        if grad.is_empty() {
            *grad = DVector::zeros(self.len());
        }
    }
}

impl<T: Scalar> SizeGrad for DMatrix<T> {
    #[inline(always)]
    fn size_grad(&self, grad: &mut DMatrix<T>) {
        if grad.is_empty() {
            *grad = DMatrix::zeros(self.nrows(), self.ncols());
        }
    }
}

impl<B: IndexGrad<I> + ?Sized, I> IndexGrad<I> for &B {
    type Elem = B::Elem;
    #[inline(always)]
    fn add_at_sized(&self, grad: &mut B::Grad, i: I, g: B::Elem) {
        (**self).add_at_sized(grad, i, g)
    }
}

impl<T: Differentiable<Grad = T> + Accumulate + Copy, const N: usize> IndexGrad<usize> for [T; N] {
    type Elem = T;
    #[inline(always)]
    fn add_at_sized(&self, grad: &mut [T; N], i: usize, g: T) {
        grad[i].accumulate(g);
    }
}

impl<T: Differentiable<Grad = T> + Accumulate + Copy + Default> IndexGrad<usize> for [T] {
    type Elem = T;
    #[inline(always)]
    fn add_at_sized(&self, grad: &mut Vec<T>, i: usize, g: T) {
        grad[i].accumulate(g);
    }
}

impl<T: Differentiable<Grad = T> + Accumulate + Copy + Default> IndexGrad<usize> for Vec<T> {
    type Elem = T;
    #[inline(always)]
    fn add_at_sized(&self, grad: &mut Vec<T>, i: usize, g: T) {
        self.as_slice().add_at_sized(grad, i, g)
    }
}

/// Matrices and vectors indexed by `usize` (column-major) or `(row, column)`.
macro_rules! index_grad_matrix {
    ($($m:ident[$i:ty]),*) => {$(
        impl<T: Scalar> IndexGrad<$i> for $m<T> {
            type Elem = T;
            #[inline(always)]
            fn add_at_sized(&self, grad: &mut $m<T>, i: $i, g: T) {
                grad[i] += g;
            }
        }
    )*};
}
index_grad_matrix!(
    DVector[usize],
    DVector[(usize, usize)],
    DMatrix[usize],
    DMatrix[(usize, usize)]
);

/// Adds `g` to the gradient of `base` at index `i` (`v[i]`, `w[(i, j)]`).
#[inline(always)]
pub fn acc_at<B: IndexGrad<I> + ?Sized, I>(grad: &mut B::Grad, base: &B, i: I, g: B::Elem) {
    base.add_at(grad, i, g)
}

/// [`acc_at`] for a gradient made full-size by [`size_grad`] before the loop this runs in.
#[inline(always)]
pub fn acc_at_sized<B: IndexGrad<I> + ?Sized, I>(grad: &mut B::Grad, base: &B, i: I, g: B::Elem) {
    base.add_at_sized(grad, i, g)
}

/// Makes the gradient of `base` full-size ahead of a loop that adds to its elements.
#[inline]
pub fn size_grad<B: SizeGrad + ?Sized>(grad: &mut B::Grad, base: &B) {
    base.size_grad(grad)
}

// ----- element-wise maps -----

/// `x.map(f)` and the element-wise partial derivatives that `f` returns with its value
/// (`f(v) = (y, [∂y/∂v, ∂y/∂a₁, ...])`): the value and one matrix per partial derivative.
pub fn map_pullback<M: Elements, const K: usize>(
    x: &M,
    mut f: impl FnMut(M::Elem) -> (M::Elem, [M::Elem; K]),
) -> (M, [M; K]) {
    let mut y = x.clone();
    let mut d: [M; K] = std::array::from_fn(|_| x.clone());
    for (i, e) in y.elems_mut().iter_mut().enumerate() {
        let (v, parts) = f(*e);
        *e = v;
        for (dk, p) in d.iter_mut().zip(parts) {
            dk.elems_mut()[i] = p;
        }
    }
    (y, d)
}

/// The adjoint of the mapped matrix: `g .* d[k]` (a lazy zero for a lazy-zero `g`).
pub fn map_vjp<M: Elements, const K: usize>(d: &[M; K], k: usize, g: &M) -> M {
    if g.elems().is_empty() {
        return M::empty();
    }
    assert_eq!(
        g.dims(),
        d[k].dims(),
        "map: the adjoint's shape differs from the value's"
    );
    let mut out = g.clone();
    for (o, &p) in out.elems_mut().iter_mut().zip(d[k].elems()) {
        *o *= p;
    }
    out
}

/// The adjoint of a scalar the closure captures: `sum(g .* d[k])`.
pub fn map_capture_vjp<M: Elements, const K: usize>(d: &[M; K], k: usize, g: &M) -> M::Elem {
    let mut s = zero_of::<M::Elem>();
    for (&a, &b) in g.elems().iter().zip(d[k].elems()) {
        s += a * b;
    }
    s
}

/// The tangent of the mapped matrix given the derivative matrices `d` (`d[0]` along the
/// mapped matrix, `d[k]` along the k-th captured scalar) and the input tangents:
/// `dx .* d[0] + sum_k da_k d[k]`.
pub fn map_jvp<M: Elements, const K: usize>(d: &[M; K], dx: Option<&M>, da: &[M::Elem]) -> M {
    let mut t = M::zeros_of(d[0].dims());
    if let Some(dx) = dx {
        assert_eq!(
            dx.dims(),
            d[0].dims(),
            "map: the tangent's shape differs from the value's"
        );
        for ((o, &a), &p) in t.elems_mut().iter_mut().zip(dx.elems()).zip(d[0].elems()) {
            *o = a * p;
        }
    }
    for (&s, dk) in da.iter().zip(&d[1..]) {
        for (o, &p) in t.elems_mut().iter_mut().zip(dk.elems()) {
            *o += s * p;
        }
    }
    t
}

#[inline(always)]
fn zero_of<T: Scalar>() -> T {
    T::zero()
}

/// The element type's one, typed by a value of it (the seed of a closure's pullback).
#[inline(always)]
pub fn one_like<T: Scalar>(_x: &T) -> T {
    T::one()
}

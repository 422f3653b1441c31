//! What `#[differentiable(hessian)]` generates calls to: zero tangents for the call protocol
//! of the hidden directional-derivative functions (`__NAME_hdir`), and the flattening of
//! tangents and gradients that `NAME_hessian` uses.
//!
//! The second order is reverse over forward: the macro writes `__NAME_hdir(args..,
//! tangents.., w) = w f(x) + <∇f(x), v>` as ordinary differentiable Rust (the forward
//! tangent rules written as expressions), and the reverse mode differentiates it. Its
//! gradient is `H v` with respect to `x`, `∇f(x)` with respect to `v` and `f(x)` with respect
//! to `w` (at `w = 0`).

use super::scalar::Float;
use nalgebra::{DMatrix, DVector, Scalar};

/// The tangent slot a caller passes for an argument that carries none: a zero of the
/// argument's shape for a float type, `()` for an integer, `bool`, `char` or string type
/// (the slot type of such a parameter in an `__NAME_hdir` function).
pub trait DirZero {
    /// The zero's type.
    type Zero;
    /// A zero tangent of `self`'s shape.
    fn dir_zero(&self) -> Self::Zero;
    /// A value of the tangent's type that is never read: what `NAME_hvp` passes as the slot
    /// of a constant parameter (the data `x` of a loss), empty for a matrix, a vector or a
    /// slice so that nothing is allocated or zeroed.
    fn dir_empty(&self) -> Self::Zero {
        self.dir_zero()
    }
}

/// [`DirZero::dir_empty`].
#[inline(always)]
pub fn dir_empty<T: DirZero + ?Sized>(x: &T) -> T::Zero {
    x.dir_empty()
}

/// [`DirZero::dir_zero`]: what code generated for a caller of a `hessian` function passes as
/// the tangent of an argument that carries none.
#[inline(always)]
pub fn dir_zero<T: DirZero + ?Sized>(x: &T) -> T::Zero {
    x.dir_zero()
}

macro_rules! float_zeros {
    ($($t:ty),*) => {$(
        impl DirZero for $t {
            type Zero = $t;
            #[inline(always)]
            fn dir_zero(&self) -> $t { 0.0 }
        }
        impl<const N: usize> DirZero for [$t; N] {
            type Zero = [$t; N];
            #[inline(always)]
            fn dir_zero(&self) -> [$t; N] { [0.0; N] }
        }
        impl DirZero for [$t] {
            type Zero = Vec<$t>;
            fn dir_zero(&self) -> Vec<$t> { vec![0.0; self.len()] }
            fn dir_empty(&self) -> Vec<$t> { Vec::new() }
        }
        impl DirZero for Vec<$t> {
            type Zero = Vec<$t>;
            fn dir_zero(&self) -> Vec<$t> { vec![0.0; self.len()] }
            fn dir_empty(&self) -> Vec<$t> { Vec::new() }
        }
        impl DirZero for DMatrix<$t> {
            type Zero = DMatrix<$t>;
            fn dir_zero(&self) -> DMatrix<$t> { DMatrix::zeros(self.nrows(), self.ncols()) }
            fn dir_empty(&self) -> DMatrix<$t> { DMatrix::zeros(0, 0) }
        }
        impl DirZero for DVector<$t> {
            type Zero = DVector<$t>;
            fn dir_zero(&self) -> DVector<$t> { DVector::zeros(self.nrows()) }
            fn dir_empty(&self) -> DVector<$t> { DVector::zeros(0) }
        }
    )*};
}
float_zeros!(f32, f64);

macro_rules! unit_zeros {
    ($($t:ty),*) => {$(
        impl DirZero for $t {
            type Zero = ();
            #[inline(always)]
            fn dir_zero(&self) {}
        }
        impl<const N: usize> DirZero for [$t; N] {
            type Zero = ();
            #[inline(always)]
            fn dir_zero(&self) {}
        }
        impl DirZero for [$t] {
            type Zero = ();
            #[inline(always)]
            fn dir_zero(&self) {}
        }
        impl DirZero for Vec<$t> {
            type Zero = ();
            #[inline(always)]
            fn dir_zero(&self) {}
        }
    )*};
}
unit_zeros!(
    i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize, bool, char
);

/// An `Option` parameter is a setting (`k: Option<usize>`), never differentiated.
impl<T> DirZero for Option<T> {
    type Zero = ();
    #[inline(always)]
    fn dir_zero(&self) {}
}

impl DirZero for str {
    type Zero = ();
    #[inline(always)]
    fn dir_zero(&self) {}
}

impl DirZero for String {
    type Zero = ();
    #[inline(always)]
    fn dir_zero(&self) {}
}

/// An active parameter of a `hessian` function, seen as a flat vector of its elements: a
/// scalar is one entry, an array or a slice one entry per element.
pub trait HessianParam<T> {
    /// The owned tangent (`T`, `[T; N]`, `Vec<T>` for a slice).
    type Unit;
    /// The number of entries.
    fn hess_len(&self) -> usize;
    /// The tangent that is 1 at entry `k` (0 everywhere for `None`).
    fn hess_unit(&self, k: Option<usize>) -> Self::Unit;
}

macro_rules! scalar_params {
    ($($t:ty),*) => {$(
        impl HessianParam<$t> for $t {
            type Unit = $t;
            #[inline(always)]
            fn hess_len(&self) -> usize {
                1
            }
            #[inline(always)]
            fn hess_unit(&self, k: Option<usize>) -> $t {
                if k.is_some() { 1.0 } else { 0.0 }
            }
        }
        impl Flatten<$t> for $t {
            fn flatten_into(&self, out: &mut [$t]) {
                out[0] = *self;
            }
        }
    )*};
}
scalar_params!(f32, f64);

impl<T: Float, const N: usize> HessianParam<T> for [T; N] {
    type Unit = [T; N];
    fn hess_len(&self) -> usize {
        N
    }
    fn hess_unit(&self, k: Option<usize>) -> [T; N] {
        let mut u = [T::ZERO; N];
        if let Some(k) = k {
            u[k] = T::ONE;
        }
        u
    }
}

impl<T: Float> HessianParam<T> for [T] {
    type Unit = Vec<T>;
    fn hess_len(&self) -> usize {
        self.len()
    }
    fn hess_unit(&self, k: Option<usize>) -> Vec<T> {
        let mut u = vec![T::ZERO; self.len()];
        if let Some(k) = k {
            u[k] = T::ONE;
        }
        u
    }
}

impl<T: Float, P: HessianParam<T> + ?Sized> HessianParam<T> for &P {
    type Unit = P::Unit;
    fn hess_len(&self) -> usize {
        (**self).hess_len()
    }
    fn hess_unit(&self, k: Option<usize>) -> P::Unit {
        (**self).hess_unit(k)
    }
}

/// The entries of a parameter: [`HessianParam::hess_len`].
#[inline(always)]
pub fn hess_len<T: Float, P: HessianParam<T> + ?Sized>(p: &P) -> usize {
    p.hess_len()
}

/// [`HessianParam::hess_unit`].
#[inline(always)]
pub fn hess_unit<T: Float, P: HessianParam<T> + ?Sized>(p: &P, k: Option<usize>) -> P::Unit {
    p.hess_unit(k)
}

/// A gradient (or a Hessian-vector product) written as a flat vector.
pub trait Flatten<T> {
    /// Copies the entries into `out` (exactly as many as the parameter has).
    fn flatten_into(&self, out: &mut [T]);
}

impl<T: Float, const N: usize> Flatten<T> for [T; N] {
    fn flatten_into(&self, out: &mut [T]) {
        out.copy_from_slice(self);
    }
}

impl<T: Float> Flatten<T> for Vec<T> {
    fn flatten_into(&self, out: &mut [T]) {
        out.copy_from_slice(self);
    }
}

/// [`Flatten::flatten_into`].
#[inline(always)]
pub fn flatten_into<T: Float, G: Flatten<T>>(g: &G, out: &mut [T]) {
    g.flatten_into(out)
}

/// `(H + Hᵀ) / 2` in place: the Hessian assembled from Hessian-vector products is symmetric
/// up to rounding; this makes it exactly symmetric.
pub fn symmetrize<T: Float + Scalar>(h: &mut DMatrix<T>) {
    let n = h.nrows();
    let half = T::ONE / (T::ONE + T::ONE);
    for i in 0..n {
        for j in 0..i {
            let m = (h[(i, j)] + h[(j, i)]) * half;
            h[(i, j)] = m;
            h[(j, i)] = m;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_flattening() {
        let x = [1.0f64, 2.0, 3.0];
        assert_eq!(hess_len::<f64, _>(&x), 3);
        assert_eq!(hess_unit::<f64, _>(&x, Some(1)), [0.0, 1.0, 0.0]);
        let s: &[f32] = &[1.0, 2.0];
        assert_eq!(hess_unit::<f32, _>(s, Some(0)), vec![1.0, 0.0]);
        assert_eq!(hess_unit::<f64, _>(&2.0f64, None), 0.0);
        let mut out = [0.0f64; 4];
        flatten_into(&vec![1.0, 2.0], &mut out[1..3]);
        flatten_into(&5.0, &mut out[3..]);
        assert_eq!(out, [0.0, 1.0, 2.0, 5.0]);
        let mut h = DMatrix::from_row_slice(2, 2, &[1.0, 2.0, 4.0, 3.0]);
        symmetrize(&mut h);
        assert_eq!(h, DMatrix::from_row_slice(2, 2, &[1.0, 3.0, 3.0, 3.0]));
        assert_eq!(dir_zero(&3usize), ());
        let m = DMatrix::<f32>::zeros(3, 2);
        assert_eq!(dir_zero(&m).shape(), (3, 2));
        assert_eq!(dir_empty(&m).shape(), (0, 0));
        assert_eq!(dir_empty(&2.0f64), 0.0);
        assert_eq!(dir_zero(&[1.0f32, 2.0][..]), vec![0.0, 0.0]);
    }
}

//! Parameter containers: the [`Tensor`] leaves and the [`Params`] visitor that optimizers,
//! checkpoints and gradient checks walk.
//!
//! `#[derive(Params)]` (from `symgrad`) implements [`Params`] for a struct by visiting each
//! field under its name, so a model `Mlp { layer1: Linear, .. }` whose `Linear` has `weight`
//! and `bias` yields the names `layer1.weight`, `layer1.bias`, ... in declaration order.
//! Those names are PyTorch's `state_dict` keys for the same module tree.

use crate::ad::linalg::Scalar;
use nalgebra::{DMatrix, DVector};

/// One parameter tensor of element type `T` (`f32` by default, or `f64`), as visitors see it.
///
/// Storage is nalgebra's (column-major); [`Tensor::shape`] and the row-major accessors give
/// the PyTorch view of the same tensor (a `DMatrix` with `r` rows and `c` columns is the
/// row-major tensor `[r, c]`).
pub trait Tensor<T = f32> {
    /// The tensor's shape as PyTorch states it: `[rows, cols]` for a matrix, `[len]` for a vector.
    fn shape(&self) -> Vec<usize>;
    /// The elements in storage order (column-major). Element-wise code (optimizers) uses this.
    fn as_slice(&self) -> &[T];
    /// The elements in storage order, mutable.
    fn as_mut_slice(&mut self) -> &mut [T];
    /// The elements in row-major (C) order, as safetensors and PyTorch store them.
    fn to_row_major(&self) -> Vec<T>;
    /// Overwrites the elements from row-major data.
    ///
    /// # Panics
    /// If `values.len()` is not the tensor's number of elements.
    fn copy_from_row_major(&mut self, values: &[T]);
}

impl<T: Scalar> Tensor<T> for DMatrix<T> {
    fn shape(&self) -> Vec<usize> {
        vec![self.nrows(), self.ncols()]
    }
    fn as_slice(&self) -> &[T] {
        nalgebra::Matrix::as_slice(self)
    }
    fn as_mut_slice(&mut self) -> &mut [T] {
        nalgebra::Matrix::as_mut_slice(self)
    }
    fn to_row_major(&self) -> Vec<T> {
        self.transpose().as_slice().to_vec()
    }
    fn copy_from_row_major(&mut self, values: &[T]) {
        assert_eq!(
            values.len(),
            self.len(),
            "copy_from_row_major: {} values for a {}x{} matrix",
            values.len(),
            self.nrows(),
            self.ncols()
        );
        let (r, c) = self.shape();
        *self = DMatrix::from_row_slice(r, c, values);
    }
}

impl<T: Scalar> Tensor<T> for DVector<T> {
    fn shape(&self) -> Vec<usize> {
        vec![self.len()]
    }
    fn as_slice(&self) -> &[T] {
        nalgebra::Matrix::as_slice(self)
    }
    fn as_mut_slice(&mut self) -> &mut [T] {
        nalgebra::Matrix::as_mut_slice(self)
    }
    fn to_row_major(&self) -> Vec<T> {
        nalgebra::Matrix::as_slice(self).to_vec()
    }
    fn copy_from_row_major(&mut self, values: &[T]) {
        assert_eq!(
            values.len(),
            self.len(),
            "copy_from_row_major: {} values for a vector of length {}",
            values.len(),
            self.len()
        );
        nalgebra::Matrix::as_mut_slice(self).copy_from_slice(values);
    }
}

/// A tree of named parameter tensors of element type `T` (`f32` by default, or `f64`).
/// Derive it with `#[derive(Params)]`.
///
/// Every method visits the leaves in the same, stable order (fields in declaration order,
/// depth first) with the same dotted names, so an optimizer can keep its state in a `Vec`
/// indexed by visit order.
pub trait Params<T = f32> {
    /// Calls `f(name, tensor)` for every parameter tensor. `prefix` is the name of `self`
    /// (`""` at the root).
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &dyn Tensor<T>));
    /// Calls `f(name, tensor)` for every parameter tensor, mutably.
    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut dyn Tensor<T>));
    /// Walks `self` and `other` (a gradient of the same structure) together:
    /// `f(name, param, grad)`. Optimizers use this.
    #[allow(clippy::type_complexity)]
    fn visit_with(
        &mut self,
        other: &Self,
        prefix: &str,
        f: &mut dyn FnMut(&str, &mut dyn Tensor<T>, &dyn Tensor<T>),
    );

    /// The names of all tensors, in visit order.
    fn names(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.visit("", &mut |name, _| out.push(name.to_string()));
        out
    }
    /// The total number of scalar parameters.
    fn num_params(&self) -> usize {
        let mut n = 0;
        self.visit("", &mut |_, t| n += t.as_slice().len());
        n
    }
}

/// Joins a parent name and a field name with a dot (`"" + "w" = "w"`, `"a" + "w" = "a.w"`).
pub fn join_name(prefix: &str, field: &str) -> String {
    if prefix.is_empty() {
        field.to_string()
    } else {
        format!("{prefix}.{field}")
    }
}

macro_rules! leaf_params {
    ($($ty:ident),*) => {$(
        impl<T: Scalar> Params<T> for $ty<T> {
            fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &dyn Tensor<T>)) {
                f(prefix, self)
            }
            fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut dyn Tensor<T>)) {
                f(prefix, self)
            }
            fn visit_with(
                &mut self,
                other: &Self,
                prefix: &str,
                f: &mut dyn FnMut(&str, &mut dyn Tensor<T>, &dyn Tensor<T>),
            ) {
                f(prefix, self, other)
            }
        }
    )*};
}
leaf_params!(DMatrix, DVector);

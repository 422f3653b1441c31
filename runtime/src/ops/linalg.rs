//! Matrix products with a transposed operand, as functions: `matmul_nt(a, b) = a bᵀ` and
//! `matmul_tn(a, b) = aᵀ b`. They run on the runtime's GEMM with transpose flags, in the
//! original function as in the generated one (`a * b.transpose()` written with operators
//! is fused the same way by `#[differentiable]`, but nalgebra evaluates the original).

use crate::ad::linalg::{
    Scalar, matmul_nt, matmul_nt_grad_lhs, matmul_nt_grad_rhs, matmul_tn, matmul_tn_grad_lhs,
    matmul_tn_grad_rhs,
};
use nalgebra::DMatrix;

/// The lazy zero of a matrix gradient (no allocation).
fn none<T: Scalar>() -> DMatrix<T> {
    DMatrix::zeros(0, 0)
}

/// `a bᵀ` and its pullback: `da = g b`, `db = gᵀ a`.
#[allow(clippy::type_complexity)]
pub fn matmul_nt_pullback<T: Scalar>(
    a: &DMatrix<T>,
    b: &DMatrix<T>,
) -> (
    DMatrix<T>,
    impl FnOnce(&DMatrix<T>, &DMatrix<T>, DMatrix<T>, [bool; 2]) -> (DMatrix<T>, DMatrix<T>) + use<T>,
) {
    (matmul_nt(a, b), |a, b, g, need| {
        let ga = if need[0] {
            matmul_nt_grad_lhs(a, b, &g)
        } else {
            none()
        };
        let gb = if need[1] {
            matmul_nt_grad_rhs(a, b, &g)
        } else {
            none()
        };
        (ga, gb)
    })
}

/// `a bᵀ` and the gradients of `sum(seed .* a bᵀ)`: `(value, (da, db))`.
pub fn matmul_nt_vjp<T: Scalar>(
    a: &DMatrix<T>,
    b: &DMatrix<T>,
    seed: DMatrix<T>,
) -> (DMatrix<T>, (DMatrix<T>, DMatrix<T>)) {
    let (v, pb) = matmul_nt_pullback(a, b);
    (v, pb(a, b, seed, [true, true]))
}

/// `aᵀ b` and its pullback: `da = b gᵀ`, `db = a g`.
#[allow(clippy::type_complexity)]
pub fn matmul_tn_pullback<T: Scalar>(
    a: &DMatrix<T>,
    b: &DMatrix<T>,
) -> (
    DMatrix<T>,
    impl FnOnce(&DMatrix<T>, &DMatrix<T>, DMatrix<T>, [bool; 2]) -> (DMatrix<T>, DMatrix<T>) + use<T>,
) {
    (matmul_tn(a, b), |a, b, g, need| {
        let ga = if need[0] {
            matmul_tn_grad_lhs(a, b, &g)
        } else {
            none()
        };
        let gb = if need[1] {
            matmul_tn_grad_rhs(a, b, &g)
        } else {
            none()
        };
        (ga, gb)
    })
}

/// `aᵀ b` and the gradients of `sum(seed .* aᵀ b)`: `(value, (da, db))`.
pub fn matmul_tn_vjp<T: Scalar>(
    a: &DMatrix<T>,
    b: &DMatrix<T>,
    seed: DMatrix<T>,
) -> (DMatrix<T>, (DMatrix<T>, DMatrix<T>)) {
    let (v, pb) = matmul_tn_pullback(a, b);
    (v, pb(a, b, seed, [true, true]))
}

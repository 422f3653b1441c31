//! A stateless gradient-descent step for models of any element type (`f32` or `f64`): what an
//! f64 model (`Linear<f64>`, a `#[derive(Params)]` struct of f64 tensors) trains with. The
//! optimizers of this module ([`super::Sgd`], [`super::Adam`], ...) work on f32 models.

use crate::ad::linalg::Scalar;
use crate::params::{Params, Tensor};

/// `p -= lr * g` for every tensor of `params`, walking `grads` (a value of the same type and
/// structure) alongside.
///
/// # Panics
/// If a gradient tensor's size differs from its parameter's.
///
/// ```
/// use nalgebra::DVector;
/// let mut w = DVector::from_vec(vec![1.0_f64, -2.0]);
/// for _ in 0..100 {
///     let g = w.map(|x| 2.0 * x); // d/dw of |w|^2
///     symgrad_runtime::optim::gradient_step(&mut w, &g, 0.1);
/// }
/// assert!(w.norm() < 1e-6);
/// ```
pub fn gradient_step<T: Scalar, P: Params<T> + ?Sized>(params: &mut P, grads: &P, lr: T) {
    params.visit_with(
        grads,
        "",
        &mut |name, p: &mut dyn Tensor<T>, g: &dyn Tensor<T>| {
            let (p, g) = (p.as_mut_slice(), g.as_slice());
            assert_eq!(
                p.len(),
                g.len(),
                "gradient_step: gradient of `{name}` has {} elements but the parameter has {}",
                g.len(),
                p.len()
            );
            for (p, &g) in p.iter_mut().zip(g) {
                *p -= lr * g;
            }
        },
    );
}

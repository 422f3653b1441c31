use crate::ad::linalg::Scalar;
use crate::ops::{
    add_bias, add_bias_fwd, add_bias_pullback, add_bias_relu, add_bias_relu_pullback, matmul_nt,
    matmul_nt_pullback,
};
use nalgebra::{DMatrix, DVector};
use rand::Rng;
use rand::distributions::uniform::SampleUniform;
use symgrad_macro::{Params, differentiable};

/// A fully connected layer `y = x Wᵀ + b`, laid out as PyTorch's `nn.Linear`, of element
/// type `T`: `Linear` is `Linear<f32>`; `Linear<f64>` is the same layer in double precision.
///
/// `weight` is `[out_features, in_features]` and `bias` is `[out_features]`, so the tensors
/// map one-to-one to a PyTorch `state_dict` (`layer1.weight`, `layer1.bias`). A batch `x`
/// has one sample per row.
#[derive(Clone, Debug, PartialEq, Params)]
#[params(crate = crate)]
pub struct Linear<T = f32> {
    /// `[out_features, in_features]`
    pub weight: DMatrix<T>,
    /// `[out_features]`
    pub bias: DVector<T>,
}

impl<T: Scalar + SampleUniform> Linear<T> {
    /// PyTorch's default initialisation: weight and bias uniform in ±1/√in_features
    /// (`kaiming_uniform_(a=√5)` reduces to that bound), drawn from `rng`.
    ///
    /// # Panics
    /// If `in_features` is 0.
    /// (For `f32`, the draws are those of earlier versions, which computed in `f32` only.)
    pub fn new<R: Rng + ?Sized>(in_features: usize, out_features: usize, rng: &mut R) -> Self {
        assert!(in_features > 0, "Linear::new: in_features must be positive");
        let n: T = nalgebra::convert(in_features as f64);
        let bound = T::one() / n.sqrt();
        let weight = DMatrix::from_fn(out_features, in_features, |_, _| {
            rng.gen_range(-bound..bound)
        });
        let bias = DVector::from_fn(out_features, |_, _| rng.gen_range(-bound..bound));
        Linear { weight, bias }
    }

    /// A layer with the given weight `[out, in]` and bias `[out]`.
    ///
    /// # Panics
    /// If the bias length is not the weight's number of rows.
    pub fn from_parts(weight: DMatrix<T>, bias: DVector<T>) -> Self {
        assert_eq!(
            weight.nrows(),
            bias.len(),
            "Linear::from_parts: weight is {}x{} but bias has length {}",
            weight.nrows(),
            weight.ncols(),
            bias.len()
        );
        Linear { weight, bias }
    }

    /// The number of input features.
    pub fn in_features(&self) -> usize {
        self.weight.ncols()
    }

    /// The number of output features.
    pub fn out_features(&self) -> usize {
        self.weight.nrows()
    }
}

/// The differentiable methods, for `f32` and `f64` (the macro writes them for one concrete
/// element type at a time).
macro_rules! linear_methods {
    ($t:ident) => {
        impl Linear<$t> {
            /// `x Wᵀ + b` for a batch `x` (one sample per row), on the runtime's GEMM with a
            /// transpose flag. Its gradient, `forward_pullback`, is generated from the pullbacks of
            /// `matmul_nt` and `add_bias`: `dW = dYᵀ x`, `db = column sums of dY`, `dx = dY W`
            /// (skipped when the caller does not need it, as for the input data).
            #[differentiable(crate = crate)]
            pub fn forward(&self, x: &DMatrix<$t>) -> DMatrix<$t> {
                add_bias(&matmul_nt(x, &self.weight), &self.bias)
            }

            /// [`Linear::forward`] and its tangent (forward mode) along a tangent `d_self` of the
            /// layer (a `Linear` of weight and bias tangents) and `d_x` of the input:
            /// `dx Wᵀ + x dWᵀ + db`.
            pub fn forward_jvp(
                &self,
                x: &DMatrix<$t>,
                d_self: &Self,
                d_x: &DMatrix<$t>,
            ) -> (DMatrix<$t>, DMatrix<$t>) {
                self.forward_fwd(x, Some(d_self), Some(d_x))
            }

            /// [`Linear::forward`] in the forward-mode protocol: `None` is a zero tangent, for which
            /// no product is computed (the input data of a network, usually).
            #[doc(hidden)]
            pub fn forward_fwd(
                &self,
                x: &DMatrix<$t>,
                d_self: Option<&Self>,
                d_x: Option<&DMatrix<$t>>,
            ) -> (DMatrix<$t>, DMatrix<$t>) {
                let xw = matmul_nt(x, &self.weight);
                let t = match (d_self, d_x) {
                    (Some(d), Some(dx)) => {
                        crate::ad::tangent::matmul_nt_jvp(x, dx, &self.weight, &d.weight)
                    }
                    (Some(d), None) => matmul_nt(x, &d.weight),
                    (None, Some(dx)) => matmul_nt(dx, &self.weight),
                    (None, None) => DMatrix::zeros(xw.nrows(), xw.ncols()),
                };
                add_bias_fwd(&xw, &self.bias, Some(&t), d_self.map(|d| &d.bias))
            }

            /// `relu(x Wᵀ + b)`: the layer followed by a ReLU, with the bias and the ReLU fused into
            /// one pass over the product ([`add_bias_relu`]) and, in the gradient, the ReLU mask and
            /// the bias gradient fused into one pass over the seed. The value equals
            /// `relu(&self.forward(x))` bit for bit, and so do the gradients of `x` and the weight; the
            /// bias gradient's column sums are added in another order (up to rounding).
            #[differentiable(crate = crate)]
            pub fn forward_relu(&self, x: &DMatrix<$t>) -> DMatrix<$t> {
                add_bias_relu(&matmul_nt(x, &self.weight), &self.bias)
            }
        }
    };
}
linear_methods!(f32);
linear_methods!(f64);

/// The layers whose `.forward(x)` and `.forward_relu(x)` the second order
/// (`#[differentiable(hessian)]`) differentiates twice with [`Linear`]'s rule
/// (`x Wᵀ + b`). The macro checks the receiver of such a call with
/// [`second_order_linear`], so another type's `forward` is a compile error at the call rather
/// than a Hessian of the wrong function.
#[diagnostic::on_unimplemented(
    message = "`#[differentiable(hessian)]` has a second-order rule for `.forward(..)` and \
               `.forward_relu(..)` of symgrad's `Linear` only, not of `{Self}`",
    label = "not `Linear::forward`",
    note = "write the layer's computation out in the `hessian` function (`matmul_nt`, \
            `add_bias`, `relu`, ...) or make the layer a `Linear`"
)]
pub trait SecondOrderLinear {}

impl<T> SecondOrderLinear for Linear<T> {}
impl<L: SecondOrderLinear + ?Sized> SecondOrderLinear for &L {}

/// `true`, for a [`SecondOrderLinear`] receiver only: what the code `#[differentiable(hessian)]`
/// writes checks a `.forward(..)` receiver with (in a `debug_assert!`, so the check is at
/// compile time and costs nothing at run time).
pub fn second_order_linear<L: SecondOrderLinear + ?Sized>(_layer: &L) -> bool {
    true
}

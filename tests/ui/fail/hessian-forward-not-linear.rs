use symgrad::prelude::*;

/// A layer of the user's with the field names of `Linear` but another function: `x W + b`
/// (no transpose) and a `tanh`. `hessian` must not apply `Linear`'s rule to it.
#[derive(Clone, Params)]
struct Dense {
    weight: DMatrix<f64>,
    bias: DVector<f64>,
}

impl Dense {
    #[differentiable]
    fn forward(&self, x: &DMatrix<f64>) -> DMatrix<f64> {
        tanh(&add_bias(&(x * &self.weight), &self.bias))
    }
}

#[derive(Clone, Params)]
#[params(elem = f64)]
struct Net {
    layer: Dense,
}

#[differentiable(hessian, wrt(net))]
fn loss(net: &Net, x: &DMatrix<f64>) -> f64 {
    net.layer.forward(x).sum()
}

fn main() {}

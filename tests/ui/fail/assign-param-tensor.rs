use symgrad::prelude::*;

#[derive(Clone, Params)]
struct Net {
    layer: Linear,
}

#[differentiable(wrt(net))]
fn f(net: &Net, x: &DMatrix<f32>) -> f32 {
    net.layer.weight = x.clone();
    net.layer.forward(x).sum()
}

fn main() {}

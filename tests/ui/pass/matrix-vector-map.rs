use symgrad::prelude::*;

// Matrix-vector products, indexing, element-wise functions and a `map` closure, in f32.
#[differentiable]
fn f(w: &DMatrix<f32>, x: &DVector<f32>, s: f32) -> f32 {
    let y = w * x;
    let z = softplus(&(y.map(|v| v * v.tanh() + s) / s));
    z[0] + w[(0, 1)] + gelu(&z).sum()
}

fn main() {
    let w = DMatrix::from_element(2, 2, 0.5f32);
    let x = DVector::from_element(2, 1.0f32);
    let (_, (gw, gx, _)) = f_grad(&w, &x, 2.0);
    assert_eq!((gw.shape(), gx.len()), ((2, 2), 2));
}

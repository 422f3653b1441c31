use symgrad::differentiable;
use symgrad::nalgebra::DMatrix;

#[differentiable(forward)]
fn g(x: f64, n: usize) -> f64 {
    let mut s = 0.0;
    for i in 0..n {
        s = s * x + i as f64;
    }
    s
}

#[differentiable(forward, reverse)]
fn h(w: &DMatrix<f32>, xs: &[f32], k: [f32; 2]) -> f32 {
    (w * w.transpose()).sum() * xs[0] + k[1]
}

fn main() {
    let (v, t) = g_jvp(2.0, 3, 1.0);
    assert_eq!((v, t), (4.0, 1.0));
    let w = DMatrix::from_element(2, 2, 1.0f32);
    let (_, _) = h_jvp(&w, &[1.0], [0.0, 1.0], &w, &[0.0], [0.0, 0.0]);
    let (_, _) = h_vjp(&w, &[1.0], [0.0, 1.0], 1.0);
}

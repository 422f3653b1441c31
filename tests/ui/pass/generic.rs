use symgrad::differentiable;
use symgrad::num_traits::Float;

#[differentiable]
fn f<T: Float>(x: T, ys: &[T]) -> T {
    let mut s = x;
    for y in ys {
        s = s * *y + x.sin();
    }
    s
}

fn main() {
    let (_, (gx, gy)) = f_grad(1.5f32, &[0.5, 2.0]);
    let _: (f32, Vec<f32>) = (gx, gy);
    let (_, (gx, _)) = f_grad(1.5f64, &[0.5, 2.0]);
    let _: f64 = gx;
}

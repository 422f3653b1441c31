//! An f32 function: the gradient is f32 too.
use symgrad::differentiable;

#[differentiable]
fn f(x: f32, y: f32, v: [f32; 2]) -> f32 {
    let mut acc = x * y;
    for i in 0..2 {
        acc += v[i] * x.sin();
    }
    if acc > 0.0 {
        acc.sqrt() + y.exp()
    } else {
        acc * acc
    }
}

fn main() {
    let (v, (gx, gy, gv)): (f32, (f32, f32, [f32; 2])) = f_grad(0.5, 1.5, [1.0, -2.0]);
    assert_eq!(v, f(0.5, 1.5, [1.0, -2.0]));
    assert!(gx.is_finite() && gy.is_finite() && gv[0].is_finite());
    let (_, _): (f32, (f32, f32, [f32; 2])) = f_vjp(0.5, 1.5, [1.0, -2.0], 2.0f32);
}

use symgrad::differentiable;

#[differentiable(hessian, forward)]
fn f(x: f64, y: &[f64], n: usize) -> f64 {
    let mut s = x * x;
    for i in 0..n {
        s += y[i].sin() * x;
    }
    s
}

#[differentiable(hessian, wrt(a))]
fn g(a: [f32; 2], k: f32) -> f32 {
    a[0] * a[1] * k
}

fn main() {
    let y = [0.5, 1.0];
    let (value, (gx, gy), (hx, hy)) = f_hvp(1.0, &y, 2, 1.0, &[0.0, 1.0]);
    let _: (f64, f64, Vec<f64>, f64, Vec<f64>) = (value, gx, gy, hx, hy);
    let (_, _, h) = f_hessian(1.0, &y, 2);
    assert_eq!(h.nrows(), 3);
    let (_, ga, ha) = g_hvp([1.0, 2.0], 3.0, [1.0, 0.0]);
    let _: ([f32; 2], [f32; 2]) = (ga, ha);
    let (_, _, h) = g_hessian([1.0, 2.0], 3.0);
    assert_eq!(h[(0, 1)], 3.0);
}

use symgrad::prelude::*;

#[differentiable(hessian)]
fn quad(x: f64, y: f64) -> f64 {
    x * x * y + y.sin()
}

#[test]
fn smoke() {
    let (v, g, hv) = quad_hvp(1.0, 2.0, 1.0, 0.0);
    println!("{v} {g:?} {hv:?}");
    let (v, g, h) = quad_hessian(1.0, 2.0);
    println!("{v} {g:?} {h}");
}

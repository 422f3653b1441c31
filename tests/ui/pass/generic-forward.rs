use symgrad::differentiable;
use symgrad::num_traits::Float;

#[differentiable(forward)]
fn f<T: Float>(x: T) -> T {
    x * x
}

fn main() {
    let (_, t): (f32, f32) = f_jvp(1.5f32, 1.0);
    let (_, u): (f64, f64) = f_jvp(1.5f64, 1.0);
    assert_eq!((t, u), (3.0, 3.0));
}

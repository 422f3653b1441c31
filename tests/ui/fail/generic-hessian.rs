use symgrad::differentiable;
use symgrad::num_traits::Float;

#[differentiable(hessian)]
fn f<T: Float>(x: T) -> T {
    x * x
}

fn main() {}

use symgrad::differentiable;

#[differentiable(hessian)]
fn f(x: f64, y: f64) -> f64 {
    let a = x as f32;
    let b = (a * a) as f64;
    b * y
}

fn main() {}

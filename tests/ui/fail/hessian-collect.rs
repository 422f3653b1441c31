use symgrad::differentiable;

#[differentiable(hessian)]
fn f(xs: &[f64]) -> f64 {
    let e: Vec<f64> = xs.iter().map(|x| x.exp()).collect();
    e[0] * e[1]
}

fn main() {}

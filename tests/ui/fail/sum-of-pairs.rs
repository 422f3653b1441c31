use symgrad::differentiable;

#[differentiable]
fn f(xs: &[f64], ys: &[f64]) -> f64 {
    let s: f64 = xs.iter().zip(ys).map(|(a, b)| a * b).sum();
    s + xs.iter().zip(ys).count() as f64
}

#[differentiable]
fn g(xs: &[f64], ys: &[f64]) -> f64 {
    xs.iter().zip(ys).product()
}

fn main() {}

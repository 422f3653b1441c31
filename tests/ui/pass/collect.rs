use symgrad::differentiable;

#[differentiable]
fn f(xs: &[f64]) -> f64 {
    let ys: Vec<f64> = xs.iter().map(|x| x * 2.0).collect();
    ys.iter().sum::<f64>()
}

fn main() {}

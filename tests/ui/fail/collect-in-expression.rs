use symgrad::differentiable;

#[differentiable]
fn f(xs: &[f64]) -> f64 {
    let s: f64 = xs
        .iter()
        .map(|x| x * 2.0)
        .collect::<Vec<f64>>()
        .iter()
        .sum();
    s
}

fn main() {}

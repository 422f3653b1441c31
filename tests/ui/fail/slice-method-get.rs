use symgrad::differentiable;

#[differentiable]
fn f(xs: &[f64], i: usize) -> f64 {
    match xs.get(i) {
        Some(v) => v * 2.0,
        None => 0.0,
    }
}

fn main() {}

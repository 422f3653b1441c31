use symgrad::differentiable;

#[differentiable]
fn f(n: i32, k: usize) -> f64 {
    (n as f64) * (k as f64)
}

fn main() {}

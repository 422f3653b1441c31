use symgrad::differentiable;

#[differentiable]
fn fact(x: f64, n: usize) -> f64 {
    if n == 0 {
        return 1.0;
    }
    x * fact(x, n - 1)
}

fn main() {}

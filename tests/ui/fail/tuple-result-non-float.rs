use symgrad::differentiable;

#[differentiable]
fn f(x: f64) -> (f64, usize) {
    (x * x, 3)
}

fn main() {}

use symgrad::differentiable;

#[differentiable]
fn h(x: f64) -> f64 {
    x * x
}

#[differentiable]
fn f(x: f64) -> f64 {
    let (a, b) = (h(x), x);
    let (c, d) = if a > 1.0 { (a, b) } else { (b, a) };
    c * d
}

fn main() {}

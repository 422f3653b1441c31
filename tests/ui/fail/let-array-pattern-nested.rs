use symgrad::differentiable;

#[differentiable]
fn f(x: f64, y: f64) -> f64 {
    let m = [[x, y], [y, x]];
    let [[a, b], _] = m;
    a * b
}

fn main() {}

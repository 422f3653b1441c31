use symgrad::differentiable;

struct Point {
    x: f64,
    y: f64,
}

#[differentiable]
fn f(a: f64, b: f64) -> f64 {
    let p = Point { x: a, y: b };
    p.x * p.y
}

fn main() {}

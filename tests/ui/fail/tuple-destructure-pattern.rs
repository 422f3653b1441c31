use symgrad::differentiable;

#[differentiable]
fn polar(r: f64, t: f64) -> (f64, f64) {
    (r * t.cos(), r * t.sin())
}

#[differentiable]
fn f(r: f64, t: f64) -> f64 {
    let (x, ..) = polar(r, t);
    x
}

fn main() {}

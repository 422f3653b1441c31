use symgrad::differentiable;

#[differentiable]
fn f(x: f64, y: f64) -> f64 {
    let mut m = [[0.0; 2]; 2];
    m[0][1] = x;
    m[0][1] * y
}

fn main() {}

use symgrad::differentiable;

#[differentiable]
fn f(x: f64) -> f64 {
    let mut y = x;
    for _ in 0..10 {
        y = y * 2.0;
        if y > 5.0 {
            break;
        }
    }
    y
}

fn main() {}

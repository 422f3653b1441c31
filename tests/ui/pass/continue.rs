use symgrad::differentiable;

#[differentiable]
fn f(x: f64) -> f64 {
    let mut y = x;
    for i in 0..10 {
        if i == 3 {
            continue;
        }
        y = y * 2.0;
    }
    y
}

fn main() {}

use symgrad::differentiable;

#[differentiable]
fn f(x: f64) -> f64 {
    let mut s = x;
    for i in 0..4 {
        let y = if s > 2.0 { break } else { s * 2.0 };
        s = y + i as f64;
    }
    s
}

fn main() {}

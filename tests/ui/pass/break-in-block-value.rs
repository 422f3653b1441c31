use symgrad::differentiable;

#[differentiable]
fn f(x: f64) -> f64 {
    let mut s = x;
    for _ in 0..4 {
        let t = {
            if s > 3.0 {
                break;
            }
            s * 2.0
        };
        s = t;
    }
    s
}

fn main() {}

use symgrad::differentiable;

#[differentiable]
fn f(m: &[Vec<f64>]) -> f64 {
    let mut s = 0.0;
    for row in m {
        for &v in row {
            s += v * v;
        }
    }
    s
}

fn main() {}

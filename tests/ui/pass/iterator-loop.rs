use symgrad::differentiable;

#[differentiable]
fn f(a: &[f64]) -> f64 {
    let mut s = 0.0;
    for v in a.iter() {
        s += *v;
    }
    s
}

fn main() {}

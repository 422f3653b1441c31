use symgrad::differentiable;

#[differentiable]
fn f(x: f64, v: Vec<i32>) -> f64 {
    let mut v = v;
    let mut s = x;
    while let Some(k) = v.pop() {
        s = s * k as f64;
    }
    s
}

fn main() {}

use symgrad::differentiable;

#[differentiable]
fn f(x: f64) -> f64 {
    let g = |t: f64| {
        if t > 1.0 {
            return t;
        }
        t * t
    };
    g(x)
}

fn main() {}

use symgrad::differentiable;

#[differentiable]
fn f(xs: &[f64], front: bool) -> f64 {
    let part = if front { &xs[..2] } else { &xs[2..] };
    part[0] * part[1]
}

fn main() {}

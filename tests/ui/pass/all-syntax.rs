//! Every supported construct in one program; `main` runs the generated functions.
#![allow(dead_code, unused_assignments, clippy::all)]

use symgrad::differentiable;

const SCALE: f64 = 0.5;

mod inner {
    use symgrad::differentiable;

    #[differentiable]
    pub fn g(x: f64, y: f64) -> f64 {
        x * y.sin()
    }

    pub mod deeper {
        use symgrad::differentiable;

        #[differentiable(wrt(x))]
        pub fn h(x: f64, c: f64, n: i32) -> f64 {
            x.powi(n) * c
        }
    }
}

#[differentiable]
fn everything(x: f64, y: f64, v: [f64; 3], s: &[f64], n: usize) -> f64 {
    const LOCAL: f64 = 2.0;
    let a: f64 = x * y + SCALE - LOCAL / 4.0;
    let a = -(a * (x - y)) / (1.0 + y * y);
    let mut b = a;
    b += x;
    b -= y;
    b *= 1.5;
    b /= 2.0;
    b = b + v[0] * v[2];
    let m = x.sin()
        + x.cos()
        + (x * 0.1).tan()
        + (x * 0.1).asin()
        + (x * 0.1).acos()
        + x.atan()
        + x.atan2(y * y + 1.0)
        + x.sinh()
        + x.cosh()
        + x.tanh()
        + x.exp()
        + x.exp2()
        + (x * x + 1.0).ln()
        + (x * x + 1.0).log10()
        + (x * x + 1.0).log2()
        + (x * x + 1.0).log(3.0)
        + (x * x + 1.0).sqrt()
        + x.cbrt()
        + x.powi(3)
        + (x * x + 1.0).powf(y)
        + x.abs()
        + x.max(y)
        + x.min(y)
        + x.hypot(y)
        + (x * x + 1.0).recip()
        + x.mul_add(y, 1.0)
        + x.signum()
        + f64::sin(x)
        + f64::powf(x * x + 1.0, 0.5)
        + f64::max(x, 0.0);
    let t = if x > y {
        m * 2.0
    } else if x < -1.0 {
        m - 1.0
    } else {
        m
    };
    if t > 100.0 {
        return t;
    }
    let mut acc = t;
    for i in 0..n {
        acc = acc * 0.5 + (i as f64) * s[i];
    }
    for i in 1..=3 {
        acc += v[i - 1] * (i as f64);
    }
    for i in (0..n).rev() {
        acc += s[i] * y;
        if acc > 1e6 {
            return acc;
        }
    }
    acc + inner::g(x, y) + inner::deeper::h(x, 2.0, 3) + b
}

fn main() {
    let s = [0.1, 0.2, 0.3];
    let (v, (gx, gy, gv, gs)) = everything_grad(0.3, 0.4, [1.0, 2.0, 3.0], &s, 3);
    let _: f64 = gx + gy;
    let _: [f64; 3] = gv;
    let _: Vec<f64> = gs;
    let (v2, _) = everything_vjp(0.3, 0.4, [1.0, 2.0, 3.0], &s, 3, 2.0);
    assert_eq!(v, v2);
    assert_eq!(v, everything(0.3, 0.4, [1.0, 2.0, 3.0], &s, 3));
}

//! Forward mode (`#[differentiable(forward, reverse)]`, `NAME_jvp`).
//!
//! Every `_jvp` is checked at random points along random tangents `v`, against
//! - central finite differences of the ORIGINAL function along `v`, and
//! - the reverse mode of the same function: `<u, J v> = <Jᵀ u, v>` for a random `u`, with
//!   `Jᵀ u` from `_vjp` seeded with `u`;
//!
//! and the value it returns must be the function's. `checks_can_fail` shows that a tangent
//! off by a little fails both checks.

#![allow(
    clippy::needless_range_loop,
    clippy::type_complexity,
    clippy::excessive_precision,
    clippy::needless_return,
    clippy::assign_op_pattern,
    clippy::let_and_return
)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use symgrad::prelude::*;

const POINTS: usize = 25;

// ---------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------

/// A function with its flattened inputs and outputs.
struct Case<'a> {
    name: &'a str,
    /// The function, flattened.
    f: &'a dyn Fn(&[f64]) -> Vec<f64>,
    /// `(value, J v)`
    jvp: &'a dyn Fn(&[f64], &[f64]) -> (Vec<f64>, Vec<f64>),
    /// `Jᵀ u`
    vjp: &'a dyn Fn(&[f64], &[f64]) -> Vec<f64>,
    /// Relative tolerance of the finite-difference check (the dual check uses a tenth).
    tol: f64,
    /// Step of the finite differences.
    h: f64,
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

/// Checks the case at one point; `Err` says what failed.
fn check_at(c: &Case, x: &[f64], rng: &mut ChaCha8Rng) -> Result<(), String> {
    let v: Vec<f64> = x.iter().map(|_| rng.gen_range(-1.0..1.0)).collect();
    let (y, t) = (c.jvp)(x, &v);
    let y0 = (c.f)(x);
    if y.len() != y0.len()
        || y.iter()
            .zip(&y0)
            .any(|(a, b)| (a - b).abs() > 1e-12 * (1.0 + b.abs()))
    {
        return Err(format!(
            "{}: value {y:?} but the function gives {y0:?}",
            c.name
        ));
    }
    // Finite differences along v.
    let xp: Vec<f64> = x.iter().zip(&v).map(|(a, b)| a + c.h * b).collect();
    let xm: Vec<f64> = x.iter().zip(&v).map(|(a, b)| a - c.h * b).collect();
    let (fp, fm) = ((c.f)(&xp), (c.f)(&xm));
    let fd: Vec<f64> = fp
        .iter()
        .zip(&fm)
        .map(|(a, b)| (a - b) / (2.0 * c.h))
        .collect();
    let diff: Vec<f64> = t.iter().zip(&fd).map(|(a, b)| a - b).collect();
    let scale = 1.0 + norm(&fd);
    if norm(&diff) > c.tol * scale {
        return Err(format!(
            "{} at {x:?} along {v:?}: jvp {t:?}, finite differences {fd:?}",
            c.name
        ));
    }
    // The reverse mode: <u, J v> = <Jᵀ u, v>.
    let u: Vec<f64> = y.iter().map(|_| rng.gen_range(-1.0..1.0)).collect();
    let lhs = dot(&u, &t);
    let jtu = (c.vjp)(x, &u);
    let rhs = dot(&jtu, &v);
    let scale = 1.0 + norm(&u) * norm(&t) + norm(&jtu) * norm(&v);
    if (lhs - rhs).abs() > 0.1 * c.tol * scale {
        return Err(format!(
            "{} at {x:?}: <u, Jv> = {lhs} but <J^T u, v> = {rhs}",
            c.name
        ));
    }
    Ok(())
}

/// Checks the case at `POINTS` points drawn by `point`.
fn check(c: &Case, mut point: impl FnMut(&mut ChaCha8Rng) -> Vec<f64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    for _ in 0..POINTS {
        let x = point(&mut rng);
        if let Err(e) = check_at(c, &x, &mut rng) {
            panic!("{e}");
        }
    }
}

fn uniform(n: usize, lo: f64, hi: f64) -> impl FnMut(&mut ChaCha8Rng) -> Vec<f64> {
    move |r| (0..n).map(|_| r.gen_range(lo..hi)).collect()
}

/// f64 scalar functions: tolerance and step.
const F64: (f64, f64) = (1e-6, 1e-6);
/// f32 functions (evaluated in f32, checked in f64).
const F32: (f64, f64) = (3e-3, 1e-2);

// ---------------------------------------------------------------------------------------
// Straight-line code and every math function
// ---------------------------------------------------------------------------------------

#[differentiable(forward, reverse)]
fn straight(x: f64, y: f64) -> f64 {
    let a = x * y + x.sin();
    let b = a - y / x;
    let c = -b * 2.0 + 3.0 / y - (x - 1.0);
    c * c + a
}

#[differentiable(forward, reverse)]
fn all_math(x: f64, y: f64) -> f64 {
    let a = x.sin() + x.cos() + (0.3 * x).tan() + (0.2 * x).asin() + (0.2 * y).acos();
    let b = x.atan() + x.atan2(y) + (0.5 * x).sinh() + (0.5 * y).cosh() + x.tanh();
    let c = (0.3 * x).exp() + (0.3 * y).exp2() + y.ln() + y.log10() + y.log2();
    let d = y.log(3.0) + y.log(x + 1.5) + y.sqrt() + x.cbrt() + x.powi(3) + y.powf(x);
    let e = (x - 3.0).powf(2.0) + (x - y).abs() + x.max(y) + x.min(y) + x.hypot(y);
    let g = y.recip() + x.mul_add(y, x) + x.signum() + 2.0f64.powf(x) + x.max(1.0);
    a + b + c + d + e + g
}

#[differentiable(forward, reverse)]
fn path_forms(x: f64, y: f64) -> f64 {
    f64::sin(x) * f64::exp(y) + f64::atan2(x, y) + f64::hypot(x, 2.0) + f64::mul_add(x, 2.0, y)
}

fn c2(f: impl Fn(f64, f64) -> f64 + 'static) -> impl Fn(&[f64]) -> Vec<f64> {
    move |x| vec![f(x[0], x[1])]
}

macro_rules! case2 {
    ($f:ident, $jvp:ident, $vjp:ident) => {
        Case {
            name: stringify!($f),
            f: &c2($f),
            jvp: &|x, v| {
                let (y, t) = $jvp(x[0], x[1], v[0], v[1]);
                (vec![y], vec![t])
            },
            vjp: &|x, u| {
                let (_, (a, b)) = $vjp(x[0], x[1], u[0]);
                vec![a, b]
            },
            tol: F64.0,
            h: F64.1,
        }
    };
}

#[test]
fn straight_line() {
    check(
        &case2!(straight, straight_jvp, straight_vjp),
        uniform(2, 0.5, 2.0),
    );
}

#[test]
fn every_math_function() {
    // |x - y| and max/min away from ties.
    check(&case2!(all_math, all_math_jvp, all_math_vjp), |r| {
        let x = r.gen_range(0.5..1.0);
        vec![x, r.gen_range(1.2..2.5)]
    });
    check(
        &case2!(path_forms, path_forms_jvp, path_forms_vjp),
        uniform(2, 0.5, 2.0),
    );
}

#[test]
fn checks_can_fail() {
    let wrong = |x: &[f64], v: &[f64]| {
        let (y, t) = straight_jvp(x[0], x[1], v[0], v[1]);
        (vec![y], vec![t * (1.0 + 1e-4)])
    };
    let mut c = case2!(straight, straight_jvp, straight_vjp);
    c.jvp = &wrong;
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let failures = (0..10)
        .filter(|_| check_at(&c, &[1.3, 0.7], &mut rng).is_err())
        .count();
    assert_eq!(failures, 10);
    // A correct tangent against a wrong reverse mode fails the dual check only.
    let wrong_vjp = |x: &[f64], u: &[f64]| {
        let (_, (a, b)) = straight_vjp(x[0], x[1], u[0]);
        vec![a * (1.0 + 1e-4), b]
    };
    let mut c = case2!(straight, straight_jvp, straight_vjp);
    c.vjp = &wrong_vjp;
    let e = check_at(&c, &[1.3, 0.7], &mut rng).unwrap_err();
    assert!(e.contains("<u, Jv>"), "{e}");
}

// ---------------------------------------------------------------------------------------
// Control flow
// ---------------------------------------------------------------------------------------

#[differentiable(forward, reverse)]
fn branches(x: f64, y: f64) -> f64 {
    let mut a = x * y;
    if x > 1.0 {
        a = a * x.sin();
    } else {
        a = a + y;
    }
    let b = if y > 1.0 { a * 2.0 } else { 3.0 };
    a + b * x
}

#[differentiable(forward, reverse)]
fn chain(x: f64, y: f64) -> f64 {
    let r = if x < 0.5 {
        x * y
    } else if x < 1.0 {
        y.exp()
    } else if x < 1.5 {
        x.sin() * 4.0
    } else {
        2.0
    };
    r * y + x
}

#[differentiable(forward, reverse)]
fn early(x: f64, y: f64) -> f64 {
    if x > 1.5 {
        return x * y;
    }
    let mut s = y;
    for i in 0..4 {
        s = s * x + (i as f64);
        if s > 10.0 {
            return s.sqrt();
        }
    }
    s - y
}

#[differentiable(forward, reverse)]
fn loops(x: f64, y: f64) -> f64 {
    let mut s = 0.0;
    let mut p = 1.0;
    for i in 0..5 {
        s += p * x.sin();
        p = p * y;
        for j in 0..3 {
            s = s + (j as f64) * x * p - (i as f64);
        }
    }
    s + p
}

/// Away from the branch boundaries of the control-flow cases.
fn off_boundaries(r: &mut ChaCha8Rng) -> Vec<f64> {
    loop {
        let x: f64 = r.gen_range(0.1..2.0);
        let y: f64 = r.gen_range(0.3..1.8);
        let near = |a: f64, b: f64| (a - b).abs() < 1e-3;
        if [0.5, 1.0, 1.5].iter().any(|&b| near(x, b)) || near(y, 1.0) {
            continue;
        }
        // early: the loop's test s > 10.
        let mut s = y;
        let mut close = false;
        if x <= 1.5 {
            for i in 0..4 {
                s = s * x + i as f64;
                close |= (s - 10.0).abs() < 1e-2;
                if s > 10.0 {
                    break;
                }
            }
        }
        if !close {
            return vec![x, y];
        }
    }
}

#[test]
fn if_else_chain_and_early_returns() {
    check(
        &case2!(branches, branches_jvp, branches_vjp),
        off_boundaries,
    );
    check(&case2!(chain, chain_jvp, chain_vjp), off_boundaries);
    check(&case2!(early, early_jvp, early_vjp), off_boundaries);
    // The first return: d(x y)/dx = y.
    assert_eq!(early_jvp(1.8, 0.5, 1.0, 0.0), (0.9, 0.5));
    // The return inside the loop (s > 10 at i = 3): sqrt(s).
    let (v, _) = early_jvp(1.4, 1.7, 1.0, 0.0);
    assert_eq!(v, early(1.4, 1.7));
    assert!((v - 14.29072f64.sqrt()).abs() < 1e-9, "{v}");
}

#[test]
fn for_loops_carried_and_nested() {
    check(&case2!(loops, loops_jvp, loops_vjp), uniform(2, 0.2, 1.5));
}

// ---------------------------------------------------------------------------------------
// Slices, arrays, calls
// ---------------------------------------------------------------------------------------

#[differentiable(forward, reverse)]
fn rosenbrock(x: &[f64]) -> f64 {
    let mut s = 0.0;
    for i in 0..x.len() - 1 {
        let a = x[i + 1] - x[i] * x[i];
        let b = 1.0 - x[i];
        s += 100.0 * a * a + b * b;
    }
    s
}

#[differentiable(forward, reverse)]
fn horner(c: &[f64], x: f64, n: usize) -> f64 {
    let mut acc = c[n - 1];
    for k in (0..n - 1).rev() {
        acc = acc * x + c[k];
    }
    acc
}

#[differentiable(forward, reverse)]
fn arrays(a: [f64; 3], b: &[f64; 2]) -> f64 {
    a[0] * b[1] + a[1].sin() * a[2] - b[0] / a[2]
}

#[differentiable(forward, reverse)]
fn inner(x: f64, y: f64) -> f64 {
    x * y.exp() + x.sin()
}

#[differentiable(forward, reverse, wrt(x))]
fn scaled(x: f64, k: f64) -> f64 {
    k * x * x
}

#[differentiable(forward, reverse)]
fn calls(x: f64, y: f64) -> f64 {
    // an active argument into each parameter, an inactive one (a constant) into an active
    // parameter, an inactive parameter of the callee.
    let a = inner(x, y);
    let b = inner(2.0, x);
    let c = scaled(a, 3.0);
    a + b * c
}

#[test]
fn slices_arrays_and_calls() {
    let n = 6;
    let c = Case {
        name: "rosenbrock",
        f: &|x| vec![rosenbrock(x)],
        jvp: &|x, v| {
            let (y, t) = rosenbrock_jvp(x, v);
            (vec![y], vec![t])
        },
        vjp: &|x, u| rosenbrock_vjp(x, u[0]).1,
        tol: F64.0,
        h: F64.1,
    };
    check(&c, uniform(n, -1.5, 1.5));
    let c = Case {
        name: "horner",
        f: &|x| vec![horner(&x[..4], x[4], 4)],
        jvp: &|x, v| {
            let (y, t) = horner_jvp(&x[..4], x[4], 4, &v[..4], v[4]);
            (vec![y], vec![t])
        },
        vjp: &|x, u| {
            let (_, (mut gc, gx)) = horner_vjp(&x[..4], x[4], 4, u[0]);
            gc.push(gx);
            gc
        },
        tol: F64.0,
        h: F64.1,
    };
    check(&c, uniform(5, -1.5, 1.5));
    let c = Case {
        name: "arrays",
        f: &|x| vec![arrays([x[0], x[1], x[2]], &[x[3], x[4]])],
        jvp: &|x, v| {
            let (y, t) = arrays_jvp(
                [x[0], x[1], x[2]],
                &[x[3], x[4]],
                [v[0], v[1], v[2]],
                &[v[3], v[4]],
            );
            (vec![y], vec![t])
        },
        vjp: &|x, u| {
            let (_, (ga, gb)) = arrays_vjp([x[0], x[1], x[2]], &[x[3], x[4]], u[0]);
            vec![ga[0], ga[1], ga[2], gb[0], gb[1]]
        },
        tol: F64.0,
        h: F64.1,
    };
    check(&c, uniform(5, 0.5, 2.0));
    check(&case2!(calls, calls_jvp, calls_vjp), uniform(2, 0.3, 1.2));
    // wrt(x): the tangent of a constant parameter is not an argument.
    assert_eq!(scaled_jvp(2.0, 3.0, 1.0), (12.0, 12.0));
}

// ---------------------------------------------------------------------------------------
// f32
// ---------------------------------------------------------------------------------------

#[differentiable(forward, reverse)]
fn straight32(x: f32, y: f32) -> f32 {
    let a = x * y + x.sin() * y.exp();
    let b = if a > 1.0 { a.sqrt() } else { a * a };
    b / y + x.powi(2)
}

#[differentiable(forward, reverse)]
fn loop32(x: &[f32], w: f32) -> f32 {
    let mut s = 0.0;
    for i in 0..x.len() {
        s = s * w + x[i].tanh();
    }
    s
}

#[test]
fn f32_functions() {
    let c = Case {
        name: "straight32",
        f: &|x| vec![straight32(x[0] as f32, x[1] as f32) as f64],
        jvp: &|x, v| {
            let (y, t) = straight32_jvp(x[0] as f32, x[1] as f32, v[0] as f32, v[1] as f32);
            (vec![y as f64], vec![t as f64])
        },
        vjp: &|x, u| {
            let (_, (a, b)) = straight32_vjp(x[0] as f32, x[1] as f32, u[0] as f32);
            vec![a as f64, b as f64]
        },
        tol: F32.0,
        h: F32.1,
    };
    check(&c, |r| {
        // away from the branch at a = 1
        loop {
            let (x, y) = (r.gen_range(0.3..1.5f64), r.gen_range(0.5..1.5f64));
            let a = x * y + x.sin() * y.exp();
            if (a - 1.0).abs() > 0.05 {
                return vec![x, y];
            }
        }
    });
    let f32s = |x: &[f64]| -> Vec<f32> { x.iter().map(|&v| v as f32).collect() };
    let c = Case {
        name: "loop32",
        f: &|x| vec![loop32(&f32s(&x[..5]), x[5] as f32) as f64],
        jvp: &|x, v| {
            let (y, t) = loop32_jvp(&f32s(&x[..5]), x[5] as f32, &f32s(&v[..5]), v[5] as f32);
            (vec![y as f64], vec![t as f64])
        },
        vjp: &|x, u| {
            let (_, (gx, gw)) = loop32_vjp(&f32s(&x[..5]), x[5] as f32, u[0] as f32);
            let mut g: Vec<f64> = gx.iter().map(|&v| v as f64).collect();
            g.push(gw as f64);
            g
        },
        tol: F32.0,
        h: F32.1,
    };
    check(&c, uniform(6, -1.0, 1.0));
}

// ---------------------------------------------------------------------------------------
// Matrices and a parameter struct
// ---------------------------------------------------------------------------------------

#[differentiable(forward, reverse)]
fn matrices(a: &DMatrix<f64>, b: &DMatrix<f64>, s: f64) -> DMatrix<f64> {
    let c = a * b.transpose();
    let d = a.transpose() * b;
    let e = c.clone() * s - c.component_mul(&c) / 2.0;
    e * d.sum() + c.transpose().transpose() * s.sin()
}

#[differentiable(forward, reverse)]
fn matrix_loss(a: &DMatrix<f64>, b: &DMatrix<f64>) -> f64 {
    let m = matrices(a, b, 0.7);
    let r = relu(&m);
    let p = softmax(&(r.clone() - m.clone()));
    (p.component_mul(&m)).mean() + tanh(&m).sum() + sigmoid(a).sum()
}

fn mats(x: &[f64]) -> (DMatrix<f64>, DMatrix<f64>) {
    (
        DMatrix::from_column_slice(3, 2, &x[..6]),
        DMatrix::from_column_slice(3, 2, &x[6..12]),
    )
}

#[test]
fn matrix_functions() {
    let c = Case {
        name: "matrices",
        f: &|x| {
            let (a, b) = mats(x);
            matrices(&a, &b, x[12]).as_slice().to_vec()
        },
        jvp: &|x, v| {
            let (a, b) = mats(x);
            let (da, db) = mats(v);
            let (y, t) = matrices_jvp(&a, &b, x[12], &da, &db, v[12]);
            (y.as_slice().to_vec(), t.as_slice().to_vec())
        },
        vjp: &|x, u| {
            let (a, b) = mats(x);
            let (_, (ga, gb, gs)) =
                matrices_vjp(&a, &b, x[12], DMatrix::from_column_slice(3, 3, u));
            let mut g = ga.as_slice().to_vec();
            g.extend_from_slice(gb.as_slice());
            g.push(gs);
            g
        },
        tol: F64.0,
        h: F64.1,
    };
    check(&c, uniform(13, -1.0, 1.0));
    let c = Case {
        name: "matrix_loss",
        f: &|x| {
            let (a, b) = mats(x);
            vec![matrix_loss(&a, &b)]
        },
        jvp: &|x, v| {
            let (a, b) = mats(x);
            let (da, db) = mats(v);
            let (y, t) = matrix_loss_jvp(&a, &b, &da, &db);
            (vec![y], vec![t])
        },
        vjp: &|x, u| {
            let (a, b) = mats(x);
            let (_, (ga, gb)) = matrix_loss_vjp(&a, &b, u[0]);
            let mut g = ga.as_slice().to_vec();
            g.extend_from_slice(gb.as_slice());
            g
        },
        tol: 1e-5,
        h: F64.1,
    };
    // relu's kink: points where no entry of `matrices` is near 0.
    check(&c, |r| {
        loop {
            let x: Vec<f64> = (0..12).map(|_| r.gen_range(-1.0..1.0)).collect();
            let (a, b) = mats(&x);
            if matrices(&a, &b, 0.7).iter().all(|v| v.abs() > 1e-3) {
                return x;
            }
        }
    });
}

#[derive(Clone, Debug, Params)]
struct Net {
    layer1: Linear,
    layer2: Linear,
}

impl Net {
    #[differentiable(forward, reverse, wrt(self))]
    fn loss(&self, x: &DMatrix<f32>, labels: &[u8]) -> f32 {
        let h = relu(&self.layer1.forward(x));
        let logits = self.layer2.forward(&h);
        cross_entropy(&logits, labels) + 0.01 * l2_penalty(&self.layer2.weight)
    }
}

#[differentiable(forward, reverse, wrt(net))]
fn net_loss(net: &Net, x: &DMatrix<f32>, labels: &[u8]) -> f32 {
    let h = tanh(&add_bias(
        &matmul_nt(x, &net.layer1.weight),
        &net.layer1.bias,
    ));
    let l = net.loss(x, labels);
    let o = net.layer2.forward(&h);
    l + cross_entropy(&o, labels) * 0.5
}

/// The parameters of a `Net`, flattened (and back).
fn flat(n: &Net) -> Vec<f64> {
    let mut out = Vec::new();
    n.visit("", &mut |_, t| {
        out.extend(t.as_slice().iter().map(|&v| v as f64))
    });
    out
}
fn unflat(like: &Net, x: &[f64]) -> Net {
    let mut n = like.clone();
    let mut k = 0;
    n.visit_mut("", &mut |_, t| {
        for v in t.as_mut_slice() {
            *v = x[k] as f32;
            k += 1;
        }
    });
    assert_eq!(k, x.len());
    n
}

#[test]
fn parameter_struct_and_methods() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let base = Net {
        layer1: Linear::new(5, 8, &mut rng),
        layer2: Linear::new(8, 4, &mut rng),
    };
    let x = DMatrix::from_fn(6, 5, |_, _| rng.gen_range(-1.0..1.0f32));
    let labels = [0u8, 1, 2, 3, 1, 0];
    let p0 = flat(&base);
    let f = |p: &[f64]| vec![net_loss(&unflat(&base, p), &x, &labels) as f64];
    let jvp = |p: &[f64], v: &[f64]| {
        let (y, t) = net_loss_jvp(&unflat(&base, p), &x, &labels, &unflat(&base, v));
        (vec![y as f64], vec![t as f64])
    };
    let vjp =
        |p: &[f64], u: &[f64]| flat(&net_loss_vjp(&unflat(&base, p), &x, &labels, u[0] as f32).1);
    let c = Case {
        name: "net_loss",
        f: &f,
        jvp: &jvp,
        vjp: &vjp,
        tol: 1e-2,
        h: 1e-2,
    };
    // Small moves around the initial parameters (relu kinks are crossed rarely).
    let mut ok = 0;
    let mut r2 = ChaCha8Rng::seed_from_u64(3);
    for _ in 0..POINTS {
        let p: Vec<f64> = p0.iter().map(|&v| v + r2.gen_range(-0.05..0.05)).collect();
        if check_at(&c, &p, &mut r2).is_ok() {
            ok += 1;
        }
    }
    assert!(ok >= POINTS * 4 / 5, "{ok} of {POINTS} points pass");
    // The method alone, and Linear's hand-written jvp.
    let d = unflat(&base, &p0.iter().map(|v| v * 0.5 - 0.1).collect::<Vec<_>>());
    let (y, t) = base.loss_jvp(&x, &labels, &d);
    assert_eq!(y, base.loss(&x, &labels));
    let g = base.loss_vjp(&x, &labels, 1.0).1;
    let want: f64 = flat(&g).iter().zip(flat(&d)).map(|(a, b)| a * b).sum();
    assert!(
        (t as f64 - want).abs() < 1e-4 * (1.0 + want.abs()),
        "{t} vs {want}"
    );
    let dx = DMatrix::from_fn(6, 5, |i, j| ((i + 2 * j) as f32).sin());
    let (y, t) = base.layer1.forward_jvp(&x, &d.layer1, &dx);
    assert_eq!(y, base.layer1.forward(&x));
    let want = &dx * base.layer1.weight.transpose() + &x * d.layer1.weight.transpose();
    let want = DMatrix::from_fn(6, 8, |i, j| want[(i, j)] + d.layer1.bias[j]);
    assert!((t - want).amax() < 1e-5);
}

// ---------------------------------------------------------------------------------------
// Phis with a constant side, phis of references, loops with branches and matrices
// ---------------------------------------------------------------------------------------

#[differentiable(forward, reverse)]
fn mixed(x: f64, y: f64, a: &DMatrix<f64>, b: &DMatrix<f64>) -> f64 {
    // a constant on one side, an active value on the other
    let p = if x > 1.0 { x * y } else { 2.0 };
    let r = if y > 1.0 { 3.0 } else { y.sin() };
    let m = if y > 1.0 { a.clone() } else { b.clone() };
    if x > 1.8 {
        return p * r;
    }
    let q = inner(p, 3.0) + m.sum() * r;
    q
}

/// A phi of two parameters (references): forward mode only (the reverse mode's pullback
/// cannot keep a borrowed phi); its reverse twin clones them.
#[differentiable(forward)]
fn ref_phi(y: f64, a: &DMatrix<f64>, b: &DMatrix<f64>) -> f64 {
    let m = if y > 1.0 { a } else { b };
    (m * y).sum()
}

#[differentiable(reverse)]
fn ref_phi_twin(y: f64, a: &DMatrix<f64>, b: &DMatrix<f64>) -> f64 {
    let m = if y > 1.0 { a.clone() } else { b.clone() };
    (m * y).sum()
}

#[differentiable(forward, reverse)]
fn matrix_loop(a: &DMatrix<f64>, s: f64, n: usize) -> f64 {
    let mut m = a.clone();
    let mut t = 0.0;
    for i in 0..n {
        if i % 2 == 0 {
            m = m.clone() * s + a.clone();
        } else {
            m = m.component_mul(a);
            t = t + m.mean();
        }
        if t > 50.0 {
            return t;
        }
    }
    m.sum() + t
}

#[test]
fn phis_and_matrix_loops() {
    let c = Case {
        name: "mixed",
        f: &|x| {
            let (a, b) = mats(&x[2..]);
            vec![mixed(x[0], x[1], &a, &b)]
        },
        jvp: &|x, v| {
            let (a, b) = mats(&x[2..]);
            let (da, db) = mats(&v[2..]);
            let (y, t) = mixed_jvp(x[0], x[1], &a, &b, v[0], v[1], &da, &db);
            (vec![y], vec![t])
        },
        vjp: &|x, u| {
            let (a, b) = mats(&x[2..]);
            let (_, (gx, gy, ga, gb)) = mixed_vjp(x[0], x[1], &a, &b, u[0]);
            let mut g = vec![gx, gy];
            g.extend_from_slice(ga.as_slice());
            g.extend_from_slice(gb.as_slice());
            g
        },
        tol: F64.0,
        h: F64.1,
    };
    let mut paths = std::collections::BTreeSet::new();
    check(&c, |r| {
        loop {
            let mut x: Vec<f64> = (0..14).map(|_| r.gen_range(-1.0..1.0)).collect();
            x[0] = r.gen_range(0.2..2.5);
            x[1] = r.gen_range(0.2..2.0);
            if [1.0, 1.8].iter().all(|b| (x[0] - b).abs() > 1e-3) && (x[1] - 1.0).abs() > 1e-3 {
                paths.insert((x[0] > 1.0, x[0] > 1.8, x[1] > 1.0));
                return x;
            }
        }
    });
    assert!(paths.len() >= 5, "{paths:?}");

    let c = Case {
        name: "ref_phi",
        f: &|x| {
            let (a, b) = mats(&x[1..]);
            vec![ref_phi(x[0], &a, &b)]
        },
        jvp: &|x, v| {
            let (a, b) = mats(&x[1..]);
            let (da, db) = mats(&v[1..]);
            let (y, t) = ref_phi_jvp(x[0], &a, &b, v[0], &da, &db);
            (vec![y], vec![t])
        },
        vjp: &|x, u| {
            let (a, b) = mats(&x[1..]);
            let (_, (gy, ga, gb)) = ref_phi_twin_vjp(x[0], &a, &b, u[0]);
            let mut g = vec![gy];
            g.extend_from_slice(ga.as_slice());
            g.extend_from_slice(gb.as_slice());
            g
        },
        tol: F64.0,
        h: F64.1,
    };
    let (a, b) = mats(&[0.5; 12]);
    assert_eq!(ref_phi(0.5, &a, &b), ref_phi_twin(0.5, &a, &b));
    check(&c, |r| {
        let mut x: Vec<f64> = (0..13).map(|_| r.gen_range(-1.0..1.0)).collect();
        x[0] = if r.gen_bool(0.5) { 0.5 } else { 1.5 } + r.gen_range(-0.4..0.4);
        x
    });

    let c = Case {
        name: "matrix_loop",
        f: &|x| {
            vec![matrix_loop(
                &DMatrix::from_column_slice(2, 2, &x[..4]),
                x[4],
                5,
            )]
        },
        jvp: &|x, v| {
            let a = DMatrix::from_column_slice(2, 2, &x[..4]);
            let da = DMatrix::from_column_slice(2, 2, &v[..4]);
            let (y, t) = matrix_loop_jvp(&a, x[4], 5, &da, v[4]);
            (vec![y], vec![t])
        },
        vjp: &|x, u| {
            let a = DMatrix::from_column_slice(2, 2, &x[..4]);
            let (_, (ga, gs)) = matrix_loop_vjp(&a, x[4], 5, u[0]);
            let mut g = ga.as_slice().to_vec();
            g.push(gs);
            g
        },
        tol: 1e-5,
        h: F64.1,
    };
    check(&c, uniform(5, -1.5, 1.5));
    // The early return is taken somewhere (t > 50 needs large entries).
    let a = DMatrix::from_element(2, 2, 3.0);
    let (v, _) = matrix_loop_jvp(&a, 2.0, 5, &a, 1.0);
    assert_eq!(v, matrix_loop(&a, 2.0, 5));
    assert!(v > 50.0 && v < matrix_loop(&a, 2.0, 4) + 1e9);
    let c2 = Case {
        name: "matrix_loop large",
        f: &|x| {
            vec![matrix_loop(
                &DMatrix::from_column_slice(2, 2, &x[..4]),
                x[4],
                5,
            )]
        },
        ..c
    };
    check(&c2, |r| {
        let mut x: Vec<f64> = (0..4).map(|_| r.gen_range(2.5..3.5)).collect();
        x.push(r.gen_range(1.5..2.5));
        x
    });
}

// ---------------------------------------------------------------------------------------
// More parameter types (DVector, Vec by value, a matrix by value, wrt), no_grad, and every
// tensor function through generated code
// ---------------------------------------------------------------------------------------

#[differentiable(forward, reverse)]
fn vector_types(v: &DVector<f64>, w: Vec<f64>, m: DMatrix<f64>) -> f64 {
    v.sum() * w[1] + (m.clone() * 2.0).mean() + w[0] * v.mean() + w[2] * m.sum()
}

#[differentiable(forward, reverse)]
fn detached(x: f64, y: f64) -> f64 {
    no_grad(x) * y + x
}

#[differentiable(forward, reverse, wrt(a, b, bias))]
fn tensor_ops(a: &DMatrix<f64>, b: &DMatrix<f64>, bias: &DVector<f64>, mask: &DMatrix<f64>) -> f64 {
    let c = matmul_tn(a, b);
    let d = add_col_bias(&c, bias);
    let e = add_bias(&d, bias);
    let f = leaky_relu(&e, 0.1);
    let g = log_softmax(&f);
    let h = dropout(a, mask);
    let k = matmul_nt(&h, b);
    mse(&g, &c) + l2_penalty(&k) * 0.1 + sigmoid(&k).mean()
}

#[test]
fn more_types_and_tensor_functions() {
    let c = Case {
        name: "vector_types",
        f: &|x| {
            let m = DMatrix::from_column_slice(2, 2, &x[6..10]);
            vec![vector_types(
                &DVector::from_column_slice(&x[..3]),
                x[3..6].to_vec(),
                m,
            )]
        },
        jvp: &|x, t| {
            let m = DMatrix::from_column_slice(2, 2, &x[6..10]);
            let dm = DMatrix::from_column_slice(2, 2, &t[6..10]);
            let (y, d) = vector_types_jvp(
                &DVector::from_column_slice(&x[..3]),
                x[3..6].to_vec(),
                m,
                &DVector::from_column_slice(&t[..3]),
                t[3..6].to_vec(),
                dm,
            );
            (vec![y], vec![d])
        },
        vjp: &|x, u| {
            let m = DMatrix::from_column_slice(2, 2, &x[6..10]);
            let (_, (gv, gw, gm)) = vector_types_vjp(
                &DVector::from_column_slice(&x[..3]),
                x[3..6].to_vec(),
                m,
                u[0],
            );
            let mut g = gv.as_slice().to_vec();
            g.extend(gw);
            g.extend_from_slice(gm.as_slice());
            g
        },
        tol: F64.0,
        h: F64.1,
    };
    check(&c, uniform(10, -1.0, 1.0));
    // no_grad: the tangent does not flow through it, as the gradient does not.
    assert_eq!(detached_jvp(2.0, 3.0, 1.0, 0.0), (8.0, 1.0));
    assert_eq!(detached_jvp(2.0, 3.0, 0.0, 1.0), (8.0, 2.0));
    assert_eq!(detached_grad(2.0, 3.0), (8.0, (1.0, 2.0)));
    assert_eq!(detached(2.0, 3.0), 8.0);

    let mask = DMatrix::from_fn(3, 2, |i, j| if (i + j) % 3 == 0 { 0.0 } else { 1.5 });
    let split = |x: &[f64]| {
        let (a, b) = mats(&x[..12]);
        (a, b, DVector::from_column_slice(&x[12..14]))
    };
    let c = Case {
        name: "tensor_ops",
        f: &|x| {
            let (a, b, bias) = split(x);
            vec![tensor_ops(&a, &b, &bias, &mask)]
        },
        jvp: &|x, t| {
            let (a, b, bias) = split(x);
            let (da, db, dbias) = split(t);
            let (y, d) = tensor_ops_jvp(&a, &b, &bias, &mask, &da, &db, &dbias);
            (vec![y], vec![d])
        },
        vjp: &|x, u| {
            let (a, b, bias) = split(x);
            let (_, (ga, gb, gbias)) = tensor_ops_vjp(&a, &b, &bias, &mask, u[0]);
            let mut g = ga.as_slice().to_vec();
            g.extend_from_slice(gb.as_slice());
            g.extend_from_slice(gbias.as_slice());
            g
        },
        tol: 1e-5,
        h: F64.1,
    };
    // leaky_relu's kink: no entry of e near 0.
    check(&c, |r| {
        loop {
            let x: Vec<f64> = (0..14).map(|_| r.gen_range(-1.0..1.0)).collect();
            let (a, b, bias) = split(&x);
            let e = add_bias(&add_col_bias(&matmul_tn(&a, &b), &bias), &bias);
            if e.iter().all(|v| v.abs() > 1e-3) {
                return x;
            }
        }
    });
}

// ---------------------------------------------------------------------------------------
// #[custom_jvp]: hand-written forward rules called from generated code
// ---------------------------------------------------------------------------------------

/// `ln(1 + e^(k x)) / k`; `k` is a constant.
fn softplus(x: f64, k: f64) -> f64 {
    (1.0 + (k * x).exp()).ln() / k
}

#[custom_jvp(wrt(x))]
fn softplus_jvp(x: f64, k: f64, dx: f64) -> (f64, f64) {
    (softplus(x, k), dx / (1.0 + (-k * x).exp()))
}

#[custom_vjp(wrt(x))]
fn softplus_vjp(x: f64, k: f64, seed: f64) -> (f64, f64) {
    (softplus(x, k), seed / (1.0 + (-k * x).exp()))
}

/// The squared Frobenius norm.
fn frob(m: &DMatrix<f64>) -> f64 {
    m.norm_squared()
}

#[custom_jvp]
fn frob_jvp(m: &DMatrix<f64>, dm: &DMatrix<f64>) -> (f64, f64) {
    (frob(m), 2.0 * m.dot(dm))
}

#[custom_vjp]
fn frob_vjp(m: &DMatrix<f64>, seed: f64) -> (f64, DMatrix<f64>) {
    (frob(m), m * (2.0 * seed))
}

#[differentiable(forward, reverse, wrt(x, y, a))]
fn uses_custom(x: f64, y: f64, a: &DMatrix<f64>, b: &DMatrix<f64>) -> f64 {
    softplus(x * y, 2.0) + softplus(y, 3.0) * x + frob(a) * y + frob(b) * x
}

#[test]
fn custom_jvp_functions() {
    let c = Case {
        name: "uses_custom",
        f: &|x| {
            let (a, b) = mats(&x[2..]);
            vec![uses_custom(x[0], x[1], &a, &b)]
        },
        jvp: &|x, t| {
            let (a, b) = mats(&x[2..]);
            let (da, _) = mats(&t[2..]);
            let (y, d) = uses_custom_jvp(x[0], x[1], &a, &b, t[0], t[1], &da);
            (vec![y], vec![d])
        },
        vjp: &|x, u| {
            let (a, b) = mats(&x[2..]);
            let (_, (gx, gy, ga)) = uses_custom_vjp(x[0], x[1], &a, &b, u[0]);
            let mut g = vec![gx, gy];
            g.extend_from_slice(ga.as_slice());
            g.extend(std::iter::repeat_n(0.0, 6)); // b is a constant
            g
        },
        tol: F64.0,
        h: F64.1,
    };
    // `b` is a constant (no tangent): the directions move (x, y, a) only.
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for _ in 0..POINTS {
        let mut x: Vec<f64> = (0..14).map(|_| rng.gen_range(-1.0..1.0)).collect();
        x[0] = rng.gen_range(0.2..1.5);
        let v: Vec<f64> = (0..14)
            .map(|i| if i < 8 { rng.gen_range(-1.0..1.0) } else { 0.0 })
            .collect();
        let (y, t) = (c.jvp)(&x, &v);
        assert_eq!(y[0], (c.f)(&x)[0]);
        let h = 1e-6;
        let xp: Vec<f64> = x.iter().zip(&v).map(|(a, b)| a + h * b).collect();
        let xm: Vec<f64> = x.iter().zip(&v).map(|(a, b)| a - h * b).collect();
        let fd = ((c.f)(&xp)[0] - (c.f)(&xm)[0]) / (2.0 * h);
        assert!(
            (t[0] - fd).abs() < 1e-6 * (1.0 + fd.abs()),
            "{} vs {fd}",
            t[0]
        );
        let u = rng.gen_range(-1.0..1.0);
        let jtu = (c.vjp)(&x, &[u]);
        assert!((u * t[0] - dot(&jtu, &v)).abs() < 1e-9 * (1.0 + t[0].abs()));
    }
}

//! Second order of matrix functions and parameter structs (`#[differentiable(hessian)]` on
//! functions of `&DMatrix<T>`, `&DVector<T>` and `&Net`): every `_hvp` is checked at random
//! points along random `v` against Richardson-extrapolated central differences of `_grad`
//! along `v`, its value against the function and its gradient against `_grad`'s, for each
//! matrix operation alone and for small MLPs (f64, and f32 with a looser tolerance). Closed
//! form by hand: `f(W) = ½‖W x‖²` has `H V = (V x) xᵀ`. `checks_can_fail` shows the harness
//! rejects an `H v` off by 1e-4.

#![allow(clippy::type_complexity)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use symgrad::prelude::*;

const POINTS: usize = 5;

// ---------------------------------------------------------------------------------------
// Harness: functions of the flattened parameters (column-major per matrix, in order).
// ---------------------------------------------------------------------------------------

struct Case<'a> {
    name: &'a str,
    n: usize,
    f: &'a dyn Fn(&[f64]) -> f64,
    grad: &'a dyn Fn(&[f64]) -> (f64, Vec<f64>),
    hvp: &'a dyn Fn(&[f64], &[f64]) -> (f64, Vec<f64>, Vec<f64>),
    tol: f64,
    /// The central-difference step.
    h: f64,
}

fn close(a: f64, b: f64, tol: f64, scale: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + b.abs().max(scale))
}

fn norm(a: &[f64]) -> f64 {
    a.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// Richardson-extrapolated central differences of `_grad` along `v`.
fn fd_hv(c: &Case, x: &[f64], v: &[f64]) -> Vec<f64> {
    let d = |h: f64| -> Vec<f64> {
        let xp: Vec<f64> = x.iter().zip(v).map(|(a, b)| a + h * b).collect();
        let xm: Vec<f64> = x.iter().zip(v).map(|(a, b)| a - h * b).collect();
        let (gp, gm) = ((c.grad)(&xp).1, (c.grad)(&xm).1);
        gp.iter()
            .zip(&gm)
            .map(|(p, m)| (p - m) / (2.0 * h))
            .collect()
    };
    let (d1, d2) = (d(c.h), d(c.h / 2.0));
    d1.iter()
        .zip(&d2)
        .map(|(a, b)| (4.0 * b - a) / 3.0)
        .collect()
}

fn check_at(c: &Case, x: &[f64], rng: &mut ChaCha8Rng) -> Result<(), String> {
    let v: Vec<f64> = (0..c.n).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let (y, g, hv) = (c.hvp)(x, &v);
    let y0 = (c.f)(x);
    let (yg, g0) = (c.grad)(x);
    if !close(y, y0, c.tol, 0.0) || !close(yg, y0, c.tol, 0.0) {
        return Err(format!("value {y} (grad {yg}), function {y0}"));
    }
    let gs = norm(&g0);
    for i in 0..c.n {
        if !close(g[i], g0[i], c.tol, gs) {
            return Err(format!("gradient[{i}] {} vs _grad {}", g[i], g0[i]));
        }
    }
    let want = fd_hv(c, x, &v);
    let s = norm(&want);
    for i in 0..c.n {
        if !close(hv[i], want[i], c.tol, s) {
            return Err(format!("H v[{i}] {} vs differences {}", hv[i], want[i]));
        }
    }
    Ok(())
}

fn run(c: &Case) {
    let mut rng = ChaCha8Rng::seed_from_u64(c.n as u64 * 7 + c.name.len() as u64);
    for p in 0..POINTS {
        let x: Vec<f64> = (0..c.n).map(|_| rng.gen_range(-1.0..1.0)).collect();
        if let Err(e) = check_at(c, &x, &mut rng) {
            panic!("{} at point {p}: {e}", c.name);
        }
    }
}

/// Column-major pieces of `x`, one per shape.
fn mats(x: &[f64], shapes: &[(usize, usize)]) -> Vec<DMatrix<f64>> {
    let mut out = Vec::new();
    let mut o = 0;
    for &(r, c) in shapes {
        out.push(DMatrix::from_column_slice(r, c, &x[o..o + r * c]));
        o += r * c;
    }
    assert_eq!(o, x.len());
    out
}

fn flat(ms: &[&[f64]]) -> Vec<f64> {
    ms.iter().flat_map(|m| m.iter().copied()).collect()
}

fn data(rows: usize, cols: usize, seed: u64) -> DMatrix<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    DMatrix::from_fn(rows, cols, |_, _| rng.gen_range(-1.0..1.0))
}

// ---------------------------------------------------------------------------------------
// One matrix operation at a time (the tangent rule of each, and its reverse).
// ---------------------------------------------------------------------------------------

/// `½‖W x‖²`: `H V = (V x) xᵀ` (closed form below).
#[differentiable(hessian, wrt(w))]
fn half_sq(w: &DMatrix<f64>, x: &DMatrix<f64>) -> f64 {
    let y = w * x;
    0.5 * y.component_mul(&y).sum()
}

#[differentiable(hessian)]
fn nt_tanh(a: &DMatrix<f64>, b: &DMatrix<f64>) -> f64 {
    let c = matmul_nt(a, b);
    tanh(&c).sum()
}

#[differentiable(hessian)]
fn tn_ops(a: &DMatrix<f64>, b: &DMatrix<f64>) -> f64 {
    let c = a.transpose() * b;
    let d = matmul_tn(a, b);
    c.component_mul(&d).sum() * 0.25 + c.mean() * d.sum()
}

#[differentiable(hessian)]
fn nt_sigmoid(a: &DMatrix<f64>, b: &DMatrix<f64>) -> f64 {
    let c = a * b.transpose();
    let s = sigmoid(&c);
    s.component_mul(&c).sum()
}

#[differentiable(hessian)]
fn elementwise(w: &DMatrix<f64>, v: &DMatrix<f64>) -> f64 {
    let a = w * 2.0 - v;
    let b = (a + w).component_mul(v);
    let c = -b.clone() / 3.0;
    c.sum() * b.mean() + l2_penalty(w)
}

#[differentiable(hessian, wrt(w, b))]
fn bias_softmax(w: &DMatrix<f64>, b: &DVector<f64>, x: &DMatrix<f64>) -> f64 {
    let z = add_bias(&matmul_nt(x, w), b);
    let p = softmax(&z);
    p.component_mul(&z).sum()
}

#[differentiable(hessian, wrt(w, b))]
fn bias_relu_ce(w: &DMatrix<f64>, b: &DVector<f64>, x: &DMatrix<f64>, labels: &[u8]) -> f64 {
    let z = add_bias_relu(&matmul_nt(x, w), b);
    let h = relu(&add_bias(&z, b));
    cross_entropy(&(h + z * 0.5), labels)
}

#[differentiable(hessian)]
fn col_bias(w: &DMatrix<f64>, b: &DVector<f64>) -> f64 {
    let z = add_col_bias(&(w * w.transpose()), b);
    let t = tanh(&z);
    t.component_mul(&t).sum()
}

fn matrix_case(
    name: &str,
    shapes: &[(usize, usize)],
    f: &dyn Fn(&[DMatrix<f64>]) -> f64,
    grad: &dyn Fn(&[DMatrix<f64>]) -> (f64, Vec<DMatrix<f64>>),
    hvp: &dyn Fn(&[DMatrix<f64>], &[DMatrix<f64>]) -> (f64, Vec<DMatrix<f64>>, Vec<DMatrix<f64>>),
) {
    let n: usize = shapes.iter().map(|(r, c)| r * c).sum();
    let cat = |ms: &[DMatrix<f64>]| -> Vec<f64> {
        flat(&ms.iter().map(|m| m.as_slice()).collect::<Vec<_>>())
    };
    let c = Case {
        name,
        n,
        f: &|x| f(&mats(x, shapes)),
        grad: &|x| {
            let (y, g) = grad(&mats(x, shapes));
            (y, cat(&g))
        },
        hvp: &|x, v| {
            let (y, g, hv) = hvp(&mats(x, shapes), &mats(v, shapes));
            (y, cat(&g), cat(&hv))
        },
        tol: 1e-6,
        h: 1e-3,
    };
    run(&c);
}

fn col(v: &DVector<f64>) -> DMatrix<f64> {
    DMatrix::from_column_slice(v.len(), 1, v.as_slice())
}

fn vecof(m: &DMatrix<f64>) -> DVector<f64> {
    DVector::from_column_slice(m.as_slice())
}

#[test]
fn half_sq_closed_form() {
    let x = data(4, 3, 1);
    let w = data(2, 4, 2);
    let v = data(2, 4, 3);
    let (y, g, hv) = half_sq_hvp(&w, &x, &v);
    let wx = &w * &x;
    assert!((y - 0.5 * wx.norm_squared()).abs() < 1e-12);
    assert!((g - &wx * x.transpose()).amax() < 1e-12);
    let want = (&v * &x) * x.transpose();
    assert!((hv - want).amax() < 1e-12);
    matrix_case(
        "half_sq",
        &[(2, 4)],
        &|m| half_sq(&m[0], &x),
        &|m| {
            let (y, g) = half_sq_grad(&m[0], &x);
            (y, vec![g])
        },
        &|m, v| {
            let (y, g, h) = half_sq_hvp(&m[0], &x, &v[0]);
            (y, vec![g], vec![h])
        },
    );
}

#[test]
fn matmul_forms() {
    matrix_case(
        "nt_tanh",
        &[(3, 4), (2, 4)],
        &|m| nt_tanh(&m[0], &m[1]),
        &|m| {
            let (y, (a, b)) = nt_tanh_grad(&m[0], &m[1]);
            (y, vec![a, b])
        },
        &|m, v| {
            let (y, (a, b), (ha, hb)) = nt_tanh_hvp(&m[0], &m[1], &v[0], &v[1]);
            (y, vec![a, b], vec![ha, hb])
        },
    );
    matrix_case(
        "tn_ops",
        &[(3, 2), (3, 2)],
        &|m| tn_ops(&m[0], &m[1]),
        &|m| {
            let (y, (a, b)) = tn_ops_grad(&m[0], &m[1]);
            (y, vec![a, b])
        },
        &|m, v| {
            let (y, (a, b), (ha, hb)) = tn_ops_hvp(&m[0], &m[1], &v[0], &v[1]);
            (y, vec![a, b], vec![ha, hb])
        },
    );
    matrix_case(
        "nt_sigmoid",
        &[(3, 4), (2, 4)],
        &|m| nt_sigmoid(&m[0], &m[1]),
        &|m| {
            let (y, (a, b)) = nt_sigmoid_grad(&m[0], &m[1]);
            (y, vec![a, b])
        },
        &|m, v| {
            let (y, (a, b), (ha, hb)) = nt_sigmoid_hvp(&m[0], &m[1], &v[0], &v[1]);
            (y, vec![a, b], vec![ha, hb])
        },
    );
}

#[test]
fn elementwise_and_scalars() {
    matrix_case(
        "elementwise",
        &[(3, 2), (3, 2)],
        &|m| elementwise(&m[0], &m[1]),
        &|m| {
            let (y, (a, b)) = elementwise_grad(&m[0], &m[1]);
            (y, vec![a, b])
        },
        &|m, v| {
            let (y, (a, b), (ha, hb)) = elementwise_hvp(&m[0], &m[1], &v[0], &v[1]);
            (y, vec![a, b], vec![ha, hb])
        },
    );
}

#[test]
fn bias_activations_and_losses() {
    let x = data(5, 3, 4);
    let labels = [0u8, 2, 1, 3, 2];
    matrix_case(
        "bias_softmax",
        &[(4, 3), (4, 1)],
        &|m| bias_softmax(&m[0], &vecof(&m[1]), &x),
        &|m| {
            let (y, (a, b)) = bias_softmax_grad(&m[0], &vecof(&m[1]), &x);
            (y, vec![a, col(&b)])
        },
        &|m, v| {
            let (y, (a, b), (ha, hb)) =
                bias_softmax_hvp(&m[0], &vecof(&m[1]), &x, &v[0], &vecof(&v[1]));
            (y, vec![a, col(&b)], vec![ha, col(&hb)])
        },
    );
    matrix_case(
        "bias_relu_ce",
        &[(4, 3), (4, 1)],
        &|m| bias_relu_ce(&m[0], &vecof(&m[1]), &x, &labels),
        &|m| {
            let (y, (a, b)) = bias_relu_ce_grad(&m[0], &vecof(&m[1]), &x, &labels);
            (y, vec![a, col(&b)])
        },
        &|m, v| {
            let (y, (a, b), (ha, hb)) =
                bias_relu_ce_hvp(&m[0], &vecof(&m[1]), &x, &labels, &v[0], &vecof(&v[1]));
            (y, vec![a, col(&b)], vec![ha, col(&hb)])
        },
    );
    matrix_case(
        "col_bias",
        &[(3, 2), (3, 1)],
        &|m| col_bias(&m[0], &vecof(&m[1])),
        &|m| {
            let (y, (a, b)) = col_bias_grad(&m[0], &vecof(&m[1]));
            (y, vec![a, col(&b)])
        },
        &|m, v| {
            let (y, (a, b), (ha, hb)) = col_bias_hvp(&m[0], &vecof(&m[1]), &v[0], &vecof(&v[1]));
            (y, vec![a, col(&b)], vec![ha, col(&hb)])
        },
    );
}

// ---------------------------------------------------------------------------------------
// Parameter structs: small MLPs, `loss_hvp(model, x, labels, v: &Net) -> (T, Net, Net)`.
// ---------------------------------------------------------------------------------------

#[derive(Clone, Params)]
struct Net {
    layer1: Linear<f64>,
    layer2: Linear<f64>,
    layer3: Linear<f64>,
}

#[differentiable(hessian, wrt(model))]
fn net_loss(model: &Net, x: &DMatrix<f64>, labels: &[u8]) -> f64 {
    let h1 = model.layer1.forward_relu(x);
    let h2 = tanh(&model.layer2.forward(&h1));
    let logits = model.layer3.forward(&h2);
    cross_entropy(&logits, labels)
}

fn net_shapes(sizes: &[usize]) -> Vec<(usize, usize)> {
    let mut s = Vec::new();
    for w in sizes.windows(2) {
        s.push((w[1], w[0]));
        s.push((w[1], 1));
    }
    s
}

fn net_from(x: &[f64], sizes: &[usize]) -> Net {
    let m = mats(x, &net_shapes(sizes));
    let layer = |i: usize| Linear::from_parts(m[2 * i].clone(), vecof(&m[2 * i + 1]));
    Net {
        layer1: layer(0),
        layer2: layer(1),
        layer3: layer(2),
    }
}

fn net_flat(n: &Net) -> Vec<f64> {
    flat(&[
        n.layer1.weight.as_slice(),
        n.layer1.bias.as_slice(),
        n.layer2.weight.as_slice(),
        n.layer2.bias.as_slice(),
        n.layer3.weight.as_slice(),
        n.layer3.bias.as_slice(),
    ])
}

#[test]
fn mlp_f64() {
    let sizes = [5, 4, 3, 3];
    let x = data(6, 5, 9);
    let labels = [0u8, 1, 2, 2, 1, 0];
    let n: usize = net_shapes(&sizes).iter().map(|(r, c)| r * c).sum();
    let c = Case {
        name: "mlp_f64",
        n,
        f: &|p| net_loss(&net_from(p, &sizes), &x, &labels),
        grad: &|p| {
            let (y, g) = net_loss_grad(&net_from(p, &sizes), &x, &labels);
            (y, net_flat(&g))
        },
        hvp: &|p, v| {
            let (y, g, hv) = net_loss_hvp(&net_from(p, &sizes), &x, &labels, &net_from(v, &sizes));
            (y, net_flat(&g), net_flat(&hv))
        },
        tol: 1e-6,
        h: 1e-3,
    };
    run(&c);
}

#[derive(Clone, Params)]
struct Net32 {
    layer1: Linear,
    layer2: Linear,
    layer3: Linear,
}

/// The MNIST example's loss, in f32.
#[differentiable(hessian, wrt(model))]
fn net32_loss(model: &Net32, x: &DMatrix<f32>, labels: &[u8]) -> f32 {
    let h1 = model.layer1.forward_relu(x);
    let h2 = model.layer2.forward_relu(&h1);
    let logits = model.layer3.forward(&h2);
    cross_entropy(&logits, labels)
}

fn net32_from(x: &[f64], sizes: &[usize]) -> Net32 {
    let n = net_from(x, sizes);
    let l = |l: &Linear<f64>| {
        Linear::from_parts(l.weight.clone().cast::<f32>(), l.bias.clone().cast::<f32>())
    };
    Net32 {
        layer1: l(&n.layer1),
        layer2: l(&n.layer2),
        layer3: l(&n.layer3),
    }
}

fn net32_flat(n: &Net32) -> Vec<f64> {
    let l = |l: &Linear| {
        Linear::from_parts(l.weight.clone().cast::<f64>(), l.bias.clone().cast::<f64>())
    };
    net_flat(&Net {
        layer1: l(&n.layer1),
        layer2: l(&n.layer2),
        layer3: l(&n.layer3),
    })
}

#[test]
fn mlp_f32() {
    let sizes = [6, 5, 4, 3];
    let x = data(8, 6, 10).cast::<f32>();
    let labels = [0u8, 1, 2, 2, 1, 0, 1, 2];
    let n: usize = net_shapes(&sizes).iter().map(|(r, c)| r * c).sum();
    let c = Case {
        name: "mlp_f32",
        n,
        f: &|p| net32_loss(&net32_from(p, &sizes), &x, &labels) as f64,
        grad: &|p| {
            let (y, g) = net32_loss_grad(&net32_from(p, &sizes), &x, &labels);
            (y as f64, net32_flat(&g))
        },
        hvp: &|p, v| {
            let (y, g, hv) =
                net32_loss_hvp(&net32_from(p, &sizes), &x, &labels, &net32_from(v, &sizes));
            (y as f64, net32_flat(&g), net32_flat(&hv))
        },
        tol: 2e-2,
        h: 2e-3,
    };
    run(&c);
}

/// The harness rejects an `H v` off by 1e-4 in one entry.
#[test]
fn checks_can_fail() {
    let x = data(4, 3, 1);
    let shapes = [(2usize, 4usize)];
    let c = Case {
        name: "wrong",
        n: 8,
        f: &|p| half_sq(&mats(p, &shapes)[0], &x),
        grad: &|p| {
            let (y, g) = half_sq_grad(&mats(p, &shapes)[0], &x);
            (y, g.as_slice().to_vec())
        },
        hvp: &|p, v| {
            let m = mats(p, &shapes);
            let vm = mats(v, &shapes);
            let (y, g, mut h) = half_sq_hvp(&m[0], &x, &vm[0]);
            h[(1, 2)] += 1e-4 * h.amax();
            (y, g.as_slice().to_vec(), h.as_slice().to_vec())
        },
        tol: 1e-6,
        h: 1e-3,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let p: Vec<f64> = (0..8).map(|_| rng.gen_range(-1.0..1.0)).collect();
    assert!(check_at(&c, &p, &mut rng).is_err());
}

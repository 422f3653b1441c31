//! Second order (`#[differentiable(hessian)]`, `NAME_hvp`, `NAME_hessian`).
//!
//! Every `_hvp` is checked at random points along random `v` against central finite
//! differences of `_grad` along `v` (`(∇f(x + h v) - ∇f(x - h v)) / 2h`, Richardson
//! extrapolated), its value and gradient against the function and `_grad`; every `_hessian`
//! is checked for symmetry and column by column against the same finite differences. Closed
//! forms derived by hand: the Rosenbrock Hessian, `xᵀAx` (Hessian `A + Aᵀ`), a polynomial of
//! two scalars. `checks_can_fail` shows that the harness catches a wrong `H v`.

#![allow(
    dead_code,
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

const POINTS: usize = 20;

// ---------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------

/// A function with flattened inputs.
struct Case<'a> {
    name: &'a str,
    n: usize,
    f: &'a dyn Fn(&[f64]) -> f64,
    /// `_grad`: (value, gradient)
    grad: &'a dyn Fn(&[f64]) -> (f64, Vec<f64>),
    /// `_hvp`: (value, gradient, H v)
    hvp: &'a dyn Fn(&[f64], &[f64]) -> (f64, Vec<f64>, Vec<f64>),
    /// `_hessian`: (value, gradient, H row-major)
    hess: &'a dyn Fn(&[f64]) -> (f64, Vec<f64>, DMatrix<f64>),
    /// Relative tolerance (f32 cases are looser).
    tol: f64,
    /// Where the points are drawn: `[lo, hi)` per input.
    range: (f64, f64),
}

fn close(a: f64, b: f64, tol: f64, scale: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + b.abs().max(scale))
}

fn norm(a: &[f64]) -> f64 {
    a.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// Richardson-extrapolated central differences of `_grad` along `v`.
fn fd_hv(c: &Case, x: &[f64], v: &[f64], h: f64) -> Vec<f64> {
    let d = |h: f64| -> Vec<f64> {
        let xp: Vec<f64> = x.iter().zip(v).map(|(a, b)| a + h * b).collect();
        let xm: Vec<f64> = x.iter().zip(v).map(|(a, b)| a - h * b).collect();
        let (gp, gm) = ((c.grad)(&xp).1, (c.grad)(&xm).1);
        gp.iter()
            .zip(&gm)
            .map(|(p, m)| (p - m) / (2.0 * h))
            .collect()
    };
    let (d1, d2) = (d(h), d(h / 2.0));
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
    let fd = fd_hv(c, x, &v, 1e-3);
    let s = norm(&fd);
    for i in 0..c.n {
        if !close(hv[i], fd[i], c.tol, s) {
            return Err(format!(
                "(H v)[{i}] = {} vs finite differences {} at x = {x:?}, v = {v:?}",
                hv[i], fd[i]
            ));
        }
    }
    // The Hessian: symmetric, value and gradient as `_grad`, columns as finite differences.
    let (yh, gh, h) = (c.hess)(x);
    if h.nrows() != c.n || h.ncols() != c.n {
        return Err(format!("Hessian is {}x{}", h.nrows(), h.ncols()));
    }
    if !close(yh, y0, c.tol, 0.0) || gh.iter().zip(&g0).any(|(a, b)| !close(*a, *b, c.tol, gs)) {
        return Err("_hessian's value or gradient".into());
    }
    for i in 0..c.n {
        for j in 0..c.n {
            if h[(i, j)] != h[(j, i)] {
                return Err(format!("Hessian not symmetric at ({i}, {j})"));
            }
        }
        let mut e = vec![0.0; c.n];
        e[i] = 1.0;
        let col = fd_hv(c, x, &e, 1e-3);
        let s = norm(&col);
        for j in 0..c.n {
            if !close(h[(j, i)], col[j], c.tol, s) {
                return Err(format!(
                    "H[{j}, {i}] = {} vs finite differences {}",
                    h[(j, i)],
                    col[j]
                ));
            }
        }
    }
    Ok(())
}

fn check(c: &Case) {
    let mut rng = ChaCha8Rng::seed_from_u64(c.name.len() as u64 * 7919 + c.n as u64);
    for _ in 0..POINTS {
        let x: Vec<f64> = (0..c.n)
            .map(|_| rng.gen_range(c.range.0..c.range.1))
            .collect();
        if let Err(e) = check_at(c, &x, &mut rng) {
            panic!("{}: {e}", c.name);
        }
    }
}

fn v2(a: (f64, f64)) -> Vec<f64> {
    vec![a.0, a.1]
}

// ---------------------------------------------------------------------------------------
// Closed forms
// ---------------------------------------------------------------------------------------

#[differentiable(hessian)]
fn rosenbrock(x: &[f64]) -> f64 {
    let mut s = 0.0;
    for i in 0..x.len() - 1 {
        let a = x[i + 1] - x[i] * x[i];
        let b = 1.0 - x[i];
        s += 100.0 * a * a + b * b;
    }
    s
}

/// The Rosenbrock Hessian, by hand: with f = Σ 100 (x_{i+1} - x_i²)² + (1 - x_i)²,
/// ∂²f/∂x_i² = 1200 x_i² - 400 x_{i+1} + 2 (i < n-1) + 200 (i > 0),
/// ∂²f/∂x_i∂x_{i+1} = -400 x_i.
fn rosenbrock_hessian_by_hand(x: &[f64]) -> DMatrix<f64> {
    let n = x.len();
    let mut h = DMatrix::zeros(n, n);
    for i in 0..n {
        if i + 1 < n {
            h[(i, i)] += 1200.0 * x[i] * x[i] - 400.0 * x[i + 1] + 2.0;
            h[(i, i + 1)] = -400.0 * x[i];
            h[(i + 1, i)] = -400.0 * x[i];
        }
        if i > 0 {
            h[(i, i)] += 200.0;
        }
    }
    h
}

#[test]
fn rosenbrock_closed_form() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for n in [2usize, 3, 7] {
        let x: Vec<f64> = (0..n).map(|_| rng.gen_range(-2.0..2.0)).collect();
        let (_, _, h) = rosenbrock_hessian(&x);
        let want = rosenbrock_hessian_by_hand(&x);
        for i in 0..n {
            for j in 0..n {
                assert!(
                    (h[(i, j)] - want[(i, j)]).abs() <= 1e-9 * (1.0 + want[(i, j)].abs()),
                    "n = {n}: H[{i},{j}] = {} vs {}",
                    h[(i, j)],
                    want[(i, j)]
                );
            }
        }
        // H v against the by-hand matrix times v.
        let v: Vec<f64> = (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let (y, g, hv) = rosenbrock_hvp(&x, &v);
        let (y0, g0) = rosenbrock_grad(&x);
        assert_eq!(y, y0);
        for i in 0..n {
            assert!((g[i] - g0[i]).abs() <= 1e-12 * (1.0 + g0[i].abs()));
            let want: f64 = (0..n).map(|j| want[(i, j)] * v[j]).sum();
            assert!((hv[i] - want).abs() <= 1e-9 * (1.0 + want.abs()), "{i}");
        }
    }
}

/// `xᵀ A x` with a constant `A` (an inactive slice): the Hessian is `A + Aᵀ`.
#[differentiable(hessian, wrt(x))]
fn quadratic_form(x: &[f64; 3], a: &[f64], n: usize) -> f64 {
    let mut s = 0.0;
    for i in 0..n {
        for j in 0..n {
            s += x[i] * a[i * n + j] * x[j];
        }
    }
    s
}

#[test]
fn quadratic_form_closed_form() {
    let a = [1.0, 2.0, -3.0, 0.5, 4.0, 7.0, -1.5, 2.5, 0.25];
    let x = [0.3, -1.2, 2.0];
    let (y, g, h) = quadratic_form_hessian(&x, &a, 3);
    for i in 0..3 {
        for j in 0..3 {
            assert_eq!(h[(i, j)], a[i * 3 + j] + a[j * 3 + i], "({i}, {j})");
        }
        let gi: f64 = (0..3).map(|j| (a[i * 3 + j] + a[j * 3 + i]) * x[j]).sum();
        assert!((g[i] - gi).abs() < 1e-12);
    }
    let y0: f64 = (0..3)
        .flat_map(|i| (0..3).map(move |j| (i, j)))
        .map(|(i, j)| x[i] * a[i * 3 + j] * x[j])
        .sum();
    assert!((y - y0).abs() < 1e-12);
    let v = [1.0, -2.0, 0.5];
    let (_, _, hv) = quadratic_form_hvp(&x, &a, 3, &v);
    for i in 0..3 {
        let want: f64 = (0..3).map(|j| (a[i * 3 + j] + a[j * 3 + i]) * v[j]).sum();
        assert!((hv[i] - want).abs() < 1e-12);
    }
}

/// f = x³ y² + x y: H = [[6 x y², 6 x² y + 1], [6 x² y + 1, 2 x³]].
#[differentiable(hessian, forward)]
fn poly(x: f64, y: f64) -> f64 {
    x.powi(3) * y * y + x * y
}

#[test]
fn polynomial_closed_form() {
    let (x, y) = (1.5, -0.7);
    let (v, g, h) = poly_hessian(x, y);
    // `forward` beside `hessian`: the jvp along (1, 0) is ∂f/∂x.
    let (vj, dx) = poly_jvp(x, y, 1.0, 0.0);
    assert_eq!(vj, v);
    assert!((dx - g.0).abs() < 1e-12);
    assert!((v - (x * x * x * y * y + x * y)).abs() < 1e-12);
    assert!((g.0 - (3.0 * x * x * y * y + y)).abs() < 1e-12);
    assert!((g.1 - (2.0 * x * x * x * y + x)).abs() < 1e-12);
    let want = [
        [6.0 * x * y * y, 6.0 * x * x * y + 1.0],
        [6.0 * x * x * y + 1.0, 2.0 * x * x * x],
    ];
    for i in 0..2 {
        for j in 0..2 {
            assert!((h[(i, j)] - want[i][j]).abs() < 1e-12, "({i},{j})");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Every construct, against finite differences of `_grad`
// ---------------------------------------------------------------------------------------

#[differentiable(hessian)]
fn math1(x: f64, y: f64) -> f64 {
    let a = x.sin() * y.cos() + (x * y).tan() * 0.1;
    let b = (x * 0.3).asin() + (y * 0.3).acos() + (x - y).atan();
    let c = (x * 0.5).sinh() + (y * 0.5).cosh() + (x + y).tanh();
    let d = (x * 0.2).exp() + (y * 0.1).exp2() + (x * x + 1.0).ln();
    let e = (y * y + 2.0).log10() + (x * x + 3.0).log2() + (x * x + 1.5).log(y * y + 2.0);
    let f = (x * x + 1.0).sqrt() + (y * y + 0.5).cbrt() + (x * x + 2.0).recip();
    a + b + c + d + e + f
}

#[differentiable(hessian)]
fn math2(x: f64, y: f64) -> f64 {
    let a = x.powi(3) - (x * x + 1.0).powf(y * 0.5) + (y * y + 1.0).powf(1.5);
    let b = f64::hypot(x, y + 3.0) + f64::atan2(x + 3.0, y - 4.0);
    let c = x.mul_add(y, x * x) + (x * y).abs() + x.max(y) * y.min(x * 0.5);
    let d = x.signum() * y + (y - x) / (x * x + 1.0) - -x;
    a + b + c + d
}

#[differentiable(hessian)]
fn branches(x: f64, y: f64) -> f64 {
    let mut s = x * y;
    if x > 0.5 {
        s = s * s;
    } else if x < -0.5 {
        s = s.sin() + y;
    } else {
        s = s + x * x * x;
    }
    let t = if y > 0.0 { s * y } else { s - y * y };
    t + s
}

#[differentiable(hessian)]
fn early(x: f64, y: f64) -> f64 {
    if x * y > 1.0 {
        return (x * y).ln() * x;
    }
    let mut s = x;
    for i in 0..5 {
        s = s * y + (i as f64) * x;
        if s > 10.0 {
            return s * s;
        }
    }
    s.exp()
}

#[differentiable(hessian)]
fn inner(a: f64, b: f64, n: usize, c: f64) -> f64 {
    let mut s = a * b;
    for _ in 0..n {
        s = s.sin() * c + a;
    }
    s * b
}

#[differentiable(hessian)]
fn calls(x: f64, y: f64) -> f64 {
    // `inner` with active scalars, an integer and a constant float.
    let u = inner(x, y, 3, 0.5);
    let w = inner(y * y, 2.0, 2, x);
    u * w + inner(1.5, x, 1, 2.0)
}

#[differentiable(hessian)]
fn array_fn(x: [f64; 3], y: &[f64; 2]) -> f64 {
    let mut s = 0.0;
    for i in 0..3 {
        s += x[i] * x[i] * y[i % 2];
    }
    s * x[0] + y[0].exp() * y[1]
}

#[differentiable(hessian)]
fn slice_fn(x: &[f64], k: f64) -> f64 {
    let mut s = k * k;
    for i in 0..x.len() {
        s += (x[i] * k).sin() * x[(i + 1) % x.len()];
    }
    s
}

/// A callee taking a slice.
#[differentiable(hessian)]
fn dot_sin(a: &[f64], b: &[f64]) -> f64 {
    let mut s = 0.0;
    for i in 0..a.len() {
        s += a[i].sin() * b[i];
    }
    s
}

#[differentiable(hessian, wrt(x))]
fn slice_calls(x: &[f64], c: &[f64]) -> f64 {
    let p = dot_sin(x, c);
    let q = dot_sin(c, x);
    let r = dot_sin(x, x);
    p * q + r
}

fn ok_tol() -> f64 {
    1e-6
}

#[test]
fn scalar_constructs() {
    for (name, range) in [("math1", (-1.0, 1.0)), ("math2", (-1.5, 1.5))] {
        let (f, grad, hvp, hess): (
            fn(f64, f64) -> f64,
            fn(f64, f64) -> (f64, (f64, f64)),
            fn(f64, f64, f64, f64) -> (f64, (f64, f64), (f64, f64)),
            fn(f64, f64) -> (f64, (f64, f64), DMatrix<f64>),
        ) = match name {
            "math1" => (math1, math1_grad, math1_hvp, math1_hessian),
            _ => (math2, math2_grad, math2_hvp, math2_hessian),
        };
        check_2(name, f, grad, hvp, hess, range);
    }
    check_2(
        "branches",
        branches,
        branches_grad,
        branches_hvp,
        branches_hessian,
        (-1.5, 1.5),
    );
    check_2(
        "early",
        early,
        early_grad,
        early_hvp,
        early_hessian,
        (-1.5, 1.5),
    );
    check_2(
        "calls",
        calls,
        calls_grad,
        calls_hvp,
        calls_hessian,
        (-1.5, 1.5),
    );
}

fn check_2(
    name: &str,
    f: fn(f64, f64) -> f64,
    grad: fn(f64, f64) -> (f64, (f64, f64)),
    hvp: fn(f64, f64, f64, f64) -> (f64, (f64, f64), (f64, f64)),
    hess: fn(f64, f64) -> (f64, (f64, f64), DMatrix<f64>),
    range: (f64, f64),
) {
    check(&Case {
        name,
        n: 2,
        f: &|x| f(x[0], x[1]),
        grad: &|x| {
            let (y, g) = grad(x[0], x[1]);
            (y, v2(g))
        },
        hvp: &|x, v| {
            let (y, g, hv) = hvp(x[0], x[1], v[0], v[1]);
            (y, v2(g), v2(hv))
        },
        hess: &|x| {
            let (y, g, h) = hess(x[0], x[1]);
            (y, v2(g), h)
        },
        tol: ok_tol(),
        range,
    });
}

#[test]
fn arrays_and_slices() {
    check(&Case {
        name: "array_fn",
        n: 5,
        f: &|x| array_fn([x[0], x[1], x[2]], &[x[3], x[4]]),
        grad: &|x| {
            let (y, (a, b)) = array_fn_grad([x[0], x[1], x[2]], &[x[3], x[4]]);
            (y, [&a[..], &b[..]].concat())
        },
        hvp: &|x, v| {
            let (y, (a, b), (ha, hb)) = array_fn_hvp(
                [x[0], x[1], x[2]],
                &[x[3], x[4]],
                [v[0], v[1], v[2]],
                &[v[3], v[4]],
            );
            (y, [&a[..], &b[..]].concat(), [&ha[..], &hb[..]].concat())
        },
        hess: &|x| {
            let (y, (a, b), h) = array_fn_hessian([x[0], x[1], x[2]], &[x[3], x[4]]);
            (y, [&a[..], &b[..]].concat(), h)
        },
        tol: 1e-6,
        range: (-1.5, 1.5),
    });
    check(&Case {
        name: "slice_fn",
        n: 5,
        f: &|x| slice_fn(&x[..4], x[4]),
        grad: &|x| {
            let (y, (a, b)) = slice_fn_grad(&x[..4], x[4]);
            (y, [&a[..], &[b]].concat())
        },
        hvp: &|x, v| {
            let (y, (a, b), (ha, hb)) = slice_fn_hvp(&x[..4], x[4], &v[..4], v[4]);
            (y, [&a[..], &[b]].concat(), [&ha[..], &[hb]].concat())
        },
        hess: &|x| {
            let (y, (a, b), h) = slice_fn_hessian(&x[..4], x[4]);
            (y, [&a[..], &[b]].concat(), h)
        },
        tol: 1e-6,
        range: (-1.5, 1.5),
    });
    let c = [0.3, -0.7, 1.1];
    check(&Case {
        name: "slice_calls",
        n: 3,
        f: &|x| slice_calls(x, &c),
        grad: &|x| slice_calls_grad(x, &c),
        hvp: &|x, v| slice_calls_hvp(x, &c, v),
        hess: &|x| slice_calls_hessian(x, &c),
        tol: 1e-6,
        range: (-1.5, 1.5),
    });
    check(&Case {
        name: "rosenbrock",
        n: 6,
        f: &|x| rosenbrock(x),
        grad: &|x| rosenbrock_grad(x),
        hvp: &|x, v| rosenbrock_hvp(x, v),
        hess: &|x| rosenbrock_hessian(x),
        tol: 1e-6,
        range: (-2.0, 2.0),
    });
}

/// A callee taking an array by reference.
#[differentiable(hessian)]
fn arr_callee(a: &[f64; 2], s: f64) -> f64 {
    a[0] * a[1] * s + s.exp()
}

/// Odds and ends: statement macros, integer phis and carried integers, typed
/// locals, `powi` with an integer variable, a constant returned early, `&array` to a callee.
#[differentiable(hessian)]
fn odds(x: f64, y: f64) -> f64 {
    assert!(x.is_finite(), "x = {x}");
    println!("{}", y);
    if x > 1.4 {
        return 2.0;
    }
    let k = if y > 0.0 { 2 } else { 3 };
    let mut n = 0;
    let mut c: f64 = 0.5;
    for i in 0..3 {
        n += i;
        c = c * x + y.powi(k);
    }
    c * y + (n as f64) * x.powi(k + 1)
}

#[differentiable(hessian)]
fn arr_caller(a: [f64; 2], s: f64) -> f64 {
    arr_callee(&a, s * a[0]) * arr_callee(&HALVES, s)
}

const HALVES: [f64; 2] = [0.5, 1.5];

/// Ends with an `if` whose branches both return.
#[differentiable(hessian)]
fn both_return(x: f64, y: f64) -> f64 {
    let t = x * y;
    if t > 0.0 {
        return t * t + y.exp();
    } else if t < -1.0 {
        return x.sin() * y;
    } else {
        return t * x - y * y * y;
    }
}

#[differentiable(hessian)]
fn f32_math(x: f32, y: f32) -> f32 {
    let n = 3;
    (x * 0.3).exp2() * y.powi(n) + (x * x + 1.0).log10() * y.cbrt() + x.atan2(y + 3.0)
}

#[test]
fn odds_and_ends() {
    check_2("odds", odds, odds_grad, odds_hvp, odds_hessian, (-1.2, 1.2));
    check_2(
        "both_return",
        both_return,
        both_return_grad,
        both_return_hvp,
        both_return_hessian,
        (-1.5, 1.5),
    );
    check(&Case {
        name: "arr_caller",
        n: 3,
        f: &|x| arr_caller([x[0], x[1]], x[2]),
        grad: &|x| {
            let (y, (a, b)) = arr_caller_grad([x[0], x[1]], x[2]);
            (y, vec![a[0], a[1], b])
        },
        hvp: &|x, v| {
            let (y, (a, b), (ha, hb)) = arr_caller_hvp([x[0], x[1]], x[2], [v[0], v[1]], v[2]);
            (y, vec![a[0], a[1], b], vec![ha[0], ha[1], hb])
        },
        hess: &|x| {
            let (y, (a, b), h) = arr_caller_hessian([x[0], x[1]], x[2]);
            (y, vec![a[0], a[1], b], h)
        },
        tol: 1e-6,
        range: (-1.0, 1.0),
    });
    let f = |x: &[f64]| f32_math(x[0] as f32, x[1] as f32) as f64;
    check(&Case {
        name: "f32_math",
        n: 2,
        f: &f,
        grad: &|x| {
            let (y, (a, b)) = f32_math_grad(x[0] as f32, x[1] as f32);
            (y as f64, vec![a as f64, b as f64])
        },
        hvp: &|x, v| {
            let (y, (a, b), (ha, hb)) =
                f32_math_hvp(x[0] as f32, x[1] as f32, v[0] as f32, v[1] as f32);
            (
                y as f64,
                vec![a as f64, b as f64],
                vec![ha as f64, hb as f64],
            )
        },
        hess: &|x| {
            let (y, (a, b), h) = f32_math_hessian(x[0] as f32, x[1] as f32);
            (y as f64, vec![a as f64, b as f64], h.map(|e| e as f64))
        },
        tol: 2e-2,
        range: (0.2, 1.5),
    });
}

#[differentiable(hessian)]
fn frozen_square(x: f64) -> f64 {
    let c = symgrad::no_grad(x * x);
    c * x
}

/// `no_grad` values are constants for both orders (JAX's `stop_gradient` in `jax.hessian`),
/// so `_hvp` is not the derivative of `_grad` there (`_grad` at a moved point sees another
/// constant): f = c x with c = x² frozen: f' = c = x², f'' = 0.
#[test]
fn no_grad_is_constant() {
    let (v, g, h) = frozen_square_hessian(1.5);
    assert_eq!(v, 1.5 * 1.5 * 1.5);
    assert_eq!(g, 2.25);
    assert_eq!(h[(0, 0)], 0.0);
}

/// A callee with an integer slice and a float parameter it treats as a constant.
#[differentiable(hessian, wrt(x))]
fn picky(x: &[f64], idx: &[usize], scale: f64) -> f64 {
    let mut s = 0.0;
    for k in 0..idx.len() {
        s += x[idx[k]] * x[idx[k]] * scale;
    }
    s
}

const SCALE: f64 = 1.5;
const IDX: [usize; 2] = [0, 2];

#[differentiable(hessian)]
fn picky_caller(x: &[f64], t: f64) -> f64 {
    picky(x, &IDX, SCALE) * t + picky(x, &IDX, 2.0)
}

#[test]
fn callee_constants() {
    // f = 1.5 (x0² + x2²) t + 2 (x0² + x2²): the slots of `idx` (`&[usize]`) and `scale`
    // (a constant of the callee) get `dir_zero` and the literal's zero.
    let x = [0.5, -1.0, 2.0];
    let t = 0.7;
    let (_, (gx, gt)) = picky_caller_grad(&x, t);
    let (_, (hx, ht), h) = picky_caller_hessian(&x, t);
    assert_eq!((gx, gt), (hx, ht));
    assert!((gt - 1.5 * (0.25 + 4.0)).abs() < 1e-12);
    // ∂²f/∂x0² = 3 t + 4, ∂²f/∂x0∂t = 3 x0, nothing in x1, ∂²f/∂t² = 0.
    assert!((h[(0, 0)] - (3.0 * t + 4.0)).abs() < 1e-12);
    assert!((h[(0, 3)] - 3.0 * x[0]).abs() < 1e-12);
    assert!((h[(2, 3)] - 3.0 * x[2]).abs() < 1e-12);
    assert!((h[(0, 2)]).abs() < 1e-12);
    assert_eq!(h[(1, 1)], 0.0);
    assert_eq!(h[(3, 3)], 0.0);
}

// ---------------------------------------------------------------------------------------
// f32
// ---------------------------------------------------------------------------------------

#[differentiable(hessian)]
fn mixed32(x: &[f32], y: f32) -> f32 {
    let mut s = y.sin();
    for i in 0..x.len() {
        if x[i] > 0.0 {
            s += x[i] * x[i] * y;
        } else {
            s += (x[i] * y).exp();
        }
    }
    s * s.tanh()
}

#[test]
fn f32_against_finite_differences() {
    let to32 = |x: &[f64]| -> Vec<f32> { x.iter().map(|&a| a as f32).collect() };
    let to64 = |x: &[f32]| -> Vec<f64> { x.iter().map(|&a| a as f64).collect() };
    check(&Case {
        name: "mixed32",
        n: 4,
        f: &|x| mixed32(&to32(&x[..3]), x[3] as f32) as f64,
        grad: &|x| {
            let (y, (a, b)) = mixed32_grad(&to32(&x[..3]), x[3] as f32);
            (y as f64, [to64(&a), vec![b as f64]].concat())
        },
        hvp: &|x, v| {
            let (y, (a, b), (ha, hb)) =
                mixed32_hvp(&to32(&x[..3]), x[3] as f32, &to32(&v[..3]), v[3] as f32);
            (
                y as f64,
                [to64(&a), vec![b as f64]].concat(),
                [to64(&ha), vec![hb as f64]].concat(),
            )
        },
        hess: &|x| {
            let (y, (a, b), h) = mixed32_hessian(&to32(&x[..3]), x[3] as f32);
            (
                y as f64,
                [to64(&a), vec![b as f64]].concat(),
                h.map(|e| e as f64),
            )
        },
        // finite differences of an f32 gradient with a 1e-3 step: about 1e-4 / 1e-3 relative
        tol: 2e-2,
        range: (0.1, 1.0),
    });
}

// ---------------------------------------------------------------------------------------
// The harness fails on a wrong H v
// ---------------------------------------------------------------------------------------

#[test]
fn checks_can_fail() {
    let wrong_hvp = |x: &[f64], v: &[f64]| {
        let (y, g, mut hv) = rosenbrock_hvp(x, v);
        hv[1] *= 1.0 + 1e-4;
        (y, g, hv)
    };
    let c = Case {
        name: "wrong",
        n: 3,
        f: &|x| rosenbrock(x),
        grad: &|x| rosenbrock_grad(x),
        hvp: &wrong_hvp,
        hess: &|x| rosenbrock_hessian(x),
        tol: 1e-6,
        range: (-2.0, 2.0),
    };
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let x = [0.5, -1.0, 1.5];
    assert!(check_at(&c, &x, &mut rng).is_err());
    let wrong_hess = |x: &[f64]| {
        let (y, g, mut h) = rosenbrock_hessian(x);
        h[(0, 1)] += 1e-3;
        h[(1, 0)] += 1e-3;
        (y, g, h)
    };
    let c = Case {
        hvp: &|x, v| rosenbrock_hvp(x, v),
        hess: &wrong_hess,
        ..c
    };
    assert!(check_at(&c, &x, &mut rng).is_err());
}

//! Rust as people write it (issue 9): `while`, `loop`, `break`, `continue`, labels,
//! `break value`, `match`, `if let`, iterator chains, closures and tuples in
//! `#[differentiable]` functions.
//!
//! Every gradient is compared with central finite differences of the ORIGINAL function at
//! random points (points where two step sizes disagree, at a branch or iteration-count
//! boundary, are skipped, and each check asserts that most points were usable), and where a
//! closed form exists, with a derivative worked out by hand in the test.

#![allow(
    dead_code,
    clippy::needless_range_loop,
    clippy::while_let_loop,
    clippy::never_loop,
    clippy::manual_range_contains,
    clippy::match_overlapping_arm,
    clippy::needless_return,
    clippy::assign_op_pattern,
    clippy::type_complexity,
    clippy::iter_count,
    clippy::useless_vec
)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use symgrad::differentiable;

mod common;
use common::{close, fd};

/// Checks `grad` against finite differences of `f` at 40 points of `n` coordinates in
/// `lo..hi`; returns how many points were usable (asserts at least half).
fn check(
    what: &str,
    n: usize,
    lo: f64,
    hi: f64,
    rtol: f64,
    f: &dyn Fn(&[f64]) -> f64,
    grad: &dyn Fn(&[f64]) -> (f64, Vec<f64>),
) {
    let mut rng = ChaCha8Rng::seed_from_u64(what.len() as u64);
    let total = 40;
    let mut used = 0;
    for _ in 0..total {
        let x: Vec<f64> = (0..n).map(|_| rng.gen_range(lo..hi)).collect();
        let want = fd(f, &x, 1e-6);
        let coarse = fd(f, &x, 1e-4);
        if want.iter().zip(&coarse).any(|(a, b)| !close(*a, *b, 1e-3)) {
            continue;
        }
        used += 1;
        let (v, got) = grad(&x);
        assert!(
            close(v, f(&x), 1e-12),
            "{what}: value {v} against {} at {x:?}",
            f(&x)
        );
        for i in 0..n {
            assert!(
                close(got[i], want[i], rtol),
                "{what}: d/dx{i} = {} but finite differences give {} at {x:?}",
                got[i],
                want[i]
            );
        }
    }
    assert!(
        used * 2 >= total,
        "{what}: only {used} of {total} points usable"
    );
}

// ----- while, loop, break, continue -----

/// Newton's iteration for √a, stopped by a tolerance: a `while` whose condition reads
/// values that carry gradients.
#[differentiable]
fn newton_sqrt(a: f64, x0: f64) -> f64 {
    let mut x = x0;
    let mut it = 0;
    while (x * x - a).abs() > 1e-12 && it < 60 {
        x = 0.5 * (x + a / x);
        it += 1;
    }
    x
}

#[differentiable]
fn newton_sqrt_f32(a: f32, x0: f32) -> f32 {
    let mut x = x0;
    let mut it = 0;
    while it < 30 {
        x = 0.5 * (x + a / x);
        it += 1;
    }
    x
}

#[test]
fn while_with_a_tolerance_gives_the_derivative_of_the_limit() {
    // By hand: the iteration converges to √a, so d/da = 1 / (2√a) and d/dx0 = 0.
    for a in [0.5, 2.0, 9.0, 30.0] {
        let (v, (da, dx0)) = newton_sqrt_grad(a, 1.0);
        assert!((v - a.sqrt()).abs() < 1e-10);
        assert!(
            (da - 0.5 / a.sqrt()).abs() < 1e-8,
            "a = {a}: d/da = {da}, by hand {}",
            0.5 / a.sqrt()
        );
        assert!(dx0.abs() < 1e-8, "a = {a}: d/dx0 = {dx0}");
        let (v32, (da32, _)) = newton_sqrt_f32_grad(a as f32, 1.0);
        assert!((v32 as f64 - a.sqrt()).abs() < 1e-4);
        assert!((da32 as f64 - 0.5 / a.sqrt()).abs() < 1e-4, "f32: {da32}");
    }
    // A few iterations from far away: compared with finite differences.
    #[differentiable]
    fn few_newton(a: f64, x0: f64) -> f64 {
        let mut x = x0;
        let mut it = 0;
        while it < 3 && x > 0.0 {
            x = 0.5 * (x + a / x);
            it += 1;
        }
        x * a
    }
    check(
        "few_newton",
        2,
        0.5,
        4.0,
        1e-5,
        &|x| few_newton(x[0], x[1]),
        &|x| {
            let (v, (a, b)) = few_newton_grad(x[0], x[1]);
            (v, vec![a, b])
        },
    );
}

#[differentiable]
fn skip_and_stop(xs: &[f64], w: f64) -> f64 {
    let mut s = 0.0;
    for i in 0..xs.len() {
        if xs[i] < 0.0 {
            continue;
        }
        s += w * xs[i];
        if s > 3.0 {
            break;
        }
        s = s * 1.1;
    }
    s * w
}

#[test]
fn for_with_continue_and_break() {
    check(
        "skip_and_stop",
        7,
        -1.0,
        2.0,
        1e-5,
        &|x| skip_and_stop(&x[1..], x[0]),
        &|x| {
            let (v, (gx, gw)) = skip_and_stop_grad(&x[1..], x[0]);
            let mut g = vec![gw];
            g.extend(gx);
            (v, g)
        },
    );
    // By hand: all negative but the first: s = w·x0·1.1 (unless it passes 3), result s·w.
    let xs = [1.5, -1.0, -2.0];
    let w = 0.7;
    let (v, (gx, gw)) = skip_and_stop_grad(&xs, w);
    assert!((v - 1.1 * w * w * 1.5).abs() < 1e-12);
    assert!((gw - 2.2 * w * 1.5).abs() < 1e-12);
    assert!((gx[0] - 1.1 * w * w).abs() < 1e-12 && gx[1] == 0.0 && gx[2] == 0.0);
}

#[differentiable]
fn loop_value(x: f64) -> f64 {
    let mut y = x;
    let mut n = 0;
    let r = loop {
        y = y * 0.5 + 0.1 * y.sin();
        n += 1;
        if n >= 5 {
            break y * y;
        }
    };
    r + x
}

#[differentiable]
fn loop_until_small(x: f64, rate: f64) -> f64 {
    let mut y = x;
    let mut steps = 0.0;
    loop {
        if y.abs() < 0.01 {
            break;
        }
        y *= rate;
        steps += 1.0;
    }
    y + steps * 0.0
}

#[differentiable]
fn loop_returns(x: f64) -> f64 {
    let mut y = x;
    loop {
        y = y * y * 0.5 + 0.1;
        if y > 10.0 {
            return y.ln();
        }
        if y < 0.2 {
            return y * 3.0;
        }
    }
}

#[test]
fn loop_with_break_value_plain_break_and_return() {
    check(
        "loop_value",
        1,
        -2.0,
        2.0,
        1e-5,
        &|x| loop_value(x[0]),
        &|x| {
            let (v, g) = loop_value_grad(x[0]);
            (v, vec![g])
        },
    );
    check(
        "loop_until_small",
        2,
        0.5,
        2.0,
        1e-5,
        &|x| loop_until_small(x[0], x[1] * 0.4),
        &|x| {
            let (v, (gx, gr)) = loop_until_small_grad(x[0], x[1] * 0.4);
            (v, vec![gx, gr * 0.4])
        },
    );
    // By hand: y = x·rateⁿ for the n steps taken, so dy/dx = rateⁿ, dy/drate = n·x·rateⁿ⁻¹.
    let (x, rate) = (1.3, 0.5);
    let (v, (gx, gr)) = loop_until_small_grad(x, rate);
    let n = (0..).find(|n| (x * rate.powi(*n)).abs() < 0.01).unwrap();
    assert!((v - x * rate.powi(n)).abs() < 1e-15);
    assert!((gx - rate.powi(n)).abs() < 1e-12);
    assert!((gr - n as f64 * x * rate.powi(n - 1)).abs() < 1e-12);
    check(
        "loop_returns",
        1,
        0.0,
        4.4,
        1e-5,
        &|x| loop_returns(x[0]),
        &|x| {
            let (v, g) = loop_returns_grad(x[0]);
            (v, vec![g])
        },
    );
}

#[differentiable]
fn labeled(xs: &[f64], w: f64) -> f64 {
    let mut s = 0.0;
    'rows: for i in 0..xs.len() {
        let mut j = 0;
        while j < xs.len() {
            if xs[j] > 1.5 {
                continue 'rows;
            }
            s += w * xs[i] * xs[j];
            if s > 4.0 {
                break 'rows;
            }
            j += 1;
        }
        s = s * 0.9 + xs[i];
    }
    s
}

#[test]
fn labeled_break_and_continue_from_a_nested_loop() {
    check(
        "labeled",
        6,
        -1.0,
        2.0,
        1e-5,
        &|x| labeled(&x[1..], x[0]),
        &|x| {
            let (v, (gx, gw)) = labeled_grad(&x[1..], x[0]);
            let mut g = vec![gw];
            g.extend(gx);
            (v, g)
        },
    );
}

#[differentiable]
fn while_return(x: f64, y: f64) -> f64 {
    let mut a = x;
    let mut k = 0;
    while k < 10 {
        a = a * y + 0.3;
        if a > 5.0 {
            return a * x;
        }
        k += 1;
    }
    a - y
}

#[test]
fn while_with_an_early_return() {
    check(
        "while_return",
        2,
        0.0,
        1.5,
        1e-5,
        &|x| while_return(x[0], x[1]),
        &|x| {
            let (v, (a, b)) = while_return_grad(x[0], x[1]);
            (v, vec![a, b])
        },
    );
}

// ----- match, if let -----

#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Shape {
    Circle,
    Square,
    Scaled(f64, i32),
    Named { side: f64 },
}

#[differentiable(wrt(x))]
fn by_kind(k: i32, x: f64, shape: Shape) -> f64 {
    let base = match k {
        0 => x * x,
        1 | 2 => x.sin() * k as f64,
        3..=5 => {
            let t = x * 3.0;
            t.exp() / 10.0
        }
        n if n < 0 => x * n as f64,
        _ => return x.cos(),
    };
    let area = match shape {
        Shape::Circle => 3.0 * base * base,
        Shape::Square => base * base,
        Shape::Scaled(f, p) if p > 0 => base * f * p as f64,
        Shape::Scaled(f, _) => base * f,
        Shape::Named { side } => base * side,
    };
    let mut s = area;
    match k {
        0 => s += x,
        1 => {
            s *= 2.0;
        }
        _ => {}
    }
    s
}

#[differentiable]
fn match_on_float(x: f64, y: f64) -> f64 {
    // A binding that is the (active) scrutinee, with guards reading it.
    let a = match x * y {
        v if v < -1.0 => -v,
        v if v < 1.0 => v * v,
        v => v.sqrt(),
    };
    a + match x > y {
        true => x,
        false => 2.0 * y,
    }
}

#[differentiable(wrt(x))]
fn with_if_let(x: f64, o: Option<f64>, pair: (i32, f64)) -> f64 {
    let mut s = x;
    if let Some(w) = o {
        s = s * w;
    } else if x > 1.0 {
        s = s * 2.0;
    }
    if let (2, c) = pair {
        s += c * x * x;
    }
    s
}

#[differentiable]
fn match_in_while(xs: &[f64]) -> f64 {
    let mut i = 0;
    let mut s = 0.0;
    while i < xs.len() {
        match i % 3 {
            0 => s += xs[i],
            1 => {
                if xs[i] > 1.5 {
                    break;
                }
                s = s * xs[i];
            }
            _ => s -= 0.5 * xs[i] * xs[i],
        }
        i += 1;
    }
    s
}

#[test]
fn match_on_integers_enums_floats_and_if_let() {
    for k in [-2, 0, 1, 2, 4, 7] {
        for shape in [
            Shape::Circle,
            Shape::Square,
            Shape::Scaled(1.5, 2),
            Shape::Scaled(0.5, -1),
            Shape::Named { side: 0.25 },
        ] {
            let name = format!("by_kind {k} {shape:?}");
            check(
                &name,
                1,
                -1.0,
                1.0,
                1e-5,
                &|x| by_kind(k, x[0], shape),
                &|x| {
                    let (v, g) = by_kind_grad(k, x[0], shape);
                    (v, vec![g])
                },
            );
        }
    }
    // By hand: k = 0, a square: (x²)² + x, derivative 4x³ + 1.
    let (_, g) = by_kind_grad(0, 0.7, Shape::Square);
    assert!((g - (4.0 * 0.343 + 1.0)).abs() < 1e-12);
    check(
        "match_on_float",
        2,
        -2.0,
        2.0,
        1e-5,
        &|x| match_on_float(x[0], x[1].abs()),
        &|x| {
            let (v, (a, b)) = match_on_float_grad(x[0], x[1].abs());
            (v, vec![a, b * x[1].signum()])
        },
    );
    for o in [None, Some(0.5)] {
        for pair in [(2, 1.5), (3, 1.5)] {
            check(
                "with_if_let",
                1,
                0.0,
                2.0,
                1e-5,
                &|x| with_if_let(x[0], o, pair),
                &|x| {
                    let (v, g) = with_if_let_grad(x[0], o, pair);
                    (v, vec![g])
                },
            );
        }
    }
    check(
        "match_in_while",
        7,
        0.0,
        2.0,
        1e-5,
        &|x| match_in_while(x),
        &|x| match_in_while_grad(x),
    );
}

// ----- iterators and closures -----

#[differentiable]
fn dot_iter(xs: &[f64], ys: &[f64]) -> f64 {
    xs.iter().zip(ys.iter()).map(|(a, b)| a * b).sum::<f64>()
}

#[differentiable]
fn iter_forms(xs: &[f64], w: f64) -> f64 {
    let mut s = 0.0;
    for x in xs.iter() {
        s += x * w;
    }
    for &x in xs {
        s = s * 0.9 + x;
    }
    for (i, x) in xs.iter().enumerate() {
        s += (i as f64) * x * x;
    }
    for x in xs.iter().rev().skip(1).step_by(2) {
        s -= x.sin();
    }
    for (a, b) in xs.iter().zip(xs.iter().skip(1)) {
        s += a * b * w;
    }
    let p: f64 = xs.iter().take(3).map(|x| 1.0 + 0.1 * x).product();
    let m = xs.iter().fold(f64::NEG_INFINITY, |acc, &x| acc.max(x * w));
    let n = xs.iter().count() as f64;
    s + p + m * n
}

#[differentiable]
fn closures(x: f64, ys: &[f64]) -> f64 {
    let k = 2.0 * x;
    let sq = |t: f64| t * t;
    let scaled = |t| k * t + sq(t);
    let k = 100.0; // shadows: `scaled` keeps the k it captured
    let mut s = scaled(x) + k * 0.0;
    for i in 0..ys.len() {
        s += scaled(ys[i]) * sq(x);
    }
    s + ys.iter().map(|&y| sq(y - x)).sum::<f64>() + (0..3).map(|i| i as f64 * x).sum::<f64>()
}

#[differentiable]
fn closures_f32(x: f32, ys: &[f32]) -> f32 {
    let f = |t: f32| (t * x).tanh();
    ys.iter().map(|&y| f(y)).sum::<f32>() * x
}

#[test]
fn iterator_chains_and_closures() {
    check(
        "dot_iter",
        6,
        -2.0,
        2.0,
        1e-6,
        &|x| dot_iter(&x[..3], &x[3..]),
        &|x| {
            let (v, (a, b)) = dot_iter_grad(&x[..3], &x[3..]);
            (v, [a, b].concat())
        },
    );
    // By hand: the gradient of x·y is (y, x).
    let (_, (gx, gy)) = dot_iter_grad(&[1.0, 2.0], &[3.0, 4.0]);
    assert_eq!((gx, gy), (vec![3.0, 4.0], vec![1.0, 2.0]));
    check(
        "iter_forms",
        6,
        -1.0,
        1.0,
        1e-5,
        &|x| iter_forms(&x[1..], x[0]),
        &|x| {
            let (v, (gx, gw)) = iter_forms_grad(&x[1..], x[0]);
            let mut g = vec![gw];
            g.extend(gx);
            (v, g)
        },
    );
    check(
        "closures",
        4,
        -1.0,
        1.0,
        1e-5,
        &|x| closures(x[0], &x[1..]),
        &|x| {
            let (v, (gx, gy)) = closures_grad(x[0], &x[1..]);
            let mut g = vec![gx];
            g.extend(gy);
            (v, g)
        },
    );
    // f32: against an f64 finite difference of the same formula.
    let ys = [0.3f32, -0.7, 1.1];
    let (_, (gx, gy)) = closures_f32_grad(0.8, &ys);
    let f = |x: f64, ys: &[f64]| ys.iter().map(|y| (y * x).tanh()).sum::<f64>() * x;
    let ys64: Vec<f64> = ys.iter().map(|&y| y as f64).collect();
    let h = 1e-6;
    let want = (f(0.8 + h, &ys64) - f(0.8 - h, &ys64)) / (2.0 * h);
    assert!((gx as f64 - want).abs() < 1e-4, "{gx} against {want}");
    for i in 0..3 {
        let (mut p, mut m) = (ys64.clone(), ys64.clone());
        p[i] += h;
        m[i] -= h;
        let want = (f(0.8, &p) - f(0.8, &m)) / (2.0 * h);
        assert!((gy[i] as f64 - want).abs() < 1e-4);
    }
}

// ----- local arrays, Vecs, tuples -----

#[differentiable]
fn rk4_step(y0: f64, k: f64) -> f64 {
    // dy/dt = -k y + sin(y), 4 steps of RK4 with the stages in a local array.
    let h = 0.1;
    let mut y = y0;
    for _ in 0..4 {
        let mut st = [0.0; 4];
        st[0] = -k * y + y.sin();
        st[1] = -k * (y + 0.5 * h * st[0]) + (y + 0.5 * h * st[0]).sin();
        st[2] = -k * (y + 0.5 * h * st[1]) + (y + 0.5 * h * st[1]).sin();
        st[3] = -k * (y + h * st[2]) + (y + h * st[2]).sin();
        y += h / 6.0 * (st[0] + 2.0 * st[1] + 2.0 * st[2] + st[3]);
    }
    y
}

#[differentiable]
fn arrays_and_vecs(xs: &[f64], w: f64) -> f64 {
    let mut acc = [w, 2.0 * w, 0.0];
    for i in 0..xs.len() {
        acc[i % 3] += xs[i] * w;
        acc[(i + 1) % 3] *= 0.9;
    }
    let mut v = vec![0.0; xs.len()];
    for i in 0..xs.len() {
        v[i] = xs[i] * xs[i] + acc[i % 3];
    }
    let mut pushed = Vec::new();
    for x in v.iter() {
        pushed.push(x.sin() * w);
    }
    let lit = vec![w, w * w];
    pushed.iter().sum::<f64>() + acc.iter().map(|a| a * a).sum::<f64>() + lit[1] * v[0]
}

#[test]
fn local_arrays_and_vecs() {
    check(
        "rk4_step",
        2,
        0.1,
        2.0,
        1e-6,
        &|x| rk4_step(x[0], x[1]),
        &|x| {
            let (v, (a, b)) = rk4_step_grad(x[0], x[1]);
            (v, vec![a, b])
        },
    );
    check(
        "arrays_and_vecs",
        6,
        -1.0,
        1.0,
        1e-5,
        &|x| arrays_and_vecs(&x[1..], x[0]),
        &|x| {
            let (v, (gx, gw)) = arrays_and_vecs_grad(&x[1..], x[0]);
            let mut g = vec![gw];
            g.extend(gx);
            (v, g)
        },
    );
}

#[differentiable(wrt(x, y))]
fn tuples(x: f64, y: f64, pair: (usize, f64)) -> f64 {
    let (a, mut b) = (x * y, y.sin());
    b += a;
    let (a, b) = (b, a); // swapped: both computed before either is bound
    let (k, c) = pair;
    let (_, (p, q)) = (0.0, (x - y, k as f64 * c));
    a * b + p * q
}

#[test]
fn tuple_lets() {
    for pair in [(0, 1.5), (3, -0.5)] {
        check(
            "tuples",
            2,
            -1.5,
            1.5,
            1e-6,
            &|x| tuples(x[0], x[1], pair),
            &|x| {
                let (v, (a, b)) = tuples_grad(x[0], x[1], pair);
                (v, vec![a, b])
            },
        );
    }
}

// ----- forward mode over the same constructs -----

#[differentiable(forward, reverse)]
fn everything(xs: &[f64], w: f64) -> f64 {
    let sq = |t: f64| t * t;
    let mut acc = [0.0, w];
    let mut s = 0.0;
    let mut i = 0;
    while i < xs.len() {
        match i % 3 {
            0 => s += sq(xs[i]) * w,
            1 if xs[i] > 1.5 => break,
            _ => {
                acc[i % 2] += xs[i] * s;
                if s > 5.0 {
                    i += 1;
                    continue;
                }
                s = s * 0.5 + acc[0];
            }
        }
        i += 1;
    }
    let (p, q) = (
        s,
        xs.iter().zip(acc.iter()).map(|(a, b)| a * b).sum::<f64>(),
    );
    let v = loop {
        if p > -1e9 {
            break p * q;
        }
    };
    v + xs.iter().rev().fold(0.0, |a, &x| 0.5 * a + x.sin())
}

#[test]
fn forward_mode_agrees_with_finite_differences_and_reverse() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut used = 0;
    for _ in 0..40 {
        let xs: Vec<f64> = (0..6).map(|_| rng.gen_range(-1.0..2.0)).collect();
        let w: f64 = rng.gen_range(-1.0..1.0);
        let dx: Vec<f64> = (0..6).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let dw: f64 = rng.gen_range(-1.0..1.0);
        let along = |t: f64| {
            let x: Vec<f64> = xs.iter().zip(&dx).map(|(a, b)| a + t * b).collect();
            everything(&x, w + t * dw)
        };
        let (h1, h2) = (1e-6, 1e-4);
        let fd1 = (along(h1) - along(-h1)) / (2.0 * h1);
        let fd2 = (along(h2) - along(-h2)) / (2.0 * h2);
        if !close(fd1, fd2, 1e-3) {
            continue;
        }
        used += 1;
        let (v, t) = everything_jvp(&xs, w, &dx, dw);
        assert!(close(v, everything(&xs, w), 1e-12));
        assert!(
            close(t, fd1, 1e-5),
            "jvp {t} against finite differences {fd1}"
        );
        // <∇f, d> from the reverse mode is the same number.
        let (_, (gx, gw)) = everything_grad(&xs, w);
        let dot: f64 = gx.iter().zip(&dx).map(|(a, b)| a * b).sum::<f64>() + gw * dw;
        assert!(close(t, dot, 1e-10), "jvp {t} against the gradient {dot}");
    }
    assert!(used >= 20, "only {used} usable points");
}

// ----- generic float functions -----

use symgrad::num_traits::Float;

#[differentiable]
fn rosen_generic<T: Float>(x: &[T]) -> T {
    let one = T::one();
    let hundred = T::from(100.0).unwrap();
    let mut s = T::zero();
    for i in 0..x.len() - 1 {
        let a = x[i + 1] - x[i] * x[i];
        let b = one - x[i];
        s = s + hundred * a * a + b * b;
    }
    s
}

#[differentiable]
fn generic_mix<T: Float>(x: T, ys: &[T], k: usize) -> T {
    let half = T::from(0.5).unwrap();
    let f = |t: T| (t * x).sin() + half * t;
    let mut acc = x;
    let mut i = 0;
    while i < k {
        acc = match i % 2 {
            0 => acc * half + f(ys[i % ys.len()]),
            _ => acc.tanh() + rosen_generic(ys) * T::from(0.01).unwrap(),
        };
        i += 1;
    }
    acc + ys.iter().map(|&y| y * y).fold(T::zero(), |a, b| a + b)
}

#[test]
fn generic_over_the_float_type() {
    // By hand: the Rosenbrock gradient.
    let x = [0.5f64, -0.3, 1.2];
    let (_, g) = rosen_generic_grad(&x);
    let want = [
        -400.0 * x[0] * (x[1] - x[0] * x[0]) - 2.0 * (1.0 - x[0]),
        200.0 * (x[1] - x[0] * x[0]) - 400.0 * x[1] * (x[2] - x[1] * x[1]) - 2.0 * (1.0 - x[1]),
        200.0 * (x[2] - x[1] * x[1]),
    ];
    for i in 0..3 {
        assert!(
            (g[i] - want[i]).abs() < 1e-10,
            "{} against {}",
            g[i],
            want[i]
        );
    }
    let x32 = [0.5f32, -0.3, 1.2];
    let (_, g32) = rosen_generic_grad(&x32);
    for i in 0..3 {
        assert!((g32[i] as f64 - want[i]).abs() < 1e-3);
    }
    check(
        "generic_mix",
        4,
        -1.0,
        1.0,
        1e-5,
        &|x| generic_mix(x[0], &x[1..], 5),
        &|x| {
            let (v, (gx, gy)) = generic_mix_grad(x[0], &x[1..], 5);
            let mut g = vec![gx];
            g.extend(gy);
            (v, g)
        },
    );
    let (v32, _) = generic_mix_grad(0.3f32, &[0.1f32, 0.2], 3);
    assert!((v32 as f64 - generic_mix(0.3f64, &[0.1, 0.2], 3)).abs() < 1e-5);
}

#[differentiable]
fn match_tuple(x: f64, i: usize, j: usize) -> f64 {
    match (i % 2, j) {
        (0, 0) => x,
        (0, _) => x * x,
        (_, 1..=3) => x.sin(),
        _ => 2.0 * x,
    }
}

#[test]
fn match_on_a_tuple_of_integers() {
    // By hand: the derivative of the arm taken.
    let x = 0.7;
    assert_eq!(match_tuple_grad(x, 2, 0).1, 1.0);
    assert_eq!(match_tuple_grad(x, 4, 5).1, 2.0 * x);
    assert_eq!(match_tuple_grad(x, 1, 2).1, x.cos());
    assert_eq!(match_tuple_grad(x, 3, 9).1, 2.0);
}

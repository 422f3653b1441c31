//! Edge cases of issue 9's constructs, laid out as rustfmt writes them: each compiles and its
//! gradient matches central finite differences of the original function.

#![allow(
    dead_code,
    clippy::needless_range_loop,
    clippy::while_let_loop,
    clippy::never_loop,
    clippy::manual_range_contains,
    clippy::needless_return,
    clippy::collapsible_else_if,
    clippy::single_match,
    clippy::assign_op_pattern,
    clippy::let_and_return
)]

use symgrad::differentiable;

mod common;
use common::{close, fd1};

fn assert_close(what: &str, got: f64, want: f64) {
    assert!(
        close(got, want, 1e-5),
        "{what}: {got} against finite differences {want}"
    );
}

#[differentiable]
fn closure_in_loop_in_match(x: f64, k: usize) -> f64 {
    let mut s = 0.0;
    match k {
        0 => {
            for i in 0..3 {
                let f = |t: f64| t * (i as f64 + 1.0);
                s += f(x);
            }
        }
        _ => {
            let mut j = 0;
            while j < k {
                if let 2 = j {
                    j += 1;
                    continue;
                }
                s = s * 0.5 + (x * j as f64).cos();
                j += 1;
            }
        }
    }
    s
}

#[differentiable]
fn while_in_closure_free_fn(x: f64) -> f64 {
    let g = |a: f64, b: f64| a * b + a.sin();
    let mut y = x;
    let mut n = 0;
    while g(y, 0.5) < 3.0 && n < 20 {
        y += 0.3 * x;
        n += 1;
    }
    y
}

#[differentiable]
fn nested_iters(xs: &[f64], ys: &[f64]) -> f64 {
    let mut total = 0.0;
    for (i, x) in xs.iter().enumerate() {
        let inner: f64 = ys.iter().skip(i).map(|y| (x - y).powi(2)).sum();
        total += inner.sqrt();
    }
    total
}

// Nested, not a let chain: `*at` in a let chain's condition is not supported yet (E0614).
#[allow(clippy::collapsible_if)]
#[differentiable]
fn break_in_if_let_in_loop(x: f64, stops: &[Option<usize>]) -> f64 {
    let mut y = x;
    for (i, s) in stops.iter().enumerate() {
        if let Some(at) = s {
            if *at == i {
                break;
            }
        }
        y = y * y * 0.5 + 0.1;
    }
    y
}

#[differentiable]
fn early_return_from_match_in_while(x: f64) -> f64 {
    let mut y = x;
    let mut i = 0;
    while i < 10 {
        y = match i % 3 {
            0 => y * 1.1,
            1 => {
                if y > 4.0 {
                    return y.ln();
                }
                y + 0.5
            }
            _ => y * y * 0.2,
        };
        i += 1;
    }
    y
}

#[test]
fn edge_cases_compile_and_match_finite_differences() {
    for k in [0, 1, 4] {
        let f = |x: f64| closure_in_loop_in_match(x, k);
        for x in [-0.7, 0.4, 1.3] {
            let (_, g) = closure_in_loop_in_match_grad(x, k);
            assert_close("closure_in_loop_in_match", g, fd1(&f, x));
        }
    }
    for x in [0.4, 0.9, 1.7] {
        let (_, g) = while_in_closure_free_fn_grad(x);
        assert_close(
            "while_in_closure_free_fn",
            g,
            fd1(&while_in_closure_free_fn, x),
        );
    }
    let xs = [0.3, -0.2, 0.9];
    let ys = [1.0, 0.5, -0.4, 0.2];
    let (_, (gx, gy)) = nested_iters_grad(&xs, &ys);
    for i in 0..3 {
        let f = |t: f64| {
            let mut v = xs;
            v[i] = t;
            nested_iters(&v, &ys)
        };
        assert_close("nested_iters x", gx[i], fd1(&f, xs[i]));
    }
    for i in 0..4 {
        let f = |t: f64| {
            let mut v = ys;
            v[i] = t;
            nested_iters(&xs, &v)
        };
        assert_close("nested_iters y", gy[i], fd1(&f, ys[i]));
    }
    let stops = [None, Some(5), Some(2), None];
    for x in [0.3, 0.8] {
        let (_, g) = break_in_if_let_in_loop_grad(x, &stops);
        let f = |t: f64| break_in_if_let_in_loop(t, &stops);
        assert_close("break_in_if_let_in_loop", g, fd1(&f, x));
    }
    for x in [0.5, 1.5, 2.5, 3.5] {
        let (_, g) = early_return_from_match_in_while_grad(x);
        assert_close(
            "early_return_from_match_in_while",
            g,
            fd1(&early_return_from_match_in_while, x),
        );
    }
}

/// Fuzz finding F1: a `loop` statement (no `;`, as rustfmt writes it) after a `continue`.
#[differentiable]
fn loop_after_continue(x: f64) -> f64 {
    let mut s = x;
    for i in 0..2 {
        if x > 0.5 {
            continue;
        }
        let mut k = 0;
        loop {
            k += 1;
            if k > 2 {
                break;
            }
            s = s * x + i as f64;
        }
    }
    s
}

/// Fuzz finding F2: `*a` of an iterator element inside a condition.
#[differentiable]
fn deref_in_cond(x: f64, xs: &[f64]) -> f64 {
    let mut s = x;
    for (a, b) in xs.iter().zip(xs.iter().skip(1)) {
        if *a > 0.5 && x + *b > 0.0 {
            s = s * x;
        }
    }
    s
}

#[test]
fn fuzz_findings_loop_statement_and_deref_in_condition() {
    for x in [0.2, 0.4, 0.9] {
        // By hand for x ≤ 0.5: per outer iteration s ← (s·x + i)·x + i, twice.
        let (_, g) = loop_after_continue_grad(x);
        assert_close("loop_after_continue", g, fd1(&loop_after_continue, x));
    }
    let xs = [0.7, 0.2, 0.9, 1.1];
    for x in [0.3, 1.2] {
        let (_, (g, _)) = deref_in_cond_grad(x, &xs);
        let f = |t: f64| deref_in_cond(t, &xs);
        assert_close("deref_in_cond", g, fd1(&f, x));
    }
}

/// Fuzz finding F3: an iterator chain with a closure inside a condition (constant code).
#[differentiable]
fn closure_in_cond(x: f64, xs: &[f64]) -> f64 {
    let mut s = x;
    if xs.iter().map(|v| v * x).sum::<f64>() < 1.0 && (0..4).map(|i| i as f64).sum::<f64>() > 2.0 {
        s = s * x;
    }
    while xs.iter().any(|&v| v > s) && s < 100.0 {
        s = s * 2.0 + x;
    }
    s
}

#[test]
fn fuzz_finding_closure_in_condition() {
    let xs = [0.2, 0.5];
    for x in [0.1, 0.3, 2.0] {
        let (_, (g, _)) = closure_in_cond_grad(x, &xs);
        let f = |t: f64| closure_in_cond(t, &xs);
        assert_close("closure_in_cond", g, fd1(&f, x));
    }
}

/// `windows`: total variation and a three-point stencil.
#[differentiable]
fn with_windows(xs: &[f64], w: f64) -> f64 {
    let tv: f64 = xs.windows(2).map(|p| (p[1] - p[0]).abs()).sum();
    let mut s = 0.0;
    for (i, win) in xs.windows(3).enumerate() {
        if win[1] > win[0] && win.len() == 3 {
            s += (win[0] - 2.0 * win[1] + win[2]).powi(2) * w * i as f64;
        }
        for v in win.iter() {
            s += 0.1 * v * w;
        }
    }
    tv + s
}

#[test]
fn windows_of_a_slice() {
    let xs = [0.3, -0.4, 0.8, 1.5, 0.2];
    let w = 0.7;
    let (_, (gx, gw)) = with_windows_grad(&xs, w);
    for i in 0..xs.len() {
        let f = |t: f64| {
            let mut v = xs;
            v[i] = t;
            with_windows(&v, w)
        };
        assert_close("with_windows x", gx[i], fd1(&f, xs[i]));
    }
    assert_close("with_windows w", gw, fd1(&|t| with_windows(&xs, t), w));
}

/// Second order through a `while` with a `break` and a `match` (the directional derivative
/// is written with the same loop, then differentiated again).
#[differentiable(hessian)]
fn while_hessian(x: f64, y: f64) -> f64 {
    let mut s = x;
    let mut k = 0;
    while k < 6 {
        s = match k % 2 {
            0 => s * y + x.sin(),
            _ => s * 0.5 + y * y,
        };
        if s > 50.0 {
            break;
        }
        k += 1;
    }
    s * x
}

#[test]
fn hessian_vector_products_through_while_and_match() {
    for (x, y) in [(0.3, 0.7), (1.1, -0.4), (0.8, 1.3)] {
        let (u, w) = (0.6, -1.2);
        let (_, _, (hx, hy)) = while_hessian_hvp(x, y, u, w);
        // H·(u, w) by central differences of the gradient along (u, w).
        let h = 1e-5;
        let (_, (gxp, gyp)) = while_hessian_grad(x + h * u, y + h * w);
        let (_, (gxm, gym)) = while_hessian_grad(x - h * u, y - h * w);
        assert_close("hvp x", hx, (gxp - gxm) / (2.0 * h));
        assert_close("hvp y", hy, (gyp - gym) / (2.0 * h));
    }
}

/// Many early returns (rewritten to one exit: linear code): in an else-if chain, a loop, a
/// `match` and a `while`.
#[differentiable]
fn many_returns(x: f64, y: f64, k: usize) -> f64 {
    let mut s = x * y;
    if s > 3.0 {
        return s.sqrt();
    } else if s < -3.0 {
        return -s * x;
    }
    for i in 0..k {
        s = s * 0.9 + x.sin() * i as f64;
        if s > 2.5 {
            return s * y;
        }
        for j in 0..3 {
            if s * j as f64 > 4.0 {
                return s + j as f64;
            }
        }
    }
    let t = match k % 3 {
        0 => return s * s,
        1 => s + 1.0,
        _ => {
            if y > 0.5 {
                return y * s;
            }
            s * 2.0
        }
    };
    let mut u = t;
    let mut n = 0;
    while n < 5 {
        u = u * y + 0.1;
        if u.abs() > 6.0 {
            return u * x;
        }
        n += 1;
    }
    u + t
}

#[test]
fn many_returns_one_exit() {
    for k in 0..7 {
        for (x, y) in [
            (0.3, 0.2),
            (1.4, 1.2),
            (-1.1, 0.8),
            (0.9, -0.6),
            (2.5, 2.0),
            (0.5, 0.9),
        ] {
            let (_, (gx, gy)) = many_returns_grad(x, y, k);
            assert_close("many_returns x", gx, fd1(&|t| many_returns(t, y, k), x));
            assert_close("many_returns y", gy, fd1(&|t| many_returns(x, t, k), y));
        }
    }
}

/// Every construct of issue 9 in one generic function, checked in f32 and in f64.
#[differentiable]
fn all_constructs<T: symgrad::num_traits::Float>(x: T, xs: &[T]) -> T {
    let half = T::from(0.5).unwrap();
    let sq = |t: T| t * t;
    let mut st = [T::zero(); 3];
    let mut v = Vec::new();
    for (i, &a) in xs.iter().enumerate() {
        if a > T::from(1.8).unwrap() {
            continue;
        }
        st[i % 3] = st[i % 3] + sq(a - x);
        v.push(a * x);
    }
    let mut s = x;
    let mut k = 0;
    'outer: while k < 4 {
        for w in xs.windows(2) {
            s = match k {
                0 => s * half + w[0],
                1 | 2 => s + (w[1] - w[0]) * x,
                _ => {
                    if s > T::from(50.0).unwrap() {
                        break 'outer;
                    }
                    s * half
                }
            };
        }
        k += 1;
    }
    let (p, q) = (
        st.iter().fold(T::zero(), |a, &b| a + b),
        v.iter().map(|&t| t.sin()).fold(T::zero(), |a, b| a + b),
    );
    let r = loop {
        if k >= 4 {
            break p * q + s;
        }
        k += 1;
    };
    r
}

#[test]
fn every_construct_in_f32_and_f64() {
    let xs = [0.3, -0.4, 1.9, 0.8, 1.1];
    for x in [0.2, 0.7, -0.5] {
        let (_, (gx, gxs)) = all_constructs_grad(x, &xs);
        assert_close("all_constructs x", gx, fd1(&|t| all_constructs(t, &xs), x));
        for i in 0..xs.len() {
            let f = |t: f64| {
                let mut v = xs;
                v[i] = t;
                all_constructs(x, &v)
            };
            assert_close("all_constructs xs", gxs[i], fd1(&f, xs[i]));
        }
        // f32: the same function instantiated for f32, against the f64 derivative.
        let xs32: Vec<f32> = xs.iter().map(|&a| a as f32).collect();
        let (v32, (gx32, gxs32)) = all_constructs_grad(x as f32, &xs32);
        let v64 = all_constructs(x, &xs);
        assert!(((v32 as f64) - v64).abs() < 1e-4 * (1.0 + v64.abs()));
        assert!(
            ((gx32 as f64) - gx).abs() < 1e-3 * (1.0 + gx.abs()),
            "{gx32} against {gx}"
        );
        for i in 0..xs.len() {
            assert!(((gxs32[i] as f64) - gxs[i]).abs() < 1e-3 * (1.0 + gxs[i].abs()));
        }
    }
}

/// Random-set findings: a labeled break out of a loop that is a `let`'s value, and a typed
/// `let` of a merged constant (`Option<f64>`) read through `if let`.
#[differentiable]
fn let_loop_labeled_break(x: f64, n: usize) -> f64 {
    let mut s = x;
    let o: Option<f64> = if n == 1 { Some(0.37) } else { None };
    'outer: for i in 0..4 {
        let mut k = 0;
        let r = loop {
            k += 1;
            if k > 2 {
                break s * x + i as f64;
            }
            if s > 3.0 {
                break 'outer;
            }
        };
        s = r * 0.5;
        // A let chain (edition 2024): the arm `Some(q) if q.sin() > 0.3`.
        if let Some(q) = o
            && q.sin() > 0.3
        {
            s += q * x;
        }
    }
    s
}

#[test]
fn labeled_break_from_a_let_loop_and_a_typed_option() {
    for n in [0, 1] {
        for x in [0.4, 1.3, 2.2] {
            let (_, g) = let_loop_labeled_break_grad(x, n);
            let f = |t: f64| let_loop_labeled_break(t, n);
            assert_close("let_loop_labeled_break", g, fd1(&f, x));
        }
    }
}

//! Code as users write it, second round: the idioms `user_style.rs` did not cover (match
//! guards with derefs on `&Option<usize>`, `Option`, enum and `&str` settings, let chains and
//! `let .. else`, `loop` with `break value`, labelled exits, `chunks`, `iter_mut`, `fold` with
//! tuples and function paths, sub-slices `&xs[a..]` bound, iterated and passed to helpers,
//! `collect` into a `Vec` then indexed, `to_vec`, `first`/`last`, array patterns, casts
//! between f32 and f64, consts and statics, methods on `&self`, f32, forward and second
//! order), laid out by rustfmt, nobody tuning them for the macro.
//!
//! Every gradient is compared with central finite differences of the ORIGINAL function at
//! random points (and, where it is short, with a derivative worked out by hand), never with
//! another output of the macro. Points where finite differences with two step sizes disagree
//! (a kink inside the stencil) are skipped, and each check asserts that most points were
//! usable. `_jvp` is checked against finite differences along a random direction, `_hvp`
//! against finite differences of `_grad` along it.

#![allow(
    dead_code,
    unused_mut,
    clippy::needless_range_loop,
    clippy::needless_return,
    clippy::assign_op_pattern,
    clippy::let_and_return,
    clippy::manual_range_contains,
    clippy::excessive_precision,
    clippy::too_many_arguments,
    clippy::type_complexity,
    clippy::approx_constant,
    clippy::neg_multiply,
    clippy::collapsible_else_if,
    clippy::single_match,
    clippy::iter_count,
    clippy::needless_late_init,
    clippy::manual_clamp,
    clippy::vec_init_then_push,
    clippy::collapsible_if,
    clippy::useless_vec
)]

use symgrad::differentiable;
use symgrad::num_traits::Float;

mod common;

#[path = "common/user_style_harness.rs"]
mod harness;
use harness::*;

// ---------------------------------------------------------------------------------------
// match with guards, if let, let chains, while let, loop/break value, labels
// ---------------------------------------------------------------------------------------

#[differentiable]
fn match_guard_deref(x: f64, pick: &Option<usize>) -> f64 {
    let mut s = 0.0;
    for i in 0..4 {
        let w = match pick {
            Some(k) if *k == i => 3.0,
            Some(_) => 1.0,
            None => 0.5,
        };
        s += w * x.powi(i as i32 + 1);
    }
    s
}

#[differentiable]
fn if_let_chain_deref(x: f64, skip: &Option<usize>) -> f64 {
    let mut total = 0.0;
    for i in 0..5 {
        if let Some(at) = skip
            && *at == i
        {
            continue;
        }
        total += (x * i as f64).sin();
    }
    total
}

#[differentiable]
fn if_let_option_f64(x: f64, scale: Option<f64>) -> f64 {
    if let Some(s) = scale {
        s * x * x
    } else {
        x.exp()
    }
}

#[differentiable]
fn if_let_ref_option(x: f64, offset: &Option<f64>) -> f64 {
    let base = x.sin();
    if let Some(o) = offset {
        base + *o * x
    } else {
        base
    }
}

#[differentiable]
fn match_option_usize(xs: &[f64], idx: Option<usize>) -> f64 {
    match idx {
        Some(i) if i < xs.len() => xs[i] * xs[i],
        Some(_) => xs[0],
        None => xs.iter().sum(),
    }
}

#[differentiable]
fn match_float_guards(x: f64) -> f64 {
    match x {
        v if v < -1.0 => -v - 0.5,
        v if v < 1.0 => 0.5 * v * v,
        v => v - 0.5,
    }
}

#[differentiable]
fn match_tuple_scrutinee(x: f64, y: f64, mode: u8, flip: bool) -> f64 {
    match (mode, flip) {
        (0, false) => x * y,
        (0, true) => y - x,
        (1, _) => x.sin() + y.cos(),
        _ => x.hypot(y),
    }
}

#[differentiable]
fn let_chain_two_conditions(x: f64, y: f64, lim: Option<f64>) -> f64 {
    if let Some(l) = lim
        && x < l
        && y > 0.0
    {
        x * y + l
    } else {
        x - y
    }
}

#[differentiable]
fn loop_break_value(x: f64) -> f64 {
    let mut y = x;
    let mut n = 0;
    let r = loop {
        y = 0.5 * y + 1.0;
        n += 1;
        if n >= 6 {
            break y * x;
        }
    };
    r + 1.0
}

#[differentiable]
fn labelled_break_nested(xs: &[f64], limit: f64) -> f64 {
    let mut acc = 0.0;
    'outer: for i in 0..xs.len() {
        for j in 0..xs.len() {
            acc += xs[i] * xs[j];
            if acc > limit {
                break 'outer;
            }
        }
    }
    acc
}

#[differentiable]
fn labelled_continue(xs: &[f64]) -> f64 {
    let mut s = 0.0;
    'rows: for i in 0..3 {
        for j in 0..3 {
            if j > i {
                continue 'rows;
            }
            s += xs[i] * xs[j];
        }
    }
    s
}

#[differentiable]
fn early_return_in_match_in_for(xs: &[f64], stop: usize) -> f64 {
    let mut s = 0.0;
    for (i, &x) in xs.iter().enumerate() {
        match i {
            k if k == stop => return s * x,
            0 => s += x,
            _ => s += x * x,
        }
    }
    s
}

// ---------------------------------------------------------------------------------------
// iterator idioms
// ---------------------------------------------------------------------------------------

#[differentiable]
fn zip_weighted(xs: &[f64], ws: &[f64]) -> f64 {
    xs.iter().zip(ws.iter()).map(|(x, w)| w * x.sin()).sum()
}

#[differentiable]
fn zip_for_loop(xs: &[f64], ys: &[f64]) -> f64 {
    let mut d = 0.0;
    for (x, y) in xs.iter().zip(ys) {
        let e = x - y;
        d += e * e;
    }
    d.sqrt()
}

#[differentiable]
fn enumerate_map_sum(xs: &[f64]) -> f64 {
    xs.iter()
        .enumerate()
        .map(|(i, x)| (i as f64 + 1.0) * x * x)
        .sum()
}

#[differentiable]
fn chunks_pairs(xs: &[f64]) -> f64 {
    let mut s = 0.0;
    for c in xs.chunks(2) {
        s += c[0] * c[c.len() - 1];
    }
    s
}

#[differentiable]
fn windows_slope(xs: &[f64]) -> f64 {
    xs.windows(2).map(|w| (w[1] - w[0]).powi(2)).sum::<f64>()
}

#[differentiable]
fn rev_horner(x: f64, cs: &[f64]) -> f64 {
    let mut acc = 0.0;
    for c in cs.iter().rev() {
        acc = acc * x + c;
    }
    acc
}

#[differentiable]
fn skip_take_sum(xs: &[f64]) -> f64 {
    let mid: f64 = xs.iter().skip(1).take(3).map(|x| x * x).sum();
    mid + xs[0]
}

#[differentiable]
fn map_capturing_local(xs: &[f64], t: f64) -> f64 {
    let scale = t.exp();
    let shift = 0.5 * t;
    xs.iter().map(|x| (scale * x - shift).tanh()).sum()
}

#[differentiable]
fn fold_tuple(xs: &[f64]) -> f64 {
    let (s, sq) = xs.iter().fold((0.0, 0.0), |(a, b), x| (a + x, b + x * x));
    sq - s * s / xs.len() as f64
}

#[differentiable]
fn for_enumerate_weights(xs: &[f64]) -> f64 {
    let mut s = 0.0;
    for (i, x) in xs.iter().enumerate() {
        s += x * (i as f64 * 0.3).cos();
    }
    s
}

#[differentiable]
fn for_ref_pattern(xs: &[f64]) -> f64 {
    let mut m = 0.0;
    for &x in xs {
        m += x.abs().sqrt();
    }
    m
}

#[differentiable]
fn for_copied(xs: &[f64]) -> f64 {
    let mut p = 1.0;
    for x in xs.iter().copied() {
        p *= 1.0 + 0.1 * x;
    }
    p
}

#[differentiable]
fn max_fold(xs: &[f64]) -> f64 {
    xs.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x))
}

#[differentiable]
fn sum_annotated_turbofish(xs: &[f64]) -> f64 {
    let total = xs.iter().map(|x| x * x).sum::<f64>();
    total.sqrt()
}

#[differentiable]
fn product_of_terms(xs: &[f64]) -> f64 {
    xs.iter().map(|x| 1.0 + x * x).product()
}

#[differentiable]
fn zip_three(xs: &[f64], ys: &[f64], zs: &[f64]) -> f64 {
    let mut s = 0.0;
    for ((x, y), z) in xs.iter().zip(ys.iter()).zip(zs.iter()) {
        s += x * y * z;
    }
    s
}

#[differentiable]
fn step_by_two(xs: &[f64]) -> f64 {
    xs.iter().step_by(2).map(|x| x.sin()).sum()
}

#[differentiable]
fn iter_last_rev_enumerate(xs: &[f64]) -> f64 {
    let mut s = 0.0;
    for (i, x) in xs.iter().enumerate().rev() {
        s = s * 0.9 + (i as f64) * x;
    }
    s
}

#[differentiable]
fn windows_three(xs: &[f64]) -> f64 {
    let mut e = 0.0;
    for w in xs.windows(3) {
        let lap = w[0] - 2.0 * w[1] + w[2];
        e += lap * lap;
    }
    e
}

#[differentiable]
fn zip_skip_diff(xs: &[f64]) -> f64 {
    xs.iter()
        .zip(xs.iter().skip(1))
        .map(|(a, b)| (b - a).abs())
        .sum()
}
// ---------------------------------------------------------------------------------------
// helpers, methods, consts, statics, casts
// ---------------------------------------------------------------------------------------

const GRAVITY: f64 = 9.81;
static DAMPING: f64 = 0.25;
const WEIGHTS: [f64; 3] = [0.2, 0.3, 0.5];
const STEPS: usize = 8;

#[differentiable]
fn dot_helper(a: &[f64], b: &[f64]) -> f64 {
    let mut s = 0.0;
    for i in 0..a.len() {
        s += a[i] * b[i];
    }
    s
}

#[differentiable]
fn norm_via_helper(v: &[f64]) -> f64 {
    dot_helper(v, v).sqrt()
}

#[differentiable]
fn cosine_via_helpers(a: &[f64], b: &[f64]) -> f64 {
    dot_helper(a, b) / (norm_via_helper(a) * norm_via_helper(b))
}

#[differentiable]
fn arr_helper(p: [f64; 3]) -> f64 {
    p[0] * p[1] + p[2].sin()
}

#[differentiable]
fn calls_arr_helper(x: f64, y: f64) -> f64 {
    let p = [x, y, x * y];
    arr_helper(p) + arr_helper([y, x, 1.0])
}

#[differentiable]
fn quad_pair(x: f64, y: f64) -> (f64, f64) {
    (x * x + y, x - y * y)
}

#[differentiable]
fn destructure_call(x: f64, y: f64) -> f64 {
    let (a, b) = quad_pair(x, y);
    let (c, d) = quad_pair(b, a);
    a * d + c.sin()
}

#[differentiable]
fn cross3(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

#[differentiable]
fn uses_cross(x: f64, y: f64, z: f64) -> f64 {
    let c = cross3([x, y, z], [1.0, x, y * z]);
    c[0] * c[0] + c[1] * c[2]
}

#[differentiable]
fn local_array_returned_and_indexed(x: f64) -> f64 {
    let v = [x, x * x, x.sin()];
    let w = [v[2], v[0], v[1]];
    w[0] * 2.0 + w[1] * w[2]
}

#[differentiable]
fn array_pattern(x: f64, y: f64) -> f64 {
    let arr = [x + y, x * y, x - y];
    let [a, b, c] = arr;
    a * b + c.exp()
}

struct Params {
    a: f64,
    b: f64,
    scale: f64,
}

impl Params {
    #[differentiable(wrt(x))]
    fn eval(&self, x: f64) -> f64 {
        self.scale * (self.a * x + self.b).tanh()
    }

    #[differentiable(wrt(xs))]
    fn loss(&self, xs: &[f64]) -> f64 {
        let mut s = 0.0;
        for &x in xs {
            let e = self.eval(x) - 1.0;
            s += e * e;
        }
        s
    }
}

#[differentiable]
fn consts_and_statics(h: f64, v: f64) -> f64 {
    let e = 0.5 * v * v + GRAVITY * h;
    e * (1.0 - DAMPING)
}

#[differentiable]
fn const_array_weights(xs: &[f64]) -> f64 {
    let mut s = 0.0;
    for i in 0..WEIGHTS.len() {
        s += WEIGHTS[i] * xs[i].powi(2);
    }
    s
}

#[differentiable]
fn const_step_count(x: f64) -> f64 {
    let dt = 1.0 / STEPS as f64;
    let mut y = x;
    for _ in 0..STEPS {
        y += dt * (-y * y).exp();
    }
    y
}

#[differentiable]
fn casts_f32_f64(x: f64, n: usize) -> f64 {
    let k = n as f64;
    let half = (n / 2) as f64;
    let i = (n as i32 - 1) as f64;
    x * k + half * x.sin() + i
}

#[differentiable]
fn integer_counters_mixed(x: f64) -> f64 {
    let mut i = 0usize;
    let mut s = 0.0;
    while i < 5 {
        let t = i as f64 / 4.0;
        s += (t * x).cos();
        i += 1;
    }
    s
}

#[differentiable]
fn epsilon_guard(x: f64, y: f64) -> f64 {
    let d = (x * x + y * y).sqrt() + f64::EPSILON;
    x / d
}

#[differentiable]
fn max_min_chain(x: f64, y: f64, z: f64) -> f64 {
    x.max(y).min(z) + x.min(y).max(-1.0).min(1.0)
}

#[differentiable]
fn abs_signum_mix(x: f64, y: f64) -> f64 {
    x.abs() + y.signum() * x + (x - y).abs() * 0.5
}

#[differentiable]
fn negative_powi(x: f64, y: f64) -> f64 {
    x.powi(-1) + y.powi(-3) + (x * y).powi(-2)
}

#[differentiable]
fn hypot_atan2(x: f64, y: f64) -> f64 {
    let r = x.hypot(y);
    let th = y.atan2(x);
    r * (2.0 * th).sin()
}

#[differentiable]
fn shadowing_blocks(x: f64) -> f64 {
    let y = x * 2.0;
    let z = {
        let y = y.sin();
        let x = y + x;
        x * y
    };
    let y = y + z;
    y
}

#[differentiable]
fn shadow_in_loop(x: f64) -> f64 {
    let mut acc = x;
    for i in 0..3 {
        let x = acc * (i as f64 + 1.0);
        let acc2 = x.sin();
        acc = acc2 + acc;
    }
    acc
}

#[differentiable]
fn sub_slice_from(xs: &[f64]) -> f64 {
    let tail = &xs[1..];
    let mut s = 0.0;
    for &t in tail {
        s += t * xs[0];
    }
    s
}

#[differentiable]
fn sub_slice_prefix_sum(xs: &[f64], n: usize) -> f64 {
    let head: f64 = xs[..n].iter().sum();
    head * head
}

#[differentiable]
fn sub_slice_to_helper(xs: &[f64]) -> f64 {
    dot_helper(&xs[..2], &xs[2..4])
}

#[differentiable]
fn collect_then_index(xs: &[f64]) -> f64 {
    let sq: Vec<f64> = xs.iter().map(|x| x * x).collect();
    sq[0] + sq[sq.len() - 1] * 2.0
}

#[differentiable]
fn collect_turbofish(xs: &[f64]) -> f64 {
    let e = xs.iter().map(|x| x.exp()).collect::<Vec<f64>>();
    let z: f64 = e.iter().sum();
    e[1] / z
}

#[differentiable]
fn with_capacity_push(xs: &[f64]) -> f64 {
    let mut v = Vec::with_capacity(xs.len());
    for i in 0..xs.len() {
        v.push(xs[i] * (i as f64 + 1.0));
    }
    let mut s = 0.0;
    for k in 0..v.len() {
        s += v[k] * v[v.len() - 1 - k];
    }
    s
}

#[differentiable]
fn vec_new_push_sum(x: f64, y: f64) -> f64 {
    let mut v: Vec<f64> = Vec::new();
    v.push(x);
    v.push(y * x);
    v.push(y.exp());
    v.iter().map(|t| t * t).sum()
}
// ---------------------------------------------------------------------------------------
// f32, more idioms
// ---------------------------------------------------------------------------------------

#[differentiable]
fn f32_guards(x: f32, mode: Option<usize>) -> f32 {
    match mode {
        Some(m) if m > 1 => x.powi(m as i32),
        Some(_) => x.sin(),
        None => x * 0.5,
    }
}

#[differentiable]
fn f32_zip_enumerate(xs: &[f32], ws: &[f32]) -> f32 {
    let mut s = 0.0f32;
    for (i, (x, w)) in xs.iter().zip(ws).enumerate() {
        s += (i as f32 + 1.0) * w * x.tanh();
    }
    s
}

#[differentiable]
fn f32_casts(x: f32, y: f64) -> f32 {
    let a = x as f64 * y;
    let b = (a.sin() as f32) * x;
    b + (y as f32).exp() * 0.1
}

#[differentiable]
fn f32_windows_collect(xs: &[f32]) -> f32 {
    let d: Vec<f32> = xs.windows(2).map(|w| w[1] - w[0]).collect();
    let mut e = 0.0;
    for v in d.iter() {
        e += v * v;
    }
    e
}

#[differentiable]
fn f32_sub_slice(xs: &[f32]) -> f32 {
    let head = &xs[..2];
    let rest = &xs[2..];
    head.iter().sum::<f32>() * rest.iter().map(|r| r.cos()).sum::<f32>()
}

#[differentiable]
fn f32_loop_break(x: f32) -> f32 {
    let mut y = x;
    let mut k = 0;
    loop {
        y = y - 0.25 * (y * y - 2.0);
        k += 1;
        if k == 5 {
            break;
        }
    }
    y * x
}

#[differentiable]
fn f32_array_pattern(p: [f32; 3]) -> f32 {
    let [a, b, c] = p;
    a * b - c.abs()
}

#[differentiable]
fn f32_hypot_atan2(x: f32, y: f32) -> f32 {
    x.hypot(y) + y.atan2(x) * 0.5 + x.max(y).min(1.5)
}

#[differentiable]
fn chunks_exact_energy(xs: &[f64]) -> f64 {
    let mut e = 0.0;
    for pair in xs.chunks_exact(2) {
        let (a, b) = (pair[0], pair[1]);
        e += (a - b).powi(2) + a * b;
    }
    e
}

#[differentiable]
fn sub_slice_window_in_loop(xs: &[f64]) -> f64 {
    let mut best = 0.0;
    for i in 0..xs.len() - 1 {
        let part = &xs[i..i + 2];
        best += part[0] * part[1];
    }
    best
}

#[differentiable]
fn sub_slice_inclusive(xs: &[f64], k: usize) -> f64 {
    let mut s = 0.0;
    for x in xs[1..=k].iter() {
        s += x.exp();
    }
    s
}

#[differentiable]
fn sub_slice_of_sub_slice(xs: &[f64]) -> f64 {
    let a = &xs[1..];
    let b = &a[1..];
    b[0] * a[0] + b.len() as f64 * xs[0]
}

#[differentiable]
fn collect_range_map(x: f64, n: usize) -> f64 {
    let pows: Vec<f64> = (0..n)
        .map(|k| x.powi(k as i32) / (k as f64 + 1.0))
        .collect();
    let mut s = 0.0;
    for i in 0..pows.len() {
        s += pows[i];
    }
    s
}

#[differentiable]
fn collect_zip_then_loop(xs: &[f64], ys: &[f64]) -> f64 {
    let prods = xs
        .iter()
        .zip(ys.iter())
        .map(|(a, b)| a * b)
        .collect::<Vec<_>>();
    let mut m = prods[0];
    for &p in &prods[1..] {
        m = m.max(p);
    }
    m
}

#[differentiable]
fn window_passed_to_helper(xs: &[f64]) -> f64 {
    let mut s = 0.0;
    for w in xs.windows(2) {
        s += dot_helper(w, w);
    }
    s
}

#[differentiable]
fn slice_param_from_vec(x: f64, y: f64) -> f64 {
    let v = vec![x, y, x * y];
    norm_via_helper(&v) + dot_helper(&v[1..], &v[..2])
}

#[differentiable]
fn tuple_returning_loop(x: f64) -> f64 {
    let mut p = (x, 1.0);
    for _ in 0..3 {
        p = quad_pair(p.0 * 0.5, p.1 * 0.5);
    }
    p.0 + p.1
}

#[differentiable]
fn nested_if_let_in_loop(xs: &[f64], skip: Option<usize>) -> f64 {
    let mut s = 0.0;
    for (i, &x) in xs.iter().enumerate() {
        if let Some(k) = skip {
            if i == k {
                continue;
            }
        }
        s += x * x;
    }
    s
}

#[differentiable]
fn match_range_patterns(x: f64, n: u32) -> f64 {
    let c = match n {
        0 => 1.0,
        1..=3 => 2.0,
        4 | 5 => 3.0,
        _ => 0.5,
    };
    c * x.sin()
        + match n % 2 {
            0 => x,
            _ => -x,
        }
}

#[differentiable]
fn break_value_search(xs: &[f64], target: f64) -> f64 {
    let mut i = 0;
    let found = loop {
        if i == xs.len() {
            break 0.0;
        }
        if xs[i] > target {
            break xs[i] - target;
        }
        i += 1;
    };
    found * found
}

#[differentiable]
fn let_else_free_shadowing(x: f64, y: f64) -> f64 {
    let x = x * 2.0;
    let (x, y) = (y, x);
    let x = if x > 0.0 { x } else { -x };
    x * y
}

#[differentiable]
fn block_value_with_early_return(x: f64) -> f64 {
    let y = {
        let t = x * x;
        if t > 4.0 {
            return t.sqrt();
        }
        t + 1.0
    };
    y.ln()
}

#[differentiable]
fn cumulative_sums(xs: &[f64]) -> f64 {
    let mut cum = Vec::with_capacity(xs.len());
    let mut run = 0.0;
    for &x in xs {
        run += x;
        cum.push(run);
    }
    cum.iter().map(|c| c * c).sum::<f64>() / cum.len() as f64
}

#[differentiable]
fn softmax_vec(logits: &[f64]) -> f64 {
    let m = logits.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
    let exps: Vec<f64> = logits.iter().map(|&l| (l - m).exp()).collect();
    let z: f64 = exps.iter().sum();
    let probs: Vec<f64> = exps.iter().map(|e| e / z).collect();
    probs[0] * 2.0 + probs[probs.len() - 1]
}

#[differentiable]
fn usize_loop_counter_in_while(x: f64, n: usize) -> f64 {
    let mut k: usize = 0;
    let mut acc = 0.0;
    while k < n {
        acc += x / (k + 1) as f64;
        k += 2;
    }
    acc
}

#[differentiable]
fn signum_kink_free(x: f64, y: f64) -> f64 {
    let s = (x - 3.0).signum();
    s * y * y + x.abs().sqrt()
}

// ---------------------------------------------------------------------------------------
// forward and second order
// ---------------------------------------------------------------------------------------

#[differentiable(forward, reverse)]
fn fwd_guard_option(x: f64, y: f64, k: Option<usize>) -> f64 {
    match k {
        Some(n) if n > 2 => x.powi(n as i32) * y,
        Some(_) => x * y.sin(),
        None => x.hypot(y),
    }
}

#[differentiable(forward, reverse)]
fn fwd_sub_slice_sum(xs: &[f64]) -> f64 {
    let tail = &xs[1..];
    tail.iter().map(|t| t * xs[0]).sum::<f64>()
}

#[differentiable(forward, reverse)]
fn fwd_chunks(xs: &[f64]) -> f64 {
    xs.chunks(2).map(|c| c[0] * c[c.len() - 1]).sum()
}

#[differentiable(forward, reverse)]
fn fwd_array_pattern(x: f64, y: f64) -> f64 {
    let [a, b] = [x * y, x - y];
    a.exp() * b
}

#[differentiable(forward, reverse)]
fn fwd_collect(xs: &[f64]) -> f64 {
    let sq: Vec<f64> = xs.iter().map(|x| x * x).collect();
    sq[0] * sq[1]
}

#[differentiable(forward, reverse)]
fn fwd_deref_guard(x: f64, pick: &Option<usize>) -> f64 {
    let mut s = 0.0;
    for i in 0..3 {
        if let Some(p) = pick
            && *p == i
        {
            s += x.powi(i as i32 + 2);
        } else {
            s += x;
        }
    }
    s
}

#[differentiable(hessian)]
fn hess_tuple_pattern(x: f64, y: f64) -> f64 {
    let (a, b) = (x * y, x + y);
    a * a + b.sin()
}

#[differentiable(hessian)]
fn hess_array_pattern(p: [f64; 3]) -> f64 {
    let [a, b, c] = p;
    a * b * c + a.sin()
}

#[differentiable(hessian)]
fn hess_sub_slice(xs: &[f64]) -> f64 {
    let rest = &xs[1..];
    let mut s = 0.0;
    for &r in rest {
        s += r * r * xs[0];
    }
    s
}

#[differentiable(hessian)]
fn hess_match_guard(x: f64, y: f64, k: usize) -> f64 {
    match k {
        n if n > 1 => x * x * y,
        _ => (x * y).sin(),
    }
}

#[differentiable(hessian)]
fn hess_chunks(xs: &[f64]) -> f64 {
    let mut s = 0.0;
    for c in xs.chunks(2) {
        s += c[0] * c[c.len() - 1] * c[0];
    }
    s
}

#[differentiable(hessian)]
fn hess_deref_guard(x: f64, y: f64, pick: &Option<usize>) -> f64 {
    match pick {
        Some(k) if *k > 0 => x * y * y,
        _ => x * x + y,
    }
}
// ---------------------------------------------------------------------------------------
// Round two: iter_mut, first/last, to_vec, let-else, fold with a function path, casts
// ---------------------------------------------------------------------------------------

#[differentiable]
fn q_iter_mut(xs: &[f64]) -> f64 {
    let mut arr = [0.0; 3];
    for (i, a) in arr.iter_mut().enumerate() {
        *a = xs[i] * 2.0;
    }
    arr[0] * arr[1] + arr[2]
}

#[differentiable]
fn q_fold_fn_path(xs: &[f64]) -> f64 {
    xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
}

#[differentiable]
fn q_last_first(xs: &[f64]) -> f64 {
    let a = *xs.last().unwrap();
    let b = xs.first().unwrap();
    a * b
}

#[differentiable]
fn q_range_map_inclusive(x: f64, n: usize) -> f64 {
    (1..=n).map(|k| x.powi(k as i32) / k as f64).sum()
}

#[differentiable]
fn q_to_vec(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v[0] = 0.0;
    v.iter().map(|t| t * t).sum::<f64>()
}

#[differentiable]
fn q_is_finite(x: f64) -> f64 {
    if !x.is_finite() {
        return 0.0;
    }
    x * x
}

#[differentiable]
fn q_matches(x: f64, k: usize) -> f64 {
    if matches!(k, 1 | 2) { x * 2.0 } else { x }
}

#[differentiable]
fn q_closure_annotated(x: f64) -> f64 {
    let sq = |v: f64| -> f64 { v * v };
    sq(x) + sq(2.0 * x)
}

#[differentiable]
fn q_inner_fn(x: f64) -> f64 {
    fn scale() -> f64 {
        2.5
    }
    x * scale()
}

#[differentiable]
fn q_enumerate_ref_closure(xs: &[f64]) -> f64 {
    xs.iter()
        .enumerate()
        .map(|(i, &x)| x * i as f64)
        .sum::<f64>()
}

#[differentiable]
fn q_zip_ref_pats(xs: &[f64], ys: &[f64]) -> f64 {
    xs.iter().zip(ys).map(|(&x, &y)| x * y).sum()
}

#[differentiable]
fn q_sum_then_method(xs: &[f64]) -> f64 {
    xs.iter().map(|x| x * x).sum::<f64>().sqrt()
}

#[differentiable]
fn q_while_and(xs: &[f64], t: f64) -> f64 {
    let mut i = 0;
    while i < xs.len() && xs[i] < t {
        i += 1;
    }
    if i < xs.len() { xs[i] } else { t }
}

#[differentiable]
fn q_f64_from(x: f64, n: u32) -> f64 {
    x * f64::from(n) + f64::from(2.0f32)
}

#[differentiable]
fn q_return_semicolon(x: f64) -> f64 {
    let y = x * 3.0;
    return y.sin();
}

#[differentiable]
fn q_match_tuple_pair(x: f64, i: usize, j: usize) -> f64 {
    match (i, j) {
        (0, 0) => x,
        (0, _) | (_, 0) => x * x,
        _ => x.sin(),
    }
}

#[differentiable]
fn q_iter_sum_copied(xs: &[f64]) -> f64 {
    let total: f64 = xs.iter().copied().sum();
    let n = xs.len() as f64;
    total / n
}

#[differentiable]
fn q_const_generic_len(a: [f64; 4]) -> f64 {
    let mut s = 0.0;
    for i in 0..a.len() {
        s += a[i] * a[(i + 1) % a.len()];
    }
    s
}

#[differentiable]
fn q_rev_enumerate(xs: &[f64]) -> f64 {
    let mut s = 0.0;
    for (i, x) in xs.iter().rev().enumerate() {
        s += x * (i + 1) as f64;
    }
    s
}

#[differentiable]
fn q_max_by(xs: &[f64]) -> f64 {
    let m = xs.iter().cloned().fold(0.0_f64, |a, b| a.max(b));
    let lse = xs.iter().map(|x| (x - m).exp()).sum::<f64>().ln() + m;
    lse
}

#[differentiable]
fn q_generic_sub_slice<T: Float>(xs: &[T]) -> T {
    let tail = &xs[1..];
    let mut s = T::zero();
    for &t in tail {
        s = s + t * xs[0];
    }
    s
}

#[differentiable]
fn q_cast_chain(x: f32) -> f64 {
    let y = x as f64;
    let z = (y * y) as f32;
    (z.sin() as f64) + y
}

#[differentiable]
fn q_if_let_else_if(x: f64, a: Option<f64>, b: Option<usize>) -> f64 {
    if let Some(s) = a {
        x * s
    } else if let Some(k) = b {
        x.powi(k as i32)
    } else {
        x
    }
}

#[differentiable]
fn q_let_else(x: f64, a: Option<f64>) -> f64 {
    let Some(s) = a else {
        return x;
    };
    x * s
}

#[differentiable]
fn q_iter_position(xs: &[f64]) -> f64 {
    let mut best = 0;
    for (i, &x) in xs.iter().enumerate() {
        if x > xs[best] {
            best = i;
        }
    }
    xs[best] * 2.0
}

#[differentiable]
fn q_chunks_sum_inner(xs: &[f64]) -> f64 {
    let mut s = 0.0;
    for c in xs.chunks(3) {
        let m: f64 = c.iter().sum::<f64>() / c.len() as f64;
        s += m * m;
    }
    s
}

#[differentiable]
fn q_compound_on_index(xs: &[f64]) -> f64 {
    let mut acc = vec![0.0; 2];
    for (i, &x) in xs.iter().enumerate() {
        acc[i % 2] += x * x;
        acc[(i + 1) % 2] -= 0.5 * x;
    }
    acc[0] * acc[1]
}

#[differentiable]
fn q_normalize_in_place(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    let norm = v.iter().map(|t| t * t).sum::<f64>().sqrt();
    for t in v.iter_mut() {
        *t /= norm;
    }
    v[0] - 2.0 * v[v.len() - 1]
}

#[differentiable]
fn q_mut_ref_loop(x: f64, y: f64) -> f64 {
    let mut state = [x, y, x * y];
    for s in &mut state {
        *s = s.sin() + 0.5 * *s;
    }
    state[0] * state[1] + state[2]
}

#[differentiable]
fn q_let_else_ref(xs: &[f64], at: &Option<usize>) -> f64 {
    let Some(k) = at else {
        return xs[0];
    };
    xs[*k] * xs[*k] + xs[0]
}

#[differentiable(forward, reverse)]
fn q_fwd_iter_mut(x: f64, y: f64) -> f64 {
    let mut v = vec![x, y, 1.0];
    for (i, t) in v.iter_mut().enumerate() {
        *t *= (i + 1) as f64;
    }
    v[0] * v[1] + v[2] * x
}

#[differentiable(forward, reverse)]
fn q_fwd_cast(x: f32, y: f64) -> f64 {
    let a = (x * x) as f64;
    (a * y).sin() + y * x as f64
}

#[differentiable(hessian)]
fn q_hess_first_last(xs: &[f64]) -> f64 {
    let a = *xs.first().unwrap();
    let b = *xs.last().unwrap();
    a * a * b + b.sin()
}
// ---------------------------------------------------------------------------------------
// Round three: enum and &str settings, closures over slices, `Some(&k)` patterns, folds
// into tuples and with `mul_add`, slices of arrays
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum Act {
    Relu,
    Tanh,
    Leaky(f64),
}

#[differentiable(wrt(x))]
fn r_enum_param(x: f64, act: Act) -> f64 {
    match act {
        Act::Relu => x.max(0.0),
        Act::Tanh => x.tanh(),
        Act::Leaky(a) if a > 0.0 => {
            if x > 0.0 {
                x
            } else {
                a * x
            }
        }
        Act::Leaky(_) => x,
    }
}

#[differentiable]
fn r_str_param(x: f64, kind: &str) -> f64 {
    match kind {
        "square" => x * x,
        "cube" => x * x * x,
        _ => x,
    }
}

#[differentiable]
fn r_closure_over_slice(xs: &[f64], w: f64) -> f64 {
    let f = |i: usize| xs[i] * w;
    let mut s = 0.0;
    for i in 0..xs.len() {
        s += f(i).sin();
    }
    s
}

#[differentiable]
fn r_sub_slice_in_closure(xs: &[f64]) -> f64 {
    let tail = &xs[1..];
    let g = |t: f64| t * xs[0];
    tail.iter().map(|&t| g(t)).sum()
}

#[differentiable]
fn r_if_let_ref_slice_elem(xs: &[f64], idx: &[usize]) -> f64 {
    let mut s = 0.0;
    for &i in idx {
        s += xs[i];
    }
    if let Some(&last) = idx.last() {
        s += xs[last];
    }
    s
}

#[differentiable]
fn r_nested_loops_break_value(xs: &[f64]) -> f64 {
    let mut found = 0.0;
    'search: for i in 0..xs.len() {
        for j in (i + 1)..xs.len() {
            if xs[i] * xs[j] > 1.0 {
                found = xs[i] * xs[j];
                break 'search;
            }
        }
    }
    found
}

#[differentiable]
fn r_tuple_vec_fold(xs: &[f64], ys: &[f64]) -> f64 {
    let (sx, sy, sxy) = xs
        .iter()
        .zip(ys)
        .fold((0.0, 0.0, 0.0), |(a, b, c), (x, y)| {
            (a + x, b + y, c + x * y)
        });
    sxy - sx * sy / xs.len() as f64
}

#[differentiable]
fn r_sum_sq_diff_iter(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        .sqrt()
}

#[differentiable]
fn r_count_then_mean(xs: &[f64]) -> f64 {
    let n = xs.iter().count();
    xs.iter().sum::<f64>() / n as f64
}

#[differentiable]
fn r_min_index(xs: &[f64]) -> f64 {
    let mut best = f64::INFINITY;
    let mut at = 0usize;
    for (i, &x) in xs.iter().enumerate() {
        if x < best {
            best = x;
            at = i;
        }
    }
    best * (at as f64 + 1.0)
}

#[differentiable]
fn r_array_of_arrays_read(p: [[f64; 2]; 2]) -> f64 {
    p[0][0] * p[1][1] - p[0][1] * p[1][0]
}

#[differentiable]
fn r_slice_of_arrays(pts: &[[f64; 2]]) -> f64 {
    let mut s = 0.0;
    for p in pts {
        s += (p[0] * p[0] + p[1] * p[1]).sqrt();
    }
    s
}

#[differentiable]
fn r_two_sub_slices_zip(xs: &[f64]) -> f64 {
    let n = xs.len() / 2;
    let a = &xs[..n];
    let b = &xs[n..];
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[differentiable]
fn r_mul_add_chain(x: f64, cs: &[f64; 4]) -> f64 {
    cs.iter().rev().fold(0.0, |acc, &c| acc.mul_add(x, c))
}

#[differentiable]
fn r_powi_loop_index(x: f64, n: i32) -> f64 {
    let mut s = 0.0;
    for k in -n..=n {
        if k != 0 {
            s += x.powi(k) / k as f64;
        }
    }
    s
}

fn s3v(r: (f64, (Vec<f64>, Vec<f64>, Vec<f64>))) -> (f64, Vec<f64>) {
    let mut g = r.1.0;
    g.extend(r.1.1);
    g.extend(r.1.2);
    (r.0, g)
}
fn tvv(r: (f32, (Vec<f32>, Vec<f32>))) -> (f64, Vec<f64>) {
    let mut g: Vec<f64> = r.1.0.iter().map(|&v| v as f64).collect();
    g.extend(r.1.1.iter().map(|&v| v as f64));
    (r.0 as f64, g)
}

#[test]
fn guards_lets_and_loops() {
    for pick in [None, Some(0), Some(2), Some(7)] {
        check(
            &format!("match_guard_deref/{pick:?}"),
            1,
            -1.5,
            1.5,
            &|p| match_guard_deref(p[0], &pick),
            &|p| s1(match_guard_deref_grad(p[0], &pick)),
        );
        check(
            &format!("if_let_chain_deref/{pick:?}"),
            1,
            -1.5,
            1.5,
            &|p| if_let_chain_deref(p[0], &pick),
            &|p| s1(if_let_chain_deref_grad(p[0], &pick)),
        );
    }
    // by hand: pick = Some(2): w = [1, 1, 3, 1], d/dx Σ w_i x^(i+1) = 1 + 2x + 9x² + 4x³
    let x = 0.7;
    assert_near(
        "match_guard_deref by hand",
        match_guard_deref_grad(x, &Some(2)).1,
        1.0 + 2.0 * x + 9.0 * x * x + 4.0 * x * x * x,
    );
    // by hand: skip = Some(1): Σ_{i≠1} sin(i x), d/dx = Σ_{i≠1} i cos(i x)
    let want: f64 = [0.0, 2.0, 3.0, 4.0].iter().map(|i| i * (i * x).cos()).sum();
    assert_near(
        "if_let_chain_deref by hand",
        if_let_chain_deref_grad(x, &Some(1)).1,
        want,
    );
    for scale in [None, Some(2.5)] {
        check(
            &format!("if_let_option_f64/{scale:?}"),
            1,
            -2.0,
            2.0,
            &|p| if_let_option_f64(p[0], scale),
            &|p| s1(if_let_option_f64_grad(p[0], scale)),
        );
        check(
            &format!("if_let_ref_option/{scale:?}"),
            1,
            -2.0,
            2.0,
            &|p| if_let_ref_option(p[0], &scale),
            &|p| s1(if_let_ref_option_grad(p[0], &scale)),
        );
        check(
            &format!("let_chain_two_conditions/{scale:?}"),
            2,
            -2.0,
            2.0,
            &|p| let_chain_two_conditions(p[0], p[1], scale),
            &|p| s2(let_chain_two_conditions_grad(p[0], p[1], scale)),
        );
    }
    for idx in [None, Some(1), Some(9)] {
        check(
            &format!("match_option_usize/{idx:?}"),
            4,
            -2.0,
            2.0,
            &|p| match_option_usize(p, idx),
            &|p| match_option_usize_grad(p, idx),
        );
    }
    check(
        "match_float_guards",
        1,
        -3.0,
        3.0,
        &|p| match_float_guards(p[0]),
        &|p| s1(match_float_guards_grad(p[0])),
    );
    for mode in 0..3u8 {
        for flip in [false, true] {
            check(
                &format!("match_tuple_scrutinee/{mode}/{flip}"),
                2,
                -2.0,
                2.0,
                &|p| match_tuple_scrutinee(p[0], p[1], mode, flip),
                &|p| s2(match_tuple_scrutinee_grad(p[0], p[1], mode, flip)),
            );
        }
    }
    check(
        "loop_break_value",
        1,
        -2.0,
        2.0,
        &|p| loop_break_value(p[0]),
        &|p| s1(loop_break_value_grad(p[0])),
    );
    // by hand: y6 = x/64 + c (c constant), r = y6 x: d/dx = 2x/64 + c, c = Σ_{k<6} 0.5^k
    let c: f64 = (0..6).map(|k| 0.5f64.powi(k)).sum();
    assert_near(
        "loop_break_value by hand",
        loop_break_value_grad(x).1,
        2.0 * x / 64.0 + c,
    );
    check(
        "labelled_break_nested",
        4,
        -1.0,
        1.5,
        &|p| labelled_break_nested(&p[..3], p[3]),
        &|p| svx(labelled_break_nested_grad(&p[..3], p[3])),
    );
    check(
        "labelled_continue",
        3,
        -2.0,
        2.0,
        &|p| labelled_continue(p),
        &|p| labelled_continue_grad(p),
    );
    for stop in [0, 2, 10] {
        check(
            &format!("early_return_in_match_in_for/{stop}"),
            4,
            -2.0,
            2.0,
            &|p| early_return_in_match_in_for(p, stop),
            &|p| early_return_in_match_in_for_grad(p, stop),
        );
    }
    for n in [3, 4] {
        check(
            &format!("nested_if_let_in_loop/{n}"),
            5,
            -2.0,
            2.0,
            &|p| nested_if_let_in_loop(p, Some(n)),
            &|p| nested_if_let_in_loop_grad(p, Some(n)),
        );
    }
    assert_eq!(
        nested_if_let_in_loop_grad(&[1.0, 2.0, 3.0], Some(1)).1,
        vec![2.0, 0.0, 6.0]
    );
    for n in [0, 2, 5, 9] {
        check(
            &format!("match_range_patterns/{n}"),
            1,
            -2.0,
            2.0,
            &|p| match_range_patterns(p[0], n),
            &|p| s1(match_range_patterns_grad(p[0], n)),
        );
    }
    check(
        "break_value_search",
        5,
        -2.0,
        2.0,
        &|p| break_value_search(&p[..4], p[4]),
        &|p| svx(break_value_search_grad(&p[..4], p[4])),
    );
    check(
        "let_else_free_shadowing",
        2,
        -2.0,
        2.0,
        &|p| let_else_free_shadowing(p[0], p[1]),
        &|p| s2(let_else_free_shadowing_grad(p[0], p[1])),
    );
    check(
        "block_value_with_early_return",
        1,
        -3.0,
        3.0,
        &|p| block_value_with_early_return(p[0]),
        &|p| s1(block_value_with_early_return_grad(p[0])),
    );
    for n in [0, 1, 6] {
        check(
            &format!("usize_loop_counter_in_while/{n}"),
            1,
            -2.0,
            2.0,
            &|p| usize_loop_counter_in_while(p[0], n),
            &|p| s1(usize_loop_counter_in_while_grad(p[0], n)),
        );
    }
}

#[test]
fn iterator_idioms_2() {
    check(
        "zip_weighted",
        6,
        -2.0,
        2.0,
        &|p| zip_weighted(&p[..3], &p[3..]),
        &|p| svv(zip_weighted_grad(&p[..3], &p[3..])),
    );
    check(
        "zip_for_loop",
        6,
        -2.0,
        2.0,
        &|p| zip_for_loop(&p[..3], &p[3..]),
        &|p| svv(zip_for_loop_grad(&p[..3], &p[3..])),
    );
    check(
        "enumerate_map_sum",
        4,
        -2.0,
        2.0,
        &|p| enumerate_map_sum(p),
        &|p| enumerate_map_sum_grad(p),
    );
    for n in [4, 5] {
        check(
            &format!("chunks_pairs/{n}"),
            n,
            -2.0,
            2.0,
            &|p| chunks_pairs(p),
            &|p| chunks_pairs_grad(p),
        );
    }
    // by hand: chunks [a, b], [c]: ab + c², gradient (b, a, 2c)
    assert_eq!(chunks_pairs_grad(&[2.0, 3.0, 5.0]).1, vec![3.0, 2.0, 10.0]);
    check("windows_slope", 5, -2.0, 2.0, &|p| windows_slope(p), &|p| {
        windows_slope_grad(p)
    });
    check(
        "rev_horner",
        4,
        -1.5,
        1.5,
        &|p| rev_horner(p[0], &p[1..]),
        &|p| sxv(rev_horner_grad(p[0], &p[1..])),
    );
    check("skip_take_sum", 5, -2.0, 2.0, &|p| skip_take_sum(p), &|p| {
        skip_take_sum_grad(p)
    });
    assert_eq!(
        skip_take_sum_grad(&[1.0, 1.0, 2.0, 3.0, 4.0]).1,
        vec![1.0, 2.0, 4.0, 6.0, 0.0]
    );
    check(
        "map_capturing_local",
        4,
        -1.0,
        1.0,
        &|p| map_capturing_local(&p[..3], p[3]),
        &|p| svx(map_capturing_local_grad(&p[..3], p[3])),
    );
    check("fold_tuple", 4, -2.0, 2.0, &|p| fold_tuple(p), &|p| {
        fold_tuple_grad(p)
    });
    check(
        "for_enumerate_weights",
        4,
        -2.0,
        2.0,
        &|p| for_enumerate_weights(p),
        &|p| for_enumerate_weights_grad(p),
    );
    check(
        "for_ref_pattern",
        4,
        0.2,
        2.0,
        &|p| for_ref_pattern(p),
        &|p| for_ref_pattern_grad(p),
    );
    check("for_copied", 4, -2.0, 2.0, &|p| for_copied(p), &|p| {
        for_copied_grad(p)
    });
    check("max_fold", 4, -2.0, 2.0, &|p| max_fold(p), &|p| {
        max_fold_grad(p)
    });
    assert_eq!(max_fold_grad(&[1.0, 4.0, 2.0]).1, vec![0.0, 1.0, 0.0]);
    check(
        "sum_annotated_turbofish",
        4,
        -2.0,
        2.0,
        &|p| sum_annotated_turbofish(p),
        &|p| sum_annotated_turbofish_grad(p),
    );
    check(
        "product_of_terms",
        4,
        -2.0,
        2.0,
        &|p| product_of_terms(p),
        &|p| product_of_terms_grad(p),
    );
    check(
        "zip_three",
        9,
        -2.0,
        2.0,
        &|p| zip_three(&p[..3], &p[3..6], &p[6..]),
        &|p| s3v(zip_three_grad(&p[..3], &p[3..6], &p[6..])),
    );
    check("step_by_two", 5, -2.0, 2.0, &|p| step_by_two(p), &|p| {
        step_by_two_grad(p)
    });
    check(
        "iter_last_rev_enumerate",
        4,
        -2.0,
        2.0,
        &|p| iter_last_rev_enumerate(p),
        &|p| iter_last_rev_enumerate_grad(p),
    );
    check("windows_three", 5, -2.0, 2.0, &|p| windows_three(p), &|p| {
        windows_three_grad(p)
    });
    check("zip_skip_diff", 5, -2.0, 2.0, &|p| zip_skip_diff(p), &|p| {
        zip_skip_diff_grad(p)
    });
    check(
        "chunks_exact_energy",
        5,
        -2.0,
        2.0,
        &|p| chunks_exact_energy(p),
        &|p| chunks_exact_energy_grad(p),
    );
    // the fifth element is in no exact chunk
    assert_eq!(
        chunks_exact_energy_grad(&[1.0, 2.0, 3.0, 4.0, 5.0]).1[4],
        0.0
    );
    check(
        "cumulative_sums",
        4,
        -2.0,
        2.0,
        &|p| cumulative_sums(p),
        &|p| cumulative_sums_grad(p),
    );
    check("softmax_vec", 4, -2.0, 2.0, &|p| softmax_vec(p), &|p| {
        softmax_vec_grad(p)
    });
}

#[test]
fn helpers_methods_and_consts() {
    check(
        "dot_helper",
        6,
        -2.0,
        2.0,
        &|p| dot_helper(&p[..3], &p[3..]),
        &|p| svv(dot_helper_grad(&p[..3], &p[3..])),
    );
    check(
        "norm_via_helper",
        3,
        0.3,
        2.0,
        &|p| norm_via_helper(p),
        &|p| norm_via_helper_grad(p),
    );
    check(
        "cosine_via_helpers",
        6,
        0.2,
        2.0,
        &|p| cosine_via_helpers(&p[..3], &p[3..]),
        &|p| svv(cosine_via_helpers_grad(&p[..3], &p[3..])),
    );
    check(
        "arr_helper",
        3,
        -2.0,
        2.0,
        &|p| arr_helper([p[0], p[1], p[2]]),
        &|p| {
            let (v, g) = arr_helper_grad([p[0], p[1], p[2]]);
            (v, g.to_vec())
        },
    );
    check(
        "calls_arr_helper",
        2,
        -2.0,
        2.0,
        &|p| calls_arr_helper(p[0], p[1]),
        &|p| s2(calls_arr_helper_grad(p[0], p[1])),
    );
    // a tuple result: the seed (1, 0.5) weights the two parts
    check(
        "quad_pair (vjp)",
        2,
        -2.0,
        2.0,
        &|p| {
            let (a, b) = quad_pair(p[0], p[1]);
            a + 0.5 * b
        },
        &|p| {
            let ((a, b), (gx, gy)) = quad_pair_vjp(p[0], p[1], (1.0, 0.5));
            (a + 0.5 * b, vec![gx, gy])
        },
    );
    check(
        "destructure_call",
        2,
        -1.5,
        1.5,
        &|p| destructure_call(p[0], p[1]),
        &|p| s2(destructure_call_grad(p[0], p[1])),
    );
    check(
        "uses_cross",
        3,
        -2.0,
        2.0,
        &|p| uses_cross(p[0], p[1], p[2]),
        &|p| s3(uses_cross_grad(p[0], p[1], p[2])),
    );
    check(
        "local_array_returned_and_indexed",
        1,
        -2.0,
        2.0,
        &|p| local_array_returned_and_indexed(p[0]),
        &|p| s1(local_array_returned_and_indexed_grad(p[0])),
    );
    check(
        "array_pattern",
        2,
        -2.0,
        2.0,
        &|p| array_pattern(p[0], p[1]),
        &|p| s2(array_pattern_grad(p[0], p[1])),
    );
    // by hand: (x + y) x y + e^(x - y): d/dx = 2xy + y² + e^(x-y), d/dy = x² + 2xy - e^(x-y)
    let (x, y) = (0.8, -0.3);
    let (_, (gx, gy)) = array_pattern_grad(x, y);
    assert_near(
        "array_pattern d/dx",
        gx,
        2.0 * x * y + y * y + (x - y).exp(),
    );
    assert_near(
        "array_pattern d/dy",
        gy,
        x * x + 2.0 * x * y - (x - y).exp(),
    );
    let params = Params {
        a: 0.7,
        b: -0.2,
        scale: 1.3,
    };
    check("Params::eval", 1, -2.0, 2.0, &|p| params.eval(p[0]), &|p| {
        s1(params.eval_grad(p[0]))
    });
    // by hand: scale a sech²(a x + b)
    let t = (params.a * x + params.b).tanh();
    assert_near(
        "Params::eval by hand",
        params.eval_grad(x).1,
        params.scale * params.a * (1.0 - t * t),
    );
    check("Params::loss", 4, -2.0, 2.0, &|p| params.loss(p), &|p| {
        params.loss_grad(p)
    });
    check(
        "consts_and_statics",
        2,
        -2.0,
        2.0,
        &|p| consts_and_statics(p[0], p[1]),
        &|p| s2(consts_and_statics_grad(p[0], p[1])),
    );
    assert_eq!(
        consts_and_statics_grad(1.0, 2.0).1,
        (GRAVITY * (1.0 - DAMPING), 2.0 * (1.0 - DAMPING))
    );
    check(
        "const_array_weights",
        3,
        -2.0,
        2.0,
        &|p| const_array_weights(p),
        &|p| const_array_weights_grad(p),
    );
    check(
        "const_step_count",
        1,
        -2.0,
        2.0,
        &|p| const_step_count(p[0]),
        &|p| s1(const_step_count_grad(p[0])),
    );
    for n in [0, 1, 4] {
        check(
            &format!("casts_f32_f64/{n}"),
            1,
            -2.0,
            2.0,
            &|p| casts_f32_f64(p[0], n),
            &|p| s1(casts_f32_f64_grad(p[0], n)),
        );
    }
    check(
        "integer_counters_mixed",
        1,
        -2.0,
        2.0,
        &|p| integer_counters_mixed(p[0]),
        &|p| s1(integer_counters_mixed_grad(p[0])),
    );
    check(
        "epsilon_guard",
        2,
        -2.0,
        2.0,
        &|p| epsilon_guard(p[0], p[1]),
        &|p| s2(epsilon_guard_grad(p[0], p[1])),
    );
    check(
        "max_min_chain",
        3,
        -2.0,
        2.0,
        &|p| max_min_chain(p[0], p[1], p[2]),
        &|p| s3(max_min_chain_grad(p[0], p[1], p[2])),
    );
    check(
        "abs_signum_mix",
        2,
        -2.0,
        2.0,
        &|p| abs_signum_mix(p[0], p[1]),
        &|p| s2(abs_signum_mix_grad(p[0], p[1])),
    );
    check(
        "negative_powi",
        2,
        0.5,
        2.0,
        &|p| negative_powi(p[0], p[1]),
        &|p| s2(negative_powi_grad(p[0], p[1])),
    );
    // by hand: d/dx (x⁻¹ + y⁻³ + x⁻² y⁻²) = -x⁻² - 2 x⁻³ y⁻²
    let (x2, y2) = (1.3, 0.7);
    assert_near(
        "negative_powi d/dx",
        negative_powi_grad(x2, y2).1.0,
        -1.0 / (x2 * x2) - 2.0 / (x2 * x2 * x2 * y2 * y2),
    );
    check(
        "hypot_atan2",
        2,
        -2.0,
        2.0,
        &|p| hypot_atan2(p[0], p[1]),
        &|p| s2(hypot_atan2_grad(p[0], p[1])),
    );
    check(
        "shadowing_blocks",
        1,
        -2.0,
        2.0,
        &|p| shadowing_blocks(p[0]),
        &|p| s1(shadowing_blocks_grad(p[0])),
    );
    check(
        "shadow_in_loop",
        1,
        -2.0,
        2.0,
        &|p| shadow_in_loop(p[0]),
        &|p| s1(shadow_in_loop_grad(p[0])),
    );
    check(
        "signum_kink_free",
        2,
        -2.0,
        2.0,
        &|p| signum_kink_free(p[0], p[1]),
        &|p| s2(signum_kink_free_grad(p[0], p[1])),
    );
    check(
        "tuple_returning_loop",
        1,
        -1.5,
        1.5,
        &|p| tuple_returning_loop(p[0]),
        &|p| s1(tuple_returning_loop_grad(p[0])),
    );
}

#[test]
fn sub_slices_and_collect() {
    check(
        "sub_slice_from",
        4,
        -2.0,
        2.0,
        &|p| sub_slice_from(p),
        &|p| sub_slice_from_grad(p),
    );
    // by hand: x0 (x1 + x2 + x3): gradient (x1 + x2 + x3, x0, x0, x0)
    assert_eq!(
        sub_slice_from_grad(&[2.0, 1.0, 3.0, 5.0]).1,
        vec![9.0, 2.0, 2.0, 2.0]
    );
    for n in [0, 2, 4] {
        check(
            &format!("sub_slice_prefix_sum/{n}"),
            4,
            -2.0,
            2.0,
            &|p| sub_slice_prefix_sum(p, n),
            &|p| sub_slice_prefix_sum_grad(p, n),
        );
    }
    assert_eq!(
        sub_slice_prefix_sum_grad(&[1.0, 2.0, 3.0, 4.0], 2).1,
        vec![6.0, 6.0, 0.0, 0.0]
    );
    check(
        "sub_slice_to_helper",
        4,
        -2.0,
        2.0,
        &|p| sub_slice_to_helper(p),
        &|p| sub_slice_to_helper_grad(p),
    );
    // by hand: x0 x2 + x1 x3
    assert_eq!(
        sub_slice_to_helper_grad(&[1.0, 2.0, 3.0, 4.0]).1,
        vec![3.0, 4.0, 1.0, 2.0]
    );
    check(
        "sub_slice_window_in_loop",
        5,
        -2.0,
        2.0,
        &|p| sub_slice_window_in_loop(p),
        &|p| sub_slice_window_in_loop_grad(p),
    );
    for k in [1, 3] {
        check(
            &format!("sub_slice_inclusive/{k}"),
            4,
            -2.0,
            2.0,
            &|p| sub_slice_inclusive(p, k),
            &|p| sub_slice_inclusive_grad(p, k),
        );
    }
    check(
        "sub_slice_of_sub_slice",
        4,
        -2.0,
        2.0,
        &|p| sub_slice_of_sub_slice(p),
        &|p| sub_slice_of_sub_slice_grad(p),
    );
    // by hand: x2 x1 + 2 x0 (four elements: b has two)
    assert_eq!(
        sub_slice_of_sub_slice_grad(&[1.0, 2.0, 3.0, 4.0]).1,
        vec![2.0, 3.0, 2.0, 0.0]
    );
    check(
        "collect_then_index",
        4,
        -2.0,
        2.0,
        &|p| collect_then_index(p),
        &|p| collect_then_index_grad(p),
    );
    assert_eq!(
        collect_then_index_grad(&[1.0, 2.0, 3.0]).1,
        vec![2.0, 0.0, 12.0]
    );
    check(
        "collect_turbofish",
        4,
        -2.0,
        2.0,
        &|p| collect_turbofish(p),
        &|p| collect_turbofish_grad(p),
    );
    check(
        "with_capacity_push",
        4,
        -2.0,
        2.0,
        &|p| with_capacity_push(p),
        &|p| with_capacity_push_grad(p),
    );
    check(
        "vec_new_push_sum",
        2,
        -2.0,
        2.0,
        &|p| vec_new_push_sum(p[0], p[1]),
        &|p| s2(vec_new_push_sum_grad(p[0], p[1])),
    );
    for n in [1, 4] {
        check(
            &format!("collect_range_map/{n}"),
            1,
            -1.5,
            1.5,
            &|p| collect_range_map(p[0], n),
            &|p| s1(collect_range_map_grad(p[0], n)),
        );
    }
    check(
        "collect_zip_then_loop",
        8,
        -2.0,
        2.0,
        &|p| collect_zip_then_loop(&p[..4], &p[4..]),
        &|p| svv(collect_zip_then_loop_grad(&p[..4], &p[4..])),
    );
    check(
        "window_passed_to_helper",
        4,
        -2.0,
        2.0,
        &|p| window_passed_to_helper(p),
        &|p| window_passed_to_helper_grad(p),
    );
    check(
        "slice_param_from_vec",
        2,
        0.3,
        2.0,
        &|p| slice_param_from_vec(p[0], p[1]),
        &|p| s2(slice_param_from_vec_grad(p[0], p[1])),
    );
}

#[test]
fn f32_functions() {
    for mode in [None, Some(0), Some(3)] {
        check32(
            &format!("f32_guards/{mode:?}"),
            1,
            0.2,
            1.5,
            &|p| f32_guards(p[0] as f32, mode) as f64,
            &|p| t1(f32_guards_grad(p[0] as f32, mode)),
        );
    }
    check32(
        "f32_zip_enumerate",
        6,
        -1.5,
        1.5,
        &|p| f32_zip_enumerate(&v32(&p[..3]), &v32(&p[3..])) as f64,
        &|p| tvv(f32_zip_enumerate_grad(&v32(&p[..3]), &v32(&p[3..]))),
    );
    check32(
        "f32_casts",
        2,
        -1.5,
        1.5,
        &|p| f32_casts(p[0] as f32, p[1]) as f64,
        &|p| {
            let (v, (gx, gy)) = f32_casts_grad(p[0] as f32, p[1]);
            (v as f64, vec![gx as f64, gy])
        },
    );
    // by hand: b = sin(x y) x + 0.1 e^y: d/dx = cos(x y) x y + sin(x y), d/dy = cos(x y) x² + 0.1 e^y
    let (x, y) = (0.6f32, 0.9f64);
    let (_, (gx, gy)) = f32_casts_grad(x, y);
    let xd = x as f64;
    let want_x = (xd * y).cos() * xd * y + (xd * y).sin();
    let want_y = (xd * y).cos() * xd * xd + 0.1 * y.exp();
    assert!((gx as f64 - want_x).abs() < 1e-5, "{gx} vs {want_x}");
    assert!((gy - want_y).abs() < 1e-5, "{gy} vs {want_y}");
    check32(
        "f32_windows_collect",
        4,
        -1.5,
        1.5,
        &|p| f32_windows_collect(&v32(p)) as f64,
        &|p| tv(f32_windows_collect_grad(&v32(p))),
    );
    check32(
        "f32_sub_slice",
        4,
        -1.5,
        1.5,
        &|p| f32_sub_slice(&v32(p)) as f64,
        &|p| tv(f32_sub_slice_grad(&v32(p))),
    );
    check32(
        "f32_loop_break",
        1,
        -1.0,
        1.5,
        &|p| f32_loop_break(p[0] as f32) as f64,
        &|p| t1(f32_loop_break_grad(p[0] as f32)),
    );
    check32(
        "f32_array_pattern",
        3,
        -1.5,
        1.5,
        &|p| f32_array_pattern([p[0] as f32, p[1] as f32, p[2] as f32]) as f64,
        &|p| {
            let (v, g) = f32_array_pattern_grad([p[0] as f32, p[1] as f32, p[2] as f32]);
            (v as f64, g.iter().map(|&t| t as f64).collect())
        },
    );
    check32(
        "f32_hypot_atan2",
        2,
        0.2,
        2.0,
        &|p| f32_hypot_atan2(p[0] as f32, p[1] as f32) as f64,
        &|p| t2(f32_hypot_atan2_grad(p[0] as f32, p[1] as f32)),
    );
}

#[test]
fn forward_mode_2() {
    for k in [None, Some(1), Some(3)] {
        check_jvp(
            &format!("fwd_guard_option/{k:?}"),
            2,
            -1.5,
            1.5,
            &|p| fwd_guard_option(p[0], p[1], k),
            &|p, v| fwd_guard_option_jvp(p[0], p[1], k, v[0], v[1]),
        );
        check(
            &format!("fwd_guard_option/{k:?}"),
            2,
            -1.5,
            1.5,
            &|p| fwd_guard_option(p[0], p[1], k),
            &|p| s2(fwd_guard_option_grad(p[0], p[1], k)),
        );
    }
    check_jvp(
        "fwd_sub_slice_sum",
        4,
        -2.0,
        2.0,
        &|p| fwd_sub_slice_sum(p),
        &|p, v| fwd_sub_slice_sum_jvp(p, v),
    );
    check_jvp("fwd_chunks", 5, -2.0, 2.0, &|p| fwd_chunks(p), &|p, v| {
        fwd_chunks_jvp(p, v)
    });
    check_jvp(
        "fwd_array_pattern",
        2,
        -1.5,
        1.5,
        &|p| fwd_array_pattern(p[0], p[1]),
        &|p, v| fwd_array_pattern_jvp(p[0], p[1], v[0], v[1]),
    );
    check_jvp("fwd_collect", 3, -2.0, 2.0, &|p| fwd_collect(p), &|p, v| {
        fwd_collect_jvp(p, v)
    });
    for pick in [None, Some(1), Some(2)] {
        check_jvp(
            &format!("fwd_deref_guard/{pick:?}"),
            1,
            -1.5,
            1.5,
            &|p| fwd_deref_guard(p[0], &pick),
            &|p, v| fwd_deref_guard_jvp(p[0], &pick, v[0]),
        );
        check(
            &format!("fwd_deref_guard/{pick:?}"),
            1,
            -1.5,
            1.5,
            &|p| fwd_deref_guard(p[0], &pick),
            &|p| s1(fwd_deref_guard_grad(p[0], &pick)),
        );
    }
    // by hand: pick = Some(1): x + x³ + x, tangent (2 + 3x²) v
    let (_, t) = fwd_deref_guard_jvp(0.5, &Some(1), 2.0);
    assert_near("fwd_deref_guard by hand", t, (2.0 + 3.0 * 0.25) * 2.0);
}

#[test]
fn second_order_2() {
    check_hvp(
        "hess_tuple_pattern",
        2,
        -1.5,
        1.5,
        &|p| hess_tuple_pattern(p[0], p[1]),
        &|p| s2(hess_tuple_pattern_grad(p[0], p[1])),
        &|p, v| {
            let (y, (g0, g1), (h0, h1)) = hess_tuple_pattern_hvp(p[0], p[1], v[0], v[1]);
            (y, vec![g0, g1], vec![h0, h1])
        },
    );
    check_hvp(
        "hess_array_pattern",
        3,
        -1.5,
        1.5,
        &|p| hess_array_pattern([p[0], p[1], p[2]]),
        &|p| {
            let (v, g) = hess_array_pattern_grad([p[0], p[1], p[2]]);
            (v, g.to_vec())
        },
        &|p, v| {
            let (y, g, hv) = hess_array_pattern_hvp([p[0], p[1], p[2]], [v[0], v[1], v[2]]);
            (y, g.to_vec(), hv.to_vec())
        },
    );
    check_hvp(
        "hess_sub_slice",
        4,
        -1.5,
        1.5,
        &|p| hess_sub_slice(p),
        &|p| hess_sub_slice_grad(p),
        &|p, v| hess_sub_slice_hvp(p, v),
    );
    // by hand: x0 Σ_{i>0} x_i²: H e0 = (0, 2 x1, 2 x2, 2 x3)
    let (_, _, hv) = hess_sub_slice_hvp(&[1.0, 2.0, 3.0, 4.0], &[1.0, 0.0, 0.0, 0.0]);
    assert_eq!(hv, vec![0.0, 4.0, 6.0, 8.0]);
    for k in [0, 2] {
        check_hvp(
            &format!("hess_match_guard/{k}"),
            2,
            -1.5,
            1.5,
            &|p| hess_match_guard(p[0], p[1], k),
            &|p| s2(hess_match_guard_grad(p[0], p[1], k)),
            &|p, v| {
                let (y, (g0, g1), (h0, h1)) = hess_match_guard_hvp(p[0], p[1], k, v[0], v[1]);
                (y, vec![g0, g1], vec![h0, h1])
            },
        );
    }
    check_hvp(
        "hess_chunks",
        5,
        -1.5,
        1.5,
        &|p| hess_chunks(p),
        &|p| hess_chunks_grad(p),
        &|p, v| hess_chunks_hvp(p, v),
    );
    for pick in [None, Some(0), Some(3)] {
        check_hvp(
            &format!("hess_deref_guard/{pick:?}"),
            2,
            -1.5,
            1.5,
            &|p| hess_deref_guard(p[0], p[1], &pick),
            &|p| s2(hess_deref_guard_grad(p[0], p[1], &pick)),
            &|p, v| {
                let (y, (g0, g1), (h0, h1)) = hess_deref_guard_hvp(p[0], p[1], &pick, v[0], v[1]);
                (y, vec![g0, g1], vec![h0, h1])
            },
        );
    }
}

/// The harness rejects a gradient that is slightly off.
#[test]
#[should_panic(expected = "finite difference")]
fn checks_can_fail() {
    check(
        "off_by_a_little",
        4,
        -1.0,
        1.0,
        &|p| sub_slice_from(p),
        &|p| {
            let (v, mut g) = sub_slice_from_grad(p);
            g[1] *= 1.0 + 1e-4;
            (v, g)
        },
    );
}

#[test]
fn round_two() {
    check("q_iter_mut", 3, -2.0, 2.0, &|p| q_iter_mut(p), &|p| {
        q_iter_mut_grad(p)
    });
    // by hand: 4 x0 x1 + 2 x2
    assert_eq!(q_iter_mut_grad(&[1.0, 2.0, 3.0]).1, vec![8.0, 4.0, 2.0]);
    check(
        "q_fold_fn_path",
        4,
        -2.0,
        2.0,
        &|p| q_fold_fn_path(p),
        &|p| q_fold_fn_path_grad(p),
    );
    check("q_last_first", 4, -2.0, 2.0, &|p| q_last_first(p), &|p| {
        q_last_first_grad(p)
    });
    assert_eq!(q_last_first_grad(&[2.0, 7.0, 5.0]).1, vec![5.0, 0.0, 2.0]);
    for n in [1, 3] {
        check(
            &format!("q_range_map_inclusive/{n}"),
            1,
            -1.5,
            1.5,
            &|p| q_range_map_inclusive(p[0], n),
            &|p| s1(q_range_map_inclusive_grad(p[0], n)),
        );
    }
    check("q_to_vec", 4, -2.0, 2.0, &|p| q_to_vec(p), &|p| {
        q_to_vec_grad(p)
    });
    assert_eq!(q_to_vec_grad(&[5.0, 1.0, 2.0]).1, vec![0.0, 2.0, 4.0]);
    check("q_is_finite", 1, -2.0, 2.0, &|p| q_is_finite(p[0]), &|p| {
        s1(q_is_finite_grad(p[0]))
    });
    for k in [0, 1, 2] {
        check(
            &format!("q_matches/{k}"),
            1,
            -2.0,
            2.0,
            &|p| q_matches(p[0], k),
            &|p| s1(q_matches_grad(p[0], k)),
        );
    }
    check(
        "q_closure_annotated",
        1,
        -2.0,
        2.0,
        &|p| q_closure_annotated(p[0]),
        &|p| s1(q_closure_annotated_grad(p[0])),
    );
    assert_eq!(q_closure_annotated_grad(1.5).1, 2.0 * 1.5 + 8.0 * 1.5);
    check("q_inner_fn", 1, -2.0, 2.0, &|p| q_inner_fn(p[0]), &|p| {
        s1(q_inner_fn_grad(p[0]))
    });
    check(
        "q_enumerate_ref_closure",
        4,
        -2.0,
        2.0,
        &|p| q_enumerate_ref_closure(p),
        &|p| q_enumerate_ref_closure_grad(p),
    );
    check(
        "q_zip_ref_pats",
        6,
        -2.0,
        2.0,
        &|p| q_zip_ref_pats(&p[..3], &p[3..]),
        &|p| svv(q_zip_ref_pats_grad(&p[..3], &p[3..])),
    );
    check(
        "q_sum_then_method",
        4,
        0.2,
        2.0,
        &|p| q_sum_then_method(p),
        &|p| q_sum_then_method_grad(p),
    );
    check(
        "q_while_and",
        5,
        -2.0,
        2.0,
        &|p| q_while_and(&p[..4], p[4]),
        &|p| svx(q_while_and_grad(&p[..4], p[4])),
    );
    for n in [0, 3] {
        check(
            &format!("q_f64_from/{n}"),
            1,
            -2.0,
            2.0,
            &|p| q_f64_from(p[0], n),
            &|p| s1(q_f64_from_grad(p[0], n)),
        );
    }
    check(
        "q_return_semicolon",
        1,
        -2.0,
        2.0,
        &|p| q_return_semicolon(p[0]),
        &|p| s1(q_return_semicolon_grad(p[0])),
    );
    for (i, j) in [(0, 0), (0, 1), (2, 0), (1, 1)] {
        check(
            &format!("q_match_tuple_pair/{i}/{j}"),
            1,
            -2.0,
            2.0,
            &|p| q_match_tuple_pair(p[0], i, j),
            &|p| s1(q_match_tuple_pair_grad(p[0], i, j)),
        );
    }
    check(
        "q_iter_sum_copied",
        4,
        -2.0,
        2.0,
        &|p| q_iter_sum_copied(p),
        &|p| q_iter_sum_copied_grad(p),
    );
    check(
        "q_const_generic_len",
        4,
        -2.0,
        2.0,
        &|p| q_const_generic_len([p[0], p[1], p[2], p[3]]),
        &|p| {
            let (v, g) = q_const_generic_len_grad([p[0], p[1], p[2], p[3]]);
            (v, g.to_vec())
        },
    );
    check(
        "q_rev_enumerate",
        4,
        -2.0,
        2.0,
        &|p| q_rev_enumerate(p),
        &|p| q_rev_enumerate_grad(p),
    );
    // by hand: reversed weights
    assert_eq!(q_rev_enumerate_grad(&[0.0; 3]).1, vec![3.0, 2.0, 1.0]);
    check("q_max_by", 4, -2.0, 2.0, &|p| q_max_by(p), &|p| {
        q_max_by_grad(p)
    });
    check(
        "q_generic_sub_slice",
        4,
        -2.0,
        2.0,
        &|p| q_generic_sub_slice(p),
        &|p| q_generic_sub_slice_grad(p),
    );
    check32(
        "q_generic_sub_slice f32",
        4,
        -1.5,
        1.5,
        &|p| q_generic_sub_slice(&v32(p)) as f64,
        &|p| tv(q_generic_sub_slice_grad(&v32(p))),
    );
    check32(
        "q_cast_chain",
        1,
        -1.5,
        1.5,
        &|p| q_cast_chain(p[0] as f32),
        &|p| {
            let (v, g) = q_cast_chain_grad(p[0] as f32);
            (v, vec![g as f64])
        },
    );
    for (a, b) in [(None, None), (Some(1.5), None), (None, Some(3))] {
        check(
            &format!("q_if_let_else_if/{a:?}/{b:?}"),
            1,
            -2.0,
            2.0,
            &|p| q_if_let_else_if(p[0], a, b),
            &|p| s1(q_if_let_else_if_grad(p[0], a, b)),
        );
        check(
            &format!("q_let_else/{a:?}"),
            1,
            -2.0,
            2.0,
            &|p| q_let_else(p[0], a),
            &|p| s1(q_let_else_grad(p[0], a)),
        );
    }
    check(
        "q_iter_position",
        4,
        -2.0,
        2.0,
        &|p| q_iter_position(p),
        &|p| q_iter_position_grad(p),
    );
    check(
        "q_chunks_sum_inner",
        7,
        -2.0,
        2.0,
        &|p| q_chunks_sum_inner(p),
        &|p| q_chunks_sum_inner_grad(p),
    );
    check(
        "q_compound_on_index",
        5,
        -2.0,
        2.0,
        &|p| q_compound_on_index(p),
        &|p| q_compound_on_index_grad(p),
    );
    check(
        "q_normalize_in_place",
        4,
        0.2,
        2.0,
        &|p| q_normalize_in_place(p),
        &|p| q_normalize_in_place_grad(p),
    );
    check(
        "q_mut_ref_loop",
        2,
        -2.0,
        2.0,
        &|p| q_mut_ref_loop(p[0], p[1]),
        &|p| s2(q_mut_ref_loop_grad(p[0], p[1])),
    );
    for at in [None, Some(0), Some(2)] {
        check(
            &format!("q_let_else_ref/{at:?}"),
            3,
            -2.0,
            2.0,
            &|p| q_let_else_ref(p, &at),
            &|p| q_let_else_ref_grad(p, &at),
        );
    }
    assert_eq!(
        q_let_else_ref_grad(&[1.0, 2.0, 3.0], &Some(2)).1,
        vec![1.0, 0.0, 6.0]
    );
    check_jvp(
        "q_fwd_iter_mut",
        2,
        -2.0,
        2.0,
        &|p| q_fwd_iter_mut(p[0], p[1]),
        &|p, v| q_fwd_iter_mut_jvp(p[0], p[1], v[0], v[1]),
    );
    check(
        "q_fwd_iter_mut",
        2,
        -2.0,
        2.0,
        &|p| q_fwd_iter_mut(p[0], p[1]),
        &|p| s2(q_fwd_iter_mut_grad(p[0], p[1])),
    );
    // f32 inside: along the unit vectors, against a wide central difference
    for (x, y) in [(0.7f32, 1.3f64), (-1.1, 0.4)] {
        let h = 1e-2f32;
        let (_, dx) = q_fwd_cast_jvp(x, y, 1.0, 0.0);
        let want = (q_fwd_cast(x + h, y) - q_fwd_cast(x - h, y)) / (2.0 * h as f64);
        assert!(
            (dx - want).abs() < 2e-3 * (1.0 + want.abs()),
            "{dx} vs {want}"
        );
        let (_, dy) = q_fwd_cast_jvp(x, y, 0.0, 1.0);
        let (_, (gx, gy)) = q_fwd_cast_grad(x, y);
        let hy = 1e-6;
        let want = (q_fwd_cast(x, y + hy) - q_fwd_cast(x, y - hy)) / (2.0 * hy);
        assert!(
            (dy - want).abs() < 1e-5 * (1.0 + want.abs()),
            "{dy} vs {want}"
        );
        assert!(
            (gy - want).abs() < 1e-5 * (1.0 + want.abs()),
            "{gy} vs {want}"
        );
        assert!(
            (gx as f64 - dx).abs() < 1e-4 * (1.0 + dx.abs()),
            "{gx} vs {dx}"
        );
    }
    check_hvp(
        "q_hess_first_last",
        3,
        -1.5,
        1.5,
        &|p| q_hess_first_last(p),
        &|p| q_hess_first_last_grad(p),
        &|p, v| q_hess_first_last_hvp(p, v),
    );
}

#[test]
fn round_three() {
    for act in [Act::Relu, Act::Tanh, Act::Leaky(0.1), Act::Leaky(-1.0)] {
        check(
            "r_enum_param",
            1,
            -2.0,
            2.0,
            &|p| r_enum_param(p[0], act),
            &|p| s1(r_enum_param_grad(p[0], act)),
        );
    }
    assert_eq!(r_enum_param_grad(-1.0, Act::Leaky(0.1)).1, 0.1);
    for kind in ["square", "cube", "other"] {
        check(
            &format!("r_str_param/{kind}"),
            1,
            -2.0,
            2.0,
            &|p| r_str_param(p[0], kind),
            &|p| s1(r_str_param_grad(p[0], kind)),
        );
    }
    check(
        "r_closure_over_slice",
        4,
        -2.0,
        2.0,
        &|p| r_closure_over_slice(&p[..3], p[3]),
        &|p| svx(r_closure_over_slice_grad(&p[..3], p[3])),
    );
    check(
        "r_sub_slice_in_closure",
        4,
        -2.0,
        2.0,
        &|p| r_sub_slice_in_closure(p),
        &|p| r_sub_slice_in_closure_grad(p),
    );
    for idx in [vec![], vec![0, 2], vec![1, 1, 3]] {
        check(
            "r_if_let_ref_slice_elem",
            4,
            -2.0,
            2.0,
            &|p| r_if_let_ref_slice_elem(p, &idx),
            &|p| r_if_let_ref_slice_elem_grad(p, &idx),
        );
    }
    // by hand: idx [1, 1, 3]: x1 twice, x3 twice (the last again)
    assert_eq!(
        r_if_let_ref_slice_elem_grad(&[0.0; 4], &[1, 1, 3]).1,
        vec![0.0, 2.0, 0.0, 2.0]
    );
    check(
        "r_nested_loops_break_value",
        4,
        -2.0,
        2.0,
        &|p| r_nested_loops_break_value(p),
        &|p| r_nested_loops_break_value_grad(p),
    );
    check(
        "r_tuple_vec_fold",
        6,
        -2.0,
        2.0,
        &|p| r_tuple_vec_fold(&p[..3], &p[3..]),
        &|p| svv(r_tuple_vec_fold_grad(&p[..3], &p[3..])),
    );
    check(
        "r_sum_sq_diff_iter",
        6,
        -2.0,
        2.0,
        &|p| r_sum_sq_diff_iter(&p[..3], &p[3..]),
        &|p| svv(r_sum_sq_diff_iter_grad(&p[..3], &p[3..])),
    );
    check(
        "r_count_then_mean",
        4,
        -2.0,
        2.0,
        &|p| r_count_then_mean(p),
        &|p| r_count_then_mean_grad(p),
    );
    check("r_min_index", 4, -2.0, 2.0, &|p| r_min_index(p), &|p| {
        r_min_index_grad(p)
    });
    check(
        "r_array_of_arrays_read",
        4,
        -2.0,
        2.0,
        &|p| r_array_of_arrays_read([[p[0], p[1]], [p[2], p[3]]]),
        &|p| {
            let (v, g) = r_array_of_arrays_read_grad([[p[0], p[1]], [p[2], p[3]]]);
            (v, vec![g[0][0], g[0][1], g[1][0], g[1][1]])
        },
    );
    // by hand: the determinant's gradient is the cofactor matrix
    let (_, g) = r_array_of_arrays_read_grad([[1.0, 2.0], [3.0, 4.0]]);
    assert_eq!(g, [[4.0, -3.0], [-2.0, 1.0]]);
    check(
        "r_slice_of_arrays",
        6,
        0.2,
        2.0,
        &|p| r_slice_of_arrays(&[[p[0], p[1]], [p[2], p[3]], [p[4], p[5]]]),
        &|p| {
            let (v, g) = r_slice_of_arrays_grad(&[[p[0], p[1]], [p[2], p[3]], [p[4], p[5]]]);
            (v, g.iter().flatten().copied().collect())
        },
    );
    for n in [4, 5] {
        check(
            &format!("r_two_sub_slices_zip/{n}"),
            n,
            -2.0,
            2.0,
            &|p| r_two_sub_slices_zip(p),
            &|p| r_two_sub_slices_zip_grad(p),
        );
    }
    check(
        "r_mul_add_chain",
        5,
        -1.5,
        1.5,
        &|p| r_mul_add_chain(p[0], &[p[1], p[2], p[3], p[4]]),
        &|p| {
            let (v, (gx, gc)) = r_mul_add_chain_grad(p[0], &[p[1], p[2], p[3], p[4]]);
            (v, vec![gx, gc[0], gc[1], gc[2], gc[3]])
        },
    );
    // by hand: c0 + c1 x + c2 x² + c3 x³
    let (_, (gx, _)) = r_mul_add_chain_grad(0.5, &[1.0, 2.0, 3.0, 4.0]);
    assert_near("r_mul_add_chain d/dx", gx, 2.0 + 6.0 * 0.5 + 12.0 * 0.25);
    for n in [1, 3] {
        check(
            &format!("r_powi_loop_index/{n}"),
            1,
            0.5,
            2.0,
            &|p| r_powi_loop_index(p[0], n),
            &|p| s1(r_powi_loop_index_grad(p[0], n)),
        );
    }
}

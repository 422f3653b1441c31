//! Issue 9's language benchmarks: the generated `_grad` of ordinary Rust against the function
//! itself and a hand-written reverse-mode gradient of the same code, and the memory of the
//! generated tape.
//!
//! * `while_projectile`: `examples/common/projectile.rs`, a `while y > 0.0` loop with a
//!   data-dependent exit (40°, 30 m/s, drag 0.01/m, dt = 1 ms: 3,508 steps), gradient with
//!   respect to the angle, speed and drag.
//! * `while_newton_cbrt1000`: Newton's method for the cube root of each of 1,000 numbers, each
//!   `while` its own relative tolerance is not met (a data-dependent exit in a `for` over a
//!   slice), gradient with respect to the slice.
//! * `chain_cauchy1000`: `xs.iter().zip(ys).map(|(a, b)| ..).sum()` over 1,000 elements (the
//!   Cauchy loss `Σ ln(1 + (a - b)²)`), gradient with respect to `xs` (a `Vec`).
//! * `chain_fold1000`: `.fold(0.0, |acc, (a, b)| ..)` over 1,000 elements, cheaper arithmetic
//!   (`Σ w b a²`), gradient with respect to `xs` and the scalar `w`.
//!
//! A counting `#[global_allocator]` records the peak bytes allocated during one call (less the
//! returned gradient `Vec`, if any): printed once per benchmark as the tape's memory.
//!
//! `cargo bench --bench language -- --warm-up-time 1 --measurement-time 3`; medians are in
//! `target/criterion/<group>/<id>/new/estimates.json`.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;
use symgrad::differentiable;

#[path = "../examples/common/projectile.rs"]
mod sim;

use sim::{G, landing, landing_grad};

// ----- the counting allocator -----

/// The system allocator, counting the bytes live now and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static CALLS: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    CALLS.fetch_add(1, Relaxed);
    let now = LIVE.fetch_add(bytes, Relaxed) + bytes;
    PEAK.fetch_max(now, Relaxed);
}

// SAFETY: every method forwards to `System` with the caller's arguments, which satisfy the
// same contract; the counters do not touch the memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `System` shares.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator (so by `System`) with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` was allocated by `System` with `layout`; the caller upholds the rest.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The result of `f`, the peak bytes allocated above the live bytes at the start while it ran,
/// and the number of allocations (and reallocations that grew a block).
fn peak_bytes<R>(f: impl FnOnce() -> R) -> (R, usize, usize) {
    let base = LIVE.load(Relaxed);
    PEAK.store(base, Relaxed);
    let calls = CALLS.load(Relaxed);
    let r = f();
    (r, PEAK.load(Relaxed) - base, CALLS.load(Relaxed) - calls)
}

fn print_memory(group: &str, generated: (usize, usize), hand: (usize, usize), note: &str) {
    println!(
        "{group}: peak allocation during one call (the tape{note}): generated_grad {} bytes \
         ({:.1} KiB, {} allocations), hand_grad {} bytes ({:.1} KiB, {} allocations)",
        generated.0,
        generated.0 as f64 / 1024.0,
        generated.1,
        hand.0,
        hand.0 as f64 / 1024.0,
        hand.1
    );
}

/// Best-of timings taken interleaved (rounds of function, generated, hand, each a batch of
/// calls; the fastest batch of each), printed once: on a shared machine whose load changes
/// while criterion measures one function after the other, these ratios are the steadier ones.
fn interleaved(group: &str, reps: u32, f: &dyn Fn(), g: &dyn Fn(), h: &dyn Fn()) {
    let mut best = [f64::INFINITY; 3];
    for _ in 0..40 {
        for (k, run) in [f, g, h].iter().enumerate() {
            let t = std::time::Instant::now();
            for _ in 0..reps {
                run();
            }
            best[k] = best[k].min(t.elapsed().as_secs_f64() / f64::from(reps));
        }
    }
    println!(
        "{group}: interleaved best of 40 rounds: function {:.2} µs, generated_grad {:.2} µs, \
         hand_grad {:.2} µs; generated/hand {:.2}, generated/function {:.2}",
        best[0] * 1e6,
        best[1] * 1e6,
        best[2] * 1e6,
        best[1] / best[2],
        best[1] / best[0]
    );
}

// ----- (a) a while loop with a data-dependent exit: the projectile -----

/// `landing` and its gradient with respect to (angle, speed, drag), by hand: the forward loop
/// keeps (vx, vy, |v|) of each step, the reverse sweep walks them back.
fn landing_hand(angle: f64, speed: f64, drag: f64, height: f64, dt: f64) -> (f64, (f64, f64, f64)) {
    let (sa, ca) = angle.sin_cos();
    let (mut vx, mut vy) = (speed * ca, speed * sa);
    let (mut x, mut y) = (0.0, height);
    // About 2 vy / g / dt steps without drag: fewer with it.
    let mut tape: Vec<[f64; 3]> = Vec::with_capacity((2.0 * vy.max(1.0) / G / dt) as usize + 16);
    while y > 0.0 {
        let v = (vx * vx + vy * vy).sqrt();
        tape.push([vx, vy, v]);
        vx -= drag * v * vx * dt;
        vy -= (G + drag * v * vy) * dt;
        x += vx * dt;
        y += vy * dt;
    }
    let px = x - vx * dt;
    let py = y - vy * dt;
    if py <= y {
        // The loop did not run: x = 0 whatever the parameters.
        return (x, (0.0, 0.0, 0.0));
    }
    let den = py - y;
    let t = py / den;
    let value = px + (x - px) * t;
    // Reverse: value = px + (x - px) t, t = py / (py - y), px = x - vx dt, py = y - vy dt.
    let gt = x - px;
    let gpx = 1.0 - t;
    let gpy = gt * (-y) / (den * den);
    let gx = t + gpx;
    let gy = gt * py / (den * den) + gpy;
    let mut gvx = -gpx * dt;
    let mut gvy = -gpy * dt;
    let mut gk = 0.0;
    // x and y only accumulate, so their adjoints gx, gy are the same at every step.
    let (gxdt, gydt) = (gx * dt, gy * dt);
    let kdt = drag * dt;
    for &[vx, vy, v] in tape.iter().rev() {
        // Off the chain of adjoints (no division on it): the step's own factors.
        let a = 1.0 - kdt * v;
        let r = if v > 0.0 { kdt / v } else { 0.0 };
        let (ux, uy) = (r * vx, r * vy);
        // y' = y + vy' dt, x' = x + vx' dt
        gvx += gxdt;
        gvy += gydt;
        // vx' = vx - k v vx dt, vy' = vy - (g + k v vy) dt, v = sqrt(vx² + vy²):
        // d/dvx = (1 - k v dt) - k dt vx vx / v, d/dvy likewise, d/dk = -v dt (vx, vy).
        let s = gvx * vx + gvy * vy;
        gk -= s * v;
        gvx = gvx * a - s * ux;
        gvy = gvy * a - s * uy;
    }
    gk *= dt;
    // vx0 = s cos a, vy0 = s sin a
    let ga = speed * (gvy * ca - gvx * sa);
    let gs = gvx * ca + gvy * sa;
    (value, (ga, gs, gk))
}

/// Newton's method for the cube root of every element, each to a relative tolerance: a
/// `while` with a data-dependent exit inside a `for` over a slice, many short loops.
#[differentiable(wrt(xs))]
fn cbrt_sum(xs: &[f64]) -> f64 {
    let mut s = 0.0;
    for &a in xs {
        let mut y = 1.0;
        let mut it = 0;
        while (y * y * y - a).abs() > 1e-12 * a && it < 50 {
            y -= (y * y * y - a) / (3.0 * y * y);
            it += 1;
        }
        s += y;
    }
    s
}

/// `cbrt_sum` and its gradient by hand: each element's step derivatives on a stack array, then
/// its reverse sweep. With `r = 1 / 3y²` and `q = (y³ - a) r` (one division a step, as in the
/// function), `y' = y - q` has `dy'/da = r` and `dy'/dy = 2q / y = 6 q y r`, so the sweep
/// divides nothing.
fn cbrt_sum_hand(xs: &[f64]) -> (f64, Vec<f64>) {
    let mut s = 0.0;
    let mut g = Vec::with_capacity(xs.len());
    let mut trail = [[0.0f64; 2]; 50];
    for &a in xs {
        let mut y = 1.0;
        let mut n = 0;
        while (y * y * y - a).abs() > 1e-12 * a && n < 50 {
            let r = 1.0 / (3.0 * y * y);
            let q = (y * y * y - a) * r;
            trail[n] = [r, 6.0 * q * y * r];
            n += 1;
            y -= q;
        }
        s += y;
        let (mut gy, mut ga) = (1.0, 0.0);
        for &[dyda, dydy] in trail[..n].iter().rev() {
            ga += gy * dyda;
            gy *= dydy;
        }
        g.push(ga);
    }
    (s, g)
}

// ----- (b) iterator chains over 1,000 elements -----

/// The Cauchy loss of the residuals `xs - ys`: a zip, a map with a closure and a sum.
#[differentiable(wrt(xs))]
fn cauchy(xs: &[f64], ys: &[f64]) -> f64 {
    xs.iter()
        .zip(ys)
        .map(|(a, b)| {
            let d = a - b;
            (1.0 + d * d).ln()
        })
        .sum()
}

fn cauchy_hand(xs: &[f64], ys: &[f64]) -> (f64, Vec<f64>) {
    // The value summed in the function's order (the same bits); the gradient in a separate
    // pass the compiler vectorises.
    let n = xs.len().min(ys.len());
    let (xs, ys) = (&xs[..n], &ys[..n]);
    let mut s = 0.0;
    for (a, b) in xs.iter().zip(ys) {
        let d = a - b;
        s += (1.0 + d * d).ln();
    }
    let g = xs
        .iter()
        .zip(ys)
        .map(|(a, b)| {
            let d = a - b;
            2.0 * d / (1.0 + d * d)
        })
        .collect();
    (s, g)
}

/// `Σ w b a²` as a fold over a zip.
#[differentiable(wrt(xs, w))]
fn weighted_squares(xs: &[f64], ys: &[f64], w: f64) -> f64 {
    xs.iter()
        .zip(ys)
        .fold(0.0, |acc, (a, b)| acc + w * b * a * a)
}

fn weighted_squares_hand(xs: &[f64], ys: &[f64], w: f64) -> (f64, (Vec<f64>, f64)) {
    // As for `cauchy_hand`: the value in the function's order, the gradient vectorised.
    let n = xs.len().min(ys.len());
    let (xs, ys) = (&xs[..n], &ys[..n]);
    let mut value = 0.0;
    let mut gw = 0.0;
    for (a, b) in xs.iter().zip(ys) {
        let baa = b * a * a;
        value += w * baa;
        gw += baa;
    }
    let w2 = 2.0 * w;
    let gx = xs.iter().zip(ys).map(|(a, b)| w2 * b * a).collect();
    (value, (gx, gw))
}

// ----- checks and benchmarks -----

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-10 * (1.0 + a.abs().max(b.abs()))
}

fn bench(cr: &mut Criterion) {
    // (a) The hand-written gradient must agree with the generated one, or the timing is moot.
    let (angle, speed, drag, height, dt) = (40f64.to_radians(), 30.0, 0.01, 1.5, 1e-3);
    let (v1, g1) = landing_grad(angle, speed, drag, height, dt);
    let (v2, g2) = landing_hand(angle, speed, drag, height, dt);
    assert!(
        close(v1, v2) && close(g1.0, g2.0) && close(g1.1, g2.1) && close(g1.2, g2.2),
        "projectile: generated {v1} {g1:?}, by hand {v2} {g2:?}"
    );
    let (_, peak, n) = peak_bytes(|| landing_grad(angle, speed, drag, height, dt));
    let mem_gen = (peak, n);
    let (_, peak, n) = peak_bytes(|| landing_hand(angle, speed, drag, height, dt));
    let mem_hand = (peak, n);
    let steps = {
        // The trip count, for the record.
        let (mut vx, mut vy, mut y, mut n) = (speed * angle.cos(), speed * angle.sin(), height, 0);
        while y > 0.0 {
            let v = (vx * vx + vy * vy).sqrt();
            vx -= drag * v * vx * dt;
            vy -= (G + drag * v * vy) * dt;
            y += vy * dt;
            n += 1;
        }
        assert!(vx.is_finite());
        n
    };
    print_memory(
        "while_projectile",
        mem_gen,
        mem_hand,
        &format!(", {steps} iterations"),
    );

    interleaved(
        "while_projectile",
        20,
        &|| {
            black_box(landing(black_box(angle), speed, drag, height, dt));
        },
        &|| {
            black_box(landing_grad(black_box(angle), speed, drag, height, dt));
        },
        &|| {
            black_box(landing_hand(black_box(angle), speed, drag, height, dt));
        },
    );

    let mut grp = cr.benchmark_group("while_projectile");
    grp.bench_function(BenchmarkId::new("function", ""), |b| {
        b.iter(|| {
            landing(
                black_box(angle),
                black_box(speed),
                black_box(drag),
                height,
                dt,
            )
        })
    });
    grp.bench_function(BenchmarkId::new("generated_grad", ""), |b| {
        b.iter(|| {
            landing_grad(
                black_box(angle),
                black_box(speed),
                black_box(drag),
                height,
                dt,
            )
        })
    });
    grp.bench_function(BenchmarkId::new("hand_grad", ""), |b| {
        b.iter(|| {
            landing_hand(
                black_box(angle),
                black_box(speed),
                black_box(drag),
                height,
                dt,
            )
        })
    });
    grp.finish();

    const N: usize = 1000;
    // Newton's cube roots of 1,000 numbers in 0.5..8 (4 to 7 iterations each).
    let pos: Vec<f64> = (0..N)
        .map(|i| 0.5 + 7.5 * (0.5 + 0.5 * ((i as f64) * 0.37).sin()))
        .collect();
    let (v1, g1) = cbrt_sum_grad(&pos);
    let (v2, g2) = cbrt_sum_hand(&pos);
    assert!(close(v1, v2), "cbrt_sum: {v1} against {v2}");
    assert!(g1.len() == N && g1.iter().zip(&g2).all(|(a, b)| close(*a, *b)));
    // And both against the limit's derivative, d cbrt(a) / da = 1 / (3 cbrt(a)²).
    assert!(
        pos.iter()
            .zip(&g2)
            .all(|(a, g)| (g - 1.0 / (3.0 * a.cbrt().powi(2))).abs() < 1e-9)
    );
    let iters: usize = pos
        .iter()
        .map(|&a| {
            let (mut y, mut it) = (1.0f64, 0);
            while (y * y * y - a).abs() > 1e-12 * a && it < 50 {
                y -= (y * y * y - a) / (3.0 * y * y);
                it += 1;
            }
            it
        })
        .sum();
    let ((_, g), peak, n) = peak_bytes(|| cbrt_sum_grad(&pos));
    let mem_gen = (peak - g.capacity() * size_of::<f64>(), n - 1);
    let ((_, g), peak, n) = peak_bytes(|| cbrt_sum_hand(&pos));
    let mem_hand = (peak - g.capacity() * size_of::<f64>(), n - 1);
    print_memory(
        "while_newton_cbrt1000",
        mem_gen,
        mem_hand,
        &format!(", {iters} Newton steps in all; less the 8,000-byte gradient and its allocation"),
    );
    interleaved(
        "while_newton_cbrt1000",
        20,
        &|| {
            black_box(cbrt_sum(black_box(&pos)));
        },
        &|| {
            black_box(cbrt_sum_grad(black_box(&pos)));
        },
        &|| {
            black_box(cbrt_sum_hand(black_box(&pos)));
        },
    );

    let mut grp = cr.benchmark_group("while_newton_cbrt1000");
    grp.bench_function(BenchmarkId::new("function", ""), |b| {
        b.iter(|| cbrt_sum(black_box(&pos)))
    });
    grp.bench_function(BenchmarkId::new("generated_grad", ""), |b| {
        b.iter(|| cbrt_sum_grad(black_box(&pos)))
    });
    grp.bench_function(BenchmarkId::new("hand_grad", ""), |b| {
        b.iter(|| cbrt_sum_hand(black_box(&pos)))
    });
    grp.finish();

    // (b) Iterator chains over 1,000 elements.
    let xs: Vec<f64> = (0..N).map(|i| ((i as f64) * 0.37).sin()).collect();
    let ys: Vec<f64> = (0..N).map(|i| ((i as f64) * 0.11).cos()).collect();
    let w = 0.7;
    let (v1, g1) = cauchy_grad(&xs, &ys);
    let (v2, g2) = cauchy_hand(&xs, &ys);
    assert!(close(v1, v2), "cauchy: {v1} against {v2}");
    assert!(g1.len() == N && g1.iter().zip(&g2).all(|(a, b)| close(*a, *b)));
    let ((_, g), peak, n) = peak_bytes(|| cauchy_grad(&xs, &ys));
    let mem_gen = (peak - g.capacity() * size_of::<f64>(), n - 1);
    let ((_, g), peak, n) = peak_bytes(|| cauchy_hand(&xs, &ys));
    let mem_hand = (peak - g.capacity() * size_of::<f64>(), n - 1);
    print_memory(
        "chain_cauchy1000",
        mem_gen,
        mem_hand,
        ", less the 8,000-byte gradient and its allocation",
    );

    interleaved(
        "chain_cauchy1000",
        200,
        &|| {
            black_box(cauchy(black_box(&xs), &ys));
        },
        &|| {
            black_box(cauchy_grad(black_box(&xs), &ys));
        },
        &|| {
            black_box(cauchy_hand(black_box(&xs), &ys));
        },
    );

    let mut grp = cr.benchmark_group("chain_cauchy1000");
    grp.bench_function(BenchmarkId::new("function", ""), |b| {
        b.iter(|| cauchy(black_box(&xs), black_box(&ys)))
    });
    grp.bench_function(BenchmarkId::new("generated_grad", ""), |b| {
        b.iter(|| cauchy_grad(black_box(&xs), black_box(&ys)))
    });
    grp.bench_function(BenchmarkId::new("hand_grad", ""), |b| {
        b.iter(|| cauchy_hand(black_box(&xs), black_box(&ys)))
    });
    grp.finish();

    let (v1, (g1, gw1)) = weighted_squares_grad(&xs, &ys, w);
    let (v2, (g2, gw2)) = weighted_squares_hand(&xs, &ys, w);
    assert!(
        close(v1, v2) && close(gw1, gw2),
        "fold: {v1} {gw1}, {v2} {gw2}"
    );
    assert!(g1.len() == N && g1.iter().zip(&g2).all(|(a, b)| close(*a, *b)));
    let ((_, (g, _)), peak, n) = peak_bytes(|| weighted_squares_grad(&xs, &ys, w));
    let mem_gen = (peak - g.capacity() * size_of::<f64>(), n - 1);
    let ((_, (g, _)), peak, n) = peak_bytes(|| weighted_squares_hand(&xs, &ys, w));
    let mem_hand = (peak - g.capacity() * size_of::<f64>(), n - 1);
    print_memory(
        "chain_fold1000",
        mem_gen,
        mem_hand,
        ", less the 8,000-byte gradient and its allocation",
    );

    interleaved(
        "chain_fold1000",
        1000,
        &|| {
            black_box(weighted_squares(black_box(&xs), &ys, w));
        },
        &|| {
            black_box(weighted_squares_grad(black_box(&xs), &ys, w));
        },
        &|| {
            black_box(weighted_squares_hand(black_box(&xs), &ys, w));
        },
    );

    let mut grp = cr.benchmark_group("chain_fold1000");
    grp.bench_function(BenchmarkId::new("function", ""), |b| {
        b.iter(|| weighted_squares(black_box(&xs), black_box(&ys), black_box(w)))
    });
    grp.bench_function(BenchmarkId::new("generated_grad", ""), |b| {
        b.iter(|| weighted_squares_grad(black_box(&xs), black_box(&ys), black_box(w)))
    });
    grp.bench_function(BenchmarkId::new("hand_grad", ""), |b| {
        b.iter(|| weighted_squares_hand(black_box(&xs), black_box(&ys), black_box(w)))
    });
    grp.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);

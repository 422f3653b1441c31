//! Scalar `#[differentiable]` cost: for each function, the plain function, the generated
//! `_grad` and a hand-written gradient of the same function, in one run.
//!
//! `cargo bench --bench scalar`; medians are in `target/criterion/<group>/<id>/new/estimates.json`.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;
use symgrad::differentiable;

// ----- Rosenbrock -----

#[differentiable]
fn rosenbrock(x: f64, y: f64) -> f64 {
    (1.0 - x).powi(2) + 100.0 * (y - x * x).powi(2)
}

fn rosenbrock_hand(x: f64, y: f64) -> (f64, (f64, f64)) {
    let u = 1.0 - x;
    let w = y - x * x;
    (u * u + 100.0 * w * w, (-2.0 * u - 400.0 * x * w, 200.0 * w))
}

// ----- ~20 operations: mul/add/sin/exp/sqrt -----

#[differentiable]
fn mixed(x: f64, y: f64, z: f64) -> f64 {
    let a = x * y;
    let b = a.sin();
    let c = z * z + 1.0;
    let d = c.sqrt();
    let e = b * d;
    let f = (e * 0.5).exp();
    let g = x + z;
    let h = g * g;
    let k = h.sin() + f;
    let m = k * y - x;
    let n = (m * m + 2.0).sqrt();
    n * a + c / d
}

fn mixed_hand(x: f64, y: f64, z: f64) -> (f64, (f64, f64, f64)) {
    let a = x * y;
    let b = a.sin();
    let c = z * z + 1.0;
    let d = c.sqrt();
    let e = b * d;
    let f = (e * 0.5).exp();
    let g = x + z;
    let h = g * g;
    let k = h.sin() + f;
    let m = k * y - x;
    let n = (m * m + 2.0).sqrt();
    let p = n * a + c / d;
    // Reverse sweep by hand.
    let gn = a;
    let mut ga = n;
    let mut gc = 1.0 / d;
    let mut gd = -c / (d * d);
    let gm = gn * m / n;
    let gk = gm * y;
    let mut gy = gm * k;
    let mut gx = -gm;
    let gh = gk * h.cos();
    let gf = gk;
    let gg = gh * 2.0 * g;
    gx += gg;
    let mut gz = gg;
    let ge = gf * f * 0.5;
    let gb = ge * d;
    gd += ge * b;
    gc += gd * 0.5 / d;
    gz += gc * 2.0 * z;
    ga += gb * a.cos();
    gx += ga * y;
    gy += ga * x;
    (p, (gx, gy, gz))
}

// ----- a loop: Horner's rule over 16 coefficients -----

#[differentiable(wrt(x))]
fn horner(c: &[f64], x: f64) -> f64 {
    let n = c.len();
    let mut acc = 0.0;
    for i in (0..n).rev() {
        acc = acc * x + c[i];
    }
    acc
}

fn horner_hand(c: &[f64], x: f64) -> (f64, f64) {
    let mut p = 0.0;
    let mut dp = 0.0;
    for &ci in c.iter().rev() {
        dp = dp * x + p;
        p = p * x + ci;
    }
    (p, dp)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-10 * (1.0 + b.abs())
}

fn bench(cr: &mut Criterion) {
    // The hand-written gradients must agree with the generated ones, or the timing is moot.
    let (x, y, z) = (0.7, -1.3, 0.4);
    let (v1, g1) = rosenbrock_grad(x, y);
    let (v2, g2) = rosenbrock_hand(x, y);
    assert!(close(v1, v2) && close(g1.0, g2.0) && close(g1.1, g2.1));
    let (v1, g1) = mixed_grad(x, y, z);
    let (v2, g2) = mixed_hand(x, y, z);
    assert!(close(v1, v2) && close(g1.0, g2.0) && close(g1.1, g2.1) && close(g1.2, g2.2));
    let coeffs: Vec<f64> = (0..16).map(|k| 1.0 / (k as f64 + 1.0)).collect();
    let (v1, g1) = horner_grad(&coeffs, 0.9);
    let (v2, g2) = horner_hand(&coeffs, 0.9);
    assert!(close(v1, v2) && close(g1, g2));

    let mut grp = cr.benchmark_group("rosenbrock");
    grp.bench_function(BenchmarkId::new("function", ""), |b| {
        b.iter(|| rosenbrock(black_box(x), black_box(y)))
    });
    grp.bench_function(BenchmarkId::new("generated_grad", ""), |b| {
        b.iter(|| rosenbrock_grad(black_box(x), black_box(y)))
    });
    grp.bench_function(BenchmarkId::new("hand_grad", ""), |b| {
        b.iter(|| rosenbrock_hand(black_box(x), black_box(y)))
    });
    grp.finish();

    let mut grp = cr.benchmark_group("mixed20");
    grp.bench_function(BenchmarkId::new("function", ""), |b| {
        b.iter(|| mixed(black_box(x), black_box(y), black_box(z)))
    });
    grp.bench_function(BenchmarkId::new("generated_grad", ""), |b| {
        b.iter(|| mixed_grad(black_box(x), black_box(y), black_box(z)))
    });
    grp.bench_function(BenchmarkId::new("hand_grad", ""), |b| {
        b.iter(|| mixed_hand(black_box(x), black_box(y), black_box(z)))
    });
    grp.finish();

    let mut grp = cr.benchmark_group("horner16");
    grp.bench_function(BenchmarkId::new("function", ""), |b| {
        b.iter(|| horner(black_box(&coeffs), black_box(0.9)))
    });
    grp.bench_function(BenchmarkId::new("generated_grad", ""), |b| {
        b.iter(|| horner_grad(black_box(&coeffs), black_box(0.9)))
    });
    grp.bench_function(BenchmarkId::new("hand_grad", ""), |b| {
        b.iter(|| horner_hand(black_box(&coeffs), black_box(0.9)))
    });
    grp.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);

//! Second-order cost: `_hvp` (reverse over forward) against the plain function, `_grad`, and
//! a hand-written Hessian-vector product, on the N = 1000 Rosenbrock function.
//!
//! `cargo bench --bench hessian -- --warm-up-time 1 --measurement-time 3`; medians are in
//! `target/criterion/<group>/<id>/new/estimates.json`.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;
use symgrad::prelude::*;

const N: usize = 1000;

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

/// Value, gradient and `H v` by hand, in one loop.
fn rosenbrock_hvp_hand(x: &[f64], v: &[f64]) -> (f64, Vec<f64>, Vec<f64>) {
    let n = x.len();
    let (mut s, mut g, mut hv) = (0.0, vec![0.0; n], vec![0.0; n]);
    for i in 0..n - 1 {
        let a = x[i + 1] - x[i] * x[i];
        let b = 1.0 - x[i];
        s += 100.0 * a * a + b * b;
        g[i] += -400.0 * a * x[i] - 2.0 * b;
        g[i + 1] += 200.0 * a;
        // ∂²/∂x_i² = 1200 x_i² - 400 x_{i+1} + 2, ∂²/∂x_i∂x_{i+1} = -400 x_i, ∂²/∂x_{i+1}² = 200
        hv[i] += (1200.0 * x[i] * x[i] - 400.0 * x[i + 1] + 2.0) * v[i] - 400.0 * x[i] * v[i + 1];
        hv[i + 1] += -400.0 * x[i] * v[i] + 200.0 * v[i + 1];
    }
    (s, g, hv)
}

fn bench(cr: &mut Criterion) {
    let x: Vec<f64> = (0..N).map(|i| ((i as f64) * 0.37).sin()).collect();
    let v: Vec<f64> = (0..N).map(|i| ((i as f64) * 0.11).cos()).collect();
    let (y1, g1, h1) = rosenbrock_hvp(&x, &v);
    let (y2, g2, h2) = rosenbrock_hvp_hand(&x, &v);
    assert!((y1 - y2).abs() < 1e-9 * y2.abs());
    for i in 0..N {
        assert!((g1[i] - g2[i]).abs() < 1e-9 * (1.0 + g2[i].abs()));
        assert!((h1[i] - h2[i]).abs() < 1e-9 * (1.0 + h2[i].abs()));
    }

    let mut grp = cr.benchmark_group("hessian_rosenbrock1000");
    grp.bench_function(BenchmarkId::new("function", ""), |b| {
        b.iter(|| rosenbrock(black_box(&x)))
    });
    grp.bench_function(BenchmarkId::new("generated_grad", ""), |b| {
        b.iter(|| rosenbrock_grad(black_box(&x)))
    });
    grp.bench_function(BenchmarkId::new("generated_hvp", ""), |b| {
        b.iter(|| rosenbrock_hvp(black_box(&x), black_box(&v)))
    });
    grp.bench_function(BenchmarkId::new("hand_hvp", ""), |b| {
        b.iter(|| rosenbrock_hvp_hand(black_box(&x), black_box(&v)))
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

//! Forward mode cost: `_jvp` against the plain function (and a hand-written directional
//! derivative, and the reverse-mode `_grad` for scale) on the N = 1000 Rosenbrock function,
//! and `_jvp` of the MLP loss with respect to the parameters against the loss alone.
//!
//! `cargo bench --bench forward -- --warm-up-time 1 --measurement-time 3`; medians are in
//! `target/criterion/<group>/<id>/new/estimates.json`.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;
use symgrad::prelude::*;
use symgrad::rand::{Rng, SeedableRng};

const N: usize = 1000;

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

/// The directional derivative by hand, in the same loop.
fn rosenbrock_jvp_hand(x: &[f64], v: &[f64]) -> (f64, f64) {
    let (mut s, mut t) = (0.0, 0.0);
    for i in 0..x.len() - 1 {
        let a = x[i + 1] - x[i] * x[i];
        let da = v[i + 1] - 2.0 * x[i] * v[i];
        let b = 1.0 - x[i];
        s += 100.0 * a * a + b * b;
        t += 200.0 * a * da - 2.0 * b * v[i];
    }
    (s, t)
}

#[derive(Clone, Params)]
struct Mlp {
    layer1: Linear,
    layer2: Linear,
    layer3: Linear,
}

#[differentiable(forward, reverse, wrt(model))]
fn loss(model: &Mlp, x: &DMatrix<f32>, labels: &[u8]) -> f32 {
    let h1 = relu(&model.layer1.forward(x));
    let h2 = relu(&model.layer2.forward(&h1));
    let logits = model.layer3.forward(&h2);
    cross_entropy(&logits, labels)
}

fn bench(cr: &mut Criterion) {
    let x: Vec<f64> = (0..N).map(|i| ((i as f64) * 0.37).sin()).collect();
    let v: Vec<f64> = (0..N).map(|i| ((i as f64) * 0.11).cos()).collect();
    let (y1, t1) = rosenbrock_jvp(&x, &v);
    let (y2, t2) = rosenbrock_jvp_hand(&x, &v);
    assert!((y1 - y2).abs() < 1e-9 * y2.abs() && (t1 - t2).abs() < 1e-9 * t2.abs());

    let mut grp = cr.benchmark_group("rosenbrock1000");
    grp.bench_function(BenchmarkId::new("function", ""), |b| {
        b.iter(|| rosenbrock(black_box(&x)))
    });
    grp.bench_function(BenchmarkId::new("generated_jvp", ""), |b| {
        b.iter(|| rosenbrock_jvp(black_box(&x), black_box(&v)))
    });
    grp.bench_function(BenchmarkId::new("hand_jvp", ""), |b| {
        b.iter(|| rosenbrock_jvp_hand(black_box(&x), black_box(&v)))
    });
    grp.bench_function(BenchmarkId::new("generated_grad", ""), |b| {
        b.iter(|| rosenbrock_grad(black_box(&x)))
    });
    grp.finish();

    let mut rng = symgrad::rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let model = Mlp {
        layer1: Linear::new(784, 128, &mut rng),
        layer2: Linear::new(128, 64, &mut rng),
        layer3: Linear::new(64, 10, &mut rng),
    };
    let dir = Mlp {
        layer1: Linear::new(784, 128, &mut rng),
        layer2: Linear::new(128, 64, &mut rng),
        layer3: Linear::new(64, 10, &mut rng),
    };
    let xb = DMatrix::from_fn(64, 784, |_, _| rng.gen_range(0.0..1.0f32));
    let labels: Vec<u8> = (0..64).map(|i| (i % 10) as u8).collect();
    let mut grp = cr.benchmark_group("mlp_loss_b64");
    grp.bench_function(BenchmarkId::new("function", ""), |b| {
        b.iter(|| loss(black_box(&model), black_box(&xb), black_box(&labels)))
    });
    grp.bench_function(BenchmarkId::new("generated_jvp", ""), |b| {
        b.iter(|| {
            loss_jvp(
                black_box(&model),
                black_box(&xb),
                black_box(&labels),
                black_box(&dir),
            )
        })
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

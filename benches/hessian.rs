//! Second-order cost: `_hvp` (reverse over forward) against the plain function, `_grad`, and
//! a hand-written Hessian-vector product, on the N = 1000 Rosenbrock function; and `_hvp` of
//! the MNIST example's MLP loss (784-128-64-10, batch 64, H·v with respect to all the
//! parameters) against the loss and its `_grad`.
//!
//! `cargo bench --bench hessian -- --warm-up-time 1 --measurement-time 3`; medians are in
//! `target/criterion/<group>/<id>/new/estimates.json`.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;
use symgrad::prelude::*;
use symgrad::rand::{Rng, SeedableRng};

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

#[derive(Clone, Params)]
struct Mlp {
    layer1: Linear,
    layer2: Linear,
    layer3: Linear,
}

/// The loss of `examples/common/mod.rs`, with `hessian`.
#[differentiable(hessian, wrt(model))]
fn loss(model: &Mlp, x: &DMatrix<f32>, labels: &[u8]) -> f32 {
    let h1 = model.layer1.forward_relu(x);
    let h2 = model.layer2.forward_relu(&h1);
    let logits = model.layer3.forward(&h2);
    cross_entropy(&logits, labels)
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

    let mut rng = symgrad::rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mlp = |rng: &mut symgrad::rand_chacha::ChaCha8Rng| Mlp {
        layer1: Linear::new(784, 128, rng),
        layer2: Linear::new(128, 64, rng),
        layer3: Linear::new(64, 10, rng),
    };
    let model = mlp(&mut rng);
    let dir = mlp(&mut rng);
    let xb = DMatrix::from_fn(64, 784, |_, _| rng.gen_range(0.0..1.0f32));
    let labels: Vec<u8> = (0..64).map(|i| (i % 10) as u8).collect();
    let (l1, g1) = loss_grad(&model, &xb, &labels);
    let (l2, g2, _) = loss_hvp(&model, &xb, &labels, &dir);
    assert!((l1 - l2).abs() <= 1e-5 * l1.abs());
    assert!((&g1.layer1.weight - &g2.layer1.weight).amax() <= 1e-5);
    let mut grp = cr.benchmark_group("hessian_mlp_loss_b64");
    grp.bench_function(BenchmarkId::new("function", ""), |b| {
        b.iter(|| loss(black_box(&model), black_box(&xb), black_box(&labels)))
    });
    grp.bench_function(BenchmarkId::new("generated_grad", ""), |b| {
        b.iter(|| loss_grad(black_box(&model), black_box(&xb), black_box(&labels)))
    });
    grp.bench_function(BenchmarkId::new("generated_hvp", ""), |b| {
        b.iter(|| {
            loss_hvp(
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

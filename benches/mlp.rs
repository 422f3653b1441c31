//! The generated `loss_grad` of the 784-128-64-10 MLP against a careful hand-written
//! backward of the same network (same GEMM, transpose flags, in-place ReLU and bias), at
//! batch 64 (a training step) and 1000; and `loss_fused`, the same network with each layer's
//! bias and ReLU fused (`Linear::forward_relu`, as the mnist example trains it).
//!
//! Run: `cargo bench --bench mlp`

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::hint::black_box;
use symgrad::gemm::{Trans, matmul};
use symgrad::prelude::*;

#[derive(Clone, Params)]
struct Mlp {
    layer1: Linear,
    layer2: Linear,
    layer3: Linear,
}

#[differentiable(wrt(model))]
fn loss(model: &Mlp, x: &DMatrix<f32>, labels: &[u8]) -> f32 {
    let h1 = relu(&model.layer1.forward(x));
    let h2 = relu(&model.layer2.forward(&h1));
    let logits = model.layer3.forward(&h2);
    cross_entropy(&logits, labels)
}

/// [`loss`] with the bias and ReLU of each hidden layer fused into one pass (and the ReLU mask
/// and the bias gradient into one pass in the backward).
#[differentiable(wrt(model))]
fn loss_fused(model: &Mlp, x: &DMatrix<f32>, labels: &[u8]) -> f32 {
    let h1 = model.layer1.forward_relu(x);
    let h2 = model.layer2.forward_relu(&h1);
    let logits = model.layer3.forward(&h2);
    cross_entropy(&logits, labels)
}

/// `x Wᵀ + b`, bias added in place.
fn linear(l: &Linear, x: &DMatrix<f32>) -> DMatrix<f32> {
    let mut y = matmul(x, Trans::No, &l.weight, Trans::Yes);
    for (j, mut col) in y.column_iter_mut().enumerate() {
        col.add_scalar_mut(l.bias[j]);
    }
    y
}

fn column_sums(g: &DMatrix<f32>) -> DVector<f32> {
    DVector::from_iterator(g.ncols(), g.column_iter().map(|c| c.sum()))
}

/// The backward pass written by hand, as carefully as the generated one should be.
fn hand_loss_grad(m: &Mlp, x: &DMatrix<f32>, labels: &[u8]) -> (f32, Mlp) {
    let mut h1 = linear(&m.layer1, x);
    h1.apply(|v| *v = v.max(0.0));
    let mut h2 = linear(&m.layer2, &h1);
    h2.apply(|v| *v = v.max(0.0));
    let mut z3 = linear(&m.layer3, &h2);
    // softmax cross-entropy, gradient (p - onehot) / n written over the logits
    let n = x.nrows();
    let mut loss = 0.0f32;
    for r in 0..n {
        let mx = z3.row(r).max();
        let mut s = 0.0f32;
        for c in 0..z3.ncols() {
            let e = (z3[(r, c)] - mx).exp();
            z3[(r, c)] = e;
            s += e;
        }
        let label = labels[r] as usize;
        loss -= (z3[(r, label)] / s).ln();
        for c in 0..z3.ncols() {
            z3[(r, c)] = (z3[(r, c)] / s - if c == label { 1.0 } else { 0.0 }) / n as f32;
        }
    }
    let dz3 = z3;
    let g3 = Linear {
        weight: matmul(&dz3, Trans::Yes, &h2, Trans::No),
        bias: column_sums(&dz3),
    };
    let mut dz2 = matmul(&dz3, Trans::No, &m.layer3.weight, Trans::No);
    dz2.zip_apply(&h2, |g, h| {
        if h <= 0.0 {
            *g = 0.0
        }
    });
    let g2 = Linear {
        weight: matmul(&dz2, Trans::Yes, &h1, Trans::No),
        bias: column_sums(&dz2),
    };
    let mut dz1 = matmul(&dz2, Trans::No, &m.layer2.weight, Trans::No);
    dz1.zip_apply(&h1, |g, h| {
        if h <= 0.0 {
            *g = 0.0
        }
    });
    let g1 = Linear {
        weight: matmul(&dz1, Trans::Yes, x, Trans::No),
        bias: column_sums(&dz1),
    };
    (
        loss / n as f32,
        Mlp {
            layer1: g1,
            layer2: g2,
            layer3: g3,
        },
    )
}

fn bench(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let model = Mlp {
        layer1: Linear::new(784, 128, &mut rng),
        layer2: Linear::new(128, 64, &mut rng),
        layer3: Linear::new(64, 10, &mut rng),
    };
    let mut group = c.benchmark_group("mlp_loss_grad");
    group
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3));
    for batch in [64usize, 1000] {
        let x = DMatrix::from_fn(batch, 784, |_, _| rng.gen_range(0.0f32..1.0));
        let labels: Vec<u8> = (0..batch).map(|_| rng.gen_range(0..10)).collect();
        // Same numbers from both, so the benchmark compares the same work.
        let (a, _) = loss_grad(&model, &x, &labels);
        let (b, _) = hand_loss_grad(&model, &x, &labels);
        assert!((a - b).abs() < 1e-4 * (1.0 + b.abs()), "{a} vs {b}");
        group.bench_with_input(BenchmarkId::new("generated", batch), &batch, |bch, _| {
            bch.iter(|| loss_grad(black_box(&model), black_box(&x), black_box(&labels)))
        });
        group.bench_with_input(
            BenchmarkId::new("generated_fused", batch),
            &batch,
            |bch, _| {
                bch.iter(|| loss_fused_grad(black_box(&model), black_box(&x), black_box(&labels)))
            },
        );
        group.bench_with_input(
            BenchmarkId::new("forward_fused", batch),
            &batch,
            |bch, _| bch.iter(|| loss_fused(black_box(&model), black_box(&x), black_box(&labels))),
        );
        group.bench_with_input(BenchmarkId::new("forward_only", batch), &batch, |bch, _| {
            bch.iter(|| loss(black_box(&model), black_box(&x), black_box(&labels)))
        });
        group.bench_with_input(BenchmarkId::new("hand_written", batch), &batch, |bch, _| {
            bch.iter(|| hand_loss_grad(black_box(&model), black_box(&x), black_box(&labels)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

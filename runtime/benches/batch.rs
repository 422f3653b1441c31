//! Batch assembly: 64 random MNIST-sized samples (784 bytes each) of a 60,000-image set
//! converted to `f32` into a reused `64 x 784` batch (`train::fill_batch`).
//!
//! Run: `cargo bench -p symgrad-runtime --bench batch`.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use symgrad_runtime::train::{Batch, DataRef, epoch_permutation};

fn fill(c: &mut Criterion) {
    let (n, pixels) = (60_000, 784);
    let images: Vec<u8> = (0..n * pixels).map(|i| (i * 31 % 251) as u8).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    let data = DataRef::new(&images, &labels, pixels);
    let order = epoch_permutation(0, 0, n);
    let mut batch = Batch::with_capacity(64, pixels);
    let mut chunks = order.chunks_exact(64).cycle();
    c.bench_function("fill_batch_64x784", |b| {
        b.iter(|| {
            batch.fill(data, chunks.next().unwrap());
            black_box(&batch.x);
        })
    });
    let mut big = Batch::with_capacity(1000, pixels);
    c.bench_function("fill_range_1000x784", |b| {
        b.iter(|| {
            big.fill_range(data, 5_000, 6_000);
            black_box(&big.x);
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = fill
}
criterion_main!(benches);

//! The cost of one round of the worker pool (`parallel::run(2, ..)` with empty pieces):
//! back to back (the worker is still spinning when the next round comes) and after an idle
//! pause (the worker has gone to sleep and must be woken), against running both pieces on
//! the calling thread.
//!
//! Run: `cargo bench -p symgrad-runtime --bench pool`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use symgrad_runtime::parallel;

fn empty(i: usize) {
    black_box(i);
}

fn rounds(c: &mut Criterion) {
    let mut g = c.benchmark_group("pool_round");
    g.bench_function("serial_2_pieces", |b| {
        b.iter(|| (0..2).for_each(|i| empty(black_box(i))))
    });
    g.bench_function("hot_2_pieces", |b| b.iter(|| parallel::run(2, &empty)));
    // The worker's spin budget is at most 50 µs: after 1 ms it sleeps on the condvar.
    g.bench_function("idle_woken_2_pieces", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                std::thread::sleep(Duration::from_millis(1));
                let t = Instant::now();
                parallel::run(2, &empty);
                total += t.elapsed();
            }
            total
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = rounds
}
criterion_main!(benches);

//! The worker pool when the OS refuses to start threads: work is never dropped. A test binary
//! of its own, so that the process-wide pool starts with no worker (the hook acts on spawning).

use std::sync::atomic::{AtomicUsize, Ordering};

use nalgebra::DMatrix;
use symgrad_runtime::gemm::{GemmOptions, KernelChoice, Trans, gemm_with};
use symgrad_runtime::parallel;

/// `A B` in f64 by the textbook triple loop, rounded to f32 (the inputs are small integers
/// times powers of two, so every product and partial sum is exact in f32 too).
fn reference(a: &DMatrix<f32>, b: &DMatrix<f32>) -> DMatrix<f32> {
    DMatrix::from_fn(a.nrows(), b.ncols(), |i, j| {
        (0..a.ncols())
            .map(|p| f64::from(a[(i, p)]) * f64::from(b[(p, j)]))
            .sum::<f64>() as f32
    })
}

#[test]
fn spawn_failure_drops_no_work() {
    // Nothing has used the pool in this process yet: every worker spawn will fail.
    parallel::fail_worker_spawns(true);

    // The case: 64x784x128 with C pre-filled with NaN, split over 2 threads.
    let a = DMatrix::from_fn(64, 784, |i, j| ((i * 7 + j * 3) % 9) as f32 - 4.0);
    let b = DMatrix::from_fn(784, 128, |i, j| ((i * 5 + j * 11) % 7) as f32 * 0.25 - 0.75);
    let want = reference(&a, &b);
    for threads in [2, 3, 8] {
        let mut c = DMatrix::from_element(64, 128, f32::NAN);
        let opts = GemmOptions {
            kernel: KernelChoice::Auto,
            threads: Some(threads),
        };
        gemm_with(
            &opts,
            1.0,
            a.as_view(),
            Trans::No,
            b.as_view(),
            Trans::No,
            0.0,
            c.as_view_mut(),
        );
        let nan = c.iter().filter(|x| x.is_nan()).count();
        assert_eq!(
            nan, 0,
            "{threads} threads: {nan} elements of C left unwritten"
        );
        assert_eq!(c, want, "{threads} threads");
    }

    // `parallel::run`: every index exactly once.
    let hits: Vec<AtomicUsize> = (0..16).map(|_| AtomicUsize::new(0)).collect();
    parallel::run(16, &|i| {
        hits[i].fetch_add(1, Ordering::Relaxed);
    });
    let counts: Vec<usize> = hits.iter().map(|h| h.load(Ordering::Relaxed)).collect();
    assert_eq!(counts, vec![1; 16]);

    // Once threads can be started again, the pool grows and still runs every index once.
    parallel::fail_worker_spawns(false);
    let hits: Vec<AtomicUsize> = (0..16).map(|_| AtomicUsize::new(0)).collect();
    let threads = std::sync::Mutex::new(std::collections::HashSet::new());
    parallel::run(16, &|i| {
        hits[i].fetch_add(1, Ordering::Relaxed);
        threads.lock().unwrap().insert(std::thread::current().id());
        std::thread::sleep(std::time::Duration::from_millis(2));
    });
    let counts: Vec<usize> = hits.iter().map(|h| h.load(Ordering::Relaxed)).collect();
    assert_eq!(counts, vec![1; 16]);
    let used = threads.lock().unwrap().len();
    assert!(
        used <= parallel::max_threads(),
        "{used} threads ran pieces, more than max_threads() = {}",
        parallel::max_threads()
    );
}

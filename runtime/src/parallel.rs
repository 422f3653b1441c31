//! A parallel `for` over a few indices on the runtime's persistent worker threads (the pool
//! the GEMM uses), for work that is coarse enough to split: the shards of a training step,
//! the optimizer's element-wise update.
//!
//! The pool never runs more busy threads than [`max_threads`] (the cores this process may
//! use, from `std::thread::available_parallelism()`; override with [`set_max_threads`] or
//! `SYMGRAD_MAX_THREADS`). Asking for more pieces than that (`run(8, ..)` on 2 cores) is
//! fine: the pieces are claimed in turn by the calling thread and the awake workers, and the
//! result does not depend on who ran which. Idle workers spin for at most 50 µs, then sleep.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

static THREADS: AtomicUsize = AtomicUsize::new(1);

/// How many threads the runtime's element-wise work (the optimizers' updates) may use.
/// Default 1. The GEMM has its own setting ([`crate::gemm::set_num_threads`]) and training
/// its own ([`crate::train::TrainConfig::threads`]).
pub fn set_threads(n: usize) {
    THREADS.store(n.max(1), Ordering::Relaxed);
}

/// The current [`set_threads`] value.
pub fn threads() -> usize {
    THREADS.load(Ordering::Relaxed)
}

pub use crate::gemm::pool::{max_threads, set_max_threads};

#[doc(hidden)]
pub use crate::gemm::pool::fail_worker_spawns;

/// Runs `f(i)` exactly once for every `i < n`, on the calling thread and up to
/// [`max_threads`]` - 1` of the pool's workers (spawned on first use, kept for the process),
/// each index on whichever thread claims it first. Returns when all have finished. If the pool
/// is busy (a call from inside `f`, or another thread using it), or no worker thread can be
/// started, everything runs on the calling thread instead, so `f(i)` must not depend on where
/// it runs. Workers use the calling thread's floating-point mode ([`crate::fpu`]). A panic in
/// `f` is propagated once every index has finished.
pub fn run(n: usize, f: &(dyn Fn(usize) + Sync)) {
    crate::gemm::pool_run(n, f);
}

/// The work of [`zip4`] on one piece.
pub type Zip4Fn<'a> = dyn Fn(&mut [f32], &[f32], &mut [f32], &mut [f32]) + Sync + 'a;

/// Calls `f` on `parts` pieces of the same range of `a` (mutable) and `b`, `c`, `d` (mutable),
/// in parallel: `f(&mut a[r], &b[r], &mut c[r], &mut d[r])` for consecutive ranges `r`.
///
/// # Panics
/// If the slices do not have the same length.
pub fn zip4(parts: usize, a: &mut [f32], b: &[f32], c: &mut [f32], d: &mut [f32], f: &Zip4Fn<'_>) {
    let n = a.len();
    assert!(
        b.len() == n && c.len() == n && d.len() == n,
        "parallel::zip4: lengths {}, {}, {}, {} differ",
        n,
        b.len(),
        c.len(),
        d.len()
    );
    if parts <= 1 || n < 2 {
        f(a, b, c, d);
        return;
    }
    let chunk = n.div_ceil(parts);
    #[allow(clippy::type_complexity)]
    let pieces: Vec<Mutex<(&mut [f32], &[f32], &mut [f32], &mut [f32])>> = a
        .chunks_mut(chunk)
        .zip(b.chunks(chunk))
        .zip(c.chunks_mut(chunk))
        .zip(d.chunks_mut(chunk))
        .map(|(((a, b), c), d)| Mutex::new((a, b, c, d)))
        .collect();
    run(pieces.len(), &|i| {
        let mut guard = pieces[i].lock().unwrap_or_else(|e| e.into_inner());
        let (a, b, c, d) = &mut *guard;
        f(a, b, c, d);
    });
}

/// Calls `f` on `parts` pieces of the same range of `a` (mutable) and `b`, in parallel:
/// `f(&mut a[r], &b[r])` for consecutive ranges `r`.
///
/// # Panics
/// If the slices do not have the same length.
pub fn zip2(parts: usize, a: &mut [f32], b: &[f32], f: &(dyn Fn(&mut [f32], &[f32]) + Sync)) {
    assert_eq!(
        a.len(),
        b.len(),
        "parallel::zip2: lengths {} and {} differ",
        a.len(),
        b.len()
    );
    if parts <= 1 || a.len() < 2 {
        f(a, b);
        return;
    }
    let chunk = a.len().div_ceil(parts);
    let pieces: Vec<Mutex<(&mut [f32], &[f32])>> = a
        .chunks_mut(chunk)
        .zip(b.chunks(chunk))
        .map(Mutex::new)
        .collect();
    run(pieces.len(), &|i| {
        let mut guard = pieces[i].lock().unwrap_or_else(|e| e.into_inner());
        let (a, b) = &mut *guard;
        f(a, b);
    });
}

//! A tiny persistent thread pool: `run(n, f)` calls `f(0)` on the caller and `f(1..n)` on parked
//! worker threads, and returns when all are done. Workers are spawned on first use and kept, so a
//! call costs a condvar round trip instead of thread creation.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// How long a thread spins, watching an atomic, before it sleeps on a condvar: a round that
/// follows within this time (the next training step) costs no wake-up (~50 µs here).
const SPIN: Duration = Duration::from_micros(300);

/// Spins until `done()` or [`SPIN`] has passed; true if `done()`.
fn spin_until(done: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    loop {
        for _ in 0..64 {
            if done() {
                return true;
            }
            std::hint::spin_loop();
        }
        if start.elapsed() > SPIN {
            return done();
        }
    }
}

type Task = dyn Fn(usize) + Sync;

/// Lifetime-erased pointer to the task of the current round.
#[derive(Clone, Copy)]
struct TaskPtr(*const Task);

// SAFETY: the pointee is `Sync` (so `&Task` may be used from any thread) and `Pool::run` keeps it
// alive until every worker that received the pointer is done with it.
unsafe impl Send for TaskPtr {}

struct State {
    /// Incremented for every round; workers wait for a change.
    round: u64,
    task: Option<TaskPtr>,
    /// Index handed to the next worker that wakes up.
    next: usize,
    /// Number of indices in this round.
    n: usize,
    /// Indices of this round not finished yet (the caller's own is not counted).
    pending: usize,
    panic: Option<Box<dyn std::any::Any + Send>>,
}

struct Shared {
    state: Mutex<State>,
    /// Copies of `state.round` and `state.pending`, written under the lock, read while spinning.
    round_hint: AtomicU64,
    pending_hint: AtomicUsize,
    start: Condvar,
    done: Condvar,
}

pub(crate) struct Pool {
    shared: Arc<Shared>,
    /// Number of spawned workers; guarded by the `run` lock.
    workers: Mutex<usize>,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn worker(shared: Arc<Shared>, mut seen: u64) {
    loop {
        spin_until(|| shared.round_hint.load(Ordering::Acquire) != seen);
        let mut st = lock(&shared.state);
        while st.round == seen {
            st = shared.start.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        seen = st.round;
        if st.next >= st.n {
            continue;
        }
        let idx = st.next;
        st.next += 1;
        let task = st.task.expect("gemm pool: round without a task");
        drop(st);
        // SAFETY: `run` does not return (so the task stays alive) until `pending` reaches zero,
        // and this worker decrements `pending` only after its last use of the pointer.
        let f = unsafe { &*task.0 };
        let result = catch_unwind(AssertUnwindSafe(|| f(idx)));
        let mut st = lock(&shared.state);
        if let Err(p) = result {
            st.panic.get_or_insert(p);
        }
        st.pending -= 1;
        shared.pending_hint.store(st.pending, Ordering::Release);
        if st.pending == 0 {
            shared.done.notify_all();
        }
    }
}

impl Pool {
    /// The process-wide pool.
    pub(crate) fn global() -> &'static Pool {
        static POOL: OnceLock<Pool> = OnceLock::new();
        POOL.get_or_init(|| Pool {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    round: 0,
                    task: None,
                    next: 0,
                    n: 0,
                    pending: 0,
                    panic: None,
                }),
                start: Condvar::new(),
                done: Condvar::new(),
                round_hint: AtomicU64::new(0),
                pending_hint: AtomicUsize::new(0),
            }),
            workers: Mutex::new(0),
        })
    }

    /// Runs `f(i)` for every `i < n`, `f(0)` on the calling thread. If another thread is using
    /// the pool at the moment, everything runs on the calling thread instead (same results:
    /// callers make `f(i)` independent of where it runs).
    pub(crate) fn run(&self, n: usize, f: &(dyn Fn(usize) + Sync)) {
        if n <= 1 {
            (0..n).for_each(f);
            return;
        }
        let Ok(mut workers) = self.workers.try_lock() else {
            (0..n).for_each(f);
            return;
        };
        while *workers < n - 1 {
            let shared = Arc::clone(&self.shared);
            let seen = lock(&self.shared.state).round;
            let spawned = std::thread::Builder::new()
                .name(format!("symgrad-gemm-{}", *workers + 1))
                .spawn(move || worker(shared, seen));
            if spawned.is_err() {
                break;
            }
            *workers += 1;
        }
        let n = n.min(*workers + 1);
        // SAFETY: lifetime erasure only; this function waits below until `pending == 0`, i.e. until
        // every worker that took the pointer has finished calling it, and clears the pointer
        // before returning, so the borrow of `f` outlives all uses.
        let ptr: *const Task =
            unsafe { core::mem::transmute::<*const (dyn Fn(usize) + Sync + '_), *const Task>(f) };
        {
            let mut st = lock(&self.shared.state);
            st.round += 1;
            st.task = Some(TaskPtr(ptr));
            st.next = 1;
            st.n = n;
            st.pending = n - 1;
            self.shared.pending_hint.store(n - 1, Ordering::Release);
            self.shared.round_hint.store(st.round, Ordering::Release);
            self.shared.start.notify_all();
        }
        let mine = catch_unwind(AssertUnwindSafe(|| f(0)));
        spin_until(|| self.shared.pending_hint.load(Ordering::Acquire) == 0);
        let mut st = lock(&self.shared.state);
        while st.pending > 0 {
            st = self.shared.done.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        st.task = None;
        // Workers that wake up late must find no index left.
        st.next = st.n;
        let theirs = st.panic.take();
        drop(st);
        drop(workers);
        if let Err(p) = mine {
            resume_unwind(p);
        }
        if let Some(p) = theirs {
            resume_unwind(p);
        }
    }
}

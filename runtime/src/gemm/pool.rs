//! A small persistent thread pool: `run(n, f)` calls `f(i)` for every `i < n` and returns when
//! all are done. The calling thread takes part: indices are claimed one at a time from a shared
//! counter by the caller and by whichever workers are awake, so a worker that is slow to wake
//! (asleep, or descheduled because another process holds the core) never delays the round:
//! the caller simply runs the indices nobody has claimed.
//!
//! * **Waiting.** A worker waiting for the next round spins briefly (an adaptive budget of at
//!   most [`SPIN_MAX`]: it grows while rounds arrive within it and shrinks to nothing while they
//!   do not), then sleeps on a condvar. The caller waiting for claimed indices to finish does
//!   the same. Nothing spins without bound.
//! * **How many threads.** At most [`max_threads`] threads (the caller included) work on a
//!   round: `std::thread::available_parallelism()` (which follows affinity masks and cgroup
//!   quotas), unless overridden with [`set_max_threads`] or `SYMGRAD_MAX_THREADS`. Asking
//!   for more indices than that is fine (they are claimed in turn); it never starts more busy
//!   threads than cores.
//! * **Spawn failures.** Workers are spawned on first use. If the OS refuses a thread, the pool
//!   continues with the workers it has (at worst none: the caller runs every index) and says so
//!   once on stderr. No index is ever skipped.
//! * **Floating-point mode.** Each round carries the caller's MXCSR (x86-64), so workers round
//!   and flush subnormals exactly as the caller does (see [`crate::fpu`]): results do not
//!   depend on which thread ran an index.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// The longest a thread spins (watching an atomic) before it sleeps.
pub(crate) const SPIN_MAX: Duration = Duration::from_micros(50);
/// The spin budget a worker starts with.
const SPIN_START: Duration = Duration::from_micros(20);

/// 0 = not decided yet.
static MAX_THREADS: AtomicUsize = AtomicUsize::new(0);

/// The most threads (the caller included) that work on one round of the pool, i.e. the most
/// busy threads the runtime's parallel work ever uses: [`set_max_threads`] if called, else
/// `SYMGRAD_MAX_THREADS` if set, else `std::thread::available_parallelism()` (1 if unknown).
pub fn max_threads() -> usize {
    match MAX_THREADS.load(Ordering::Relaxed) {
        0 => {
            let n = std::env::var("SYMGRAD_MAX_THREADS")
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .filter(|&n| n > 0)
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            let _ = MAX_THREADS.compare_exchange(0, n, Ordering::Relaxed, Ordering::Relaxed);
            MAX_THREADS.load(Ordering::Relaxed)
        }
        n => n,
    }
}

/// Overrides [`max_threads`] (at least 1). Setting it above the number of cores forces
/// oversubscription: threads are then descheduled against each other, which is rarely faster.
pub fn set_max_threads(n: usize) {
    MAX_THREADS.store(n.max(1), Ordering::Relaxed);
}

thread_local! {
    /// Set (on one thread) while that thread's rounds should run inline, without waking the
    /// workers: see [`InlineRounds`].
    static INLINE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// While alive, every round started by this thread runs all its indices on this thread, in
/// order, without waking a worker (the other threads' rounds are unaffected). The results are
/// the same (callers make `f(i)` independent of where it runs); only the scheduling changes.
/// `train::fit` uses it when the other cores are busy with other processes, so that a step
/// does not wait for a worker that the OS has descheduled.
#[cfg_attr(not(feature = "train"), allow(dead_code))]
pub(crate) struct InlineRounds {
    before: bool,
}

#[cfg_attr(not(feature = "train"), allow(dead_code))]
impl InlineRounds {
    /// Rounds of this thread run inline if `on` (else as usual) until the guard is dropped.
    pub(crate) fn new(on: bool) -> Self {
        InlineRounds {
            before: INLINE.with(|c| c.replace(on)),
        }
    }
}

impl Drop for InlineRounds {
    fn drop(&mut self) {
        INLINE.with(|c| c.set(self.before));
    }
}

/// Test hook: when set, spawning a worker fails as if the OS had refused the thread.
static FAIL_SPAWN: AtomicBool = AtomicBool::new(false);

/// Makes every later attempt to spawn a pool worker fail (`true`) or succeed again (`false`).
/// For tests of the spawn-failure path; not part of the API.
#[doc(hidden)]
pub fn fail_worker_spawns(on: bool) {
    FAIL_SPAWN.store(on, Ordering::SeqCst);
}

/// What a round hands to the workers; lives on the caller's stack for the round.
struct Round<'a> {
    f: &'a (dyn Fn(usize) + Sync + 'a),
    /// The caller's MXCSR (0 where there is none).
    fp_mode: u32,
}

/// The claim word: round number in the high 32 bits, next unclaimed index in the low 32.
const IDX_BITS: u32 = 32;
const IDX_MASK: u64 = (1 << IDX_BITS) - 1;

struct Shared {
    /// `round << 32 | next`: a worker claims index `next` of the current round with a CAS, so a
    /// worker that looked at an older round can never claim an index of a newer one.
    claim: AtomicU64,
    /// Number of indices of the current round (written before the round is published).
    n: AtomicUsize,
    /// The current round's [`Round`] (type-erased; valid while the round has unfinished
    /// indices).
    task: AtomicPtr<()>,
    /// Claimed-or-unclaimed indices of the round not finished yet.
    remaining: AtomicUsize,
    /// A panic from a worker, re-raised by the caller.
    panic: Mutex<Option<Box<dyn std::any::Any + Send>>>,
    /// Workers sleep here for the next round; `sleepers` counts them (changed under the lock).
    sleep: Mutex<()>,
    start: Condvar,
    sleepers: AtomicUsize,
    /// The caller sleeps here for the end of the round.
    done_lock: Mutex<()>,
    done: Condvar,
    caller_sleeping: AtomicBool,
}

pub(crate) struct Pool {
    shared: Arc<Shared>,
    /// Set while a round is in progress (the pool serves one caller at a time).
    busy: AtomicBool,
    /// Spawned workers; changed only by the thread holding `busy`.
    workers: AtomicUsize,
    /// Whether a spawn failure was reported already.
    warned: AtomicBool,
    /// Round counter (only the thread holding `busy` changes it).
    round: AtomicU32,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Spins until `done()` or `budget` has passed; true if `done()`.
fn spin_until(budget: Duration, done: impl Fn() -> bool) -> bool {
    if done() {
        return true;
    }
    if budget.is_zero() {
        return false;
    }
    let start = Instant::now();
    loop {
        for _ in 0..32 {
            std::hint::spin_loop();
            if done() {
                return true;
            }
        }
        if start.elapsed() >= budget {
            return done();
        }
    }
}

impl Shared {
    fn round_of(word: u64) -> u32 {
        (word >> IDX_BITS) as u32
    }

    /// Claims the next index of round `round`, if any is left.
    fn claim(&self, round: u32) -> Option<usize> {
        let mut word = self.claim.load(Ordering::Acquire);
        loop {
            if Self::round_of(word) != round {
                return None;
            }
            let idx = (word & IDX_MASK) as usize;
            // `n` belongs to `round`: it is replaced only after every index of `round` has
            // been claimed and finished, which the successful CAS below rules out.
            if idx >= self.n.load(Ordering::Acquire) {
                return None;
            }
            match self.claim.compare_exchange_weak(
                word,
                word + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(idx),
                Err(w) => word = w,
            }
        }
    }

    /// Runs the claimed index `idx` of the current round and marks it finished.
    fn execute(&self, idx: usize, on_worker: bool) {
        let ptr = self.task.load(Ordering::Acquire).cast::<Round<'_>>();
        // SAFETY: `ptr` was stored before the round was published (the CAS that claimed `idx`
        // synchronises with that store) and points to the caller's `Round`, which stays alive
        // until `remaining` reaches zero; `remaining` is decremented for `idx` only below,
        // after the last use of `round`.
        let round = unsafe { &*ptr };
        if on_worker {
            crate::fpu::set_mode_if_different(round.fp_mode);
        }
        let result = catch_unwind(AssertUnwindSafe(|| (round.f)(idx)));
        if let Err(p) = result {
            lock(&self.panic).get_or_insert(p);
        }
        if self.remaining.fetch_sub(1, Ordering::SeqCst) == 1
            && self.caller_sleeping.load(Ordering::SeqCst)
        {
            let _g = lock(&self.done_lock);
            self.done.notify_all();
        }
    }
}

fn worker(shared: Arc<Shared>, mut seen: u32) {
    let mut budget = SPIN_START;
    loop {
        // Wait for a round newer than `seen`: spin within the budget, then sleep.
        let newer = |s: &Shared| Shared::round_of(s.claim.load(Ordering::SeqCst)) != seen;
        if spin_until(budget, || newer(&shared)) {
            budget = (budget * 2).min(SPIN_MAX);
        } else {
            budget /= 2;
            if budget < Duration::from_micros(1) {
                budget = Duration::ZERO;
            }
            let mut g = lock(&shared.sleep);
            shared.sleepers.fetch_add(1, Ordering::SeqCst);
            while !newer(&shared) {
                g = shared.start.wait(g).unwrap_or_else(|e| e.into_inner());
            }
            shared.sleepers.fetch_sub(1, Ordering::SeqCst);
            drop(g);
            // Woken from sleep: next time spin at least a little again.
            budget = budget.max(Duration::from_micros(2));
        }
        seen = Shared::round_of(shared.claim.load(Ordering::Acquire));
        while let Some(idx) = shared.claim(seen) {
            shared.execute(idx, true);
        }
    }
}

impl Pool {
    fn new() -> Pool {
        Pool {
            shared: Arc::new(Shared {
                claim: AtomicU64::new(0),
                n: AtomicUsize::new(0),
                task: AtomicPtr::new(std::ptr::null_mut()),
                remaining: AtomicUsize::new(0),
                panic: Mutex::new(None),
                sleep: Mutex::new(()),
                start: Condvar::new(),
                sleepers: AtomicUsize::new(0),
                done_lock: Mutex::new(()),
                done: Condvar::new(),
                caller_sleeping: AtomicBool::new(false),
            }),
            busy: AtomicBool::new(false),
            workers: AtomicUsize::new(0),
            warned: AtomicBool::new(false),
            round: AtomicU32::new(0),
        }
    }

    /// The process-wide pool.
    pub(crate) fn global() -> &'static Pool {
        static POOL: OnceLock<Pool> = OnceLock::new();
        POOL.get_or_init(Pool::new)
    }

    /// Number of worker threads spawned so far.
    pub(crate) fn workers(&self) -> usize {
        self.workers.load(Ordering::Relaxed)
    }

    /// Spawns workers until there are `want` (or the OS refuses one).
    fn grow(&self, want: usize) {
        let mut have = self.workers.load(Ordering::Relaxed);
        while have < want {
            let shared = Arc::clone(&self.shared);
            let seen = Shared::round_of(self.shared.claim.load(Ordering::Acquire));
            let spawned = if FAIL_SPAWN.load(Ordering::SeqCst) {
                Err(std::io::Error::other("spawn failure injected by a test"))
            } else {
                std::thread::Builder::new()
                    .name(format!("symgrad-worker-{}", have + 1))
                    .spawn(move || worker(shared, seen))
            };
            match spawned {
                Ok(_) => {
                    have += 1;
                    self.workers.store(have, Ordering::Relaxed);
                }
                Err(e) => {
                    if !self.warned.swap(true, Ordering::Relaxed) {
                        eprintln!(
                            "symgrad: could not start worker thread {} ({e}); continuing with \
                             {} thread(s)",
                            have + 1,
                            have + 1
                        );
                    }
                    return;
                }
            }
        }
    }

    /// Runs `f(i)` for every `i < n` on the calling thread and up to [`max_threads`]` - 1`
    /// workers, and returns when all have finished. Every index runs exactly once. If another
    /// thread is using the pool at the moment (or `f` calls `run`), everything runs on the
    /// calling thread instead (callers make `f(i)` independent of where it runs). A panic in
    /// any `f(i)` is re-raised here after the round has finished.
    pub(crate) fn run(&self, n: usize, f: &(dyn Fn(usize) + Sync)) {
        let helpers = n.min(max_threads()).saturating_sub(1);
        if helpers == 0
            || INLINE.with(|c| c.get())
            || self
                .busy
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            (0..n).for_each(f);
            return;
        }
        self.grow(helpers);
        if self.workers() == 0 || n > IDX_MASK as usize {
            self.busy.store(false, Ordering::Release);
            (0..n).for_each(f);
            return;
        }
        let s = &*self.shared;
        let round_data = Round {
            f,
            fp_mode: crate::fpu::mode(),
        };
        let round = self.round.load(Ordering::Relaxed).wrapping_add(1);
        self.round.store(round, Ordering::Relaxed);
        s.n.store(n, Ordering::Release);
        s.remaining.store(n, Ordering::Release);
        s.task.store(
            (&raw const round_data).cast::<()>().cast_mut(),
            Ordering::Release,
        );
        // Publish: from here on workers can claim indices of this round.
        s.claim
            .store(u64::from(round) << IDX_BITS, Ordering::SeqCst);
        if s.sleepers.load(Ordering::SeqCst) > 0 {
            let _g = lock(&s.sleep);
            s.start.notify_all();
        }
        while let Some(idx) = s.claim(round) {
            s.execute(idx, false);
        }
        // Every index is claimed; wait for the workers still running theirs.
        let finished = || s.remaining.load(Ordering::SeqCst) == 0;
        if !spin_until(SPIN_MAX, finished) {
            let mut g = lock(&s.done_lock);
            s.caller_sleeping.store(true, Ordering::SeqCst);
            while !finished() {
                g = s.done.wait(g).unwrap_or_else(|e| e.into_inner());
            }
            s.caller_sleeping.store(false, Ordering::SeqCst);
        }
        s.task.store(std::ptr::null_mut(), Ordering::Release);
        let panic = lock(&s.panic).take();
        self.busy.store(false, Ordering::Release);
        if let Some(p) = panic {
            resume_unwind(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn every_index_runs_once() {
        let pool = Pool::new();
        for n in [0, 1, 2, 3, 7, 64] {
            let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
            pool.run(n, &|i| {
                hits[i].fetch_add(1, Ordering::Relaxed);
            });
            assert!(
                hits.iter().all(|h| h.load(Ordering::Relaxed) == 1),
                "n = {n}"
            );
        }
    }

    #[test]
    fn panics_propagate_after_the_round() {
        let pool = Pool::new();
        let ran = AtomicUsize::new(0);
        let r = catch_unwind(AssertUnwindSafe(|| {
            pool.run(4, &|i| {
                ran.fetch_add(1, Ordering::Relaxed);
                if i == 3 {
                    panic!("index 3 failed");
                }
            })
        }));
        assert!(r.is_err());
        assert_eq!(ran.load(Ordering::Relaxed), 4);
        // The pool is usable afterwards.
        let again = AtomicUsize::new(0);
        pool.run(3, &|_| {
            again.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(again.load(Ordering::Relaxed), 3);
    }
}

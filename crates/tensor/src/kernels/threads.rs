//! The threading policy: one pool, a cost model, no nesting.
//!
//! - **One pool.** Every parallel region runs on rayon's global pool, the one the `gemm` crate
//!   splits large products over; its size is the core count (or `RAYON_NUM_THREADS`), so the
//!   threads of all regions together never outnumber the cores.
//! - **A thread budget.** [`set_num_threads`] (or `FLUX_NUM_THREADS`) caps every region; a
//!   region also never asks for more parties than the pool has threads.
//! - **No nesting.** Inside a region (on a pool thread, or on the caller while it takes its own
//!   part in [`run_parties`]) every further region runs on one thread: a GEMM called by a fused
//!   LSTM worker does not fork again.
//! - **A cost model.** A region is split only when the model predicts a gain: [`parties_for`]
//!   weighs the work's time on one thread against what splitting costs (handing tasks to the
//!   pool, and a hand-over per step for work that moves in lockstep), with constants measured
//!   on a 2-core AMD EPYC (Zen 4) and written down in docs/design.md.
//! - **Nobody waits for a late thread.** [`run_parties`] runs party 0 on the calling thread and
//!   hands the others to the pool; a party that starts late (its core was busy) finds the work
//!   done by the others and returns, and the caller never waits for a party that has not
//!   started. Work split this way must be claimable by any party (see the fused LSTM's
//!   `Lockstep`).

use std::any::Any;
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

static NUM_THREADS: AtomicUsize = AtomicUsize::new(0);

/// Fixed cost of a region of `p` parties, per party beyond the first: waking a pool thread,
/// handing it the task and closing the region. Measured around 15 µs on the 2-core machine
/// when the pool thread sleeps (it spins briefly after a task, so back-to-back regions pay
/// less); 25 µs leaves room for a busier machine.
const FORK_NS: f64 = 25_000.0;

/// Cost of one hand-over between parties that move in lockstep (a step's results published,
/// the next step claimed): two cache-line transfers and the wait for the slower party. Measured
/// near 1 µs per step with two running parties.
const SYNC_NS: f64 = 1_500.0;

/// A split must promise to save at least this fraction of the one-thread time: below that,
/// noise on a shared machine (a party delayed by another process) eats the gain.
const MIN_GAIN: f64 = 0.15;

thread_local! {
    /// Set while this thread runs a party of a region: further regions run on one thread.
    static IN_REGION: Cell<bool> = const { Cell::new(false) };
}

/// Sets how many threads any parallel region (a large matrix product, the fused LSTM) may use;
/// 0 restores the default: the environment variable `FLUX_NUM_THREADS` when it holds a
/// positive number, else every available core. Regions never use more threads than the pool
/// has (one per core unless `RAYON_NUM_THREADS` says otherwise), and split only work that the
/// cost model expects to gain from it.
///
/// ```
/// flux_tensor::set_num_threads(1);
/// assert_eq!(flux_tensor::num_threads(), 1);
/// flux_tensor::set_num_threads(0);
/// ```
pub fn set_num_threads(n: usize) {
    NUM_THREADS.store(n, Ordering::Relaxed);
}

/// The thread budget of a parallel region (see [`set_num_threads`]).
///
/// ```
/// assert!(flux_tensor::num_threads() >= 1);
/// ```
pub fn num_threads() -> usize {
    match NUM_THREADS.load(Ordering::Relaxed) {
        0 => default_threads(),
        n => n,
    }
}

/// `FLUX_NUM_THREADS`, or the available cores; read once (asking the OS for the core count
/// reads cgroup files, which cost as much as a small product when done per call).
fn default_threads() -> usize {
    static DEFAULT: OnceLock<usize> = OnceLock::new();
    *DEFAULT.get_or_init(|| {
        let from_env = std::env::var("FLUX_NUM_THREADS").ok().and_then(|s| s.trim().parse::<usize>().ok()).filter(|&n| n > 0);
        from_env.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
    })
}

/// The threads a region started here may use: 1 inside another region (or on any pool
/// thread), else the budget capped by the pool's size.
pub(crate) fn available() -> usize {
    if IN_REGION.get() || rayon::current_thread_index().is_some() {
        return 1;
    }
    num_threads().min(rayon::current_num_threads()).max(1)
}

/// How many parties to split a piece of work into: the count, up to `max_parts` and the
/// threads [`available`] here, that the cost model predicts fastest, or 1 when no split saves
/// enough. `one_thread_ns` is the work's estimated time on one thread and `syncs` the
/// hand-overs between parties it needs (steps of a recurrence; 0 for independent parts).
///
/// The model: `p` parties take `one_thread_ns / p + (p - 1)·FORK + syncs·SYNC`; a split is
/// taken when that saves at least 15% of the one-thread time.
///
/// ```
/// // a millisecond of independent work is worth splitting wherever there are two threads
/// flux_tensor::set_num_threads(2);
/// let p = flux_tensor::parties_for(1e6, 0, 8);
/// assert!(p >= 1 && p <= 2);
/// // a microsecond of work never is
/// assert_eq!(flux_tensor::parties_for(1e3, 0, 8), 1);
/// flux_tensor::set_num_threads(0);
/// ```
pub fn parties_for(one_thread_ns: f64, syncs: usize, max_parts: usize) -> usize {
    choose(one_thread_ns, syncs, available().min(max_parts))
}

/// The cost model of [`parties_for`] with at most `most` parties.
fn choose(one_thread_ns: f64, syncs: usize, most: usize) -> usize {
    let time = |p: usize| one_thread_ns / p as f64 + (p - 1) as f64 * FORK_NS + if p > 1 { syncs as f64 * SYNC_NS } else { 0.0 };
    let best = (1..=most.max(1)).min_by(|&a, &b| time(a).total_cmp(&time(b))).unwrap_or(1);
    if best > 1 && time(best) <= (1.0 - MIN_GAIN) * one_thread_ns {
        best
    } else {
        1
    }
}

/// Runs `f(0)`, …, `f(parties - 1)`, party 0 on the calling thread and the others as tasks on
/// the pool, each inside a region (so any region they start runs on one thread), and returns
/// when party 0 has returned and every other party has either returned or not started: a
/// party that starts after that skips `f`. So `f` must be written so that any subset of the
/// parties, party 0 alone included, completes the work. A panic in any party is raised here
/// once the others have stopped.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// // the parties claim the items; whoever runs takes what is left
/// let next = AtomicUsize::new(0);
/// let sum = AtomicUsize::new(0);
/// flux_tensor::run_parties(2, |_| {
///     loop {
///         let i = next.fetch_add(1, Ordering::Relaxed);
///         if i >= 100 { break }
///         sum.fetch_add(i, Ordering::Relaxed);
///     }
/// });
/// assert_eq!(sum.load(Ordering::Relaxed), 4950);
/// ```
pub fn run_parties(parties: usize, f: impl Fn(usize) + Sync) {
    if parties <= 1 {
        in_region(|| f(0));
        return;
    }
    let f: &(dyn Fn(usize) + Sync) = &f;
    // SAFETY: the reference's lifetime is erased so that pool tasks (which must be 'static) can
    // hold it. A task calls it only after `Region::enter` succeeded, and `enter` fails once
    // `close` has begun; `close` returns only when every task that entered has left. This
    // function calls `close` before returning (also when party 0 panics: `CloseOnDrop`), so
    // no call through the reference outlives the borrow it came from.
    let f: &'static (dyn Fn(usize) + Sync) = unsafe { std::mem::transmute::<&(dyn Fn(usize) + Sync), &'static (dyn Fn(usize) + Sync)>(f) };
    let region = Arc::new(Region { state: AtomicUsize::new(0), panic: Mutex::new(None) });
    for p in 1..parties {
        let r = region.clone();
        rayon::spawn(move || {
            if r.enter() {
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| in_region(|| f(p))));
                if let Err(e) = result {
                    r.panic.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(e);
                }
                r.leave();
            }
        });
    }
    {
        let _close = CloseOnDrop(&region);
        in_region(|| f(0));
    }
    let payload = region.panic.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(e) = payload {
        std::panic::resume_unwind(e);
    }
}

/// Runs `f` with this thread marked as inside a region.
fn in_region<R>(f: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            IN_REGION.set(self.0);
        }
    }
    let _reset = Reset(IN_REGION.replace(true));
    f()
}

/// The parties of one [`run_parties`] call: `state` counts the parties inside `f`, and its top
/// bit says the region is closed (no party may enter any more).
struct Region {
    state: AtomicUsize,
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

const CLOSED: usize = 1 << (usize::BITS - 1);

impl Region {
    fn enter(&self) -> bool {
        let mut s = self.state.load(Ordering::Acquire);
        loop {
            if s & CLOSED != 0 {
                return false;
            }
            match self.state.compare_exchange_weak(s, s + 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return true,
                Err(now) => s = now,
            }
        }
    }

    fn leave(&self) {
        self.state.fetch_sub(1, Ordering::Release);
    }

    /// Stops further entries and waits for the parties inside to leave. They are finishing
    /// work already claimed (party 0 is done, so little is left): spin briefly, then yield.
    fn close(&self) {
        let mut s = self.state.fetch_or(CLOSED, Ordering::AcqRel) | CLOSED;
        let mut spins = 0u32;
        while s != CLOSED {
            if spins < 1 << 10 {
                spins += 1;
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
            s = self.state.load(Ordering::Acquire);
        }
    }
}

struct CloseOnDrop<'a>(&'a Region);

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    #[test]
    fn regions_inside_a_region_run_on_one_thread() {
        let inner = Mutex::new(Vec::new());
        run_parties(2, |_| inner.lock().unwrap().push(available()));
        assert!(inner.into_inner().unwrap().iter().all(|&a| a == 1));
        assert!(!IN_REGION.get(), "the caller leaves the region when it returns");
    }

    #[test]
    fn a_panicking_party_is_raised_after_the_others_stop() {
        let started = AtomicBool::new(false);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_parties(2, |p| {
                if p == 1 {
                    started.store(true, Ordering::SeqCst);
                    panic!("party 1 fails");
                }
                // party 0 waits for party 1 (a pool task: it runs once a pool thread is free)
                while !started.load(Ordering::SeqCst) {
                    std::thread::yield_now();
                }
            })
        }));
        assert!(r.is_err());
        assert!(!IN_REGION.get());
    }

    #[test]
    fn every_item_is_done_once_whoever_runs() {
        for parties in 1..=4 {
            let next = AtomicUsize::new(0);
            let done: Vec<AtomicUsize> = (0..1000).map(|_| AtomicUsize::new(0)).collect();
            run_parties(parties, |_| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= done.len() {
                    break;
                }
                done[i].fetch_add(1, Ordering::Relaxed);
            });
            assert!(done.iter().all(|d| d.load(Ordering::Relaxed) == 1));
        }
    }

    #[test]
    fn the_cost_model_splits_only_large_work() {
        assert_eq!(choose(1e9, 0, 1), 1, "one thread allowed");
        assert_eq!(choose(10e3, 0, 8), 1, "10 µs: the fork costs more than it saves");
        // 50 steps of 5 µs each: the hand-overs eat the gain
        assert_eq!(choose(250e3, 50, 2), 1);
        assert_eq!(choose(10e6, 0, 2), 2);
        assert_eq!(choose(10e6, 50, 2), 2);
        assert_eq!(choose(1e9, 0, 8), 8);
    }
}

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
//! - **Measured as it runs.** A split the model proposes for the fused LSTM is checked against the clock: a
//!   [`Tuner`] per op family times its parallel and one-thread runs per size class and keeps to
//!   whichever is faster on this machine under its present load (a busy machine can make the
//!   hand-over to a second core cost milliseconds), trying the other again now and then.
//! - **Nobody waits for a late thread.** [`run_parties`] runs party 0 on the calling thread and
//!   hands the others to the pool; a party that starts late (its core was busy) finds the work
//!   done by the others and returns, and the caller never waits for a party that has not
//!   started. Work split this way must be claimable by any party (see the fused LSTM's
//!   `Lockstep`).
//! - **Threads linger.** A pool thread that ran a party waits a little for the next region's
//!   party before going back to the pool, where it would fall asleep and take 100-200 µs to
//!   wake (see [`LINGER`]).

use std::any::Any;
use std::cell::Cell;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

static NUM_THREADS: AtomicUsize = AtomicUsize::new(0);

/// Fixed cost of a region of `p` parties, per party beyond the first, while a pool thread
/// lingers ([`LINGER`]): handing it the task and closing the region. A region of two parties
/// costs 0.5 µs then (`gemm.rs`'s `calibrate`); 5 µs leaves a margin. With it W1's n = 128 and
/// W2's batch-64 layers (2-6M multiply-adds) run on two threads in 0.57x and 0.73x of one
/// thread's time (alternated, 4 rounds), where the cold cost kept them on one.
const WARM_FORK_NS: f64 = 5_000.0;

/// The same when no pool thread lingers: the pool's thread must be woken (100-200 µs on these
/// virtual machines), so the caller does most of the work itself, and a product split in blocks
/// packs its unsplit operand once per block. One of W2's batch-64 products after 20 ms idle took
/// 103 µs split against 77 on one thread. Measured before the threads lingered: two threads
/// took 20-40 µs more than half of one thread's time on products of 128³ to 256³. Under a heavy
/// load the hand-over took 4-8 ms; the [`Tuner`]s notice that, the model does not try to.
const COLD_FORK_NS: f64 = 25_000.0;

/// Set while a thread handed out by [`warm_up`] has not started yet.
static WARMING: AtomicBool = AtomicBool::new(false);

/// When work last found the pool asleep that a lingering thread would have split, in
/// nanoseconds since [`epoch`] (0: never).
static COLD_SEEN: AtomicU64 = AtomicU64::new(0);

/// Two such pieces of work this close together are taken for a loop, worth a thread that
/// lingers: waking one costs the caller 11.5 µs here (after 20 ms idle), which a lone product
/// should not pay.
const REPEAT: Duration = Duration::from_millis(1);

/// Cost of one hand-over between parties that move in lockstep (a step's results published,
/// the next step claimed): a few cache-line transfers and the wait for the slower party. A
/// prior of the same kind: with it a 50-step sequence is proposed for two threads from about
/// 230 µs of work (4.6 µs per step) while a thread lingers, 290 µs otherwise; W3's forward has
/// 100 µs per step.
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
/// taken when that saves at least 15% of the one-thread time. `FORK` is small while a pool
/// thread lingers after an earlier region and large when the pool sleeps. Work that only the
/// small cost would split runs on one thread then; when such work comes twice within a
/// millisecond (a loop), the second also hands the pool an empty task, so that a thread lingers
/// for the next.
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
    let most = available().min(max_parts);
    let warm = choose(one_thread_ns, syncs, most, WARM_FORK_NS);
    // (the common case, small work, decided without looking at the pool)
    if warm <= 1 || !lingering().is_empty() {
        return warm;
    }
    let cold = choose(one_thread_ns, syncs, most, COLD_FORK_NS);
    if cold < warm && repeated() {
        warm_up();
    }
    cold
}

/// Notes work that found the pool asleep; whether other such work came within [`REPEAT`].
fn repeated() -> bool {
    let now = epoch().elapsed().as_nanos().min(u64::MAX as u128) as u64 + 1;
    let last = COLD_SEEN.swap(now, Ordering::Relaxed);
    last != 0 && now.saturating_sub(last) < REPEAT.as_nanos() as u64
}

/// The process's reference instant for [`COLD_SEEN`].
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Hands the pool an empty task, unless one is on its way: the thread that runs it lingers
/// afterwards ([`linger`]), ready for the next region.
fn warm_up() {
    if !WARMING.swap(true, Ordering::AcqRel) {
        hand_out(Box::new(|| WARMING.store(false, Ordering::Release)));
    }
}

/// The cost model of [`parties_for`] with at most `most` parties, `fork_ns` per party beyond
/// the first.
fn choose(one_thread_ns: f64, syncs: usize, most: usize, fork_ns: f64) -> usize {
    let time = |p: usize| one_thread_ns / p as f64 + (p - 1) as f64 * fork_ns + if p > 1 { syncs as f64 * SYNC_NS } else { 0.0 };
    let best = (1..=most.max(1)).min_by(|&a, &b| time(a).total_cmp(&time(b))).unwrap_or(1);
    if best > 1 && time(best) <= (1.0 - MIN_GAIN) * one_thread_ns {
        best
    } else {
        1
    }
}

/// Size classes of a [`Tuner`]: predicted one-thread times from 2^10 ns (1 µs) up, doubling.
const CLASSES: usize = 26;

/// Checks a family's splits against the clock (see the module doc). Per size class (the
/// predicted one-thread time, in powers of two) it keeps the measured time of one-thread and
/// of split runs relative to the prediction (moving averages), runs whichever is faster, and
/// every so often the other (the more it loses, the rarer: about 1% of the time lost to trying,
/// more only where one choice is over 40 times slower, since the other is tried at least once in
/// 4096 calls), so a change of load or machine is noticed.
///
/// ```
/// use flux_tensor::{parties_for, Tuner};
/// static PRODUCTS: Tuner = Tuner::new();
/// let one_thread_ns = 2e6;
/// let sum = PRODUCTS.run(one_thread_ns, parties_for(one_thread_ns, 0, 8), |parties| {
///     assert!(parties >= 1);
///     (0..1000u64).sum::<u64>()
/// });
/// assert_eq!(sum, 499500);
/// ```
pub struct Tuner {
    classes: [Class; CLASSES],
}

struct Class {
    /// Measured / predicted time of one-thread and of split runs, as `f32` bits; 0: none yet.
    serial: AtomicU32,
    split: AtomicU32,
    calls: AtomicU32,
}

impl Tuner {
    /// A tuner with no measurements yet: it follows the model until it has some.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Tuner {
        Tuner { classes: [const { Class { serial: AtomicU32::new(0), split: AtomicU32::new(0), calls: AtomicU32::new(0) } }; CLASSES] }
    }

    /// Runs `f(parties)` with the count it picks: `proposed` (from [`parties_for`]) or 1, as
    /// the measurements of work of about `one_thread_ns` say; times the run when there was a
    /// choice. With `proposed <= 1` it simply runs `f(1)`.
    pub fn run<R>(&self, one_thread_ns: f64, proposed: usize, f: impl FnOnce(usize) -> R) -> R {
        if proposed <= 1 {
            return f(1);
        }
        let class = &self.classes[(one_thread_ns.max(1.0).log2() as usize).saturating_sub(10).min(CLASSES - 1)];
        let parties = class.pick(proposed);
        let start = Instant::now();
        let r = f(parties);
        class.record(parties > 1, start.elapsed().as_nanos() as f64 / one_thread_ns.max(1.0));
        r
    }
}

impl Class {
    fn pick(&self, proposed: usize) -> usize {
        let (serial, split) = (f32::from_bits(self.serial.load(Ordering::Relaxed)), f32::from_bits(self.split.load(Ordering::Relaxed)));
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        if split == 0.0 {
            return proposed;
        }
        if serial == 0.0 {
            return 1;
        }
        let (fast, slow, ratio) = if split <= serial { (proposed, 1, serial / split) } else { (1, proposed, split / serial) };
        // a try of the slower choice costs `ratio - 1` runs of the faster: one try in
        // `100·(ratio - 1)` calls keeps that to 1% of the time (it was one in `16·ratio`, up to
        // 6%: W3's forward, 1.9x slower on one thread, lost 3% of its mean time to the tries)
        let every = (100.0 * (ratio - 1.0)).clamp(16.0, 4096.0) as u32;
        if n.is_multiple_of(every) {
            slow
        } else {
            fast
        }
    }

    fn record(&self, split: bool, relative: f64) {
        let slot = if split { &self.split } else { &self.serial };
        let old = f32::from_bits(slot.load(Ordering::Relaxed));
        let x = relative as f32;
        // a slower sample moves the average an eighth of the way, an outlier (a preempted run)
        // at most by half of it; a faster one halfway, since load only ever adds time: after a
        // burst of load a few quiet runs restore the split (W3's backward, with the eighth
        // both ways, ran on one thread in 35 of 88 steps of a quiet stretch: 4.2 ms, not 2.3)
        let new = if old == 0.0 {
            x
        } else if x < old {
            old + (x - old) / 2.0
        } else {
            old + (x.min(4.0 * old) - old) / 8.0
        };
        slot.store(new.max(f32::MIN_POSITIVE).to_bits(), Ordering::Relaxed);
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
        hand_out(Box::new(move || {
            if r.enter() {
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| in_region(|| f(p))));
                if let Err(e) = result {
                    r.panic.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(e);
                }
                r.leave();
            }
        }));
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

/// A party's work handed to another thread.
type Job = Box<dyn FnOnce() + Send>;

/// How long a pool thread that has run a party waits for the next region's party before it
/// returns to the pool (OpenMP runtimes call it the block time). A pool thread that went to
/// sleep takes 100-200 µs to wake on these virtual machines (measured: a W3 forward's second
/// party started 130-200 µs after it was handed out, 5% of the forward), while regions of a
/// training step follow each other within tens of microseconds. It waits yielding its core at
/// every turn, so a thread that needs the core gets it.
const LINGER: Duration = Duration::from_micros(300);

/// Where a lingering pool thread waits: the region that takes it puts a job in.
#[derive(Default)]
struct Standby {
    job: Mutex<Option<Job>>,
    filled: AtomicBool,
}

/// The pool threads lingering now (see [`LINGER`]).
static LINGERING: Mutex<Vec<Arc<Standby>>> = Mutex::new(Vec::new());

fn lingering() -> std::sync::MutexGuard<'static, Vec<Arc<Standby>>> {
    // the list is consistent between operations, so a panic elsewhere leaves nothing broken
    LINGERING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `job` on a lingering pool thread if one waits, else as a new pool task; either way the
/// thread lingers afterwards.
fn hand_out(job: Job) {
    let standby = lingering().pop();
    match standby {
        Some(s) => {
            *s.job.lock().unwrap_or_else(|e| e.into_inner()) = Some(job);
            s.filled.store(true, Ordering::Release);
        }
        None => rayon::spawn(move || {
            job();
            linger();
        }),
    }
}

/// Waits up to [`LINGER`] for a job from [`hand_out`], runs it, and waits again; returns to the
/// pool when none came in time.
fn linger() {
    loop {
        let standby = Arc::new(Standby::default());
        lingering().push(standby.clone());
        let start = Instant::now();
        while !standby.filled.load(Ordering::Acquire) {
            std::thread::yield_now();
            if start.elapsed() > LINGER {
                let mut waiting = lingering();
                if let Some(i) = waiting.iter().position(|s| Arc::ptr_eq(s, &standby)) {
                    waiting.swap_remove(i);
                    return;
                }
                drop(waiting);
                // a region took this thread just now: its job is on the way
                while !standby.filled.load(Ordering::Acquire) {
                    std::hint::spin_loop();
                }
            }
        }
        let job = standby.job.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(job) = job {
            job();
        }
    }
}

/// Runs `f(state, item)` for every item, on as many parties as there are `states` (see
/// [`run_parties`]): each party takes the next unclaimed item, with its own state (scratch
/// buffers, a partial sum), until none is left. Items are independent pieces of one piece of
/// work (a convolution's chunks of samples, each with its own part of the output); whichever
/// parties run, every item is done exactly once. With one state the items run here in order,
/// outside any region.
pub(crate) fn claim_items<S: Send, I: Send>(states: &mut [S], items: Vec<I>, f: impl Fn(&mut S, I) + Sync) {
    if let [state] = states {
        items.into_iter().for_each(|item| f(state, item));
        return;
    }
    let count = items.len();
    let items: Vec<Mutex<Option<I>>> = items.into_iter().map(|i| Mutex::new(Some(i))).collect();
    let states: Vec<Mutex<&mut S>> = states.iter_mut().map(Mutex::new).collect();
    let next = AtomicUsize::new(0);
    run_parties(states.len(), |party| {
        // each party is run at most once, so its state's lock is never contended
        let mut state = states[party].lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= count {
                break;
            }
            let item = items[i].lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(item) = item {
                f(&mut state, item);
            }
        }
    });
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
    fn regions_back_to_back_from_many_callers_all_complete() {
        // pool threads linger between regions and are handed the next one's parties: from
        // several callers at once, every region's work is still done exactly once, and waits
        // that end just as a region takes the thread lose nothing
        let total = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for round in 0..200 {
                        let next = AtomicUsize::new(0);
                        run_parties(2, |_| {
                            while next.fetch_add(1, Ordering::Relaxed) < 10 {
                                total.fetch_add(1, Ordering::Relaxed);
                            }
                        });
                        if round % 50 == 0 {
                            // a gap longer than the linger: the thread goes back to the pool
                            std::thread::sleep(LINGER * 2);
                        }
                    }
                });
            }
        });
        assert_eq!(total.load(Ordering::Relaxed), 4 * 200 * 10);
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
    fn a_tuner_keeps_to_the_faster_choice_and_tries_the_other_now_and_then() {
        let tuner = Tuner::new();
        let class = &tuner.classes[0];
        assert_eq!(class.pick(2), 2, "no measurement: the model's proposal");
        class.record(true, 3.0);
        assert_eq!(class.pick(2), 1, "then one thread, to compare");
        class.record(false, 1.0);
        // splitting measured 3x slower: one thread, except one call in 200 (each try costs two
        // extra runs' time, 1% of the whole)
        let picks: Vec<usize> = (0..1000).map(|_| class.pick(2)).collect();
        assert_eq!(picks.iter().filter(|&&p| p == 2).count(), 5);
        // the split becomes faster (the load went away): a few runs and it takes over
        for _ in 0..4 {
            class.record(true, 0.6);
        }
        let picks: Vec<usize> = (0..160).map(|_| class.pick(2)).collect();
        assert!(picks.iter().filter(|&&p| p == 2).count() >= 150);
        // a burst of load makes the split lose for a while, two quiet split runs win it back
        for _ in 0..3 {
            class.record(true, 4.0);
        }
        // (apart from the occasional try of the other choice)
        assert!((0..36).filter(|_| class.pick(2) == 1).count() >= 34);
        class.record(true, 0.6);
        class.record(true, 0.6);
        // (now 1.13x faster: one thread is tried every 16th call, the most often there is)
        assert!((0..64).filter(|_| class.pick(2) == 2).count() >= 60);
    }

    #[test]
    fn the_cost_model_splits_only_large_work() {
        let (warm, cold) = (WARM_FORK_NS, COLD_FORK_NS);
        assert_eq!(choose(1e9, 0, 1, warm), 1, "one thread allowed");
        assert_eq!(choose(10e3, 0, 8, warm), 1, "10 µs: the fork costs more than it saves");
        // 50 steps of 4 µs each: the hand-overs eat the gain
        assert_eq!(choose(200e3, 50, 2, warm), 1);
        // a product of 17 µs (W1's n = 128) splits while a thread lingers, not from a cold pool
        assert_eq!(choose(17e3, 0, 2, warm), 2);
        assert_eq!(choose(17e3, 0, 2, cold), 1);
        assert_eq!(choose(100e3, 0, 2, cold), 2);
        assert_eq!(choose(10e6, 0, 2, cold), 2);
        assert_eq!(choose(10e6, 50, 2, cold), 2);
        assert_eq!(choose(1e9, 0, 8, cold), 8);
    }

    #[test]
    fn claimed_items_are_each_done_once_with_some_party_state() {
        for parties in 1..=3 {
            let mut states = vec![Vec::new(); parties];
            claim_items(&mut states, (0..100).collect(), |seen: &mut Vec<usize>, i| seen.push(i));
            let mut all: Vec<usize> = states.concat();
            all.sort();
            assert_eq!(all, (0..100).collect::<Vec<_>>());
        }
    }
}

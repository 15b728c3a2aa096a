//! How the fused LSTM's parties share a sequence's steps and buffers.
//!
//! [`Lockstep`]: the hidden units are cut into chunks, one per party; step `t` of a chunk
//! needs every chunk's step `t - 1`. Each party claims its own chunk of a step (so its weights
//! stay in its core's cache), then any chunk nobody has claimed yet: a party whose core is busy
//! elsewhere, or that the pool starts late, has its work done by the others instead of holding
//! them up, and one party alone completes the whole sequence. Waiting for a chunk another party
//! is computing spins for about twice the time a chunk takes, then yields the core.
//!
//! [`Shared`]: a buffer several parties write in disjoint parts and read only after the steps
//! have separated the writes from the reads; the callers state which part is theirs.

use std::cell::UnsafeCell;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The longest a waiting party spins before it starts yielding, whatever the chunks take.
const MAX_SPIN: Duration = Duration::from_micros(200);

/// `steps` steps over chunks of state `S`, run by up to `parties` parties (see the module doc).
pub(crate) struct Lockstep<S> {
    steps: usize,
    parties: usize,
    chunks: Vec<UnsafeCell<S>>,
    /// Per chunk: how many of its steps have been claimed (the step it runs next).
    claimed: Vec<AtomicUsize>,
    /// Chunk-steps completed, all chunks together: step `t` is done at `chunks·(t + 1)`.
    completed: AtomicUsize,
    /// Average nanoseconds a chunk-step takes (the spin budget of a wait).
    chunk_ns: AtomicUsize,
    /// A party panicked: the others would wait for its chunk forever, so they panic too.
    poisoned: AtomicBool,
}

// SAFETY: a chunk's state is reached only through `run`, which hands it to the one party that
// claimed the chunk for a step, and a chunk's next step is claimed only after that one
// completed (the release/acquire pair on `completed` orders the two parties' accesses).
unsafe impl<S: Send> Sync for Lockstep<S> {}

/// Poisons a lockstep if the party holding it unwinds.
struct PoisonOnPanic<'a>(&'a AtomicBool);

impl Drop for PoisonOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::Release);
        }
    }
}

impl<S> Lockstep<S> {
    pub(crate) fn new(chunks: Vec<S>, steps: usize, parties: usize) -> Lockstep<S> {
        assert!(!chunks.is_empty(), "lockstep: no chunk");
        let claimed = chunks.iter().map(|_| AtomicUsize::new(0)).collect();
        Lockstep {
            steps,
            parties: parties.max(1),
            chunks: chunks.into_iter().map(UnsafeCell::new).collect(),
            claimed,
            completed: AtomicUsize::new(0),
            chunk_ns: AtomicUsize::new(0),
            poisoned: AtomicBool::new(false),
        }
    }

    /// The chunks' states, once every party has returned.
    pub(crate) fn into_chunks(self) -> Vec<S> {
        self.chunks.into_iter().map(UnsafeCell::into_inner).collect()
    }

    /// Party `party`'s share: runs `work(state, chunk, step)` for every chunk-step it claims,
    /// steps in order, until the last step is done. Everything any party wrote during step
    /// `t` is visible to every party in step `t + 1`. Panics if another party panicked.
    pub(crate) fn run(&self, party: usize, mut work: impl FnMut(&mut S, usize, usize)) {
        let _poison = PoisonOnPanic(&self.poisoned);
        let n = self.chunks.len();
        let home = n * party.min(self.parties - 1) / self.parties..n * (party.min(self.parties - 1) + 1) / self.parties;
        let mut mine = Vec::with_capacity(n);
        let mut do_chunk = |c: usize, t: usize| {
            let start = Instant::now();
            // SAFETY: this party claimed chunk c for step t (see the impl of Sync).
            work(unsafe { &mut *self.chunks[c].get() }, c, t);
            let ns = start.elapsed().as_nanos().min(usize::MAX as u128) as usize;
            let avg = self.chunk_ns.load(Ordering::Relaxed);
            self.chunk_ns.store(if avg == 0 { ns } else { (7 * avg + ns) / 8 }, Ordering::Relaxed);
            self.completed.fetch_add(1, Ordering::Release);
        };
        let mut t = 0;
        loop {
            // wait for step t - 1 to finish; a party that fell behind skips to the open step
            t = self.wait_for(n * t) / n;
            if t >= self.steps {
                return;
            }
            // claim all of this party's chunks at once, so a party that is merely a little
            // behind never has its chunks taken
            mine.clear();
            mine.extend(home.clone().filter(|&c| self.claim(c, t)));
            for &c in &mine {
                do_chunk(c, t);
            }
            // then the chunks of parties that have not reached this step
            for c in (home.end..n).chain(0..home.start) {
                if self.claim(c, t) {
                    do_chunk(c, t);
                }
            }
            t += 1;
        }
    }

    fn claim(&self, c: usize, t: usize) -> bool {
        let slot = &self.claimed[c];
        slot.load(Ordering::Relaxed) == t && slot.compare_exchange(t, t + 1, Ordering::AcqRel, Ordering::Relaxed).is_ok()
    }

    /// Waits until `target` chunk-steps are complete and returns the count then: spins while
    /// the chunk being waited for should be about to finish, then yields the core.
    fn wait_for(&self, target: usize) -> usize {
        let mut done = self.completed.load(Ordering::Acquire);
        if done >= target {
            return done;
        }
        let budget = Duration::from_nanos(2 * self.chunk_ns.load(Ordering::Relaxed) as u64).min(MAX_SPIN);
        let start = Instant::now();
        let mut spins = 0u32;
        let mut yielding = false;
        loop {
            assert!(!self.poisoned.load(Ordering::Acquire), "fused LSTM: another worker panicked");
            if yielding {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
                spins += 1;
                // reading the clock costs about as much as 50 spins
                if spins.is_multiple_of(64) && start.elapsed() > budget {
                    yielding = true;
                }
            }
            done = self.completed.load(Ordering::Acquire);
            if done >= target {
                return done;
            }
        }
    }
}

/// A buffer shared by the threads of one fused sequence (see the module doc).
pub(crate) struct Shared<E> {
    ptr: *mut E,
    len: usize,
}

// SAFETY: access goes through `read`/`write`, whose callers keep writes disjoint and ordered
// before reads by the barrier.
unsafe impl<E: Send> Send for Shared<E> {}
// SAFETY: as above.
unsafe impl<E: Send> Sync for Shared<E> {}

impl<E> Shared<E> {
    /// Shares `v` for as long as the returned value is used (the caller keeps `v` alive and
    /// otherwise untouched meanwhile).
    pub(crate) fn new(v: &mut [E]) -> Shared<E> {
        Shared { ptr: v.as_mut_ptr(), len: v.len() }
    }

    /// # Safety
    /// No thread writes `r` while the returned slice lives.
    pub(crate) unsafe fn read(&self, r: Range<usize>) -> &[E] {
        assert!(r.start <= r.end && r.end <= self.len, "shared buffer: {r:?} out of 0..{}", self.len);
        // SAFETY: in bounds (checked); no concurrent writer (the caller's contract).
        unsafe { std::slice::from_raw_parts(self.ptr.add(r.start), r.len()) }
    }

    /// # Safety
    /// No other thread reads or writes `r` while the returned slice lives.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn write(&self, r: Range<usize>) -> &mut [E] {
        assert!(r.start <= r.end && r.end <= self.len, "shared buffer: {r:?} out of 0..{}", self.len);
        // SAFETY: in bounds (checked); exclusive (the caller's contract).
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(r.start), r.len()) }
    }
}

impl<E: crate::fused::kernels::Kern> Shared<E> {
    /// Shares the spare capacity of `v` (its first `v.capacity()` elements, uninitialised past
    /// `v.len()`): only [`Shared::put_transposed`] may touch it, and the caller sets the length
    /// once every element is written.
    pub(crate) fn spare(v: &mut Vec<E>) -> Shared<E> {
        Shared { ptr: v.as_mut_ptr(), len: v.capacity() }
    }

    /// Writes `src` (`[rows, cols]`, column-major) transposed into the buffer read as a
    /// column-major matrix with leading dimension `ld`: `buf[at + c + ld·r] = src[r + rows·c]`.
    /// The part written may interleave with other threads' parts.
    ///
    /// # Safety
    /// No other thread reads or writes those elements meanwhile.
    pub(crate) unsafe fn put_transposed(&self, at: usize, ld: usize, src: &[E], rows: usize, cols: usize) {
        if rows == 0 || cols == 0 {
            return;
        }
        assert!(src.len() >= rows * cols && cols <= ld && at + (cols - 1) + ld * (rows - 1) < self.len, "shared buffer: transposed write out of bounds");
        // SAFETY: every element written is in bounds (checked above) and this thread's alone.
        unsafe { crate::fused::kernels::transpose_into(src, rows, rows, cols, self.ptr.add(at), ld) }
    }
}

#[cfg(test)]
mod tests {
    use super::Lockstep;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Each chunk-step records the step every chunk had reached when it ran.
    fn run_with(parties: usize, started: usize, chunks: usize, steps: usize) -> Vec<Vec<usize>> {
        let lockstep = Lockstep::new((0..chunks).map(|_| Vec::new()).collect::<Vec<Vec<usize>>>(), steps, parties);
        let progress: Vec<AtomicUsize> = (0..chunks).map(|_| AtomicUsize::new(0)).collect();
        std::thread::scope(|s| {
            for p in 0..started {
                let (lockstep, progress) = (&lockstep, &progress);
                s.spawn(move || {
                    lockstep.run(p, |seen: &mut Vec<usize>, c, t| {
                        // every chunk has finished step t - 1, none has gone past step t
                        let min = progress.iter().map(|a| a.load(Ordering::SeqCst)).min().unwrap();
                        let max = progress.iter().map(|a| a.load(Ordering::SeqCst)).max().unwrap();
                        assert!(min >= t && max <= t + 1, "step {t} of chunk {c} ran beside steps {min}..={max}");
                        seen.push(t);
                        progress[c].store(t + 1, Ordering::SeqCst);
                    })
                });
            }
        });
        lockstep.into_chunks()
    }

    #[test]
    fn every_chunk_runs_every_step_once_in_order() {
        for (parties, started) in [(1, 1), (2, 2), (3, 3), (2, 1), (3, 2), (4, 4)] {
            for chunks in [1, 2, 5] {
                let seen = run_with(parties, started, chunks, 100);
                assert!(seen.iter().all(|s| *s == (0..100).collect::<Vec<_>>()), "{parties} parties, {started} started, {chunks} chunks");
            }
        }
    }

    #[test]
    fn a_panicking_party_releases_the_others() {
        // chunk 0's step 3 fails, whoever runs it: the other party waits for that step forever
        // unless the poison releases it
        let lockstep = Lockstep::new(vec![(), ()], 10, 2);
        let fail = |_: &mut (), c: usize, t: usize| assert!(c != 0 || t != 3, "chunk 0 fails at step 3");
        let results: Vec<bool> = std::thread::scope(|s| {
            let a = s.spawn(|| lockstep.run(0, fail));
            let b = s.spawn(|| lockstep.run(1, fail));
            vec![a.join().is_err(), b.join().is_err()]
        });
        assert_eq!(results, vec![true, true]);
    }
}

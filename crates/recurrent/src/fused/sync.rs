//! How the fused LSTM's threads meet once per step and share its buffers.
//!
//! [`SpinBarrier`]: a step takes tens of microseconds, about what a sleeping barrier (mutex and
//! condition variable) needs to wake a thread, so the threads spin; after a while without
//! progress (an oversubscribed machine) they yield the core instead of burning it.
//!
//! [`Shared`]: a buffer several threads write in disjoint parts and read only after a barrier
//! has separated the writes from the reads; the callers state which part is theirs.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Spins before each yield.
const SPINS: u32 = 1 << 12;

pub(crate) struct SpinBarrier {
    parties: usize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
    /// A party panicked: the others would wait for it forever, so they panic too.
    poisoned: AtomicBool,
}

/// Poisons a barrier if the thread holding it unwinds (see [`SpinBarrier::guard`]).
pub(crate) struct PoisonOnPanic<'a>(&'a SpinBarrier);

impl Drop for PoisonOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.poisoned.store(true, Ordering::Release);
        }
    }
}

impl SpinBarrier {
    pub(crate) fn new(parties: usize) -> SpinBarrier {
        SpinBarrier { parties, arrived: AtomicUsize::new(0), generation: AtomicUsize::new(0), poisoned: AtomicBool::new(false) }
    }

    /// Held by each party while it works: if that party panics, the others stop waiting for
    /// it and panic as well (instead of spinning forever).
    pub(crate) fn guard(&self) -> PoisonOnPanic<'_> {
        PoisonOnPanic(self)
    }

    /// Returns once all parties have called `wait` for this round. Everything a party wrote
    /// before its call is visible to every party after theirs. Panics if a party panicked.
    pub(crate) fn wait(&self) {
        let generation = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.parties {
            // the last to arrive opens the next round: reset first, then release the others
            self.arrived.store(0, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::Release);
            return;
        }
        let mut spins = 0;
        while self.generation.load(Ordering::Acquire) == generation {
            assert!(!self.poisoned.load(Ordering::Acquire), "fused LSTM: another worker thread panicked");
            if spins < SPINS {
                spins += 1;
                std::hint::spin_loop();
            } else {
                spins = 0;
                std::thread::yield_now();
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
    use super::SpinBarrier;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn no_party_runs_ahead_of_a_round() {
        let barrier = SpinBarrier::new(3);
        let done = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    for round in 0..200 {
                        done.fetch_add(1, Ordering::SeqCst);
                        barrier.wait();
                        // everybody finished this round's work before anybody goes on
                        assert!(done.load(Ordering::SeqCst) >= 3 * (round + 1));
                        barrier.wait();
                    }
                });
            }
        });
        assert_eq!(done.load(Ordering::SeqCst), 600);
    }

    #[test]
    fn a_panicking_party_releases_the_others() {
        let barrier = SpinBarrier::new(2);
        let results: Vec<bool> = std::thread::scope(|s| {
            let a = s.spawn(|| {
                let _g = barrier.guard();
                barrier.wait(); // round 1 with the other party
                panic!("worker fails before round 2");
            });
            let b = s.spawn(|| {
                let _g = barrier.guard();
                barrier.wait();
                barrier.wait(); // would wait forever without the poison
            });
            vec![a.join().is_err(), b.join().is_err()]
        });
        assert_eq!(results, vec![true, true]);
    }
}

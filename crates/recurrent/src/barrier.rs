//! A spinning barrier for the per-step hand-over of the fused LSTM's threads. A step takes tens
//! of microseconds, about what a sleeping barrier (mutex and condition variable) needs to wake
//! a thread, so the threads spin; after a while without progress (an oversubscribed machine)
//! they yield the core instead of burning it.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Spins before each yield.
const SPINS: u32 = 1 << 12;

pub(crate) struct SpinBarrier {
    parties: usize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
}

impl SpinBarrier {
    pub(crate) fn new(parties: usize) -> SpinBarrier {
        SpinBarrier { parties, arrived: AtomicUsize::new(0), generation: AtomicUsize::new(0) }
    }

    /// Returns once all parties have called `wait` for this round. Everything a party wrote
    /// before its call is visible to every party after theirs.
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
}

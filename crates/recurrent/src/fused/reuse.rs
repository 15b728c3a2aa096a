//! The stacked step weights of recent inference passes, kept for the next pass over the same
//! weights.
//!
//! Each forward pass stacks (and for the AVX-512 kernel packs) `[Wiᵀ; Whᵀ; bᵀ]` per chunk of
//! hidden units: for W3's LSTM(64 => 256) that is 1.3 MB written before the first step, about
//! 45 µs (2% of a 50-step forward on 2 threads, 9% of a 10-step one, 40% of one step). Inference runs sequence after sequence through
//! the same weights, so passes that record nothing keep their stacked weights here, keyed by
//! the weight tensors' storage. An entry holds clones of those tensors: their storage cannot
//! be freed and reused by other weights while the entry lives, so a match is always the same
//! values (tensors never change in place). Training replaces the weights every step, so passes
//! that record neither look here nor store.

use std::any::Any;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use flux_tensor::Tensor;

/// Entries kept (chunks of sequences, most recent first): enough for a few layers split over
/// a few threads.
const ENTRIES: usize = 8;

/// Stacked weights larger than this are not kept: an entry pins an old copy of the weights
/// besides its own, until it is evicted.
const MAX_BYTES: usize = 32 << 20;

struct Entry {
    /// `Wi`, `Wh` and `b`, whose storage identifies the values.
    weights: [Tensor; 3],
    units: Range<usize>,
    batch: usize,
    matrix: Arc<dyn Any + Send + Sync>,
}

static KEPT: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

fn kept() -> std::sync::MutexGuard<'static, Vec<Entry>> {
    // an entry is complete once pushed, so a panic elsewhere leaves nothing half-written
    KEPT.lock().unwrap_or_else(|e| e.into_inner())
}

fn same_weights(a: &[Tensor; 3], b: &[Tensor]) -> bool {
    a.iter().zip(b).all(|(x, y)| x.shares_storage(y))
}

/// The stacked weight of `units` for a batch of `batch` over `weights` (`[Wi, Wh, b]`), if a
/// pass over the same weight tensors kept it.
pub(crate) fn find<M: Any + Send + Sync>(weights: &[Tensor], units: &Range<usize>, batch: usize) -> Option<Arc<M>> {
    find_in(&kept(), weights, units, batch)
}

/// Keeps `matrix`, the stacked weight of `units` for a batch of `batch` over `weights`, of
/// `bytes` bytes, evicting the oldest entry beyond [`ENTRIES`].
pub(crate) fn keep<M: Any + Send + Sync>(weights: &[Tensor], units: Range<usize>, batch: usize, matrix: Arc<M>, bytes: usize) {
    keep_in(&mut kept(), weights, units, batch, matrix, bytes)
}

fn find_in<M: Any + Send + Sync>(kept: &[Entry], weights: &[Tensor], units: &Range<usize>, batch: usize) -> Option<Arc<M>> {
    let e = kept.iter().find(|e| e.units == *units && e.batch == batch && same_weights(&e.weights, weights))?;
    e.matrix.clone().downcast::<M>().ok()
}

fn keep_in<M: Any + Send + Sync>(kept: &mut Vec<Entry>, weights: &[Tensor], units: Range<usize>, batch: usize, matrix: Arc<M>, bytes: usize) {
    // one-element weights keep their value inline: no storage to identify them by
    if bytes > MAX_BYTES || weights.len() != 3 || !weights.iter().all(|w| w.shares_storage(w)) {
        return;
    }
    kept.retain(|e| !(e.units == units && e.batch == batch && same_weights(&e.weights, weights)));
    let weights = [weights[0].clone(), weights[1].clone(), weights[2].clone()];
    kept.insert(0, Entry { weights, units, batch, matrix });
    kept.truncate(ENTRIES);
}

#[cfg(test)]
mod tests {
    use super::*;

    // on a list of their own: the process-wide one is shared with every test running an LSTM

    #[test]
    fn found_only_for_the_same_weight_storage_units_and_batch() {
        let mut kept = Vec::new();
        let w = [Tensor::ones(&[8, 2]), Tensor::ones(&[8, 2]), Tensor::ones(&[8])];
        keep_in(&mut kept, &w, 0..2, 4, Arc::new(7usize), 64);
        assert_eq!(find_in::<usize>(&kept, &w, &(0..2), 4).as_deref(), Some(&7));
        assert!(find_in::<usize>(&kept, &w, &(0..1), 4).is_none());
        assert!(find_in::<usize>(&kept, &w, &(0..2), 8).is_none());
        assert!(find_in::<u32>(&kept, &w, &(0..2), 4).is_none());
        // equal values in other storage (new weights after an update) are not a match
        let copy = [Tensor::ones(&[8, 2]), w[1].clone(), w[2].clone()];
        assert!(find_in::<usize>(&kept, &copy, &(0..2), 4).is_none());
        // keeping the same key again replaces the entry
        keep_in(&mut kept, &w, 0..2, 4, Arc::new(8usize), 64);
        assert_eq!(kept.len(), 1);
        assert_eq!(find_in::<usize>(&kept, &w, &(0..2), 4).as_deref(), Some(&8));
    }

    #[test]
    fn the_oldest_entries_go_first() {
        let mut kept = Vec::new();
        let w = [Tensor::ones(&[8, 2]), Tensor::ones(&[8, 2]), Tensor::ones(&[8])];
        for batch in 0..ENTRIES + 2 {
            keep_in(&mut kept, &w, 0..2, batch, Arc::new(batch), 64);
        }
        assert_eq!(kept.len(), ENTRIES);
        assert!(find_in::<usize>(&kept, &w, &(0..2), 1).is_none());
        assert!(find_in::<usize>(&kept, &w, &(0..2), ENTRIES + 1).is_some());
    }

    #[test]
    fn oversized_and_inline_weights_are_not_kept() {
        let mut kept = Vec::new();
        let w = [Tensor::ones(&[8, 2]), Tensor::ones(&[8, 2]), Tensor::ones(&[8])];
        keep_in(&mut kept, &w, 0..3, 4, Arc::new(1usize), MAX_BYTES + 1);
        let tiny = [Tensor::ones(&[1]), Tensor::ones(&[1]), Tensor::ones(&[1])];
        keep_in(&mut kept, &tiny, 0..3, 4, Arc::new(1usize), 4);
        assert!(kept.is_empty());
    }
}

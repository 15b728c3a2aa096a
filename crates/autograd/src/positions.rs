//! [`Positions`]: where each node a reverse pass visits stands in its order, by node id, with no
//! hashing for the usual graph. Ids are handed out in creation order and a node's inputs exist
//! before it, so the nodes under a root have ids just below the root's: a vector indexed by
//! `root id - id` holds them. Ids further away (a graph reaching a value made long before, or
//! made on another thread meanwhile) go to a hash map.

use crate::idmap::IdMap;

/// Distances from the root's id kept in the vector (4 MiB of marks at most); beyond, the map.
const NEAR: u64 = 1 << 20;

/// A mark: 0 not seen yet, 1 seen and on no path to a target, `p + 2` at position `p`.
type Mark = u32;

/// Node marks for one pass. Between passes every mark is 0 again (only the entries a pass set
/// are reset, so a small pass costs nothing for a large buffer).
#[derive(Default)]
pub(crate) struct Positions {
    root: u64,
    near: Vec<Mark>,
    touched: Vec<u32>,
    far: IdMap<Mark>,
}

impl Positions {
    /// Starts a pass whose root has id `root`.
    pub(crate) fn start(&mut self, root: u64) {
        debug_assert!(self.touched.is_empty() && self.far.is_empty());
        self.root = root;
    }

    #[inline]
    fn mark(&self, id: u64) -> Mark {
        let d = self.root.wrapping_sub(id);
        match self.near.get(d as usize) {
            Some(&m) => m,
            None if d < NEAR => 0,
            None => self.far.get(&id).copied().unwrap_or(0),
        }
    }

    #[inline]
    fn set(&mut self, id: u64, m: Mark) {
        let d = self.root.wrapping_sub(id);
        if d < NEAR {
            let d = d as usize;
            if d >= self.near.len() {
                self.near.resize((d + 1).max(2 * self.near.len()).max(256), 0);
            }
            self.near[d] = m;
            self.touched.push(d as u32);
        } else {
            self.far.insert(id, m);
        }
    }

    /// Has the pass visited `id`?
    #[inline]
    pub(crate) fn seen(&self, id: u64) -> bool {
        self.mark(id) != 0
    }

    /// The position of `id` in the order, if it is on a path to a target.
    #[inline]
    pub(crate) fn position(&self, id: u64) -> Option<u32> {
        self.mark(id).checked_sub(2)
    }

    /// Records that `id` was visited, at `pos` in the order or (`None`) on no path.
    #[inline]
    pub(crate) fn place(&mut self, id: u64, pos: Option<u32>) {
        self.set(id, pos.map_or(1, |p| p + 2));
    }

    /// Clears the marks the pass set.
    pub(crate) fn reset(&mut self) {
        for &d in &self.touched {
            self.near[d as usize] = 0;
        }
        self.touched.clear();
        self.far.clear();
    }

    /// How many nodes the buffers have room for (to decide whether to keep them).
    pub(crate) fn capacity(&self) -> usize {
        self.near.len().max(self.touched.capacity()).max(self.far.capacity())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_and_far_ids_keep_their_marks_until_reset() {
        let mut p = Positions::default();
        p.start(5_000_000);
        let ids = [5_000_000, 4_999_000, 3_000_000, 7_000_000, 1];
        for (i, &id) in ids.iter().enumerate() {
            assert!(!p.seen(id));
            p.place(id, (i % 2 == 0).then_some(i as u32));
        }
        for (i, &id) in ids.iter().enumerate() {
            assert!(p.seen(id));
            assert_eq!(p.position(id), (i % 2 == 0).then_some(i as u32));
        }
        assert!(!p.seen(4_999_999));
        p.reset();
        p.start(10);
        assert!(ids.iter().all(|&id| !p.seen(id)));
        assert!(!(0..=10).any(|id| p.seen(id)));
    }
}

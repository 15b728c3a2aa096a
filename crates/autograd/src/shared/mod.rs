//! Every line of flux-autograd's `unsafe` code lives in this folder (the crate root denies
//! `unsafe_code` elsewhere): [`Shared`], the reference-counted pointer that a `Var` is.
//!
//! Why not `std::sync::Arc`: a recorded scalar op costs about 0.1 µs, forward, backward and
//! freeing together, and atomic read-modify-write instructions on the counts were a large part
//! of it. `Arc` keeps a second (weak) count, so freeing a node decrements two counters, and
//! the graph's iterative drop asked `Arc::get_mut` for each node, a compare-and-swap on the
//! weak count. `Shared` has no weak handles, which buys two things:
//!
//! - a handle that finds the count at 1 is the only one, and no other thread can make a new
//!   one (that takes a handle), so it frees the value with a plain load instead of a
//!   decrement: a graph built as a chain is freed without a single atomic write;
//! - uniqueness for [`Shared::get_mut`] is the same plain load.
//!
//! On W4 (10,000 recorded scalar ops and their gradient) it took the time per op from 0.119 to
//! 0.104 µs (docs/design.md, "The node pointer").
//!
//! Values that fit [`BLOCK`] (recorded nodes) live in blocks that each thread keeps for reuse
//! when they are freed (see [`Spare`]).

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::cell::RefCell;
use std::marker::PhantomData;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicUsize, Ordering};

/// The allocation of every `Shared` value that fits it (a recorded node does: a test in
/// `tests.rs` keeps it so). 120 bytes is also glibc's largest fast-bin size, for the blocks
/// that do go back to the allocator.
const BLOCK: Layout = match Layout::from_size_align(120, 8) {
    Ok(l) => l,
    Err(_) => panic!("a valid layout"),
};

/// Freed blocks a thread keeps for its next values: 2 MB at most.
const KEEP: usize = 1 << 14;

/// A thread's freed blocks. Building a graph takes one block per recorded op and freeing it
/// gives them all back; reusing them here skips the allocator, whose free lists cost a
/// recorded scalar op 10-15% once other work had grown and fragmented the heap (W4 after W1-W3
/// in one process: 0.093 µs per op, against 0.080 in a fresh one).
struct Spare(Vec<NonNull<u8>>);

impl Drop for Spare {
    fn drop(&mut self) {
        for block in self.0.drain(..) {
            // SAFETY: every block in the list came from `alloc(BLOCK)` and is no longer used.
            unsafe { dealloc(block.as_ptr(), BLOCK) };
        }
    }
}

thread_local! {
    static SPARE: RefCell<Spare> = const { RefCell::new(Spare(Vec::new())) };
}

/// A block for a value: a spare one of this thread, else a new one.
fn take_block() -> NonNull<u8> {
    // after the thread's spare list is gone (a value made while the thread exits), allocate
    let spare = SPARE.try_with(|s| s.borrow_mut().0.pop()).ok().flatten();
    spare.unwrap_or_else(|| {
        // SAFETY: BLOCK has a non-zero size.
        let p = unsafe { alloc(BLOCK) };
        NonNull::new(p).unwrap_or_else(|| handle_alloc_error(BLOCK))
    })
}

/// Keeps a block that no value uses any more for this thread's next values, or frees it.
///
/// # Safety
/// `block` came from [`take_block`] and nothing uses it any more.
unsafe fn give_block(block: NonNull<u8>) {
    let kept = SPARE
        .try_with(|s| {
            let mut s = s.borrow_mut();
            let keep = s.0.len() < KEEP;
            if keep {
                s.0.push(block);
            }
            keep
        })
        .unwrap_or(false);
    if !kept {
        // SAFETY: the block came from `alloc(BLOCK)` (the caller's contract).
        unsafe { dealloc(block.as_ptr(), BLOCK) };
    }
}

/// A shared, immutable value on the heap, freed when the last handle drops: `Arc` without weak
/// handles. `Send + Sync` when `T` is.
pub(crate) struct Shared<T> {
    ptr: NonNull<Inner<T>>,
    /// Owns an `Inner<T>` (for the drop checker and variance).
    _owns: PhantomData<Inner<T>>,
}

struct Inner<T> {
    /// Live handles.
    count: AtomicUsize,
    value: T,
}

// SAFETY: a `Shared<T>` hands out only `&T` while shared (so `T: Sync` is needed to share it
// across threads) and may drop the `T` on whichever thread lets go last (so `T: Send`), exactly
// `Arc<T>`'s bounds; the count itself is atomic.
unsafe impl<T: Send + Sync> Send for Shared<T> {}
// SAFETY: as for `Send`: `&Shared<T>` gives `&T` and can be cloned into a handle on another
// thread, which may drop the `T` there.
unsafe impl<T: Send + Sync> Sync for Shared<T> {}

impl<T> Shared<T> {
    /// Does a value of this type live in a [`BLOCK`] (else in a `Box`)? A constant per type.
    const IN_BLOCK: bool = std::mem::size_of::<Inner<T>>() <= BLOCK.size() && std::mem::align_of::<Inner<T>>() <= BLOCK.align();

    /// Moves `value` to the heap, with one handle.
    #[inline]
    pub(crate) fn new(value: T) -> Shared<T> {
        let inner = Inner { count: AtomicUsize::new(1), value };
        let ptr = if Self::IN_BLOCK {
            let block = take_block().cast::<Inner<T>>();
            // SAFETY: the block is BLOCK-sized and aligned, which fits an Inner<T> (IN_BLOCK),
            // and unused: writing initialises it.
            unsafe { block.as_ptr().write(inner) };
            block
        } else {
            NonNull::from(Box::leak(Box::new(inner)))
        };
        Shared { ptr, _owns: PhantomData }
    }

    #[inline]
    fn inner(&self) -> &Inner<T> {
        // SAFETY: the allocation lives while any handle does, and `self` is one.
        unsafe { self.ptr.as_ref() }
    }

    /// How many handles exist now (exact when the caller's is the only one: then no other
    /// thread can make a new one).
    #[inline]
    pub(crate) fn count(this: &Shared<T>) -> usize {
        this.inner().count.load(Ordering::Acquire)
    }

    /// The value, writable, if this is the only handle.
    #[inline]
    pub(crate) fn get_mut(this: &mut Shared<T>) -> Option<&mut T> {
        if Shared::count(this) == 1 {
            // SAFETY: the count is 1 and `this` is that one handle, borrowed mutably, so there
            // is no other handle or borrow of the value anywhere, and none can be made while
            // this borrow lives. The acquire load ordered the drops of earlier handles (their
            // release decrements) before this access.
            Some(unsafe { &mut (*this.ptr.as_ptr()).value })
        } else {
            None
        }
    }

    /// Are both handles to the same value?
    #[inline]
    pub(crate) fn ptr_eq(a: &Shared<T>, b: &Shared<T>) -> bool {
        a.ptr == b.ptr
    }
}

impl<T> Clone for Shared<T> {
    #[inline]
    fn clone(&self) -> Shared<T> {
        // Relaxed, as `Arc`: a new handle is made from an existing one, which keeps the value
        // alive meanwhile; nothing else is ordered by the increment.
        let before = self.inner().count.fetch_add(1, Ordering::Relaxed);
        if before > isize::MAX as usize {
            // billions of leaked handles (`mem::forget` in a loop): stop before the count wraps
            std::process::abort();
        }
        Shared { ptr: self.ptr, _owns: PhantomData }
    }
}

impl<T> Deref for Shared<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.inner().value
    }
}

impl<T> Drop for Shared<T> {
    #[inline]
    fn drop(&mut self) {
        let count = &self.inner().count;
        // The only handle frees without writing the count: no other handle exists and none can
        // be made (that takes a handle). Otherwise decrement; whoever takes it to zero frees.
        if count.load(Ordering::Acquire) != 1 {
            if count.fetch_sub(1, Ordering::Release) != 1 {
                return;
            }
            // The other handles' last uses (before their release decrements) happen before
            // the value is dropped.
            fence(Ordering::Acquire);
        }
        // SAFETY: this was the last handle (the count was 1 with `self` being it, or our
        // decrement took it to zero), so nothing else refers to the allocation, which
        // `Shared::new` made as a block (for types IN_BLOCK: the value is dropped in place,
        // then the block given back) or with `Box`.
        unsafe {
            if Self::IN_BLOCK {
                std::ptr::drop_in_place(self.ptr.as_ptr());
                give_block(self.ptr.cast::<u8>());
            } else {
                drop(Box::from_raw(self.ptr.as_ptr()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Shared;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// Counts its drops.
    struct Probe(Arc<AtomicUsize>);
    impl Drop for Probe {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn the_value_drops_once_with_the_last_handle() {
        let drops = Arc::new(AtomicUsize::new(0));
        let a = Shared::new(Probe(drops.clone()));
        let b = a.clone();
        assert_eq!(Shared::count(&a), 2);
        assert!(Shared::ptr_eq(&a, &b));
        drop(a);
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        assert_eq!(Shared::count(&b), 1);
        drop(b);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn get_mut_only_for_the_only_handle() {
        let mut a = Shared::new(1);
        let b = a.clone();
        assert!(Shared::get_mut(&mut a).is_none());
        drop(b);
        *Shared::get_mut(&mut a).unwrap() += 1;
        assert_eq!(*a, 2);
        assert!(!Shared::ptr_eq(&a, &Shared::new(2)));
    }

    #[test]
    fn freed_blocks_are_reused_and_large_values_boxed() {
        // a small value's block goes to this thread's spare list and is the next one's
        let a = Shared::new(1u64);
        let block = a.ptr.cast::<u8>();
        drop(a);
        let b = Shared::new(2u64);
        assert_eq!(b.ptr.cast::<u8>(), block);
        assert_eq!(*b, 2);
        // a value larger than a block lives in a Box, dropped once like any other
        let drops = Arc::new(AtomicUsize::new(0));
        let big = Shared::new(([7u8; 512], Probe(drops.clone())));
        const { assert!(!Shared::<([u8; 512], Probe)>::IN_BLOCK) };
        let copy = big.clone();
        drop(big);
        assert_eq!(copy.0[511], 7);
        drop(copy);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn handles_cloned_and_dropped_on_many_threads_free_exactly_once() {
        let drops = Arc::new(AtomicUsize::new(0));
        for _ in 0..50 {
            let root = Shared::new(Probe(drops.clone()));
            std::thread::scope(|s| {
                for _ in 0..4 {
                    let mine = root.clone();
                    s.spawn(move || {
                        let more: Vec<_> = (0..100).map(|_| mine.clone()).collect();
                        drop(more);
                    });
                }
            });
            assert_eq!(Shared::count(&root), 1);
        }
        assert_eq!(drops.load(Ordering::SeqCst), 50);
    }
}

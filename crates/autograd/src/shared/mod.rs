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

use std::marker::PhantomData;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicUsize, Ordering};

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
    /// Moves `value` to the heap, with one handle.
    #[inline]
    pub(crate) fn new(value: T) -> Shared<T> {
        let inner = Box::new(Inner { count: AtomicUsize::new(1), value });
        Shared { ptr: NonNull::from(Box::leak(inner)), _owns: PhantomData }
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
        // `Shared::new` made with `Box`.
        unsafe { drop(Box::from_raw(self.ptr.as_ptr())) }
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

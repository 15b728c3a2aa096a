//! A buffer filled by appending short runs copied from other slices (im2col's rows of an input
//! plane, a product's columns): the runs are copied eight elements at a time straight into
//! reserved memory, without a copy call per run, zeroing first, or a bounds check per run.
//! [`filled_in_parts`] hands out disjoint parts of one such buffer, so that several threads
//! fill it (a convolution's chunks of samples), still without zeroing it first.

use std::mem::MaybeUninit;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A `Vec` of a fixed capacity, filled front to back by [`RunBuffer::push_rows`].
pub(crate) struct RunBuffer<T: Copy> {
    buf: Vec<T>,
    /// Elements written so far (`buf`'s length stays 0 until [`RunBuffer::finish`]).
    written: usize,
}

impl<T: Copy> RunBuffer<T> {
    /// A buffer of room for `cap` elements, reusing `buf`'s allocation (its contents are dropped).
    pub(crate) fn new(mut buf: Vec<T>, cap: usize) -> RunBuffer<T> {
        buf.clear();
        buf.reserve(cap);
        RunBuffer { buf, written: 0 }
    }

    /// Appends `count` runs of `len` elements, the `r`-th starting at `src[r * stride]` (rows
    /// of an image), with one bounds check for all of them. Panics if a run is outside `src` or
    /// they do not fit in the capacity asked for.
    #[inline]
    pub(crate) fn push_rows(&mut self, src: &[T], len: usize, stride: usize, count: usize) {
        if count == 0 || len == 0 {
            return;
        }
        let dst = &mut self.buf.spare_capacity_mut()[self.written..];
        self.written += copy_rows(src, len, stride, count, dst);
    }

    /// The filled `Vec`. Panics unless exactly `len` elements were written.
    pub(crate) fn finish(mut self, len: usize) -> Vec<T> {
        assert_eq!(self.written, len, "RunBuffer: {} elements written, {len} expected", self.written);
        // SAFETY: the first `written` elements were initialised by `push_rows`, in bounds of
        // the capacity.
        unsafe { self.buf.set_len(self.written) };
        self.buf
    }
}

/// Copies `count` runs of `len` elements, the `r`-th from `src[r * stride]`, back to back to the
/// front of `dst`; returns `count·len`. Panics if a run is outside `src` or they do not fit in
/// `dst`.
#[inline]
fn copy_rows<T: Copy>(src: &[T], len: usize, stride: usize, count: usize, dst: &mut [MaybeUninit<T>]) -> usize {
    let span = (count - 1).checked_mul(stride).and_then(|s| s.checked_add(len));
    assert!(span.is_some_and(|s| s <= src.len()), "RunBuffer: {count} rows of {len} with stride {stride} overrun {} elements", src.len());
    let total = count.checked_mul(len);
    assert!(total.is_some_and(|t| t <= dst.len()), "RunBuffer: {count} rows of {len} overflow the capacity");
    // SAFETY: row r reads src[r·stride .. r·stride + len], inside `src` as the largest such
    // end, (count - 1)·stride + len, is at most src.len() (asserted); the rows are written back
    // to back at 0 .. count·len, inside `dst` (asserted), which is exclusively borrowed, so it
    // does not overlap `src`.
    unsafe {
        let mut d = dst.as_mut_ptr().cast::<T>();
        for r in 0..count {
            let row = src.as_ptr().add(r * stride);
            let mut i = 0;
            while i + 8 <= len {
                ptr::copy_nonoverlapping(row.add(i), d.add(i), 8);
                i += 8;
            }
            while i < len {
                *d.add(i) = *row.add(i);
                i += 1;
            }
            d = d.add(len);
        }
    }
    count * len
}

/// One part of a buffer made by [`filled_in_parts`], filled front to back like a
/// [`RunBuffer`]; it may move to another thread.
pub(crate) struct RunPart<'a, T: Copy> {
    dst: &'a mut [MaybeUninit<T>],
    written: usize,
    /// Elements written in all parts, counted as each part is dropped.
    total: &'a AtomicUsize,
}

impl<T: Copy> RunPart<'_, T> {
    /// Appends runs as [`RunBuffer::push_rows`] does. Panics if a run is outside `src` or they
    /// overflow the part.
    #[inline]
    pub(crate) fn push_rows(&mut self, src: &[T], len: usize, stride: usize, count: usize) {
        if count == 0 || len == 0 {
            return;
        }
        self.written += copy_rows(src, len, stride, count, &mut self.dst[self.written..]);
    }
}

impl<T: Copy> Drop for RunPart<'_, T> {
    fn drop(&mut self) {
        self.total.fetch_add(self.written, Ordering::Relaxed);
    }
}

/// A buffer of `len` elements made of consecutive parts of the given sizes: `fill` gets one
/// [`RunPart`] per part (in order) and must fill each completely, from any threads, before it
/// returns. Returns the buffer and what `fill` returned. Panics if the sizes do not add up to
/// `len` or a part is left short.
pub(crate) fn filled_in_parts<T: Copy, R>(len: usize, sizes: impl IntoIterator<Item = usize>, fill: impl FnOnce(Vec<RunPart<'_, T>>) -> R) -> (Vec<T>, R) {
    let mut buf: Vec<T> = Vec::with_capacity(len);
    let total = AtomicUsize::new(0);
    let r = {
        let mut rest = &mut buf.spare_capacity_mut()[..len];
        let mut parts = Vec::new();
        for size in sizes {
            assert!(size <= rest.len(), "filled_in_parts: the parts overrun {len} elements");
            let (part, tail) = std::mem::take(&mut rest).split_at_mut(size);
            rest = tail;
            parts.push(RunPart { dst: part, written: 0, total: &total });
        }
        assert!(rest.is_empty(), "filled_in_parts: the parts leave {} of {len} elements out", rest.len());
        fill(parts)
    };
    // each part counts what it wrote when dropped, and no part can write past its end, so a
    // total of `len` means every part was filled (a part leaked unfilled leaves the count short)
    assert_eq!(total.load(Ordering::Acquire), len, "filled_in_parts: a part was left short");
    // SAFETY: the parts cover the first `len` elements of the capacity (checked above), and
    // each was filled front to back to its end (the count), so all `len` are initialised.
    unsafe { buf.set_len(len) };
    (buf, r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_land_in_order_and_the_bounds_are_checked() {
        let src: Vec<u32> = (0..40).collect();
        // rows: 3 runs of 9 with stride 10 from 1, then one of 2
        let mut b = RunBuffer::new(Vec::new(), 29);
        b.push_rows(&src[1..], 9, 10, 3);
        b.push_rows(&src[38..], 2, 5, 1);
        let want: Vec<u32> = (1..10).chain(11..20).chain(21..30).chain(38..40).collect();
        assert_eq!(b.finish(29), want);
        assert!(std::panic::catch_unwind(|| RunBuffer::new(Vec::new(), 40).push_rows(&src[1..], 10, 10, 4)).is_err());
        // more than the capacity
        assert!(std::panic::catch_unwind(|| RunBuffer::new(Vec::new(), 4).push_rows(&src, 5, 5, 1)).is_err());
        // fewer elements than promised
        assert!(std::panic::catch_unwind(|| RunBuffer::<u32>::new(Vec::new(), 4).finish(4)).is_err());
    }

    #[test]
    fn parts_fill_one_buffer_from_several_threads_and_short_parts_panic() {
        let src: Vec<u32> = (0..10).collect();
        let (v, ()) = filled_in_parts(12, [4, 8], |parts| {
            std::thread::scope(|s| {
                for (i, mut part) in parts.into_iter().enumerate() {
                    let src = &src;
                    s.spawn(move || part.push_rows(&src[i..], 4, 5, i + 1));
                }
            })
        });
        assert_eq!(v, vec![0, 1, 2, 3, 1, 2, 3, 4, 6, 7, 8, 9]);
        assert!(std::panic::catch_unwind(|| filled_in_parts(8, [4, 4], |mut parts| parts[0].push_rows(&src, 4, 1, 1))).is_err());
        assert!(std::panic::catch_unwind(|| filled_in_parts(8, [4, 5], |_: Vec<RunPart<'_, u32>>| ())).is_err());
        assert!(std::panic::catch_unwind(|| filled_in_parts(8, [4], |_: Vec<RunPart<'_, u32>>| ())).is_err());
        // a part leaked instead of dropped leaves the count short
        assert!(std::panic::catch_unwind(|| filled_in_parts(4, [4], |parts: Vec<RunPart<'_, u32>>| {
            let mut p = parts.into_iter().next().unwrap();
            p.push_rows(&src, 4, 1, 1);
            std::mem::forget(p);
        }))
        .is_err());
    }
}

//! A buffer filled by appending short runs copied from other slices (im2col's rows of an input
//! plane, a product's columns): the runs are copied eight elements at a time straight into
//! reserved memory, without a copy call per run, zeroing first, or a bounds check per run.

use std::ptr;

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
        let span = (count - 1).checked_mul(stride).and_then(|s| s.checked_add(len));
        assert!(span.is_some_and(|s| s <= src.len()), "RunBuffer: {count} rows of {len} with stride {stride} overrun {} elements", src.len());
        let total = count.checked_mul(len);
        assert!(total.is_some_and(|t| t <= self.buf.capacity() - self.written), "RunBuffer: {count} rows of {len} overflow the capacity");
        // SAFETY: row r reads src[r·stride .. r·stride + len], inside `src` as the largest such
        // end, (count - 1)·stride + len, is at most src.len() (asserted); the rows are written
        // back to back at written .. written + count·len, inside the capacity (asserted); the
        // destination is this buffer's own allocation, so it does not overlap `src`.
        unsafe {
            let mut dst = self.buf.as_mut_ptr().add(self.written);
            for r in 0..count {
                let row = src.as_ptr().add(r * stride);
                let mut i = 0;
                while i + 8 <= len {
                    ptr::copy_nonoverlapping(row.add(i), dst.add(i), 8);
                    i += 8;
                }
                while i < len {
                    *dst.add(i) = *row.add(i);
                    i += 1;
                }
                dst = dst.add(len);
            }
        }
        self.written += count * len;
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
}

//! The fused LSTM forward when nothing will be differentiated (under `no_grad`, or with no
//! tracked input): nothing is kept for a backward pass, and the threads split the hidden units
//! instead of the batch. Each thread multiplies the whole batch by its own slice of the stacked
//! weights (a fraction of the weights per core, so they stay in that core's cache, and every
//! weight loaded serves the whole batch), runs the gate pass of its units, and writes its part of
//! `h_t` where the next step reads it. A spin barrier per step hands `h_t` over.

use std::ops::Range;

use crate::barrier::SpinBarrier;
use crate::kernels::{gates_forward, transpose, StepForward};
use crate::pool::{self, Pooled};

/// The result: the step inputs `[x_tᵀ | h_{t-1}ᵀ]` of every step (batch-major `[N, in + H]`,
/// so step `t + 1`'s holds `h_t`), and `h_T`, `c_T` (batch-major `[N, H]`).
pub(crate) struct Inferred<E: Pooled> {
    pub steps: Vec<E>,
    pub h_last: Vec<E>,
    pub c_last: Vec<E>,
}

impl<E: Pooled> Drop for Inferred<E> {
    fn drop(&mut self) {
        pool::give(std::mem::take(&mut self.steps));
    }
}

impl<E: Pooled> Inferred<E> {
    /// `h_{t+1}` for `t < T`, or `c_T` for `t = T`, feature-major `[H, N]`.
    pub(crate) fn output(&self, t: usize, input: usize, hidden: usize, batch: usize) -> Vec<E> {
        let (k, hn) = (input + hidden, hidden * batch);
        let steps = self.steps.len() / (batch * k);
        let src = if t + 1 < steps {
            &self.steps[(t + 1) * batch * k + batch * input..][..hn]
        } else if t + 1 == steps {
            &self.h_last[..]
        } else {
            &self.c_last[..]
        };
        let mut out = vec![E::ZERO; hn];
        transpose(src, batch, hidden, &mut out);
        out
    }
}

/// A buffer that several threads write in disjoint parts, and read only after a barrier has
/// separated the writes from the reads.
struct Shared<E> {
    ptr: *mut E,
    len: usize,
}

// SAFETY: access goes through `read`/`write`, whose callers keep writes disjoint and ordered
// before reads by the barrier.
unsafe impl<E: Send> Send for Shared<E> {}
// SAFETY: as above.
unsafe impl<E: Send> Sync for Shared<E> {}

impl<E> Shared<E> {
    fn new(v: &mut [E]) -> Shared<E> {
        Shared { ptr: v.as_mut_ptr(), len: v.len() }
    }

    /// # Safety
    /// No thread writes `r` while the returned slice lives.
    unsafe fn read(&self, r: Range<usize>) -> &[E] {
        assert!(r.start <= r.end && r.end <= self.len);
        // SAFETY: in bounds (checked); no concurrent writer (the caller's contract).
        unsafe { std::slice::from_raw_parts(self.ptr.add(r.start), r.len()) }
    }

    /// # Safety
    /// No other thread reads or writes `r` while the returned slice lives.
    #[allow(clippy::mut_from_ref)]
    unsafe fn write(&self, r: Range<usize>) -> &mut [E] {
        assert!(r.start <= r.end && r.end <= self.len);
        // SAFETY: in bounds (checked); exclusive (the caller's contract).
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(r.start), r.len()) }
    }
}

/// The hidden units of each thread: `parts` near-equal ranges.
fn unit_ranges(hidden: usize, parts: usize) -> Vec<Range<usize>> {
    (0..parts).map(|p| hidden * p / parts..hidden * (p + 1) / parts).filter(|r| !r.is_empty()).collect()
}

/// Runs the LSTM over `xs` (`T` steps of `[in, N]`) from `h0`, `c0` (`[H, N]`) with weights
/// `Wi: [4H, in]`, `Wh: [4H, H]`, `b: [4H]`, on `threads` threads.
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward<E: Pooled>(
    wi: &[E],
    wh: &[E],
    b: &[E],
    h0: &[E],
    c0: &[E],
    xs: &[&[E]],
    input: usize,
    hidden: usize,
    batch: usize,
    threads: usize,
) -> Inferred<E> {
    let (t_n, n, hs, is) = (xs.len(), batch, hidden, input);
    let k = is + hs;
    let mut steps = pool::take::<E>(n * k * t_n);
    for (t, x) in xs.iter().enumerate() {
        transpose(x, is, n, &mut steps[t * n * k..][..n * is]);
    }
    transpose(h0, hs, n, &mut steps[n * is..n * k]);
    let mut h_last = vec![E::ZERO; n * hs];
    let mut c_last = vec![E::ZERO; n * hs];
    let ranges = unit_ranges(hs, threads.max(1));
    let barrier = SpinBarrier::new(ranges.len());
    let (steps_buf, h_buf, c_buf) = (Shared::new(&mut steps), Shared::new(&mut h_last), Shared::new(&mut c_last));
    let run = |units: Range<usize>| {
        let hp = units.len();
        let w = E::prepare_stacked(wi, wh, is, hs, units.clone(), n);
        let bias: Vec<E> = (0..4).flat_map(|g| b[g * hs + units.start..g * hs + units.end].iter().copied()).collect();
        // this thread's c, batch-major [N, hp]
        let mut c_prev = vec![E::ZERO; n * hp];
        for (j, unit) in units.clone().enumerate() {
            for i in 0..n {
                c_prev[i + n * j] = c0[unit + hs * i];
            }
        }
        let mut c = vec![E::ZERO; n * hp];
        let mut tc = vec![E::ZERO; n * hp];
        let mut g = vec![E::ZERO; 4 * n * hp];
        for t in 0..t_n {
            // SAFETY: step t's input is complete (written before the last barrier) and nobody
            // writes it any more; this thread alone writes its units' columns of step t + 1's
            // input (or of h_T), which nobody reads before the next barrier.
            let (a, h) = unsafe {
                let a = steps_buf.read(t * n * k..(t + 1) * n * k);
                let h = if t + 1 < t_n {
                    let at = (t + 1) * n * k + n * (is + units.start);
                    steps_buf.write(at..at + n * hp)
                } else {
                    h_buf.write(n * units.start..n * units.end)
                };
                (a, h)
            };
            E::step_gemm(n, &w, a, &mut g, false);
            gates_forward(StepForward { g: &mut g, b: &bias, c_prev: &c_prev, c: &mut c, tc: &mut tc, h }, hp, n);
            std::mem::swap(&mut c_prev, &mut c);
            if t + 1 < t_n {
                barrier.wait();
            }
        }
        // SAFETY: this thread alone writes its units' columns of c_T.
        unsafe { c_buf.write(n * units.start..n * units.end) }.copy_from_slice(&c_prev);
    };
    std::thread::scope(|s| {
        let (first, others) = ranges.split_first().expect("one part at least");
        let handles: Vec<_> = others.iter().map(|r| s.spawn(|| run(r.clone()))).collect();
        run(first.clone());
        for h in handles {
            h.join().expect("fused LSTM worker panicked");
        }
    });
    Inferred { steps, h_last, c_last }
}

#[cfg(test)]
mod tests {
    #[test]
    fn units_split_evenly() {
        assert_eq!(super::unit_ranges(256, 2), vec![0..128, 128..256]);
        assert_eq!(super::unit_ranges(5, 2), vec![0..2, 2..5]);
        assert_eq!(super::unit_ranges(1, 2), vec![0..1]);
    }
}

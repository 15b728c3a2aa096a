//! The fused LSTM sequence path.
//!
//! One [`CustomOp`] (`LstmSeq`) runs a whole sequence; each step's `h_t` (and the final `c_T`)
//! is a tiny `LstmSlot` op that reads it out. The threads split the hidden units: each one
//! multiplies the whole batch by its own slice of the stacked weights `[Wiᵀ; Whᵀ]` (the four
//! gate columns of its units: a fraction of the weights per core, so they stay in that core's
//! cache, and every weight loaded serves the whole batch), runs the fused gate pass of its units
//! (`i, f, g, o`, `c_t`, `tanh(c_t)` and `h_t` in one sweep), and writes its part of `h_t` where
//! the next step reads it. A spin barrier per step hands the step over. Per step that is one
//! GEMM `[x_tᵀ | h_{t-1}ᵀ] · W_units` (the register-blocked AVX-512 kernel of
//! [`crate::fused::smallgemm`] in f32, the general GEMM otherwise) and one gate pass per thread.
//!
//! A pass that records nothing (inference) reuses the stacked weights of an earlier such pass
//! over the same weight tensors ([`reuse`]): preparing them takes about 45 µs for
//! LSTM(64 => 256), which was 40% of a one-step sequence, 9% of ten steps and 2% of fifty.
//!
//! When the result will be differentiated, the forward keeps, per thread, the activated gates,
//! `c_t` and `tanh(c_t)` of every step, and every step's input `[x_tᵀ | h_{t-1}ᵀ | 1]` (all
//! steps as one `[N·T, in + H + 1]` matrix). Backprop through time runs on the same threads and
//! units: per step a fused gate-backward pass, a barrier, and one GEMM `dz_t · Wh[:, units]`
//! giving the gradient that reaches those units of `h_{t-1}`; then one GEMM over all steps gives
//! `[dWi | dWh | db]` and one more `dX`. The slot ops hand their incoming gradients to the sequence op
//! through a side channel instead of building a dense gradient of the whole sequence, so a loss
//! over every step costs no more than one over the last.
//!
//! When an outer gradient is recording (a gradient of a gradient), the rule recomputes the
//! sequence with the differentiable step ([`crate::cells::lstm_step`]) and differentiates that,
//! so higher-order gradients stay exact.

#[cfg(target_arch = "x86_64")]
mod gates_avx512;
pub(crate) mod kernels;
mod pool;
mod reuse;
mod smallgemm;
mod sync;

use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};

use flux_autograd::{gradients, CustomOp, Var};
use flux_tensor::{DType, Tensor, TensorError};

use self::kernels::{gates_backward, gates_forward, put_columns, transpose, transpose_into, transpose_rows_into, Kern, StepForward};
use self::pool::Pooled;
use self::sync::{Lockstep, Shared};
use crate::cells::lstm_step;

/// What the forward pass keeps of a sequence. Matrices named batch-major are stored with the
/// batch index fastest (`[N, k]`): a unit's values over the batch are contiguous, so the gate
/// passes vectorise over the batch and the per-step GEMMs read their operand in the fast
/// orientation.
struct Saved<E: Pooled> {
    /// The outputs `h_1 … h_T` and `c_T`, `[H, N]` each.
    outputs: Vec<Tensor>,
    /// `[N·T, in + H + 1]` when differentiating (empty otherwise): row `b + N·t` is
    /// `[x_tᵀ | h_{t-1}ᵀ | 1]` of sample `b`, the right operand of the weight-gradient GEMM.
    steps: Vec<E>,
    /// What backward needs, per thread; empty when nothing will be differentiated.
    parts: Vec<Part<E>>,
}

/// The hidden units one thread computed, every step (batch-major).
struct Part<E: Pooled> {
    units: Range<usize>,
    /// `[N, 4·hp, T]`: the activated gates `i, f, g, o` of these `hp` units.
    gates: Vec<E>,
    /// `[N, hp, T+1]`: `c_0 … c_T`.
    cs: Vec<E>,
    /// `[N, hp, T]`: `tanh(c_1) … tanh(c_T)`.
    tcs: Vec<E>,
}

/// A chunk of the forward pass: its part, and its units' stacked weight, kept from an earlier
/// inference pass over the same weights or prepared by the party that runs its first step.
struct FwdChunk<E: Pooled> {
    part: Part<E>,
    w: Option<Arc<kernels::StepMatrix<'static, E>>>,
}

/// A chunk of backprop through time: the forward's part of these units, `Wh`'s columns of
/// them (prepared by the party that runs the first step), and the running gradients.
struct BwdChunk<'a, E: Pooled> {
    part: &'a Part<E>,
    w: Option<kernels::StepMatrix<'a, E>>,
    /// `[N, hp]` each: the gradients reaching these units of `h_t` and `c_t`.
    dh: Vec<E>,
    dc: Vec<E>,
}

/// The forward and backward passes' splits, checked against the clock.
static FORWARD: flux_tensor::Tuner = flux_tensor::Tuner::new();
static BACKWARD: flux_tensor::Tuner = flux_tensor::Tuner::new();

#[cfg(test)]
thread_local! {
    /// Tests set this to split sequences of any size into this many chunks and parties.
    pub(crate) static FORCE_SPLIT: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// The split a test forced on this thread, if any.
fn forced_split() -> Option<usize> {
    #[cfg(test)]
    {
        FORCE_SPLIT.get()
    }
    #[cfg(not(test))]
    {
        None
    }
}

/// Fixes the chunk lifetime of a backward step closure (an annotated closure parameter would
/// make it higher-ranked, and the chunk holds borrows of the weights).
fn bwd_step<'a, E: Pooled, F: Fn(&mut BwdChunk<'a, E>, usize, usize) + Sync>(f: F) -> F {
    f
}

impl<E: Pooled> Drop for Saved<E> {
    fn drop(&mut self) {
        pool::give(std::mem::take(&mut self.steps));
    }
}

impl<E: Pooled> Drop for Part<E> {
    fn drop(&mut self) {
        for v in [&mut self.gates, &mut self.cs, &mut self.tcs] {
            pool::give(std::mem::take(v));
        }
    }
}

enum SavedAny {
    F32(Saved<f32>),
    F64(Saved<f64>),
}

trait Store: Pooled {
    fn wrap(s: Saved<Self>) -> SavedAny;
    fn get(s: &SavedAny) -> &Saved<Self>;
}

impl Store for f32 {
    fn wrap(s: Saved<f32>) -> SavedAny {
        SavedAny::F32(s)
    }
    fn get(s: &SavedAny) -> &Saved<f32> {
        match s {
            SavedAny::F32(s) => s,
            _ => unreachable!("saved f64, asked f32"),
        }
    }
}

impl Store for f64 {
    fn wrap(s: Saved<f64>) -> SavedAny {
        SavedAny::F64(s)
    }
    fn get(s: &SavedAny) -> &Saved<f64> {
        match s {
            SavedAny::F64(s) => s,
            _ => unreachable!("saved f32, asked f64"),
        }
    }
}

/// The whole-sequence op. Inputs: `[Wi, Wh, b, h0, c0, x_1, …, x_T]`, all of one dtype, `h0`,
/// `c0: [H, N]`, `x_t: [in, N]`.
struct LstmSeq {
    steps: usize,
    batch: usize,
    hidden: usize,
    input: usize,
    /// Whether any `x_t` can need a gradient (decided at forward time).
    need_x: bool,
    /// Whether `h0` or `c0` can need a gradient.
    need_h0: bool,
    /// Whether the result will be differentiated (recording, and some input tracked): only then
    /// does the forward keep what backward needs.
    keep: bool,
    saved: Mutex<Option<SavedAny>>,
    /// Gradients reaching `h_1 … h_T` and `c_T` in the running backward pass.
    pending: Mutex<Vec<Option<Var>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn typed<E: Store>(t: &Tensor) -> &[E] {
    t.as_slice::<E>().expect("fused LSTM: inputs share one dtype")
}

/// `dst[row0 + b + ld·r] = src[r + rows·b]`: a feature-major `[rows, N]` matrix written as the
/// rows `row0 .. row0 + N` of a column-major matrix with leading dimension `ld`.
fn put_rows<E: Kern>(src: &[E], rows: usize, n: usize, dst: &mut [E], row0: usize, ld: usize) {
    if rows == 0 || n == 0 {
        return;
    }
    assert!(row0 + n <= ld && dst.len() > row0 + (n - 1) + ld * (rows - 1), "put_rows: destination too small");
    // SAFETY: every element written, row0 + b + ld·r, is inside `dst` (checked just above).
    unsafe { transpose_into(src, rows, rows, n, dst.as_mut_ptr().add(row0), ld) }
}

/// `dst[i + N·j] += src[units.start + j + hs·i]`: the rows `units` of a feature-major `[hs, N]`
/// gradient added to a batch-major `[N, |units|]` one.
fn add_units<E: Pooled>(src: &[E], hs: usize, units: &Range<usize>, n: usize, dst: &mut [E]) {
    for (j, unit) in units.clone().enumerate() {
        let d = &mut dst[n * j..][..n];
        for (i, v) in d.iter_mut().enumerate() {
            *v += src[unit + hs * i];
        }
    }
}

impl LstmSeq {
    /// The forward's predicted one-thread time, and the hidden units of each chunk: near-equal
    /// ranges of at least 16 units, as many as the cost model gives parties for the sequence's
    /// multiply-adds with one hand-over per step.
    fn unit_ranges<E: Kern>(&self) -> (f64, Vec<Range<usize>>) {
        let hs = self.hidden;
        let one_thread_ns = (4 * hs * (hs + self.input + 1) * self.batch * self.steps) as f64 / E::MACS_PER_NS;
        let parts = forced_split().unwrap_or_else(|| flux_tensor::parties_for(one_thread_ns, self.steps, usize::MAX)).min(hs / 16).max(1);
        (one_thread_ns, (0..parts).map(|p| hs * p / parts..hs * (p + 1) / parts).collect())
    }

    fn forward_typed<E: Store>(&self, xs: &[Tensor]) -> Saved<E> {
        let (t_n, n, hs, is, keep) = (self.steps, self.batch, self.hidden, self.input, self.keep);
        // the step inputs end in a column of ones: the stacked weight's last row is the bias
        let (k, nt, hn) = (is + hs + 1, n * t_n, hs * n);
        let (wi, wh, b) = (typed::<E>(&xs[0]), typed::<E>(&xs[1]), typed::<E>(&xs[2]));
        let (h0, c0) = (typed::<E>(&xs[3]), typed::<E>(&xs[4]));
        let x = |t: usize| typed::<E>(&xs[5 + t]);
        let mut steps = Vec::new();
        if keep {
            steps = pool::take::<E>(nt * k);
            for t in 0..t_n {
                put_rows(x(t), is, n, &mut steps, n * t, nt);
            }
            put_rows(h0, hs, n, &mut steps[nt * is..], 0, nt);
            steps[nt * (is + hs)..].fill(E::ONE);
        }
        // the input of step t, [x_tᵀ | h_{t-1}ᵀ | 1] batch-major [N, in + H + 1], in `ab[t % 2]`
        let mut ab = [pool::take::<E>(n * k), pool::take::<E>(n * k)];
        for buf in &mut ab {
            buf[n * (is + hs)..].fill(E::ONE);
        }
        transpose(x(0), is, n, &mut ab[0][..n * is]);
        transpose(h0, hs, n, &mut ab[0][n * is..n * (is + hs)]);
        let zero_h0 = h0.iter().all(|&v| v == E::ZERO);
        // the outputs h_1 … h_T, [H, N] each, written in place by the threads; c_T batch-major
        // (left uninitialised: the threads write every element before the length is set)
        let mut h_out: Vec<Vec<E>> = (0..t_n).map(|_| Vec::with_capacity(hn)).collect();
        let mut c_last = vec![E::ZERO; hn];
        let (one_thread_ns, ranges) = self.unit_ranges::<E>();
        // every step kept for backward, or one slot reused (two for c)
        let kept = if keep { t_n } else { 1 };
        let chunks: Vec<FwdChunk<E>> = ranges
            .iter()
            .map(|units| {
                let hpn = units.len() * n;
                let mut cs = pool::take::<E>(hpn * if keep { t_n + 1 } else { 2 });
                for (j, unit) in units.clone().enumerate() {
                    for i in 0..n {
                        cs[i + n * j] = c0[unit + hs * i];
                    }
                }
                let part = Part { units: units.clone(), gates: pool::take::<E>(4 * hpn * kept), cs, tcs: pool::take::<E>(hpn * kept) };
                // a pass that records nothing is inference: the weights are likely the last one's
                let w = if keep { None } else { reuse::find(&xs[..3], units, n) };
                FwdChunk { part, w }
            })
            .collect();
        let chunks_n = chunks.len();
        let lockstep = Lockstep::new(chunks, t_n, ranges.len());
        {
            let [ab0, ab1] = &mut ab;
            let ab = [Shared::new(ab0), Shared::new(ab1)];
            let (steps_buf, c_buf) = (Shared::new(&mut steps), Shared::new(&mut c_last));
            let h_buf: Vec<Shared<E>> = h_out.iter_mut().map(Shared::spare).collect();
            let step = |chunk: &mut FwdChunk<E>, c: usize, t: usize| {
                let units = chunk.part.units.clone();
                let (hp, hpn) = (units.len(), units.len() * n);
                let w = chunk.w.get_or_insert_with(|| Arc::new(E::prepare_stacked(wi, wh, b, is, hs, units.clone(), n)));
                let Part { gates, cs, tcs, .. } = &mut chunk.part;
                let (slot, c_at, c_next) = if keep { (t, t, t + 1) } else { (0, t % 2, (t + 1) % 2) };
                // SAFETY: step t's input was completed in step t - 1 and is not written again
                // before step t + 1; this chunk alone writes its units' columns of the other
                // buffer (step t + 1's input), and its share of the x columns; nobody reads them
                // before step t + 1.
                let (a, h) = unsafe { (ab[t % 2].read(0..n * k), ab[(t + 1) % 2].write(n * (is + units.start)..n * (is + units.end))) };
                let g = &mut gates[4 * hpn * slot..][..4 * hpn];
                // a zero initial state (the usual one) meets Wh in nothing: step 0 multiplies
                // only x and the bias row where it can
                if t == 0 && zero_h0 {
                    E::step_gemm_zero_state(n, w, is, a, g);
                } else {
                    E::step_gemm(n, w, a, g, false);
                }
                let (lo, hi) = cs.split_at_mut(hpn * c_at.max(c_next));
                let (c_prev, c_new) = if c_at < c_next { (&lo[hpn * c_at..][..hpn], &mut hi[..hpn]) } else { (&hi[..hpn], &mut lo[hpn * c_next..][..hpn]) };
                gates_forward(StepForward { g, c_prev, c: c_new, tc: &mut tcs[hpn * slot..][..hpn], h: &mut h[..], keep }, hp, n);
                // SAFETY: only this chunk writes its units of h_t in the outputs.
                unsafe { h_buf[t].put_transposed(units.start, hs, h, n, hp) };
                if keep && t + 1 < t_n {
                    // SAFETY: only this chunk writes its units' h columns of `steps`, and nobody
                    // reads them before the parties have returned.
                    let my_steps = unsafe { steps_buf.write(nt * (is + units.start)..nt * (is + units.end)) };
                    put_columns(h, n, hp, my_steps, n * (t + 1), nt);
                }
                if t + 1 < t_n {
                    // each chunk turns its share of x_{t+1}'s features (one chunk doing it all
                    // made that party the slower one every step, and the other wait for it)
                    let (f0, f1) = (is * c / chunks_n, is * (c + 1) / chunks_n);
                    // SAFETY: this chunk alone writes the x columns f0..f1 of step t + 1's
                    // input, read by nobody before step t + 1.
                    let dst = unsafe { ab[(t + 1) % 2].write(n * f0..n * f1) };
                    transpose_rows_into(x(t + 1), is, f0..f1, n, dst);
                }
                if t + 1 == t_n {
                    let c_final = if keep { t_n } else { t_n % 2 };
                    // SAFETY: only this chunk writes its units of c_T.
                    unsafe { c_buf.write(n * units.start..n * units.end) }.copy_from_slice(&cs[hpn * c_final..][..hpn]);
                }
            };
            // the tuner may run the chunks on fewer parties than the model proposed
            let run = |parties: usize| flux_tensor::run_parties(parties, |party| lockstep.run(party, step));
            match forced_split() {
                Some(_) => run(ranges.len()),
                None => FORWARD.run(one_thread_ns, ranges.len(), run),
            }
        }
        let chunks = lockstep.into_chunks();
        if !keep {
            for c in &chunks {
                if let Some(w) = &c.w {
                    reuse::keep(&xs[..3], c.part.units.clone(), n, w.clone(), w.bytes());
                }
            }
        }
        let parts: Vec<Part<E>> = chunks.into_iter().map(|c| c.part).collect();
        let [ab0, ab1] = ab;
        pool::give(ab0);
        pool::give(ab1);
        for h in &mut h_out {
            // SAFETY: the chunks wrote every unit of every sample of every h_t (`put_transposed`
            // of their units, all steps) and the parties have returned.
            unsafe { h.set_len(hn) };
        }
        let mut c_t = vec![E::ZERO; hn];
        transpose(&c_last, n, hs, &mut c_t);
        let shape = [hs, n];
        let mut outputs: Vec<Tensor> = h_out.into_iter().map(|h| Tensor::from_typed(h, shape[..].into())).collect();
        outputs.push(Tensor::from_typed(c_t, shape[..].into()));
        Saved { outputs, steps, parts: if keep { parts } else { Vec::new() } }
    }

    /// Backprop through time on raw tensors. `dys[t]` is the gradient reaching `h_{t+1}`
    /// (`t < T`) or `c_T` (`t = T`), each `[H, N]`.
    fn backward_typed<E: Store>(&self, inputs: &[Var], dys: &[Option<Tensor>]) -> Vec<Option<Var>> {
        let saved = lock(&self.saved);
        let s = E::get(saved.as_ref().expect("fused LSTM: backward before forward"));
        assert!(!s.parts.is_empty(), "fused LSTM: backward of a sequence that was run without recording");
        let (t_n, n, hs, is) = (self.steps, self.batch, self.hidden, self.input);
        let (k, nt, m4) = (is + hs + 1, n * t_n, 4 * hs);
        let (wi_t, wh_t) = (inputs[0].data(), inputs[1].data());
        let (wi, wh) = (typed::<E>(&wi_t), typed::<E>(&wh_t));
        let dys: Vec<Option<&[E]>> = dys.iter().map(|d| d.as_ref().map(typed::<E>)).collect();
        // dz_t, batch-major [N, 4H], in `dzt[t % 2]` (the next step's operand); and dz of every
        // step, feature-major [4H, N·T]: column b + N·t holds the gate gradients of sample b at
        // step t, row q·H + j gate q of unit j. Each step writes one contiguous block of it, and
        // the weight gradient multiplies it untransposed (the fastest orientation for the GEMM:
        // [1024, 1600]·[1600, 321] took 2.28-2.34 ms on 2 threads against 2.45-2.69 transposed;
        // before, [N·T, 4H] took 4H scattered runs a step, 8.5 µs of each backward step)
        let mut dz = pool::take::<E>(nt * m4);
        let mut dzt = [pool::take::<E>(n * m4), pool::take::<E>(n * m4)];
        let (mut dh0, mut dc0) = (vec![E::ZERO; n * hs], vec![E::ZERO; n * hs]);
        // step s < T runs time t = T - 1 - s: first the gradient reaching these units of h_t,
        // dz_{t+1} · Wh[:, units] (s > 0), then the gate-backward pass giving dz_t; step T gives
        // what reaches h_0 and c_0
        let chunks: Vec<BwdChunk<'_, E>> = s
            .parts
            .iter()
            .map(|part| {
                let hpn = part.units.len() * n;
                let mut dc = vec![E::ZERO; hpn];
                if let Some(d) = dys[t_n] {
                    add_units(d, hs, &part.units, n, &mut dc);
                }
                BwdChunk { part, w: None, dh: vec![E::ZERO; hpn], dc }
            })
            .collect();
        // per step the product dz_t · Wh and a gate pass about half as long
        let one_thread_ns = 1.5 * (m4 * hs * nt) as f64 / E::MACS_PER_NS;
        let proposed = flux_tensor::parties_for(one_thread_ns, t_n, chunks.len());
        let lockstep = Lockstep::new(chunks, t_n + 1, forced_split().unwrap_or(proposed));
        {
            let [dzt0, dzt1] = &mut dzt;
            let dzt = [Shared::new(dzt0), Shared::new(dzt1)];
            let (dz_buf, dh0_buf, dc0_buf) = (Shared::new(&mut dz), Shared::new(&mut dh0), Shared::new(&mut dc0));
            let step = bwd_step(|chunk, _c, s| {
                let p = chunk.part;
                let units = p.units.clone();
                let (hp, hpn) = (units.len(), units.len() * n);
                // Wh's columns of these units, [4H, hp]
                let w = chunk.w.get_or_insert_with(|| E::prepare(&wh[m4 * units.start..m4 * units.end], m4, hp, n));
                let (dh, dc) = (&mut chunk.dh, &mut chunk.dc);
                if s > 0 && (s < t_n || self.need_h0) {
                    let t1 = t_n - s; // the step whose dz is complete
                                      // SAFETY: dz_{t+1} was completed in the previous step and is not written
                                      // before the next one (two buffers alternate).
                    let a = unsafe { dzt[t1 % 2].read(0..n * m4) };
                    E::step_gemm(n, w, a, dh, false);
                }
                if s == t_n {
                    // SAFETY: only this chunk writes its units of dh0 and dc0.
                    unsafe {
                        dh0_buf.write(n * units.start..n * units.end).copy_from_slice(dh);
                        dc0_buf.write(n * units.start..n * units.end).copy_from_slice(dc);
                    }
                    return;
                }
                let t = t_n - 1 - s;
                if let Some(d) = dys[t] {
                    add_units(d, hs, &units, n, dh);
                }
                // SAFETY: this chunk alone writes its units' columns of dz_t (gate q: columns
                // q·H + units, disjoint for the four gates); the others read dz_t only in the
                // next step.
                let mut d: [&mut [E]; 4] = std::array::from_fn(|q| unsafe { dzt[t % 2].write(n * (q * hs + units.start)..n * (q * hs + units.end)) });
                gates_backward(
                    &p.gates[4 * hpn * t..][..4 * hpn],
                    &p.cs[hpn * t..][..hpn],
                    &p.tcs[hpn * t..][..hpn],
                    dh,
                    dc,
                    d.each_mut().map(|s| &mut **s),
                    hp,
                    n,
                );
                for (q, src) in d.iter().enumerate() {
                    // SAFETY: this chunk alone writes its units' rows of dz (q·H + units) in
                    // step t's columns; nobody reads dz before the parties have returned.
                    unsafe { dz_buf.put_transposed(q * hs + units.start + m4 * n * t, m4, src, n, hp) };
                }
            });
            let run = |parties: usize| flux_tensor::run_parties(parties, |party| lockstep.run(party, step));
            match forced_split() {
                Some(parties) => run(parties),
                None => BACKWARD.run(one_thread_ns, proposed, run),
            }
        }
        drop(lockstep);
        let var = |v: Vec<E>, shape: &[usize]| Some(Var::constant(Tensor::from_typed(v, shape.into())));
        // [dWi | dWh | db] = dz · steps ([4H, in + H + 1]), then split by columns: its three
        // outputs are contiguous column blocks, copied out. (Before: the transpose stepsᵀ · dz,
        // each output transposed out of its rows; W3's train step, alternated, 8 rounds on 2
        // threads: 8.38 -> 7.86 ms, and 0.98x on 1.)
        let mut dw_all = pool::take::<E>(m4 * k);
        E::gemm(m4, k, nt, &dz, false, &s.steps, false, &mut dw_all, false);
        let (dw, dwh, db) = (dw_all[..m4 * is].to_vec(), dw_all[m4 * is..m4 * (is + hs)].to_vec(), dw_all[m4 * (is + hs)..].to_vec());
        pool::give(dw_all);
        let mut out = vec![var(dw, &[m4, is]), var(dwh, &[m4, hs]), var(db, &[m4])];
        if self.need_h0 {
            let mut t = vec![E::ZERO; n * hs];
            transpose(&dh0, n, hs, &mut t);
            out.push(var(t, &[hs, n]));
            let mut t = vec![E::ZERO; n * hs];
            transpose(&dc0, n, hs, &mut t);
            out.push(var(t, &[hs, n]));
        } else {
            out.extend([None, None]);
        }
        if self.need_x {
            // dX = Wiᵀ · dz, [in, N·T]: step t's columns are N·t .. N·(t+1)
            let mut dx = pool::take::<E>(is * nt);
            E::gemm(is, nt, m4, wi, true, &dz, false, &mut dx, false);
            out.extend(dx.chunks_exact(is * n).map(|c| var(c.to_vec(), &[is, n])));
            pool::give(dx);
        } else {
            out.extend((0..t_n).map(|_| None));
        }
        let [dzt0, dzt1] = dzt;
        for v in [dz, dzt0, dzt1] {
            pool::give(v);
        }
        out
    }

    /// Recomputes the sequence with differentiable ops and differentiates it: the rule used
    /// while an outer gradient records, so that gradients of gradients are exact.
    fn backward_unrolled(&self, inputs: &[Var], dys: &[Option<Var>]) -> Vec<Option<Var>> {
        let t_n = self.steps;
        let f = |v: &[Var]| -> Var {
            let (mut h, mut c) = (v[3].clone(), v[4].clone());
            let mut terms = Vec::new();
            for t in 0..t_n {
                (h, c) = lstm_step(&v[0], &v[1], &v[2], &h, &c, &v[5 + t]);
                if let Some(d) = &dys[t] {
                    terms.push((&h * d).sum());
                }
            }
            if let Some(d) = &dys[t_n] {
                terms.push((&c * d).sum());
            }
            terms.into_iter().sum()
        };
        gradients(f, inputs).into_iter().map(Some).collect()
    }
}

impl CustomOp for LstmSeq {
    fn name(&self) -> &str {
        "lstm_sequence"
    }

    fn forward(&self, xs: &[Tensor]) -> Result<Tensor, TensorError> {
        let dtype = xs[0].dtype();
        let saved = match dtype {
            DType::F32 => f32::wrap(self.forward_typed::<f32>(xs)),
            DType::F64 => f64::wrap(self.forward_typed::<f64>(xs)),
        };
        *lock(&self.saved) = Some(saved);
        Ok(Tensor::full_of(&[1], 0.0, dtype))
    }

    fn backward(&self, inputs: &[Var], _output: &Var, _g: &Var) -> Vec<Option<Var>> {
        let dys = std::mem::replace(&mut *lock(&self.pending), vec![None; self.steps + 1]);
        if dys.iter().all(Option::is_none) {
            return vec![None; inputs.len()];
        }
        let nested = inputs.iter().any(Var::is_tracked) || dys.iter().flatten().any(Var::is_tracked);
        if nested {
            return self.backward_unrolled(inputs, &dys);
        }
        let dtype = inputs[0].dtype();
        let raw: Vec<Option<Tensor>> = dys.iter().map(|d| d.as_ref().map(|d| d.data().to_dtype(dtype))).collect();
        match dtype {
            DType::F32 => self.backward_typed::<f32>(inputs, &raw),
            DType::F64 => self.backward_typed::<f64>(inputs, &raw),
        }
    }
}

/// One output of the sequence: `h_{slot+1}`, or `c_T` for `slot = T`.
struct LstmSlot {
    seq: Arc<LstmSeq>,
    slot: usize,
}

impl LstmSlot {
    fn value<E: Store>(&self) -> Tensor {
        let saved = lock(&self.seq.saved);
        E::get(saved.as_ref().expect("fused LSTM: slot before forward")).outputs[self.slot].clone()
    }
}

impl CustomOp for LstmSlot {
    fn name(&self) -> &str {
        "lstm_sequence_output"
    }

    fn forward(&self, xs: &[Tensor]) -> Result<Tensor, TensorError> {
        Ok(match xs[0].dtype() {
            DType::F32 => self.value::<f32>(),
            DType::F64 => self.value::<f64>(),
        })
    }

    fn backward(&self, inputs: &[Var], _output: &Var, g: &Var) -> Vec<Option<Var>> {
        let mut pending = lock(&self.seq.pending);
        let slot = &mut pending[self.slot];
        *slot = Some(match slot.take() {
            Some(prev) => prev + g,
            None => g.clone(),
        });
        // the token's gradient is a placeholder: the real one travels through `pending`
        vec![Some(Var::constant(inputs[0].data().zeros_like()))]
    }
}

/// Runs an LSTM over `xs` from `(h0, c0)` with the fused kernels. `None` when the shapes do not
/// fit the fused path (inputs of rank > 2, steps of different shapes, a state that does not
/// match the batch): the caller then steps one at a time.
pub(crate) fn lstm_seq(wi: &Var, wh: &Var, b: &Var, h0: &Var, c0: &Var, xs: &[Var]) -> Option<((Var, Var), Vec<Var>)> {
    // forward mode (`jvp`) cannot see through the fused ops, which hand gradients to each other
    // outside the graph: the caller's step-by-step cell, made of ordinary ops, carries tangents
    if flux_autograd::in_jvp() {
        return None;
    }
    let x0 = xs.first()?.shape();
    if x0.rank() == 0 || x0.rank() > 2 || xs.iter().any(|x| x.shape() != x0) {
        return None;
    }
    // The kernels index by these sizes: weights whose shapes disagree (a parameter replaced
    // with `set_data_unchecked`, say) take the step-by-step path, whose ops report the shapes.
    let (swi, swh, sb) = (wi.shape(), wh.shape(), b.shape());
    if swi.rank() != 2 || swh.rank() != 2 || sb.rank() != 1 {
        return None;
    }
    let (hidden, input) = (swh[1], swi[1]);
    if x0[0] != input || swi[0] != 4 * hidden || swh[0] != 4 * hidden || sb[0] != 4 * hidden {
        return None;
    }
    let unbatched = x0.rank() == 1;
    let batch = if unbatched { 1 } else { x0[1] };
    let fit = |s: &Var| -> Option<Var> {
        let sh = s.shape();
        match sh.rank() {
            1 if sh[0] == hidden && batch == 1 => Some(s.reshape(&[hidden, 1])),
            1 if sh[0] == hidden => Some(s.reshape(&[hidden, 1]).broadcast_to(&[hidden, batch])),
            2 if sh[0] == hidden && sh[1] == batch => Some(s.clone()),
            _ => None,
        }
    };
    let (h0, c0) = (fit(h0)?, fit(c0)?);
    let mut all = vec![wi.clone(), wh.clone(), b.clone(), h0, c0];
    all.extend(xs.iter().map(|x| if unbatched { x.reshape(&[input, 1]) } else { x.clone() }));
    let dtype = all.iter().map(Var::dtype).fold(DType::F32, DType::promote);
    let all: Vec<Var> = all.iter().map(|v| v.to_dtype(dtype)).collect();
    let op = Arc::new(LstmSeq {
        steps: xs.len(),
        batch,
        hidden,
        input,
        need_x: all[5..].iter().any(Var::is_tracked),
        need_h0: all[3].is_tracked() || all[4].is_tracked(),
        keep: flux_autograd::is_recording() && all.iter().any(Var::is_tracked),
        saved: Mutex::new(None),
        pending: Mutex::new(vec![None; xs.len() + 1]),
    });
    let token = Var::custom(op.clone(), &all).ok()?;
    let outs: Vec<Var> = (0..=xs.len())
        .map(|slot| {
            let v = Var::custom(Arc::new(LstmSlot { seq: op.clone(), slot }), std::slice::from_ref(&token)).expect("slot of a fused LSTM");
            if unbatched {
                v.reshape(&[hidden])
            } else {
                v
            }
        })
        .collect();
    let mut outs = outs;
    let c = outs.pop().expect("final cell state");
    let h = outs.last().expect("one step at least").clone();
    Some(((h, c), outs))
}

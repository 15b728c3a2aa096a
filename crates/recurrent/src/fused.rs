//! The fused LSTM sequence path.
//!
//! One [`CustomOp`] (`LstmSeq`) runs a whole sequence. Per step it does one GEMM,
//! `[x_tᵀ | h_{t-1}ᵀ] · [Wiᵀ; Whᵀ]` (the stacked weights prepared once per sequence: packed for
//! the register-blocked AVX-512 kernel of [`crate::smallgemm`] in f32, the general GEMM
//! otherwise), and one fused gate pass computing `i, f, g, o`, `c_t`, `tanh(c_t)`, `h_t`. The
//! batch is split into two parts on two threads when it is large enough (the sequences of a
//! batch are independent, so the threads never wait on each other). It keeps the activated
//! gates, `c_t`, `tanh(c_t)` and `h_t` of every step for the backward pass, and returns a
//! one-element token. Each step's `h_t` (and the final `c_T`) is a tiny `LstmSlot` op on that
//! token which copies the value out; its backward hands the incoming gradient to the sequence
//! op through a side channel instead of building a dense gradient of the whole sequence, so a
//! loss over every step costs no more than one over the last.
//!
//! The backward of `LstmSeq` runs backprop through time with raw kernels (again one thread per
//! batch part): per step a fused gate-backward pass and one GEMM (`dz_t · Wh`), then three GEMMs
//! over all steps at once (`dWh`, `dWi`, `dx`). When an outer gradient is recording (a gradient
//! of a gradient), the inputs or incoming gradients are tracked; the rule then recomputes the
//! sequence with the differentiable step ([`crate::cells::lstm_step`]) and differentiates that,
//! so higher-order gradients stay exact.

use std::sync::{Arc, Mutex, MutexGuard};

use flux_autograd::{gradients, CustomOp, Var};
use flux_tensor::{DType, Tensor, TensorError};

use crate::cells::lstm_step;
use crate::inference::{self, Inferred};
use crate::kernels::{gates_backward, gates_forward, transpose, StepForward, StepMatrix};
use crate::pool::{self, Pooled};

/// What the forward pass keeps for backward, per element type. The batch is split into parts
/// that run on their own threads (the sequences of a batch are independent); each part keeps
/// its own "batch-major" matrices (stored transposed, `[n, k]` with the batch index fastest:
/// the per-step GEMMs are faster in that orientation and the gate passes vectorise over the
/// batch).
struct Saved<E: Pooled> {
    /// `[in, N*T]`: the inputs side by side (as given).
    x: Vec<E>,
    /// `[H, N, T+1]`: `h_0 … h_T` (as returned).
    hs: Vec<E>,
    /// The batch parts, in batch order.
    parts: Vec<Part<E>>,
}

/// The batch columns `n0 .. n0 + n` of a sequence.
struct Part<E: Pooled> {
    n0: usize,
    n: usize,
    /// `[n, 4H, T]`: activated gates `i, f, g, o` of every step.
    gates: Vec<E>,
    /// `[n, H, T+1]`: `c_0 … c_T`.
    cs: Vec<E>,
    /// `[n, H, T]`: `tanh(c_1) … tanh(c_T)`.
    tcs: Vec<E>,
}

impl<E: Pooled> Drop for Saved<E> {
    fn drop(&mut self) {
        pool::give(std::mem::take(&mut self.x));
        pool::give(std::mem::take(&mut self.hs));
    }
}

impl<E: Pooled> Drop for Part<E> {
    fn drop(&mut self) {
        for v in [&mut self.gates, &mut self.cs, &mut self.tcs] {
            pool::give(std::mem::take(v));
        }
    }
}

/// Splits `buf` into `slots` equal slots and each slot into consecutive pieces of
/// `sizes[i]` elements: piece `i` of every slot goes to list `i`.
fn split_slots<'a, E>(buf: &'a mut [E], slot: usize, sizes: &[usize]) -> Vec<Vec<&'a mut [E]>> {
    let mut lists: Vec<Vec<&'a mut [E]>> = sizes.iter().map(|_| Vec::new()).collect();
    for mut rest in buf.chunks_exact_mut(slot) {
        for (list, &size) in lists.iter_mut().zip(sizes) {
            let (piece, tail) = rest.split_at_mut(size);
            list.push(piece);
            rest = tail;
        }
    }
    lists
}

/// What a sequence keeps: everything backward needs, or (when nothing will be differentiated)
/// only what its outputs are read from.
enum Kept<E: Pooled> {
    Train(Saved<E>),
    Infer(Inferred<E>),
}

impl<E: Pooled> Kept<E> {
    fn train(&self) -> &Saved<E> {
        match self {
            Kept::Train(s) => s,
            Kept::Infer(_) => unreachable!("fused LSTM: backward of a sequence run without recording"),
        }
    }
}

enum SavedAny {
    F32(Kept<f32>),
    F64(Kept<f64>),
}

trait Store: Pooled {
    fn wrap(s: Kept<Self>) -> SavedAny;
    fn get(s: &SavedAny) -> &Kept<Self>;
}

impl Store for f32 {
    fn wrap(s: Kept<f32>) -> SavedAny {
        SavedAny::F32(s)
    }
    fn get(s: &SavedAny) -> &Kept<f32> {
        match s {
            SavedAny::F32(s) => s,
            _ => unreachable!("saved f64, asked f32"),
        }
    }
}

impl Store for f64 {
    fn wrap(s: Kept<f64>) -> SavedAny {
        SavedAny::F64(s)
    }
    fn get(s: &SavedAny) -> &Kept<f64> {
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
    /// Nothing will be differentiated (no tracked input, or not recording): the forward keeps
    /// nothing for backward and splits the hidden units over the threads ([`crate::inference`]).
    inference: bool,
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

impl LstmSeq {
    /// How the batch is split over threads: `(first column, width)` per part. Two parts when
    /// more than one thread may run, the batch is at least 32 and the work pays for a thread.
    fn parts(&self) -> Vec<(usize, usize)> {
        let (n, hs) = (self.batch, self.hidden);
        let work = 4 * hs * (hs + self.input) * n * self.steps;
        if flux_tensor::num_threads() < 2 || n < 32 || work < 1 << 24 {
            return vec![(0, n)];
        }
        let first = (n / 2).div_ceil(16) * 16;
        vec![(0, first), (first, n - first)]
    }

    fn forward_kept<E: Store>(&self, xs: &[Tensor]) -> Kept<E> {
        if self.inference {
            let x: Vec<&[E]> = xs[5..].iter().map(typed::<E>).collect();
            let (wi, wh, b, h0, c0) = (typed::<E>(&xs[0]), typed::<E>(&xs[1]), typed::<E>(&xs[2]), typed::<E>(&xs[3]), typed::<E>(&xs[4]));
            let threads = if self.parts().len() > 1 && E::packs(self.batch) { flux_tensor::num_threads() } else { 1 };
            return Kept::Infer(inference::forward(wi, wh, b, h0, c0, &x, self.input, self.hidden, self.batch, threads));
        }
        Kept::Train(self.forward_typed(xs))
    }

    fn forward_typed<E: Store>(&self, xs: &[Tensor]) -> Saved<E> {
        let (t_n, n, hs, is) = (self.steps, self.batch, self.hidden, self.input);
        let (wi, wh, b) = (typed::<E>(&xs[0]), typed::<E>(&xs[1]), typed::<E>(&xs[2]));
        let (nt, hn) = (n * t_n, hs * n);
        let mut x = pool::take::<E>(is * nt);
        for (t, xt) in xs[5..].iter().enumerate() {
            x[t * is * n..(t + 1) * is * n].copy_from_slice(typed::<E>(xt));
        }
        let ranges = self.parts();
        // [Wiᵀ; Whᵀ] stacked, [in + H, 4H]: one GEMM per step computes both projections;
        // prepared once (a second time only if the parts need different forms)
        let w0 = E::prepare_stacked(wi, wh, is, hs, 0..hs, ranges[0].1);
        let w1 = ranges.get(1).filter(|r| E::packs(r.1) != E::packs(ranges[0].1)).map(|r| E::prepare_stacked(wi, wh, is, hs, 0..hs, r.1));
        let mut h_all = pool::take::<E>(hn * (t_n + 1));
        h_all[..hn].copy_from_slice(typed::<E>(&xs[3]));
        let sizes: Vec<usize> = ranges.iter().map(|&(_, w)| hs * w).collect();
        let views = split_slots(&mut h_all[hn..], hn, &sizes);
        let (h0, c0) = (typed::<E>(&xs[3]), typed::<E>(&xs[4]));
        let run = |(n0, w): (usize, usize), h_out: Vec<&mut [E]>| {
            let wm = if n0 > 0 { w1.as_ref().unwrap_or(&w0) } else { &w0 };
            self.part_forward(wm, b, &x, h0, c0, n0, w, h_out)
        };
        let parts = std::thread::scope(|sc| {
            let mut views = views.into_iter();
            let first = views.next().expect("one part at least");
            let others: Vec<_> = ranges[1..].iter().zip(views).map(|(&r, v)| sc.spawn(move || run(r, v))).collect();
            let mut parts = vec![run(ranges[0], first)];
            parts.extend(others.into_iter().map(|h| h.join().expect("fused LSTM worker panicked")));
            parts
        });
        Saved { x, hs: h_all, parts }
    }

    /// The forward recurrence over batch columns `n0 .. n0 + n`, writing `h_t` into `h_out[t-1]`.
    fn part_forward<E: Store>(&self, w: &StepMatrix<'_, E>, b: &[E], x: &[E], h0: &[E], c0: &[E], n0: usize, n: usize, mut h_out: Vec<&mut [E]>) -> Part<E> {
        let (t_n, nb, hs, is) = (self.steps, self.batch, self.hidden, self.input);
        let (hn, k) = (hs * n, is + hs);
        let mut gates = pool::take::<E>(4 * hn * t_n);
        let mut cs = pool::take::<E>(hn * (t_n + 1));
        let mut tcs = pool::take::<E>(hn * t_n);
        transpose(&c0[hs * n0..hs * (n0 + n)], hs, n, &mut cs[..hn]);
        // [x_tᵀ | h_{t-1}ᵀ], [n, in + H], for this step and the next
        let mut cur = pool::take::<E>(n * k);
        let mut next = pool::take::<E>(n * k);
        transpose(&h0[hs * n0..hs * (n0 + n)], hs, n, &mut cur[n * is..]);
        for t in 0..t_n {
            transpose(&x[is * (nb * t + n0)..][..is * n], is, n, &mut cur[..n * is]);
            let g = &mut gates[t * 4 * hn..(t + 1) * 4 * hn];
            E::step_gemm(n, w, &cur, g, false);
            let (c_prev, c_next) = cs[t * hn..(t + 2) * hn].split_at_mut(hn);
            let step = StepForward { g, b, c_prev, c: c_next, tc: &mut tcs[t * hn..(t + 1) * hn], h: &mut next[n * is..] };
            gates_forward(step, hs, n);
            transpose(&next[n * is..], n, hs, h_out[t]);
            std::mem::swap(&mut cur, &mut next);
        }
        pool::give(cur);
        pool::give(next);
        h_out.clear();
        Part { n0, n, gates, cs, tcs }
    }

    /// Backprop through time on raw tensors. `dys[t]` is the gradient reaching `h_{t+1}`
    /// (`t < T`) or `c_T` (`t = T`), each `[H, N]`.
    fn backward_typed<E: Store>(&self, inputs: &[Var], dys: &[Option<Tensor>]) -> Vec<Option<Var>> {
        let saved = lock(&self.saved);
        let s = E::get(saved.as_ref().expect("fused LSTM: backward before forward")).train();
        let (t_n, n, hs, is) = (self.steps, self.batch, self.hidden, self.input);
        let (wi_t, wh_t) = (inputs[0].data(), inputs[1].data());
        let (wi, wh) = (typed::<E>(&wi_t), typed::<E>(&wh_t));
        let (hn, nt) = (hs * n, n * t_n);
        let dys: Vec<Option<&[E]>> = dys.iter().map(|d| d.as_ref().map(typed::<E>)).collect();
        // dz of every step, [4H, N*T] (step t in columns N*t..N*(t+1)), and dh0, dc0 [H, N]
        let mut dz = pool::take::<E>(4 * hs * nt);
        let mut dh0 = vec![E::ZERO; hn];
        let mut dc0 = vec![E::ZERO; hn];
        {
            let sizes: Vec<usize> = s.parts.iter().map(|p| hs * p.n).collect();
            let dz_sizes: Vec<usize> = sizes.iter().map(|s| 4 * s).collect();
            let dz_views = split_slots(&mut dz, 4 * hn, &dz_sizes);
            let dh_views = split_slots(&mut dh0, hn, &sizes);
            let dc_views = split_slots(&mut dc0, hn, &sizes);
            let mut jobs =
                s.parts.iter().zip(dz_views).zip(dh_views.into_iter().zip(dc_views)).map(|((p, z), (mut h, mut c))| (p, z, h.remove(0), c.remove(0)));
            let run = |(p, z, h, c): (&Part<E>, Vec<&mut [E]>, &mut [E], &mut [E])| self.part_backward(p, wh, &dys, z, h, c);
            std::thread::scope(|sc| {
                let first = jobs.next().expect("one part at least");
                let others: Vec<_> = jobs.map(|j| sc.spawn(move || run(j))).collect();
                run(first);
                for h in others {
                    h.join().expect("fused LSTM worker panicked");
                }
            });
        }
        let var = |v: Vec<E>, shape: &[usize]| Some(Var::constant(Tensor::from_typed(v, shape.into())));
        // dWh = dz · [h_0 … h_{T-1}]ᵀ, dWi = dz · Xᵀ, db = row sums of dz
        let mut dwh = vec![E::ZERO; 4 * hs * hs];
        E::gemm(4 * hs, hs, nt, &dz, false, &s.hs[..hn * t_n], true, &mut dwh, false);
        let mut dwi = vec![E::ZERO; 4 * hs * is];
        E::gemm(4 * hs, is, nt, &dz, false, &s.x, true, &mut dwi, false);
        let mut db = vec![E::ZERO; 4 * hs];
        for col in dz.chunks_exact(4 * hs) {
            for (a, &b) in db.iter_mut().zip(col) {
                *a += b;
            }
        }
        let mut out = vec![var(dwi, &[4 * hs, is]), var(dwh, &[4 * hs, hs]), var(db, &[4 * hs])];
        if self.need_h0 {
            out.push(var(dh0, &[hs, n]));
            out.push(var(dc0, &[hs, n]));
        } else {
            out.extend([None, None]);
        }
        if self.need_x {
            // dX = Wiᵀ · dz, with Wiᵀ copied so that no operand is read transposed
            let mut wit = pool::take::<E>(4 * hs * is);
            transpose(wi, 4 * hs, is, &mut wit);
            let mut dx = pool::take::<E>(is * nt);
            E::gemm(is, nt, 4 * hs, &wit, false, &dz, false, &mut dx, false);
            out.extend(dx.chunks_exact(is * n).map(|c| var(c.to_vec(), &[is, n])));
            pool::give(wit);
            pool::give(dx);
        } else {
            out.extend((0..t_n).map(|_| None));
        }
        pool::give(dz);
        out
    }

    /// Backprop through time over one batch part: writes its columns of `dz` (one slice per
    /// step) and of `dh0`, `dc0`.
    fn part_backward<E: Store>(&self, p: &Part<E>, wh: &[E], dys: &[Option<&[E]>], mut dz: Vec<&mut [E]>, dh0: &mut [E], dc0: &mut [E]) {
        let (t_n, hs, n, n0) = (self.steps, self.hidden, p.n, p.n0);
        let hn = hs * n;
        let mut dz_t = pool::take::<E>(4 * hn);
        let mut dh = pool::zeros::<E>(hn);
        let mut dc = pool::zeros::<E>(hn);
        if let Some(d) = dys[t_n] {
            transpose(&d[hs * n0..hs * (n0 + n)], hs, n, &mut dc);
        }
        let w = E::prepare(wh, 4 * hs, hs, n);
        for t in (0..t_n).rev() {
            if let Some(d) = dys[t] {
                let d = &d[hs * n0..hs * (n0 + n)];
                for j in 0..hs {
                    for k in 0..n {
                        dh[k + n * j] += d[j + hs * k];
                    }
                }
            }
            gates_backward(&p.gates[t * 4 * hn..(t + 1) * 4 * hn], &p.cs[t * hn..(t + 1) * hn], &p.tcs[t * hn..(t + 1) * hn], &dh, &mut dc, &mut dz_t, hs, n);
            transpose(&dz_t, n, 4 * hs, dz[t]);
            if t > 0 || self.need_h0 {
                // [n, H] = dz_t · Wh
                E::step_gemm(n, &w, &dz_t, &mut dh, false);
            }
        }
        if self.need_h0 {
            transpose(&dh, n, hs, dh0);
            transpose(&dc, n, hs, dc0);
        }
        dz.clear();
        for v in [dz_t, dh, dc] {
            pool::give(v);
        }
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
            DType::F32 => f32::wrap(self.forward_kept::<f32>(xs)),
            DType::F64 => f64::wrap(self.forward_kept::<f64>(xs)),
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
        let (t_n, hs, n, is) = (self.seq.steps, self.seq.hidden, self.seq.batch, self.seq.input);
        let hn = hs * n;
        let v = match E::get(saved.as_ref().expect("fused LSTM: slot before forward")) {
            Kept::Infer(inferred) => inferred.output(self.slot, is, hs, n),
            Kept::Train(s) if self.slot < t_n => s.hs[(self.slot + 1) * hn..(self.slot + 2) * hn].to_vec(),
            Kept::Train(s) => {
                let mut c = vec![E::ZERO; hn];
                for p in &s.parts {
                    let pn = hs * p.n;
                    transpose(&p.cs[t_n * pn..(t_n + 1) * pn], p.n, hs, &mut c[hs * p.n0..hs * (p.n0 + p.n)]);
                }
                c
            }
        };
        Tensor::from_typed(v, [hs, n][..].into())
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
    let x0 = xs.first()?.shape();
    if x0.rank() == 0 || x0.rank() > 2 || xs.iter().any(|x| x.shape() != x0) {
        return None;
    }
    let (hidden, input) = (wh.shape()[1], wi.shape()[1]);
    if x0[0] != input {
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
        inference: !(flux_autograd::is_recording() && all.iter().any(Var::is_tracked)),
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

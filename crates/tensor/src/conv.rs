//! N-d convolution (1, 2 or 3 spatial dims) in Julia's layout: input `[spatial..., C, N]`,
//! weight `[k..., C / groups, Cout]`, output `[out..., Cout, N]`, all column-major. Written as
//! im2col onto the GEMM (one `[P, K·Cg]·[K·Cg, Coutg]` product per sample and group, `P` the
//! output positions, `K` the kernel positions), with its two adjoints: the input gradient
//! (`conv_data`: GEMM then col2im) and the weight gradient (`conv_filter`: im2col then GEMM,
//! accumulated over the batch). Cross-correlation is the primitive; `flip` reverses the kernel
//! (true convolution, Flux's `Conv`). The column buffer is allocated once per call.

use crate::error::{Result, TensorError};
use crate::kernels::{claim_items, filled_in_parts, gemm_ns, parties_for, GemmElement, RunBuffer};
use crate::shape::Shape;
use crate::tensor::Tensor;

/// Geometry of a convolution: stride, padding, dilation, groups and whether the kernel is
/// flipped. Each of stride, padding and dilation is given as one value (all spatial dims), one
/// per spatial dim, or, for padding, one per side in Flux's order `(lo1, hi1, lo2, hi2, ...)`;
/// the lengths are checked against the input's rank when the spec is used.
///
/// ```
/// use flux_tensor::{ConvSpec, Tensor};
/// let x = Tensor::ones(&[5, 5, 1, 1]);
/// let w = Tensor::ones(&[3, 3, 1, 1]);
/// let y = x.conv(&w, &ConvSpec::new().pad(&[1]));
/// assert_eq!(y.shape(), &[5, 5, 1, 1]);
/// assert_eq!(y.get(&[0, 0, 0, 0]), 4.0); // a corner sees 2·2 ones
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvSpec {
    stride: Vec<usize>,
    pad: Vec<usize>,
    dilation: Vec<usize>,
    groups: usize,
    flip: bool,
}

impl Default for ConvSpec {
    fn default() -> Self {
        ConvSpec::new()
    }
}

impl ConvSpec {
    /// Stride 1, no padding, dilation 1, one group, no flip (cross-correlation).
    ///
    /// ```
    /// assert_eq!(flux_tensor::ConvSpec::new().groups_count(), 1);
    /// ```
    pub fn new() -> ConvSpec {
        ConvSpec { stride: vec![1], pad: vec![0], dilation: vec![1], groups: 1, flip: false }
    }
    /// The stride: one value or one per spatial dim.
    ///
    /// ```
    /// let s = flux_tensor::ConvSpec::new().stride(&[2, 1]);
    /// assert_eq!(s.stride_values(), &[2, 1]);
    /// ```
    pub fn stride(mut self, s: &[usize]) -> ConvSpec {
        self.stride = s.to_vec();
        self
    }
    /// The padding: one value, one per spatial dim, or one per side (`lo1, hi1, lo2, hi2, ...`).
    ///
    /// ```
    /// let s = flux_tensor::ConvSpec::new().pad(&[1, 1, 2, 2]);
    /// assert_eq!(s.pad_values(), &[1, 1, 2, 2]);
    /// ```
    pub fn pad(mut self, p: &[usize]) -> ConvSpec {
        self.pad = p.to_vec();
        self
    }
    /// The dilation: one value or one per spatial dim.
    ///
    /// ```
    /// let s = flux_tensor::ConvSpec::new().dilation(&[2]);
    /// assert_eq!(s.dilation_values(), &[2]);
    /// ```
    pub fn dilation(mut self, d: &[usize]) -> ConvSpec {
        self.dilation = d.to_vec();
        self
    }
    /// The number of groups (input and output channels split into `g` independent convs).
    ///
    /// ```
    /// assert_eq!(flux_tensor::ConvSpec::new().groups(2).groups_count(), 2);
    /// ```
    pub fn groups(mut self, g: usize) -> ConvSpec {
        self.groups = g;
        self
    }
    /// Whether the kernel is flipped (true convolution, Flux's `Conv`) or not (cross-correlation).
    ///
    /// ```
    /// assert!(flux_tensor::ConvSpec::new().flip(true).flipped());
    /// ```
    pub fn flip(mut self, f: bool) -> ConvSpec {
        self.flip = f;
        self
    }
    /// The stride as given.
    ///
    /// ```
    /// assert_eq!(flux_tensor::ConvSpec::new().stride_values(), &[1]);
    /// ```
    pub fn stride_values(&self) -> &[usize] {
        &self.stride
    }
    /// The padding as given.
    ///
    /// ```
    /// assert_eq!(flux_tensor::ConvSpec::new().pad_values(), &[0]);
    /// ```
    pub fn pad_values(&self) -> &[usize] {
        &self.pad
    }
    /// The dilation as given.
    ///
    /// ```
    /// assert_eq!(flux_tensor::ConvSpec::new().dilation_values(), &[1]);
    /// ```
    pub fn dilation_values(&self) -> &[usize] {
        &self.dilation
    }
    /// The number of groups.
    ///
    /// ```
    /// assert_eq!(flux_tensor::ConvSpec::new().groups_count(), 1);
    /// ```
    pub fn groups_count(&self) -> usize {
        self.groups
    }
    /// Whether the kernel is flipped.
    ///
    /// ```
    /// assert!(!flux_tensor::ConvSpec::new().flipped());
    /// ```
    pub fn flipped(&self) -> bool {
        self.flip
    }

    /// The output shape of [`Tensor::conv`] for these input and weight shapes, or the error that
    /// names the op and both shapes.
    ///
    /// ```
    /// use flux_tensor::ConvSpec;
    /// let s = ConvSpec::new().stride(&[2]).pad(&[1]);
    /// assert_eq!(s.output_shape(&[7, 7, 3, 2], &[3, 3, 3, 8]).unwrap(), vec![4, 4, 8, 2]);
    /// ```
    pub fn output_shape(&self, x: &[usize], w: &[usize]) -> Result<Vec<usize>> {
        let g = Geom::new("conv", self, x, w, None)?;
        Ok(g.out_shape())
    }

    /// The output shape of a transposed convolution of an input `x` with weight `w`
    /// (`[k..., Cout / groups, Cin]`, as Flux's `ConvTranspose`): the largest input of the
    /// forward convolution that gives `x`'s spatial size.
    ///
    /// ```
    /// use flux_tensor::ConvSpec;
    /// let s = ConvSpec::new().stride(&[2]).pad(&[1]);
    /// assert_eq!(s.transpose_output_shape(&[4, 4, 8, 2], &[3, 3, 3, 8]).unwrap(), vec![7, 7, 3, 2]);
    /// ```
    pub fn transpose_output_shape(&self, x: &[usize], w: &[usize]) -> Result<Vec<usize>> {
        let err = |reason: String| TensorError::ShapeMismatch { op: "conv_transpose", lhs: x.to_vec(), rhs: w.to_vec(), reason };
        if x.len() < 3 || x.len() > 5 || w.len() != x.len() {
            return Err(err("the input and weight must both be [spatial..., channels, batch] with 1 to 3 spatial dims".into()));
        }
        let nd = x.len() - 2;
        let (stride, plo, phi, dil) = self.resolve("conv_transpose", nd, x, w)?;
        let mut out = Vec::with_capacity(nd + 2);
        for d in 0..nd {
            let span = (x[d].max(1) - 1) * stride[d] + dil[d] * (w[d].max(1) - 1) + 1;
            if span <= plo[d] + phi[d] {
                return Err(err(format!("the padding of spatial dim {} leaves no output", d + 1)));
            }
            out.push(span - plo[d] - phi[d]);
        }
        out.push(w[nd] * self.groups);
        out.push(x[nd + 1]);
        if w[nd + 1] != x[nd] {
            return Err(err(format!("the input has {} channels, the weight takes {}", x[nd], w[nd + 1])));
        }
        Ok(out)
    }

    #[allow(clippy::type_complexity)]
    fn resolve(&self, op: &'static str, nd: usize, x: &[usize], w: &[usize]) -> Result<([usize; 3], [usize; 3], [usize; 3], [usize; 3])> {
        let err = |what: &str, n: usize, allowed: &str| TensorError::ShapeMismatch {
            op,
            lhs: x.to_vec(),
            rhs: w.to_vec(),
            reason: format!("{what} has {n} values; {allowed} for {nd} spatial dims"),
        };
        let per_dim = |v: &[usize], what: &str| -> Result<[usize; 3]> {
            let mut out = [1; 3];
            match v.len() {
                1 => out[..nd].fill(v[0]),
                n if n == nd => out[..nd].copy_from_slice(v),
                n => return Err(err(what, n, &format!("give 1 or {nd}"))),
            }
            Ok(out)
        };
        let stride = per_dim(&self.stride, "the stride")?;
        let dil = per_dim(&self.dilation, "the dilation")?;
        if stride.contains(&0) || dil.contains(&0) {
            return Err(TensorError::InvalidValue { op, reason: format!("stride {:?} and dilation {:?} must be positive", self.stride, self.dilation) });
        }
        let (mut plo, mut phi) = ([0; 3], [0; 3]);
        match self.pad.len() {
            1 => {
                plo[..nd].fill(self.pad[0]);
                phi[..nd].fill(self.pad[0]);
            }
            n if n == nd => {
                plo[..nd].copy_from_slice(&self.pad);
                phi[..nd].copy_from_slice(&self.pad);
            }
            n if n == 2 * nd => {
                for d in 0..nd {
                    plo[d] = self.pad[2 * d];
                    phi[d] = self.pad[2 * d + 1];
                }
            }
            n => return Err(err("the padding", n, &format!("give 1, {nd} or {}", 2 * nd))),
        }
        if self.groups == 0 {
            return Err(TensorError::InvalidValue { op, reason: "groups must be positive".into() });
        }
        Ok((stride, plo, phi, dil))
    }
}

/// Resolved geometry, always 3 spatial dims (missing ones have size 1, stride 1, no padding).
#[derive(Clone, Copy, Debug)]
struct Geom {
    nd: usize,
    x: [usize; 3],
    k: [usize; 3],
    o: [usize; 3],
    stride: [usize; 3],
    dil: [usize; 3],
    plo: [usize; 3],
    cin: usize,
    cout: usize,
    n: usize,
    groups: usize,
    flip: bool,
}

impl Geom {
    /// Checks the shapes of input `x` and weight `w`; with `out` (the shape of an output
    /// gradient) also checks that it is the forward's output shape.
    fn new(op: &'static str, spec: &ConvSpec, x: &[usize], w: &[usize], out: Option<&[usize]>) -> Result<Geom> {
        let err = |reason: String| TensorError::ShapeMismatch { op, lhs: x.to_vec(), rhs: w.to_vec(), reason };
        if x.len() < 3 || x.len() > 5 {
            return Err(err("the input must be [spatial..., channels, batch] with 1 to 3 spatial dims".into()));
        }
        let nd = x.len() - 2;
        if w.len() != x.len() {
            return Err(err(format!("the weight must be [k..., cin / groups, cout] with {nd} spatial dims, like the input")));
        }
        let (stride, plo, phi, dil) = spec.resolve(op, nd, x, w)?;
        let groups = spec.groups;
        let (cin, cout, n) = (x[nd], w[nd + 1], x[nd + 1]);
        if w[nd] * groups != cin {
            return Err(err(format!("the input has {cin} channels, the weight takes {} per group × {groups} groups", w[nd])));
        }
        if cout % groups != 0 {
            return Err(err(format!("{cout} output channels do not split into {groups} groups")));
        }
        let (mut xs, mut ks, mut os) = ([1; 3], [1; 3], [1; 3]);
        for d in 0..nd {
            xs[d] = x[d];
            ks[d] = w[d];
            let span = dil[d] * (w[d].max(1) - 1) + 1;
            let padded = x[d] + plo[d] + phi[d];
            if w[d] == 0 || padded < span {
                return Err(err(format!("spatial dim {}: the dilated kernel ({span}) is larger than the padded input ({padded})", d + 1)));
            }
            os[d] = (padded - span) / stride[d] + 1;
        }
        let g = Geom { nd, x: xs, k: ks, o: os, stride, dil, plo, cin, cout, n, groups, flip: spec.flip };
        if let Some(out) = out.filter(|out| *out != g.out_shape().as_slice()) {
            return Err(TensorError::ShapeMismatch {
                op,
                lhs: out.to_vec(),
                rhs: w.to_vec(),
                reason: format!("the output gradient must be {:?} for input {x:?}", g.out_shape()),
            });
        }
        Ok(g)
    }

    fn out_shape(&self) -> Vec<usize> {
        let mut s = self.o[..self.nd].to_vec();
        s.push(self.cout);
        s.push(self.n);
        s
    }
    fn x_shape(&self) -> Vec<usize> {
        let mut s = self.x[..self.nd].to_vec();
        s.push(self.cin);
        s.push(self.n);
        s
    }
    fn w_shape(&self) -> Vec<usize> {
        let mut s = self.k[..self.nd].to_vec();
        s.push(self.cin / self.groups);
        s.push(self.cout);
        s
    }
    /// Output positions per sample.
    fn p(&self) -> usize {
        self.o.iter().product()
    }
    /// Kernel positions.
    fn kk(&self) -> usize {
        self.k.iter().product()
    }
    /// Input positions per channel.
    fn xp(&self) -> usize {
        self.x.iter().product()
    }

    /// For kernel offset `kd` along dim `d`: the range of output indices whose input index is
    /// inside the input, and the input index of output index 0 (may be negative).
    #[inline]
    fn span(&self, d: usize, kd: usize) -> (usize, usize, isize) {
        let kd = if self.flip { self.k[d] - 1 - kd } else { kd };
        let base = (kd * self.dil[d]) as isize - self.plo[d] as isize;
        let s = self.stride[d] as isize;
        // first o with base + o*s >= 0, last o with base + o*s <= x - 1
        let lo = if base >= 0 { 0 } else { ((-base) + s - 1) / s };
        let hi_excl = if base > self.x[d] as isize - 1 { 0 } else { ((self.x[d] as isize - 1 - base) / s + 1).min(self.o[d] as isize) };
        let lo = lo.min(self.o[d] as isize);
        (lo as usize, hi_excl.max(lo) as usize, base)
    }

    /// Walks every (channel, kernel position, output position) whose input element is inside
    /// the input, calling `f(col_row_start, x_start, len, x_step)` for runs along the first
    /// dim: `col[col_row_start + i] <-> x[x_start + i * x_step]` for `i < len`.
    /// Column layout: a `[ld, K, C]` matrix whose rows `off..off + P` are this sample's output
    /// positions; input layout `[x..., C]` for one sample.
    fn runs(&self, channels: usize, ld: usize, off: usize, mut f: impl FnMut(usize, usize, usize, usize)) {
        let (kk, xp) = (self.kk(), self.xp());
        let [o0, o1, _] = self.o;
        let [x0, x1, _] = self.x;
        for c in 0..channels {
            for k2 in 0..self.k[2] {
                let (lo2, hi2, b2) = self.span(2, k2);
                for k1 in 0..self.k[1] {
                    let (lo1, hi1, b1) = self.span(1, k1);
                    for k0 in 0..self.k[0] {
                        let (lo0, hi0, b0) = self.span(0, k0);
                        let kidx = k0 + self.k[0] * (k1 + self.k[1] * k2);
                        let col_base = ld * (kidx + kk * c) + off;
                        if hi0 <= lo0 {
                            continue;
                        }
                        for q2 in lo2..hi2 {
                            let i2 = (b2 + (q2 * self.stride[2]) as isize) as usize;
                            for q1 in lo1..hi1 {
                                let i1 = (b1 + (q1 * self.stride[1]) as isize) as usize;
                                let i0 = (b0 + (lo0 * self.stride[0]) as isize) as usize;
                                let row = col_base + lo0 + o0 * (q1 + o1 * q2);
                                let xi = c * xp + i0 + x0 * (i1 + x1 * i2);
                                f(row, xi, hi0 - lo0, self.stride[0]);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Writes one sample into rows `off..off + P` of `col` (`[ld, K, C]`); the padding's
    /// entries are not written (the caller zeroes the buffer first).
    fn im2col<T: GemmElement>(&self, x: &[T], col: &mut [T], ld: usize, off: usize) {
        self.runs(self.cin, ld, off, |row, xi, len, step| {
            let dst = &mut col[row..row + len];
            if step == 1 {
                dst.copy_from_slice(&x[xi..xi + len]);
            } else {
                for (i, d) in dst.iter_mut().enumerate() {
                    *d = x[xi + i * step];
                }
            }
        });
    }

    /// im2col of the `nb` samples in `x` when no window reaches the padding: every entry of the
    /// `[P·nb, K, C]` column buffer is an input element, appended in the buffer's order (no
    /// zeroing, no scattered writes) as runs along the first dim.
    fn im2col_dense<T: GemmElement>(&self, x: &[T], nb: usize, col: &mut RunBuffer<T>) {
        let (xp, [o0, o1, o2], [x0, x1, _]) = (self.xp(), self.o, self.x);
        let [s0, s1, s2] = self.stride;
        for c in 0..self.cin {
            for k2 in 0..self.k[2] {
                let b2 = self.span(2, k2).2 as usize;
                for k1 in 0..self.k[1] {
                    let b1 = self.span(1, k1).2 as usize;
                    for k0 in 0..self.k[0] {
                        let b0 = self.span(0, k0).2 as usize;
                        for j in 0..nb {
                            let plane = &x[(j * self.cin + c) * xp..(j * self.cin + c + 1) * xp];
                            for q2 in 0..o2 {
                                let start = b0 + x0 * (b1 + x1 * (b2 + q2 * s2));
                                if s0 == 1 {
                                    col.push_rows(&plane[start..], o0, s1 * x0, o1);
                                } else {
                                    for q1 in 0..o1 {
                                        let row = start + q1 * s1 * x0;
                                        col.push_rows(&plane[row..], 1, s0, o0);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Adds rows `off..off + P` of `col` (`[ld, K, C]`) back into one sample's input gradient
    /// (the adjoint of im2col).
    fn col2im<T: GemmElement>(&self, col: &[T], dx: &mut [T], ld: usize, off: usize) {
        self.runs(self.cin, ld, off, |row, xi, len, step| {
            let src = &col[row..row + len];
            if step == 1 {
                for (d, &v) in dx[xi..xi + len].iter_mut().zip(src) {
                    *d += v;
                }
            } else {
                for (d, &v) in dx[xi..].iter_mut().step_by(step).zip(src) {
                    *d += v;
                }
            }
        });
    }
}

/// Elements of the column buffer per chunk of samples: the samples of a chunk share one GEMM
/// (`[P·nb, K·Cg]·[K·Cg, Coutg]`), which keeps the products large for small images.
/// (Small under test, so the tests go through chunks of one and of several samples.)
const COL_BUDGET: usize = if cfg!(test) { 1 << 8 } else { 1 << 22 };

/// The forward's budget: smaller, so that the buffer im2col writes is still in the L2 cache
/// when the GEMM reads it (LeNet's first layer: 9 samples, a `[5184, 25]·[25, 6]` product per
/// chunk; forward 0.72 -> 0.66 ms). The adjoints keep the large budget: cutting their products
/// (the weight gradient's sum over the batch most) cost more than the cache saved.
const FWD_COL_BUDGET: usize = if cfg!(test) { 1 << 8 } else { 1 << 17 };

/// Samples per chunk for a column buffer of at most `budget` elements.
fn chunk(g: &Geom, budget: usize) -> usize {
    let per = (g.p() * g.kk() * g.cin).max(1);
    (budget / per).clamp(1, g.n.max(1))
}

/// Nanoseconds per column-buffer element that im2col writes or col2im adds back, one thread:
/// in W6's train step (LeNet-5, batch 64, on the 2-core Zen 4) `fill_cols` took 26% of 1.67 ms
/// for 3.1M elements.
const COL_NS: f64 = 0.15;

/// The predicted one-thread time of a pass over the batch: its products (one `[P·N, K·Cg]` by
/// `[K·Cg, Coutg]` per group, in some orientation) and the column buffer it fills or reads.
fn pass_ns<T: GemmElement>(g: &Geom) -> f64 {
    let (cg, og) = (g.cin / g.groups, g.cout / g.groups);
    let gemm = gemm_ns(g.p() * g.n, og, g.kk() * cg, std::mem::size_of::<T>()) * g.groups as f64;
    gemm + COL_NS * (g.p() * g.kk() * g.cin * g.n) as f64
}

/// How a pass over the batch of about `one_thread_ns` is split: the parties the cost model
/// gives it, and the samples per chunk, at most `ch`. The chunks are the parties' work items,
/// whole (im2col, the products, the scatter into the output), so a product is never split
/// across threads inside a chunk: on W6's conv layers the GEMM's own split lost (2 threads
/// 1.15-1.5x the time of one on `[16, 4096]·[4096, 150]`, 1.13-1.25x on `[4096, 16]·[16, 150]`)
/// while im2col stayed serial. With more than one party there are at least two chunks per
/// party and a whole number of them per party.
fn split(g: &Geom, ch: usize, one_thread_ns: f64) -> (usize, usize) {
    #[cfg(test)]
    let parties = FORCE_PARTIES.get().unwrap_or_else(|| parties_for(one_thread_ns, 0, g.n)).min(g.n);
    #[cfg(not(test))]
    let parties = parties_for(one_thread_ns, 0, g.n);
    if parties <= 1 {
        return (1, ch);
    }
    let chunks = g.n.div_ceil(ch).max(2 * parties).next_multiple_of(parties).min(g.n);
    (parties, g.n.div_ceil(chunks))
}

#[cfg(test)]
thread_local! {
    /// Tests set this to split every pass over the batch between this many parties.
    static FORCE_PARTIES: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// Copies the output gradient of samples `n0..n0 + nb` from `[P, Cout, N]` into the GEMM's
/// layout, `[P, nb, Coutg]` per group (groups one after another).
fn gather_dy<T: GemmElement>(g: &Geom, dy: &[T], n0: usize, nb: usize, out: &mut [T]) {
    let (p, og) = (g.p(), g.cout / g.groups);
    let ld = p * nb;
    for gi in 0..g.groups {
        for co in 0..og {
            for j in 0..nb {
                let src = (n0 + j) * p * g.cout + (gi * og + co) * p;
                let dst = gi * ld * og + co * ld + j * p;
                out[dst..dst + p].copy_from_slice(&dy[src..src + p]);
            }
        }
    }
}

/// im2col of samples `n0..n0 + nb` into `col` (`[P·nb, K, C]`), which it clears first.
fn fill_cols<T: GemmElement>(g: &Geom, x: &[T], n0: usize, nb: usize, col: &mut Vec<T>) {
    let xs = g.xp() * g.cin;
    let ld = g.p() * nb;
    col.clear();
    // without padding every entry is a run of the input, written in memory order; with it, the
    // padding's entries stay zero and the runs land where they fall
    let dense = (0..3).all(|d| (0..g.k[d]).all(|k| matches!(g.span(d, k), (0, hi, _) if hi == g.o[d])));
    if dense {
        let mut buf = RunBuffer::new(std::mem::take(col), ld * g.kk() * g.cin);
        g.im2col_dense(&x[n0 * xs..(n0 + nb) * xs], nb, &mut buf);
        *col = buf.finish(ld * g.kk() * g.cin);
        return;
    }
    col.resize(ld * g.kk() * g.cin, T::from_f64(0.0));
    for j in 0..nb {
        let n = n0 + j;
        g.im2col(&x[n * xs..(n + 1) * xs], col, ld, j * g.p());
    }
}

/// The convolution, plus `bias[co]` on output channel `co` when given.
fn conv_fwd<T: GemmElement>(g: &Geom, x: &[T], w: &[T], bias: Option<&[T]>) -> Vec<T> {
    let (p, kk) = (g.p(), g.kk());
    let cg = g.cin / g.groups;
    let og = g.cout / g.groups;
    let ys = p * g.cout;
    let (parties, ch) = split(g, chunk(g, FWD_COL_BUDGET), pass_ns::<T>(g));
    let starts: Vec<usize> = (0..g.n).step_by(ch).collect();
    // per party: the column buffer and the products' output
    let mut scratch: Vec<(Vec<T>, Vec<T>)> = (0..parties).map(|_| (Vec::new(), Vec::new())).collect();
    // each chunk's samples written in order, as its products come out
    let (y, ()) = filled_in_parts(ys * g.n, starts.iter().map(|&n0| ys * ch.min(g.n - n0)), |parts| {
        claim_items(&mut scratch, starts.iter().copied().zip(parts).collect(), |(col, tmp), (n0, mut y)| {
            let nb = ch.min(g.n - n0);
            let ld = p * nb;
            fill_cols(g, x, n0, nb, col);
            tmp.resize(p * ch * g.cout, T::from_f64(0.0));
            for gi in 0..g.groups {
                let a = &col[gi * ld * kk * cg..(gi + 1) * ld * kk * cg];
                let b = &w[gi * kk * cg * og..(gi + 1) * kk * cg * og];
                let c = &mut tmp[gi * ld * og..(gi + 1) * ld * og];
                T::gemm(ld, og, kk * cg, a, false, b, false, c, false);
                if let Some(bias) = bias {
                    for (column, &bc) in c.chunks_exact_mut(ld).zip(&bias[gi * og..(gi + 1) * og]) {
                        column.iter_mut().for_each(|v| *v += bc);
                    }
                }
            }
            // [P, nb, Coutg] per group -> [P, Cout, nb]
            for j in 0..nb {
                for gi in 0..g.groups {
                    y.push_rows(&tmp[gi * ld * og + j * p..], p, ld, og);
                }
            }
        })
    });
    y
}

fn conv_data_fwd<T: GemmElement>(g: &Geom, dy: &[T], w: &[T]) -> Vec<T> {
    let (p, kk) = (g.p(), g.kk());
    let cg = g.cin / g.groups;
    let og = g.cout / g.groups;
    let xs = g.xp() * g.cin;
    let mut dx = vec![T::from_f64(0.0); xs * g.n];
    let (parties, ch) = split(g, chunk(g, COL_BUDGET), pass_ns::<T>(g));
    // per party: the column buffer (every element written by the products) and the gathered dy
    let mut scratch: Vec<(Vec<T>, Vec<T>)> = (0..parties).map(|_| (Vec::new(), Vec::new())).collect();
    if dx.is_empty() {
        // no samples, or samples of no elements: nothing to scatter into
        return dx;
    }
    let items: Vec<(usize, &mut [T])> = dx.chunks_mut(xs * ch).enumerate().map(|(i, d)| (i * ch, d)).collect();
    claim_items(&mut scratch, items, |(col, dyp), (n0, dx)| {
        let nb = ch.min(g.n - n0);
        let ld = p * nb;
        col.resize(p * ch * kk * g.cin, T::from_f64(0.0));
        dyp.resize(p * ch * g.cout, T::from_f64(0.0));
        gather_dy(g, dy, n0, nb, dyp);
        for gi in 0..g.groups {
            let a = &dyp[gi * ld * og..(gi + 1) * ld * og];
            let b = &w[gi * kk * cg * og..(gi + 1) * kk * cg * og];
            let c = &mut col[gi * ld * kk * cg..(gi + 1) * ld * kk * cg];
            T::gemm(ld, kk * cg, og, a, false, b, true, c, false);
        }
        for j in 0..nb {
            g.col2im(col, &mut dx[j * xs..(j + 1) * xs], ld, j * p);
        }
    });
    dx
}

/// A party's buffers for the weight gradient.
struct FilterPart<T> {
    col: Vec<T>,
    dyp: Vec<T>,
}

fn conv_filter_fwd<T: GemmElement>(g: &Geom, x: &[T], dy: &[T]) -> Vec<T> {
    let (p, kk) = (g.p(), g.kk());
    let cg = g.cin / g.groups;
    let og = g.cout / g.groups;
    let kc = kk * cg;
    let (parties, ch) = split(g, chunk(g, COL_BUDGET), pass_ns::<T>(g));
    // per group dWᵀ = dyᵀ·col ([Coutg, K·Cg], accumulated over chunks): the GEMM then packs the
    // narrow dyᵀ, not the transposed column buffer, which is K·Cg/Coutg times larger. The
    // chunks go in one contiguous run per party, each run summed in order into its own buffer
    // and the runs added in order: whichever party takes a run (a late one's is taken by
    // another), the sum is the same, so a weight gradient is reproducible run to run.
    let mut scratch: Vec<FilterPart<T>> = (0..parties).map(|_| FilterPart { col: Vec::new(), dyp: Vec::new() }).collect();
    let starts: Vec<usize> = (0..g.n).step_by(ch.max(1)).collect();
    let per_run = starts.len().div_ceil(parties).max(1);
    let mut sums: Vec<Vec<T>> = starts.chunks(per_run).map(|_| Vec::new()).collect();
    let runs: Vec<(&[usize], &mut Vec<T>)> = starts.chunks(per_run).zip(sums.iter_mut()).collect();
    claim_items(&mut scratch, runs, |part, (run, dwt)| {
        dwt.resize(kc * g.cout, T::from_f64(0.0));
        for (i, &n0) in run.iter().enumerate() {
            let nb = ch.min(g.n - n0);
            let ld = p * nb;
            fill_cols(g, x, n0, nb, &mut part.col);
            part.dyp.resize(p * ch * g.cout, T::from_f64(0.0));
            gather_dy(g, dy, n0, nb, &mut part.dyp);
            // the run's first chunk writes its sum, the later ones add to it
            for gi in 0..g.groups {
                let a = &part.dyp[gi * ld * og..(gi + 1) * ld * og];
                let b = &part.col[gi * ld * kc..(gi + 1) * ld * kc];
                let c = &mut dwt[gi * og * kc..(gi + 1) * og * kc];
                T::gemm(og, kc, ld, a, true, b, false, c, i > 0);
            }
        }
    });
    let mut sums = sums.into_iter();
    // no samples: a zero gradient
    let mut dwt = sums.next().unwrap_or_else(|| vec![T::from_f64(0.0); kc * g.cout]);
    for other in sums {
        dwt.iter_mut().zip(&other).for_each(|(d, &o)| *d += o);
    }
    // [Coutg, K·Cg] per group -> [K·Cg, Coutg] per group, which is [k..., Cg, Cout]
    let mut dw = vec![T::from_f64(0.0); kc * g.cout];
    for gi in 0..g.groups {
        let (src, dst) = (&dwt[gi * og * kc..(gi + 1) * og * kc], &mut dw[gi * og * kc..(gi + 1) * og * kc]);
        for (r, row) in dst.chunks_exact_mut(kc).enumerate() {
            for (i, d) in row.iter_mut().enumerate() {
                *d = src[r + og * i];
            }
        }
    }
    dw
}

/// Max pooling's argmax: for input `x` (`[spatial..., C, N]`) and a window of `k` (a conv of
/// one channel per slab, `ConvSpec` giving stride and padding), the flat index into `x` of the
/// first largest element of each window (padding never wins; no indices unless
/// `with_indices`), those largest elements, and the output shape.
#[allow(clippy::type_complexity)]
pub(crate) fn window_argmax<T: GemmElement>(
    spec: &ConvSpec,
    x_shape: &[usize],
    k: &[usize],
    x: &[T],
    with_indices: bool,
) -> Result<(Vec<usize>, Vec<T>, Vec<usize>)> {
    let nd = x_shape.len().saturating_sub(2);
    let err = |reason: String| TensorError::ShapeMismatch { op: "maxpool", lhs: x_shape.to_vec(), rhs: k.to_vec(), reason };
    if !(1..=3).contains(&nd) || k.len() != nd {
        return Err(err("the input must be [spatial..., channels, batch] with 1 to 3 spatial dims, one window size per spatial dim".into()));
    }
    let slabs = x_shape[nd] * x_shape[nd + 1];
    let mut xs = x_shape[..nd].to_vec();
    xs.extend([1, slabs]);
    let mut ws = k.to_vec();
    ws.extend([1, 1]);
    let g = Geom::new("maxpool", spec, &xs, &ws, None).map_err(|e| match e {
        TensorError::ShapeMismatch { reason, .. } => err(reason),
        e => e,
    })?;
    for d in 0..nd {
        let (plo, phi) = (g.plo[d], spec_hi(spec, nd, d));
        if plo >= g.k[d] || phi >= g.k[d] {
            return Err(err(format!("the padding of spatial dim {} must be smaller than the window", d + 1)));
        }
    }
    let (p, xp) = (g.p(), g.xp());
    let mut out = g.o[..nd].to_vec();
    out.extend_from_slice(&x_shape[nd..]);
    if nd == 2 && g.k[..2] == [2, 2] && g.stride[..2] == [2, 2] && g.plo[..2] == [0, 0] {
        let (idx, vals) = argmax_2x2(x, g.x[0], g.x[1], slabs, with_indices);
        return Ok((idx, vals, out));
    }
    let mut idx = Vec::with_capacity(if with_indices { p * slabs } else { 0 });
    let mut vals = Vec::with_capacity(p * slabs);
    // the window's in-bounds range along dim d for output index o
    let range = |d: usize, o: usize| {
        let start = (o * g.stride[d]) as isize - g.plo[d] as isize;
        (start.max(0) as usize, ((start + g.k[d] as isize) as usize).min(g.x[d]))
    };
    // per kernel offset along dim 0: the outputs whose input is inside, and the input index of
    // output 0 (the same bookkeeping as im2col, without the flip)
    let spans: Vec<(usize, usize, isize)> = (0..g.k[0]).map(|k0| Geom { flip: false, dil: [1; 3], ..g }.span(0, k0)).collect();
    let o0n = g.o[0];
    let (mut bv, mut bi) = (vec![T::neg_infinity(); o0n], vec![usize::MAX; o0n]);
    for s in 0..slabs {
        let base = s * xp;
        for o2 in 0..g.o[2] {
            let (lo2, hi2) = range(2, o2);
            for o1 in 0..g.o[1] {
                let (lo1, hi1) = range(1, o1);
                bv.fill(T::neg_infinity());
                bi.fill(usize::MAX);
                // rows of the window outermost, outputs innermost: the outputs' comparisons are
                // independent of each other, so they pipeline
                for i2 in lo2..hi2 {
                    for i1 in lo1..hi1 {
                        let row = base + g.x[0] * (i1 + g.x[1] * i2);
                        for &(lo, hi, b0) in &spans {
                            for o0 in lo..hi {
                                let xi = row + (b0 + (o0 * g.stride[0]) as isize) as usize;
                                let v = x[xi];
                                let (cv, ci) = (bv[o0], bi[o0]);
                                // larger, or the first element, or the first NaN (which then stays)
                                let better = (v > cv) | (ci == usize::MAX) | (v.is_nan() & !cv.is_nan());
                                bv[o0] = if better { v } else { cv };
                                bi[o0] = if better { xi } else { ci };
                            }
                        }
                    }
                }
                if with_indices {
                    idx.extend_from_slice(&bi);
                }
                vals.extend_from_slice(&bv);
            }
        }
    }
    Ok((idx, vals, out))
}

/// [`window_argmax`] for LeNet's pool, a 2x2 window with stride 2 and no padding, over `slabs`
/// planes of `x0 x x1`, straight from two input rows. Each window is a tournament (the first
/// pair's winner, the second pair's, then the two), which picks what the general path's scan
/// picks (the first largest, or the first NaN, as a later element must beat an earlier one
/// strictly) with selects instead of data-dependent branches, and a short dependency chain.
fn argmax_2x2<T: GemmElement>(x: &[T], x0: usize, x1: usize, slabs: usize, with_indices: bool) -> (Vec<usize>, Vec<T>) {
    let (o0, o1) = (x0 / 2, x1 / 2);
    let mut idx = vec![0; if with_indices { o0 * o1 * slabs } else { 0 }];
    let mut vals = vec![T::from_f64(0.0); o0 * o1 * slabs];
    if o0 == 0 {
        return (idx, vals);
    }
    // whether `w` (later) beats `v` (earlier)
    let beats = |w: T, v: T| (w > v) | (w.is_nan() & !v.is_nan());
    // per output of a row: which of the window's 4 elements won (bit 0: the right column,
    // bit 1: the bottom row)
    let mut code = vec![0usize; o0];
    for (r, rv) in vals.chunks_exact_mut(o0).enumerate() {
        let (s, q1) = (r / o1, r % o1);
        let base = s * x0 * x1 + 2 * q1 * x0;
        let top = &x[base..base + 2 * o0];
        let bottom = &x[base + x0..base + x0 + 2 * o0];
        if !with_indices {
            // the values alone: the same tournament without the bookkeeping
            for ((a, b), v) in top.chunks_exact(2).zip(bottom.chunks_exact(2)).zip(rv.iter_mut()) {
                let va = if beats(a[1], a[0]) { a[1] } else { a[0] };
                let vb = if beats(b[1], b[0]) { b[1] } else { b[0] };
                *v = if beats(vb, va) { vb } else { va };
            }
            continue;
        }
        for (((a, b), v), c) in top.chunks_exact(2).zip(bottom.chunks_exact(2)).zip(rv.iter_mut()).zip(code.iter_mut()) {
            let (ta, tb) = (beats(a[1], a[0]), beats(b[1], b[0]));
            let (va, vb) = (if ta { a[1] } else { a[0] }, if tb { b[1] } else { b[0] });
            let bottom_wins = beats(vb, va);
            *v = if bottom_wins { vb } else { va };
            *c = if bottom_wins { 2 + usize::from(tb) } else { usize::from(ta) };
        }
        if with_indices {
            for (q0, (i, &c)) in idx[r * o0..(r + 1) * o0].iter_mut().zip(&code).enumerate() {
                *i = base + 2 * q0 + (c & 1) + (c >> 1) * x0;
            }
        }
    }
    (idx, vals)
}

fn spec_hi(spec: &ConvSpec, nd: usize, d: usize) -> usize {
    match spec.pad.len() {
        n if n == 2 * nd && nd > 0 => spec.pad[2 * d + 1],
        1 => spec.pad[0],
        _ => spec.pad[d],
    }
}

fn same_dtype(a: &Tensor, b: &Tensor) -> (Tensor, Tensor) {
    let dt = a.dtype().promote(b.dtype());
    (a.to_dtype(dt), b.to_dtype(dt))
}

impl Tensor {
    /// N-d convolution of `self` (`[spatial..., Cin, N]`, 1 to 3 spatial dims) with `w`
    /// (`[k..., Cin / groups, Cout]`): output `[out..., Cout, N]`, `out = (x + pads - dil·(k-1)
    /// - 1) ÷ stride + 1`. Cross-correlation unless the spec flips. Panics on bad shapes (see
    /// [`Tensor::try_conv`]).
    ///
    /// ```
    /// use flux_tensor::{ConvSpec, Tensor};
    /// let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[4, 1, 1]);
    /// let w = Tensor::from_vec(vec![1.0, 10.0], &[2, 1, 1]);
    /// assert_eq!(x.conv(&w, &ConvSpec::new()).to_vec(), vec![21.0, 32.0, 43.0]);
    /// assert_eq!(x.conv(&w, &ConvSpec::new().flip(true)).to_vec(), vec![12.0, 23.0, 34.0]);
    /// ```
    pub fn conv(&self, w: &Tensor, spec: &ConvSpec) -> Tensor {
        self.try_conv(w, spec).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Fallible [`Tensor::conv`]: the error names the op and both shapes.
    ///
    /// ```
    /// use flux_tensor::{ConvSpec, Tensor};
    /// let e = Tensor::zeros(&[5, 5, 2, 1]).try_conv(&Tensor::zeros(&[3, 3, 3, 4]), &ConvSpec::new()).unwrap_err();
    /// assert!(e.to_string().contains("[5, 5, 2, 1] and [3, 3, 3, 4]"));
    /// ```
    pub fn try_conv(&self, w: &Tensor, spec: &ConvSpec) -> Result<Tensor> {
        let g = Geom::new("conv", spec, self.shape(), w.shape(), None)?;
        let (x, w) = same_dtype(self, w);
        let shape = Shape::new(&g.out_shape());
        Ok(crate::dispatch!(x, |xv: T| {
            let wv = w.as_slice::<T>().expect("promoted");
            Tensor::from_typed(conv_fwd(&g, xv, wv, None), shape)
        }))
    }

    /// [`Tensor::conv`] plus a bias `b` (`[Cout]`) on each output channel, added while the
    /// product is still in cache (a conv layer's forward when nothing records). The error names
    /// the op and the shapes.
    ///
    /// ```
    /// use flux_tensor::{ConvSpec, Tensor};
    /// let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[4, 1, 1]);
    /// let w = Tensor::from_vec(vec![1.0, 10.0], &[2, 1, 1]);
    /// let y = x.try_conv_bias(&w, &Tensor::from_vec(vec![0.5], &[1]), &ConvSpec::new()).unwrap();
    /// assert_eq!(y.to_vec(), vec![21.5, 32.5, 43.5]);
    /// assert!(x.try_conv_bias(&w, &Tensor::zeros(&[2]), &ConvSpec::new()).is_err());
    /// ```
    pub fn try_conv_bias(&self, w: &Tensor, b: &Tensor, spec: &ConvSpec) -> Result<Tensor> {
        let g = Geom::new("conv", spec, self.shape(), w.shape(), None)?;
        if b.numel() != g.cout {
            return Err(TensorError::ShapeMismatch {
                op: "conv",
                lhs: w.shape().to_vec(),
                rhs: b.shape().to_vec(),
                reason: format!("the bias must hold one value per output channel ({})", g.cout),
            });
        }
        let (x, w) = same_dtype(self, w);
        let b = b.to_dtype(x.dtype());
        let shape = Shape::new(&g.out_shape());
        Ok(crate::dispatch!(x, |xv: T| {
            let wv = w.as_slice::<T>().expect("promoted");
            let bv = b.as_slice::<T>().expect("converted");
            Tensor::from_typed(conv_fwd(&g, xv, wv, Some(bv)), shape)
        }))
    }

    /// The input gradient of [`Tensor::conv`] (its adjoint in the input, a transposed
    /// convolution): `self` is the output gradient `[out..., Cout, N]`, `x_shape` the input's
    /// shape. Panics on bad shapes (see [`Tensor::try_conv_data`]).
    ///
    /// ```
    /// use flux_tensor::{ConvSpec, Tensor};
    /// let dy = Tensor::from_vec(vec![1.0, 1.0, 1.0], &[3, 1, 1]);
    /// let w = Tensor::from_vec(vec![1.0, 10.0], &[2, 1, 1]);
    /// assert_eq!(dy.conv_data(&w, &[4, 1, 1], &ConvSpec::new()).to_vec(), vec![1.0, 11.0, 11.0, 10.0]);
    /// ```
    pub fn conv_data(&self, w: &Tensor, x_shape: &[usize], spec: &ConvSpec) -> Tensor {
        self.try_conv_data(w, x_shape, spec).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Fallible [`Tensor::conv_data`].
    ///
    /// ```
    /// use flux_tensor::{ConvSpec, Tensor};
    /// assert!(Tensor::zeros(&[2, 1, 1]).try_conv_data(&Tensor::zeros(&[2, 1, 1]), &[4, 1, 1], &ConvSpec::new()).is_err());
    /// ```
    pub fn try_conv_data(&self, w: &Tensor, x_shape: &[usize], spec: &ConvSpec) -> Result<Tensor> {
        let g = Geom::new("conv_data", spec, x_shape, w.shape(), Some(self.shape()))?;
        let (dy, w) = same_dtype(self, w);
        let shape = Shape::new(&g.x_shape());
        Ok(crate::dispatch!(dy, |dv: T| {
            let wv = w.as_slice::<T>().expect("promoted");
            Tensor::from_typed(conv_data_fwd(&g, dv, wv), shape)
        }))
    }

    /// The weight gradient of [`Tensor::conv`]: `self` is the input `x`, `dy` the output
    /// gradient, `w_shape` the weight's shape. Panics on bad shapes (see
    /// [`Tensor::try_conv_filter`]).
    ///
    /// ```
    /// use flux_tensor::{ConvSpec, Tensor};
    /// let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[4, 1, 1]);
    /// let dy = Tensor::from_vec(vec![1.0, 1.0, 1.0], &[3, 1, 1]);
    /// assert_eq!(x.conv_filter(&dy, &[2, 1, 1], &ConvSpec::new()).to_vec(), vec![6.0, 9.0]);
    /// ```
    pub fn conv_filter(&self, dy: &Tensor, w_shape: &[usize], spec: &ConvSpec) -> Tensor {
        self.try_conv_filter(dy, w_shape, spec).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Fallible [`Tensor::conv_filter`].
    ///
    /// ```
    /// use flux_tensor::{ConvSpec, Tensor};
    /// assert!(Tensor::zeros(&[4, 1, 1]).try_conv_filter(&Tensor::zeros(&[2, 1, 1]), &[2, 1, 1], &ConvSpec::new()).is_err());
    /// ```
    pub fn try_conv_filter(&self, dy: &Tensor, w_shape: &[usize], spec: &ConvSpec) -> Result<Tensor> {
        let g = Geom::new("conv_filter", spec, self.shape(), w_shape, Some(dy.shape()))?;
        let (x, dy) = same_dtype(self, dy);
        let shape = Shape::new(&g.w_shape());
        Ok(crate::dispatch!(x, |xv: T| {
            let dv = dy.as_slice::<T>().expect("promoted");
            Tensor::from_typed(conv_filter_fwd(&g, xv, dv), shape)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Direct convolution, straight from the definition.
    fn naive(x: &Tensor, w: &Tensor, spec: &ConvSpec) -> Tensor {
        let g = Geom::new("conv", spec, x.shape(), w.shape(), None).unwrap();
        let (xv, wv) = (x.to_vec(), w.to_vec());
        let (cg, og) = (g.cin / g.groups, g.cout / g.groups);
        let mut y = vec![0.0; g.p() * g.cout * g.n];
        for n in 0..g.n {
            for co in 0..g.cout {
                let gi = co / og;
                for o2 in 0..g.o[2] {
                    for o1 in 0..g.o[1] {
                        for o0 in 0..g.o[0] {
                            let mut acc = 0.0;
                            for ci in 0..cg {
                                for k2 in 0..g.k[2] {
                                    for k1 in 0..g.k[1] {
                                        for k0 in 0..g.k[0] {
                                            let o = [o0, o1, o2];
                                            let kq = [k0, k1, k2];
                                            let mut idx = [0usize; 3];
                                            let mut inside = true;
                                            for d in 0..3 {
                                                let kd = if g.flip { g.k[d] - 1 - kq[d] } else { kq[d] };
                                                let i = (o[d] * g.stride[d] + kd * g.dil[d]) as isize - g.plo[d] as isize;
                                                inside &= i >= 0 && (i as usize) < g.x[d];
                                                idx[d] = i.max(0) as usize;
                                            }
                                            if inside {
                                                let c = gi * cg + ci;
                                                let xi = idx[0] + g.x[0] * (idx[1] + g.x[1] * (idx[2] + g.x[2] * (c + g.cin * n)));
                                                let wi = k0 + g.k[0] * (k1 + g.k[1] * (k2 + g.k[2] * (ci + cg * co)));
                                                acc += xv[xi] * wv[wi];
                                            }
                                        }
                                    }
                                }
                            }
                            y[o0 + g.o[0] * (o1 + g.o[1] * (o2 + g.o[2] * (co + g.cout * n)))] = acc;
                        }
                    }
                }
            }
        }
        Tensor::from_vec(y, &g.out_shape())
    }

    fn dot(a: &Tensor, b: &Tensor) -> f64 {
        a.to_vec().iter().zip(b.to_vec()).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn hand_computed_2d() {
        // x = [1 3; 2 4] (column-major), w = ones 2x2: one output, the sum
        let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2, 1, 1]);
        let w = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2, 1, 1]);
        assert_eq!(x.conv(&w, &ConvSpec::new()).to_vec(), vec![30.0]);
        assert_eq!(x.conv(&w, &ConvSpec::new().flip(true)).to_vec(), vec![20.0]);
        // padding 1: the corner (0, 0) sees x[0,0] under w[1,1]
        let y = x.conv(&w, &ConvSpec::new().pad(&[1]));
        assert_eq!(y.shape(), &[3, 3, 1, 1]);
        assert_eq!(y.get(&[0, 0, 0, 0]), 4.0);
        assert_eq!(y.get(&[2, 2, 0, 0]), 4.0);
    }

    #[test]
    fn empty_batches_give_empty_results_and_zero_weight_gradients() {
        // an empty last batch: no samples, on one party and on several
        for parties in [1, 2] {
            FORCE_PARTIES.set(Some(parties));
            let (x, w) = (Tensor::zeros(&[5, 5, 2, 0]), Tensor::ones(&[3, 3, 2, 4]));
            let spec = ConvSpec::new();
            let y = x.try_conv(&w, &spec).unwrap();
            assert_eq!(y.shape(), &[3, 3, 4, 0]);
            assert_eq!(y.try_conv_data(&w, &[5, 5, 2, 0], &spec).unwrap().shape(), &[5, 5, 2, 0]);
            let dw = x.try_conv_filter(&y, &[3, 3, 2, 4], &spec).unwrap();
            assert_eq!(dw.shape(), &[3, 3, 2, 4]);
            assert_eq!(dw.sum_all(), 0.0);
        }
        FORCE_PARTIES.set(None);
    }

    #[test]
    fn a_split_weight_gradient_is_the_same_every_run() {
        // each party's run of chunks is summed in order, whichever party takes it
        FORCE_PARTIES.set(Some(2));
        let x = Tensor::randn(&[12, 12, 3, 16]).to_f32();
        let dy = Tensor::randn(&[8, 8, 4, 16]).to_f32();
        let first = x.conv_filter(&dy, &[5, 5, 3, 4], &ConvSpec::new());
        for _ in 0..20 {
            assert_eq!(x.conv_filter(&dy, &[5, 5, 3, 4], &ConvSpec::new()).to_vec(), first.to_vec());
        }
        FORCE_PARTIES.set(None);
    }

    #[test]
    fn errors_name_the_shapes() {
        let e = Tensor::zeros(&[3, 3, 2, 1]).try_conv(&Tensor::zeros(&[5, 5, 2, 1]), &ConvSpec::new()).unwrap_err();
        assert!(e.to_string().contains("larger than the padded input"), "{e}");
        let e = Tensor::zeros(&[8, 2, 1]).try_conv(&Tensor::zeros(&[3, 2, 1]), &ConvSpec::new().pad(&[1, 2, 3])).unwrap_err();
        assert!(e.to_string().contains("the padding has 3 values"), "{e}");
        let e = Tensor::zeros(&[8, 4, 1]).try_conv(&Tensor::zeros(&[3, 2, 3]), &ConvSpec::new().groups(2)).unwrap_err();
        assert!(e.to_string().contains("do not split"), "{e}");
    }

    fn spec_strategy() -> impl Strategy<Value = (usize, Vec<usize>, Vec<usize>, ConvSpec, usize, usize)> {
        (1usize..=3, 1usize..=3, 1usize..=2, 1usize..=3, 1usize..=3, 0usize..=3, 1usize..=2, any::<bool>(), 1usize..=2, any::<bool>()).prop_map(
            |(nd, k, groups, cpg, opg, pad, dil, flip, stride, asym)| {
                let ks = vec![k; nd];
                let xs: Vec<usize> = (0..nd).map(|d| 2 * k + 1 + d).collect();
                let mut spec = ConvSpec::new().stride(&[stride + usize::from(asym)]).dilation(&[dil]).groups(groups).flip(flip);
                spec = if asym { spec.pad(&(0..2 * nd).map(|i| (pad + i) % 4).collect::<Vec<_>>()) } else { spec.pad(&[pad]) };
                (nd, xs, ks, spec, cpg * groups, opg * groups)
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn matches_the_direct_convolution_and_its_adjoints((nd, xs, ks, spec, cin, cout) in spec_strategy(), n in 1usize..=5) {
            let mut xshape = xs.clone();
            xshape.extend([cin, n]);
            let mut wshape = ks.clone();
            wshape.extend([cin / spec.groups_count(), cout]);
            let _ = nd;
            let x = Tensor::randn(&xshape).to_f64();
            let w = Tensor::randn(&wshape).to_f64();
            let Ok(y) = x.try_conv(&w, &spec) else { return Ok(()) };
            let r = naive(&x, &w, &spec);
            prop_assert!(y.allclose(&r, 1e-10, 1e-10));
            // with a bias per output channel
            let b = Tensor::randn(&[cout]).to_f64();
            let mut bshape = vec![1; xs.len()];
            bshape.push(cout);
            prop_assert!(x.try_conv_bias(&w, &b, &spec).unwrap().allclose(&(&y + &b.reshape(&bshape)), 1e-12, 1e-12));
            // adjoints: <conv(x, w), dy> = <x, conv_data(dy, w)> = <w, conv_filter(x, dy)>
            let dy = Tensor::randn(y.shape()).to_f64();
            let dx = dy.conv_data(&w, &xshape, &spec);
            let dw = x.conv_filter(&dy, &wshape, &spec);
            let lhs = dot(&y, &dy);
            prop_assert!((lhs - dot(&x, &dx)).abs() <= 1e-9 * (1.0 + lhs.abs()));
            prop_assert!((lhs - dot(&w, &dw)).abs() <= 1e-9 * (1.0 + lhs.abs()));
            // split between parties (any of which may take every chunk), the same results
            FORCE_PARTIES.set(Some(3));
            let (y3, dx3, dw3) = (x.conv(&w, &spec), dy.conv_data(&w, &xshape, &spec), x.conv_filter(&dy, &wshape, &spec));
            FORCE_PARTIES.set(None);
            prop_assert!(y3.allclose(&y, 1e-12, 1e-12) && dx3.allclose(&dx, 1e-12, 1e-12) && dw3.allclose(&dw, 1e-12, 1e-12));
            // f32 agrees
            let y32 = x.to_f32().conv(&w.to_f32(), &spec);
            prop_assert!(y32.allclose(&y, 1e-4, 1e-4));
        }
    }
}

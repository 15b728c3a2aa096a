//! Elementwise kernels of the fused LSTM: the gate pass forward (one sweep over the `4out` gate
//! pre-activations of a step computing `i, f, g, o`, the new `c` and `h`) and backward, in f32
//! and f64, with no allocation. f32 uses branch-free `exp`-based sigmoid and tanh that the
//! compiler vectorises (about 1 ulp of `exp`), and on AVX-512 the hand-vectorised forward pass
//! of [`crate::fused::gates_avx512`]; f64 uses the standard library.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::OnceLock;

use flux_tensor::GemmElement;

/// The weight of the per-step products, prepared once per sequence by [`Kern::prepare`].
pub(crate) struct StepMatrix<'a, E: Clone> {
    k: usize,
    m: usize,
    data: Cow<'a, [E]>,
    /// Packed for [`crate::fused::smallgemm`].
    packed: bool,
    /// Whether every element is finite, once asked ([`StepMatrix::all_finite`]).
    finite: OnceLock<bool>,
}

impl<E: Clone> StepMatrix<'_, E> {
    /// The bytes its elements take (a borrowed one's too).
    pub(crate) fn bytes(&self) -> usize {
        std::mem::size_of_val(&*self.data)
    }

    /// Are all its elements finite? (A product may then skip rows that meet zeros: their
    /// terms are exactly 0, where an infinite or NaN weight would have made NaN; see
    /// [`Kern::step_gemm_zero_state`].)
    pub(crate) fn all_finite(&self) -> bool
    where
        E: GemmElement,
    {
        // a fold, not `all`: no early exit, so the check vectorises (about 20 µs for W3's
        // 1.3 MB, once per preparation)
        *self.finite.get_or_init(|| self.data.iter().fold(true, |ok, v| ok & v.to_f64().is_finite()))
    }
}

/// Element types the fused kernels run on.
pub(crate) trait Kern: GemmElement {
    /// Multiply-adds per nanosecond of one thread in the per-step products, for the cost model
    /// that splits a sequence over threads: W3's forward (526M multiply-adds) takes 4.9 ms on
    /// one thread in f32 (the AVX-512 kernel); f64 runs the general GEMM at a third of that.
    const MACS_PER_NS: f64;
    /// Prepares the weight `b` (`[k, m]`) of the per-step products of a batch of `n`: packed
    /// for the register-blocked kernel where it applies (f32, AVX-512, `n` a multiple of 16),
    /// borrowed as it is otherwise.
    fn prepare(b: &[Self], k: usize, m: usize, _n: usize) -> StepMatrix<'_, Self> {
        StepMatrix { k, m, data: Cow::Borrowed(b), packed: false, finite: OnceLock::new() }
    }
    /// The stacked LSTM weight `[Wiᵀ; Whᵀ; bᵀ]` of the per-step products of a batch of `n`,
    /// restricted to the hidden units `units` (`[in + H + 1, 4·|units|]`, see [`stacked`]),
    /// prepared as [`Kern::prepare`] would (packed for the f32 kernel).
    fn prepare_stacked(wi: &[Self], wh: &[Self], b: &[Self], is: usize, hs: usize, units: Range<usize>, _n: usize) -> StepMatrix<'static, Self> {
        StepMatrix { k: is + hs + 1, m: 4 * units.len(), data: Cow::Owned(stacked(wi, wh, b, is, hs, units)), packed: false, finite: OnceLock::new() }
    }
    /// `c = a · b` (or `+=`) for the per-step products: `a` is `[n, k]`, `c` `[n, m]`,
    /// column-major, `b` from [`Kern::prepare`].
    fn step_gemm(n: usize, b: &StepMatrix<'_, Self>, a: &[Self], c: &mut [Self], accumulate: bool) {
        Self::gemm(n, b.m, b.k, a, false, &b.data, false, c, accumulate)
    }
    /// `c = a · b` for a stacked step weight `b` (`[Wiᵀ; Whᵀ; bᵀ]`, `is` input rows) whose `a`
    /// has zeros in every `h` column (a zero initial state): where `b` is packed and finite,
    /// only the `x` rows and the bias row are multiplied; otherwise the whole product (a NaN
    /// or infinite weight must meet its zeros, as the full product would have it).
    fn step_gemm_zero_state(n: usize, b: &StepMatrix<'_, Self>, is: usize, a: &[Self], c: &mut [Self]) {
        let _ = is;
        Self::step_gemm(n, b, a, c, false)
    }
    fn sigmoid(x: Self) -> Self;
    fn tanh_k(x: Self) -> Self;
    /// Writes the full 8×8 tiles of [`transpose_into`] (`rows`, `cols` multiples of 8) with
    /// vector shuffles where this type and the CPU have them; `false` (nothing written) where
    /// not.
    ///
    /// # Safety
    /// As [`transpose_into`].
    unsafe fn transpose_tiles(src: &[Self], src_ld: usize, rows: usize, cols: usize, dst: *mut Self, dst_ld: usize) -> bool {
        let _ = (src, src_ld, rows, cols, dst, dst_ld);
        false
    }
    /// The forward gate pass over a block of cells (see [`block_forward`]); `keep` says whether
    /// the activated gates and `tanh(c_t)` must be written (an implementation may always write
    /// them).
    #[allow(clippy::too_many_arguments)]
    fn gate_block(
        gi: &mut [Self],
        gf: &mut [Self],
        gg: &mut [Self],
        go: &mut [Self],
        cp: &[Self],
        cc: &mut [Self],
        tcc: &mut [Self],
        hc: &mut [Self],
        keep: bool,
    ) {
        let _ = keep;
        gate_block_portable(gi, gf, gg, go, cp, cc, tcc, hc)
    }
}

impl Kern for f64 {
    const MACS_PER_NS: f64 = 35.0;
    #[inline(always)]
    fn sigmoid(x: f64) -> f64 {
        flux_tensor::sigmoid(x)
    }
    #[inline(always)]
    fn tanh_k(x: f64) -> f64 {
        x.tanh()
    }
}

/// `[Wiᵀ; Whᵀ; bᵀ]` from `Wi: [4H, in]`, `Wh: [4H, H]` and `b: [4H]`, restricted to the hidden
/// units `units`: `[in + H + 1, 4·|units|]` column-major, the columns of those units' `i` gates,
/// then `f`, `g`, `o` (all `4H` columns for `units = 0..H`). The step inputs end in a column of
/// ones, so the product brings the bias with it.
fn stacked<E: GemmElement>(wi: &[E], wh: &[E], b: &[E], is: usize, hs: usize, units: Range<usize>) -> Vec<E> {
    let (k, m, hp) = (is + hs + 1, 4 * hs, units.len());
    let mut out = vec![E::ZERO; k * 4 * hp];
    for (c, col) in out.chunks_exact_mut(k).enumerate() {
        let j = (c / hp) * hs + units.start + c % hp;
        for p in 0..is {
            col[p] = wi[j + m * p];
        }
        for p in 0..hs {
            col[is + p] = wh[j + m * p];
        }
        col[is + hs] = b[j];
    }
    out
}

/// `e^x` for f32 without branches (Cephes' polynomial on `[-ln2/2, ln2/2]` and an exponent
/// shift), clamped to the finite range.
#[inline(always)]
fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23: adding and subtracting it rounds to an integer
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * LOG2E + MAGIC;
    let n = shifted - MAGIC;
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    // the low mantissa bits of `shifted` hold n: 2^n is (n + 127) << 23, with no float-to-int cast
    e * f32::from_bits(shifted.to_bits().wrapping_sub(0x4B40_0000 - 127) << 23)
}

impl Kern for f32 {
    const MACS_PER_NS: f64 = 100.0;
    fn prepare_stacked(wi: &[f32], wh: &[f32], b: &[f32], is: usize, hs: usize, units: Range<usize>, n: usize) -> StepMatrix<'static, f32> {
        let (k, m) = (is + hs + 1, 4 * units.len());
        if crate::fused::smallgemm::usable(n) {
            StepMatrix { k, m, data: Cow::Owned(crate::fused::smallgemm::pack_stacked(wi, wh, b, is, hs, units)), packed: true, finite: OnceLock::new() }
        } else {
            StepMatrix { k, m, data: Cow::Owned(stacked(wi, wh, b, is, hs, units)), packed: false, finite: OnceLock::new() }
        }
    }
    fn prepare(b: &[f32], k: usize, m: usize, n: usize) -> StepMatrix<'_, f32> {
        if crate::fused::smallgemm::usable(n) {
            StepMatrix { k, m, data: Cow::Owned(crate::fused::smallgemm::pack(b, k, m)), packed: true, finite: OnceLock::new() }
        } else {
            StepMatrix { k, m, data: Cow::Borrowed(b), packed: false, finite: OnceLock::new() }
        }
    }
    unsafe fn transpose_tiles(src: &[f32], src_ld: usize, rows: usize, cols: usize, dst: *mut f32, dst_ld: usize) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx") {
                // SAFETY: the CPU has AVX, checked just above; the rest is the caller's contract.
                unsafe { transpose_tiles_avx(src, src_ld, rows, cols, dst, dst_ld) };
                return true;
            }
        }
        let _ = (src, src_ld, rows, cols, dst, dst_ld);
        false
    }
    fn gate_block(gi: &mut [f32], gf: &mut [f32], gg: &mut [f32], go: &mut [f32], cp: &[f32], cc: &mut [f32], tcc: &mut [f32], hc: &mut [f32], keep: bool) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has AVX-512F, checked just above; the slices are one block.
                return unsafe {
                    if keep {
                        crate::fused::gates_avx512::block_forward::<true>(gi, gf, gg, go, cp, cc, tcc, hc)
                    } else {
                        crate::fused::gates_avx512::block_forward::<false>(gi, gf, gg, go, cp, cc, tcc, hc)
                    }
                };
            }
        }
        let _ = keep;
        gate_block_portable(gi, gf, gg, go, cp, cc, tcc, hc)
    }
    fn step_gemm(n: usize, b: &StepMatrix<'_, f32>, a: &[f32], c: &mut [f32], accumulate: bool) {
        if b.packed {
            crate::fused::smallgemm::gemm_packed(n, b.m, b.k, a, &b.data, c, accumulate)
        } else {
            f32::gemm(n, b.m, b.k, a, false, &b.data, false, c, accumulate)
        }
    }
    fn step_gemm_zero_state(n: usize, b: &StepMatrix<'_, f32>, is: usize, a: &[f32], c: &mut [f32]) {
        if b.packed && b.all_finite() {
            crate::fused::smallgemm::gemm_packed_rows(n, b.m, b.k, 0..is, a, &b.data, c, false);
            crate::fused::smallgemm::gemm_packed_rows(n, b.m, b.k, b.k - 1..b.k, a, &b.data, c, true);
        } else {
            Self::step_gemm(n, b, a, c, false)
        }
    }
    #[inline(always)]
    fn sigmoid(x: f32) -> f32 {
        1.0 / (1.0 + exp_f32(-x))
    }
    #[inline(always)]
    fn tanh_k(x: f32) -> f32 {
        // odd Taylor polynomial near 0 (where 1 - 2/(e^2x + 1) cancels), the exp form elsewhere
        let x2 = x * x;
        let small = x * (1.0 + x2 * (-1.0 / 3.0 + x2 * (2.0 / 15.0 + x2 * (-17.0 / 315.0))));
        let big = 1.0 - 2.0 / (exp_f32(2.0 * x) + 1.0);
        if x.abs() < 0.0625 {
            small
        } else {
            big
        }
    }
}

/// Where the forward gate pass of one step reads and writes. Every `[N, k]` matrix here is
/// batch-major (column-major with the batch index fastest): a gate row of one hidden unit is `N`
/// contiguous values, so the pass vectorises over the batch.
pub(crate) struct StepForward<'a, E> {
    /// `[N, 4H]`: the gate pre-activations `x_tᵀ · Wiᵀ + h_{t-1}ᵀ · Whᵀ + bᵀ` (the bias comes
    /// with the GEMM, see [`stacked`]), overwritten with the activated gates `i, f, g, o`.
    pub g: &'a mut [E],
    /// `[N, H]`: `c_{t-1}`.
    pub c_prev: &'a [E],
    /// `[N, H]`: `c_t` (written).
    pub c: &'a mut [E],
    /// `[N, H]`: `tanh(c_t)` (written).
    pub tc: &'a mut [E],
    /// `[N, H]`: `h_t` (written).
    pub h: &'a mut [E],
    /// Whether backward will need the activated gates and `tanh(c_t)`: when not, the pass may
    /// leave `g` and `tc` as they were.
    pub keep: bool,
}

/// Forward gate pass of one step, `H` hidden units, batch `N`: one sweep computing the four
/// gates, `c_t`, `tanh(c_t)` and `h_t` (see [`StepForward`]).
pub(crate) fn gates_forward<E: Kern>(s: StepForward<'_, E>, hs: usize, n: usize) {
    // one flat sweep: with the bias in the GEMM every element of a gate block is treated alike
    let blk = n * hs;
    let (gi, rest) = s.g[..4 * blk].split_at_mut(blk);
    let (gf, rest) = rest.split_at_mut(blk);
    let (gg, go) = rest.split_at_mut(blk);
    E::gate_block(gi, gf, gg, go, &s.c_prev[..blk], &mut s.c[..blk], &mut s.tc[..blk], &mut s.h[..blk], s.keep);
}

/// [`block_forward`] compiled for the best vector extension the CPU has.
#[allow(clippy::too_many_arguments)]
fn gate_block_portable<E: Kern>(gi: &mut [E], gf: &mut [E], gg: &mut [E], go: &mut [E], cp: &[E], cc: &mut [E], tcc: &mut [E], hc: &mut [E]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F, checked just above.
            return unsafe { block_forward_avx512(gi, gf, gg, go, cp, cc, tcc, hc) };
        }
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe { block_forward_avx2(gi, gf, gg, go, cp, cc, tcc, hc) };
        }
    }
    block_forward(gi, gf, gg, go, cp, cc, tcc, hc)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn block_forward_avx512<E: Kern>(gi: &mut [E], gf: &mut [E], gg: &mut [E], go: &mut [E], cp: &[E], cc: &mut [E], tcc: &mut [E], hc: &mut [E]) {
    block_forward(gi, gf, gg, go, cp, cc, tcc, hc)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
unsafe fn block_forward_avx2<E: Kern>(gi: &mut [E], gf: &mut [E], gg: &mut [E], go: &mut [E], cp: &[E], cc: &mut [E], tcc: &mut [E], hc: &mut [E]) {
    block_forward(gi, gf, gg, go, cp, cc, tcc, hc)
}

/// Backward gate pass of one step (batch-major, as [`StepForward`]). Given the activated gates
/// `a` `[N, 4H]`, `c_{t-1}`, `tanh(c_t)`, the gradient `dh` reaching `h_t` and `dc` reaching
/// `c_t` (overwritten with the gradient reaching `c_{t-1}`), writes the gradient of the gate
/// pre-activations `i, f, g, o` into `dz`, `[N, H]` each (wherever the caller keeps them: the
/// fused backward writes them straight into the next step's operand).
pub(crate) fn gates_backward<E: Kern>(a: &[E], c_prev: &[E], tc: &[E], dh: &[E], dc: &mut [E], dz: [&mut [E]; 4], hs: usize, n: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F, checked just above.
            return unsafe { gates_backward_avx512(a, c_prev, tc, dh, dc, dz, hs, n) };
        }
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe { gates_backward_avx2(a, c_prev, tc, dh, dc, dz, hs, n) };
        }
    }
    gates_backward_generic(a, c_prev, tc, dh, dc, dz, hs, n)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn gates_backward_avx512<E: Kern>(a: &[E], c_prev: &[E], tc: &[E], dh: &[E], dc: &mut [E], dz: [&mut [E]; 4], hs: usize, n: usize) {
    gates_backward_generic(a, c_prev, tc, dh, dc, dz, hs, n)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn gates_backward_avx2<E: Kern>(a: &[E], c_prev: &[E], tc: &[E], dh: &[E], dc: &mut [E], dz: [&mut [E]; 4], hs: usize, n: usize) {
    gates_backward_generic(a, c_prev, tc, dh, dc, dz, hs, n)
}

#[inline(always)]
fn gates_backward_generic<E: Kern>(a: &[E], c_prev: &[E], tc: &[E], dh: &[E], dc: &mut [E], dz: [&mut [E]; 4], hs: usize, n: usize) {
    let blk = n * hs;
    let (ai, af, ag, ao) = (&a[..blk], &a[blk..2 * blk], &a[2 * blk..3 * blk], &a[3 * blk..4 * blk]);
    let [di, df, dg, dout] = dz;
    block_backward([ai, af, ag, ao], &c_prev[..blk], &tc[..blk], &dh[..blk], &mut dc[..blk], di, df, dg, dout);
}

/// The forward gate pass over a block of cells (every unit and sample of a step). Separate
/// slices as arguments, so the compiler knows they do not overlap and vectorises the loop.
#[inline(always)]
fn block_forward<E: Kern>(gi: &mut [E], gf: &mut [E], gg: &mut [E], go: &mut [E], cp: &[E], cc: &mut [E], tcc: &mut [E], hc: &mut [E]) {
    let n = gi.len();
    let (gf, gg, go) = (&mut gf[..n], &mut gg[..n], &mut go[..n]);
    let (cp, cc, tcc, hc) = (&cp[..n], &mut cc[..n], &mut tcc[..n], &mut hc[..n]);
    for k in 0..n {
        let i = E::sigmoid(gi[k]);
        let f = E::sigmoid(gf[k]);
        let gv = E::tanh_k(gg[k]);
        let o = E::sigmoid(go[k]);
        let cn = f * cp[k] + i * gv;
        let t = E::tanh_k(cn);
        gi[k] = i;
        gf[k] = f;
        gg[k] = gv;
        go[k] = o;
        cc[k] = cn;
        tcc[k] = t;
        hc[k] = o * t;
    }
}

/// The backward gate pass over a block of cells (separate slices, as in [`block_forward`]).
#[inline(always)]
fn block_backward<E: Kern>(a: [&[E]; 4], cp: &[E], tcc: &[E], dhc: &[E], dcc: &mut [E], di: &mut [E], df: &mut [E], dg: &mut [E], dout: &mut [E]) {
    let one = E::ONE;
    let n = dcc.len();
    let (ai, af, ag, ao) = (&a[0][..n], &a[1][..n], &a[2][..n], &a[3][..n]);
    let (cp, tcc, dhc) = (&cp[..n], &tcc[..n], &dhc[..n]);
    let (di, df, dg, dout) = (&mut di[..n], &mut df[..n], &mut dg[..n], &mut dout[..n]);
    for k in 0..n {
        let (i, f, gv, o, t) = (ai[k], af[k], ag[k], ao[k], tcc[k]);
        let dhk = dhc[k];
        let dck = dcc[k] + dhk * o * (one - t * t);
        di[k] = dck * gv * i * (one - i);
        df[k] = dck * cp[k] * f * (one - f);
        dg[k] = dck * i * (one - gv * gv);
        dout[k] = dhk * t * o * (one - o);
        dcc[k] = dck * f;
    }
}

/// `dst[row0 + ld·j + i] = src[i + n·j]` for `i < n`, `j < cols`: the columns of an `[n, cols]`
/// matrix written into a taller one (leading dimension `ld`) from row `row0`. The columns are
/// short (one batch), so they go in fixed blocks of 8 that compile to vector moves instead of a
/// `memcpy` call each (those calls were 3% of a W3 train step).
pub(crate) fn put_columns<E: Copy>(src: &[E], n: usize, cols: usize, dst: &mut [E], row0: usize, ld: usize) {
    for j in 0..cols {
        let (from, to) = (&src[n * j..][..n], &mut dst[row0 + ld * j..][..n]);
        let (mut to8, mut from8) = (to.chunks_exact_mut(8), from.chunks_exact(8));
        for (t, f) in (&mut to8).zip(&mut from8) {
            let (t, f): (&mut [E; 8], &[E; 8]) = (t.try_into().expect("8"), f.try_into().expect("8"));
            *t = *f;
        }
        for (t, f) in to8.into_remainder().iter_mut().zip(from8.remainder()) {
            *t = *f;
        }
    }
}

/// `dst = srcᵀ`: `src` is `[rows, cols]`, `dst` `[cols, rows]`, both column-major.
pub(crate) fn transpose<E: Kern>(src: &[E], rows: usize, cols: usize, dst: &mut [E]) {
    assert!(src.len() >= rows * cols && dst.len() >= rows * cols, "transpose: buffers shorter than {rows}x{cols}");
    // SAFETY: `dst` holds rows·cols elements (checked), the last one written at cols·rows - 1.
    unsafe { transpose_into(src, rows, rows, cols, dst.as_mut_ptr(), cols) }
}

/// Rows `rows` of the column-major `[ld, cols]` matrix `src`, transposed into `dst`
/// (`[cols, |rows|]`): a share of a transpose that several threads split by rows.
pub(crate) fn transpose_rows_into<E: Kern>(src: &[E], ld: usize, rows: Range<usize>, cols: usize, dst: &mut [E]) {
    let r = rows.len();
    assert!(
        rows.end <= ld && src.len() >= ld * cols && dst.len() >= r * cols,
        "transpose_rows_into: rows {rows:?} of a [{ld}, {cols}] matrix into {} elements",
        dst.len()
    );
    if r == 0 || cols == 0 {
        return;
    }
    // SAFETY: reads rows `rows` of src, in bounds (asserted); writes dst[c + cols·i] for
    // i < r, c < cols, all inside dst (asserted), which the `&mut` makes this call's alone.
    unsafe { transpose_into(&src[rows.start..], ld, r, cols, dst.as_mut_ptr(), cols) }
}

/// `dst[c + dst_ld·r] = src[r + src_ld·c]` for `r < rows`, `c < cols`: the `[rows, cols]`
/// matrix `src` (column-major, leading dimension `src_ld`) written transposed, in 8×8 tiles
/// (vector shuffles in f32, see [`Kern::transpose_tiles`]), then the ragged edges.
///
/// # Safety
/// `dst` is valid for writes at every `c + dst_ld·r` above, and nothing else reads or writes
/// those elements meanwhile (other elements between them may belong to other threads).
pub(crate) unsafe fn transpose_into<E: Kern>(src: &[E], src_ld: usize, rows: usize, cols: usize, dst: *mut E, dst_ld: usize) {
    const T: usize = 8;
    if rows == 0 || cols == 0 {
        return;
    }
    let src = &src[..src_ld * (cols - 1) + rows];
    let (rb, cb) = (rows / T * T, cols / T * T);
    // SAFETY: the tiles are a part of what the caller vouched for.
    if !unsafe { E::transpose_tiles(src, src_ld, rb, cb, dst, dst_ld) } {
        for r0 in (0..rb).step_by(T) {
            for c0 in (0..cb).step_by(T) {
                for c in c0..c0 + T {
                    let col = &src[r0 + c * src_ld..][..T];
                    for (r, &v) in col.iter().enumerate() {
                        // SAFETY: row r0 + r, column c of dst (the caller's contract).
                        unsafe { *dst.add(c + (r0 + r) * dst_ld) = v };
                    }
                }
            }
        }
    }
    for c in 0..cols {
        let r_start = if c < cb { rb } else { 0 };
        for r in r_start..rows {
            // SAFETY: as above.
            unsafe { *dst.add(c + r * dst_ld) = src[r + c * src_ld] };
        }
    }
}

/// The 8×8 tiles of [`transpose_into`] in f32: eight columns of a tile loaded as vectors,
/// transposed with the usual unpack / shuffle / lane-permute network, stored as eight rows.
///
/// # Safety
/// The CPU has AVX; `rows`, `cols` are multiples of 8; `src` holds the `[rows, cols]` matrix
/// (leading dimension `src_ld`); `dst` as in [`transpose_into`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn transpose_tiles_avx(src: &[f32], src_ld: usize, rows: usize, cols: usize, dst: *mut f32, dst_ld: usize) {
    use std::arch::x86_64::*;
    assert!(rows.is_multiple_of(8) && cols.is_multiple_of(8) && (cols == 0 || src.len() >= src_ld * (cols - 1) + rows), "transpose tiles: bad shape");
    // row blocks outside: the eight rows of `dst` being written fill line after line. Columns
    // outside left 32 half-written lines in flight, which a leading dimension of 4 KB (W3's
    // `dz`, [1024, N·T]) puts in one L1 set: every store missed.
    for r0 in (0..rows).step_by(8) {
        for c0 in (0..cols).step_by(8) {
            // SAFETY: the loads read src[r0 .. r0 + 8 + src_ld·c] for c < cols (asserted in
            // bounds); the stores write rows r0 .. r0 + 8, columns c0 .. c0 + 8 of dst (the
            // caller's contract).
            unsafe {
                let col = |c: usize| _mm256_loadu_ps(src.as_ptr().add(r0 + (c0 + c) * src_ld));
                let (a0, a1, a2, a3, a4, a5, a6, a7) = (col(0), col(1), col(2), col(3), col(4), col(5), col(6), col(7));
                let (t0, t1) = (_mm256_unpacklo_ps(a0, a1), _mm256_unpackhi_ps(a0, a1));
                let (t2, t3) = (_mm256_unpacklo_ps(a2, a3), _mm256_unpackhi_ps(a2, a3));
                let (t4, t5) = (_mm256_unpacklo_ps(a4, a5), _mm256_unpackhi_ps(a4, a5));
                let (t6, t7) = (_mm256_unpacklo_ps(a6, a7), _mm256_unpackhi_ps(a6, a7));
                let (u0, u1) = (_mm256_shuffle_ps::<0x44>(t0, t2), _mm256_shuffle_ps::<0xEE>(t0, t2));
                let (u2, u3) = (_mm256_shuffle_ps::<0x44>(t1, t3), _mm256_shuffle_ps::<0xEE>(t1, t3));
                let (u4, u5) = (_mm256_shuffle_ps::<0x44>(t4, t6), _mm256_shuffle_ps::<0xEE>(t4, t6));
                let (u6, u7) = (_mm256_shuffle_ps::<0x44>(t5, t7), _mm256_shuffle_ps::<0xEE>(t5, t7));
                let rows_out = [
                    _mm256_permute2f128_ps::<0x20>(u0, u4),
                    _mm256_permute2f128_ps::<0x20>(u1, u5),
                    _mm256_permute2f128_ps::<0x20>(u2, u6),
                    _mm256_permute2f128_ps::<0x20>(u3, u7),
                    _mm256_permute2f128_ps::<0x31>(u0, u4),
                    _mm256_permute2f128_ps::<0x31>(u1, u5),
                    _mm256_permute2f128_ps::<0x31>(u2, u6),
                    _mm256_permute2f128_ps::<0x31>(u3, u7),
                ];
                for (r, v) in rows_out.into_iter().enumerate() {
                    _mm256_storeu_ps(dst.add(c0 + (r0 + r) * dst_ld), v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_f32_functions_are_accurate() {
        let mut worst = (0.0f64, 0.0f64);
        for k in -4000..=4000 {
            let x = k as f32 / 200.0;
            let s = <f32 as Kern>::sigmoid(x) as f64;
            let t = <f32 as Kern>::tanh_k(x) as f64;
            let xs = x as f64;
            worst.0 = worst.0.max((s - 1.0 / (1.0 + (-xs).exp())).abs());
            worst.1 = worst.1.max((t - xs.tanh()).abs() / xs.tanh().abs().max(1e-3));
        }
        assert!(worst.0 < 3e-7, "sigmoid error {}", worst.0);
        assert!(worst.1 < 3e-6, "tanh error {}", worst.1);
        assert_eq!(<f32 as Kern>::sigmoid(-200.0), 0.0f32.max(<f32 as Kern>::sigmoid(-200.0)));
        assert_eq!(<f32 as Kern>::sigmoid(200.0), 1.0);
        assert_eq!(<f32 as Kern>::tanh_k(200.0), 1.0);
        assert_eq!(<f32 as Kern>::tanh_k(-200.0), -1.0);
    }

    #[test]
    fn put_columns_writes_only_its_rows() {
        for n in [1, 8, 13, 32] {
            let (cols, ld, row0) = (3, n + 7, 4);
            let src: Vec<f32> = (0..n * cols).map(|i| i as f32).collect();
            let mut dst = vec![-1.0f32; ld * cols + row0];
            put_columns(&src, n, cols, &mut dst, row0, ld);
            for (k, v) in dst.iter().enumerate() {
                let (j, i) = ((k.wrapping_sub(row0)) / ld, (k.wrapping_sub(row0)) % ld);
                let want = if k >= row0 && j < cols && i < n { src[i + n * j] } else { -1.0 };
                assert_eq!(*v, want, "n = {n}, element {k}");
            }
        }
    }

    #[test]
    fn transpose_matches_naive() {
        for (rows, cols) in [(1, 1), (3, 5), (8, 8), (16, 9), (17, 33), (32, 1024)] {
            let src: Vec<f64> = (0..rows * cols).map(|i| i as f64).collect();
            let mut dst = vec![0.0; rows * cols];
            transpose(&src, rows, cols, &mut dst);
            let src32: Vec<f32> = src.iter().map(|&v| v as f32).collect();
            let mut dst32 = vec![0.0f32; rows * cols];
            transpose(&src32, rows, cols, &mut dst32);
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(dst[c + r * cols], src[r + c * rows]);
                    assert_eq!(dst32[c + r * cols], src32[r + c * rows]);
                }
            }
        }
    }

    /// Leading dimensions wider than the matrix on both sides: only the elements of the
    /// transposed block are written (f32 through the vector tiles, f64 through the portable).
    #[test]
    fn strided_transpose_writes_only_its_block() {
        fn check<E: Kern + From<u16> + PartialEq + std::fmt::Debug>() {
            let (rows, cols, src_ld, dst_ld, at) = (19, 26, 23, 40, 5);
            let src: Vec<E> = (0..src_ld * cols).map(|i| E::from(i as u16)).collect();
            let mut dst = vec![E::from(60000); dst_ld * rows + at];
            // SAFETY: dst holds at + c + dst_ld·r for every r < rows, c < cols.
            unsafe { transpose_into(&src, src_ld, rows, cols, dst.as_mut_ptr().add(at), dst_ld) };
            for (i, v) in dst.iter().enumerate() {
                let (r, c) = ((i.wrapping_sub(at)) / dst_ld, (i.wrapping_sub(at)) % dst_ld);
                let want = if i >= at && r < rows && c < cols { src[r + src_ld * c] } else { E::from(60000) };
                assert_eq!(*v, want, "element {i}");
            }
        }
        check::<f32>();
        check::<f64>();
    }
}

#[cfg(test)]
mod timing {
    /// `cargo test -p flux-recurrent --release --lib kernels::timing -- --ignored --nocapture`:
    /// the forward gate pass of one W3 step (batch 32, 256 units), and of 250 units (gate blocks
    /// whose distance is not a multiple of 4 KiB: measured no faster, so no 4K aliasing); the
    /// vector pass keeping the gates for backward, forward only, and the portable pass.
    #[test]
    #[ignore]
    fn gate_pass() {
        for (n, hs) in [(32usize, 256usize), (32, 250)] {
            let blk = n * hs;
            let z: Vec<f32> = (0..4 * blk).map(|i| ((i * 37 % 101) as f32 - 50.0) / 12.0).collect();
            let cp: Vec<f32> = (0..blk).map(|i| ((i * 13 % 29) as f32 - 14.0) / 7.0).collect();
            let (mut c, mut tc, mut h) = (vec![0.0f32; blk], vec![0.0f32; blk], vec![0.0f32; blk]);
            let mut time = |keep: bool, portable: bool| {
                let mut best = f64::INFINITY;
                for _ in 0..30 {
                    let t0 = std::time::Instant::now();
                    for _ in 0..50 {
                        let mut g = z.clone();
                        if portable {
                            let (gi, rest) = g.split_at_mut(blk);
                            let (gf, rest) = rest.split_at_mut(blk);
                            let (gg, go) = rest.split_at_mut(blk);
                            super::gate_block_portable(gi, gf, gg, go, &cp, &mut c, &mut tc, &mut h);
                        } else {
                            super::gates_forward(super::StepForward { g: &mut g, c_prev: &cp, c: &mut c, tc: &mut tc, h: &mut h, keep }, hs, n);
                        }
                        std::hint::black_box(&g);
                    }
                    best = best.min(t0.elapsed().as_secs_f64() / 50.0);
                }
                best
            };
            let (keep, fwd, portable) = (time(true, false), time(false, false), time(true, true));
            let mut copy = f64::INFINITY;
            for _ in 0..30 {
                let t0 = std::time::Instant::now();
                for _ in 0..50 {
                    let g = z.clone();
                    std::hint::black_box(&g);
                }
                copy = copy.min(t0.elapsed().as_secs_f64() / 50.0);
            }
            println!(
                "gate pass {n}x{hs}: {:.1} us keeping the gates, {:.1} us forward only, portable {:.1} us (each with {:.1} us copying the input)",
                keep * 1e6,
                fwd * 1e6,
                portable * 1e6,
                copy * 1e6
            );
        }
    }
}

//! A GEMM for the per-step products of the fused LSTM: `C[N, m] = A[N, k] · B[k, m]` with a
//! small batch `N` (a multiple of 16) and `A` (`[x_tᵀ | h_{t-1}ᵀ]` or `dz_t`) small enough to
//! stay in L1/L2. The general GEMM packs the whole weight matrix on every call, which for these
//! shapes costs as much as the product; here `B` (the weights) is packed once per sequence.
//! f32 with AVX-512 only; the caller falls back to the general GEMM elsewhere.

/// Columns of `B` per packed panel (and per register tile).
const PANEL: usize = 12;

/// Can the kernel run here for a batch of `n` rows?
pub(crate) fn usable(n: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        n > 0 && n.is_multiple_of(16) && std::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = n;
        false
    }
}

/// Packs `B` (`[k, m]`, column-major) into panels of [`PANEL`] columns, each stored row by row
/// (`p` major, the panel's columns contiguous), the last panel padded with zeros: in the kernel
/// the `PANEL` values a row step needs sit side by side at fixed offsets.
pub(crate) fn pack(b: &[f32], k: usize, m: usize) -> Vec<f32> {
    let panels = m.div_ceil(PANEL);
    let mut out = vec![0.0f32; panels * k * PANEL];
    for (panel, dst) in out.chunks_exact_mut(k * PANEL).enumerate() {
        for q in 0..PANEL.min(m - panel * PANEL) {
            let col = &b[k * (panel * PANEL + q)..][..k];
            for (p, &v) in col.iter().enumerate() {
                dst[p * PANEL + q] = v;
            }
        }
    }
    out
}

/// [`pack`] of the stacked LSTM weight `[Wiᵀ; Whᵀ; bᵀ]` restricted to the hidden units `units`
/// (`[in + H + 1, 4·|units|]`: the `i, f, g, o` columns of those units, gate by gate), read
/// straight from `Wi` (`[4H, in]`), `Wh` (`[4H, H]`) and `b` (`[4H]`): one pass, each panel row
/// made of contiguous runs of a column.
pub(crate) fn pack_stacked(wi: &[f32], wh: &[f32], b: &[f32], is: usize, hs: usize, units: std::ops::Range<usize>) -> Vec<f32> {
    let (k, m, hp) = (is + hs + 1, 4 * units.len(), units.len());
    let panels = m.div_ceil(PANEL);
    let mut out = vec![0.0f32; panels * k * PANEL];
    // row by row of the source (read in order), each row spread over the panels
    for p in 0..k {
        let src = match p {
            p if p < is => &wi[4 * hs * p..][..4 * hs],
            p if p < is + hs => &wh[4 * hs * (p - is)..][..4 * hs],
            _ => &b[..4 * hs],
        };
        for panel in 0..panels {
            let (j0, w) = (panel * PANEL, PANEL.min(m - panel * PANEL));
            let dst = &mut out[panel * k * PANEL + p * PANEL..][..PANEL];
            let (gate, off) = (j0 / hp, j0 % hp);
            if w == PANEL && off + PANEL <= hp {
                // the usual case, the whole panel row inside one gate: a copy of fixed length
                // (inlined; a memcpy call per 48 bytes made packing 3% of the W3 forward)
                dst.copy_from_slice(&src[gate * hs + units.start + off..][..PANEL]);
                continue;
            }
            let mut q = 0;
            while q < w {
                // a run of one gate's columns
                let (gate, off) = ((j0 + q) / hp, (j0 + q) % hp);
                let run = (w - q).min(hp - off);
                dst[q..q + run].copy_from_slice(&src[gate * hs + units.start + off..][..run]);
                q += run;
            }
        }
    }
    out
}

/// `c = a · B` (or `c += a · B`) with `B` packed by [`pack`]; `a` is `[n, k]`, `c` `[n, m]`,
/// column-major. Panics unless [`usable`]`(n)`.
pub(crate) fn gemm_packed(n: usize, m: usize, k: usize, a: &[f32], packed: &[f32], c: &mut [f32], accumulate: bool) {
    gemm_packed_rows(n, m, k, 0..k, a, packed, c, accumulate)
}

/// [`gemm_packed`] over the rows `rows` of `B` (and the same columns of `a`) only: `c = a[:,
/// rows] · B[rows, :]` (or `+=`). What a product whose other rows meet zeros in `a` needs.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_packed_rows(n: usize, m: usize, k: usize, rows: std::ops::Range<usize>, a: &[f32], packed: &[f32], c: &mut [f32], accumulate: bool) {
    assert!(usable(n), "small gemm: unsupported shape or CPU");
    assert!(rows.start <= rows.end && rows.end <= k, "small gemm: rows {rows:?} of {k}");
    assert!(a.len() >= n * k && packed.len() >= m.div_ceil(PANEL) * k * PANEL && c.len() >= n * m, "small gemm: operand too small");
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `usable` checked that the CPU has AVX-512F.
    unsafe {
        gemm_avx512(n, m, k, rows, a, packed, c, accumulate)
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_avx512(n: usize, m: usize, k: usize, rows: std::ops::Range<usize>, a: &[f32], packed: &[f32], c: &mut [f32], accumulate: bool) {
    // the panels keep k rows each; the product reads rows `rows` of every panel and the same
    // columns of `a`
    let (a, k_all, k) = (&a[n * rows.start..], k, rows.len());
    for panel in 0..m.div_ceil(PANEL) {
        let bp = &packed[panel * k_all * PANEL + rows.start * PANEL..][..k * PANEL];
        let mut r0 = 0;
        while r0 < n {
            if n - r0 >= 32 {
                tile::<2>(r0, panel * PANEL, n, m, k, a, bp, c, accumulate);
                r0 += 32;
            } else {
                tile::<1>(r0, panel * PANEL, n, m, k, a, bp, c, accumulate);
                r0 += 16;
            }
        }
    }
}

/// One `16R × PANEL` tile of `C`, accumulated in registers over the whole `k` (the loop is in
/// assembly, which fixes the register allocation and the broadcast loads). A full tile that
/// overwrites `C` is stored straight into it; a partial or accumulating one goes through a
/// buffer (storing through the buffer every time cost W3's forward 2% in copies).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn tile<const R: usize>(r0: usize, j0: usize, n: usize, m: usize, k: usize, a: &[f32], bp: &[f32], c: &mut [f32], accumulate: bool) {
    let direct = !accumulate && k > 0 && m - j0 >= PANEL;
    // the tile's accumulators, 16R·12 floats written by the k loop (not cleared first)
    let mut buf = std::mem::MaybeUninit::<[f32; 32 * PANEL]>::uninit();
    let (out, out_stride) = if direct {
        // the tile's columns of C: 12 runs of 16R floats, n apart (in bounds: rows r0..r0 + 16R
        // and columns j0..j0 + 12 of the [n, m] matrix that `c` holds, checked by the caller)
        assert!(r0 + 16 * R <= n && j0 + PANEL <= m && c.len() >= n * m, "small gemm: tile outside C");
        (c[r0 + n * j0..].as_mut_ptr(), n * 4)
    } else {
        (buf.as_mut_ptr().cast::<f32>(), 16 * R * 4)
    };
    if k == 0 {
        // SAFETY: `buf` holds 32·12 floats (a tile with k = 0 is never direct).
        unsafe { out.write_bytes(0, 32 * PANEL) };
    } else {
        let a = &a[r0..r0 + n * (k - 1) + 16 * R];
        let bp = &bp[..k * PANEL];
        // SAFETY: `a` holds k columns of 16R floats n floats apart, `bp` 12k floats; `out` has
        // 12 writable runs of 16R floats `out_stride` bytes apart (the buffer, or the tile's
        // columns of C, asserted above); the caller (`gemm_avx512`) runs only with AVX-512F.
        unsafe {
            if R == 2 {
                kloop_r2(a.as_ptr(), n * 4, bp.as_ptr(), k, out, out_stride);
            } else {
                kloop_r1(a.as_ptr(), n * 4, bp.as_ptr(), k, out, out_stride);
            }
        }
    }
    if direct {
        return;
    }
    // SAFETY: the first 16R·12 floats were written just above.
    let out = unsafe { std::slice::from_raw_parts(out, 16 * R * PANEL) };
    for q in 0..PANEL.min(m - j0) {
        let cc = &mut c[r0 + n * (j0 + q)..][..16 * R];
        let acc = &out[q * 16 * R..][..16 * R];
        for (d, &v) in cc.iter_mut().zip(acc) {
            *d = if accumulate { *d + v } else { v };
        }
    }
}

/// The `k` loop of a `32 × 12` tile in AVX-512 assembly: 24 accumulators; per row step 2
/// vector loads of `a`, 12 broadcasts of `b` into registers and 24 FMAs; the accumulators are
/// stored to `out`, column `q` (32 floats) at `out_stride·q` bytes. The broadcasts are separate loads, not FMA
/// memory operands: those would load each `b` value twice (once per FMA), 26 loads per 24 FMAs,
/// and the two load ports, not the FMA units, would set the pace.
///
/// # Safety
/// The CPU has AVX-512F; `a` points at `k` columns of 32 floats `a_stride` bytes apart, `b` at
/// `12·k` floats, `out` at 12 runs of 32 writable floats `out_stride` bytes apart, and `k > 0`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn kloop_r2(a: *const f32, a_stride: usize, b: *const f32, k: usize, out: *mut f32, out_stride: usize) {
    // SAFETY: the caller's contract; the block reads only `a`, `b` in those bounds and writes
    // only `out`, and declares every vector register it uses.
    unsafe {
        std::arch::asm!(
            "vpxord zmm0, zmm0, zmm0",
            "vpxord zmm1, zmm1, zmm1",
            "vpxord zmm2, zmm2, zmm2",
            "vpxord zmm3, zmm3, zmm3",
            "vpxord zmm4, zmm4, zmm4",
            "vpxord zmm5, zmm5, zmm5",
            "vpxord zmm6, zmm6, zmm6",
            "vpxord zmm7, zmm7, zmm7",
            "vpxord zmm8, zmm8, zmm8",
            "vpxord zmm9, zmm9, zmm9",
            "vpxord zmm10, zmm10, zmm10",
            "vpxord zmm11, zmm11, zmm11",
            "vpxord zmm12, zmm12, zmm12",
            "vpxord zmm13, zmm13, zmm13",
            "vpxord zmm14, zmm14, zmm14",
            "vpxord zmm15, zmm15, zmm15",
            "vpxord zmm16, zmm16, zmm16",
            "vpxord zmm17, zmm17, zmm17",
            "vpxord zmm18, zmm18, zmm18",
            "vpxord zmm19, zmm19, zmm19",
            "vpxord zmm20, zmm20, zmm20",
            "vpxord zmm21, zmm21, zmm21",
            "vpxord zmm22, zmm22, zmm22",
            "vpxord zmm23, zmm23, zmm23",
            "2:",
            "vmovups zmm24, [{a}]",
            "vmovups zmm25, [{a} + 64]",
            "vbroadcastss zmm26, dword ptr [{b}]",
            "vfmadd231ps zmm0, zmm24, zmm26",
            "vfmadd231ps zmm1, zmm25, zmm26",
            "vbroadcastss zmm27, dword ptr [{b} + 4]",
            "vfmadd231ps zmm2, zmm24, zmm27",
            "vfmadd231ps zmm3, zmm25, zmm27",
            "vbroadcastss zmm28, dword ptr [{b} + 8]",
            "vfmadd231ps zmm4, zmm24, zmm28",
            "vfmadd231ps zmm5, zmm25, zmm28",
            "vbroadcastss zmm29, dword ptr [{b} + 12]",
            "vfmadd231ps zmm6, zmm24, zmm29",
            "vfmadd231ps zmm7, zmm25, zmm29",
            "vbroadcastss zmm30, dword ptr [{b} + 16]",
            "vfmadd231ps zmm8, zmm24, zmm30",
            "vfmadd231ps zmm9, zmm25, zmm30",
            "vbroadcastss zmm31, dword ptr [{b} + 20]",
            "vfmadd231ps zmm10, zmm24, zmm31",
            "vfmadd231ps zmm11, zmm25, zmm31",
            "vbroadcastss zmm26, dword ptr [{b} + 24]",
            "vfmadd231ps zmm12, zmm24, zmm26",
            "vfmadd231ps zmm13, zmm25, zmm26",
            "vbroadcastss zmm27, dword ptr [{b} + 28]",
            "vfmadd231ps zmm14, zmm24, zmm27",
            "vfmadd231ps zmm15, zmm25, zmm27",
            "vbroadcastss zmm28, dword ptr [{b} + 32]",
            "vfmadd231ps zmm16, zmm24, zmm28",
            "vfmadd231ps zmm17, zmm25, zmm28",
            "vbroadcastss zmm29, dword ptr [{b} + 36]",
            "vfmadd231ps zmm18, zmm24, zmm29",
            "vfmadd231ps zmm19, zmm25, zmm29",
            "vbroadcastss zmm30, dword ptr [{b} + 40]",
            "vfmadd231ps zmm20, zmm24, zmm30",
            "vfmadd231ps zmm21, zmm25, zmm30",
            "vbroadcastss zmm31, dword ptr [{b} + 44]",
            "vfmadd231ps zmm22, zmm24, zmm31",
            "vfmadd231ps zmm23, zmm25, zmm31",
            "add {a}, {s}",
            "add {b}, 48",
            "dec {k}",
            "jnz 2b",
            "vmovups [{o}], zmm0",
            "vmovups [{o} + 64], zmm1",
            "add {o}, {os}",
            "vmovups [{o}], zmm2",
            "vmovups [{o} + 64], zmm3",
            "add {o}, {os}",
            "vmovups [{o}], zmm4",
            "vmovups [{o} + 64], zmm5",
            "add {o}, {os}",
            "vmovups [{o}], zmm6",
            "vmovups [{o} + 64], zmm7",
            "add {o}, {os}",
            "vmovups [{o}], zmm8",
            "vmovups [{o} + 64], zmm9",
            "add {o}, {os}",
            "vmovups [{o}], zmm10",
            "vmovups [{o} + 64], zmm11",
            "add {o}, {os}",
            "vmovups [{o}], zmm12",
            "vmovups [{o} + 64], zmm13",
            "add {o}, {os}",
            "vmovups [{o}], zmm14",
            "vmovups [{o} + 64], zmm15",
            "add {o}, {os}",
            "vmovups [{o}], zmm16",
            "vmovups [{o} + 64], zmm17",
            "add {o}, {os}",
            "vmovups [{o}], zmm18",
            "vmovups [{o} + 64], zmm19",
            "add {o}, {os}",
            "vmovups [{o}], zmm20",
            "vmovups [{o} + 64], zmm21",
            "add {o}, {os}",
            "vmovups [{o}], zmm22",
            "vmovups [{o} + 64], zmm23",
            a = inout(reg) a => _,
            b = inout(reg) b => _,
            k = inout(reg) k => _,
            s = in(reg) a_stride,
            o = inout(reg) out => _,
            os = in(reg) out_stride,
            out("zmm0") _, out("zmm1") _, out("zmm2") _, out("zmm3") _, out("zmm4") _, out("zmm5") _, out("zmm6") _, out("zmm7") _, out("zmm8") _, out("zmm9") _, out("zmm10") _, out("zmm11") _, out("zmm12") _, out("zmm13") _, out("zmm14") _, out("zmm15") _, out("zmm16") _, out("zmm17") _, out("zmm18") _, out("zmm19") _, out("zmm20") _, out("zmm21") _, out("zmm22") _, out("zmm23") _, out("zmm24") _, out("zmm25") _,
            out("zmm26") _, out("zmm27") _, out("zmm28") _, out("zmm29") _, out("zmm30") _, out("zmm31") _,
            options(nostack),
        );
    }
}

/// The `k` loop of a `16 × 12` tile in AVX-512 assembly: 12 accumulators, 1 vector
/// load(s) of `a` and 12 broadcast FMAs per row step; the accumulators are stored to `out`,
/// column `q` (16 floats) at `out_stride·q` bytes.
///
/// # Safety
/// The CPU has AVX-512F; `a` points at `k` columns of 16 floats `a_stride` bytes apart, `b` at
/// `12·k` floats, `out` at 12 runs of 16 writable floats `out_stride` bytes apart, and `k > 0`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn kloop_r1(a: *const f32, a_stride: usize, b: *const f32, k: usize, out: *mut f32, out_stride: usize) {
    // SAFETY: the caller's contract; the block reads only `a`, `b` in those bounds and writes
    // only `out`, and declares every vector register it uses.
    unsafe {
        std::arch::asm!(
            "vpxord zmm0, zmm0, zmm0",
            "vpxord zmm1, zmm1, zmm1",
            "vpxord zmm2, zmm2, zmm2",
            "vpxord zmm3, zmm3, zmm3",
            "vpxord zmm4, zmm4, zmm4",
            "vpxord zmm5, zmm5, zmm5",
            "vpxord zmm6, zmm6, zmm6",
            "vpxord zmm7, zmm7, zmm7",
            "vpxord zmm8, zmm8, zmm8",
            "vpxord zmm9, zmm9, zmm9",
            "vpxord zmm10, zmm10, zmm10",
            "vpxord zmm11, zmm11, zmm11",
            "2:",
            "vmovups zmm24, [{a}]",
            "vfmadd231ps zmm0, zmm24, dword ptr [{b}]{{1to16}}",
            "vfmadd231ps zmm1, zmm24, dword ptr [{b} + 4]{{1to16}}",
            "vfmadd231ps zmm2, zmm24, dword ptr [{b} + 8]{{1to16}}",
            "vfmadd231ps zmm3, zmm24, dword ptr [{b} + 12]{{1to16}}",
            "vfmadd231ps zmm4, zmm24, dword ptr [{b} + 16]{{1to16}}",
            "vfmadd231ps zmm5, zmm24, dword ptr [{b} + 20]{{1to16}}",
            "vfmadd231ps zmm6, zmm24, dword ptr [{b} + 24]{{1to16}}",
            "vfmadd231ps zmm7, zmm24, dword ptr [{b} + 28]{{1to16}}",
            "vfmadd231ps zmm8, zmm24, dword ptr [{b} + 32]{{1to16}}",
            "vfmadd231ps zmm9, zmm24, dword ptr [{b} + 36]{{1to16}}",
            "vfmadd231ps zmm10, zmm24, dword ptr [{b} + 40]{{1to16}}",
            "vfmadd231ps zmm11, zmm24, dword ptr [{b} + 44]{{1to16}}",
            "add {a}, {s}",
            "add {b}, 48",
            "dec {k}",
            "jnz 2b",
            "vmovups [{o}], zmm0",
            "add {o}, {os}",
            "vmovups [{o}], zmm1",
            "add {o}, {os}",
            "vmovups [{o}], zmm2",
            "add {o}, {os}",
            "vmovups [{o}], zmm3",
            "add {o}, {os}",
            "vmovups [{o}], zmm4",
            "add {o}, {os}",
            "vmovups [{o}], zmm5",
            "add {o}, {os}",
            "vmovups [{o}], zmm6",
            "add {o}, {os}",
            "vmovups [{o}], zmm7",
            "add {o}, {os}",
            "vmovups [{o}], zmm8",
            "add {o}, {os}",
            "vmovups [{o}], zmm9",
            "add {o}, {os}",
            "vmovups [{o}], zmm10",
            "add {o}, {os}",
            "vmovups [{o}], zmm11",
            a = inout(reg) a => _,
            b = inout(reg) b => _,
            k = inout(reg) k => _,
            s = in(reg) a_stride,
            o = inout(reg) out => _,
            os = in(reg) out_stride,
            out("zmm0") _, out("zmm1") _, out("zmm2") _, out("zmm3") _, out("zmm4") _, out("zmm5") _, out("zmm6") _, out("zmm7") _, out("zmm8") _, out("zmm9") _, out("zmm10") _, out("zmm11") _, out("zmm24") _,
            options(nostack),
        );
    }
}

#[cfg(test)]
mod tests {
    use flux_tensor::GemmElement;

    #[test]
    fn matches_the_general_gemm() {
        for (n, m, k) in [(16, 7, 5), (32, 1024, 320), (48, 13, 33), (64, 6, 1)] {
            let a: Vec<f32> = (0..n * k).map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0).collect();
            let b: Vec<f32> = (0..k * m).map(|i| ((i * 5 % 11) as f32 - 5.0) / 7.0).collect();
            let mut want = vec![0.5f32; n * m];
            f32::gemm(n, m, k, &a, false, &b, false, &mut want, true);
            let mut got = vec![0.5f32; n * m];
            if super::usable(n) {
                super::gemm_packed(n, m, k, &a, &super::pack(&b, k, m), &mut got, true);
                // the stacked packing equals packing the stacked matrix
                let (is, hs) = (3, 5);
                {
                    let (k, m) = (is + hs + 1, 4 * hs);
                    let wi: Vec<f32> = (0..4 * hs * is).map(|i| i as f32).collect();
                    let wh: Vec<f32> = (0..4 * hs * hs).map(|i| -(i as f32)).collect();
                    let b: Vec<f32> = (0..4 * hs).map(|i| 0.5 + i as f32).collect();
                    let mut cat = vec![0.0f32; k * m];
                    for j in 0..m {
                        for p in 0..k {
                            cat[p + k * j] = match p {
                                p if p < is => wi[j + m * p],
                                p if p < is + hs => wh[j + m * (p - is)],
                                _ => b[j],
                            };
                        }
                    }
                    assert_eq!(super::pack_stacked(&wi, &wh, &b, is, hs, 0..hs), super::pack(&cat, k, m));
                    // a range of units takes their four gate columns, gate by gate
                    let units = 1..4;
                    let cols: Vec<usize> = (0..4).flat_map(|g| units.clone().map(move |j| g * hs + j)).collect();
                    let mut sub = vec![0.0f32; k * cols.len()];
                    for (c, &j) in cols.iter().enumerate() {
                        sub[k * c..][..k].copy_from_slice(&cat[k * j..][..k]);
                    }
                    assert_eq!(super::pack_stacked(&wi, &wh, &b, is, hs, units), super::pack(&sub, k, cols.len()));
                }
                for (g, w) in got.iter().zip(&want) {
                    assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "{g} vs {w}");
                }
                // overwriting: full tiles are stored straight into C, partial ones through the
                // buffer; every element is written, nothing of the 0.5 it held is left
                let mut fresh = vec![0.0f32; n * m];
                f32::gemm(n, m, k, &a, false, &b, false, &mut fresh, false);
                let mut over = vec![0.5f32; n * m];
                super::gemm_packed(n, m, k, &a, &super::pack(&b, k, m), &mut over, false);
                for (g, w) in over.iter().zip(&fresh) {
                    assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "{g} vs {w}");
                }
            }
        }
        assert!(!super::usable(8));
    }
}

#[cfg(test)]
mod timing {
    /// `cargo test -p flux-recurrent --lib smallgemm -- --ignored --nocapture`: GFLOP/s of the
    /// per-step shapes of W3.
    #[test]
    #[ignore]
    fn per_step_shapes() {
        for (n, m, k) in [(32, 1024, 321), (32, 512, 321), (32, 128, 1024), (32, 256, 1024)] {
            let a = vec![0.01f32; n * k];
            let b = vec![0.02f32; k * m];
            let mut c = vec![0.0f32; n * m];
            let mut best = f64::INFINITY;
            let packed = super::pack(&b, k, m);
            for _ in 0..30 {
                let t0 = std::time::Instant::now();
                for _ in 0..50 {
                    super::gemm_packed(n, m, k, &a, &packed, &mut c, false);
                }
                best = best.min(t0.elapsed().as_secs_f64() / 50.0);
            }
            let mut general = f64::INFINITY;
            for _ in 0..30 {
                let t0 = std::time::Instant::now();
                for _ in 0..50 {
                    flux_tensor::GemmElement::gemm(n, m, k, &a, false, &b, false, &mut c, false);
                }
                general = general.min(t0.elapsed().as_secs_f64() / 50.0);
            }
            let gf = |t: f64| 2.0 * (n * m * k) as f64 / t / 1e9;
            println!("n={n} m={m} k={k}: {:.1} us, {:.0} GFLOP/s (general GEMM {:.0} GFLOP/s)", best * 1e6, gf(best), gf(general));
        }
    }
}

//! A GEMM for the per-step products of the fused LSTM: `C[N, m] = A[N, k] · B[k, m]` with a
//! small batch `N` (a multiple of 16), `A` (`[x_tᵀ | h_{t-1}ᵀ]` or `dz_t`) small enough to stay
//! in L1/L2 and `B` (the weights) packed once per sequence, not per call: the general GEMM packs the whole weight matrix on every call, which for these shapes costs as
//! much as the product. The weights are packed once per sequence instead. f32 with AVX-512 and FMA only; the caller falls back to the general
//! GEMM elsewhere.

/// Columns of `B` per packed panel (and per register tile).
const PANEL: usize = 12;

/// Can the kernel run here for a batch of `n` rows?
pub(crate) fn usable(n: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        n > 0 && n % 16 == 0 && std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("fma")
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

/// `c = a · B` (or `c += a · B`) with `B` packed by [`pack`]; `a` is `[n, k]`, `c` `[n, m]`,
/// column-major. Panics unless [`usable`]`(n)`.
pub(crate) fn gemm_packed(n: usize, m: usize, k: usize, a: &[f32], packed: &[f32], c: &mut [f32], accumulate: bool) {
    assert!(usable(n), "small gemm: unsupported shape or CPU");
    assert!(a.len() >= n * k && packed.len() >= m.div_ceil(PANEL) * k * PANEL && c.len() >= n * m, "small gemm: operand too small");
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `usable` checked that the CPU has AVX-512F and FMA.
    unsafe {
        gemm_avx512(n, m, k, a, packed, c, accumulate)
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn gemm_avx512(n: usize, m: usize, k: usize, a: &[f32], packed: &[f32], c: &mut [f32], accumulate: bool) {
    for panel in 0..m.div_ceil(PANEL) {
        let bp = &packed[panel * k * PANEL..][..k * PANEL];
        let mut r0 = 0;
        while r0 < n {
            if n - r0 >= 32 {
                // SAFETY: this function's own target features are the tile's.
                unsafe { tile::<2>(r0, panel * PANEL, n, m, k, a, bp, c, accumulate) };
                r0 += 32;
            } else {
                // SAFETY: as above.
                unsafe { tile::<1>(r0, panel * PANEL, n, m, k, a, bp, c, accumulate) };
                r0 += 16;
            }
        }
    }
}

/// One `16R × PANEL` tile of `C`, accumulated in `R × PANEL` registers over the whole `k`: per
/// row step, `R` loads of `a`, `PANEL` broadcasts of `B` at fixed offsets and `R × PANEL` FMAs.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f,fma")]
unsafe fn tile<const R: usize>(r0: usize, j0: usize, n: usize, m: usize, k: usize, a: &[f32], bp: &[f32], c: &mut [f32], accumulate: bool) {
    use std::arch::x86_64::{__m512, _mm512_add_ps, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_set1_ps, _mm512_setzero_ps, _mm512_storeu_ps};
    // SAFETY (whole body): every pointer comes from a slice re-sliced to exactly the 16·R or
    // PANEL elements read or written, and the CPU has AVX-512F and FMA (the caller's contract).
    unsafe {
        let mut acc: [[__m512; R]; PANEL] = [[_mm512_setzero_ps(); R]; PANEL];
        for p in 0..k {
            let ap = &a[r0 + n * p..][..16 * R];
            let row = &bp[p * PANEL..][..PANEL];
            let mut av: [__m512; R] = [_mm512_setzero_ps(); R];
            for (rr, v) in av.iter_mut().enumerate() {
                *v = _mm512_loadu_ps(ap.as_ptr().add(rr * 16));
            }
            for q in 0..PANEL {
                let b = _mm512_set1_ps(row[q]);
                for rr in 0..R {
                    acc[q][rr] = _mm512_fmadd_ps(av[rr], b, acc[q][rr]);
                }
            }
        }
        for q in 0..PANEL.min(m - j0) {
            let cc = &mut c[r0 + n * (j0 + q)..][..16 * R];
            for rr in 0..R {
                let dst = cc.as_mut_ptr().add(rr * 16);
                let v = if accumulate { _mm512_add_ps(_mm512_loadu_ps(dst), acc[q][rr]) } else { acc[q][rr] };
                _mm512_storeu_ps(dst, v);
            }
        }
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
                for (g, w) in got.iter().zip(&want) {
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
        for (n, m, k) in [(16, 1024, 320), (32, 1024, 320), (16, 256, 1024), (32, 256, 1024)] {
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
            println!("n={n} m={m} k={k}: {:.1} us, {:.0} GFLOP/s", best * 1e6, 2.0 * (n * m * k) as f64 / best / 1e9);
        }
    }
}

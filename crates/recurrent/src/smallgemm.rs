//! A GEMM for the per-step products of the fused LSTM: `C[N, m] = A[N, k] · B[k, m]` with a
//! small batch `N` (a multiple of 16), `A` (`[x_tᵀ | h_{t-1}ᵀ]` or `dz_t`) small enough to stay
//! in L1/L2 and `B` (the weights) read straight from its column-major layout, with no packing:
//! the general GEMM packs the whole weight matrix on every call, which for these shapes costs as
//! much as the product. f32 with AVX-512 and FMA only; the caller falls back to the general
//! GEMM elsewhere.

/// `c = a · b` (or `c += a · b`) for f32 when the CPU and the shape allow; `false` when not
/// handled (nothing was written).
pub(crate) fn gemm_f32(n: usize, m: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32], accumulate: bool) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        if n > 0 && n % 16 == 0 && n <= 64 && std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("fma") {
            assert!(a.len() >= n * k && b.len() >= k * m && c.len() >= n * m, "small gemm: operand too small");
            // SAFETY: the CPU has AVX-512F and FMA, checked just above.
            unsafe { gemm_avx512(n, m, k, a, b, c, accumulate) };
            return true;
        }
    }
    let _ = (n, m, k, a, b, c, accumulate);
    false
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn gemm_avx512(n: usize, m: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32], accumulate: bool) {
    let mut r0 = 0;
    while r0 < n {
        if n - r0 >= 32 {
            rows::<2>(r0, n, m, k, a, b, c, accumulate);
            r0 += 32;
        } else {
            rows::<1>(r0, n, m, k, a, b, c, accumulate);
            r0 += 16;
        }
    }
}

/// Rows `r0 .. r0 + 16R` of `C`, in tiles of 12 accumulator registers (`16R × 12/R`), enough
/// independent FMA chains to hide their latency.
#[inline(always)]
fn rows<const R: usize>(r0: usize, n: usize, m: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32], accumulate: bool) {
    let mut j = 0;
    if R == 1 {
        while j + 12 <= m {
            tile::<R, 12>(r0, j, n, k, a, b, c, accumulate);
            j += 12;
        }
    }
    while j + 6 <= m {
        tile::<R, 6>(r0, j, n, k, a, b, c, accumulate);
        j += 6;
    }
    while j < m {
        tile::<R, 1>(r0, j, n, k, a, b, c, accumulate);
        j += 1;
    }
}

/// One `16R × C` tile of `C`, accumulated in registers over the whole `k`.
#[inline(always)]
fn tile<const R: usize, const C: usize>(r0: usize, j0: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32], accumulate: bool) {
    let mut acc = [[[0.0f32; 16]; R]; C];
    let bcols: [&[f32]; C] = std::array::from_fn(|q| &b[k * (j0 + q)..][..k]);
    for p in 0..k {
        let ap = &a[r0 + n * p..][..16 * R];
        for q in 0..C {
            let bq = bcols[q][p];
            for rr in 0..R {
                for l in 0..16 {
                    acc[q][rr][l] = ap[rr * 16 + l].mul_add(bq, acc[q][rr][l]);
                }
            }
        }
    }
    for q in 0..C {
        let cc = &mut c[r0 + n * (j0 + q)..][..16 * R];
        for rr in 0..R {
            for l in 0..16 {
                let v = acc[q][rr][l];
                cc[rr * 16 + l] = if accumulate { cc[rr * 16 + l] + v } else { v };
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
            if super::gemm_f32(n, m, k, &a, &b, &mut got, true) {
                for (g, w) in got.iter().zip(&want) {
                    assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "{g} vs {w}");
                }
            }
        }
        assert!(!super::gemm_f32(8, 4, 4, &[0.0; 32], &[0.0; 16], &mut [0.0; 32], false));
    }
}

//! The f32 forward gate pass of the fused LSTM in AVX-512 intrinsics, 16 cells per vector.
//!
//! Why not leave it to the compiler: the portable pass computes five `1 / (1 + e)` with
//! `vdivps`, a slow, poorly pipelined instruction, and perf put the pass's stalls right after
//! them. Here every reciprocal is `vrcp14ps` (relative error below 2^-14) refined by one Newton
//! step (below 2^-27, under f32 rounding), and `2^n` comes from `vscalefps`: one W3 step's gate
//! pass (8192 cells, one thread) went from 35 to 21 µs.
//!
//! NaN propagates (the clamps put the constant first: `vminps`/`vmaxps` return their second
//! operand when either is NaN), so a diverged model shows NaN instead of saturated gates.
//!
//! Accuracy matches the portable f32 functions in [`crate::fused::kernels`]: `exp` is the same Cephes
//! polynomial; `tanh` is `u / (u + 2)` with `u = e^2x - 1` from the same polynomial, which does
//! not cancel near 0 (the portable one switches to a Taylor polynomial there instead).

use std::arch::x86_64::*;

/// `e^x = 2^n · e^r` for `x` in `[-87, 88]` (the callers clamp), with `n = round(x·log2 e)`
/// and `r = x - n·ln 2` in `[-ln2/2, ln2/2]`. Returns `(e^r - 1, n)`: `e^r - 1 = r + r²·p(r)`
/// with Cephes' degree-5 polynomial `p`, kept without its `1` so that `expm1` loses nothing.
#[inline]
#[target_feature(enable = "avx512f")]
fn exp_parts(x: __m512) -> (__m512, __m512) {
    // adding and subtracting 1.5·2^23 rounds to an integer (two cheap adds instead of vrndscaleps)
    let magic = _mm512_set1_ps(12_582_912.0);
    let n = _mm512_sub_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E), magic), magic);
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693_359_4), x);
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.121_944_4e-4), r);
    let mut p = _mm512_set1_ps(1.987_569_1e-4);
    for c in [1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 0.5] {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
    }
    (_mm512_fmadd_ps(_mm512_mul_ps(p, r), r, r), n)
}

/// `1 / d` for `d ≥ 1`: the 14-bit estimate and one Newton step `r·(2 - d·r)`.
#[inline]
#[target_feature(enable = "avx512f")]
fn recip(d: __m512) -> __m512 {
    let r = _mm512_rcp14_ps(d);
    _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0)))
}

/// `σ(x) = 1 / (1 + e^-x)`.
#[inline]
#[target_feature(enable = "avx512f")]
fn sigmoid(x: __m512) -> __m512 {
    let x = _mm512_max_ps(_mm512_set1_ps(-87.0), _mm512_min_ps(_mm512_set1_ps(87.0), x));
    let (em1, n) = exp_parts(_mm512_sub_ps(_mm512_setzero_ps(), x));
    let one = _mm512_set1_ps(1.0);
    recip(_mm512_add_ps(_mm512_scalef_ps(_mm512_add_ps(em1, one), n), one))
}

/// `tanh(x) = u / (u + 2)` with `u = e^2x - 1`, computed as `2^n·(e^r - 1) + (2^n - 1)`: no
/// cancellation near 0, where `n = 0` and `u` is the polynomial's `e^r - 1` itself.
#[inline]
#[target_feature(enable = "avx512f")]
fn tanh(x: __m512) -> __m512 {
    // tanh(9) rounds to 1 in f32, so clamping there loses nothing and keeps e^2x finite
    let x = _mm512_max_ps(_mm512_set1_ps(-9.0), _mm512_min_ps(_mm512_set1_ps(9.0), x));
    let (em1, n) = exp_parts(_mm512_add_ps(x, x));
    let one = _mm512_set1_ps(1.0);
    let scale = _mm512_scalef_ps(one, n);
    let u = _mm512_fmadd_ps(em1, scale, _mm512_sub_ps(scale, one));
    _mm512_mul_ps(u, recip(_mm512_add_ps(u, _mm512_set1_ps(2.0))))
}

/// The forward gate pass over `len` cells (see `kernels::block_forward`): reads the gate
/// pre-activations `gi, gf, gg, go` and `c_{t-1}` (`cp`), writes `c_t` and `h_t`, and when
/// `KEEP` also the activated gates (over the pre-activations) and `tanh(c_t)` for backward.
///
/// # Safety
/// The CPU has AVX-512F; every slice holds `len` elements (the tails run masked).
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn block_forward<const KEEP: bool>(
    gi: &mut [f32],
    gf: &mut [f32],
    gg: &mut [f32],
    go: &mut [f32],
    cp: &[f32],
    cc: &mut [f32],
    tcc: &mut [f32],
    hc: &mut [f32],
) {
    let len = cc.len();
    assert!(
        [gi.len(), gf.len(), gg.len(), go.len(), cp.len(), hc.len()].iter().all(|&l| l >= len) && (!KEEP || tcc.len() >= len),
        "gate pass: slices shorter than the block"
    );
    let mut k = 0;
    while k < len {
        // full vectors, then one masked vector for the tail
        let mask: __mmask16 = if len - k >= 16 { !0 } else { (1u16 << (len - k)) - 1 };
        // SAFETY: the `mask` lanes from `k` are in bounds of every slice (asserted above).
        unsafe {
            macro_rules! ld {
                ($s:expr) => {
                    _mm512_maskz_loadu_ps(mask, $s.as_ptr().add(k))
                };
            }
            macro_rules! st {
                ($s:expr, $v:expr) => {
                    _mm512_mask_storeu_ps($s.as_mut_ptr().add(k), mask, $v)
                };
            }
            let i = sigmoid(ld!(gi));
            let f = sigmoid(ld!(gf));
            let g = tanh(ld!(gg));
            let o = sigmoid(ld!(go));
            let c = _mm512_fmadd_ps(f, ld!(cp), _mm512_mul_ps(i, g));
            let t = tanh(c);
            st!(cc, c);
            st!(hc, _mm512_mul_ps(o, t));
            if KEEP {
                st!(gi, i);
                st!(gf, f);
                st!(gg, g);
                st!(go, o);
                st!(tcc, t);
            }
        }
        k += 16;
    }
}

#[cfg(test)]
mod tests {

    /// The vector functions against f64 on a dense grid, the region near 0 and the clamped ends
    /// (the bounds of the portable f32 functions' own test, tanh's tighter).
    #[test]
    fn vector_functions_are_accurate() {
        if !std::is_x86_feature_detected!("avx512f") {
            return;
        }
        let mut xs: Vec<f32> = (-4000..=4000).map(|k| k as f32 / 200.0).collect();
        xs.extend([-200.0, -88.5, -87.0, -1e-30, 0.0, 1e-30, 0.0624, 0.0626, 87.0, 88.5, 200.0]);
        let n = xs.len();
        let (mut gi, mut gf, mut gg, mut go) = (xs.clone(), xs.clone(), xs.clone(), xs.clone());
        let cp = vec![0.5f32; n];
        let (mut c, mut tc, mut h) = (vec![0.0f32; n], vec![0.0f32; n], vec![0.0f32; n]);
        // SAFETY: AVX-512F checked above; every slice holds n elements.
        unsafe { super::block_forward::<true>(&mut gi, &mut gf, &mut gg, &mut go, &cp, &mut c, &mut tc, &mut h) };
        let rel = |a: f32, b: f64| (a as f64 - b).abs() / b.abs().max(1e-30);
        for (k, &x) in xs.iter().enumerate() {
            let xd = x as f64;
            let (s, t) = (1.0 / (1.0 + (-xd).exp()), xd.tanh());
            assert!((gi[k] as f64 - s).abs() < 3e-7 && rel(gi[k], s) < 1e-6, "sigmoid({x}) = {} vs {s}", gi[k]);
            assert_eq!((gf[k], go[k]), (gi[k], gi[k]));
            assert!(rel(gg[k], t) < 1e-6 || (t.abs() < 1e-30 && gg[k].abs() < 1e-30), "tanh({x}) = {} vs {t}", gg[k]);
            // c = σ(x)·0.5 + σ(x)·tanh(x); tanh(c) and h = σ(x)·tanh(c) from the vector values
            let (fc, ig) = (gf[k] as f64 * 0.5, gi[k] as f64 * gg[k] as f64);
            assert!((c[k] as f64 - (fc + ig)).abs() <= 1e-6 * (fc.abs() + ig.abs()).max(1e-6), "c at {x}");
            assert!(rel(tc[k], (c[k] as f64).tanh()) < 1e-6 || c[k] == 0.0, "tanh(c) at {x}");
            assert!((h[k] - go[k] * tc[k]).abs() <= 1e-6, "h at {x}");
        }
        assert_eq!(gi[n - 1], 1.0);
        assert_eq!(gg[n - 1], 1.0);
        assert_eq!(gg[n - 11], -1.0);
        assert!(gi[n - 11] >= 0.0 && gi[n - 11] < 1e-37);
    }

    /// A NaN pre-activation or cell state gives NaN where it flows (not a saturated gate).
    #[test]
    fn nan_propagates() {
        if !std::is_x86_feature_detected!("avx512f") {
            return;
        }
        let n = 16;
        let (mut gi, mut gf, mut gg, mut go) = (vec![0.5f32; n], vec![0.5f32; n], vec![0.5f32; n], vec![0.5f32; n]);
        let mut cp = vec![0.5f32; n];
        (gi[0], gf[1], gg[2], go[3], cp[4]) = (f32::NAN, f32::NAN, f32::NAN, f32::NAN, f32::NAN);
        let (mut c, mut tc, mut h) = (vec![0.0f32; n], vec![0.0f32; n], vec![0.0f32; n]);
        // SAFETY: AVX-512F checked above; every slice holds n elements.
        unsafe { super::block_forward::<true>(&mut gi, &mut gf, &mut gg, &mut go, &cp, &mut c, &mut tc, &mut h) };
        assert!(gi[0].is_nan() && gf[1].is_nan() && gg[2].is_nan() && go[3].is_nan());
        for k in 0..5 {
            assert!(h[k].is_nan(), "h at {k}");
        }
        assert!(c[..3].iter().chain(&c[4..5]).all(|v| v.is_nan()) && !c[3].is_nan());
        assert!(h[5..].iter().all(|v| v.is_finite()));
    }

    /// Without `KEEP` the pre-activations are left alone and `c`, `h` are the same; the masked
    /// tail writes nothing past the block.
    #[test]
    fn forward_only_writes_c_and_h() {
        if !std::is_x86_feature_detected!("avx512f") {
            return;
        }
        let n = 37;
        let z: Vec<f32> = (0..4 * n).map(|i| ((i * 37 % 101) as f32 - 50.0) / 12.0).collect();
        let cp: Vec<f32> = (0..n).map(|i| ((i * 13 % 29) as f32 - 14.0) / 7.0).collect();
        let run = |keep: bool| {
            let mut g = z.clone();
            let (mut c, mut tc, mut h) = (vec![9.0f32; n + 3], vec![9.0f32; n + 3], vec![9.0f32; n + 3]);
            let (gi, rest) = g.split_at_mut(n);
            let (gf, rest) = rest.split_at_mut(n);
            let (gg, go) = rest.split_at_mut(n);
            // SAFETY: AVX-512F checked above; the block is n long.
            unsafe {
                if keep {
                    super::block_forward::<true>(gi, gf, gg, go, &cp, &mut c[..n], &mut tc[..n], &mut h[..n]);
                } else {
                    super::block_forward::<false>(gi, gf, gg, go, &cp, &mut c[..n], &mut tc[..n], &mut h[..n]);
                }
            }
            (g, c, tc, h)
        };
        let (g1, c1, tc1, h1) = run(true);
        let (g0, c0, tc0, h0) = run(false);
        assert_eq!((c0.clone(), h0.clone()), (c1, h1));
        assert_eq!(g0, z);
        assert_ne!(g1, z);
        assert!(tc0.iter().all(|&v| v == 9.0));
        assert!(tc1[..n].iter().all(|&v| v != 9.0) && tc1[n..].iter().all(|&v| v == 9.0));
        assert!(c0[n..].iter().chain(&h0[n..]).all(|&v| v == 9.0));
    }
}

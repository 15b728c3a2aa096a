//! The f32 forward gate pass of the fused LSTM in AVX-512 intrinsics, 16 cells per vector.
//!
//! Why not leave it to the compiler: the portable pass computes five `1 / (1 + e)` with
//! `vdivps`, a slow, poorly pipelined instruction, and perf put the pass's stalls right after
//! them. Here every reciprocal is `vrcp14ps` (relative error below 2^-14) refined by one Newton
//! step (below 2^-27, under f32 rounding), and `2^n` comes from `vscalefps`: one W3 step's gate
//! pass (8192 cells, one thread) went from 35 to 21 µs. Each vector's work is a chain (the gate
//! sigmoids, then `c`, then its tanh) that the core cannot overlap far enough on its own, so the
//! exp polynomial is evaluated by Estrin's scheme (three levels instead of Horner's five) and
//! several vectors are computed side by side ([`wide`]): 4.64 -> 2.9 µs per 4096 cells (a W3
//! chunk-step without `KEEP`; `gate_pass_time` below).
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
    // p(r) = c0 + c1·r + … + c5·r⁵ by Estrin's scheme: three levels of independent products
    // instead of Horner's chain of five, which sat on the critical path of every gate
    let c = |v: f32| _mm512_set1_ps(v);
    let r2 = _mm512_mul_ps(r, r);
    let p01 = _mm512_fmadd_ps(c(1.666_666_5e-1), r, c(0.5));
    let p23 = _mm512_fmadd_ps(c(8.333_452e-3), r, c(4.166_579_6e-2));
    let p45 = _mm512_fmadd_ps(c(1.987_569_1e-4), r, c(1.398_199_9e-3));
    let p = _mm512_fmadd_ps(_mm512_fmadd_ps(p45, r2, p23), r2, p01);
    (_mm512_fmadd_ps(p, r2, r), n)
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
    // W vectors per turn (their chains overlap; more spill registers), then single ones and
    // the masked tail
    let mut k = if KEEP {
        // SAFETY: as this function's (the CPU has AVX-512F, the slices hold `len` elements).
        unsafe { wide::<KEEP, 6>(gi, gf, gg, go, cp, cc, tcc, hc) }
    } else {
        // SAFETY: as above.
        unsafe { wide::<KEEP, 8>(gi, gf, gg, go, cp, cc, tcc, hc) }
    };
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

/// The cells of [`block_forward`] in turns of `W` vectors (16W cells) while whole turns fit;
/// returns how many cells it did. Each vector is a chain of about 130 cycles (the gate
/// sigmoids, then `c`, then its tanh), which the core overlaps only this far: per 4096 cells
/// (a W3 chunk-step) one vector per turn took 4.20 µs, four 3.33, eight 2.86 without `KEEP`
/// (3.57 with it, where six took 3.39 and sixteen spilled to 8.8).
///
/// # Safety
/// As [`block_forward`], whose assertion this relies on.
#[inline]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn wide<const KEEP: bool, const W: usize>(
    gi: &mut [f32],
    gf: &mut [f32],
    gg: &mut [f32],
    go: &mut [f32],
    cp: &[f32],
    cc: &mut [f32],
    tcc: &mut [f32],
    hc: &mut [f32],
) -> usize {
    let len = cc.len();
    let mut k = 0;
    while k + 16 * W <= len {
        // SAFETY: lanes k .. k + 16W are in bounds of every slice (the caller asserted that
        // each holds `len` elements, `tcc` too when KEEP).
        unsafe {
            let ld = |s: &[f32], j: usize| _mm512_loadu_ps(s.as_ptr().add(k + 16 * j));
            let i: [__m512; W] = std::array::from_fn(|j| sigmoid(ld(gi, j)));
            let f: [__m512; W] = std::array::from_fn(|j| sigmoid(ld(gf, j)));
            let g: [__m512; W] = std::array::from_fn(|j| tanh(ld(gg, j)));
            let o: [__m512; W] = std::array::from_fn(|j| sigmoid(ld(go, j)));
            let c: [__m512; W] = std::array::from_fn(|j| _mm512_fmadd_ps(f[j], ld(cp, j), _mm512_mul_ps(i[j], g[j])));
            let t = c.map(|v| tanh(v));
            for j in 0..W {
                let at = k + 16 * j;
                _mm512_storeu_ps(cc.as_mut_ptr().add(at), c[j]);
                _mm512_storeu_ps(hc.as_mut_ptr().add(at), _mm512_mul_ps(o[j], t[j]));
                if KEEP {
                    _mm512_storeu_ps(gi.as_mut_ptr().add(at), i[j]);
                    _mm512_storeu_ps(gf.as_mut_ptr().add(at), f[j]);
                    _mm512_storeu_ps(gg.as_mut_ptr().add(at), g[j]);
                    _mm512_storeu_ps(go.as_mut_ptr().add(at), o[j]);
                    _mm512_storeu_ps(tcc.as_mut_ptr().add(at), t[j]);
                }
            }
        }
        k += 16 * W;
    }
    k
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
        // whole turns of both widths (8 vectors without KEEP, 6 with), single vectors, a tail
        let n = 2 * 128 + 37;
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

#[cfg(test)]
mod timing {
    /// `cargo test -p flux-recurrent --release --lib gate_pass_time -- --ignored --nocapture`:
    /// ns per cell of the forward gate pass over one W3 chunk-step (4096 cells).
    #[test]
    #[ignore]
    fn gate_pass_time() {
        if !std::is_x86_feature_detected!("avx512f") {
            return;
        }
        let n = 4096;
        let z: Vec<f32> = (0..4 * n).map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0).collect();
        let cp: Vec<f32> = (0..n).map(|i| ((i * 13 % 29) as f32 - 14.0) / 7.0).collect();
        let (mut c, mut tc, mut h) = (vec![0.0f32; n], vec![0.0f32; n], vec![0.0f32; n]);
        for keep in [false, true] {
            let mut best = f64::INFINITY;
            for _ in 0..200 {
                let mut g = z.clone();
                let (gi, rest) = g.split_at_mut(n);
                let (gf, rest) = rest.split_at_mut(n);
                let (gg, go) = rest.split_at_mut(n);
                let t0 = std::time::Instant::now();
                // SAFETY: AVX-512F checked above; every slice holds n elements.
                unsafe {
                    if keep {
                        super::block_forward::<true>(gi, gf, gg, go, &cp, &mut c, &mut tc, &mut h);
                    } else {
                        super::block_forward::<false>(gi, gf, gg, go, &cp, &mut c, &mut tc, &mut h);
                    }
                }
                best = best.min(t0.elapsed().as_secs_f64());
            }
            println!("keep {keep}: {:.2} us per 4096 cells, {:.3} ns per cell", best * 1e6, best * 1e9 / n as f64);
        }
    }
}

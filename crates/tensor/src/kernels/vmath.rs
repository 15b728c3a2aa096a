//! Vectorised f32 math: `exp`, `tanh`, the tanh-form GELU with its derivative, and softmax
//! along contiguous columns with its gradient, written branch-free (selects instead of branches,
//! the exponent built from bits) so the compiler turns each map into SIMD code, where libm's
//! scalar `expf`/`tanhf` calls cost a transformer's MLP a third of its time. Each function is
//! accurate to a few ulps (tests compare with f64's std).
//!
//! The loops run in an AVX-512 or AVX2 build picked at run time where the CPU has one (16 or 8
//! lanes instead of SSE2's 4). Only plain `+ - * /` are used (no fused multiply-add), so every
//! build gives bit-identical results.

/// `1.5 · 2^23`: adding it to a float of magnitude below `2^22` rounds that float to an integer,
/// which then sits in the low mantissa bits of the sum (the magic-number rounding trick).
const ROUND_MAGIC: f32 = 12_582_912.0;
/// The clamp of `exp`'s input: below `EXP_LO` the result would be subnormal (0 is returned),
/// above `EXP_HI` it overflows to infinity as it should.
const EXP_LO: f32 = -86.9;
const EXP_HI: f32 = 89.0;
/// `ln 2` in two parts (Cody and Waite): `n·LN2_HI` is exact for the `n` that occur.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// `√(2/π)` and the cubic coefficient of the tanh-form GELU.
const GELU_C: f32 = 0.797_884_6;
const GELU_A: f32 = 0.044_715;

/// `e^x` for `x` in `[EXP_LO, EXP_HI]` (callers clamp): `2^n · e^r` with `|r| ≤ ln2/2` and
/// `e^r` from its Taylor polynomial of degree 7 (truncation below 6e-9 relative), the power of
/// two applied as `2·2^(n-1)` so that `n = 128` overflows to infinity. NaN stays NaN.
#[inline(always)]
fn exp_clamped(x: f32) -> f32 {
    let t = x * std::f32::consts::LOG2_E + ROUND_MAGIC;
    let n = t - ROUND_MAGIC;
    // the integer n is in t's low mantissa bits, offset by 2^22
    let ni = (t.to_bits() as i32).wrapping_sub(ROUND_MAGIC.to_bits() as i32);
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0 / 5040.0;
    let p = p * r + 1.0 / 720.0;
    let p = p * r + 1.0 / 120.0;
    let p = p * r + 1.0 / 24.0;
    let p = p * r + 1.0 / 6.0;
    let p = p * r + 0.5;
    let p = p * r + 1.0;
    let p = p * r + 1.0;
    let half_scale = f32::from_bits((ni.wrapping_add(126) << 23) as u32);
    // doubling p first keeps the product normal at the low end (a subnormal intermediate costs
    // a hundred cycles), and lets n = 128 overflow to infinity at the high end
    (p * 2.0) * half_scale
}

/// Clamps to `[lo, hi]`, keeping NaN (the comparisons are false for it).
#[inline(always)]
fn clamp(x: f32, lo: f32, hi: f32) -> f32 {
    let x = if x < lo { lo } else { x };
    if x > hi {
        hi
    } else {
        x
    }
}

/// `e^x`: 0 below -86.9 (instead of subnormals), infinity above 88.72, NaN for NaN.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    let e = exp_clamped(clamp(x, EXP_LO, EXP_HI));
    if x < EXP_LO {
        0.0
    } else {
        e
    }
}

/// `tanh x`: the odd Taylor series through `x^17` below |x| = 0.5 (truncation below 1e-8
/// relative), `1 - 2/(e^{2|x|} + 1)` above (where the cancellation costs at most a factor 1.2),
/// the sign put back last; exactly ±1 from |x| = 9.1.
#[inline(always)]
pub(crate) fn tanh(x: f32) -> f32 {
    let a = x.abs();
    let z = a * a;
    let p = 6_404_582.0 / 10_854_718_875.0;
    let p = p * z - 929_569.0 / 638_512_875.0;
    let p = p * z + 21_844.0 / 6_081_075.0;
    let p = p * z - 1_382.0 / 155_925.0;
    let p = p * z + 62.0 / 2_835.0;
    let p = p * z - 17.0 / 315.0;
    let p = p * z + 2.0 / 15.0;
    let p = p * z - 1.0 / 3.0;
    let small = a + a * z * p;
    let e = exp_clamped(clamp(2.0 * a, 0.0, 40.0));
    let large = 1.0 - 2.0 / (e + 1.0);
    let t = if a < 0.5 { small } else { large };
    t.copysign(x)
}

/// `e^{-2u}` for the GELU's `u = √(2/π)(x + 0.044715x³)`, clamped to stay finite (so that
/// `e·s²` in the derivative is never `∞·0`, and `s` never subnormal, which is slow).
#[inline(always)]
fn gelu_exp(x: f32) -> f32 {
    let u = x * (GELU_C + GELU_C * GELU_A * x * x);
    exp_clamped(clamp(-2.0 * u, EXP_LO, 80.0))
}

/// Flux's tanh-form GELU `0.5x(1 + tanh u)`, evaluated as the identical `x·σ(2u) =
/// x / (1 + e^{-2u})`: one exponential, and no cancellation for negative `x`.
#[inline(always)]
pub(crate) fn gelu(x: f32) -> f32 {
    x / (1.0 + gelu_exp(x))
}

/// `gelu'(x) = s + 2x·u'·s(1-s)` with `s = σ(2u)` and `u' = √(2/π)(1 + 3·0.044715x²)`;
/// `s(1-s)` is taken as `e·s²` (`e = e^{-2u}`), exact where `s` is near 1.
#[inline(always)]
pub(crate) fn gelu_deriv(x: f32) -> f32 {
    let e = gelu_exp(x);
    let s = 1.0 / (1.0 + e);
    let du = GELU_C + 3.0 * GELU_C * GELU_A * x * x;
    s + 2.0 * x * du * (e * s * s)
}

/// `g · gelu'(x)`, the GELU's backward rule for one element.
#[inline(always)]
pub(crate) fn gelu_grad(x: f32, g: f32) -> f32 {
    g * gelu_deriv(x)
}

/// `f` over `x` into a new vector (`f` must be `#[inline(always)]`: a closure
/// the compiler declines to inline is a call per element), in the widest build the CPU runs.
#[inline(always)]
pub(crate) fn map1(x: &[f32], f: impl Fn(f32) -> f32) -> Vec<f32> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F, the only requirement of `map1_avx512`.
        return unsafe { map1_avx512(x, f) };
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, the only requirement of `map1_avx2`.
        return unsafe { map1_avx2(x, f) };
    }
    map1_in(x, f)
}

/// `f` over pairs of `a` and `b` (of one length) into a new vector, in the widest build (`f`
/// `#[inline(always)]`, as for [`map1`]).
#[inline(always)]
pub(crate) fn map2(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> Vec<f32> {
    assert_eq!(a.len(), b.len(), "map2: operands of {} and {} elements", a.len(), b.len());
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F, the only requirement of `map2_avx512`.
        return unsafe { map2_avx512(a, b, f) };
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, the only requirement of `map2_avx2`.
        return unsafe { map2_avx2(a, b, f) };
    }
    map2_in(a, b, f)
}

/// The loops of [`map1`] and [`map2`]: plain loops over a zeroed output, which inline
/// completely (a `collect` can leave its loop in a generic function outside the AVX2 build).
#[inline(always)]
fn map1_in(x: &[f32], f: impl Fn(f32) -> f32) -> Vec<f32> {
    let mut out = vec![0.0f32; x.len()];
    for (o, &v) in out.iter_mut().zip(x) {
        *o = f(v);
    }
    out
}

#[inline(always)]
fn map2_in(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> Vec<f32> {
    let mut out = vec![0.0f32; a.len()];
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = f(x, y);
    }
    out
}

/// Softmax of each run of `n` consecutive elements of `x` (the columns of a `[n, m]` matrix):
/// the maximum subtracted (0 instead when it is infinite, as the definition gives), the
/// exponentials and their sum in one vectorised pass, then one scaling pass.
pub(crate) fn softmax_columns(x: &[f32], n: usize) -> Vec<f32> {
    assert!(n > 0 && x.len().is_multiple_of(n), "softmax_columns: {} elements in columns of {n}", x.len());
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F, the only requirement of `softmax_columns_avx512`.
        return unsafe { softmax_columns_avx512(x, n) };
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, the only requirement of `softmax_columns_avx2`.
        return unsafe { softmax_columns_avx2(x, n) };
    }
    softmax_columns_in(x, n)
}

/// `dx = y .* (g .- sum(g .* y))` for each run of `n` elements (the softmax's backward rule
/// along columns of `[n, m]`), two passes per column.
pub(crate) fn softmax_grad_columns(y: &[f32], g: &[f32], n: usize) -> Vec<f32> {
    assert!(n > 0 && y.len() == g.len() && y.len().is_multiple_of(n), "softmax_grad_columns: {} and {} elements in columns of {n}", y.len(), g.len());
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F, the only requirement of `softmax_grad_columns_avx512`.
        return unsafe { softmax_grad_columns_avx512(y, g, n) };
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, the only requirement of `softmax_grad_columns_avx2`.
        return unsafe { softmax_grad_columns_avx2(y, g, n) };
    }
    softmax_grad_columns_in(y, g, n)
}

/// A sum in eight interleaved lanes (a reassociation the compiler may not make itself, so
/// that the additions vectorise).
#[inline(always)]
fn sum_lanes(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks = x.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// The maximum in eight interleaved lanes (NaN ignored: it reaches the result through `exp`).
#[inline(always)]
fn max_lanes(x: &[f32]) -> f32 {
    let pick = |m: f32, v: f32| if v > m { v } else { m };
    let mut acc = [f32::NEG_INFINITY; 8];
    let chunks = x.chunks_exact(8);
    let tail = chunks.remainder().iter().fold(f32::NEG_INFINITY, |m, &v| pick(m, v));
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = pick(*a, v);
        }
    }
    acc.iter().fold(tail, |m, &v| pick(m, v))
}

#[inline(always)]
fn softmax_columns_in(x: &[f32], n: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; x.len()];
    for (xc, oc) in x.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
        let m = max_lanes(xc);
        let m = if m.is_infinite() { 0.0 } else { m };
        for (o, &v) in oc.iter_mut().zip(xc) {
            *o = exp(v - m);
        }
        let inv = 1.0 / sum_lanes(oc);
        for o in oc.iter_mut() {
            *o *= inv;
        }
    }
    out
}

#[inline(always)]
fn softmax_grad_columns_in(y: &[f32], g: &[f32], n: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; y.len()];
    for ((yc, gc), oc) in y.chunks_exact(n).zip(g.chunks_exact(n)).zip(out.chunks_exact_mut(n)) {
        for ((o, &y), &g) in oc.iter_mut().zip(yc).zip(gc) {
            *o = g * y;
        }
        let s = sum_lanes(oc);
        for ((o, &y), &g) in oc.iter_mut().zip(yc).zip(gc) {
            *o = y * (g - s);
        }
    }
    out
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn softmax_columns_avx2(x: &[f32], n: usize) -> Vec<f32> {
    softmax_columns_in(x, n)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn softmax_columns_avx512(x: &[f32], n: usize) -> Vec<f32> {
    softmax_columns_in(x, n)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn softmax_grad_columns_avx2(y: &[f32], g: &[f32], n: usize) -> Vec<f32> {
    softmax_grad_columns_in(y, g, n)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn softmax_grad_columns_avx512(y: &[f32], g: &[f32], n: usize) -> Vec<f32> {
    softmax_grad_columns_in(y, g, n)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn map1_avx2(x: &[f32], f: impl Fn(f32) -> f32) -> Vec<f32> {
    map1_in(x, f)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn map1_avx512(x: &[f32], f: impl Fn(f32) -> f32) -> Vec<f32> {
    map1_in(x, f)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn map2_avx2(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> Vec<f32> {
    map2_in(a, b, f)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn map2_avx512(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> Vec<f32> {
    map2_in(a, b, f)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units in the last place between an f32 and the f32 nearest the f64 truth.
    fn ulps(got: f32, want: f64) -> u32 {
        let w = want as f32;
        if got == w {
            return 0;
        }
        let key = |v: f32| {
            let b = v.to_bits() as i32;
            if b < 0 {
                i32::MIN - b
            } else {
                b
            }
        };
        key(got).abs_diff(key(w))
    }

    /// Every 97th f32 in `[lo, hi]` (stepping by bit patterns covers every binade evenly).
    fn sweep(lo: f32, hi: f32) -> impl Iterator<Item = f32> {
        let mut out = Vec::new();
        for sign in [1.0f32, -1.0] {
            let mut b = lo.to_bits();
            while f32::from_bits(b) <= hi {
                out.push(sign * f32::from_bits(b));
                b += 97;
            }
        }
        out.into_iter()
    }

    /// The f64 references, in the σ form (the tanh form cancels in f64 too for x < -5).
    fn gelu64(x: f64) -> f64 {
        x * s64(x)
    }

    fn s64(x: f64) -> f64 {
        let u = (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3));
        1.0 / (1.0 + (-2.0 * u).exp())
    }

    fn gelu_deriv64(x: f64) -> f64 {
        let du = (2.0 / std::f64::consts::PI).sqrt() * (1.0 + 3.0 * 0.044715 * x * x);
        let s = s64(x);
        s + 2.0 * x * du * s * (1.0 - s)
    }

    #[test]
    fn exp_within_two_ulps() {
        let worst = sweep(1e-8, 86.8).chain(sweep(86.8, 88.7).filter(|&x| x > 0.0)).map(|x| ulps(exp(x), (x as f64).exp())).max().unwrap();
        assert!(worst <= 2, "exp: {worst} ulps");
        assert_eq!((exp(0.0), exp(-100.0), exp(88.8), exp(f32::INFINITY)), (1.0, 0.0, f32::INFINITY, f32::INFINITY));
        assert!(exp(f32::NAN).is_nan());
    }

    #[test]
    fn tanh_within_three_ulps() {
        let worst = sweep(1e-30, 20.0).map(|x| ulps(tanh(x), (x as f64).tanh())).max().unwrap();
        assert!(worst <= 3, "tanh: {worst} ulps");
        assert_eq!((tanh(0.0), tanh(-0.0).to_bits(), tanh(1e4), tanh(f32::NEG_INFINITY)), (0.0, (-0.0f32).to_bits(), 1.0, -1.0));
        assert!(tanh(f32::NAN).is_nan());
    }

    #[test]
    fn gelu_and_derivative_match_the_tanh_form() {
        // relative accuracy where the value is not tiny; the exponent 2u carries |2u|·ulp of
        // rounding, so the bound is relative to the function's own conditioning
        for x in sweep(1e-20, 12.0) {
            let (x64, y, d) = (x as f64, gelu(x) as f64, gelu_deriv(x) as f64);
            let cond = 1.0 + (x64 * x64 * x64).abs() * 0.2;
            assert!((y - gelu64(x64)).abs() <= 4e-7 * cond * gelu64(x64).abs() + 1e-30, "gelu({x}) = {y}, want {}", gelu64(x64));
            assert!((d - gelu_deriv64(x64)).abs() <= 4e-7 * cond * (1.0 + x64.abs()), "gelu'({x}) = {d}, want {}", gelu_deriv64(x64));
        }
        assert_eq!((gelu(0.0), gelu(30.0), gelu_deriv(30.0)), (0.0, 30.0, 1.0));
        assert!(gelu(-30.0) <= 0.0 && gelu(-30.0) > -1e-30 && gelu_deriv(-30.0).abs() < 1e-30);
    }

    #[test]
    fn softmax_columns_and_their_gradient() {
        let x: Vec<f32> = (0..60).map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.7).collect();
        let g: Vec<f32> = (0..60).map(|i| ((i * 13 % 7) as f32 - 3.0) * 0.3).collect();
        for n in [1, 3, 12, 20] {
            let (y, d) = (softmax_columns(&x, n), softmax_grad_columns(&softmax_columns(&x, n), &g, n));
            assert_eq!((softmax_columns_in(&x, n), softmax_grad_columns_in(&y, &g, n)), (y.clone(), d.clone()));
            for c in 0..60 / n {
                let col = c * n..(c + 1) * n;
                let e: Vec<f64> = x[col.clone()].iter().map(|&v| (v as f64).exp()).collect();
                let total: f64 = e.iter().sum();
                let want: Vec<f64> = e.iter().map(|v| v / total).collect();
                let gy: f64 = want.iter().zip(&g[col.clone()]).map(|(y, &g)| y * g as f64).sum();
                for (k, i) in col.enumerate() {
                    assert!((y[i] as f64 - want[k]).abs() < 1e-6, "softmax column {c}, n {n}");
                    assert!((d[i] as f64 - want[k] * (g[i] as f64 - gy)).abs() < 1e-6, "gradient column {c}, n {n}");
                }
            }
        }
        // a masked (-1e30) entry is exactly 0; a column with an Inf is NaN (∞/∞)
        let y = softmax_columns(&[0.0, -1e30, f32::INFINITY, 1.0], 2);
        assert_eq!(y[..2], [1.0, 0.0]);
        assert!(y[2].is_nan());
    }

    #[test]
    fn simd_and_scalar_builds_agree() {
        // (whichever build this CPU runs, against the plain loop)
        let x: Vec<f32> = sweep(1e-3, 10.0).collect();
        let scalar: Vec<f32> = x.iter().map(|&v| tanh(v)).collect();
        assert_eq!(map1(&x, tanh), scalar);
        let g: Vec<f32> = x.iter().map(|&v| v * 0.5).collect();
        let scalar: Vec<f32> = x.iter().zip(&g).map(|(&v, &g)| g * gelu_deriv(v)).collect();
        assert_eq!(map2(&x, &g, gelu_grad), scalar);
    }
}

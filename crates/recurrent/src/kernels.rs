//! Elementwise kernels of the fused LSTM: the gate pass forward (one sweep over the `4out` gate
//! pre-activations of a step computing `i, f, g, o`, the new `c` and `h`) and backward, in f32
//! and f64, with no allocation. f32 uses branch-free `exp`-based sigmoid and tanh that the
//! compiler vectorises (about 1 ulp of `exp`); f64 uses the standard library.

use flux_tensor::GemmElement;

/// Element types the fused kernels run on.
pub(crate) trait Kern: GemmElement {
    fn sigmoid(x: Self) -> Self;
    fn tanh_k(x: Self) -> Self;
}

impl Kern for f64 {
    #[inline(always)]
    fn sigmoid(x: f64) -> f64 {
        flux_tensor::unary::sigmoid(x)
    }
    #[inline(always)]
    fn tanh_k(x: f64) -> f64 {
        x.tanh()
    }
}

/// `e^x` for f32 without branches (Cephes' polynomial on `[-ln2/2, ln2/2]` and an exponent
/// shift), clamped to the finite range.
#[inline(always)]
fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23: adding and subtracting it rounds to an integer
    let x = x.clamp(-87.0, 88.0);
    let n = (x * LOG2E + MAGIC) - MAGIC;
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 5.000_000_1e-1;
    let e = p * r * r + r + 1.0;
    e * f32::from_bits((((n as i32) + 127) as u32) << 23)
}

impl Kern for f32 {
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

/// Forward gate pass of one step over `n` columns. `g` holds `Wi x + Wh h` per column (gates
/// stacked input, forget, cell, output, `hs` each) and is overwritten with the activated gates;
/// writes `c`, `tanh(c)` and `h`.
#[inline(always)]
pub(crate) fn gates_forward<E: Kern>(g: &mut [E], b: &[E], c_prev: &[E], c: &mut [E], tc: &mut [E], h: &mut [E], hs: usize, n: usize) {
    let (bi, rest) = b.split_at(hs);
    let (bf, rest) = rest.split_at(hs);
    let (bg, bo) = rest.split_at(hs);
    for col in 0..n {
        let gc = &mut g[col * 4 * hs..(col + 1) * 4 * hs];
        let (gi, rest) = gc.split_at_mut(hs);
        let (gf, rest) = rest.split_at_mut(hs);
        let (gg, go) = rest.split_at_mut(hs);
        let cp = &c_prev[col * hs..(col + 1) * hs];
        let cc = &mut c[col * hs..(col + 1) * hs];
        let tcc = &mut tc[col * hs..(col + 1) * hs];
        let hc = &mut h[col * hs..(col + 1) * hs];
        for j in 0..hs {
            let i = E::sigmoid(gi[j] + bi[j]);
            let f = E::sigmoid(gf[j] + bf[j]);
            let gv = E::tanh_k(gg[j] + bg[j]);
            let o = E::sigmoid(go[j] + bo[j]);
            let cn = f * cp[j] + i * gv;
            let t = E::tanh_k(cn);
            gi[j] = i;
            gf[j] = f;
            gg[j] = gv;
            go[j] = o;
            cc[j] = cn;
            tcc[j] = t;
            hc[j] = o * t;
        }
    }
}

/// Backward gate pass of one step over `n` columns. Given the activated gates `a`, `c_{t-1}`,
/// `tanh(c_t)`, the gradient `dh` reaching `h_t` and `dc` reaching `c_t` (overwritten with the
/// gradient reaching `c_{t-1}`), writes the gradient of the gate pre-activations into `dg`.
#[inline(always)]
pub(crate) fn gates_backward<E: Kern>(a: &[E], c_prev: &[E], tc: &[E], dh: &[E], dc: &mut [E], dg: &mut [E], hs: usize, n: usize) {
    let one = E::ONE;
    for col in 0..n {
        let ac = &a[col * 4 * hs..(col + 1) * 4 * hs];
        let (ai, rest) = ac.split_at(hs);
        let (af, rest) = rest.split_at(hs);
        let (ag, ao) = rest.split_at(hs);
        let dgc = &mut dg[col * 4 * hs..(col + 1) * 4 * hs];
        let (di, rest) = dgc.split_at_mut(hs);
        let (df, rest) = rest.split_at_mut(hs);
        let (dgg, dout) = rest.split_at_mut(hs);
        let cp = &c_prev[col * hs..(col + 1) * hs];
        let tcc = &tc[col * hs..(col + 1) * hs];
        let dhc = &dh[col * hs..(col + 1) * hs];
        let dcc = &mut dc[col * hs..(col + 1) * hs];
        for j in 0..hs {
            let (i, f, gv, o, t) = (ai[j], af[j], ag[j], ao[j], tcc[j]);
            let dhj = dhc[j];
            let dcj = dcc[j] + dhj * o * (one - t * t);
            di[j] = dcj * gv * i * (one - i);
            df[j] = dcj * cp[j] * f * (one - f);
            dgg[j] = dcj * i * (one - gv * gv);
            dout[j] = dhj * t * o * (one - o);
            dcc[j] = dcj * f;
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
        assert!(exp_f32(f32::NAN).is_nan() || exp_f32(f32::NAN) >= 0.0);
    }
}

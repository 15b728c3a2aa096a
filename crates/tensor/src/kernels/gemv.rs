//! Matrix-vector products: a GEMM with one output column (`n = 1`) or one output row (`m = 1`).
//! For small ones the `gemm` crate's dispatch and packing cost more than the arithmetic (a
//! 64×64 matrix by a vector: 0.33 µs through it, 0.13-0.23 µs here, allocation included), and
//! they are what a nested derivative of a small network is made of. Two loops cover every case: columns
//! of the matrix scaled and added (`axpy`), or dotted with the vector (`dot`); both read the
//! column-major matrix in memory order. Compiled for AVX-512 and AVX2 as well, picked at run
//! time like `vmath`'s kernels.

use crate::dtype::Element;

/// Products up to this many multiply-adds take the loops here; larger ones are memory-bound
/// either way and go to the `gemm` crate, which splits them over threads.
pub(crate) const GEMV_MAX_MACS: usize = 1 << 16;

/// `c += op(a)·op(b)` where the output is `[m, 1]` or `[1, n]` (`m == 1 || n == 1`), operands as
/// in [`GemmElement::gemm`](super::GemmElement::gemm). `c` holds the `m·n` outputs to add to.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemv_acc<T: Element>(m: usize, n: usize, k: usize, a: &[T], ta: bool, b: &[T], tb: bool, c: &mut [T]) {
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F, the only requirement of `gemv_avx512`.
            return unsafe { gemv_avx512(m, n, k, a, ta, b, tb, c) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, the only requirement of `gemv_avx2`.
            return unsafe { gemv_avx2(m, n, k, a, ta, b, tb, c) };
        }
    }
    gemv_in(m, n, k, a, ta, b, tb, c)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
fn gemv_avx512<T: Element>(m: usize, n: usize, k: usize, a: &[T], ta: bool, b: &[T], tb: bool, c: &mut [T]) {
    gemv_in(m, n, k, a, ta, b, tb, c)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
fn gemv_avx2<T: Element>(m: usize, n: usize, k: usize, a: &[T], ta: bool, b: &[T], tb: bool, c: &mut [T]) {
    gemv_in(m, n, k, a, ta, b, tb, c)
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn gemv_in<T: Element>(m: usize, n: usize, k: usize, a: &[T], ta: bool, b: &[T], tb: bool, c: &mut [T]) {
    // A matrix with one row or one column is the same memory transposed or not: take the
    // flag that makes the work one long dot, or one long axpy, not many of length one.
    if n == 1 {
        // c = op(a)·x with x = b's k elements (a column, or a row stored contiguously)
        let ta = if k == 1 { false } else { ta || m == 1 };
        let x = &b[..k];
        if ta {
            // a is stored [k, m]: output i is column i of a dotted with x
            for (ci, col) in c[..m].iter_mut().zip(a[..m * k].chunks_exact(k)) {
                *ci += dot(col, x);
            }
        } else {
            // a is [m, k]: the sum of its columns scaled by x
            axpy_columns(&mut c[..m], &a[..m * k], x);
        }
    } else {
        debug_assert_eq!(m, 1);
        // c = xᵀ·op(b) with x = a's k elements
        let tb = if k == 1 { true } else { tb && n != 1 };
        let x = &a[..k];
        if tb {
            // b is stored [n, k]: the sum of its columns scaled by x
            axpy_columns(&mut c[..n], &b[..n * k], x);
        } else {
            // b is [k, n]: output j is column j of b dotted with x
            for (cj, col) in c[..n].iter_mut().zip(b[..n * k].chunks_exact(k)) {
                *cj += dot(col, x);
            }
        }
    }
}

/// Rows of `y` summed in registers at a time by [`axpy_columns`].
const ROWS: usize = 32;

/// `y += Σ_j a[:, j]·x[j]` for a column-major `a` of `y.len()` rows. Blocks of [`ROWS`] rows
/// stay in registers across all columns, in two interleaved sums (even and odd columns), so no
/// column waits for the previous one's store, or for its add to finish.
#[inline(always)]
fn axpy_columns<T: Element>(y: &mut [T], a: &[T], x: &[T]) {
    let m = y.len();
    let mut r0 = 0;
    while r0 + ROWS <= m {
        let (mut even, mut odd) = ([T::ZERO; ROWS], [T::ZERO; ROWS]);
        let mut pairs = x.chunks_exact(2);
        let mut j = 0;
        for xs in &mut pairs {
            let (ce, co) = (&a[j * m + r0..][..ROWS], &a[(j + 1) * m + r0..][..ROWS]);
            for r in 0..ROWS {
                even[r] += ce[r] * xs[0];
                odd[r] += co[r] * xs[1];
            }
            j += 2;
        }
        if let [xl] = pairs.remainder() {
            let cl = &a[j * m + r0..][..ROWS];
            for r in 0..ROWS {
                even[r] += cl[r] * *xl;
            }
        }
        for (r, yr) in y[r0..r0 + ROWS].iter_mut().enumerate() {
            *yr += even[r] + odd[r];
        }
        r0 += ROWS;
    }
    // the last rows (fewer than a block), column by column
    if r0 < m {
        for (col, &xj) in a.chunks_exact(m).zip(x) {
            for (yr, &ar) in y[r0..].iter_mut().zip(&col[r0..]) {
                *yr += ar * xj;
            }
        }
    }
}

/// `Σ a_i·b_i` in 8 independent partial sums (one AVX2 register of f32), so the loop
/// vectorises; one sum would be a serial chain the compiler may not reorder. Wider sums, a
/// pairwise final add, or four columns at a time measured slower on 64×64 (8 lanes 307 ns,
/// 16 lanes 346 ns; the others 730-760 ns: they stopped the loop from vectorising).
/// Hand-written AVX-512 for f32, four columns at a time, made the transposed 64×64 product 15%
/// faster but W5's hvp no faster measurably, so it is not here (it would be unsafe code).
#[inline(always)]
fn dot<T: Element>(a: &[T], b: &[T]) -> T {
    const L: usize = 8;
    let mut acc = [T::ZERO; L];
    let (a8, b8) = (a.chunks_exact(L), b.chunks_exact(L));
    let (ra, rb) = (a8.remainder(), b8.remainder());
    for (x, y) in a8.zip(b8) {
        for l in 0..L {
            acc[l] += x[l] * y[l];
        }
    }
    for (l, (&x, &y)) in ra.iter().zip(rb).enumerate() {
        acc[l] += x * y;
    }
    acc.iter().fold(T::ZERO, |s, &v| s + v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference: `op(a)·op(b)` element by element.
    fn naive(m: usize, n: usize, k: usize, a: &[f64], ta: bool, b: &[f64], tb: bool) -> Vec<f64> {
        let at = |i: usize, l: usize| if ta { a[l + i * k] } else { a[i + l * m] };
        let bt = |l: usize, j: usize| if tb { b[j + l * n] } else { b[l + j * k] };
        (0..m * n).map(|ij| (0..k).map(|l| at(ij % m, l) * bt(l, ij / m)).sum()).collect()
    }

    #[test]
    fn every_orientation_matches_the_definition_and_accumulates() {
        let vals = |len: usize, s: f64| (0..len).map(|i| ((i as f64 + s) * 0.37).sin()).collect::<Vec<_>>();
        for (m, n, k) in
            [(5, 1, 37), (37, 1, 5), (70, 1, 9), (64, 1, 64), (1, 5, 37), (1, 37, 5), (1, 70, 8), (1, 1, 17), (40, 1, 1), (1, 40, 1), (1, 1, 1), (3, 1, 0)]
        {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let (a, b) = (vals(m * k, 1.0), vals(k * n, 2.0));
                let mut c = vec![1.0; m * n];
                gemv_acc(m, n, k, &a, ta, &b, tb, &mut c);
                for (got, want) in c.iter().zip(naive(m, n, k, &a, ta, &b, tb)) {
                    assert!((got - 1.0 - want).abs() < 1e-12, "[{m}, {n}, {k}] {ta} {tb}: {got} vs 1 + {want}");
                }
            }
        }
    }
}

//! The GEMM: the `gemm` crate (AVX-512 kernels picked at run time, multithreaded for large
//! products) or `matrixmultiply` as the portable fallback, over column-major operands whose
//! transposes are passed as strides, never copied.

use crate::kernels::{gemv, threads};
use crate::tensor::StorageElement;

/// Multiply-adds per nanosecond of one thread of the `gemm` crate's kernels, for the cost
/// model that decides how many threads a product gets. f32 on AVX-512 (Zen 4, 2 cores,
/// `calibrate` below): 115-130 from n = 64 to 512 and on the layers of W2, 61 on the
/// tall-skinny `[321, 1600]·[1600, 1024]` weight gradient of W3; f64 does half the lanes.
const F32_MACS_PER_NS: f64 = 120.0;

/// The predicted one-thread time in nanoseconds of a product of `m·n·k` multiply-adds on
/// elements of `elem_bytes` bytes (for the cost models of callers that split work around
/// their products, the convolution's).
pub(crate) fn gemm_ns(m: usize, n: usize, k: usize, elem_bytes: usize) -> f64 {
    m as f64 * n as f64 * k as f64 / (F32_MACS_PER_NS * 4.0 / elem_bytes as f64)
}

/// The threads the cost model gives a product of `m·n·k` multiply-adds (see
/// [`threads::parties_for`]), from its predicted one-thread time.
fn gemm_threads(m: usize, n: usize, k: usize, elem_bytes: usize) -> usize {
    let one_thread_ns = gemm_ns(m, n, k, elem_bytes);
    // each thread takes whole blocks of the output: no more threads than blocks
    threads::parties_for(one_thread_ns, 0, n.div_ceil(16).max(m.div_ceil(48)))
}

/// The output of a product shared by the parties of [`split_blocks`], each writing its own block.
#[cfg(feature = "gemm")]
struct SharedOut<T>(*mut T);

// SAFETY: the parties write disjoint blocks of the output (see `split_blocks`), and the caller
// of `gemm_raw` gave exclusive access to all of it for the call.
#[cfg(feature = "gemm")]
unsafe impl<T> Sync for SharedOut<T> {}

#[cfg(feature = "gemm")]
impl<T> SharedOut<T> {
    /// The pointer (a method, so that a closure captures the `Sync` wrapper, not the field).
    fn ptr(&self) -> *mut T {
        self.0
    }
}

/// Runs an `m×n` product as `parties` blocks of near-equal size, `block(i0, rows, j0, cols)`
/// each on one thread, on as many parties (see [`threads::run_parties`]; any party may take any
/// block). The blocks split the columns, or the rows when there are fewer columns than rows:
/// each party packs all of the operand that is not split, so the smaller one is duplicated.
/// One region per product: `gemm`'s own split forks once per depth chunk of the product, and
/// lost to this on a quiet 2-core machine (W3's weight gradient `[321, 1600]·[1600, 1024]`
/// 0.56-0.63x one thread's time against 0.52-0.53x, `[128, 1024]·[1024, 128]` 0.74-1.24x
/// against 0.56-1.06x, n = 512 0.52-0.54x against 0.51-0.53x).
#[cfg(feature = "gemm")]
fn split_blocks(m: usize, n: usize, parties: usize, block: impl Fn(usize, usize, usize, usize) + Sync) {
    if parties <= 1 {
        block(0, m, 0, n);
        return;
    }
    let by_rows = m > n;
    let len = if by_rows { m } else { n };
    let next = std::sync::atomic::AtomicUsize::new(0);
    threads::run_parties(parties, |_| loop {
        let p = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if p >= parties {
            break;
        }
        let (lo, hi) = (len * p / parties, len * (p + 1) / parties);
        if by_rows {
            block(lo, hi - lo, 0, n);
        } else {
            block(0, m, lo, hi - lo);
        }
    });
}

/// Element types with a GEMM kernel: `f32` and `f64`. Sealed, like [`Element`](crate::Element):
/// the kernels behind it live in a private supertrait.
///
/// ```
/// use flux_tensor::GemmElement;
/// let a = [1.0f32, 2.0, 3.0, 4.0]; // [1 3; 2 4]
/// let mut c = [0.0f32; 4];
/// f32::gemm(2, 2, 2, &a, true, &a, false, &mut c, false); // aᵀ·a
/// assert_eq!(c, [5.0, 11.0, 11.0, 25.0]);
/// ```
pub trait GemmElement: StorageElement + Kernels {
    /// `c = a·b + (accumulate ? c : 0)`, all column-major; `a` is `[m, k]` (or `[k, m]` read
    /// transposed when `ta`), `b` is `[k, n]` (or `[n, k]` when `tb`), `c` is `[m, n]`.
    /// Panics if an operand holds fewer elements than that.
    ///
    /// ```
    /// use flux_tensor::GemmElement;
    /// let r = std::panic::catch_unwind(|| f64::gemm(2, 2, 2, &[1.0; 3], false, &[1.0; 4], false, &mut [0.0; 4], false));
    /// assert!(r.is_err());
    /// ```
    fn gemm(m: usize, n: usize, k: usize, a: &[Self], ta: bool, b: &[Self], tb: bool, c: &mut [Self], accumulate: bool) {
        let mn = check_operands("gemm", m, n, k, a.len(), b.len());
        assert!(c.len() >= mn, "gemm: the output holds {} elements, [{m}, {n}] needs {mn}", c.len());
        // SAFETY: `c` is an exclusively borrowed, initialised buffer of at least m·n elements
        // (asserted), so it is valid for the reads and writes of m·n elements that `gemm_raw`
        // requires.
        unsafe { Self::gemm_raw(m, n, k, a, ta, b, tb, c.as_mut_ptr(), accumulate) }
    }
}

impl GemmElement for f32 {}
impl GemmElement for f64 {}

/// The per-type kernels behind [`GemmElement`]. Public in a private module: no other crate can
/// name it, so none can implement it (which seals `GemmElement` a second time) or call
/// `gemm_raw` through a path of its own.
pub trait Kernels: Sized {
    /// [`GemmElement::gemm`] into raw memory: without `accumulate` the `m·n` elements at `c` are
    /// only written, never read, so they may be uninitialised. Panics like `gemm` if `a` or `b`
    /// is too short.
    ///
    /// # Safety
    /// `c` is valid for writes of `m·n` elements (and reads, when `accumulate`), and nothing
    /// else accesses them during the call.
    unsafe fn gemm_raw(m: usize, n: usize, k: usize, a: &[Self], ta: bool, b: &[Self], tb: bool, c: *mut Self, accumulate: bool);

    /// `c = op(a)·op(b)` through `matrixmultiply`, single-threaded, whatever the features; panics
    /// if an operand is too short.
    fn portable(m: usize, n: usize, k: usize, a: &[Self], ta: bool, b: &[Self], tb: bool, c: &mut [Self]);
}

/// Checks that `a` (`len_a` elements) and `b` (`len_b`) hold the `[m, k]` and `[k, n]` operands,
/// with every product computed without overflow; returns `m·n`, the output's element count.
/// Every index the kernels reach is below these products, so this assert is what keeps them in
/// bounds.
fn check_operands(op: &str, m: usize, n: usize, k: usize, len_a: usize, len_b: usize) -> usize {
    let need_a = m.checked_mul(k);
    let need_b = k.checked_mul(n);
    let mn = m.checked_mul(n);
    match (need_a, need_b, mn) {
        (Some(na), Some(nb), Some(mn)) if len_a >= na && len_b >= nb => mn,
        _ => panic!("{op}: operands of {len_a} and {len_b} elements cannot hold [{m}, {k}] and [{k}, {n}]"),
    }
}

/// (row stride, column stride) of a column-major `[rows, cols]` operand, or of its transpose.
/// The casts are exact whenever the operand is non-empty: then `rows` and `cols` are at most its
/// length, and a slice never holds more than `isize::MAX` elements.
#[inline]
fn strides(rows: usize, cols: usize, transposed: bool) -> (isize, isize) {
    if transposed {
        // the stored matrix is [cols, rows]; element (i, j) lives at j + i * cols
        (cols as isize, 1)
    } else {
        (1, rows as isize)
    }
}

macro_rules! impl_kernels {
    ($t:ty, $mm:ident) => {
        impl Kernels for $t {
            unsafe fn gemm_raw(m: usize, n: usize, k: usize, a: &[$t], ta: bool, b: &[$t], tb: bool, c: *mut $t, accumulate: bool) {
                let mn = check_operands("gemm", m, n, k, a.len(), b.len());
                if mn == 0 {
                    return;
                }
                if k == 0 {
                    if !accumulate {
                        // SAFETY: c is valid for m·n writes (the caller's contract).
                        unsafe { std::ptr::write_bytes(c, 0, mn) };
                    }
                    return;
                }
                if (m == 1 || n == 1) && mn * k <= gemv::GEMV_MAX_MACS {
                    if !accumulate {
                        // SAFETY: c is valid for m·n writes (the caller's contract).
                        unsafe { std::ptr::write_bytes(c, 0, mn) };
                    }
                    // SAFETY: c is valid for reads and writes of m·n elements, all initialised
                    // now, and nothing else accesses them during the call (the caller's contract).
                    let c = unsafe { std::slice::from_raw_parts_mut(c, mn) };
                    gemv::gemv_acc(m, n, k, a, ta, b, tb, c);
                    return;
                }
                // m, n, k >= 1 from here on: a holds m·k elements and b k·n (checked), c m·n (the
                // caller's contract), so every stride below fits in an isize.
                let (ars, acs) = strides(m, k, ta);
                let (brs, bcs) = strides(k, n, tb);
                #[cfg(feature = "gemm")]
                {
                    // The cost model alone decides: a Tuner here (as the fused LSTM has) locked
                    // W1's n = 512 product into one thread in 3 of 3 runs on a quiet machine
                    // (254 instead of 489 GFLOP/s) and W2's batch 256 lost its second thread.
                    let threads = gemm_threads(m, n, k, std::mem::size_of::<$t>());
                    let c = SharedOut(c);
                    // rows i0.. (of m) and columns j0.. (of n) of the product, on this thread
                    let block = |i0: usize, rows: usize, j0: usize, cols: usize| {
                        let c = c.ptr();
                        // SAFETY: the block lies inside the m×n product (`split_blocks` hands out
                        // disjoint blocks that tile it), so every index the strides reach from
                        // row i0 of a (m×k) and column j0 of b (k×n), each column-major or
                        // transposed in place, is below m·k and k·n, which `check_operands`
                        // bounded by the slices' lengths; the block of c is the caller's,
                        // written by this call alone, and read only when accumulating (with
                        // `read_dst` false the gemm crate only writes it).
                        unsafe {
                            let (a, b) = (a.as_ptr().offset(i0 as isize * ars), b.as_ptr().offset(j0 as isize * bcs));
                            let c = c.add(i0 + j0 * m);
                            gemm::gemm(
                                rows,
                                cols,
                                k,
                                c,
                                m as isize,
                                1,
                                accumulate,
                                a,
                                acs,
                                ars,
                                b,
                                bcs,
                                brs,
                                1.0,
                                1.0,
                                false,
                                false,
                                false,
                                gemm::Parallelism::None,
                            );
                        }
                    };
                    split_blocks(m, n, threads, block);
                }
                #[cfg(not(feature = "gemm"))]
                {
                    // with beta = 0 matrixmultiply does not read c
                    let beta = if accumulate { 1.0 } else { 0.0 };
                    let _ = gemm_threads;
                    // SAFETY: as above, the strides stay inside the checked lengths, and c is the
                    // caller's m×n buffer, read only when beta is 1.
                    unsafe {
                        matrixmultiply::$mm(m, k, n, 1.0, a.as_ptr(), ars, acs, b.as_ptr(), brs, bcs, beta, c, 1, m as isize);
                    }
                }
            }

            fn portable(m: usize, n: usize, k: usize, a: &[$t], ta: bool, b: &[$t], tb: bool, c: &mut [$t]) {
                let mn = check_operands("gemm_portable", m, n, k, a.len(), b.len());
                assert!(c.len() >= mn, "gemm_portable: the output holds {} elements, [{m}, {n}] needs {mn}", c.len());
                if mn == 0 {
                    return;
                }
                if k == 0 {
                    c[..mn].fill(0.0);
                    return;
                }
                let (ars, acs) = strides(m, k, ta);
                let (brs, bcs) = strides(k, n, tb);
                // SAFETY: the strides stay inside the checked lengths of a and b, and c is an
                // exclusive borrow of at least m·n elements (asserted); beta = 0, so c is only
                // written.
                unsafe {
                    matrixmultiply::$mm(m, k, n, 1.0, a.as_ptr(), ars, acs, b.as_ptr(), brs, bcs, 0.0, c.as_mut_ptr(), 1, m as isize);
                }
            }
        }
    };
}

impl_kernels!(f32, sgemm);
impl_kernels!(f64, dgemm);

/// The portable path, always available: `matrixmultiply`, single-threaded, computing
/// `c = op(a)·op(b)` with the shapes of [`GemmElement::gemm`]. Used to check the `gemm` crate
/// against an independent implementation, and by `cargo xtask bench` to show why `gemm` is used.
/// Panics if an operand is too short.
///
/// ```
/// let a = [1.0f64, 2.0, 3.0, 4.0]; // [1 3; 2 4]
/// let mut c = [0.0f64; 4];
/// flux_tensor::gemm_portable(2, 2, 2, &a, false, &a, false, &mut c);
/// assert_eq!(c, [7.0, 10.0, 15.0, 22.0]);
/// ```
pub fn gemm_portable<T: GemmElement>(m: usize, n: usize, k: usize, a: &[T], ta: bool, b: &[T], tb: bool, c: &mut [T]) {
    T::portable(m, n, k, a, ta, b, tb, c)
}

/// `nb` products `op(a_i)·op(b_i)` of consecutive `[m, k]` and `[k, n]` slices (as stored) into a
/// new `[m, n, nb]` buffer that is never cleared first: the GEMM writes every element. Panics if
/// `a` or `b` is too short or the output's size overflows.
pub(crate) fn batch_products<T: GemmElement>(nb: usize, m: usize, n: usize, k: usize, a: &[T], ta: bool, b: &[T], tb: bool) -> Vec<T> {
    let sc = check_operands("batched gemm", m, n, k, a.len(), b.len());
    let (sa, sb) = (m * k, k * n); // no overflow: checked above
    let total = |s: usize, len: Option<usize>| nb.checked_mul(s).filter(|&need| len.is_none_or(|len| len >= need));
    let (Some(_), Some(_), Some(out)) = (total(sa, Some(a.len())), total(sb, Some(b.len())), total(sc, None)) else {
        panic!("batched gemm: {nb} products of [{m}, {k}]·[{k}, {n}] do not fit operands of {} and {} elements", a.len(), b.len());
    };
    let mut c: Vec<T> = Vec::with_capacity(out);
    let base = c.as_mut_ptr();
    for i in 0..nb {
        // SAFETY: the buffer has room for nb·m·n elements (its capacity), so the i-th m·n block
        // at offset i·m·n is in bounds, valid for writes and touched by nothing else; the slices
        // of a and b are in bounds (checked above, and indexing checks again).
        unsafe { T::gemm_raw(m, n, k, &a[i * sa..(i + 1) * sa], ta, &b[i * sb..(i + 1) * sb], tb, base.add(i * sc), false) };
    }
    // SAFETY: each call above wrote its whole m·n block without reading it (no accumulation), so
    // all nb·m·n elements are initialised, and the capacity is at least that.
    unsafe { c.set_len(out) };
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::panic::catch_unwind;

    // Sizes whose products wrap to 0 where overflow checks are off (release builds; run these
    // with `cargo test --release` to see that): a plain `a.len() >= m * k` would then pass with
    // empty operands and let the kernels read and write far out of bounds.
    const HUGE: usize = 1 << (usize::BITS / 2);

    #[test]
    fn overflowing_sizes_panic_instead_of_passing_the_length_checks() {
        assert!(catch_unwind(|| f64::gemm(HUGE, HUGE, HUGE, &[], false, &[], false, &mut [], false)).is_err());
        assert!(catch_unwind(|| f32::gemm(HUGE, HUGE, 1, &[], true, &[], true, &mut [], true)).is_err());
        assert!(catch_unwind(|| gemm_portable::<f64>(HUGE, HUGE, HUGE, &[], false, &[], false, &mut [])).is_err());
        assert!(catch_unwind(|| batch_products::<f32>(HUGE, HUGE, HUGE, 0, &[], false, &[], false)).is_err());
        assert!(catch_unwind(|| batch_products::<f64>(usize::MAX, 1, 1, 1, &[1.0], false, &[1.0], false)).is_err());
    }

    #[test]
    fn short_operands_panic() {
        let (a, b) = ([1.0f64; 6], [1.0f64; 6]);
        assert!(catch_unwind(|| f64::gemm(2, 2, 3, &a, false, &b, false, &mut [0.0; 3], false)).is_err());
        assert!(catch_unwind(|| f64::gemm(2, 2, 4, &a, false, &b, false, &mut [0.0; 4], false)).is_err());
        assert!(catch_unwind(|| gemm_portable(2, 2, 3, &a, true, &b, false, &mut [0.0; 3])).is_err());
        assert!(catch_unwind(|| batch_products(2, 2, 1, 3, &a, false, &b[..5], false)).is_err());
        // and the exact sizes work
        let mut c = [0.0; 4];
        f64::gemm(2, 2, 3, &a, false, &b, false, &mut c, false);
        assert_eq!(c, [3.0; 4]);
        assert_eq!(batch_products(2, 1, 1, 3, &a, false, &b, false), vec![3.0, 3.0]);
    }

    #[test]
    #[cfg(feature = "gemm")]
    fn split_blocks_tile_the_product_and_split_products_match_the_portable_path() {
        use std::sync::Mutex;
        for (m, n, parties) in [(10, 7, 3), (7, 10, 3), (5, 5, 1), (100, 3, 2)] {
            let seen = Mutex::new(vec![0u8; m * n]);
            split_blocks(m, n, parties, |i0, rows, j0, cols| {
                let mut s = seen.lock().unwrap();
                for j in j0..j0 + cols {
                    for i in i0..i0 + rows {
                        s[i + m * j] += 1;
                    }
                }
            });
            assert!(seen.into_inner().unwrap().iter().all(|&c| c == 1), "{m}x{n} in {parties}");
        }
        // products large enough for the cost model to split wherever there are two threads,
        // by columns and by rows, every orientation
        for (m, n, k) in [(96, 640, 400), (640, 96, 400)] {
            let a: Vec<f64> = (0..m * k).map(|i| ((i * 7) % 13) as f64 - 6.0).collect();
            let b: Vec<f64> = (0..k * n).map(|i| ((i * 5) % 11) as f64 - 5.0).collect();
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let (mut want, mut got) = (vec![0.0; m * n], vec![1.0; m * n]);
                gemm_portable(m, n, k, &a, ta, &b, tb, &mut want);
                f64::gemm(m, n, k, &a, ta, &b, tb, &mut got, false);
                assert_eq!(want, got, "[{m}, {k}]·[{k}, {n}], ta {ta}, tb {tb}");
            }
        }
    }

    #[test]
    fn portable_matches_gemm_including_empty_inner_dimension() {
        let a: Vec<f32> = (0..12).map(|i| i as f32 * 0.5 - 2.0).collect();
        let b: Vec<f32> = (0..12).map(|i| 1.0 - i as f32 * 0.25).collect();
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let (mut want, mut got) = ([0.0f32; 9], [7.0f32; 9]);
            f32::gemm(3, 3, 4, &a, ta, &b, tb, &mut want, false);
            gemm_portable(3, 3, 4, &a, ta, &b, tb, &mut got);
            assert_eq!(want, got);
        }
        let mut c = [7.0f64; 6];
        gemm_portable(2, 3, 0, &[], false, &[], false, &mut c);
        assert_eq!(c, [0.0; 6]);
    }

    /// `cargo test -p flux-tensor --release --lib calibrate -- --ignored --nocapture`: the
    /// figures behind the cost model. Per shape, µs per product on one thread and on two
    /// (`gemm`'s own split, forced), alternated; and the cost of an empty region.
    #[test]
    #[ignore]
    #[cfg(feature = "gemm")]
    fn calibrate() {
        use std::time::Instant;
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let time = |f: &mut dyn FnMut()| {
            let mut ts = Vec::new();
            for _ in 0..3 {
                f();
            }
            let start = Instant::now();
            while ts.len() < 15 || (start.elapsed().as_secs_f64() < 0.2 && ts.len() < 5000) {
                let t0 = Instant::now();
                f();
                ts.push(t0.elapsed().as_secs_f64() * 1e6);
            }
            median(ts)
        };
        let shapes = [
            (64, 64, 64),
            (96, 96, 96),
            (128, 128, 128),
            (160, 160, 160),
            (192, 192, 192),
            (256, 256, 256),
            (512, 512, 512),
            (128, 64, 784),
            (128, 784, 64),
            (784, 64, 128),
            (128, 256, 784),
            (128, 784, 256),
            (784, 256, 128),
            (32, 64, 128),
            (321, 1024, 1600),
            (64, 1600, 1024),
            (1024, 32, 256),
        ];
        for (m, n, k) in shapes {
            let a = vec![0.5f32; m * k];
            let b = vec![0.25f32; k * n];
            let mut c = vec![0.0f32; m * n];
            let mut run = |par: gemm::Parallelism| {
                // SAFETY: column-major operands of exactly these sizes.
                unsafe {
                    gemm::gemm(
                        m,
                        n,
                        k,
                        c.as_mut_ptr(),
                        m as isize,
                        1,
                        false,
                        a.as_ptr(),
                        m as isize,
                        1,
                        b.as_ptr(),
                        k as isize,
                        1,
                        1.0,
                        1.0,
                        false,
                        false,
                        false,
                        par,
                    )
                }
            };
            let (mut one, mut whole, mut two) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..5 {
                one.push(time(&mut || run(gemm::Parallelism::None)));
                whole.push(time(&mut || run(gemm::Parallelism::Rayon(1))));
                two.push(time(&mut || run(gemm::Parallelism::Rayon(2))));
            }
            let (one, whole, two) = (median(one), median(whole), median(two));
            let macs = (m * n * k) as f64;
            println!(
                "[{m}, {k}]·[{k}, {n}]: {:.1} M MACs, 1 thread {one:.1} µs ({:.0} MAC/ns), whole-n blocks {:.2}x, 2 threads {two:.1} µs ({:.2}x), model picks {}",
                macs / 1e6,
                macs / one / 1e3,
                whole / one,
                two / one,
                gemm_threads(m, n, k, 4)
            );
        }
        // a region whose caller waits until the pool's party has entered: the hand-over itself
        let region = median(
            (0..5)
                .map(|_| {
                    time(&mut || {
                        let entered = std::sync::atomic::AtomicBool::new(false);
                        threads::run_parties(2, |p| {
                            if p == 1 {
                                entered.store(true, std::sync::atomic::Ordering::Release);
                            }
                            while !entered.load(std::sync::atomic::Ordering::Acquire) {
                                std::hint::spin_loop();
                            }
                        })
                    })
                })
                .collect(),
        );
        println!("a region of 2 parties, the caller waiting for the pool's: {region:.1} µs");
        // one of W2's batch-64 products after 20 ms idle (the pool thread has gone to sleep):
        // what a split costs when no thread lingers, through the model's own choice
        let (m, n, k) = (128, 64, 784);
        let (a, b, mut c) = (vec![0.5f32; m * k], vec![0.25f32; k * n], vec![0.0f32; m * n]);
        for threads in [1, 2] {
            threads::set_num_threads(threads);
            let cold = median(
                (0..21)
                    .map(|_| {
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        let t0 = Instant::now();
                        f32::gemm(m, n, k, &a, false, &b, false, &mut c, false);
                        t0.elapsed().as_secs_f64() * 1e6
                    })
                    .collect(),
            );
            println!("[{m}, {k}]·[{k}, {n}] after 20 ms idle, {threads} thread(s) allowed: {cold:.1} µs");
        }
        threads::set_num_threads(0);
    }
}

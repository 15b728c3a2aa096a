//! Packing many tensors into one flat buffer (one MPI call instead of one per tensor) and back,
//! plus the short trailer that lets every rank check, inside the same call, that all ranks
//! packed the same layout and that none of them failed locally.

use flux_tensor::{DType, Elements, Tensor};

/// Pieces of the layout signature carried in the trailer.
pub(crate) const PIECES: usize = 6;
/// Bits per piece: small enough that sums of squares stay exact in f32 for up to 4096 ranks.
const PIECE_BITS: u32 = 6;
/// Trailer length: the failure flag, the pieces, their squares.
pub(crate) const TRAILER: usize = 1 + 2 * PIECES;
/// Largest world for which the f32 trailer sums are exact (`size * 63^2 < 2^24`).
pub(crate) const MAX_CHECKED_RANKS: usize = 4096;

/// A flat buffer of one element type: f32 when every packed tensor is f32, else f64.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Buf {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl Buf {
    pub(crate) fn len(&self) -> usize {
        match self {
            Buf::F32(v) => v.len(),
            Buf::F64(v) => v.len(),
        }
    }

    /// Element `i` as f64.
    pub(crate) fn get(&self, i: usize) -> f64 {
        match self {
            Buf::F32(v) => v[i] as f64,
            Buf::F64(v) => v[i],
        }
    }

    /// Makes `self` a buffer of `like`'s type and length (contents unspecified), reusing its
    /// allocation.
    pub(crate) fn shape_like(&mut self, like: &Buf) {
        match (like, &mut *self) {
            (Buf::F32(l), Buf::F32(b)) => b.resize(l.len(), 0.0),
            (Buf::F64(l), Buf::F64(b)) => b.resize(l.len(), 0.0),
            (Buf::F32(l), _) => *self = Buf::F32(vec![0.0; l.len()]),
            (Buf::F64(l), _) => *self = Buf::F64(vec![0.0; l.len()]),
        }
    }

    /// Multiplies the first `n` elements by `s` (in the buffer's own type).
    pub(crate) fn scale(&mut self, n: usize, s: f64) {
        match self {
            Buf::F32(v) => v[..n].iter_mut().for_each(|x| *x *= s as f32),
            Buf::F64(v) => v[..n].iter_mut().for_each(|x| *x *= s),
        }
    }
}

/// The shapes and dtypes of a list of tensors, and where each lives in the flat buffer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Layout {
    pub(crate) shapes: Vec<Vec<usize>>,
    pub(crate) dtypes: Vec<DType>,
    pub(crate) offsets: Vec<usize>,
    pub(crate) numel: usize,
}

impl Layout {
    pub(crate) fn new<'a>(items: impl IntoIterator<Item = (&'a [usize], DType)>) -> Layout {
        let (mut shapes, mut dtypes, mut offsets, mut numel) = (Vec::new(), Vec::new(), Vec::new(), 0);
        for (shape, dtype) in items {
            offsets.push(numel);
            numel += shape.iter().product::<usize>();
            shapes.push(shape.to_vec());
            dtypes.push(dtype);
        }
        Layout { shapes, dtypes, offsets, numel }
    }

    /// f64 when any tensor is f64 (so nothing loses precision), else f32.
    pub(crate) fn wide(&self) -> bool {
        self.dtypes.contains(&DType::F64)
    }

    /// FNV-1a over the count, each shape and each dtype: equal layouts, equal signatures.
    pub(crate) fn signature(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |v: u64| {
            for b in v.to_le_bytes() {
                h ^= b as u64;
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        };
        eat(self.shapes.len() as u64);
        for (s, d) in self.shapes.iter().zip(&self.dtypes) {
            eat(s.len() as u64);
            s.iter().for_each(|&n| eat(n as u64));
            eat(matches!(d, DType::F64) as u64);
        }
        h
    }

    /// A short description for error messages.
    pub(crate) fn describe(&self) -> String {
        format!("{} tensors, {} elements, signature {:016x}", self.shapes.len(), self.numel, self.signature())
    }

    /// The trailer this rank contributes: `[failed, pieces.., pieces²..]`.
    pub(crate) fn trailer(&self, failed: bool) -> [f64; TRAILER] {
        let mut t = [0.0; TRAILER];
        t[0] = failed as u8 as f64;
        let sig = self.signature();
        for i in 0..PIECES {
            let c = ((sig >> (i as u32 * PIECE_BITS)) & ((1 << PIECE_BITS) - 1)) as f64;
            t[1 + i] = c;
            t[1 + PIECES + i] = c * c;
        }
        t
    }

    /// Packs `tensors` (`None`, or a tensor of the wrong size, packs zeros) followed by the
    /// trailer. `tensors` runs parallel to the layout.
    pub(crate) fn pack(&self, tensors: &[Option<Tensor>], failed: bool) -> Buf {
        let mut buf = Buf::F32(Vec::new());
        self.pack_into(tensors, failed, &mut buf);
        buf
    }

    /// [`Layout::pack`] into `buf`, reusing its allocation (so that a training loop does not
    /// map fresh pages for every step).
    pub(crate) fn pack_into(&self, tensors: &[Option<Tensor>], failed: bool, buf: &mut Buf) {
        debug_assert_eq!(tensors.len(), self.shapes.len());
        match (self.wide(), &mut *buf) {
            (true, Buf::F64(b)) => b.clear(),
            (false, Buf::F32(b)) => b.clear(),
            (true, _) => *buf = Buf::F64(Vec::with_capacity(self.numel + TRAILER)),
            (false, _) => *buf = Buf::F32(Vec::with_capacity(self.numel + TRAILER)),
        }
        for (t, shape) in tensors.iter().zip(&self.shapes) {
            let n: usize = shape.iter().product();
            match (t.as_ref().filter(|t| t.numel() == n).map(Tensor::elements), &mut *buf) {
                (Some(Elements::F32(v)), Buf::F32(b)) => b.extend_from_slice(v),
                (Some(Elements::F32(v)), Buf::F64(b)) => b.extend(v.iter().map(|&x| x as f64)),
                (Some(Elements::F64(v)), Buf::F64(b)) => b.extend_from_slice(v),
                (Some(Elements::F64(v)), Buf::F32(b)) => b.extend(v.iter().map(|&x| x as f32)),
                (None, Buf::F32(b)) => b.resize(b.len() + n, 0.0),
                (None, Buf::F64(b)) => b.resize(b.len() + n, 0.0),
            }
        }
        let trailer = self.trailer(failed);
        match buf {
            Buf::F32(b) => b.extend(trailer.iter().map(|&x| x as f32)),
            Buf::F64(b) => b.extend_from_slice(&trailer),
        }
    }

    /// Tensor `i` out of `buf`, in `dtype`.
    pub(crate) fn unpack(&self, buf: &Buf, i: usize, dtype: DType) -> Tensor {
        let (off, shape) = (self.offsets[i], &self.shapes[i]);
        let n: usize = shape.iter().product();
        let t = match buf {
            Buf::F32(b) => Tensor::from_vec(b[off..off + n].to_vec(), shape),
            Buf::F64(b) => Tensor::from_vec(b[off..off + n].to_vec(), shape),
        };
        t.to_dtype(dtype)
    }
}

/// What the summed trailer says.
#[derive(Debug, PartialEq)]
pub(crate) enum Verdict {
    /// Every rank packed the same layout and none failed.
    Ok,
    /// `n` ranks reported a local failure.
    Failed(usize),
    /// The ranks packed different layouts.
    Mismatch,
}

/// Reads the trailer at `at` of a buffer summed over `size` ranks. Every rank sees the same
/// sums, so every rank reaches the same verdict: the pieces `c` agree on all ranks exactly when
/// `(Σc)² = size · Σc²` (equality in Cauchy–Schwarz), and the sums are exact integers.
pub(crate) fn verdict(buf: &Buf, at: usize, size: usize) -> Verdict {
    let failed = buf.get(at).round() as usize;
    if failed > 0 {
        return Verdict::Failed(failed);
    }
    if size <= MAX_CHECKED_RANKS || matches!(buf, Buf::F64(_)) {
        for i in 0..PIECES {
            let (s, q) = (buf.get(at + 1 + i), buf.get(at + 1 + PIECES + i));
            if s * s != size as f64 * q {
                return Verdict::Mismatch;
            }
        }
    }
    Verdict::Ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(shapes: &[&[usize]], dt: DType) -> Layout {
        Layout::new(shapes.iter().map(|s| (*s, dt)))
    }

    #[test]
    fn pack_unpack_round_trip_in_order() {
        let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
        let b = Tensor::from_vec(vec![7.0f32], &[1]);
        let c = Tensor::from_vec(vec![8.0f32, 9.0], &[2]);
        let l = layout(&[&[2, 3], &[1], &[2]], DType::F32);
        let buf = l.pack(&[Some(a.clone()), Some(b.clone()), Some(c.clone())], false);
        assert_eq!(buf.len(), 9 + TRAILER);
        let Buf::F32(v) = &buf else { panic!("all f32 must pack into f32") };
        assert_eq!(&v[..9], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
        for (i, t) in [a, b, c].iter().enumerate() {
            let u = l.unpack(&buf, i, DType::F32);
            assert_eq!(u.shape(), t.shape());
            assert_eq!(u.to_vec(), t.to_vec());
            assert_eq!(u.dtype(), DType::F32);
        }
    }

    #[test]
    fn one_f64_tensor_widens_the_buffer_without_rounding() {
        let a = Tensor::from_vec(vec![0.1f32, 0.2], &[2]);
        let b = Tensor::from_vec(vec![0.1f64, 1e-300], &[2]);
        let l = Layout::new([(&[2usize][..], DType::F32), (&[2usize][..], DType::F64)]);
        assert!(l.wide());
        let buf = l.pack(&[Some(a.clone()), Some(b.clone())], false);
        assert!(matches!(buf, Buf::F64(_)));
        assert_eq!(l.unpack(&buf, 0, DType::F32).to_vec(), a.to_vec());
        assert_eq!(l.unpack(&buf, 1, DType::F64).to_vec(), b.to_vec());
    }

    #[test]
    fn packing_into_a_used_buffer_reuses_it_and_switches_type_when_needed() {
        let small = layout(&[&[2]], DType::F32);
        let mut buf = Buf::F32(Vec::with_capacity(1000));
        let cap = |b: &Buf| if let Buf::F32(v) = b { v.capacity() } else { 0 };
        small.pack_into(&[Some(Tensor::from_vec(vec![1.0f32, 2.0], &[2]))], false, &mut buf);
        assert_eq!(buf.len(), 2 + TRAILER);
        assert_eq!(cap(&buf), 1000, "the allocation is kept");
        assert_eq!(buf, small.pack(&[Some(Tensor::from_vec(vec![1.0f32, 2.0], &[2]))], false));
        let wide = layout(&[&[1]], DType::F64);
        wide.pack_into(&[Some(Tensor::from_vec(vec![3.0f64], &[1]))], false, &mut buf);
        assert!(matches!(&buf, Buf::F64(v) if v.len() == 1 + TRAILER && v[0] == 3.0));
        let mut recv = Buf::F32(vec![9.0; 5]);
        recv.shape_like(&buf);
        assert!(matches!(&recv, Buf::F64(v) if v.len() == 1 + TRAILER));
    }

    #[test]
    fn missing_tensors_pack_zeros_and_raise_the_flag() {
        let l = layout(&[&[3], &[2]], DType::F32);
        let buf = l.pack(&[None, Some(Tensor::from_vec(vec![1.0f32, 2.0], &[2]))], true);
        let Buf::F32(v) = &buf else { unreachable!() };
        assert_eq!(&v[..5], &[0.0, 0.0, 0.0, 1.0, 2.0]);
        assert_eq!(verdict(&buf, 5, 1), Verdict::Failed(1));
    }

    /// Sums trailers as the collective would, in f32.
    fn summed(ls: &[(&Layout, bool)]) -> Buf {
        let mut acc = vec![0f32; TRAILER];
        for (l, failed) in ls {
            for (a, t) in acc.iter_mut().zip(l.trailer(*failed)) {
                *a += t as f32;
            }
        }
        Buf::F32(acc)
    }

    #[test]
    fn the_trailer_detects_different_layouts_of_the_same_length() {
        let a = layout(&[&[2, 3], &[4]], DType::F32);
        let b = layout(&[&[3, 2], &[4]], DType::F32); // same numel, transposed shape
        let c = layout(&[&[2, 3], &[4]], DType::F64);
        assert_eq!(a.numel, b.numel);
        assert_ne!(a.signature(), b.signature());
        assert_ne!(a.signature(), c.signature());
        assert_eq!(verdict(&summed(&[(&a, false), (&a, false), (&a, false)]), 0, 3), Verdict::Ok);
        assert_eq!(verdict(&summed(&[(&a, false), (&b, false)]), 0, 2), Verdict::Mismatch);
        assert_eq!(verdict(&summed(&[(&a, false), (&a, false), (&c, false)]), 0, 3), Verdict::Mismatch);
        assert_eq!(verdict(&summed(&[(&a, false), (&a, true), (&a, true)]), 0, 3), Verdict::Failed(2));
    }

    #[test]
    fn trailer_sums_stay_exact_in_f32_up_to_the_checked_world() {
        // The worst case: every piece 63 on every rank.
        let max = ((1u32 << PIECE_BITS) - 1) as f32;
        let (mut s, mut q) = (0f32, 0f32);
        for _ in 0..MAX_CHECKED_RANKS {
            s += max;
            q += max * max;
        }
        assert_eq!(s as f64, MAX_CHECKED_RANKS as f64 * 63.0);
        assert_eq!(q as f64, MAX_CHECKED_RANKS as f64 * 3969.0);
    }
}

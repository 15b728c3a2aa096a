//! [`Shape`]: the dimensions of a tensor, stored inline for the common ranks so that creating a
//! tensor does not allocate for its shape.

use std::fmt;
use std::ops::Deref;

const INLINE: usize = 4;

/// Dimensions of a tensor, first dimension first (Julia's order: features, then batch).
/// Derefs to `&[usize]`.
///
/// ```
/// use flux_tensor::Shape;
/// let s = Shape::from(&[2, 3][..]);
/// assert_eq!(&*s, &[2, 3]);
/// assert_eq!(s.numel(), 6);
/// ```
#[derive(Clone)]
pub struct Shape(Repr);

#[derive(Clone)]
enum Repr {
    Inline(Rank, [usize; INLINE]),
    Heap(Vec<usize>),
}

/// The rank of an inline shape: an enum a word wide, so that the values it cannot take encode
/// `Repr`'s variant and the rank fills the shape's first word. (A tag byte and a `u8` rank left
/// six bytes of padding that building a tensor copied as odd-sized pieces, read back before
/// their stores had landed: a store-forwarding stall, a tenth of W4's recorded scalar ops.)
#[derive(Clone, Copy)]
#[repr(usize)]
enum Rank {
    R0,
    R1,
    R2,
    R3,
    R4,
}

/// `RANKS[n]` is rank `n`.
const RANKS: [Rank; INLINE + 1] = [Rank::R0, Rank::R1, Rank::R2, Rank::R3, Rank::R4];

impl Shape {
    /// The shape of a 0-d (scalar) tensor.
    ///
    /// ```
    /// assert_eq!(flux_tensor::Shape::scalar().rank(), 0);
    /// ```
    pub fn scalar() -> Shape {
        Shape(Repr::Inline(Rank::R0, [0; INLINE]))
    }

    /// Builds a shape from dimensions.
    ///
    /// ```
    /// assert_eq!(flux_tensor::Shape::new(&[4]).numel(), 4);
    /// ```
    pub fn new(dims: &[usize]) -> Shape {
        if dims.len() <= INLINE {
            let mut a = [0; INLINE];
            a[..dims.len()].copy_from_slice(dims);
            Shape(Repr::Inline(RANKS[dims.len()], a))
        } else {
            Shape(Repr::Heap(dims.to_vec()))
        }
    }

    /// The dimensions as a slice.
    ///
    /// ```
    /// assert_eq!(flux_tensor::Shape::new(&[2, 1]).dims(), &[2, 1]);
    /// ```
    #[inline]
    pub fn dims(&self) -> &[usize] {
        match &self.0 {
            Repr::Inline(n, a) => &a[..*n as usize],
            Repr::Heap(v) => v,
        }
    }

    /// The same shape with dimension `d` set to `n`. Panics if `d` is not below the rank.
    ///
    /// ```
    /// assert_eq!(flux_tensor::Shape::new(&[2, 3]).with_dim(1, 1).dims(), &[2, 1]);
    /// ```
    pub fn with_dim(mut self, d: usize, n: usize) -> Shape {
        match &mut self.0 {
            Repr::Inline(r, a) => a[..*r as usize][d] = n,
            Repr::Heap(v) => v[d] = n,
        }
        self
    }

    /// Number of dimensions.
    ///
    /// ```
    /// assert_eq!(flux_tensor::Shape::new(&[2, 3, 4]).rank(), 3);
    /// ```
    #[inline]
    pub fn rank(&self) -> usize {
        self.dims().len()
    }

    /// Number of elements (1 for a scalar).
    ///
    /// ```
    /// assert_eq!(flux_tensor::Shape::new(&[2, 3]).numel(), 6);
    /// ```
    #[inline]
    pub fn numel(&self) -> usize {
        self.dims().iter().product()
    }

    /// Size of dimension `d`, where a missing trailing dimension counts as 1 (Julia's rule).
    ///
    /// ```
    /// let s = flux_tensor::Shape::new(&[5]);
    /// assert_eq!(s.dim_or_one(1), 1);
    /// ```
    #[inline]
    pub fn dim_or_one(&self, d: usize) -> usize {
        self.dims().get(d).copied().unwrap_or(1)
    }

    /// Column-major strides (the first index varies fastest).
    ///
    /// ```
    /// assert_eq!(flux_tensor::Shape::new(&[2, 3, 4]).strides(), vec![1, 2, 6]);
    /// ```
    pub fn strides(&self) -> Vec<usize> {
        let mut s = Vec::with_capacity(self.rank());
        let mut acc = 1;
        for &d in self.dims() {
            s.push(acc);
            acc *= d;
        }
        s
    }

    /// The dimensions as an owned vector (for error messages).
    ///
    /// ```
    /// assert_eq!(flux_tensor::Shape::new(&[3]).to_vec(), vec![3]);
    /// ```
    pub fn to_vec(&self) -> Vec<usize> {
        self.dims().to_vec()
    }

    /// Julia's `2×3` form (`5-element` for vectors is chosen by `Display` of tensors).
    ///
    /// ```
    /// assert_eq!(flux_tensor::Shape::new(&[2, 3]).times_string(), "2×3");
    /// ```
    pub fn times_string(&self) -> String {
        let d: Vec<String> = self.dims().iter().map(|d| d.to_string()).collect();
        d.join("×")
    }
}

impl Deref for Shape {
    type Target = [usize];
    #[inline]
    fn deref(&self) -> &[usize] {
        self.dims()
    }
}

impl PartialEq for Shape {
    /// Compares in place: a call to `memcmp` for a few dimensions costs more than the loop
    /// (this runs on every elementwise op, also on scalars).
    #[inline]
    fn eq(&self, other: &Shape) -> bool {
        let (a, b) = (self.dims(), other.dims());
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
    }
}
impl Eq for Shape {}

impl PartialEq<[usize]> for Shape {
    fn eq(&self, other: &[usize]) -> bool {
        self.dims() == other
    }
}

impl PartialEq<&[usize]> for Shape {
    fn eq(&self, other: &&[usize]) -> bool {
        self.dims() == *other
    }
}

impl<const N: usize> PartialEq<[usize; N]> for Shape {
    fn eq(&self, other: &[usize; N]) -> bool {
        self.dims() == other
    }
}

impl<const N: usize> PartialEq<&[usize; N]> for Shape {
    fn eq(&self, other: &&[usize; N]) -> bool {
        self.dims() == *other
    }
}

impl From<&[usize]> for Shape {
    fn from(d: &[usize]) -> Shape {
        Shape::new(d)
    }
}

impl From<Vec<usize>> for Shape {
    fn from(d: Vec<usize>) -> Shape {
        Shape::new(&d)
    }
}

impl<const N: usize> From<[usize; N]> for Shape {
    fn from(d: [usize; N]) -> Shape {
        Shape::new(&d)
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.dims())
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.dims())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_and_heap_agree() {
        let small = Shape::new(&[1, 2, 3]);
        let big = Shape::new(&[1, 2, 3, 1, 1, 1, 2]);
        assert_eq!(small.numel(), 6);
        assert_eq!(big.numel(), 12);
        assert_eq!(big.rank(), 7);
        assert_eq!(big.strides(), vec![1, 1, 2, 6, 6, 6, 6]);
        // every rank either side of the inline limit round-trips and edits in place
        for rank in 0..=INLINE + 2 {
            let dims: Vec<usize> = (2..2 + rank).collect();
            let s = Shape::new(&dims);
            assert_eq!(s.dims(), &dims[..]);
            assert_eq!(s.clone(), Shape::from(dims.clone()));
            if rank > 0 {
                assert_eq!(s.with_dim(rank - 1, 9).dims().last(), Some(&9));
            }
        }
    }

    #[test]
    fn missing_trailing_dims_are_one() {
        let s = Shape::new(&[4]);
        assert_eq!(s.dim_or_one(0), 4);
        assert_eq!(s.dim_or_one(3), 1);
        assert_eq!(Shape::scalar().numel(), 1);
    }
}

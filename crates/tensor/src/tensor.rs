//! [`Tensor`]: an immutable, cheaply cloned, column-major n-d array of `f32` or `f64`.

use std::sync::Arc;

use crate::dtype::{DType, Element};
use crate::error::{Result, TensorError};
use crate::shape::Shape;

/// The elements of a tensor, in column-major order.
///
/// ```
/// use flux_tensor::{Storage, Tensor};
/// let s = Storage::F64(vec![1.0, 2.0]);
/// assert_eq!(s.len(), 2);
/// let t = Tensor::from_storage(s, &[2]).unwrap();
/// assert_eq!(t.numel(), 2);
/// ```
#[derive(Clone, Debug)]
pub enum Storage {
    /// `f32` elements.
    F32(Vec<f32>),
    /// `f64` elements.
    F64(Vec<f64>),
}

impl Storage {
    /// Number of elements.
    ///
    /// ```
    /// assert_eq!(flux_tensor::Storage::F32(vec![1.0; 3]).len(), 3);
    /// ```
    pub fn len(&self) -> usize {
        match self {
            Storage::F32(v) => v.len(),
            Storage::F64(v) => v.len(),
        }
    }

    /// True when there are no elements.
    ///
    /// ```
    /// assert!(flux_tensor::Storage::F64(vec![]).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element type.
    ///
    /// ```
    /// assert_eq!(flux_tensor::Storage::F64(vec![1.0]).dtype(), flux_tensor::DType::F64);
    /// ```
    pub fn dtype(&self) -> DType {
        match self {
            Storage::F32(_) => DType::F32,
            Storage::F64(_) => DType::F64,
        }
    }
}

/// A tensor's elements, borrowed: what kernels read, whether the elements live in a shared
/// buffer or inline in a one-element tensor.
///
/// ```
/// use flux_tensor::{Elements, Tensor};
/// let t = Tensor::from_vec(vec![1.0f32, 2.0], &[2]);
/// assert!(matches!(t.elements(), Elements::F32(&[1.0, 2.0])));
/// assert!(matches!(Tensor::scalar(3.0).elements(), Elements::F64(&[3.0])));
/// ```
#[derive(Clone, Copy, Debug)]
pub enum Elements<'a> {
    /// `f32` elements.
    F32(&'a [f32]),
    /// `f64` elements.
    F64(&'a [f64]),
}

/// Conversion between typed elements and [`Storage`] or [`Elements`]; kernels use it to stay
/// generic.
///
/// ```
/// use flux_tensor::{Elements, Storage, StorageElement};
/// let s = <f32 as StorageElement>::wrap(vec![1.0]);
/// assert!(matches!(s, Storage::F32(_)));
/// assert_eq!(<f32 as StorageElement>::slice(Elements::F32(&[1.0])), Some(&[1.0f32][..]));
/// ```
pub trait StorageElement: Element {
    /// Borrows the elements as `&[Self]` if they are of this type.
    fn slice(e: Elements<'_>) -> Option<&[Self]>;
    /// Wraps a vector.
    fn wrap(v: Vec<Self>) -> Storage;
}

impl StorageElement for f32 {
    #[inline]
    fn slice(e: Elements<'_>) -> Option<&[f32]> {
        match e {
            Elements::F32(v) => Some(v),
            _ => None,
        }
    }
    #[inline]
    fn wrap(v: Vec<f32>) -> Storage {
        Storage::F32(v)
    }
}

impl StorageElement for f64 {
    #[inline]
    fn slice(e: Elements<'_>) -> Option<&[f64]> {
        match e {
            Elements::F64(v) => Some(v),
            _ => None,
        }
    }
    #[inline]
    fn wrap(v: Vec<f64>) -> Storage {
        Storage::F64(v)
    }
}

/// An n-dimensional array of `f32` or `f64`, stored contiguously in column-major order
/// (Julia's: the first index varies fastest, so a column of a `[features, batch]` matrix, one
/// sample, is contiguous). Cloning shares the storage; every operation returns a new tensor.
///
/// ```
/// use flux_tensor::{DType, Tensor};
/// let m = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]); // [1 3 5; 2 4 6]
/// assert_eq!(m.shape(), &[2, 3]);
/// assert_eq!(m.get(&[0, 1]), 3.0);
/// assert_eq!(m.dtype(), DType::F64);
/// ```
#[derive(Clone)]
pub struct Tensor {
    data: Data,
    shape: Shape,
}

/// Where the elements live. A one-element tensor keeps its element inline: chains of scalar
/// arithmetic (a tracked scalar's forward and backward) then allocate nothing per value.
#[derive(Clone)]
enum Data {
    Shared(Arc<Storage>),
    F32(Word<f32>),
    F64(f64),
}

/// A scalar in a word of its own, where the other variants keep theirs: an `f32` packed next
/// to the tag was copied as the seven bytes after it, two overlapping loads of which read a
/// value still being stored (a store-forwarding stall, 4% of W4's recorded scalar ops).
#[derive(Clone, Copy)]
#[repr(align(8))]
struct Word<T>(T);

impl Data {
    #[inline]
    fn shared(storage: Storage) -> Data {
        match storage {
            Storage::F32(v) if v.len() == 1 => Data::F32(Word(v[0])),
            Storage::F64(v) if v.len() == 1 => Data::F64(v[0]),
            s => {
                crate::kernels::tune_malloc();
                Data::Shared(Arc::new(s))
            }
        }
    }

    #[inline]
    fn one<T: Element>(x: T) -> Data {
        // exact: an f32 widened to f64 and narrowed back is itself
        match T::DTYPE {
            DType::F32 => Data::F32(Word(x.to_f64() as f32)),
            DType::F64 => Data::F64(x.to_f64()),
        }
    }
}

/// Runs `$body` with `$v` bound to the tensor's typed slice and `$T` to its element type.
macro_rules! dispatch {
    ($t:expr, |$v:ident : $T:ident| $body:expr) => {
        match $t.elements() {
            $crate::Elements::F32($v) => {
                #[allow(dead_code)]
                type $T = f32;
                let $v: &[f32] = $v;
                $body
            }
            $crate::Elements::F64($v) => {
                #[allow(dead_code)]
                type $T = f64;
                let $v: &[f64] = $v;
                $body
            }
        }
    };
}
pub(crate) use dispatch;

impl Tensor {
    /// Wraps storage and a shape. The storage length must equal the shape's element count.
    ///
    /// ```
    /// use flux_tensor::{Storage, Tensor};
    /// let t = Tensor::from_storage(Storage::F32(vec![1.0, 2.0]), &[2]).unwrap();
    /// assert_eq!(t.numel(), 2);
    /// ```
    pub fn from_storage(storage: Storage, shape: &[usize]) -> Result<Tensor> {
        let expected: usize = shape.iter().product();
        if storage.len() != expected {
            return Err(TensorError::ElementCount { op: "from_storage", len: storage.len(), shape: shape.to_vec(), expected });
        }
        Ok(Tensor { data: Data::shared(storage), shape: Shape::new(shape) })
    }

    /// Constructor from a typed vector whose length the caller knows to match (kernels' fast
    /// path: no `Result`); panics if it does not.
    ///
    /// ```
    /// use flux_tensor::{Shape, Tensor};
    /// let t = Tensor::from_typed(vec![1.0f32, 2.0], Shape::new(&[2]));
    /// assert_eq!(t.to_vec(), vec![1.0, 2.0]);
    /// ```
    #[inline]
    pub fn from_typed<T: StorageElement>(v: Vec<T>, shape: Shape) -> Tensor {
        // a real assert: code elsewhere (unsafe kernels among it) may index the elements by the
        // shape, so a safe caller must not be able to make the two disagree
        assert_eq!(v.len(), shape.numel(), "from_typed: {} elements for shape {:?}", v.len(), shape.dims());
        if v.len() == 1 {
            return Tensor::from_one(v[0], shape);
        }
        crate::kernels::tune_malloc();
        Tensor { data: Data::Shared(Arc::new(T::wrap(v))), shape }
    }

    /// Constructor of a one-element tensor of any shape with one element (`[]`, `[1]`,
    /// `[1, 1]`, ...): the element is kept inline, nothing is allocated. Panics for any other
    /// shape.
    ///
    /// ```
    /// use flux_tensor::{Shape, Tensor};
    /// let t = Tensor::from_one(2.0f32, Shape::new(&[1, 1]));
    /// assert_eq!(t.item(), 2.0);
    /// ```
    #[inline]
    pub fn from_one<T: Element>(x: T, shape: Shape) -> Tensor {
        assert_eq!(shape.numel(), 1, "from_one: shape {:?} does not hold one element", shape.dims());
        Tensor { data: Data::one(x), shape }
    }

    /// Builds a tensor from elements in column-major order (Julia's order). Accepts `Vec<f32>`
    /// or `Vec<f64>`; panics if the length does not match the shape (see [`Tensor::try_from_vec`]).
    ///
    /// ```
    /// use flux_tensor::Tensor;
    /// let m = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2]);
    /// assert_eq!(m.get(&[1, 0]), 2.0);
    /// ```
    pub fn from_vec<T: IntoStorage>(data: T, shape: &[usize]) -> Tensor {
        Tensor::try_from_vec(data, shape).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Fallible [`Tensor::from_vec`].
    ///
    /// ```
    /// use flux_tensor::Tensor;
    /// assert!(Tensor::try_from_vec(vec![1.0, 2.0, 3.0], &[2, 2]).is_err());
    /// ```
    pub fn try_from_vec<T: IntoStorage>(data: T, shape: &[usize]) -> Result<Tensor> {
        let storage = data.into_storage();
        let expected: usize = shape.iter().product();
        if storage.len() != expected {
            return Err(TensorError::ElementCount { op: "from_vec", len: storage.len(), shape: shape.to_vec(), expected });
        }
        Ok(Tensor { data: Data::shared(storage), shape: Shape::new(shape) })
    }

    /// A 0-d tensor holding one f64.
    ///
    /// ```
    /// let s = flux_tensor::Tensor::scalar(2.5);
    /// assert_eq!(s.item(), 2.5);
    /// assert_eq!(s.rank(), 0);
    /// ```
    pub fn scalar(x: f64) -> Tensor {
        Tensor::from_one(x, Shape::scalar())
    }

    /// A 0-d tensor of the given dtype.
    ///
    /// ```
    /// use flux_tensor::{DType, Tensor};
    /// assert_eq!(Tensor::scalar_of(1.0, DType::F32).dtype(), DType::F32);
    /// ```
    pub fn scalar_of(x: f64, dtype: DType) -> Tensor {
        Tensor::full_of(&[], x, dtype)
    }

    /// All zeros, f64.
    ///
    /// ```
    /// assert_eq!(flux_tensor::Tensor::zeros(&[2, 2]).sum_all(), 0.0);
    /// ```
    pub fn zeros(shape: &[usize]) -> Tensor {
        Tensor::full_of(shape, 0.0, DType::F64)
    }

    /// All ones, f64.
    ///
    /// ```
    /// assert_eq!(flux_tensor::Tensor::ones(&[2, 2]).sum_all(), 4.0);
    /// ```
    pub fn ones(shape: &[usize]) -> Tensor {
        Tensor::full_of(shape, 1.0, DType::F64)
    }

    /// Every element `value`, f64.
    ///
    /// ```
    /// assert_eq!(flux_tensor::Tensor::full(&[3], 2.0).to_vec(), vec![2.0; 3]);
    /// ```
    pub fn full(shape: &[usize], value: f64) -> Tensor {
        Tensor::full_of(shape, value, DType::F64)
    }

    /// Every element `value`, of the given dtype.
    ///
    /// ```
    /// use flux_tensor::{DType, Tensor};
    /// let t = Tensor::full_of(&[2], 1.5, DType::F32);
    /// assert_eq!(t.dtype(), DType::F32);
    /// ```
    pub fn full_of(shape: &[usize], value: f64, dtype: DType) -> Tensor {
        let n: usize = shape.iter().product();
        let shape = Shape::new(shape);
        match dtype {
            DType::F32 if n == 1 => Tensor::from_one(value as f32, shape),
            DType::F64 if n == 1 => Tensor::from_one(value, shape),
            DType::F32 => Tensor::from_typed(vec![value as f32; n], shape),
            DType::F64 => Tensor::from_typed(vec![value; n], shape),
        }
    }

    /// Zeros with the shape and dtype of `self`.
    ///
    /// ```
    /// let t = flux_tensor::Tensor::ones(&[2]);
    /// assert_eq!(t.zeros_like().to_vec(), vec![0.0, 0.0]);
    /// ```
    pub fn zeros_like(&self) -> Tensor {
        Tensor::full_of(&self.shape, 0.0, self.dtype())
    }

    /// Ones with the shape and dtype of `self`.
    ///
    /// ```
    /// let t = flux_tensor::Tensor::zeros(&[2]);
    /// assert_eq!(t.ones_like().to_vec(), vec![1.0, 1.0]);
    /// ```
    pub fn ones_like(&self) -> Tensor {
        Tensor::full_of(&self.shape, 1.0, self.dtype())
    }

    /// The dimensions.
    ///
    /// ```
    /// assert_eq!(flux_tensor::Tensor::zeros(&[2, 3]).shape(), &[2, 3]);
    /// ```
    #[inline]
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// Number of dimensions.
    ///
    /// ```
    /// assert_eq!(flux_tensor::Tensor::zeros(&[2, 3]).rank(), 2);
    /// ```
    #[inline]
    pub fn rank(&self) -> usize {
        self.shape.rank()
    }

    /// Number of elements.
    ///
    /// ```
    /// assert_eq!(flux_tensor::Tensor::zeros(&[2, 3]).numel(), 6);
    /// ```
    #[inline]
    pub fn numel(&self) -> usize {
        match &self.data {
            Data::Shared(s) => s.len(),
            Data::F32(_) | Data::F64(_) => 1,
        }
    }

    /// The element type.
    ///
    /// ```
    /// assert_eq!(flux_tensor::Tensor::zeros(&[1]).dtype(), flux_tensor::DType::F64);
    /// ```
    #[inline]
    pub fn dtype(&self) -> DType {
        match &self.data {
            Data::Shared(s) => s.dtype(),
            Data::F32(_) => DType::F32,
            Data::F64(_) => DType::F64,
        }
    }

    /// The elements (column-major), borrowed with their type.
    ///
    /// ```
    /// use flux_tensor::{Elements, Tensor};
    /// assert!(matches!(Tensor::zeros(&[2]).elements(), Elements::F64(&[0.0, 0.0])));
    /// ```
    #[inline]
    pub fn elements(&self) -> Elements<'_> {
        match &self.data {
            Data::Shared(s) => match &**s {
                Storage::F32(v) => Elements::F32(v),
                Storage::F64(v) => Elements::F64(v),
            },
            Data::F32(x) => Elements::F32(std::slice::from_ref(&x.0)),
            Data::F64(x) => Elements::F64(std::slice::from_ref(x)),
        }
    }

    /// Typed view of the elements; `None` if the dtype differs.
    ///
    /// ```
    /// let t = flux_tensor::Tensor::from_vec(vec![1.0f32, 2.0], &[2]);
    /// assert_eq!(t.as_slice::<f32>().unwrap(), &[1.0, 2.0]);
    /// ```
    #[inline]
    pub fn as_slice<T: StorageElement>(&self) -> Option<&[T]> {
        T::slice(self.elements())
    }

    /// True if both tensors share one storage buffer (a cheap identity check; one-element
    /// tensors keep their element inline and share nothing).
    ///
    /// ```
    /// let a = flux_tensor::Tensor::zeros(&[2]);
    /// assert!(a.shares_storage(&a.clone()));
    /// assert!(!flux_tensor::Tensor::scalar(1.0).shares_storage(&flux_tensor::Tensor::scalar(1.0)));
    /// ```
    pub fn shares_storage(&self, other: &Tensor) -> bool {
        match (&self.data, &other.data) {
            (Data::Shared(a), Data::Shared(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// The only value of a one-element tensor, as f64; panics otherwise (see [`Tensor::try_item`]).
    ///
    /// ```
    /// assert_eq!(flux_tensor::Tensor::full(&[1, 1], 3.0).item(), 3.0);
    /// ```
    pub fn item(&self) -> f64 {
        self.try_item().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Fallible [`Tensor::item`].
    ///
    /// ```
    /// assert!(flux_tensor::Tensor::zeros(&[2]).try_item().is_err());
    /// ```
    pub fn try_item(&self) -> Result<f64> {
        if self.numel() != 1 {
            return Err(TensorError::InvalidShape { op: "item", shape: self.shape.to_vec(), reason: "item() needs exactly one element".into() });
        }
        Ok(crate::dispatch!(self, |v: T| v[0].to_f64()))
    }

    /// Element at a multi-index (column-major), as f64. Panics when out of bounds.
    ///
    /// ```
    /// let m = flux_tensor::Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]);
    /// assert_eq!(m.get(&[0, 1]), 3.0);
    /// ```
    pub fn get(&self, index: &[usize]) -> f64 {
        let off = self.offset_of(index).unwrap_or_else(|e| panic!("{e}"));
        crate::dispatch!(self, |v: T| v[off].to_f64())
    }

    fn offset_of(&self, index: &[usize]) -> Result<usize> {
        if index.len() != self.rank() {
            return Err(TensorError::InvalidShape {
                op: "get",
                shape: self.shape.to_vec(),
                reason: format!("index {index:?} has {} entries, the tensor {} dimensions", index.len(), self.rank()),
            });
        }
        let mut off = 0;
        let mut stride = 1;
        for (d, (&i, &n)) in index.iter().zip(self.shape.iter()).enumerate() {
            if i >= n {
                return Err(TensorError::IndexOutOfBounds { op: "get", index: i, dim: d, shape: self.shape.to_vec() });
            }
            off += i * stride;
            stride *= n;
        }
        Ok(off)
    }

    /// All elements as f64, column-major (Julia's `vec(x)`).
    ///
    /// ```
    /// let m = flux_tensor::Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]);
    /// assert_eq!(m.to_vec(), vec![1.0, 2.0, 3.0, 4.0]);
    /// ```
    pub fn to_vec(&self) -> Vec<f64> {
        crate::dispatch!(self, |v: T| v.iter().map(|x| x.to_f64()).collect())
    }

    /// All elements as f32, column-major.
    ///
    /// ```
    /// assert_eq!(flux_tensor::Tensor::ones(&[2]).to_vec_f32(), vec![1.0f32, 1.0]);
    /// ```
    pub fn to_vec_f32(&self) -> Vec<f32> {
        crate::dispatch!(self, |v: T| v.iter().map(|x| x.to_f64() as f32).collect())
    }

    /// Converts to the given dtype (a cheap clone when it already is).
    ///
    /// ```
    /// use flux_tensor::{DType, Tensor};
    /// assert_eq!(Tensor::ones(&[2]).to_dtype(DType::F32).dtype(), DType::F32);
    /// ```
    pub fn to_dtype(&self, dtype: DType) -> Tensor {
        if self.dtype() == dtype {
            return self.clone();
        }
        let storage = match (self.elements(), dtype) {
            (Elements::F64(v), DType::F32) => Storage::F32(v.iter().map(|&x| x as f32).collect()),
            (Elements::F32(v), DType::F64) => Storage::F64(v.iter().map(|&x| x as f64).collect()),
            _ => unreachable!(),
        };
        Tensor { data: Data::shared(storage), shape: self.shape.clone() }
    }

    /// Converts to f32.
    ///
    /// ```
    /// assert_eq!(flux_tensor::Tensor::ones(&[1]).to_f32().dtype(), flux_tensor::DType::F32);
    /// ```
    pub fn to_f32(&self) -> Tensor {
        self.to_dtype(DType::F32)
    }

    /// Converts to f64.
    ///
    /// ```
    /// let t = flux_tensor::Tensor::from_vec(vec![1.0f32], &[1]);
    /// assert_eq!(t.to_f64().dtype(), flux_tensor::DType::F64);
    /// ```
    pub fn to_f64(&self) -> Tensor {
        self.to_dtype(DType::F64)
    }

    /// Same storage, new shape with the same number of elements; shares storage (column-major
    /// reshape, as Julia's `reshape`). Panics on a count mismatch (see [`Tensor::try_reshape`]).
    ///
    /// ```
    /// let t = flux_tensor::Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    /// assert_eq!(t.reshape(&[3, 2]).get(&[0, 1]), 4.0);
    /// ```
    pub fn reshape(&self, shape: &[usize]) -> Tensor {
        self.try_reshape(shape).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Fallible [`Tensor::reshape`].
    ///
    /// ```
    /// assert!(flux_tensor::Tensor::zeros(&[2, 3]).try_reshape(&[4]).is_err());
    /// ```
    pub fn try_reshape(&self, shape: &[usize]) -> Result<Tensor> {
        let expected: usize = shape.iter().product();
        if expected != self.numel() {
            return Err(TensorError::ShapeMismatch {
                op: "reshape",
                lhs: self.shape.to_vec(),
                rhs: shape.to_vec(),
                reason: format!("{} elements cannot be viewed as {}", self.numel(), expected),
            });
        }
        Ok(Tensor { data: self.data.clone(), shape: Shape::new(shape) })
    }

    /// Does any element hold NaN?
    ///
    /// ```
    /// assert!(!flux_tensor::Tensor::zeros(&[2]).has_nan());
    /// ```
    pub fn has_nan(&self) -> bool {
        crate::dispatch!(self, |v: T| v.iter().any(|x| x.is_nan()))
    }

    /// Elementwise closeness: `|a - b| <= atol + rtol * |b|` for every element, same shape.
    ///
    /// ```
    /// use flux_tensor::Tensor;
    /// assert!(Tensor::ones(&[2]).allclose(&Tensor::full(&[2], 1.0 + 1e-9), 1e-6, 1e-6));
    /// ```
    pub fn allclose(&self, other: &Tensor, rtol: f64, atol: f64) -> bool {
        if self.shape != other.shape {
            return false;
        }
        let (a, b) = (self.to_vec(), other.to_vec());
        a.iter().zip(b.iter()).all(|(x, y)| (x - y).abs() <= atol + rtol * y.abs() || (x.is_nan() && y.is_nan()))
    }
}

/// Types that `Tensor::from_vec` accepts: `Vec<f32>` and `Vec<f64>`.
///
/// ```
/// use flux_tensor::IntoStorage;
/// assert_eq!(vec![1.0f32].into_storage().dtype(), flux_tensor::DType::F32);
/// ```
pub trait IntoStorage {
    /// Wraps the vector in storage.
    fn into_storage(self) -> Storage;
}

impl IntoStorage for Vec<f32> {
    fn into_storage(self) -> Storage {
        Storage::F32(self)
    }
}

impl IntoStorage for Vec<f64> {
    fn into_storage(self) -> Storage {
        Storage::F64(self)
    }
}

impl From<f64> for Tensor {
    fn from(x: f64) -> Tensor {
        Tensor::scalar(x)
    }
}

impl From<f32> for Tensor {
    fn from(x: f32) -> Tensor {
        Tensor::from_one(x, Shape::scalar())
    }
}

impl PartialEq for Tensor {
    /// Same shape, dtype and elements.
    fn eq(&self, other: &Tensor) -> bool {
        if self.shape != other.shape || self.dtype() != other.dtype() {
            return false;
        }
        match (self.elements(), other.elements()) {
            (Elements::F32(a), Elements::F32(b)) => a == b,
            (Elements::F64(a), Elements::F64(b)) => a == b,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every recorded value holds a tensor and every gradient slot of a reverse pass is one:
    /// a field that widens it (or a layout with a tag byte beside a narrow field again) shows
    /// up directly in W4's time per op.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_tensor_is_seven_words() {
        assert_eq!(std::mem::size_of::<Tensor>(), 56);
        assert_eq!(std::mem::size_of::<Option<Tensor>>(), 56);
    }

    #[test]
    fn column_major_layout() {
        let m = Tensor::from_vec(vec![1., 2., 3., 4., 5., 6.], &[2, 3]);
        assert_eq!(m.get(&[0, 0]), 1.0);
        assert_eq!(m.get(&[1, 0]), 2.0);
        assert_eq!(m.get(&[0, 2]), 5.0);
        assert_eq!(m.get(&[1, 2]), 6.0);
    }

    #[test]
    fn from_vec_rejects_wrong_count() {
        let e = Tensor::try_from_vec(vec![1.0; 5], &[2, 3]).unwrap_err();
        assert!(e.to_string().contains("from_vec"), "{e}");
        assert!(e.to_string().contains("[2, 3]"), "{e}");
    }

    #[test]
    fn get_out_of_bounds_names_dim() {
        let m = Tensor::zeros(&[2, 3]);
        let e = m.offset_of(&[0, 3]).unwrap_err();
        assert!(matches!(e, TensorError::IndexOutOfBounds { dim: 1, .. }));
    }

    #[test]
    fn dtype_roundtrip() {
        let t = Tensor::from_vec(vec![0.5f32, 1.5], &[2]);
        assert_eq!(t.to_f64().to_f32(), t);
        assert_eq!(t.to_f64().dtype(), DType::F64);
    }

    #[test]
    fn item_requires_one_element() {
        assert_eq!(Tensor::scalar(3.0).item(), 3.0);
        assert!(Tensor::zeros(&[2]).try_item().is_err());
    }
}

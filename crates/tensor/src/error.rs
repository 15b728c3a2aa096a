//! [`TensorError`]: what went wrong, naming the operation and the shapes involved.

/// Errors from tensor operations. Every variant names the operation; shape errors give both
/// shapes, so a message is enough to find the bad call.
///
/// ```
/// use flux_tensor::Tensor;
/// let a = Tensor::zeros(&[2, 3]);
/// let b = Tensor::zeros(&[3, 3]);
/// let err = a.try_add(&b).unwrap_err();
/// assert_eq!(err.to_string(), "add: shapes [2, 3] and [3, 3] do not broadcast (dimension 1: 2 vs 3)");
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TensorError {
    /// Two shapes that an elementwise operation cannot broadcast together.
    #[error("{op}: shapes {lhs:?} and {rhs:?} do not broadcast (dimension {dim}: {a} vs {b})", dim = dim + 1)]
    Broadcast {
        /// The operation.
        op: &'static str,
        /// Left shape.
        lhs: Vec<usize>,
        /// Right shape.
        rhs: Vec<usize>,
        /// The first (0-based) dimension that disagrees.
        dim: usize,
        /// Its size on the left.
        a: usize,
        /// Its size on the right.
        b: usize,
    },
    /// Shapes that are incompatible for a non-elementwise operation (matmul, concat, ...).
    #[error("{op}: incompatible shapes {lhs:?} and {rhs:?}: {reason}")]
    ShapeMismatch {
        /// The operation.
        op: &'static str,
        /// Left shape.
        lhs: Vec<usize>,
        /// Right shape.
        rhs: Vec<usize>,
        /// What had to agree.
        reason: String,
    },
    /// A shape that does not fit the operation on its own.
    #[error("{op}: invalid shape {shape:?}: {reason}")]
    InvalidShape {
        /// The operation.
        op: &'static str,
        /// The shape.
        shape: Vec<usize>,
        /// Why it is invalid.
        reason: String,
    },
    /// Data whose length does not match the requested shape.
    #[error("{op}: {len} elements cannot fill shape {shape:?} ({expected} elements)")]
    ElementCount {
        /// The operation.
        op: &'static str,
        /// The number of elements given.
        len: usize,
        /// The shape asked for.
        shape: Vec<usize>,
        /// Its element count.
        expected: usize,
    },
    /// A dimension index past the rank.
    #[error("{op}: dimension {dim} is out of range for shape {shape:?}")]
    DimOutOfRange {
        /// The operation.
        op: &'static str,
        /// The dimension asked for (0-based).
        dim: usize,
        /// The tensor's shape.
        shape: Vec<usize>,
    },
    /// An index or range outside the tensor.
    #[error("{op}: index {index} is out of bounds for dimension {dim} of shape {shape:?}")]
    IndexOutOfBounds {
        /// The operation.
        op: &'static str,
        /// The offending index (or range end).
        index: usize,
        /// The dimension (0-based).
        dim: usize,
        /// The tensor's shape.
        shape: Vec<usize>,
    },
    /// A value that the operation forbids (NaN, a non-scalar where a scalar is needed...).
    #[error("{op}: {reason}")]
    InvalidValue {
        /// The operation.
        op: &'static str,
        /// What was wrong.
        reason: String,
    },
}

/// `Result` with [`TensorError`].
///
/// ```
/// fn half(t: &flux_tensor::Tensor) -> flux_tensor::Result<flux_tensor::Tensor> { t.try_div(&flux_tensor::Tensor::scalar(2.0)) }
/// assert_eq!(half(&flux_tensor::Tensor::scalar(1.0)).unwrap().item(), 0.5);
/// ```
pub type Result<T> = std::result::Result<T, TensorError>;

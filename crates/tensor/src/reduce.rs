//! Reductions: over every element or over chosen dimensions, keeping the reduced dimensions as 1
//! (Julia's `sum(x, dims = ...)`, with 0-based dimension numbers).

use crate::dtype::Element;
use crate::error::{Result, TensorError};
use crate::shape::Shape;
use crate::tensor::{StorageElement, Tensor};

/// Which reduction to run.
///
/// ```
/// use flux_tensor::{ReduceOp, Tensor};
/// let t = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]);
/// assert_eq!(t.reduce(ReduceOp::Max, &[0]).to_vec(), vec![2.0, 4.0]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    /// Sum.
    Sum,
    /// Arithmetic mean.
    Mean,
    /// Largest element (NaN propagates).
    Max,
    /// Smallest element (NaN propagates).
    Min,
}

impl ReduceOp {
    /// The name in error messages.
    ///
    /// ```
    /// assert_eq!(flux_tensor::ReduceOp::Sum.name(), "sum");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "sum",
            ReduceOp::Mean => "mean",
            ReduceOp::Max => "max",
            ReduceOp::Min => "min",
        }
    }
}

/// Checks a list of dims against a rank: each in range, no repeats.
fn check_dims(op: &'static str, shape: &[usize], dims: &[usize]) -> Result<()> {
    for (i, &d) in dims.iter().enumerate() {
        if d >= shape.len() {
            return Err(TensorError::DimOutOfRange { op, dim: d, shape: shape.to_vec() });
        }
        if dims[..i].contains(&d) {
            return Err(TensorError::InvalidValue { op, reason: format!("dimension {d} is listed twice in {dims:?}") });
        }
    }
    Ok(())
}

/// Generic fold over chosen dims into a tensor of shape `out` (reduced dims are 1).
fn fold_dims<T: Element>(x: &[T], shape: &[usize], out: &[usize], init: T, f: impl Fn(T, T) -> T) -> Vec<T> {
    let n_out: usize = out.iter().product();
    if shape.is_empty() || shape == out {
        // nothing is reduced (a 0-d input, or no dims): fold each element with the init
        return x.iter().map(|&v| f(init, v)).collect();
    }
    let mut acc = vec![init; n_out];
    if x.is_empty() {
        return acc;
    }
    // strides of the output seen from the input's index space: 0 along reduced dims.
    let rank = shape.len();
    let mut so = Vec::with_capacity(rank);
    let mut s = 1;
    for d in 0..rank {
        so.push(if out[d] == 1 { 0 } else { s });
        s *= out[d];
    }
    let n0 = shape[0];
    let outer: usize = shape[1..].iter().product();
    let mut idx = vec![0usize; rank];
    let mut oo = 0usize;
    for run in 0..outer {
        let xr = &x[run * n0..(run + 1) * n0];
        if so[0] == 0 {
            let mut a = acc[oo];
            for &v in xr {
                a = f(a, v);
            }
            acc[oo] = a;
        } else {
            for (a, &v) in acc[oo..oo + n0].iter_mut().zip(xr) {
                *a = f(*a, v);
            }
        }
        for d in 1..rank {
            idx[d] += 1;
            oo += so[d];
            if idx[d] < shape[d] {
                break;
            }
            oo -= so[d] * shape[d];
            idx[d] = 0;
        }
    }
    acc
}

fn reduce_typed<T: StorageElement>(x: &[T], shape: &[usize], out: &[usize], op: ReduceOp) -> Vec<T> {
    match op {
        ReduceOp::Sum => fold_dims(x, shape, out, T::ZERO, |a, b| a + b),
        ReduceOp::Mean => {
            let count = (x.len() / out.iter().product::<usize>().max(1)).max(1);
            let inv = T::ONE / T::from_f64(count as f64);
            let mut s = fold_dims(x, shape, out, T::ZERO, |a, b| a + b);
            for v in &mut s {
                *v = *v * inv;
            }
            s
        }
        ReduceOp::Max => fold_dims(x, shape, out, T::neg_infinity(), |a, b| a.maximum(b)),
        ReduceOp::Min => fold_dims(x, shape, out, T::infinity(), |a, b| a.minimum(b)),
    }
}

/// [`reduce_typed`] of every element of a non-empty `x` into one, folding in memory order.
fn fold_all<T: StorageElement>(x: &[T], op: ReduceOp) -> T {
    let fold = |init: T, f: fn(T, T) -> T| x.iter().fold(init, |a, &v| f(a, v));
    match op {
        ReduceOp::Sum => fold(T::ZERO, |a, b| a + b),
        ReduceOp::Mean => fold(T::ZERO, |a, b| a + b) * (T::ONE / T::from_f64(x.len() as f64)),
        ReduceOp::Max => fold(T::neg_infinity(), |a, b| a.maximum(b)),
        ReduceOp::Min => fold(T::infinity(), |a, b| a.minimum(b)),
    }
}

impl Tensor {
    /// Fallible reduction over `dims` (0-based), keeping them as size 1. Empty `dims` reduces
    /// nothing (a copy).
    ///
    /// ```
    /// use flux_tensor::{ReduceOp, Tensor};
    /// assert!(Tensor::ones(&[2]).try_reduce(ReduceOp::Sum, &[1]).is_err());
    /// ```
    pub fn try_reduce(&self, op: ReduceOp, dims: &[usize]) -> Result<Tensor> {
        check_dims(op.name(), self.shape(), dims)?;
        let mut out = Shape::new(self.shape());
        for &d in dims {
            out = out.with_dim(d, 1);
        }
        if matches!(op, ReduceOp::Max | ReduceOp::Min) && dims.iter().any(|&d| self.shape()[d] == 0) {
            return Err(TensorError::InvalidShape { op: op.name(), shape: self.shape().to_vec(), reason: "cannot reduce an empty dimension".into() });
        }
        if out.numel() == 1 && self.numel() > 0 {
            // everything folds into one element (a loss): the same fold in the same order as
            // `fold_dims`, with no index bookkeeping and no buffers
            return Ok(crate::dispatch!(self, |v: T| Tensor::from_one(fold_all(v, op), out)));
        }
        Ok(crate::dispatch!(self, |v: T| Tensor::from_typed(reduce_typed(v, self.shape(), &out, op), out.clone())))
    }

    /// Reduction over `dims`; panics with the message of [`Tensor::try_reduce`].
    ///
    /// ```
    /// use flux_tensor::{ReduceOp, Tensor};
    /// let t = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]);
    /// assert_eq!(t.reduce(ReduceOp::Sum, &[1]).to_vec(), vec![4.0, 6.0]);
    /// ```
    pub fn reduce(&self, op: ReduceOp, dims: &[usize]) -> Tensor {
        self.try_reduce(op, dims).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Reduction over every element to a 0-d tensor of the same dtype.
    ///
    /// ```
    /// use flux_tensor::{ReduceOp, Tensor};
    /// assert_eq!(Tensor::ones(&[2, 3]).reduce_all(ReduceOp::Mean).item(), 1.0);
    /// ```
    pub fn reduce_all(&self, op: ReduceOp) -> Tensor {
        let flat = self.reshape(&[self.numel()]);
        if self.numel() == 0 && matches!(op, ReduceOp::Max | ReduceOp::Min) {
            panic!("{}: cannot reduce an empty tensor", op.name());
        }
        flat.reduce(op, &[0]).reshape(&[])
    }

    /// Sum of every element as f64.
    ///
    /// ```
    /// assert_eq!(flux_tensor::Tensor::ones(&[2, 3]).sum_all(), 6.0);
    /// ```
    pub fn sum_all(&self) -> f64 {
        crate::dispatch!(self, |v: T| v.iter().map(|x| x.to_f64()).sum())
    }

    /// Sum of every element, 0-d.
    ///
    /// ```
    /// assert_eq!(flux_tensor::Tensor::ones(&[4]).sum().item(), 4.0);
    /// ```
    pub fn sum(&self) -> Tensor {
        self.reduce_all(ReduceOp::Sum)
    }

    /// Mean of every element, 0-d.
    ///
    /// ```
    /// assert_eq!(flux_tensor::Tensor::from_vec(vec![1.0, 3.0], &[2]).mean().item(), 2.0);
    /// ```
    pub fn mean(&self) -> Tensor {
        self.reduce_all(ReduceOp::Mean)
    }

    /// Largest element, 0-d.
    ///
    /// ```
    /// assert_eq!(flux_tensor::Tensor::from_vec(vec![1.0, 3.0], &[2]).max().item(), 3.0);
    /// ```
    pub fn max(&self) -> Tensor {
        self.reduce_all(ReduceOp::Max)
    }

    /// Smallest element, 0-d.
    ///
    /// ```
    /// assert_eq!(flux_tensor::Tensor::from_vec(vec![1.0, 3.0], &[2]).min().item(), 1.0);
    /// ```
    pub fn min(&self) -> Tensor {
        self.reduce_all(ReduceOp::Min)
    }

    /// Sum over `dims`, keeping them as 1 (Julia's `sum(x, dims=...)`, 0-based).
    ///
    /// ```
    /// let t = flux_tensor::Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]);
    /// assert_eq!(t.sum_dims(&[0]).shape(), &[1, 2]);
    /// ```
    pub fn sum_dims(&self, dims: &[usize]) -> Tensor {
        self.reduce(ReduceOp::Sum, dims)
    }

    /// Mean over `dims`, keeping them as 1.
    ///
    /// ```
    /// let t = flux_tensor::Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]);
    /// assert_eq!(t.mean_dims(&[1]).to_vec(), vec![2.0, 3.0]);
    /// ```
    pub fn mean_dims(&self, dims: &[usize]) -> Tensor {
        self.reduce(ReduceOp::Mean, dims)
    }

    /// Maximum over `dims`, keeping them as 1.
    ///
    /// ```
    /// let t = flux_tensor::Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]);
    /// assert_eq!(t.max_dims(&[0]).to_vec(), vec![2.0, 4.0]);
    /// ```
    pub fn max_dims(&self, dims: &[usize]) -> Tensor {
        self.reduce(ReduceOp::Max, dims)
    }

    /// Minimum over `dims`, keeping them as 1.
    ///
    /// ```
    /// let t = flux_tensor::Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]);
    /// assert_eq!(t.min_dims(&[0]).to_vec(), vec![1.0, 3.0]);
    /// ```
    pub fn min_dims(&self, dims: &[usize]) -> Tensor {
        self.reduce(ReduceOp::Min, dims)
    }

    /// Index of the largest element along `dim` for every other position (first one on ties),
    /// in column-major order of the remaining positions. `onecold` is `argmax(0)`.
    ///
    /// ```
    /// let t = flux_tensor::Tensor::from_vec(vec![0.1, 0.9, 0.8, 0.2], &[2, 2]);
    /// assert_eq!(t.argmax(0), vec![1, 0]);
    /// ```
    pub fn argmax(&self, dim: usize) -> Vec<usize> {
        self.try_argmax(dim).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Fallible [`Tensor::argmax`].
    ///
    /// ```
    /// assert!(flux_tensor::Tensor::ones(&[2]).try_argmax(1).is_err());
    /// ```
    pub fn try_argmax(&self, dim: usize) -> Result<Vec<usize>> {
        if dim >= self.rank().max(1) {
            return Err(TensorError::DimOutOfRange { op: "argmax", dim, shape: self.shape().to_vec() });
        }
        let n = self.shape().dim_or_one(dim);
        if n == 0 {
            return Err(TensorError::InvalidShape { op: "argmax", shape: self.shape().to_vec(), reason: "empty dimension".into() });
        }
        let inner: usize = self.shape()[..dim.min(self.rank())].iter().product();
        let outer = self.numel() / (inner * n);
        let v = self.to_vec();
        let mut res = Vec::with_capacity(inner * outer);
        for o in 0..outer {
            for i in 0..inner {
                let mut best = 0;
                let mut bv = f64::NEG_INFINITY;
                for k in 0..n {
                    let x = v[i + inner * (k + n * o)];
                    if x > bv || (k == 0) {
                        bv = x;
                        best = k;
                    }
                }
                res.push(best);
            }
        }
        Ok(res)
    }

    /// Sums `self` down to `shape`, the inverse of broadcasting (the gradient of a broadcast):
    /// every dimension where `shape` has 1 (or is missing) is summed.
    ///
    /// ```
    /// let t = flux_tensor::Tensor::ones(&[2, 3]);
    /// assert_eq!(t.sum_to(&[2]).to_vec(), vec![3.0, 3.0]);
    /// ```
    pub fn sum_to(&self, shape: &[usize]) -> Tensor {
        self.try_sum_to(shape).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Fallible [`Tensor::sum_to`].
    ///
    /// ```
    /// assert!(flux_tensor::Tensor::ones(&[2, 3]).try_sum_to(&[3]).is_err());
    /// ```
    pub fn try_sum_to(&self, shape: &[usize]) -> Result<Tensor> {
        if self.shape().dims() == shape {
            return Ok(self.clone());
        }
        let mut dims = Vec::new();
        for d in 0..self.rank().max(shape.len()) {
            let (have, want) = (self.shape().dim_or_one(d), shape.get(d).copied().unwrap_or(1));
            if have == want {
                continue;
            }
            if want == 1 && d < self.rank() {
                dims.push(d);
            } else {
                return Err(TensorError::ShapeMismatch {
                    op: "sum_to",
                    lhs: self.shape().to_vec(),
                    rhs: shape.to_vec(),
                    reason: format!("dimension {}: {} cannot be summed to {}", d + 1, have, want),
                });
            }
        }
        let reduced = if dims.is_empty() { self.clone() } else { self.reduce(ReduceOp::Sum, &dims) };
        reduced.try_reshape(shape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reductions_keep_dims() {
        let t = Tensor::from_vec((1..=24).map(|x| x as f64).collect::<Vec<_>>(), &[2, 3, 4]);
        let s = t.sum_dims(&[1]);
        assert_eq!(s.shape(), &[2, 1, 4]);
        assert_eq!(s.get(&[0, 0, 0]), 1.0 + 3.0 + 5.0);
        let s = t.sum_dims(&[0, 2]);
        assert_eq!(s.shape(), &[1, 3, 1]);
        assert_eq!(s.sum_all(), t.sum_all());
        assert_eq!(t.max().item(), 24.0);
        assert_eq!(t.min().item(), 1.0);
        assert_eq!(t.mean().item(), 12.5);
    }

    #[test]
    fn bad_dims_are_errors() {
        let t = Tensor::zeros(&[2, 3]);
        let e = t.try_reduce(ReduceOp::Sum, &[2]).unwrap_err().to_string();
        assert!(e.contains("sum") && e.contains("[2, 3]"), "{e}");
        assert!(t.try_reduce(ReduceOp::Sum, &[0, 0]).is_err());
        assert!(t.try_sum_to(&[3]).is_err());
    }

    #[test]
    fn max_propagates_nan() {
        let t = Tensor::from_vec(vec![1.0, f64::NAN, 3.0], &[3]);
        assert!(t.max().item().is_nan());
    }

    proptest! {
        #[test]
        fn sum_dims_matches_naive(shape in prop::collection::vec(1usize..4, 1..4), mask in prop::collection::vec(any::<bool>(), 4)) {
            let t = Tensor::randn(&shape);
            let dims: Vec<usize> = (0..shape.len()).filter(|&d| mask[d]).collect();
            let got = t.sum_dims(&dims);
            let v = t.to_vec();
            let strides = t.shape().strides();
            // naive: accumulate each element into its reduced index
            let mut want = vec![0.0; got.numel()];
            let ostr = got.shape().strides();
            for (lin, x) in v.iter().enumerate() {
                let mut off = 0;
                for d in 0..shape.len() {
                    let i = (lin / strides[d]) % shape[d];
                    if !dims.contains(&d) { off += i * ostr[d]; }
                }
                want[off] += x;
            }
            for (g, w) in got.to_vec().iter().zip(&want) {
                prop_assert!((g - w).abs() < 1e-12);
            }
        }
    }
}

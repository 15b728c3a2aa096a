//! Reductions: `sum`, `mean`, `max`, `min`, over everything or over dims (kept as 1).

use flux_tensor::{BinaryOp, ReduceOp, TensorError};

use crate::op::Op;
use crate::value::Value;
use crate::var::Var;

/// `dx` for `y = reduce(x, dims)`. Max and min send the gradient to the extreme elements,
/// shared equally among ties.
pub(crate) fn backward<V: Value>(op: ReduceOp, x: &V, y: &V, dims: &[usize], g: &V) -> Option<V> {
    let shape = x.shape();
    let spread = g.broadcast_to(&shape);
    Some(match op {
        ReduceOp::Sum => spread,
        ReduceOp::Mean => {
            let count: usize = dims.iter().map(|&d| shape[d]).product();
            spread.scale(1.0 / count.max(1) as f64)
        }
        ReduceOp::Max | ReduceOp::Min => {
            let hit = x.tensor().binary(&y.tensor(), BinaryOp::Eq);
            let ties = hit.sum_dims(dims);
            spread.mul_const(&hit.binary(&ties, BinaryOp::Div))
        }
    })
}

/// Forward mode: the tangent reduced the same way (for max and min, the tangents of the
/// extreme elements, averaged among ties), as `Var` operations.
pub(crate) fn tangent(op: ReduceOp, x: &Var, y: &Var, dims: &[usize], t: &Var) -> Var {
    match op {
        ReduceOp::Sum | ReduceOp::Mean => t.reduce(op, dims),
        ReduceOp::Max | ReduceOp::Min => {
            let hit = x.data().binary(&y.data(), BinaryOp::Eq);
            let ties = hit.sum_dims(dims);
            t.mul_const(&hit.binary(&ties, BinaryOp::Div)).reduce(ReduceOp::Sum, dims)
        }
    }
}

/// Forward mode of a reduction over every element: the tangent reduced the same way, 0-d.
pub(crate) fn tangent_all(op: ReduceOp, x: &Var, y: &Var, t: &Var) -> Var {
    match op {
        ReduceOp::Sum | ReduceOp::Mean => t.reduce_all(op),
        ReduceOp::Max | ReduceOp::Min => tangent(op, x, y, all_dims(x.rank()).as_ref(), t).reshape(&[]),
    }
}

/// Every dimension of a value of rank `rank`, `0..rank`, without allocating for the usual
/// ranks (a reduction over everything is the loss of nearly every gradient call).
pub(crate) fn all_dims(rank: usize) -> std::borrow::Cow<'static, [usize]> {
    const AXES: [usize; 8] = [0, 1, 2, 3, 4, 5, 6, 7];
    match AXES.get(..rank) {
        Some(axes) => std::borrow::Cow::Borrowed(axes),
        None => std::borrow::Cow::Owned((0..rank).collect()),
    }
}

impl Var {
    /// Fallible reduction over `dims` (0-based), keeping them as 1.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// use flux_tensor::{ReduceOp, Tensor};
    /// assert!(Var::from(Tensor::ones(&[2])).try_reduce(ReduceOp::Sum, &[3]).is_err());
    /// ```
    pub fn try_reduce(&self, op: ReduceOp, dims: &[usize]) -> Result<Var, TensorError> {
        let value = self.with_data(|x| x.try_reduce(op, dims))?;
        Ok(Var::from_op(value, Op::Reduce(op, self.clone(), dims.to_vec())))
    }

    /// Panicking [`Var::try_reduce`].
    ///
    /// ```
    /// use flux_autograd::Var;
    /// use flux_tensor::{ReduceOp, Tensor};
    /// let x = Var::from(Tensor::ones(&[2, 3]));
    /// assert_eq!(x.reduce(ReduceOp::Sum, &[1]).to_vec(), vec![3.0, 3.0]);
    /// ```
    pub fn reduce(&self, op: ReduceOp, dims: &[usize]) -> Var {
        self.try_reduce(op, dims).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A reduction over every element, 0-d, recorded as one op.
    fn reduce_all(&self, op: ReduceOp) -> Var {
        let value = self.with_data(|x| x.reduce(op, all_dims(x.rank()).as_ref()).reshape(&[]));
        Var::from_op(value, Op::ReduceAll(op, self.clone()))
    }

    /// Sum of every element, 0-d.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// assert_eq!(Var::from(flux_tensor::Tensor::ones(&[2, 3])).sum().item(), 6.0);
    /// ```
    pub fn sum(&self) -> Var {
        self.reduce_all(ReduceOp::Sum)
    }

    /// Mean of every element, 0-d.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// assert_eq!(Var::from(flux_tensor::Tensor::ones(&[2, 3])).mean().item(), 1.0);
    /// ```
    pub fn mean(&self) -> Var {
        self.reduce_all(ReduceOp::Mean)
    }

    /// Largest element, 0-d.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// let x = Var::from(flux_tensor::Tensor::from_vec(vec![1.0, 4.0], &[2]));
    /// assert_eq!(x.max().item(), 4.0);
    /// ```
    pub fn max(&self) -> Var {
        self.reduce_all(ReduceOp::Max)
    }

    /// Smallest element, 0-d.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// let x = Var::from(flux_tensor::Tensor::from_vec(vec![1.0, 4.0], &[2]));
    /// assert_eq!(x.min().item(), 1.0);
    /// ```
    pub fn min(&self) -> Var {
        self.reduce_all(ReduceOp::Min)
    }

    /// Sum over `dims`, keeping them as 1 (Julia's `sum(x, dims=...)`, 0-based).
    ///
    /// ```
    /// use flux_autograd::Var;
    /// let x = Var::from(flux_tensor::Tensor::ones(&[2, 3]));
    /// assert_eq!(x.sum_dims(&[0]).shape(), &[1, 3]);
    /// ```
    pub fn sum_dims(&self, dims: &[usize]) -> Var {
        self.reduce(ReduceOp::Sum, dims)
    }

    /// Mean over `dims`, keeping them as 1.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// let x = Var::from(flux_tensor::Tensor::ones(&[2, 3]));
    /// assert_eq!(x.mean_dims(&[1]).to_vec(), vec![1.0, 1.0]);
    /// ```
    pub fn mean_dims(&self, dims: &[usize]) -> Var {
        self.reduce(ReduceOp::Mean, dims)
    }

    /// Maximum over `dims`, keeping them as 1.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// let x = Var::from(flux_tensor::Tensor::from_vec(vec![1.0, 4.0], &[2]));
    /// assert_eq!(x.max_dims(&[0]).to_vec(), vec![4.0]);
    /// ```
    pub fn max_dims(&self, dims: &[usize]) -> Var {
        self.reduce(ReduceOp::Max, dims)
    }

    /// Minimum over `dims`, keeping them as 1.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// let x = Var::from(flux_tensor::Tensor::from_vec(vec![1.0, 4.0], &[2]));
    /// assert_eq!(x.min_dims(&[0]).to_vec(), vec![1.0]);
    /// ```
    pub fn min_dims(&self, dims: &[usize]) -> Var {
        self.reduce(ReduceOp::Min, dims)
    }
}

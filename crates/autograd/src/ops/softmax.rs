//! Softmax and log-softmax along a dimension: a max-subtracted forward in few passes, and
//! backward rules in terms of the output, so they are differentiable again.

use flux_tensor::{ReduceOp, UnaryOp};

use crate::op::Op;
use crate::value::Value;
use crate::var::Var;

/// `dx = y .* (g .- sum(g .* y, dims))`.
pub(crate) fn softmax_backward<V: Value>(y: &V, dim: usize, g: &V) -> V {
    if let Some(d) = V::fused_softmax_grad(y, dim, g) {
        return d;
    }
    let s = g.mul(y).reduce(ReduceOp::Sum, &[dim]);
    g.sub(&s).mul(y)
}

/// `dx = g .- exp.(y) .* sum(g, dims)`.
pub(crate) fn logsoftmax_backward<V: Value>(y: &V, dim: usize, g: &V) -> V {
    let s = g.reduce(ReduceOp::Sum, &[dim]);
    g.sub(&y.unary(UnaryOp::Exp).mul(&s))
}

/// Forward mode of softmax: its Jacobian `diag(y) - y·yᵀ` is symmetric, so the tangent is the
/// backward rule applied to the input's tangent.
pub(crate) fn softmax_tangent(y: &Var, dim: usize, t: &Var) -> Var {
    softmax_backward(y, dim, t)
}

/// Forward mode of log-softmax: `ẏ = ẋ .- sum(exp.(y) .* ẋ, dims)`.
pub(crate) fn logsoftmax_tangent(y: &Var, dim: usize, t: &Var) -> Var {
    t - (y.exp() * t).reduce(ReduceOp::Sum, &[dim])
}

fn check_dim(x: &Var, dim: usize, op: &str) {
    assert!(dim < x.rank().max(1), "{op}: dimension {dim} is out of range for shape {:?}", x.shape());
}

impl Var {
    /// Softmax along `dim` (Flux's `softmax(x; dims)`; features are dim 0).
    ///
    /// ```
    /// use flux_autograd::Var;
    /// let x = Var::from(flux_tensor::Tensor::from_vec(vec![1.0, 1.0], &[2]));
    /// assert_eq!(x.softmax(0).to_vec(), vec![0.5, 0.5]);
    /// ```
    pub fn softmax(&self, dim: usize) -> Var {
        check_dim(self, dim, "softmax");
        let dim = dim.min(self.rank().saturating_sub(1));
        Var::from_op(self.data().softmax(dim), Op::Softmax(self.clone(), dim))
    }

    /// Log-softmax along `dim`, computed stably.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// let x = Var::from(flux_tensor::Tensor::from_vec(vec![1000.0, 1000.0], &[2]));
    /// assert!((x.logsoftmax(0).to_vec()[0] + 2f64.ln()).abs() < 1e-12);
    /// ```
    pub fn logsoftmax(&self, dim: usize) -> Var {
        check_dim(self, dim, "logsoftmax");
        let dim = dim.min(self.rank().saturating_sub(1));
        Var::from_op(self.data().log_softmax(dim), Op::LogSoftmax(self.clone(), dim))
    }

    /// `log(sum(exp(x), dims = dim))`, stable, keeping `dim` as 1.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// let x = Var::from(flux_tensor::Tensor::from_vec(vec![0.0, 0.0], &[2]));
    /// assert!((x.logsumexp(0).item() - 2f64.ln()).abs() < 1e-15);
    /// ```
    pub fn logsumexp(&self, dim: usize) -> Var {
        // x - logsoftmax(x) is constant along dim: take one slice of it
        let m = self.detach().max_dims(&[dim]);
        (self - &m).exp().sum_dims(&[dim]).ln() + &m
    }
}

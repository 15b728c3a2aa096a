//! Softmax, log-softmax and log-sum-exp along one dimension, fused: one pass for the maximum,
//! one for the exponentials and their sum, one to normalise, per slice, with no temporaries.

use crate::dtype::Element;
use crate::error::{Result, TensorError};
use crate::kernels::vmath;
use crate::tensor::{Elements, Tensor};

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Softmax,
    LogSoftmax,
}

/// Applies `kind` along the middle axis of a `[inner, n, outer]` view.
fn kernel<T: Element>(x: &[T], inner: usize, n: usize, outer: usize, kind: Kind) -> Vec<T> {
    let mut out = vec![T::ZERO; x.len()];
    for o in 0..outer {
        let base = o * n * inner;
        for i in 0..inner {
            let at = |k: usize| base + i + k * inner;
            let mut m = T::neg_infinity();
            for k in 0..n {
                m = m.maximum(x[at(k)]);
            }
            // an infinite maximum (a slice of all -Inf, or an Inf) shifts by 0 instead, so the
            // result is 0, 1 or NaN as the definition gives rather than NaN everywhere
            if m == T::neg_infinity() || m == T::infinity() {
                m = T::ZERO;
            }
            let mut s = T::ZERO;
            for k in 0..n {
                let e = (x[at(k)] - m).exp();
                if kind == Kind::Softmax {
                    out[at(k)] = e;
                }
                s += e;
            }
            match kind {
                Kind::Softmax => {
                    let inv = T::ONE / s;
                    for k in 0..n {
                        out[at(k)] = out[at(k)] * inv;
                    }
                }
                Kind::LogSoftmax => {
                    let lse = m + s.ln();
                    for k in 0..n {
                        out[at(k)] = x[at(k)] - lse;
                    }
                }
            }
        }
    }
    out
}

impl Tensor {
    fn along(&self, op: &'static str, dim: usize, kind: Kind) -> Result<Tensor> {
        if self.rank() == 0 {
            return Ok(match kind {
                Kind::Softmax => self.ones_like(),
                Kind::LogSoftmax => self.zeros_like(),
            });
        }
        if dim >= self.rank() {
            return Err(TensorError::DimOutOfRange { op, dim, shape: self.shape().to_vec() });
        }
        let inner: usize = self.shape()[..dim].iter().product();
        let n = self.shape()[dim];
        let outer: usize = self.shape()[dim + 1..].iter().product();
        if let (Elements::F32(x), Kind::Softmax, 1, true) = (self.elements(), kind, inner, n > 0) {
            // contiguous columns: the vectorised kernel
            return Ok(Tensor::from_typed(vmath::softmax_columns(x, n), self.shape().clone()));
        }
        Ok(crate::dispatch!(self, |v: T| Tensor::from_typed(kernel(v, inner, n, outer, kind), self.shape().clone())))
    }

    /// Softmax along `dim` (max-subtracted, one fused pass per slice).
    ///
    /// ```
    /// let x = flux_tensor::Tensor::from_vec(vec![1.0, 1.0], &[2]);
    /// assert_eq!(x.softmax(0).to_vec(), vec![0.5, 0.5]);
    /// ```
    pub fn softmax(&self, dim: usize) -> Tensor {
        self.along("softmax", dim, Kind::Softmax).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The softmax's backward rule `y .* (g .- sum(g .* y, dims = dim))` in one fused kernel, for
    /// the output `y` and its gradient `g` of one shape, f32, along the first dimension; `None`
    /// otherwise (the caller composes the rule).
    ///
    /// ```
    /// use flux_tensor::Tensor;
    /// let y = Tensor::from_vec(vec![0.25, 0.75], &[2]).to_f32();
    /// let g = Tensor::from_vec(vec![1.0, 0.0], &[2]).to_f32();
    /// assert_eq!(Tensor::softmax_grad(&y, &g, 0).unwrap().to_vec(), vec![0.1875, -0.1875]);
    /// ```
    pub fn softmax_grad(y: &Tensor, g: &Tensor, dim: usize) -> Option<Tensor> {
        match (y.elements(), g.elements()) {
            (Elements::F32(yv), Elements::F32(gv)) if dim == 0 && y.rank() > 0 && y.shape() == g.shape() && y.shape()[0] > 0 => {
                Some(Tensor::from_typed(vmath::softmax_grad_columns(yv, gv, y.shape()[0]), y.shape().clone()))
            }
            _ => None,
        }
    }

    /// Log-softmax along `dim`, stable for large inputs.
    ///
    /// ```
    /// let x = flux_tensor::Tensor::from_vec(vec![1000.0, 1000.0], &[2]);
    /// assert!((x.log_softmax(0).to_vec()[0] + 2f64.ln()).abs() < 1e-12);
    /// ```
    pub fn log_softmax(&self, dim: usize) -> Tensor {
        self.along("logsoftmax", dim, Kind::LogSoftmax).unwrap_or_else(|e| panic!("{e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_definition_along_each_dim() {
        let x = Tensor::randn(&[3, 4, 2]);
        for dim in 0..3 {
            let e = x.exp();
            let want = &e / &e.sum_dims(&[dim]);
            assert!(x.softmax(dim).allclose(&want, 1e-12, 1e-14));
            assert!(x.log_softmax(dim).allclose(&want.ln(), 1e-12, 1e-12));
        }
    }

    #[test]
    fn f32_columns_match_f64() {
        let x = Tensor::randn(&[7, 3, 2]);
        let g = Tensor::randn(&[7, 3, 2]);
        let y = x.softmax(0);
        assert!(x.to_f32().softmax(0).to_f64().allclose(&y, 1e-6, 1e-7));
        let want = &y * &(&g - &(&g * &y).sum_dims(&[0]));
        let got = Tensor::softmax_grad(&y.to_f32(), &g.to_f32(), 0).unwrap();
        assert!(got.to_f64().allclose(&want, 1e-5, 1e-6));
        assert!(Tensor::softmax_grad(&y, &g, 0).is_none() && Tensor::softmax_grad(&y.to_f32(), &g.to_f32(), 1).is_none());
    }

    #[test]
    fn extreme_inputs_stay_finite() {
        let x = Tensor::from_vec(vec![1e4f32, -1e4, 0.0], &[3]);
        assert!(!x.softmax(0).has_nan());
        assert!(!x.log_softmax(0).has_nan());
        assert!(Tensor::zeros(&[2]).try_reduce(crate::ReduceOp::Sum, &[1]).is_err());
    }
}

//! Pooling, composed from differentiable primitives so every order works: max pooling gathers
//! each window's argmax (`index_select` of the flattened input; its adjoint adds the gradient
//! back with `index_add`, the argmax fixed as in every framework), mean pooling is a
//! convolution of each channel with the constant kernel `1 / prod(window)`.

use std::sync::Arc;

use flux_tensor::{PoolSpec, TensorError};

use crate::op::Op;
use crate::var::Var;
use crate::{forward, tape};

impl Var {
    /// Max pooling over the spatial dims of `[spatial..., C, N]` (1 to 3 spatial dims). Panics
    /// on bad shapes (see [`Var::try_maxpool`]).
    ///
    /// ```
    /// use flux_autograd::{gradient, Var};
    /// use flux_tensor::{PoolSpec, Tensor};
    /// let x = Var::from(Tensor::from_vec(vec![3.0, 1.0, 2.0, 5.0], &[4, 1, 1]));
    /// assert_eq!(x.maxpool(&PoolSpec::new(&[2])).to_vec(), vec![3.0, 5.0]);
    /// let g = gradient(|x| x.maxpool(&PoolSpec::new(&[2])).sum(), &x);
    /// assert_eq!(g.to_vec(), vec![1.0, 0.0, 0.0, 1.0]);
    /// ```
    pub fn maxpool(&self, spec: &PoolSpec) -> Var {
        self.try_maxpool(spec).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Fallible [`Var::maxpool`]: the error names the op, the input shape and the window.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// use flux_tensor::{PoolSpec, Tensor};
    /// assert!(Var::from(Tensor::zeros(&[3, 1, 1])).try_maxpool(&PoolSpec::new(&[4])).is_err());
    /// ```
    pub fn try_maxpool(&self, spec: &PoolSpec) -> Result<Var, TensorError> {
        if !tape::recording() || (!self.is_tracked() && !forward::active()) {
            // nothing records: the values alone, no indices
            return Ok(Var::constant(self.data().try_maxpool(spec)?));
        }
        // the kernel gives the pooled values with the argmax, so the gather is recorded (its
        // adjoint is index_add) without being computed again
        let (y, idx) = self.data().try_maxpool_with_indices(spec)?;
        let shape = y.shape().to_vec();
        let flat = y.reshape(&[y.numel()]);
        Ok(Var::from_op(flat, Op::IndexSelect(self.reshape(&[self.numel()]), 0, Arc::from(idx))).reshape(&shape))
    }

    /// Mean pooling over the spatial dims of `[spatial..., C, N]`; padding counts as zeros in
    /// the mean (NNlib's `meanpool`). Panics on bad shapes (see [`Var::try_meanpool`]).
    ///
    /// ```
    /// use flux_autograd::{gradient, Var};
    /// use flux_tensor::{PoolSpec, Tensor};
    /// let x = Var::from(Tensor::from_vec(vec![1.0, 3.0, 5.0, 7.0], &[4, 1, 1]));
    /// assert_eq!(x.meanpool(&PoolSpec::new(&[2])).to_vec(), vec![2.0, 6.0]);
    /// assert_eq!(gradient(|x| x.meanpool(&PoolSpec::new(&[2])).sum(), &x).to_vec(), vec![0.5; 4]);
    /// ```
    pub fn meanpool(&self, spec: &PoolSpec) -> Var {
        self.try_meanpool(spec).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Fallible [`Var::meanpool`].
    ///
    /// ```
    /// use flux_autograd::Var;
    /// use flux_tensor::{PoolSpec, Tensor};
    /// assert!(Var::from(Tensor::zeros(&[3, 1])).try_meanpool(&PoolSpec::new(&[2])).is_err());
    /// ```
    pub fn try_meanpool(&self, spec: &PoolSpec) -> Result<Var, TensorError> {
        let out = spec.output_shape(&self.shape())?;
        let (w, xs) = spec.mean_kernel(&self.shape(), self.dtype())?;
        Ok(self.reshape(&xs).try_conv(&Var::constant(w), &spec.conv_spec())?.reshape(&out))
    }
}

//! Convolutions: three bilinear primitives, the convolution `conv(x, w)`, its input adjoint
//! `conv_data(dy, w)` (a transposed convolution) and its weight adjoint `conv_filter(x, dy)`.
//! All three are slices of one trilinear form `⟨conv(x, w), dy⟩`, so the backward rule of each
//! is the other two with the arguments moved around, and second order works:
//!
//! - `y = conv(x, w)`: `x̄ = conv_data(ȳ, w)`, `w̄ = conv_filter(x, ȳ)`;
//! - `x = conv_data(dy, w)`: `dȳ = conv(x̄, w)`, `w̄ = conv_filter(x̄, dy)`;
//! - `w = conv_filter(x, dy)`: `x̄ = conv_data(dy, w̄)`, `dȳ = conv(x, w̄)`.
//!
//! Each is linear in each argument, so the tangent is the sum of the op applied to one tangent
//! and the other primal.

use std::sync::Arc;

use flux_tensor::{ConvSpec, TensorError};

use crate::op::Op;
use crate::value::Value;
use crate::var::Var;

/// Which of the three primitives a node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConvKind {
    /// `conv(x, w)`: inputs `x`, `w`.
    Forward,
    /// `conv_data(dy, w)`: inputs `dy`, `w`; the shape is the input's.
    Data,
    /// `conv_filter(x, dy)`: inputs `x`, `dy`; the shape is the weight's.
    Filter,
}

impl ConvKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            ConvKind::Forward => "conv",
            ConvKind::Data => "conv_data",
            ConvKind::Filter => "conv_filter",
        }
    }
}

/// The op applied to Vars (recorded when an input is tracked).
fn apply(kind: ConvKind, a: &Var, b: &Var, shape: &[usize], spec: &Arc<ConvSpec>) -> Var {
    match kind {
        ConvKind::Forward => a.conv_with(b, spec.clone()),
        ConvKind::Data => a.conv_data_with(b, shape, spec.clone()),
        ConvKind::Filter => a.conv_filter_with(b, shape, spec.clone()),
    }
}

/// Gradients of the two inputs `(a, b)` of a conv node whose output is `out`.
pub(crate) fn backward<V: Value>(kind: ConvKind, a: &Var, b: &Var, spec: &Arc<ConvSpec>, g: &V, needs: &[bool]) -> [Option<V>; 2] {
    let g = g.to_var();
    let (sa, sb) = (a.shape().to_vec(), b.shape().to_vec());
    let (ga, gb) = match kind {
        // y = conv(x, w)
        ConvKind::Forward => (
            needs[0].then(|| apply(ConvKind::Data, &g, &V::of(b).to_var(), &sa, spec)),
            needs[1].then(|| apply(ConvKind::Filter, &V::of(a).to_var(), &g, &sb, spec)),
        ),
        // x = conv_data(dy, w)
        ConvKind::Data => (
            needs[0].then(|| apply(ConvKind::Forward, &g, &V::of(b).to_var(), &[], spec)),
            needs[1].then(|| apply(ConvKind::Filter, &g, &V::of(a).to_var(), &sb, spec)),
        ),
        // w = conv_filter(x, dy)
        ConvKind::Filter => (
            needs[0].then(|| apply(ConvKind::Data, &V::of(b).to_var(), &g, &sa, spec)),
            needs[1].then(|| apply(ConvKind::Forward, &V::of(a).to_var(), &g, &[], spec)),
        ),
    };
    [ga.map(V::from_var), gb.map(V::from_var)]
}

/// Forward mode: `op(ȧ, b) + op(a, ḃ)`.
pub(crate) fn tangent(kind: ConvKind, a: &Var, b: &Var, out: &Var, spec: &Arc<ConvSpec>, da: Option<&Var>, db: Option<&Var>) -> Option<Var> {
    let shape = out.shape().to_vec();
    let l = da.map(|da| apply(kind, da, b, &shape, spec));
    let r = db.map(|db| apply(kind, a, db, &shape, spec));
    match (l, r) {
        (Some(l), Some(r)) => Some(l + r),
        (l, r) => l.or(r),
    }
}

impl Var {
    fn conv_with(&self, w: &Var, spec: Arc<ConvSpec>) -> Var {
        self.try_conv_with(w, spec).unwrap_or_else(|e| panic!("{e}"))
    }
    fn try_conv_with(&self, w: &Var, spec: Arc<ConvSpec>) -> Result<Var, TensorError> {
        let (value, x, w) = crate::ops::arith::promoted(self, w, |x, w| x.try_conv(w, &spec));
        Ok(Var::from_op(value?, Op::Conv(ConvKind::Forward, x, w, spec)))
    }
    fn conv_data_with(&self, w: &Var, x_shape: &[usize], spec: Arc<ConvSpec>) -> Var {
        self.try_conv_data_with(w, x_shape, spec).unwrap_or_else(|e| panic!("{e}"))
    }
    fn try_conv_data_with(&self, w: &Var, x_shape: &[usize], spec: Arc<ConvSpec>) -> Result<Var, TensorError> {
        let (value, dy, w) = crate::ops::arith::promoted(self, w, |dy, w| dy.try_conv_data(w, x_shape, &spec));
        Ok(Var::from_op(value?, Op::Conv(ConvKind::Data, dy, w, spec)))
    }
    fn conv_filter_with(&self, dy: &Var, w_shape: &[usize], spec: Arc<ConvSpec>) -> Var {
        self.try_conv_filter_with(dy, w_shape, spec).unwrap_or_else(|e| panic!("{e}"))
    }
    fn try_conv_filter_with(&self, dy: &Var, w_shape: &[usize], spec: Arc<ConvSpec>) -> Result<Var, TensorError> {
        let (value, x, dy) = crate::ops::arith::promoted(self, dy, |x, dy| x.try_conv_filter(dy, w_shape, &spec));
        Ok(Var::from_op(value?, Op::Conv(ConvKind::Filter, x, dy, spec)))
    }

    /// N-d convolution of `self` (`[spatial..., Cin, N]`, 1 to 3 spatial dims) with `w`
    /// (`[k..., Cin / groups, Cout]`), output `[out..., Cout, N]`; cross-correlation unless the
    /// spec flips the kernel (Flux's `Conv` does). Differentiable to any order in both
    /// arguments. Panics on bad shapes (see [`Var::try_conv`]).
    ///
    /// ```
    /// use flux_autograd::{gradient, Var};
    /// use flux_tensor::{ConvSpec, Tensor};
    /// let x = Var::from(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[4, 1, 1]));
    /// let w = Var::from(Tensor::from_vec(vec![1.0, 10.0], &[2, 1, 1]));
    /// assert_eq!(x.conv(&w, &ConvSpec::new()).to_vec(), vec![21.0, 32.0, 43.0]);
    /// let g = gradient(|w| x.conv(w, &ConvSpec::new()).sum(), &w);
    /// assert_eq!(g.to_vec(), vec![6.0, 9.0]);
    /// ```
    pub fn conv(&self, w: &Var, spec: &ConvSpec) -> Var {
        self.try_conv(w, spec).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Fallible [`Var::conv`]: the error names the op and both shapes.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// use flux_tensor::{ConvSpec, Tensor};
    /// let e = Var::from(Tensor::zeros(&[2, 1, 1])).try_conv(&Var::from(Tensor::zeros(&[3, 1, 1])), &ConvSpec::new()).unwrap_err();
    /// assert!(e.to_string().contains("[2, 1, 1] and [3, 1, 1]"));
    /// ```
    pub fn try_conv(&self, w: &Var, spec: &ConvSpec) -> Result<Var, TensorError> {
        self.try_conv_with(w, Arc::new(spec.clone()))
    }

    /// The input gradient of [`Var::conv`] as a differentiable op: `self` is an output gradient
    /// `[out..., Cout, N]`, the result has `x_shape`. Panics on bad shapes (see
    /// [`Var::try_conv_data`]).
    ///
    /// ```
    /// use flux_autograd::Var;
    /// use flux_tensor::{ConvSpec, Tensor};
    /// let dy = Var::from(Tensor::ones(&[3, 1, 1]));
    /// let w = Var::from(Tensor::from_vec(vec![1.0, 10.0], &[2, 1, 1]));
    /// assert_eq!(dy.conv_data(&w, &[4, 1, 1], &ConvSpec::new()).to_vec(), vec![1.0, 11.0, 11.0, 10.0]);
    /// ```
    pub fn conv_data(&self, w: &Var, x_shape: &[usize], spec: &ConvSpec) -> Var {
        self.try_conv_data(w, x_shape, spec).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Fallible [`Var::conv_data`].
    ///
    /// ```
    /// use flux_autograd::Var;
    /// use flux_tensor::{ConvSpec, Tensor};
    /// let dy = Var::from(Tensor::ones(&[2, 1, 1]));
    /// assert!(dy.try_conv_data(&Var::from(Tensor::ones(&[2, 1, 1])), &[4, 1, 1], &ConvSpec::new()).is_err());
    /// ```
    pub fn try_conv_data(&self, w: &Var, x_shape: &[usize], spec: &ConvSpec) -> Result<Var, TensorError> {
        self.try_conv_data_with(w, x_shape, Arc::new(spec.clone()))
    }

    /// The weight gradient of [`Var::conv`] as a differentiable op: `self` is the input, `dy`
    /// the output gradient; the result has `w_shape`. Panics on bad shapes (see
    /// [`Var::try_conv_filter`]).
    ///
    /// ```
    /// use flux_autograd::Var;
    /// use flux_tensor::{ConvSpec, Tensor};
    /// let x = Var::from(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[4, 1, 1]));
    /// let dy = Var::from(Tensor::ones(&[3, 1, 1]));
    /// assert_eq!(x.conv_filter(&dy, &[2, 1, 1], &ConvSpec::new()).to_vec(), vec![6.0, 9.0]);
    /// ```
    pub fn conv_filter(&self, dy: &Var, w_shape: &[usize], spec: &ConvSpec) -> Var {
        self.try_conv_filter(dy, w_shape, spec).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Fallible [`Var::conv_filter`].
    ///
    /// ```
    /// use flux_autograd::Var;
    /// use flux_tensor::{ConvSpec, Tensor};
    /// let x = Var::from(Tensor::ones(&[4, 1, 1]));
    /// assert!(x.try_conv_filter(&Var::from(Tensor::ones(&[2, 1, 1])), &[2, 1, 1], &ConvSpec::new()).is_err());
    /// ```
    pub fn try_conv_filter(&self, dy: &Var, w_shape: &[usize], spec: &ConvSpec) -> Result<Var, TensorError> {
        self.try_conv_filter_with(dy, w_shape, Arc::new(spec.clone()))
    }

    /// Transposed convolution (Flux's `ConvTranspose`): `self` is `[spatial..., Cin, N]`, `w`
    /// is `[k..., Cout / groups, Cin]`; the output `[out..., Cout, N]` has
    /// `out = (in - 1)·stride - pads + dil·(k - 1) + 1`. It is [`Var::conv_data`] with that
    /// shape. Panics on bad shapes (see [`Var::try_conv_transpose`]).
    ///
    /// ```
    /// use flux_autograd::Var;
    /// use flux_tensor::{ConvSpec, Tensor};
    /// let x = Var::from(Tensor::ones(&[3, 3, 2, 1]));
    /// let w = Var::from(Tensor::ones(&[2, 2, 4, 2]));
    /// assert_eq!(x.conv_transpose(&w, &ConvSpec::new().stride(&[2])).shape(), &[6, 6, 4, 1]);
    /// ```
    pub fn conv_transpose(&self, w: &Var, spec: &ConvSpec) -> Var {
        self.try_conv_transpose(w, spec).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Fallible [`Var::conv_transpose`]: the error names the op and both shapes.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// use flux_tensor::{ConvSpec, Tensor};
    /// let x = Var::from(Tensor::ones(&[3, 3, 2, 1]));
    /// assert!(x.try_conv_transpose(&Var::from(Tensor::ones(&[2, 2, 4, 3])), &ConvSpec::new()).is_err());
    /// ```
    pub fn try_conv_transpose(&self, w: &Var, spec: &ConvSpec) -> Result<Var, TensorError> {
        let out = spec.transpose_output_shape(&self.shape(), &w.shape())?;
        self.try_conv_data(w, &out, spec).map_err(|e| match e {
            TensorError::ShapeMismatch { reason, .. } => {
                TensorError::ShapeMismatch { op: "conv_transpose", lhs: self.shape().to_vec(), rhs: w.shape().to_vec(), reason }
            }
            e => e,
        })
    }
}

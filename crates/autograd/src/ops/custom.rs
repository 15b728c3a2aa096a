//! User-defined operations with their own backward rule (Tracker's `@grad`).

use std::sync::Arc;

use flux_tensor::{Tensor, TensorError};

use crate::op::Op;
use crate::value::Value;
use crate::var::Var;

/// A new differentiable operation. `forward` computes on raw tensors; `backward` gives each
/// input's gradient from the output gradient `g`, written with `Var` operations so that it
/// can itself be differentiated (a gradient of a gradient through your op works when the rule
/// is built from differentiable ops). Check it with [`crate::gradcheck`].
///
/// ```
/// use std::sync::Arc;
/// use flux_autograd::{gradient, CustomOp, Var};
/// use flux_tensor::{Tensor, TensorError};
///
/// /// `x^3` with a hand-written rule.
/// struct Cube;
/// impl CustomOp for Cube {
///     fn name(&self) -> &str { "cube" }
///     fn forward(&self, xs: &[Tensor]) -> Result<Tensor, TensorError> { Ok(xs[0].powi(3)) }
///     fn backward(&self, xs: &[Var], _y: &Var, g: &Var) -> Vec<Option<Var>> {
///         vec![Some(g * &(3.0 * xs[0].powi(2)))]
///     }
/// }
/// let cube = |x: &Var| Var::custom(Arc::new(Cube), &[x.clone()]).unwrap();
/// assert_eq!(gradient(cube, &Var::scalar(2.0)).item(), 12.0);
/// assert_eq!(gradient(|x: &Var| gradient(cube, x), &Var::scalar(2.0)).item(), 12.0);
/// ```
pub trait CustomOp: Send + Sync {
    /// The op's name, for errors and reports.
    fn name(&self) -> &str;
    /// The output from the inputs' values.
    fn forward(&self, inputs: &[Tensor]) -> Result<Tensor, TensorError>;
    /// One gradient per input (`None` for zero), given the inputs, the output and `g = dL/dy`.
    fn backward(&self, inputs: &[Var], output: &Var, g: &Var) -> Vec<Option<Var>>;
}

pub(crate) fn backward<V: Value>(op: &dyn CustomOp, xs: &[Var], out: &Var, g: &V, needs: &[bool]) -> Vec<Option<V>> {
    let inputs: Vec<Var> = xs.iter().map(|x| V::of(x).to_var()).collect();
    let grads = op.backward(&inputs, &V::of(out).to_var(), &g.to_var());
    assert_eq!(grads.len(), xs.len(), "custom op {}: backward gave {} gradients for {} inputs", op.name(), grads.len(), xs.len());
    grads
        .into_iter()
        .zip(xs)
        .zip(needs)
        .map(|((gi, x), &need)| {
            let gi = gi.filter(|_| need)?;
            assert!(gi.shape() == x.shape(), "custom op {}: gradient shape {:?} differs from input shape {:?}", op.name(), gi.shape(), x.shape());
            Some(V::from_var(gi))
        })
        .collect()
}

impl Var {
    /// Applies a [`CustomOp`] to `inputs`, recording it.
    ///
    /// ```
    /// // see [`CustomOp`] for a full example
    /// ```
    pub fn custom(op: Arc<dyn CustomOp>, inputs: &[Var]) -> Result<Var, TensorError> {
        let data: Vec<Tensor> = inputs.iter().map(|x| x.data()).collect();
        let value = op.forward(&data)?;
        Ok(Var::from_op(value, Op::Custom(op, inputs.to_vec())))
    }
}

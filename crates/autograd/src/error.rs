//! [`AutogradError`]: what went wrong in a gradient call or an update.

use flux_tensor::TensorError;

/// Errors from gradient calls, `Grads` lookups and updates.
///
/// ```
/// use flux_autograd::{gradient_params, param, params, Var};
/// let w = param(1.0);
/// let other = param(2.0);
/// let gs = gradient_params(|| &w * 3.0, &params![&w]);
/// assert!(gs.try_get(&other).unwrap_err().to_string().contains("not one of the Params"));
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AutogradError {
    /// A `Grads` was indexed by a value that was not in the `Params` differentiated.
    #[error("Grads: no gradient for a value of shape {shape:?}: it is not one of the Params passed to gradient_params")]
    NotInParams {
        /// Shape of the value asked for.
        shape: Vec<usize>,
    },
    /// The differentiated function returned more than one element.
    #[error("{op}: the function must return one element (a scalar loss), got shape {shape:?}")]
    NotScalar {
        /// The gradient call.
        op: &'static str,
        /// The shape returned.
        shape: Vec<usize>,
    },
    /// `update` with a delta whose shape differs from the parameter's.
    #[error("update: delta of shape {delta:?} for a parameter of shape {param:?}")]
    UpdateShape {
        /// The parameter's shape.
        param: Vec<usize>,
        /// The delta's shape.
        delta: Vec<usize>,
    },
    /// `update` on a value computed by an op (only leaves change in place).
    #[error("update: only a param (a leaf) can be updated in place, this value was computed by `{op}`")]
    NotALeaf {
        /// The op that computed it.
        op: &'static str,
    },
    /// A tensor operation failed.
    #[error(transparent)]
    Tensor(#[from] TensorError),
}

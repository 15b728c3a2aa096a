//! User-defined operations with their own backward rule (Tracker's `@grad`).

use std::sync::Arc;

use flux_tensor::{Tensor, TensorError};

use crate::backward;
use crate::op::Op;
use crate::tape;
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
    /// Forward mode: the output's tangent `Σ_i J_i·ṫ_i` given the inputs' tangents (`None` for
    /// an input without one), in `Var` operations so that it is differentiable again; `None`
    /// for a zero tangent.
    ///
    /// The provided rule needs nothing more than [`CustomOp::backward`]: the vector-Jacobian
    /// product `u ↦ Σ_i ⟨backward(u)_i, ṫ_i⟩` is linear in `u`, and its gradient with respect
    /// to `u` is the Jacobian-vector product (the transpose of the transpose). It costs one
    /// recorded backward rule and one reverse pass through it; write a direct rule when that
    /// matters. Its second derivatives are right when `backward` is built from differentiable
    /// ops.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use flux_autograd::{jvp, CustomOp, Var};
    /// use flux_tensor::{Tensor, TensorError};
    /// struct Cube;
    /// impl CustomOp for Cube {
    ///     fn name(&self) -> &str { "cube" }
    ///     fn forward(&self, xs: &[Tensor]) -> Result<Tensor, TensorError> { Ok(xs[0].powi(3)) }
    ///     fn backward(&self, xs: &[Var], _y: &Var, g: &Var) -> Vec<Option<Var>> {
    ///         vec![Some(g * &(3.0 * xs[0].powi(2)))]
    ///     }
    /// }
    /// let cube = |x: &Var| Var::custom(Arc::new(Cube), &[x.clone()]).unwrap();
    /// // forward mode through the provided rule: 3·2² = 12
    /// assert_eq!(jvp(cube, &Var::scalar(2.0), &Var::scalar(1.0)).1.item(), 12.0);
    /// ```
    fn jvp(&self, inputs: &[Var], output: &Var, tangents: &[Option<Var>]) -> Option<Var> {
        transposed_vjp(self, inputs, output, tangents)
    }
}

/// The provided [`CustomOp::jvp`]: `J·ṫ = ∇_u Σ_i ⟨backward(u)_i, ṫ_i⟩`.
fn transposed_vjp<O: CustomOp + ?Sized>(op: &O, inputs: &[Var], output: &Var, tangents: &[Option<Var>]) -> Option<Var> {
    let _rec = tape::Resume::new();
    // a tracked stand-in for the output gradient; the result does not depend on its value
    let u = Var::new_leaf(output.data().zeros_like());
    let grads = op.backward(inputs, output, &u);
    for ((g, t), x) in grads.iter().zip(tangents).zip(inputs) {
        if let (Some(g), Some(_)) = (g, t) {
            // a vector-Jacobian product is linear in the output gradient: one that does not
            // depend on it is identically zero, or the rule is not written in Var operations
            if !g.is_tracked() && g.data().to_f64().abs().sum().item() != 0.0 {
                panic!(
                    "custom op {}: forward mode needs CustomOp::jvp, or a backward rule written in Var operations of the output gradient (it gave a gradient for the input of shape {:?} that does not depend on it)",
                    op.name(),
                    x.shape()
                );
            }
        }
    }
    let s: Vec<Var> = grads.iter().zip(tangents).filter_map(|(g, t)| Some((g.as_ref()? * t.as_ref()?).sum())).collect();
    if s.is_empty() {
        return None;
    }
    let s: Var = s.into_iter().sum();
    backward::backward(&s, std::slice::from_ref(&u), true, None).pop().flatten()
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

/// Forward mode: the op's own [`CustomOp::jvp`], checked for shape.
pub(crate) fn tangent(op: &dyn CustomOp, xs: &[Var], out: &Var, ts: &[Option<Var>]) -> Option<Var> {
    let t = op.jvp(xs, out, ts)?;
    assert!(t.numel() == out.numel(), "custom op {}: tangent shape {:?} differs from output shape {:?}", op.name(), t.shape(), out.shape());
    Some(if t.shape() == out.shape() { t } else { t.reshape(&out.shape()) })
}

impl Var {
    /// Applies a [`CustomOp`] to `inputs`, recording it; the error is the op's own from its
    /// `forward`. (See [`CustomOp`] for an op with a hand-written rule.)
    ///
    /// ```
    /// use std::sync::Arc;
    /// use flux_autograd::{gradient, CustomOp, Var};
    /// use flux_tensor::{Tensor, TensorError};
    /// struct Double;
    /// impl CustomOp for Double {
    ///     fn name(&self) -> &str { "double" }
    ///     fn forward(&self, xs: &[Tensor]) -> Result<Tensor, TensorError> { Ok(&xs[0] * 2.0) }
    ///     fn backward(&self, _xs: &[Var], _y: &Var, g: &Var) -> Vec<Option<Var>> { vec![Some(g * 2.0)] }
    /// }
    /// let y = Var::custom(Arc::new(Double), &[Var::scalar(3.0)]).unwrap();
    /// assert_eq!(y.item(), 6.0);
    /// let g = gradient(|x: &Var| Var::custom(Arc::new(Double), &[x.clone()]).unwrap(), &Var::scalar(3.0));
    /// assert_eq!(g.item(), 2.0);
    /// ```
    pub fn custom(op: Arc<dyn CustomOp>, inputs: &[Var]) -> Result<Var, TensorError> {
        let data: Vec<Tensor> = inputs.iter().map(|x| x.data()).collect();
        let value = op.forward(&data)?;
        Ok(Var::from_op(value, Op::Custom(op, inputs.into())))
    }
}

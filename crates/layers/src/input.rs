//! Flux's input conversion: a layer computes in its parameters' element type.

use flux_autograd::Var;

/// `x` in the element type of `like` (a layer's weight), converted only when they differ. The
/// conversion is recorded, so the gradient of a f64 input to a f32 layer comes back f64.
/// Layers call it on their input (Flux converts the input to the layer's element type); raw
/// `Var` and `Tensor` operations keep Julia's promotion to the wider type.
///
/// ```
/// use flux_autograd::{gradient, param, Var};
/// use flux_layers::cast_like;
/// use flux_tensor::{DType, Tensor};
/// let w = param(Tensor::ones(&[2]).to_f32());
/// let x = Var::from(Tensor::ones(&[2])); // f64
/// assert_eq!(cast_like(&x, &w).dtype(), DType::F32);
/// let g = gradient(|x: &Var| (cast_like(x, &w) * &w).sum(), &x);
/// assert_eq!(g.dtype(), DType::F64);
/// ```
pub fn cast_like(x: &Var, like: &Var) -> Var {
    let dtype = like.dtype();
    if x.dtype() == dtype {
        x.clone()
    } else {
        x.to_dtype(dtype)
    }
}

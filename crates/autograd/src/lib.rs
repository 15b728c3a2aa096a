//! # flux-autograd
//!
//! Tracked values and reverse-mode gradients for flux-rs, after Flux's Tracker.
//!
//! - [`Var`]: a value that records the operations applied to it. [`param`] makes a trainable
//!   leaf; `Var::from(tensor)` a constant.
//! - [`gradient`], [`gradients`], [`gradient_params`]: derivatives of a scalar function with
//!   respect to one argument, several arguments, or a set of [`Params`] (giving [`Grads`]).
//!   Called inside another gradient call they record their own backward pass, so gradients
//!   nest to any depth with no flag.
//! - [`withgradient`], [`withgradient_params`]: the value and the gradient in one pass;
//!   [`pullback`]: the value and a reusable vector-Jacobian product; [`jacobian`], [`hessian`],
//!   [`hvp`]; [`checkpoint`]: recompute a segment in the backward pass instead of keeping it.
//! - [`jvp`], [`jvps`]: forward mode (JAX's `jvp`), tangents carried beside the values in one
//!   forward pass. Every op has a tangent rule written in differentiable operations, so forward
//!   and reverse mode nest in any order.
//! - [`update`]: `p = p + Δ` in place.
//! - [`CustomOp`]: a new op with its own backward rule; [`gradcheck`] / [`gradcheck2`] check
//!   any function's first and second derivatives against finite differences.
//!
//! Every backward rule is written once over [`Value`], which is either a raw [`flux_tensor::Tensor`]
//! (the fast path: no graph is built when nothing outer records) or a recorded `Var`.
//!
//! ```
//! use flux_autograd::{gradient_params, param, params, update, Var};
//! use flux_tensor::Tensor;
//! flux_tensor::seed(1);
//! let w = param(Tensor::rand(&[2, 5]));
//! let b = param(Tensor::rand(&[2]));
//! let (x, y) = (Var::from(Tensor::rand(&[5])), Var::from(Tensor::rand(&[2])));
//! let loss = || (&y - (w.matmul(&x) + &b)).powi(2).sum();
//! let before = loss().item();
//! let gs = gradient_params(loss, &params![&w, &b]);
//! update(&w, &(-0.1 * &gs[&w]));
//! assert!(loss().item() < before);
//! ```

// Unsafe code is confined to `shared/` (the node pointer); everywhere else it is denied.
#![deny(unsafe_code)]

mod backward;
mod derivatives;
mod error;
mod forward;
mod gradcheck;
mod gradient;
mod idmap;
mod op;
mod ops;
mod positions;
#[allow(unsafe_code)]
mod shared;
mod tape;
mod value;
mod var;

pub use derivatives::{hessian, hvp, jacobian, pullback, withgradient, withgradient_params};
pub use error::AutogradError;
pub use forward::{in_jvp, jvp, jvp_params, jvps};
pub use gradcheck::{
    gradcheck, gradcheck2, gradcheck2_with, gradcheck_forward, gradcheck_forward_with, gradcheck_mixed, gradcheck_mixed_with, gradcheck_with, GradcheckConfig,
    GradcheckError, GradcheckKind, GradcheckReport,
};
pub use gradient::{gradient, gradient_nested, gradient_params, gradients, try_update, update, AsTensor, Grads, Params};
pub use ops::checkpoint::checkpoint;
pub use ops::custom::CustomOp;
pub use ops::linalg::{dot, kron, try_dot, try_kron};
pub use tape::{in_gradient, is_recording, no_grad};
pub use value::Value;
pub use var::{param, Var};

#[cfg(test)]
mod tests;

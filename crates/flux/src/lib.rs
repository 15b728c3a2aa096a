//! # flux
//!
//! Flux.jl rebuilt in Rust. `use flux::prelude::*;` brings every name a model needs.
//!
//! ```
//! use flux::prelude::*;
//! let f = |x: &Var| 3.0 * x.powi(2) + 2.0 * x + 1.0;
//! let df = |x: &Var| gradient(f, x);
//! assert_eq!(df(&Var::scalar(2.0)).item(), 14.0);
//! assert_eq!(gradient(df, &Var::scalar(2.0)).item(), 6.0);
//! ```

pub use flux_autograd as autograd;
pub use flux_layers as layers;
pub use flux_optim as optim;
pub use flux_recurrent as recurrent;
pub use flux_tensor as tensor;

pub use flux_tensor::seed;

/// Everything the seed tutorial uses, in one import.
pub mod prelude {
    pub use flux_autograd::{
        gradcheck, gradcheck2, gradient, gradient_nested, gradient_params, gradients, in_gradient, no_grad, param, params, try_update, update, AutogradError,
        CustomOp, Grads, Params, Value, Var,
    };
    pub use flux_layers::*;
    pub use flux_optim::*;
    pub use flux_recurrent::*;
    pub use flux_tensor::{seed, BinaryOp, DType, ReduceOp, Shape, Tensor, TensorError, UnaryOp};
}

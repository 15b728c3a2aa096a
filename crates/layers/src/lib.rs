//! # flux-layers
//!
//! Layers for flux-rs, after Flux.jl.
//!
//! - [`Layer`]: `forward`, `forward_seq`, printing, and one traversal ([`Layer::visit`]) that
//!   [`params`], [`reset`], [`truncate`], [`testmode`]/[`trainmode`], [`to_f32`]/[`to_f64`] and
//!   state saving all use. Any `Fn(&Var) -> Var` is a layer.
//! - [`Dense`], [`Chain`] (built with [`chain!`]), [`compose`] (Flux's `∘`), [`activations`].
//! - Activations: [`identity`], [`sigmoid`], [`tanh`], [`relu`], [`leakyrelu`], [`elu`],
//!   [`gelu`], [`swish`], [`softplus`], [`softmax`], [`logsoftmax`].
//! - Initialisers: [`glorot_uniform`], [`glorot_normal`].
//!
//! ```
//! use flux_layers::{chain, params, sigmoid, softmax, identity, Dense, Layer};
//! use flux_autograd::Var;
//! let model = chain![Dense::new(10, 5, sigmoid), Dense::new(5, 2, identity), softmax];
//! let y = model.forward(&Var::from(flux_tensor::Tensor::rand(&[10])));
//! assert_eq!(y.shape(), &[2]);
//! assert_eq!(params(&model).len(), 4);
//! ```

#![allow(mixed_script_confusables)]

pub mod activation;
mod chain;
mod dense;
mod error;
mod init;
mod layer;
mod traverse;

pub use activation::{elu, elu_with, gelu, identity, leakyrelu, leakyrelu_with, logsoftmax, relu, sigmoid, softmax, softplus, swish, tanh, σ};
pub use chain::{activations, compose, Chain, Compose};
pub use dense::{Activation, Dense};
pub use error::LayerError;
pub use init::{glorot_normal, glorot_normal_with, glorot_uniform, glorot_uniform_with};
pub use layer::{fn_name, Layer, Modal, Show, Stateful, Visitor, Walker};
pub use traverse::{named_params, params, reset, testmode, to_dtype, to_f32, to_f64, trainmode, truncate};

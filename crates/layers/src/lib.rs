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
//! - Losses (prediction first): [`mse`], [`crossentropy`], [`logitcrossentropy`],
//!   [`binarycrossentropy`], [`logitbinarycrossentropy`], [`huber_loss`], [`kldivergence`],
//!   [`focal_loss`], [`binary_focal_loss`], [`crossentropy_weighted`] (each with a `try_`
//!   form); [`norm`].
//! - Labels: [`onehot`], [`onehotbatch`], [`onecold`].
//! - Containers: [`SkipConnection`], [`Parallel`], [`Maxout`]; [`Embedding`];
//!   [`MultiHeadAttention`] (with [`causal_mask`]).
//! - [`Dropout`], [`LayerNorm`], [`BatchNorm`], [`GroupNorm`], [`InstanceNorm`], with
//!   [`TrainMode`] (automatic inside a gradient call, or fixed by [`testmode`]/[`trainmode`]).
//! - Saved state: [`save_state`]/[`load_state`] (a JSON file keyed by structural path), and the
//!   in-memory [`state_to_json`]/[`load_state_json`].
//!
//! ```
//! use flux_layers::{chain, params, sigmoid, softmax, identity, Dense, Layer};
//! use flux_autograd::Var;
//! let model = chain![Dense::new(10, 5, sigmoid), Dense::new(5, 2, identity), softmax];
//! let y = model.forward(&Var::from(flux_tensor::Tensor::rand(&[10])));
//! assert_eq!(y.shape(), &[2]);
//! assert_eq!(params(&model).len(), 4);
//! ```

#![allow(mixed_script_confusables, confusable_idents)]
#![forbid(unsafe_code)]

// The derive macros name this crate `::flux_layers`, also from inside it.
extern crate self as flux_layers;

mod activation;
mod attention;
mod batchnorm;
mod chain;
mod conv;
mod deepcopy;
mod dense;
mod derive_support;
mod dropout;
mod embedding;
mod error;
mod groupnorm;
mod init;
mod input;
mod instancenorm;
mod layer;
mod layernorm;
mod loss;
mod maxout;
mod mode;
mod norm;
mod onehot;
mod parallel;
mod pool;
mod skip;
mod state;
mod torch;
mod traverse;
mod weights;

pub use activation::ALL as ACTIVATIONS;
pub use activation::{elu, elu_with, gelu, identity, leakyrelu, leakyrelu_with, logsigmoid, logsoftmax, relu, sigmoid, softmax, softplus, swish, tanh, σ};
pub use attention::{causal_mask, MultiHeadAttention};
pub use batchnorm::BatchNorm;
pub use chain::{activations, compose, Chain, Compose};
pub use conv::{Conv, ConvTranspose, CrossCor};
pub use deepcopy::{deepcopy, DeepCopy};
pub use dense::{Activation, Dense};
pub use dropout::Dropout;
pub use embedding::Embedding;
pub use error::LayerError;
pub use flux_derive::{Layer, Traverse};
pub use groupnorm::GroupNorm;
pub use init::{glorot_normal, glorot_normal_with, glorot_uniform, glorot_uniform_with};
pub use input::cast_like;
pub use instancenorm::InstanceNorm;
pub use layer::{fn_name, Layer, Modal, Show, Stateful, Traverse, Visitor, Walker};
pub use layernorm::LayerNorm;
pub use loss::ALL as LOSSES;
pub use loss::{
    binary_focal_loss, binarycrossentropy, crossentropy, crossentropy_weighted, focal_loss, huber_loss, kldivergence, logitbinarycrossentropy,
    logitcrossentropy, mse, try_binary_focal_loss, try_binarycrossentropy, try_crossentropy, try_crossentropy_weighted, try_focal_loss, try_huber_loss,
    try_kldivergence, try_logitbinarycrossentropy, try_logitcrossentropy, try_mse,
};
pub use maxout::Maxout;
pub use mode::TrainMode;
pub use norm::norm;
pub use onehot::{onecold, onehot, onehotbatch, try_onecold, try_onehot, try_onehotbatch};
pub use parallel::Parallel;
pub use pool::{flatten, AdaptiveMaxPool, AdaptiveMeanPool, GlobalMaxPool, GlobalMeanPool, MaxPool, MeanPool, Upsample, UpsampleMode};
pub use skip::SkipConnection;
pub use state::{load_state, load_state_json, save_state, state_to_json, tensor_from_json, tensor_to_json, try_state_to_json};
pub use torch::{load_torch_state, save_torch_state, TorchModule, TorchSource, TorchValue};
pub use traverse::{named_params, params, reset, testmode, to_dtype, to_f32, to_f64, trainmode, truncate};
pub use weights::{load_safetensors, save_safetensors};

/// What `#[derive(Layer)]` and `#[derive(Traverse)]` expand to refers to; not part of the API.
#[doc(hidden)]
pub mod __derive {
    pub use crate::derive_support::{as_buffer, fmt_var, FmtChild};
    pub use crate::{DeepCopy, Layer, LayerError, Traverse, Walker};
    pub use flux_autograd::Var;
    pub use std::fmt;
}

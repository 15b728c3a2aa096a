//! # flux: Flux.jl in Rust
//!
//! Start here. `use flux::prelude::*;` brings every name a model needs; the rest of this page
//! says where each piece lives.
//!
//! ```
//! use flux::prelude::*;
//!
//! // Derivatives that nest (the seed notebook's first cells).
//! let f = |x: &Var| 3.0 * x.powi(2) + 2.0 * x + 1.0;
//! let df = |x: &Var| gradient(f, x);
//! assert_eq!(df(&Var::scalar(2.0)).item(), 14.0);
//! assert_eq!(gradient(df, &Var::scalar(2.0)).item(), 6.0);
//!
//! // A model, a loss, one optimiser step.
//! flux::seed(1);
//! let model = chain![Dense::new(10, 5, sigmoid), Dense::new(5, 2, identity), softmax];
//! let (x, y) = (Var::from(Tensor::rand(&[10, 8])), Var::from(onehotbatch(&[0, 1, 1, 0, 1, 0, 0, 1], 2)));
//! let ps = params(&model);
//! let loss = || crossentropy(&model.forward(&x), &y);
//! let before = loss().item();
//! let mut opt = Adam::new(0.01);
//! for _ in 0..20 {
//!     let gs = gradient_params(loss, &ps);
//!     opt.update(&ps, &gs);
//! }
//! assert!(loss().item() < before);
//! ```
//!
//! ## Where things are
//!
//! | module | crate | what |
//! |---|---|---|
//! | [`tensor`] | flux-tensor | [`Tensor`](tensor::Tensor): column-major f32/f64 arrays, Julia broadcasting, GEMM, reductions, shape ops |
//! | [`autograd`] | flux-autograd | [`Var`](autograd::Var), [`gradient`](autograd::gradient), [`gradient_params`](autograd::gradient_params), `Params`/`Grads`, `update`, custom ops, `gradcheck`; forward mode ([`jvp`](autograd::jvp)), `withgradient`, `pullback`, `jacobian`, `hessian`, `hvp`, `checkpoint` |
//! | [`layers`] | flux-layers | the [`Layer`](layers::Layer) trait, `Dense`, `Chain`/`chain!`, activations, losses, normalisation, `save_state`/`load_state` |
//! | [`recurrent`] | flux-recurrent | `RNNCell`/`LSTMCell`/`GRUCell`, `Recur`, `RNN`/`LSTM`/`GRU`, `reset`, `truncate` |
//! | [`optim`] | flux-optim | `Adam` and the other rules, `OptimiserChain`, `train`, `DataLoader`, `History`, `plot_history`, training callbacks (`EarlyStopping`, `checkpoint_every`) |
//! | `distributed` (feature `distributed`) | flux-distributed | data-parallel training over MPI: `init`, `Comm`, `broadcast_params`, `allreduce_grads`, `DistributedOptimiser` |
//!
//! Each crate is usable on its own; this one re-exports them and adds the [`prelude`] and
//! [`seed`]. The repository's `docs/guide.md` walks through the library in the order of the
//! seed notebook, and `cargo run --release --example tutorial` runs that notebook cell by cell.

#![forbid(unsafe_code)]

pub use flux_autograd as autograd;
/// Data-parallel training over MPI (feature `distributed`, which turns on flux-distributed's
/// `mpi` backend): see `docs/distributed.md`.
#[cfg(feature = "distributed")]
pub use flux_distributed as distributed;
pub use flux_layers as layers;
pub use flux_optim as optim;
pub use flux_recurrent as recurrent;
pub use flux_tensor as tensor;

pub use flux_tensor::{num_threads, seed, set_num_threads};

/// The layer traits and their derives (`#[derive(flux::Layer)]`), as serde exports
/// `Serialize`: one name for the trait and the derive.
pub use flux_layers::{Layer, Traverse};

/// Everything the seed tutorial uses, in one import: the tensor and autograd names, and every
/// public name of the layers, recurrent and optim crates.
///
/// ```
/// use flux::prelude::*;
/// let m = RNN::new(10, 5);
/// assert_eq!(m.to_string(), "Recur(RNNCell(10 => 5, tanh))");
/// ```
pub mod prelude {
    pub use flux_autograd::{
        checkpoint, dot, gradcheck, gradcheck2, gradient, gradient_nested, gradient_params, gradients, hessian, hvp, in_gradient, in_jvp, jacobian, jvp,
        jvp_params, jvps, kron, no_grad, param, params, pullback, try_dot, try_kron, try_update, update, withgradient, withgradient_params, AutogradError,
        CustomOp, Grads, Params, Value, Var,
    };
    pub use flux_layers::*;
    pub use flux_optim::*;
    pub use flux_recurrent::*;
    pub use flux_tensor::{seed, BinaryOp, ConvSpec, DType, PoolSpec, ReduceOp, Shape, Tensor, TensorError, UnaryOp};
}

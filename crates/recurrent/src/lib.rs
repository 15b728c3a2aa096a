//! # flux-recurrent
//!
//! Recurrent layers for flux-rs, after Flux.jl's `recurrent.jl`.
//!
//! - Cells, pure step functions `(state, x) -> (state', y)` ([`RecurrentCell`]): [`RNNCell`],
//!   [`LSTMCell`] (state `(h, c)`), [`GRUCell`], and any closure
//!   `Fn(&Var, &Var) -> (Var, Var) + Send + Sync` such as the seed's hand-written `rnn`.
//! - [`Recur`]: a cell made stateful, a [`Layer`](flux_layers::Layer): `forward` runs one step, `forward_seq` a
//!   whole sequence (fused for the LSTM). The state follows the batch size.
//! - [`RNN`], [`LSTM`], [`GRU`]: `RNN::new(in, out)` builds `Recur(RNNCell(in => out, tanh))`.
//! - [`reset`] and [`truncate`] (re-exported from `flux-layers`): state back to `init`, or cut
//!   the state's gradient history (truncated backprop through time).
//!
//! ```
//! use flux_autograd::{gradient_params, Var};
//! use flux_layers::{chain, identity, params, Dense, Layer};
//! use flux_recurrent::{reset, truncate, LSTM};
//! use flux_tensor::Tensor;
//!
//! let m = chain![LSTM::new(10, 15), Dense::new(15, 5, identity)];
//! assert_eq!(m.to_string(), "Chain(Recur(LSTMCell(10 => 15)), Dense(15 => 5))");
//! let seq: Vec<Var> = (0..10).map(|_| Var::from(Tensor::rand(&[10]))).collect();
//! let ys = m.forward_seq(&seq);              // one output per step
//! assert_eq!(ys.len(), 10);
//! let gs = gradient_params(|| ys.iter().map(|y| y.sum()).sum(), &params(&m));
//! assert_eq!(gs.len(), 5);
//! truncate(&m);                              // keep the state, drop its history
//! reset(&m);                                 // state back to zeros
//! ```

#![allow(clippy::upper_case_acronyms)]
// Unsafe code lives in `fused/` only (the LSTM kernels, the micro-kernel, the spin barrier and
// the shared buffers); everything else is safe.
#![deny(unsafe_code)]

mod cell;
mod cells;
#[allow(unsafe_code)]
mod fused;
mod per_thread;
mod recur;

pub use cell::{RecurrentCell, RecurrentState};
pub use cells::{GRUCell, LSTMCell, RNNCell};
pub use flux_layers::{reset, truncate};
pub use recur::{Recur, GRU, LSTM, RNN};

#[cfg(test)]
mod tests;

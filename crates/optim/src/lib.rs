//! # flux-optim
//!
//! Optimisers for flux-rs, after Flux.jl's `Flux.Optimise` (the Tracker era, 0.9/0.10): the
//! [`Optimiser`] trait (Flux's `apply!` + `update!`), the rules with Flux's defaults and update
//! formulas, composition ([`OptimiserChain`], Flux's `Optimiser(...)`), schedules
//! ([`ExpDecay`], [`InvDecay`], and [`Optimiser::set_lr`] to change the learning rate by hand),
//! the training loop ([`train`], [`train_with`], Flux's `train!`), [`throttle`], and
//! [`DataLoader`]; and for watching training: every step's loss ([`TrainSummary::losses`]),
//! [`History`] (named metrics, CSV), `plot_history` / `plot_losses` (SVG or PNG, feature `plot`,
//! on by default), a progress bar ([`set_progress`]) and ready-made callbacks
//! ([`EarlyStopping`], [`checkpoint_every`], [`every`], [`log_every`]).
//!
//! Unlike Flux, optimiser state can be saved and loaded with the model
//! ([`Optimiser::save_state`], [`Optimiser::load_state`]): it is keyed by the parameters'
//! structural paths (`0.weight`), not by object identity.
//!
//! | Flux.jl                              | flux-rs                                                   |
//! |--------------------------------------|-----------------------------------------------------------|
//! | `opt = ADAM(0.01)`                   | `let mut opt = Adam::new(0.01);`                          |
//! | `update!(opt, ps, gs)`               | `opt.update(&ps, &gs)`                                    |
//! | `Flux.train!(loss, ps, data, opt)`   | `train(loss, &ps, &data, &mut opt)`                       |
//! | `cb = throttle(f, 10)`               | `train_with(.., throttle_event(f, 10.0))`                 |
//! | `Flux.stop()`                        | return `ControlFlow::Break(())` from the callback         |
//! | `Flux.early_stopping(f, 3)`          | `early_stopping(f, 3)` or `EarlyStopping::new(3)`         |
//! | `Optimiser(ClipNorm(1), ADAM())`     | `optimiser_chain![ClipNorm::new(1.0), Adam::default()]`   |
//! | `opt.eta = 0.001`                    | `opt.set_lr(0.001)`                                       |
//! | `ADAMW(η, β, decay)`                 | `AdamW::new(η).beta(β).decay(decay)`                      |
//!
//! ```
//! use flux_optim::{train, Adam, DataLoader, Optimiser};
//! use flux_autograd::{param, params, Var};
//! use flux_tensor::Tensor;
//!
//! // Fit y = 2x + 1 on 64 samples (one per column).
//! let x = Tensor::from_vec((0..64).map(|i| i as f64 / 64.0).collect::<Vec<_>>(), &[1, 64]);
//! let y = x.map(|v| 2.0 * v + 1.0);
//! let (w, b) = (param(Tensor::zeros(&[1, 1])), param(Tensor::zeros(&[1])));
//! let ps = params![&w, &b];
//! let loss = |x: &Var, y: &Var| (w.matmul(x) + &b - y).powi(2).mean();
//! let data = DataLoader::new(x, y, 16).seed(1);
//! let mut opt = Adam::new(0.05);
//! for _epoch in 0..100 {
//!     train(loss, &ps, &data, &mut opt);
//! }
//! assert!((w.item() - 2.0).abs() < 0.05 && (b.item() - 1.0).abs() < 0.05);
//! ```

#![forbid(unsafe_code)]
#![allow(mixed_script_confusables, confusable_idents)]

mod callbacks;
mod chain;
mod data;
mod history;
mod optimiser;
#[cfg(feature = "plot")]
mod plot;
mod rules;
mod train;

pub use callbacks::{checkpoint_every, early_stopping, every, log_every, EarlyStopping};
pub use chain::OptimiserChain;
pub use data::{Batches, DataLoader};
pub use history::History;
pub use optimiser::{OptimError, Optimiser, STATE_FORMAT};
#[cfg(feature = "plot")]
pub use plot::{plot_history, plot_losses, PlotError};
pub use rules::EPSILON;
pub use rules::{
    AMSGrad, AdaDelta, AdaGrad, AdaMax, Adam, AdamW, ClipNorm, ClipValue, Descent, ExpDecay, InvDecay, Momentum, NAdam, Nesterov, RMSProp, WeightDecay,
};
pub use train::{
    progress_enabled, set_progress, throttle, throttle_event, train, train_with, try_train_with, CallbackError, CallbackResult, IntoBatch, TrainEvent,
    TrainSummary,
};

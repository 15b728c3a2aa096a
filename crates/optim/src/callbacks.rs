//! Ready-made training callbacks, after Flux's: early stopping ([`EarlyStopping`], Flux's
//! `early_stopping`), checkpoints ([`checkpoint_every`]), run-every-n ([`every`]) and a log line
//! with the learning rate ([`log_every`]). Each is an ordinary `FnMut(&TrainEvent) -> R`
//! for [`train_with`](crate::train_with); several run together as a tuple
//! (`|e| (a(e), b(e))`, see [`CallbackResult`](crate::CallbackResult)).
//!
//! A callback passed by value lives for one call of the loop. To keep its state over epochs
//! (one call of `train_with` per epoch), make it once and pass `&mut cb`.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use flux_layers::{save_state, Layer, LayerError};

use crate::train::TrainEvent;

/// Stops training when a metric has not improved for `patience` observations in a row (Flux's
/// `early_stopping(f, delay; min_dist)`). Lower is better unless [`EarlyStopping::maximize`]
/// is set; an observation improves when it beats the best so far by more than
/// [`EarlyStopping::min_delta`]; NaN never improves.
///
/// Use it directly between epochs with [`EarlyStopping::observe`], or as a `train_with`
/// callback with [`EarlyStopping::on`] / [`early_stopping`].
///
/// ```
/// use std::ops::ControlFlow;
/// use flux_optim::EarlyStopping;
/// let mut es = EarlyStopping::new(2);
/// assert!(es.observe(1.0).is_continue()); // best 1.0
/// assert!(es.observe(0.5).is_continue()); // best 0.5
/// assert!(es.observe(0.7).is_continue()); // 1 without improvement
/// assert!(es.observe(0.6).is_break()); // 2: stop
/// assert_eq!(es.best(), Some(0.5));
/// assert_eq!(es.best_index(), Some(1));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct EarlyStopping {
    patience: usize,
    min_delta: f64,
    maximize: bool,
    best: Option<(usize, f64)>,
    seen: usize,
    bad: usize,
}

impl EarlyStopping {
    /// Stops after `patience` observations in a row without improvement (0 is taken as 1).
    pub fn new(patience: usize) -> EarlyStopping {
        EarlyStopping { patience: patience.max(1), min_delta: 0.0, maximize: false, best: None, seen: 0, bad: 0 }
    }

    /// An observation must beat the best by more than `delta` to count as an improvement
    /// (Flux's `min_dist`; default 0).
    pub fn min_delta(mut self, delta: f64) -> EarlyStopping {
        self.min_delta = delta.abs();
        self
    }

    /// Higher is better (an accuracy rather than a loss).
    ///
    /// ```
    /// use flux_optim::EarlyStopping;
    /// let mut es = EarlyStopping::new(1).maximize();
    /// assert!(es.observe(0.90).is_continue());
    /// assert!(es.observe(0.95).is_continue());
    /// assert!(es.observe(0.94).is_break());
    /// ```
    pub fn maximize(mut self) -> EarlyStopping {
        self.maximize = true;
        self
    }

    /// Records one value of the metric: `Break(())` once `patience` values in a row have not
    /// improved on the best (and for every value after that), else `Continue(())`.
    pub fn observe(&mut self, value: f64) -> ControlFlow<()> {
        let index = self.seen;
        self.seen += 1;
        let improved = match self.best {
            None => !value.is_nan(),
            Some((_, best)) if self.maximize => value > best + self.min_delta,
            Some((_, best)) => value < best - self.min_delta,
        };
        if improved {
            self.best = Some((index, value));
            self.bad = 0;
        } else {
            self.bad += 1;
        }
        if self.should_stop() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }

    /// Has the patience run out?
    pub fn should_stop(&self) -> bool {
        self.bad >= self.patience
    }

    /// The best value observed.
    pub fn best(&self) -> Option<f64> {
        self.best.map(|(_, v)| v)
    }

    /// Which observation (from 0) was the best.
    pub fn best_index(&self) -> Option<usize> {
        self.best.map(|(i, _)| i)
    }

    /// Observations since the last improvement.
    pub fn waited(&self) -> usize {
        self.bad
    }

    /// A [`train_with`](crate::train_with) callback that observes `metric(event)` at every step
    /// it is called (wrap it in [`every`] to measure something costly, a held-out loss, less
    /// often).
    ///
    /// ```
    /// use flux_optim::{every, train_with, Descent, EarlyStopping, TrainEvent};
    /// use flux_autograd::{param, params, Var};
    /// let w = param(0.0);
    /// let data = vec![(Var::scalar(1.0), Var::scalar(3.0)); 1000];
    /// // the loss stops improving by more than 1e-3 quickly; stop after 3 such checks
    /// let es = EarlyStopping::new(3).min_delta(1e-3).on(|e: &TrainEvent| e.loss);
    /// let s = train_with(|x: &Var, y: &Var| (&w * x - y).powi(2), &params![&w], &data, &mut Descent::new(0.1), every(10, es));
    /// assert!(s.stopped_early && s.steps < 1000);
    /// ```
    pub fn on<F: FnMut(&TrainEvent) -> f64>(mut self, mut metric: F) -> impl FnMut(&TrainEvent) -> ControlFlow<()> {
        move |e: &TrainEvent| self.observe(metric(e))
    }
}

/// Flux's `early_stopping(f, delay)` as a [`train_with`](crate::train_with) callback: stops
/// when `metric(event)` (lower is better) has not improved for `patience` calls in a row.
/// `EarlyStopping::new(patience).on(metric)`; see [`EarlyStopping`] for the options.
///
/// ```
/// use flux_optim::{early_stopping, train_with, Descent, TrainEvent};
/// use flux_autograd::{param, params, Var};
/// let w = param(0.0);
/// // the loss cannot go below 1 (two targets, 2 and 4): it stops improving and training stops
/// let data: Vec<(Var, Var)> = (0..1000).map(|i| (Var::scalar(1.0), Var::scalar(if i % 2 == 0 { 2.0 } else { 4.0 }))).collect();
/// let s = train_with(|x: &Var, y: &Var| (&w * x - y).powi(2), &params![&w], &data, &mut Descent::new(0.5),
///     early_stopping(|e: &TrainEvent| e.loss, 5));
/// assert!(s.stopped_early && s.steps < 100);
/// ```
pub fn early_stopping<F: FnMut(&TrainEvent) -> f64>(metric: F, patience: usize) -> impl FnMut(&TrainEvent) -> ControlFlow<()> {
    EarlyStopping::new(patience).on(metric)
}

/// Runs `f` at every `n`-th step of the loop (steps `n`, `2n`, ...; `n = 0` is taken as 1); the
/// steps in between return `None`. The step is the loop's ([`TrainEvent::step`]), which
/// restarts at 1 in each call of `train_with`.
///
/// ```
/// use flux_optim::{every, train_with, Descent, TrainEvent};
/// use flux_autograd::{param, params, Var};
/// let w = param(0.0);
/// let data = vec![(Var::scalar(1.0), Var::scalar(1.0)); 10];
/// let mut seen = Vec::new();
/// train_with(|x: &Var, y: &Var| (&w * x - y).powi(2), &params![&w], &data, &mut Descent::new(0.1),
///     every(4, |e: &TrainEvent| seen.push(e.step)));
/// assert_eq!(seen, [4, 8]);
/// ```
pub fn every<R>(n: usize, mut f: impl FnMut(&TrainEvent) -> R) -> impl FnMut(&TrainEvent) -> Option<R> {
    let n = n.max(1);
    move |e: &TrainEvent| e.step.is_multiple_of(n).then(|| f(e))
}

/// Saves `model` with [`save_state`] every `n` steps it sees (`n = 0` is taken as 1). A `{step}`
/// in `path` is replaced by the step count (one file per checkpoint); without it each
/// checkpoint overwrites the last. The steps are counted by the callback itself, so when it is
/// passed as `&mut ckpt` to one `train_with` per epoch they run on over the epochs. A failed
/// save stops training with [`OptimError::Callback`](crate::OptimError::Callback).
///
/// ```
/// use flux_optim::{checkpoint_every, train_with, Descent, OptimError, TrainEvent};
/// use flux_autograd::Var;
/// use flux_layers::{identity, params, Dense, Layer};
/// use flux_tensor::Tensor;
/// let model = Dense::new(2, 1, identity);
/// let data = vec![(Tensor::ones(&[2, 4]), Tensor::zeros(&[1, 4])); 10];
/// let dir = std::env::temp_dir().join(format!("flux_optim_checkpoint_doc_{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let mut ckpt = checkpoint_every(&model, dir.join("model-{step}.json"), 5);
/// for _epoch in 0..2 {
///     train_with(|x: &Var, y: &Var| (model.forward(x) - y).powi(2).mean(), &params(&model), &data, &mut Descent::new(0.1), &mut ckpt);
/// }
/// for step in [5, 10, 15, 20] {
///     assert!(dir.join(format!("model-{step}.json")).exists());
/// }
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn checkpoint_every<'a, M: Layer + ?Sized>(model: &'a M, path: impl Into<PathBuf>, n: usize) -> impl FnMut(&TrainEvent) -> Result<(), LayerError> + 'a {
    let (path, n) = (path.into(), n.max(1));
    let mut seen = 0usize;
    move |_e: &TrainEvent| {
        seen += 1;
        if seen.is_multiple_of(n) {
            save_state(model, checkpoint_path(&path, seen))?;
        }
        Ok(())
    }
}

/// `path` with `{step}` replaced by `step`.
fn checkpoint_path(path: &Path, step: usize) -> PathBuf {
    match path.to_str() {
        Some(s) if s.contains("{step}") => PathBuf::from(s.replace("{step}", &step.to_string())),
        _ => path.to_path_buf(),
    }
}

/// Prints one line to stderr every `n` steps it sees (`n = 0` is taken as 1): the step, the
/// loss, the learning rate and the time, e.g. `step 200: loss 0.3121, lr 1.00e-3, 4.2 s`. The
/// plain log for runs without a progress bar (CI, output sent to a file); counted like
/// [`checkpoint_every`], so `&mut log` runs on over epochs.
///
/// ```
/// use flux_optim::{log_every, train_with, Descent};
/// use flux_autograd::{param, params, Var};
/// let w = param(0.0);
/// let data = vec![(Var::scalar(1.0), Var::scalar(1.0)); 4];
/// train_with(|x: &Var, y: &Var| (&w * x - y).powi(2), &params![&w], &data, &mut Descent::new(0.1), log_every(2));
/// ```
pub fn log_every(n: usize) -> impl FnMut(&TrainEvent) {
    let n = n.max(1);
    let mut seen = 0usize;
    let mut offset = std::time::Duration::ZERO;
    let mut last_elapsed = std::time::Duration::ZERO;
    move |e: &TrainEvent| {
        seen += 1;
        if e.elapsed < last_elapsed {
            offset += last_elapsed; // a new call of the loop: keep the clock running
        }
        last_elapsed = e.elapsed;
        if seen.is_multiple_of(n) {
            let lr = e.lr.map(|lr| format!(", lr {lr:.2e}")).unwrap_or_default();
            let secs = (offset + e.elapsed).as_secs_f64();
            let _ = writeln!(std::io::stderr().lock(), "step {seen}: loss {:.4}{lr}, {secs:.1} s", e.loss);
        }
    }
}

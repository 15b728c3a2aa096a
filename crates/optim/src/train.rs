//! The training loop (Flux's `train!`), callbacks that can stop it, [`throttle`], and a progress
//! line for long runs.

use std::io::{IsTerminal, Write};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use flux_autograd::{gradient_params, Params, Var};
use flux_tensor::Tensor;

use crate::optimiser::{OptimError, Optimiser};

/// One data item for [`train`]: an `(x, y)` pair of [`Var`]s or [`Tensor`]s, owned or borrowed.
///
/// ```
/// use flux_optim::IntoBatch;
/// use flux_tensor::Tensor;
/// let (x, y) = (Tensor::zeros(&[2, 3]), Tensor::ones(&[1, 3])).into_batch();
/// assert_eq!(x.shape(), &[2, 3]);
/// assert_eq!(y.shape(), &[1, 3]);
/// ```
pub trait IntoBatch {
    /// The pair as `Var`s.
    fn into_batch(self) -> (Var, Var);
}

impl IntoBatch for (Var, Var) {
    fn into_batch(self) -> (Var, Var) {
        self
    }
}

impl IntoBatch for &(Var, Var) {
    fn into_batch(self) -> (Var, Var) {
        self.clone()
    }
}

impl IntoBatch for (Tensor, Tensor) {
    fn into_batch(self) -> (Var, Var) {
        (Var::from(self.0), Var::from(self.1))
    }
}

impl IntoBatch for &(Tensor, Tensor) {
    fn into_batch(self) -> (Var, Var) {
        (Var::from(&self.0), Var::from(&self.1))
    }
}

/// What a [`train_with`] callback sees after each step.
///
/// ```
/// use flux_optim::TrainEvent;
/// let e = TrainEvent { step: 1, loss: 0.5, elapsed: std::time::Duration::ZERO };
/// assert_eq!(e.step, 1);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainEvent {
    /// The step just taken, from 1.
    pub step: usize,
    /// The loss at this step's data, before the update.
    pub loss: f64,
    /// Time since the loop started.
    pub elapsed: Duration,
}

/// What a training loop did.
///
/// ```
/// use flux_optim::{train, Descent};
/// use flux_autograd::{param, params, Var};
/// let w = param(1.0);
/// let data = vec![(Var::scalar(1.0), Var::scalar(0.0)); 3];
/// let s = train(|x: &Var, y: &Var| (&w * x - y).powi(2), &params![&w], &data, &mut Descent::new(0.1));
/// assert_eq!(s.steps, 3);
/// assert!(!s.stopped_early);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainSummary {
    /// Steps taken.
    pub steps: usize,
    /// The loss at the last step (NaN if no step was taken).
    pub last_loss: f64,
    /// The mean loss over the steps taken (NaN if none).
    pub mean_loss: f64,
    /// Did a callback stop the loop?
    pub stopped_early: bool,
    /// Wall time.
    pub elapsed: Duration,
}

/// What a callback may return: `()` (go on), [`ControlFlow`] (`Break` stops the loop, Flux's
/// `Flux.stop()`), or an `Option` of either (`None` goes on; what [`throttle_event`] returns).
///
/// ```
/// use flux_optim::CallbackResult;
/// use std::ops::ControlFlow;
/// assert!(ControlFlow::<()>::Break(()).should_stop());
/// assert!(!().should_stop());
/// assert!(!None::<ControlFlow<()>>.should_stop());
/// ```
pub trait CallbackResult {
    /// True to stop training after this step.
    fn should_stop(self) -> bool;
}

impl CallbackResult for () {
    fn should_stop(self) -> bool {
        false
    }
}

impl<B> CallbackResult for ControlFlow<B> {
    fn should_stop(self) -> bool {
        self.is_break()
    }
}

impl<T: CallbackResult> CallbackResult for Option<T> {
    fn should_stop(self) -> bool {
        self.is_some_and(CallbackResult::should_stop)
    }
}

/// 0: automatic (on when stderr is a terminal), 1: on, 2: off.
static PROGRESS: AtomicU8 = AtomicU8::new(0);

/// Turns the progress line of [`train`] on or off for the whole program. By default it is shown
/// only when stderr is a terminal, and only for runs longer than two seconds; it is one line,
/// rewritten in place at most twice a second, and ends with a newline when the loop ends.
///
/// ```
/// flux_optim::set_progress(false);
/// assert!(!flux_optim::progress_enabled());
/// ```
pub fn set_progress(on: bool) {
    PROGRESS.store(if on { 1 } else { 2 }, Ordering::Relaxed);
}

/// Is the progress line shown (see [`set_progress`])?
///
/// ```
/// flux_optim::set_progress(true);
/// assert!(flux_optim::progress_enabled());
/// flux_optim::set_progress(false);
/// ```
pub fn progress_enabled() -> bool {
    match PROGRESS.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => std::io::stderr().is_terminal(),
    }
}

/// A progress line on stderr.
struct ProgressLine {
    on: bool,
    start: Instant,
    last: Option<Instant>,
    total: Option<usize>,
    shown: bool,
}

impl ProgressLine {
    fn new(total: Option<usize>) -> ProgressLine {
        ProgressLine { on: progress_enabled(), start: Instant::now(), last: None, total, shown: false }
    }

    fn tick(&mut self, step: usize, loss: f64) {
        if !self.on {
            return;
        }
        let now = Instant::now();
        if now.duration_since(self.start) < Duration::from_secs(2) || self.last.is_some_and(|t| now.duration_since(t) < Duration::from_millis(500)) {
            return;
        }
        self.last = Some(now);
        self.print(step, loss);
    }

    fn print(&mut self, step: usize, loss: f64) {
        let secs = self.start.elapsed().as_secs_f64();
        let rate = step as f64 / secs.max(1e-9);
        let of = self.total.map(|t| format!("/{t}")).unwrap_or_default();
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\rtrain: step {step}{of}  loss {loss:.6}  {rate:.1} steps/s  {secs:.1}s   ");
        let _ = err.flush();
        self.shown = true;
    }

    fn finish(&mut self, step: usize, loss: f64) {
        if self.shown {
            self.print(step, loss);
            let _ = writeln!(std::io::stderr());
        }
    }
}

/// Flux's `train!(loss, ps, data, opt)`: for each `(x, y)` in `data`, takes the gradient of
/// `loss(x, y)` with respect to `ps` and applies one step of `opt`. Panics if the loss becomes
/// NaN or infinite (before updating with it); see [`try_train_with`].
///
/// ```
/// use flux_optim::{train, Descent};
/// use flux_autograd::{param, params, Var};
/// use flux_tensor::Tensor;
/// let w = param(0.0);
/// let data: Vec<(Var, Var)> = (0..50).map(|_| (Var::scalar(1.0), Var::scalar(3.0))).collect();
/// train(|x: &Var, y: &Var| (&w * x - y).powi(2), &params![&w], &data, &mut Descent::new(0.1));
/// assert!((w.item() - 3.0).abs() < 1e-3);
/// ```
pub fn train<L, D, O>(loss: L, ps: &Params, data: D, opt: &mut O) -> TrainSummary
where
    L: FnMut(&Var, &Var) -> Var,
    D: IntoIterator,
    D::Item: IntoBatch,
    O: Optimiser + ?Sized,
{
    train_with(loss, ps, data, opt, |_: &TrainEvent| ())
}

/// [`train`] with a callback after every step (Flux's `cb`), which may stop the loop by
/// returning `ControlFlow::Break(())` (Flux's `Flux.stop()`). Wrap the callback in
/// [`throttle_event`] to run it at most once per interval. Panics on a non-finite loss.
///
/// ```
/// use std::ops::ControlFlow;
/// use flux_optim::{train_with, Descent, TrainEvent};
/// use flux_autograd::{param, params, Var};
/// let w = param(0.0);
/// let data = vec![(Var::scalar(1.0), Var::scalar(3.0)); 1000];
/// let s = train_with(|x: &Var, y: &Var| (&w * x - y).powi(2), &params![&w], &data, &mut Descent::new(0.1), |e: &TrainEvent| {
///     if e.loss < 1e-6 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
/// });
/// assert!(s.stopped_early && s.steps < 1000);
/// ```
pub fn train_with<L, D, O, C, R>(loss: L, ps: &Params, data: D, opt: &mut O, cb: C) -> TrainSummary
where
    L: FnMut(&Var, &Var) -> Var,
    D: IntoIterator,
    D::Item: IntoBatch,
    O: Optimiser + ?Sized,
    C: FnMut(&TrainEvent) -> R,
    R: CallbackResult,
{
    try_train_with(loss, ps, data, opt, cb).unwrap_or_else(|e| panic!("{e}"))
}

/// Fallible [`train_with`]: stops with [`OptimError::NonFiniteLoss`] (before applying that
/// step) when the loss is NaN or infinite, and with the update's error if a gradient does not
/// fit its parameter.
///
/// ```
/// use flux_optim::{try_train_with, Descent, OptimError, TrainEvent};
/// use flux_autograd::{param, params, Var};
/// let w = param(1.0);
/// let data = vec![(Var::scalar(0.0), Var::scalar(0.0))];
/// let r = try_train_with(|x: &Var, _y: &Var| (&w * x).ln(), &params![&w], &data, &mut Descent::new(0.1), |_: &TrainEvent| ());
/// assert!(matches!(r, Err(OptimError::NonFiniteLoss { step: 1, .. })));
/// assert_eq!(w.item(), 1.0);
/// ```
pub fn try_train_with<L, D, O, C, R>(mut loss: L, ps: &Params, data: D, opt: &mut O, mut cb: C) -> Result<TrainSummary, OptimError>
where
    L: FnMut(&Var, &Var) -> Var,
    D: IntoIterator,
    D::Item: IntoBatch,
    O: Optimiser + ?Sized,
    C: FnMut(&TrainEvent) -> R,
    R: CallbackResult,
{
    let iter = data.into_iter();
    let total = match iter.size_hint() {
        (lo, Some(hi)) if lo == hi => Some(lo),
        _ => None,
    };
    let start = Instant::now();
    let mut progress = ProgressLine::new(total);
    let (mut steps, mut last_loss, mut sum, mut stopped_early) = (0usize, f64::NAN, 0.0, false);
    for item in iter {
        let (x, y) = item.into_batch();
        let mut value = f64::NAN;
        let gs = gradient_params(
            || {
                let l = loss(&x, &y);
                value = l.item();
                l
            },
            ps,
        );
        if !value.is_finite() {
            progress.finish(steps, last_loss);
            return Err(OptimError::NonFiniteLoss { step: steps + 1, loss: value });
        }
        opt.try_update(ps, &gs)?;
        steps += 1;
        last_loss = value;
        sum += value;
        progress.tick(steps, value);
        if cb(&TrainEvent { step: steps, loss: value, elapsed: start.elapsed() }).should_stop() {
            stopped_early = true;
            break;
        }
    }
    progress.finish(steps, last_loss);
    let mean_loss = if steps == 0 { f64::NAN } else { sum / steps as f64 };
    Ok(TrainSummary { steps, last_loss, mean_loss, stopped_early, elapsed: start.elapsed() })
}

/// Flux's `throttle(f, timeout)`: a closure that calls `f` at most once every `seconds` (the
/// first call goes through; calls in between return `None` without calling `f`).
///
/// ```
/// use flux_optim::throttle;
/// let mut n = 0;
/// let mut f = throttle(|| { n += 1; n }, 3600.0);
/// assert_eq!(f(), Some(1));
/// assert_eq!(f(), None);
/// ```
pub fn throttle<R>(mut f: impl FnMut() -> R, seconds: f64) -> impl FnMut() -> Option<R> {
    let mut last: Option<Instant> = None;
    move || {
        let now = Instant::now();
        match last {
            Some(t) if now.duration_since(t).as_secs_f64() < seconds => None,
            _ => {
                last = Some(now);
                Some(f())
            }
        }
    }
}

/// [`throttle`] for a [`train_with`] callback: calls `f` with the event at most once every
/// `seconds`. What it returns (an `Option` of `f`'s result) is itself a callback result, so a
/// throttled callback can still stop the loop.
///
/// ```
/// use flux_optim::{throttle_event, train_with, Descent, TrainEvent};
/// use flux_autograd::{param, params, Var};
/// let w = param(0.0);
/// let data = vec![(Var::scalar(1.0), Var::scalar(1.0)); 10];
/// let mut seen = 0;
/// train_with(|x: &Var, y: &Var| (&w * x - y).powi(2), &params![&w], &data, &mut Descent::new(0.1),
///     throttle_event(|_e: &TrainEvent| seen += 1, 3600.0));
/// assert_eq!(seen, 1);
/// ```
pub fn throttle_event<R>(mut f: impl FnMut(&TrainEvent) -> R, seconds: f64) -> impl FnMut(&TrainEvent) -> Option<R> {
    let mut last: Option<Instant> = None;
    move |e: &TrainEvent| {
        let now = Instant::now();
        match last {
            Some(t) if now.duration_since(t).as_secs_f64() < seconds => None,
            _ => {
                last = Some(now);
                Some(f(e))
            }
        }
    }
}

//! The training loop (Flux's `train!`), callbacks that can stop it, [`throttle`], and a progress
//! bar for long runs.

use std::error::Error;
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
/// let e = TrainEvent { step: 1, loss: 0.5, lr: Some(0.01), elapsed: std::time::Duration::ZERO };
/// assert_eq!(e.step, 1);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainEvent {
    /// The step just taken, from 1 in each call of the loop.
    pub step: usize,
    /// The loss at this step's data, before the update.
    pub loss: f64,
    /// The learning rate this step used ([`Optimiser::lr`]; `None` for rules without one).
    pub lr: Option<f64>,
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
/// assert_eq!(s.losses.len(), 3);
/// assert!(!s.stopped_early);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct TrainSummary {
    /// Steps taken.
    pub steps: usize,
    /// The loss of every step taken, in order (`losses.len() == steps`).
    pub losses: Vec<f64>,
    /// The loss at the last step (NaN if no step was taken).
    pub last_loss: f64,
    /// The mean loss over the steps taken (NaN if none).
    pub mean_loss: f64,
    /// Did a callback stop the loop?
    pub stopped_early: bool,
    /// Wall time.
    pub elapsed: Duration,
}

/// The error a failing callback ends training with (inside [`OptimError::Callback`]).
pub type CallbackError = Box<dyn Error + Send + Sync>;

/// What a callback may return: `()` (go on), [`ControlFlow`] (`Break` stops the loop, Flux's
/// `Flux.stop()`), an `Option` of either (`None` goes on; what [`throttle_event`] and
/// [`every`](crate::every) return), a `Result` of any of these (an `Err` stops the loop, and
/// [`try_train_with`] returns it as [`OptimError::Callback`]), or a tuple of them, so that
/// several callbacks run at every step: `|e| (record(e), save(e), stop(e))` stops when any
/// of them says so.
///
/// ```
/// use flux_optim::CallbackResult;
/// use std::ops::ControlFlow;
/// assert!(ControlFlow::<()>::Break(()).should_stop());
/// assert!(!().should_stop());
/// assert!(!None::<ControlFlow<()>>.should_stop());
/// assert!(Err::<(), _>("disk full").should_stop());
/// assert!(((), ControlFlow::<()>::Break(())).should_stop());
/// assert_eq!(((), Err::<(), _>("disk full")).outcome().unwrap_err().to_string(), "disk full");
/// ```
pub trait CallbackResult: Sized {
    /// True to stop training after this step.
    fn should_stop(self) -> bool;

    /// `Ok(stop)`, or the callback's error (which also stops training). The default is
    /// `Ok(self.should_stop())`.
    fn outcome(self) -> Result<bool, CallbackError> {
        Ok(self.should_stop())
    }
}

impl CallbackResult for () {
    fn should_stop(self) -> bool {
        false
    }
}

impl CallbackResult for bool {
    /// `true` stops (what Flux's `early_stopping` returns).
    fn should_stop(self) -> bool {
        self
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
    fn outcome(self) -> Result<bool, CallbackError> {
        self.map_or(Ok(false), CallbackResult::outcome)
    }
}

impl<T: CallbackResult, E: Into<CallbackError>> CallbackResult for Result<T, E> {
    fn should_stop(self) -> bool {
        self.map_or(true, CallbackResult::should_stop)
    }
    fn outcome(self) -> Result<bool, CallbackError> {
        self.map_err(Into::into)?.outcome()
    }
}

macro_rules! tuple_callback_result {
    ($($t:ident $v:ident),+) => {
        impl<$($t: CallbackResult),+> CallbackResult for ($($t,)+) {
            fn should_stop(self) -> bool {
                let ($($v,)+) = self;
                false $(| $v.should_stop())+
            }
            /// Every member's outcome; the first error, else stop if any says so.
            fn outcome(self) -> Result<bool, CallbackError> {
                let ($($v,)+) = self;
                let mut stop = false;
                $(stop |= $v.outcome()?;)+
                Ok(stop)
            }
        }
    };
}
tuple_callback_result!(A a, B b);
tuple_callback_result!(A a, B b, C c);
tuple_callback_result!(A a, B b, C c, D d);
tuple_callback_result!(A a, B b, C c, D d, E e);
tuple_callback_result!(A a, B b, C c, D d, E e, F f);

/// 0: automatic (on when stderr is a terminal), 1: on, 2: off.
static PROGRESS: AtomicU8 = AtomicU8::new(0);

/// Turns the progress bar of [`train`] on or off for the whole program. By default it is shown
/// only when stderr is a terminal (so CI logs and redirected output stay clean), and only for
/// runs longer than two seconds: an [`indicatif`] bar with the step, the loss, steps per second
/// and the time left (when the number of steps is known), redrawn a few times a second and left
/// on screen when the loop ends. `set_progress(true)` shows it even when stderr is not a
/// terminal, one line rewritten in place.
///
/// ```
/// flux_optim::set_progress(false);
/// assert!(!flux_optim::progress_enabled());
/// ```
pub fn set_progress(on: bool) {
    PROGRESS.store(if on { 1 } else { 2 }, Ordering::Relaxed);
}

/// Is the progress bar shown (see [`set_progress`])?
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

/// stderr as a terminal for indicatif when it is not one but [`set_progress`]`(true)` asked
/// for the bar: one line, rewritten with a carriage return and an erase-line escape.
#[derive(Debug)]
struct ForcedStderr;

impl indicatif::TermLike for ForcedStderr {
    fn width(&self) -> u16 {
        100
    }
    fn move_cursor_up(&self, _n: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_down(&self, _n: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_right(&self, _n: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_left(&self, _n: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        writeln!(std::io::stderr().lock(), "{s}")
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        write!(std::io::stderr().lock(), "{s}")
    }
    fn clear_line(&self) -> std::io::Result<()> {
        write!(std::io::stderr().lock(), "\r\x1b[2K")
    }
    fn flush(&self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// The progress bar of one training loop: nothing is drawn (or allocated) until the loop has run
/// for two seconds with the display enabled.
struct Progress {
    on: bool,
    start: Instant,
    total: Option<usize>,
    bar: Option<indicatif::ProgressBar>,
    last_msg: Option<Instant>,
}

impl Progress {
    const DELAY: Duration = Duration::from_secs(2);
    const MSG_EVERY: Duration = Duration::from_millis(200);

    fn new(total: Option<usize>) -> Progress {
        Progress { on: progress_enabled(), start: Instant::now(), total, bar: None, last_msg: None }
    }

    fn tick(&mut self, step: usize, loss: f64) {
        if !self.on {
            return;
        }
        let now = Instant::now();
        if self.bar.is_none() {
            if now.duration_since(self.start) < Self::DELAY {
                return;
            }
            self.bar = Some(self.make_bar());
        }
        let Some(bar) = &self.bar else { return };
        if self.last_msg.is_none_or(|t| now.duration_since(t) >= Self::MSG_EVERY) {
            self.last_msg = Some(now);
            bar.set_message(Self::message(step, self.total, loss, now.duration_since(self.start)));
        }
        bar.set_position(step as u64);
    }

    fn make_bar(&self) -> indicatif::ProgressBar {
        use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr_with_hz(4)
        } else {
            ProgressDrawTarget::term_like_with_hz(Box::new(ForcedStderr), 2)
        };
        let template = match self.total {
            Some(_) => "train {bar:30.cyan/blue} step {pos}/{len}  {msg}",
            None => "train {spinner} step {pos}  {msg}",
        };
        let style = ProgressStyle::with_template(template).expect("a valid progress template").progress_chars("=> ");
        ProgressBar::with_draw_target(self.total.map(|t| t as u64), target).with_style(style).with_elapsed(self.start.elapsed())
    }

    /// `loss 0.1234  56.7 steps/s  ETA 1m 05s` (the ETA when the number of steps is known and
    /// the loop has not ended).
    fn message(step: usize, total: Option<usize>, loss: f64, elapsed: Duration) -> String {
        let rate = step as f64 / elapsed.as_secs_f64().max(1e-9);
        let loss = if loss != 0.0 && loss.abs() < 1e-3 { format!("{loss:.3e}") } else { format!("{loss:.4}") };
        let eta = match total {
            Some(t) if t > step && rate > 0.0 => format!("  ETA {}", Self::duration((t - step) as f64 / rate)),
            _ => String::new(),
        };
        format!("loss {loss}  {rate:.1} steps/s{eta}")
    }

    /// `42s`, `3m 07s`, `2h 05m`.
    fn duration(secs: f64) -> String {
        let s = secs.ceil() as u64;
        match s {
            0..60 => format!("{s}s"),
            60..3600 => format!("{}m {:02}s", s / 60, s % 60),
            _ => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        }
    }

    fn finish(&mut self, step: usize, loss: f64) {
        if let Some(bar) = self.bar.take() {
            bar.set_position(step as u64);
            bar.set_message(Self::message(step, None, loss, self.start.elapsed()));
            bar.abandon();
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
/// returning `ControlFlow::Break(())` (Flux's `Flux.stop()`) or an `Err` (see
/// [`CallbackResult`]). Wrap the callback in [`throttle_event`] to run it at most once per
/// interval, or [`every`](crate::every) to run it every n steps; ready-made ones: [`History::recorder`](crate::History::recorder),
/// [`EarlyStopping`](crate::EarlyStopping), [`checkpoint_every`](crate::checkpoint_every),
/// [`log_every`](crate::log_every). Panics on a non-finite loss or a callback's error.
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
/// step) when the loss is NaN or infinite, with the update's error if a gradient does not
/// fit its parameter, and with [`OptimError::Callback`] when the callback returns an `Err`
/// (after that step's update).
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
    let mut progress = Progress::new(total);
    let (mut steps, mut last_loss, mut sum, mut stopped_early) = (0usize, f64::NAN, 0.0, false);
    let mut losses = Vec::with_capacity(total.unwrap_or(0));
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
        let lr = opt.lr();
        if let Err(e) = opt.try_update(ps, &gs) {
            progress.finish(steps, last_loss);
            return Err(e);
        }
        steps += 1;
        last_loss = value;
        sum += value;
        losses.push(value);
        progress.tick(steps, value);
        match cb(&TrainEvent { step: steps, loss: value, lr, elapsed: start.elapsed() }).outcome() {
            Ok(false) => {}
            Ok(true) => {
                stopped_early = true;
                break;
            }
            Err(source) => {
                progress.finish(steps, last_loss);
                return Err(OptimError::Callback { step: steps, source });
            }
        }
    }
    progress.finish(steps, last_loss);
    let mean_loss = if steps == 0 { f64::NAN } else { sum / steps as f64 };
    Ok(TrainSummary { steps, losses, last_loss, mean_loss, stopped_early, elapsed: start.elapsed() })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_message_reads_well() {
        assert_eq!(Progress::message(50, Some(150), 0.25, Duration::from_secs(2)), "loss 0.2500  25.0 steps/s  ETA 4s");
        assert_eq!(Progress::message(150, Some(150), 1e-5, Duration::from_secs(2)), "loss 1.000e-5  75.0 steps/s");
        assert_eq!(Progress::message(10, None, 0.0, Duration::from_secs(10)), "loss 0.0000  1.0 steps/s");
        assert_eq!(Progress::duration(0.2), "1s");
        assert_eq!(Progress::duration(185.0), "3m 05s");
        assert_eq!(Progress::duration(7500.0), "2h 05m");
    }
}

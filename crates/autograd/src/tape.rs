//! Per-thread recording state: whether new operations are recorded, and how many gradient
//! calls are active (so that an inner `gradient` knows to record its own backward pass).
//! Per thread, so threads never contend and never see each other's state.

use std::cell::Cell;

thread_local! {
    static PAUSED: Cell<u32> = const { Cell::new(0) };
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Is recording on for this thread (no enclosing [`no_grad`])?
#[inline]
pub(crate) fn recording() -> bool {
    PAUSED.with(|p| p.get() == 0)
}

/// How many `gradient` calls are running on this thread right now.
#[inline]
pub(crate) fn depth() -> u32 {
    DEPTH.with(|d| d.get())
}

/// Is a gradient call (`gradient`, `gradients`, `gradient_params`) running on this thread?
/// Layers whose behaviour differs in training (Dropout, BatchNorm) use it as Flux's
/// `istraining()`.
///
/// ```
/// use flux_autograd::{gradient, in_gradient, Var};
/// assert!(!in_gradient());
/// let g = gradient(|x: &Var| { assert!(in_gradient()); x * 2.0 }, &Var::scalar(1.0));
/// assert_eq!(g.item(), 2.0);
/// ```
pub fn in_gradient() -> bool {
    depth() > 0
}

/// Are operations recorded on this thread now (no enclosing [`no_grad`])? A result is tracked
/// only when this holds and one of its inputs is tracked, so a custom op whose forward keeps
/// state for its backward can skip that work otherwise.
///
/// ```
/// use flux_autograd::{is_recording, no_grad};
/// assert!(is_recording());
/// assert!(!no_grad(is_recording));
/// ```
pub fn is_recording() -> bool {
    recording()
}

/// Runs `f` without recording: every result is a constant. Use it for evaluation and for
/// updates that must not become part of a graph.
///
/// ```
/// use flux_autograd::{no_grad, param};
/// let w = param(2.0);
/// let y = no_grad(|| &w * 3.0);
/// assert!(!y.is_tracked());
/// assert!((&w * 3.0).is_tracked());
/// ```
pub fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    let _g = Pause::new();
    f()
}

/// While alive, recording is off on this thread (restored on drop, also when unwinding).
pub(crate) struct Pause;
impl Pause {
    pub(crate) fn new() -> Pause {
        PAUSED.with(|p| p.set(p.get() + 1));
        Pause
    }
}
impl Drop for Pause {
    fn drop(&mut self) {
        PAUSED.with(|p| p.set(p.get() - 1));
    }
}

/// While alive, one more gradient call is active on this thread.
pub(crate) struct Depth;
impl Depth {
    pub(crate) fn enter() -> Depth {
        DEPTH.with(|d| d.set(d.get() + 1));
        Depth
    }
}
impl Drop for Depth {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get() - 1));
    }
}

/// While alive, recording is forced on (an inner gradient recording its backward pass inside
/// an outer one, even under the outer backward's own pause).
pub(crate) struct Resume(u32);
impl Resume {
    pub(crate) fn new() -> Resume {
        Resume(PAUSED.with(|p| p.replace(0)))
    }
}
impl Drop for Resume {
    fn drop(&mut self) {
        PAUSED.with(|p| p.set(self.0));
    }
}

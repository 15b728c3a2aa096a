//! Forward mode, as JAX's `jvp`: tangents travel beside the values in one forward pass.
//!
//! A [`jvp`] call opens a *frame*: a per-thread map from node id to that node's tangent (a
//! `Var`). Every value made while a frame is open ([`Var::from_op`]) asks its op for its
//! tangent, given the tangents of its inputs (each op's rule sits next to its backward rule
//! under `ops/`). Rules are written in `Var` operations, so a tangent is itself a recorded
//! value: a `gradient` around a `jvp` differentiates the tangent (reverse over forward), and a
//! `gradient` inside a `jvp` records its backward pass, whose values get tangents in turn
//! (forward over reverse).
//!
//! Nested `jvp` calls open one frame each. A frame's rules run with only the frames outside it
//! visible, so the operations of an inner tangent get outer tangents (forward over forward)
//! while an inner perturbation never leaks into an outer one (no perturbation confusion).
//! Nothing is global: each thread has its own frames.

use std::cell::{Cell, RefCell};

use crate::gradient::Params;
use crate::idmap::IdMap;
use crate::op::Op;
use crate::tape;
use crate::var::Var;

thread_local! {
    /// One tangent map per open `jvp`, outermost first.
    static FRAMES: RefCell<Vec<IdMap<Var>>> = const { RefCell::new(Vec::new()) };
    /// How many of the frames (from the outermost) new values get tangents in.
    static VISIBLE: Cell<usize> = const { Cell::new(0) };
}

/// Is some `jvp` frame visible on this thread (so new values need tangents)?
#[inline]
pub(crate) fn active() -> bool {
    VISIBLE.with(|v| v.get() > 0)
}

/// Is a [`jvp`] running on this thread, so that new values get tangents? An op whose forward
/// pass hands state to its backward pass outside the graph (a fused kernel with a custom
/// backward) can check this and take a path made of ordinary operations instead, which forward
/// mode sees through.
///
/// ```
/// use flux_autograd::{in_jvp, jvp, Var};
/// assert!(!in_jvp());
/// let (_, t) = jvp(|x: &Var| { assert!(in_jvp()); x * 2.0 }, &Var::scalar(1.0), &Var::scalar(1.0));
/// assert_eq!(t.item(), 2.0);
/// ```
pub fn in_jvp() -> bool {
    active()
}

/// How many frames are visible now.
pub(crate) fn visible() -> usize {
    VISIBLE.with(Cell::get)
}

/// While alive, exactly `n` frames are visible (restored on drop, also when unwinding).
pub(crate) struct Visible(usize);
impl Visible {
    pub(crate) fn set(n: usize) -> Visible {
        Visible(VISIBLE.with(|v| v.replace(n)))
    }
}
impl Drop for Visible {
    fn drop(&mut self) {
        VISIBLE.with(|v| v.set(self.0));
    }
}

/// The tangent of node `id` in frame `level`, if it has one.
pub(crate) fn tangent_in(level: usize, id: u64) -> Option<Var> {
    FRAMES.with(|f| f.borrow().get(level).and_then(|m| m.get(&id).cloned()))
}

fn set_tangent(level: usize, id: u64, t: Var) {
    FRAMES.with(|f| {
        if let Some(m) = f.borrow_mut().get_mut(level) {
            m.insert(id, t);
        }
    });
}

/// Gives `to` the tangents `from` has in every visible frame: a fresh leaf standing for a
/// value (a `gradient` call's point, a checkpoint's result) keeps that value's perturbations.
pub(crate) fn alias(from: &Var, to: &Var) {
    for k in 0..visible() {
        if let Some(t) = tangent_in(k, from.id()) {
            set_tangent(k, to.id(), t);
        }
    }
}

/// Computes the tangents of `y = op(inputs)` in every visible frame where some input has one.
/// Called for every value made while a frame is visible.
pub(crate) fn propagate(op: &Op, y: &Var) {
    let levels = visible();
    let mut ts: Vec<Option<Var>> = Vec::with_capacity(3);
    for k in (0..levels).rev() {
        ts.clear();
        let mut any = false;
        FRAMES.with(|f| {
            let f = f.borrow();
            let m = &f[k];
            op.for_each_input(|x| {
                let t = m.get(&x.id()).cloned();
                any |= t.is_some();
                ts.push(t);
            });
        });
        if !any {
            continue;
        }
        // the rule's own operations are perturbed only by the frames outside this one
        let t = {
            let _outer = Visible::set(k);
            op.tangent(y, &ts).map(|t| fit(t, y))
        };
        if let Some(t) = t {
            set_tangent(k, y.id(), t);
        }
    }
}

/// A tangent in the shape and dtype of its value (rules may leave a broadcast implicit).
fn fit(t: Var, y: &Var) -> Var {
    let t = if t.dtype() == y.dtype() { t } else { t.to_dtype(y.dtype()) };
    let s = y.shape();
    if t.shape() == s {
        t
    } else {
        t.broadcast_to(&s)
    }
}

/// Opens a frame for the duration of a `jvp` call: frames hidden by an enclosing rule are set
/// aside (a `jvp` inside a tangent rule sits between the visible frames and those), and
/// everything is restored on drop, also when `f` panics.
struct Frame {
    level: usize,
    hidden: Vec<IdMap<Var>>,
    _visible: Visible,
}

impl Frame {
    fn open() -> Frame {
        let vis = visible();
        let hidden = FRAMES.with(|f| {
            let mut f = f.borrow_mut();
            let at = vis.min(f.len());
            let hidden = f.split_off(at);
            f.push(IdMap::default());
            hidden
        });
        Frame { level: vis, hidden, _visible: Visible::set(vis + 1) }
    }
}

impl Drop for Frame {
    fn drop(&mut self) {
        let hidden = std::mem::take(&mut self.hidden);
        let dropped = FRAMES.with(|f| {
            let mut f = f.borrow_mut();
            let dropped = f.pop();
            f.extend(hidden);
            dropped
        });
        // tangents (and the graphs they hold) are freed outside the borrow
        drop(dropped);
    }
}

/// `v` as a tangent of `x`: in `x`'s dtype and shape (the same elements in another shape, such
/// as a 0-d value for a one-element vector, are reshaped); panics naming `op` and both shapes
/// when the element counts differ.
pub(crate) fn as_tangent(op: &'static str, x: &Var, v: &Var) -> Var {
    let (xs, vs) = (x.shape(), v.shape());
    if xs != vs && xs.numel() != vs.numel() {
        panic!("{op}: the tangent has shape {vs:?} but the point has shape {xs:?}");
    }
    let v = if v.dtype() == x.dtype() { v.clone() } else { v.to_dtype(x.dtype()) };
    if xs == vs {
        v
    } else {
        v.reshape(&xs)
    }
}

/// The results of a `jvp`, detached when nothing outer differentiates them.
fn finish(y: Var, t: Var) -> (Var, Var) {
    if tape::depth() == 0 && !active() {
        // nothing outer differentiates the results: hand back plain values, freeing the graph
        (y.detach(), t.detach())
    } else {
        (y, t)
    }
}

/// Shared by [`jvp`] and [`jvps`].
fn jvp_impl(f: impl FnOnce(&[Var]) -> Var, xs: &[Var], vs: &[Var], op: &'static str) -> (Var, Var) {
    if xs.len() != vs.len() {
        panic!("{op}: {} points but {} tangents", xs.len(), vs.len());
    }
    let vs: Vec<Var> = xs.iter().zip(vs).map(|(x, v)| as_tangent(op, x, v)).collect();
    let frame = Frame::open();
    // a fresh identity for each point: tracked values stay differentiable through it (reverse
    // over forward), and the new frame keys the point's tangent on it
    let points: Vec<Var> = xs.iter().map(|x| x.identity()).collect();
    for (p, v) in points.iter().zip(vs) {
        set_tangent(frame.level, p.id(), v);
    }
    let y = f(&points);
    let t = tangent_in(frame.level, y.id()).unwrap_or_else(|| Var::constant(y.data().zeros_like()));
    drop(frame);
    finish(y, t)
}

/// Forward mode: the value `f(x)` and the directional derivative `J·v` (a Jacobian-vector
/// product), computed together in ONE forward pass that carries a tangent beside every value
/// (JAX's `jvp`, Tracker's `forwarddiff` for one direction). Costs about two to three
/// evaluations of `f`, whatever the sizes; use it when `f` has fewer inputs than outputs, or
/// for one directional derivative of a function with many outputs.
///
/// It nests with everything: a `gradient` of a function that calls `jvp` differentiates the
/// tangent (reverse over forward), a `jvp` of a function that calls `gradient` gives a
/// Hessian-vector product (forward over reverse; [`crate::hvp`] takes the route measured
/// faster here), and `jvp` inside `jvp` gives higher directional derivatives. `v` must have `x`'s shape (it is converted to `x`'s
/// dtype; a value with the same elements in another shape is reshaped); panics otherwise.
///
/// ```
/// use flux_autograd::{jvp, Var};
/// // f(x) = x³ at 2 in direction 1: f = 8, f' = 3x² = 12
/// let (y, t) = jvp(|x: &Var| x.powi(3), &Var::scalar(2.0), &Var::scalar(1.0));
/// assert_eq!((y.item(), t.item()), (8.0, 12.0));
/// // second derivative by forward over forward: 6x = 12
/// let d2 = jvp(|x: &Var| jvp(|x: &Var| x.powi(3), x, &Var::scalar(1.0)).1, &Var::scalar(2.0), &Var::scalar(1.0)).1;
/// assert_eq!(d2.item(), 12.0);
/// ```
pub fn jvp(f: impl FnOnce(&Var) -> Var, x: &Var, v: &Var) -> (Var, Var) {
    jvp_impl(|xs| f(&xs[0]), std::slice::from_ref(x), std::slice::from_ref(v), "jvp")
}

/// [`jvp`] for a function of several arguments, each with its own tangent: the value and
/// `Σ_i J_i·v_i`. Panics when the counts or a shape differ.
///
/// ```
/// use flux_autograd::{jvps, Var};
/// // f(a, b) = a·b at (2, 3) in direction (1, 10): 3·1 + 2·10 = 23
/// let (y, t) = jvps(|v: &[Var]| &v[0] * &v[1], &[2.0.into(), 3.0.into()], &[1.0.into(), 10.0.into()]);
/// assert_eq!((y.item(), t.item()), (6.0, 23.0));
/// ```
pub fn jvps(f: impl FnOnce(&[Var]) -> Var, xs: &[Var], vs: &[Var]) -> (Var, Var) {
    jvp_impl(f, xs, vs, "jvps")
}

/// Forward mode with respect to parameters (the implicit style of [`crate::gradient_params`]):
/// the value of `f()` and its directional derivative when each parameter `ps[i]` moves along
/// `vs[i]` (in the order of the `Params`). The tangents are keyed on the parameters
/// themselves, so `f` uses them as it always does. Panics when the counts or a shape differ.
///
/// ```
/// use flux_autograd::{jvp_params, param, params, Var};
/// let (w, b) = (param(2.0), param(1.0));
/// // d(w·3 + b) along (1, 10) = 3 + 10
/// let (y, t) = jvp_params(|| &w * 3.0 + &b, &params![&w, &b], &[1.0.into(), 10.0.into()]);
/// assert_eq!((y.item(), t.item()), (7.0, 13.0));
/// ```
pub fn jvp_params(f: impl FnOnce() -> Var, ps: &Params, vs: &[Var]) -> (Var, Var) {
    if ps.len() != vs.len() {
        panic!("jvp_params: {} parameters but {} tangents", ps.len(), vs.len());
    }
    let vs: Vec<Var> = ps.iter().zip(vs).map(|(p, v)| as_tangent("jvp_params", p, v)).collect();
    let frame = Frame::open();
    for (p, v) in ps.iter().zip(vs) {
        set_tangent(frame.level, p.id(), v);
    }
    let y = f();
    let t = tangent_in(frame.level, y.id()).unwrap_or_else(|| Var::constant(y.data().zeros_like()));
    drop(frame);
    finish(y, t)
}

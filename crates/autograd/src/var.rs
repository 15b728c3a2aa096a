//! [`Var`]: a value that remembers how it was computed. A `param` is a trainable leaf with a
//! stable identity; a constant is untracked; every operation on a tracked value records its
//! inputs in the result, and the graph is freed when the last `Var` pointing into it drops.

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use flux_tensor::{DType, Shape, Tensor};

use crate::forward;
use crate::op::Op;
use crate::shared::Shared;
use crate::tape;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Ids are handed out to each thread in blocks, so making a value costs no atomic operation.
/// Within a thread, values made later have larger ids.
const ID_BLOCK: u64 = 1024;

thread_local! {
    /// The next id of this thread's block and the block's end.
    static IDS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

#[inline]
fn fresh_id() -> u64 {
    IDS.with(|ids| {
        let (next, end) = ids.get();
        if next < end {
            ids.set((next + 1, end));
            next
        } else {
            let start = NEXT_ID.fetch_add(ID_BLOCK, Ordering::Relaxed);
            ids.set((start + 1, start + ID_BLOCK));
            start
        }
    })
}

/// What a node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Untracked: gradients never flow into it.
    Constant,
    /// A trainable parameter (`param`): tracked, updated in place.
    Param,
    /// A leaf made by `gradient` for the point it differentiates at.
    Leaf,
    /// The result of a recorded operation.
    Op,
}

pub(crate) struct Node {
    pub(crate) id: u64,
    value: Slot,
    pub(crate) op: Option<Op>,
    pub(crate) kind: Kind,
}

/// Where a node keeps its value: computed values, the points `gradient` differentiates at and
/// temporaries never change, so only params and constants (which a loader or `Recur` may
/// overwrite) pay for a lock. The lock is boxed so that a slot is one tensor wide: a recorded
/// node then fits a 120-byte block with its count (see `shared::BLOCK`).
enum Slot {
    Fixed(Tensor),
    Mutable(Box<RwLock<Tensor>>),
}

impl Slot {
    /// `f` on the value, borrowed: no reference count changes (a parameter's lock is held
    /// while `f` runs).
    #[inline]
    fn with<R>(&self, f: impl FnOnce(&Tensor) -> R) -> R {
        match self {
            Slot::Fixed(t) => f(t),
            Slot::Mutable(l) => f(&l.read().unwrap_or_else(|e| e.into_inner())),
        }
    }
    #[inline]
    fn get(&self) -> Tensor {
        match self {
            Slot::Fixed(t) => t.clone(),
            Slot::Mutable(l) => l.read().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }
    #[inline]
    fn shape(&self) -> Shape {
        match self {
            Slot::Fixed(t) => t.shape().clone(),
            Slot::Mutable(l) => l.read().unwrap_or_else(|e| e.into_inner()).shape().clone(),
        }
    }
    #[inline]
    fn dtype(&self) -> DType {
        match self {
            Slot::Fixed(t) => t.dtype(),
            Slot::Mutable(l) => l.read().unwrap_or_else(|e| e.into_inner()).dtype(),
        }
    }
}

impl Drop for Node {
    /// Frees a long graph iteratively: a chain of a million recorded ops must not overflow the
    /// stack through nested drops.
    fn drop(&mut self) {
        let Some(op) = self.op.take() else { return };
        // Inputs this node held the last reference to are taken apart here, in a loop, instead
        // of by recursive drops. Only those with inputs of their own go on the stack (the
        // others just lose a reference, or are leaves freed at once), so the stack allocates
        // only when a chain is being freed.
        let mut stack: Vec<Var> = Vec::new();
        let keep = |v: Var, stack: &mut Vec<Var>| {
            if v.0.op.is_some() && Shared::count(&v.0) == 1 {
                stack.push(v);
            }
        };
        op.drain_inputs(|v| keep(v, &mut stack));
        while let Some(mut v) = stack.pop() {
            // the last reference: empty the node in place (moving it out would copy it whole);
            // it then drops with no inputs left to recurse into
            if let Some(node) = Shared::get_mut(&mut v.0) {
                if let Some(op) = node.op.take() {
                    op.drain_inputs(|v| keep(v, &mut stack));
                }
            }
        }
    }
}

/// A tracked (or constant) value: Tracker's `TrackedArray`/`TrackedReal`. Cheap to clone (a
/// shared pointer); `Send + Sync`.
///
/// ```
/// use flux_autograd::{param, Var};
/// let w = param(2.0);
/// let y = &w * 4.0 + 3.0;
/// assert_eq!(y.item(), 11.0);
/// assert!(y.is_tracked());
/// assert_eq!(format!("{y}"), "11.0 (tracked)");
/// assert!(!Var::scalar(1.0).is_tracked());
/// ```
#[derive(Clone)]
pub struct Var(pub(crate) Shared<Node>);

impl Var {
    fn make(value: Tensor, op: Option<Op>, kind: Kind) -> Var {
        let fixed = op.is_some() || kind == Kind::Leaf;
        Var::make_in(if fixed { Slot::Fixed(value) } else { Slot::Mutable(Box::new(RwLock::new(value))) }, op, kind)
    }

    #[inline]
    fn make_in(value: Slot, op: Option<Op>, kind: Kind) -> Var {
        Var(Shared::new(Node { id: fresh_id(), value, op, kind }))
    }

    /// An untracked value that nothing will overwrite (a backward rule's constant, an untracked
    /// result inside a gradient call): read without a lock.
    pub(crate) fn temporary(t: Tensor) -> Var {
        Var::make_in(Slot::Fixed(t), None, Kind::Constant)
    }

    /// The untracked result of an op: a [`Var::temporary`] inside a gradient call, else a
    /// constant, which (made outside, as a buffer or an initial state may be) stays writable.
    #[inline]
    fn untracked(value: Tensor) -> Var {
        if tape::depth() > 0 {
            Var::temporary(value)
        } else {
            Var::constant(value)
        }
    }

    /// An untracked value.
    ///
    /// ```
    /// let c = flux_autograd::Var::constant(flux_tensor::Tensor::ones(&[2]));
    /// assert!(!c.is_tracked());
    /// ```
    pub fn constant(t: Tensor) -> Var {
        Var::make(t, None, Kind::Constant)
    }

    /// A 0-d f64 constant.
    ///
    /// ```
    /// assert_eq!(flux_autograd::Var::scalar(2.0).item(), 2.0);
    /// ```
    pub fn scalar(x: f64) -> Var {
        Var::constant(Tensor::scalar(x))
    }

    /// A trainable parameter (see [`crate::param`]).
    pub(crate) fn new_param(t: Tensor) -> Var {
        Var::make(t, None, Kind::Param)
    }

    /// A fresh tracked leaf (what `gradient` differentiates with respect to).
    pub(crate) fn new_leaf(t: Tensor) -> Var {
        Var::make(t, None, Kind::Leaf)
    }

    /// Records `op` producing `value` if recording is on and some input is tracked; otherwise a
    /// constant. Every differentiable operation ends here.
    pub(crate) fn from_op(value: Tensor, op: Op) -> Var {
        if forward::active() {
            return Var::from_op_forward(value, op);
        }
        if tape::recording() && op.any_input_tracked() {
            Var::make(value, Some(op), Kind::Op)
        } else {
            Var::untracked(value)
        }
    }

    /// [`Var::from_op`] while a `jvp` is running: the new value also gets its tangents, unless
    /// recording is off (`no_grad` makes constants, for forward mode as for reverse mode).
    #[cold]
    fn from_op_forward(value: Tensor, op: Op) -> Var {
        if !tape::recording() {
            return Var::untracked(value);
        }
        if op.any_input_tracked() {
            let y = Var::make(value, Some(op), Kind::Op);
            forward::propagate(y.op().expect("just recorded"), &y);
            y
        } else {
            let y = Var::untracked(value);
            forward::propagate(&op, &y);
            y
        }
    }

    /// Records `op` producing `value` without computing tangents (a checkpoint copies its
    /// tangents from the pass that computed it instead).
    pub(crate) fn from_op_untangented(value: Tensor, op: Op) -> Var {
        Var::make(value, Some(op), Kind::Op)
    }

    /// The id the next value made on this thread will have at least: values this thread makes
    /// later have larger ids (another thread's may not).
    pub(crate) fn next_id() -> u64 {
        let (next, end) = IDS.with(Cell::get);
        if next < end {
            next
        } else {
            NEXT_ID.load(Ordering::Relaxed)
        }
    }

    /// Stable identity of this value (what `Params` and `Grads` key on).
    ///
    /// ```
    /// let w = flux_autograd::param(1.0);
    /// assert_eq!(w.id(), w.clone().id());
    /// ```
    #[inline]
    pub fn id(&self) -> u64 {
        self.0.id
    }

    /// Do gradients flow through this value?
    ///
    /// ```
    /// assert!(flux_autograd::param(1.0).is_tracked());
    /// ```
    #[inline]
    pub fn is_tracked(&self) -> bool {
        self.0.kind != Kind::Constant
    }

    /// Is this a trainable parameter made by [`crate::param`]?
    ///
    /// ```
    /// assert!(flux_autograd::param(1.0).is_param());
    /// assert!(!flux_autograd::Var::scalar(1.0).is_param());
    /// ```
    pub fn is_param(&self) -> bool {
        self.0.kind == Kind::Param
    }

    /// Is this a leaf (a constant, a parameter, or a point being differentiated at)?
    ///
    /// ```
    /// let w = flux_autograd::param(1.0);
    /// assert!(w.is_leaf());
    /// assert!(!(&w + 1.0).is_leaf());
    /// ```
    pub fn is_leaf(&self) -> bool {
        self.0.op.is_none()
    }

    pub(crate) fn op(&self) -> Option<&Op> {
        self.0.op.as_ref()
    }

    /// The current value (Tracker's `data(x)`); a cheap clone sharing storage.
    ///
    /// ```
    /// let w = flux_autograd::param(2.0);
    /// assert_eq!(w.data().item(), 2.0);
    /// ```
    #[inline]
    pub fn data(&self) -> Tensor {
        self.0.value.get()
    }

    /// `f` on the values of `a` and `b`, borrowed where that takes at most one lock: a
    /// parameter's or constant's value is behind a lock, and two held at once could deadlock
    /// (two threads taking them in opposite orders, each with a writer queued), so when both
    /// are locked one is cloned instead.
    #[inline]
    pub(crate) fn with_data2<R>(a: &Var, b: &Var, f: impl FnOnce(&Tensor, &Tensor) -> R) -> R {
        match (&a.0.value, &b.0.value) {
            (Slot::Fixed(ta), _) => b.with_data(|tb| f(ta, tb)),
            (_, Slot::Fixed(tb)) => a.with_data(|ta| f(ta, tb)),
            _ => {
                let tb = b.data();
                a.with_data(|ta| f(ta, &tb))
            }
        }
    }

    /// Are both the same node (not merely equal values)?
    #[inline]
    pub(crate) fn same_node(&self, other: &Var) -> bool {
        Shared::ptr_eq(&self.0, &other.0)
    }

    /// `f` on the current value, borrowed instead of cloned (what an op's forward kernel
    /// reads: a clone costs two atomic reference count changes, a third of a small op's
    /// bookkeeping). `f` must not write this value (a parameter's lock is held meanwhile).
    #[inline]
    pub(crate) fn with_data<R>(&self, f: impl FnOnce(&Tensor) -> R) -> R {
        self.0.value.with(f)
    }

    /// Replaces the value of a leaf in place (what `update` and dtype conversion use). The shape
    /// may change only through [`Var::set_data_unchecked`]. Panics for non-leaves or a shape
    /// change: recorded results must keep the value they were computed with. Also panics for
    /// the values a gradient call fixes while it runs (its own input leaf, and results of
    /// untracked ops made inside it), which it reads without a lock.
    ///
    /// ```
    /// let w = flux_autograd::param(2.0);
    /// w.set_data(flux_tensor::Tensor::scalar(5.0));
    /// assert_eq!(w.item(), 5.0);
    /// ```
    pub fn set_data(&self, t: Tensor) {
        let old = self.shape();
        assert!(t.shape() == &old, "set_data: new value has shape {:?}, the value {:?}", t.shape(), old);
        self.set_data_unchecked(t);
    }

    /// Replaces the value of a leaf, allowing any shape (used by `Recur` state and loaders that
    /// validated shapes already). Panics for non-leaves.
    ///
    /// ```
    /// let w = flux_autograd::param(2.0);
    /// w.set_data_unchecked(flux_tensor::Tensor::zeros(&[3]));
    /// assert_eq!(w.shape(), &[3]);
    /// ```
    pub fn set_data_unchecked(&self, t: Tensor) {
        match &self.0.value {
            Slot::Mutable(l) => *l.write().unwrap_or_else(|e| e.into_inner()) = t,
            Slot::Fixed(_) => panic!("set_data: only a param or a constant (not a computed value) can change its value in place"),
        }
    }

    /// The same value with no history: an untracked constant.
    ///
    /// ```
    /// let w = flux_autograd::param(2.0);
    /// assert!(!w.detach().is_tracked());
    /// ```
    pub fn detach(&self) -> Var {
        Var::constant(self.data())
    }

    /// The value of a one-element Var as f64. Panics otherwise.
    ///
    /// ```
    /// assert_eq!(flux_autograd::Var::scalar(3.0).item(), 3.0);
    /// ```
    pub fn item(&self) -> f64 {
        self.data().item()
    }

    /// The dimensions (a `Shape`, which derefs to `&[usize]`).
    ///
    /// ```
    /// let v = flux_autograd::Var::from(flux_tensor::Tensor::zeros(&[2, 3]));
    /// assert_eq!(v.shape(), &[2, 3]);
    /// ```
    pub fn shape(&self) -> Shape {
        self.0.value.shape()
    }

    /// The element type.
    ///
    /// ```
    /// assert_eq!(flux_autograd::Var::scalar(1.0).dtype(), flux_tensor::DType::F64);
    /// ```
    pub fn dtype(&self) -> DType {
        self.0.value.dtype()
    }

    /// Number of dimensions.
    ///
    /// ```
    /// assert_eq!(flux_autograd::Var::scalar(1.0).rank(), 0);
    /// ```
    pub fn rank(&self) -> usize {
        self.shape().rank()
    }

    /// Number of elements.
    ///
    /// ```
    /// assert_eq!(flux_autograd::Var::scalar(1.0).numel(), 1);
    /// ```
    pub fn numel(&self) -> usize {
        self.shape().numel()
    }

    /// All elements as f64, column-major.
    ///
    /// ```
    /// assert_eq!(flux_autograd::Var::scalar(1.0).to_vec(), vec![1.0]);
    /// ```
    pub fn to_vec(&self) -> Vec<f64> {
        self.data().to_vec()
    }

    /// A short name for what produced this value (`"param"`, `"const"`, or the op's name).
    ///
    /// ```
    /// let w = flux_autograd::param(1.0);
    /// assert_eq!((&w * &w).op_name(), "mul");
    /// ```
    pub fn op_name(&self) -> &'static str {
        match (&self.0.op, self.0.kind) {
            (Some(op), _) => op.name(),
            (None, Kind::Param) => "param",
            (None, Kind::Leaf) => "leaf",
            _ => "const",
        }
    }

    /// The compact form used inside `Params(...)`: `Float32[0.1, 0.2] (tracked)`.
    ///
    /// ```
    /// let w = flux_autograd::param(flux_tensor::Tensor::zeros(&[2]));
    /// assert_eq!(w.inline(), "[0.0, 0.0] (tracked)");
    /// ```
    pub fn inline(&self) -> String {
        let s = self.data().inline();
        if self.is_tracked() {
            format!("{s} (tracked)")
        } else {
            s
        }
    }
}

/// Makes a trainable parameter from a number or a tensor (Flux's `param`): a tracked leaf with a
/// stable identity whose value [`crate::update`] changes in place.
///
/// ```
/// use flux_autograd::param;
/// let w = param(2.0);
/// let b = param(flux_tensor::Tensor::zeros(&[3]));
/// assert!(w.is_param() && b.is_param());
/// ```
pub fn param(x: impl Into<Tensor>) -> Var {
    Var::new_param(x.into())
}

impl From<Tensor> for Var {
    fn from(t: Tensor) -> Var {
        Var::constant(t)
    }
}

impl From<&Tensor> for Var {
    fn from(t: &Tensor) -> Var {
        Var::constant(t.clone())
    }
}

impl From<f64> for Var {
    fn from(x: f64) -> Var {
        Var::scalar(x)
    }
}

impl From<f32> for Var {
    fn from(x: f32) -> Var {
        Var::constant(Tensor::from(x))
    }
}

impl fmt::Display for Var {
    /// `14.0 (tracked)` for a tracked scalar; arrays print like Tracker's
    /// `Tracked 2-element Vector{Float64}:` followed by the values.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.data();
        match (t.rank(), self.is_tracked()) {
            (0, true) => write!(f, "{t} (tracked)"),
            (_, true) => write!(f, "Tracked {t}"),
            _ => write!(f, "{t}"),
        }
    }
}

impl fmt::Debug for Var {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Var({}, {:?})", self.op_name(), self.data())
    }
}

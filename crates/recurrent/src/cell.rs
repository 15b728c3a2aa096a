//! [`RecurrentCell`]: a pure step function `(state, x) -> (state, y)`, and [`RecurrentState`],
//! the state types cells carry (a `Var`, or a pair `(h, c)` for the LSTM).

use std::fmt;

use flux_autograd::Var;
use flux_layers::{LayerError, Walker};

/// A recurrent state: one `Var` (RNN, GRU, hand-written cells) or a pair of them (LSTM's
/// `(h, c)`). `Recur` uses it to fit the state to the batch, to detach it (`truncate`) and to
/// declare `init` to traversals.
///
/// ```
/// use flux_autograd::Var;
/// use flux_recurrent::RecurrentState;
/// let s = (Var::scalar(1.0), Var::scalar(2.0));
/// assert_eq!(s.vars().len(), 2);
/// let back = <(Var, Var)>::from_vars(s.vars());
/// assert_eq!(back.1.item(), 2.0);
/// ```
pub trait RecurrentState: Clone + Send + Sync + 'static {
    /// The state's values, in a fixed order.
    fn vars(&self) -> Vec<Var>;
    /// Rebuilds a state from values in the order of [`RecurrentState::vars`].
    fn from_vars(vars: Vec<Var>) -> Self;
    /// Names of the values under a traversal path (`init`, or `init.h`, `init.c`).
    fn names() -> &'static [&'static str];

    /// Applies `f` to every value.
    ///
    /// ```
    /// use flux_autograd::{param, Var};
    /// use flux_recurrent::RecurrentState;
    /// let s = (param(1.0), param(2.0));
    /// let d = s.map_vars(|v| v.detach());
    /// assert!(!d.0.is_tracked() && !d.1.is_tracked());
    /// ```
    fn map_vars(&self, mut f: impl FnMut(&Var) -> Var) -> Self {
        Self::from_vars(self.vars().iter().map(&mut f).collect())
    }
}

impl RecurrentState for Var {
    fn vars(&self) -> Vec<Var> {
        vec![self.clone()]
    }
    fn from_vars(mut vars: Vec<Var>) -> Self {
        assert_eq!(vars.len(), 1, "a Var state is one value");
        vars.remove(0)
    }
    fn names() -> &'static [&'static str] {
        &["init"]
    }
}

impl RecurrentState for (Var, Var) {
    fn vars(&self) -> Vec<Var> {
        vec![self.0.clone(), self.1.clone()]
    }
    fn from_vars(vars: Vec<Var>) -> Self {
        assert_eq!(vars.len(), 2, "a pair state is two values");
        let mut it = vars.into_iter();
        (it.next().unwrap(), it.next().unwrap())
    }
    fn names() -> &'static [&'static str] {
        &["init.h", "init.c"]
    }
}

/// A recurrent cell: a stateless step `(state, x) -> (state', y)`, Flux's `cell(h, x)`.
/// [`crate::Recur`] wraps one to keep the state between calls.
///
/// Implemented by [`crate::RNNCell`], [`crate::LSTMCell`], [`crate::GRUCell`] and by every
/// closure `Fn(&Var, &Var) -> (Var, Var) + Send + Sync` (the seed's hand-written `rnn`). It is
/// not called `Cell` so that it never shadows `std::cell::Cell`.
///
/// ```
/// use flux_autograd::Var;
/// use flux_recurrent::RecurrentCell;
/// use flux_tensor::Tensor;
/// // a cell that sums its inputs
/// let acc = |h: &Var, x: &Var| { let h = h + x; (h.clone(), h) };
/// let (h, y) = acc.step(&Var::scalar(1.0), &Var::scalar(2.0));
/// assert_eq!((h.item(), y.item()), (3.0, 3.0));
/// let (h, ys) = acc.step_seq(&Var::scalar(0.0), &[Var::scalar(1.0), Var::scalar(2.0)]);
/// assert_eq!(h.item(), 3.0);
/// assert_eq!(ys.len(), 2);
/// # let _ = Tensor::zeros(&[1]);
/// ```
pub trait RecurrentCell: Send + Sync {
    /// What the cell carries from step to step.
    type State: RecurrentState;

    /// One step: the new state and the output.
    fn step(&self, state: &Self::State, x: &Var) -> (Self::State, Var);

    /// Every step of a sequence in order, threading the state. The default folds
    /// [`RecurrentCell::step`]; built-in cells override it with a fused whole-sequence kernel
    /// that gives the same values (to rounding).
    fn step_seq(&self, state: &Self::State, xs: &[Var]) -> (Self::State, Vec<Var>) {
        let mut s = state.clone();
        let mut ys = Vec::with_capacity(xs.len());
        for x in xs {
            let (s2, y) = self.step(&s, x);
            s = s2;
            ys.push(y);
        }
        (s, ys)
    }

    /// Declares the cell's parameters to a traversal. It has no default: a built-in cell
    /// forwards to its derived [`Traverse`](flux_layers::Traverse); a closure declares nothing
    /// (what it captures is its own: declare those parameters yourself if you train them).
    fn visit_params(&self, w: &mut Walker<'_>);

    /// A copy with new parameters of the same values (what `deepcopy` of a `Recur` uses), or
    /// `None` for a cell that declares no parameters (a closure), which the copy then shares.
    /// A cell that declares parameters and returns `None` makes `deepcopy` panic rather than
    /// share them.
    fn deepcopy_cell(&self) -> Option<Self>
    where
        Self: Sized,
    {
        None
    }

    /// Checks an input before a step, so that a `Recur` can return an error naming itself
    /// and the shapes instead of failing inside the step. The default accepts everything.
    fn check_input(&self, _x: &Var) -> Result<(), LayerError> {
        Ok(())
    }

    /// The input in the element type the cell computes in (its weights'). The default keeps
    /// the input as it is.
    fn convert_input(&self, x: &Var) -> Var {
        x.clone()
    }

    /// How the cell prints: `LSTMCell(10 => 15)`; a closure prints `λ`.
    fn fmt_cell(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("λ")
    }
}

/// Any function `(h, x) -> (h', y)` is a cell whose state is one `Var`. It declares no
/// parameters (what it captures is its own), and `deepcopy` of a `Recur` around it shares it.
impl<F: Fn(&Var, &Var) -> (Var, Var) + Send + Sync> RecurrentCell for F {
    type State = Var;
    fn step(&self, state: &Var, x: &Var) -> (Var, Var) {
        self(state, x)
    }
    fn visit_params(&self, _w: &mut Walker<'_>) {}
}

//! [`Recur`]: the stateful wrapper around a cell, and the [`RNN`], [`LSTM`], [`GRU`]
//! constructors.

use std::fmt;
use std::sync::{Mutex, MutexGuard};

use flux_autograd::Var;
use flux_layers::{Layer, Stateful, Walker};

use crate::cell::{RecurrentCell, RecurrentState};
use crate::cells::{GRUCell, LSTMCell, RNNCell};

/// A cell made stateful (Flux's `Recur`): it owns the cell, the initial state `init` and the
/// current state. Each `forward` runs one step from the current state, stores the new state and
/// returns the output; `forward_seq` runs a whole sequence (through the cell's fused kernel
/// when it has one). `&self` is enough (the state sits behind a mutex), so a `Recur` works
/// inside a `Chain` and stays `Send + Sync`.
///
/// - **State follows the batch.** An `[out]` state meeting a batch `[in, N]` is broadcast to
///   `[out, N]`. When a batched state meets a batch of another size, the state restarts from
///   `init` (fitted to the new batch): the old state belonged to other sequences. No manual
///   `reset` is needed (Flux #121, #811).
/// - **`init` is not trained** by default: it is declared to traversals as a buffer (saved,
///   converted with the model, never in `params`). To learn the initial state, pass a
///   parameter, `Recur::new(cell, param(h0))`: it is then declared as a param (path `init`),
///   and `reset` puts the parameter itself back as the state so gradients reach it.
/// - `reset(&model)` sets the state to `init`; `truncate(&model)` keeps the state's value but
///   drops its gradient history (truncated backprop through time).
///
/// ```
/// use flux_autograd::Var;
/// use flux_layers::{reset, Layer};
/// use flux_recurrent::{RNNCell, Recur};
/// use flux_tensor::Tensor;
/// let m = Recur::new(RNNCell::new(10, 5), Var::from(Tensor::zeros(&[5])));
/// assert_eq!(m.to_string(), "Recur(RNNCell(10 => 5, tanh))");
/// let y = m.forward(&Var::from(Tensor::rand(&[10])));
/// assert_eq!(m.state().to_vec(), y.to_vec());
/// let yb = m.forward(&Var::from(Tensor::rand(&[10, 3]))); // the state broadcasts to the batch
/// assert_eq!(yb.shape(), &[5, 3]);
/// reset(&m);
/// assert_eq!(m.state().to_vec(), vec![0.0; 5]);
/// ```
pub struct Recur<C: RecurrentCell> {
    cell: C,
    init: C::State,
    state: Mutex<C::State>,
}

impl<C: RecurrentCell> Recur<C> {
    /// Wraps `cell` starting from `init`. A parameter in `init` makes the initial state learned
    /// (see the type's docs); any other value is copied as an untracked constant.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// use flux_recurrent::Recur;
    /// let rnn = |h: &Var, x: &Var| { let h = (h + x).tanh(); (h.clone(), h) };
    /// let m = Recur::new(rnn, Var::scalar(0.0));
    /// assert_eq!(m.to_string(), "Recur(λ)");
    /// ```
    pub fn new(cell: C, init: C::State) -> Recur<C> {
        let init = init.map_vars(|v| if v.is_param() { v.clone() } else { Var::constant(v.data()) });
        Recur { cell, state: Mutex::new(init.clone()), init }
    }

    /// The current state (Flux's `m.state`).
    ///
    /// ```
    /// let m = flux_recurrent::LSTM::new(3, 2);
    /// let (h, c) = m.state();
    /// assert_eq!((h.shape().to_vec(), c.shape().to_vec()), (vec![2], vec![2]));
    /// ```
    pub fn state(&self) -> C::State {
        self.lock().clone()
    }

    /// Replaces the current state.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// let m = flux_recurrent::RNN::new(3, 2);
    /// m.set_state(Var::from(flux_tensor::Tensor::ones(&[2])));
    /// assert_eq!(m.state().to_vec(), vec![1.0, 1.0]);
    /// ```
    pub fn set_state(&self, state: C::State) {
        *self.lock() = state;
    }

    /// The initial state (Flux's `m.init`).
    ///
    /// ```
    /// assert_eq!(flux_recurrent::RNN::new(3, 2).init().shape(), &[2]);
    /// ```
    pub fn init(&self) -> &C::State {
        &self.init
    }

    /// The wrapped cell (Flux's `m.cell`).
    ///
    /// ```
    /// assert_eq!(flux_recurrent::GRU::new(3, 2).cell().to_string(), "GRUCell(3 => 2)");
    /// ```
    pub fn cell(&self) -> &C {
        &self.cell
    }

    fn lock(&self) -> MutexGuard<'_, C::State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current state fitted to the batch of `x` (see the type's docs).
    fn fitted(&self, state: &C::State, x: &Var) -> C::State {
        let xs = x.shape();
        if xs.rank() < 2 {
            return state.clone();
        }
        let xb = &xs[1..];
        let vars = state.vars();
        let inits = self.init.vars();
        let fitted: Vec<Var> = vars
            .iter()
            .zip(&inits)
            .map(|(s, init)| {
                let ss = s.shape();
                if ss.rank() == 0 || &ss[1..] == xb {
                    s.clone()
                } else if ss.rank() == 1 {
                    s.broadcast_to(&batched(ss[0], xb))
                } else {
                    // the batch changed: the old state belongs to other sequences
                    let is = init.shape();
                    if is.rank() == 1 {
                        init.broadcast_to(&batched(is[0], xb))
                    } else if &is[1..] == xb || is.rank() == 0 {
                        init.clone()
                    } else {
                        panic!("Recur: the input's batch {xb:?} differs from the state's {:?} and from init's {:?}", &ss[1..], &is[1..])
                    }
                }
            })
            .collect();
        C::State::from_vars(fitted)
    }
}

fn batched(n: usize, batch: &[usize]) -> Vec<usize> {
    let mut s = vec![n];
    s.extend_from_slice(batch);
    s
}

/// Declares a cell's parameters under the child path `cell`.
struct CellParams<'a, C>(&'a C);

impl<C: RecurrentCell> Layer for CellParams<'_, C> {
    fn forward(&self, _x: &Var) -> Var {
        unreachable!("CellParams only carries a traversal")
    }
    fn visit(&self, w: &mut Walker<'_>) {
        self.0.visit_params(w)
    }
}

impl<C: RecurrentCell> Layer for Recur<C> {
    fn forward(&self, x: &Var) -> Var {
        let mut state = self.lock();
        let s = self.fitted(&state, x);
        let (s, y) = self.cell.step(&s, x);
        *state = s;
        y
    }

    /// The whole sequence from the current state, through the cell's fused kernel when it has
    /// one; the state afterwards is the last step's.
    fn forward_seq(&self, xs: &[Var]) -> Vec<Var> {
        let Some(x0) = xs.first() else { return Vec::new() };
        let mut state = self.lock();
        let s = self.fitted(&state, x0);
        let (s, ys) = self.cell.step_seq(&s, xs);
        *state = s;
        ys
    }

    fn visit(&self, w: &mut Walker<'_>) {
        w.child("cell", &CellParams(&self.cell));
        for (v, name) in self.init.vars().iter().zip(C::State::names()) {
            if v.is_param() {
                w.param(name, v);
            } else {
                w.buffer(name, v);
            }
        }
        w.stateful(self);
    }

    fn fmt_layer(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Recur(")?;
        self.cell.fmt_cell(f)?;
        f.write_str(")")
    }
}

impl<C: RecurrentCell> Stateful for Recur<C> {
    fn reset(&self) {
        *self.lock() = self.init.clone();
    }
    fn truncate(&self) {
        let mut state = self.lock();
        *state = state.map_vars(|v| v.detach());
    }
}

impl<C: RecurrentCell> fmt::Display for Recur<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_layer(f)
    }
}

impl<C: RecurrentCell> fmt::Debug for Recur<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_layer(f)
    }
}

/// Builds `Recur(RNNCell(in => out, tanh))` starting from zeros (Flux's `RNN(in, out)`).
///
/// ```
/// let rnn = flux_recurrent::RNN::new(10, 5);
/// assert_eq!(rnn.to_string(), "Recur(RNNCell(10 => 5, tanh))");
/// ```
pub struct RNN;

impl RNN {
    /// `Recur(RNNCell(in => out, tanh))` with a zero `[out]` initial state.
    ///
    /// ```
    /// assert_eq!(flux_recurrent::RNN::new(3, 2).state().shape(), &[2]);
    /// ```
    #[allow(clippy::new_ret_no_self)]
    pub fn new(input: usize, output: usize) -> Recur<RNNCell> {
        let cell = RNNCell::new(input, output);
        let init = cell.zero_state();
        Recur::new(cell, init)
    }
}

/// Builds `Recur(LSTMCell(in => out))` starting from zeros (Flux's `LSTM(in, out)`).
///
/// ```
/// let lstm = flux_recurrent::LSTM::new(10, 15);
/// assert_eq!(lstm.to_string(), "Recur(LSTMCell(10 => 15))");
/// ```
pub struct LSTM;

impl LSTM {
    /// `Recur(LSTMCell(in => out))` with zero `[out]` initial `(h, c)`.
    ///
    /// ```
    /// assert_eq!(flux_recurrent::LSTM::new(3, 2).state().1.shape(), &[2]);
    /// ```
    #[allow(clippy::new_ret_no_self)]
    pub fn new(input: usize, output: usize) -> Recur<LSTMCell> {
        let cell = LSTMCell::new(input, output);
        let init = cell.zero_state();
        Recur::new(cell, init)
    }
}

/// Builds `Recur(GRUCell(in => out))` starting from zeros (Flux's `GRU(in, out)`).
///
/// ```
/// let gru = flux_recurrent::GRU::new(10, 5);
/// assert_eq!(gru.to_string(), "Recur(GRUCell(10 => 5))");
/// ```
pub struct GRU;

impl GRU {
    /// `Recur(GRUCell(in => out))` with a zero `[out]` initial state.
    ///
    /// ```
    /// assert_eq!(flux_recurrent::GRU::new(3, 2).state().shape(), &[2]);
    /// ```
    #[allow(clippy::new_ret_no_self)]
    pub fn new(input: usize, output: usize) -> Recur<GRUCell> {
        let cell = GRUCell::new(input, output);
        let init = cell.zero_state();
        Recur::new(cell, init)
    }
}

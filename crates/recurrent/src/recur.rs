//! [`Recur`]: the stateful wrapper around a cell, and the [`RNN`], [`LSTM`], [`GRU`]
//! constructors.

use std::fmt;
use std::sync::Arc;

use flux_autograd::Var;
use flux_layers::{DeepCopy, Layer, LayerError, Stateful, Traverse, Walker};

use crate::cell::{RecurrentCell, RecurrentState};
use crate::cells::{GRUCell, LSTMCell, RNNCell};
use crate::per_thread::PerThread;

/// A cell made stateful (Flux's `Recur`): it owns the cell, the initial state `init` and the
/// current state. Each `forward` runs one step from the current state, stores the new state and
/// returns the output; `forward_seq` runs a whole sequence (through the cell's fused kernel
/// when it has one). `&self` is enough, so a `Recur` works inside a `Chain` and stays
/// `Send + Sync`.
///
/// - **State belongs to the thread.** Each thread that runs a shared `Recur` (or a model
///   holding one) has its own state, starting from `init`, and gets exactly the serial result;
///   `state()`, `set_state`, `reset` and `truncate` act on the calling thread's state. A
///   thread's state is freed when the thread ends (a thread-local list of the `Recur`s it used
///   removes its entries) or when the `Recur` is dropped.
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
/// - **Explicit state**, modern Flux's form: [`Recur::initial_state`] and
///   [`Recur::forward_state`] run a step from a state you hold, leaving the `Recur`'s own
///   state untouched.
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
    // shared, so that `deepcopy` can share a closure cell it cannot copy
    cell: Arc<C>,
    init: C::State,
    states: PerThread<C::State>,
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
        Recur { cell: Arc::new(cell), init, states: PerThread::new() }
    }

    /// The calling thread's current state (Flux's `m.state`): `init` until this thread has
    /// run a step.
    ///
    /// ```
    /// let m = flux_recurrent::LSTM::new(3, 2);
    /// let (h, c) = m.state();
    /// assert_eq!((h.shape().to_vec(), c.shape().to_vec()), (vec![2], vec![2]));
    /// ```
    pub fn state(&self) -> C::State {
        self.states.get().unwrap_or_else(|| self.init.clone())
    }

    /// Replaces the calling thread's current state.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// let m = flux_recurrent::RNN::new(3, 2);
    /// m.set_state(Var::from(flux_tensor::Tensor::ones(&[2])));
    /// assert_eq!(m.state().to_vec(), vec![1.0, 1.0]);
    /// ```
    pub fn set_state(&self, state: C::State) {
        self.states.set(state);
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

    /// The initial state for a batch of `batch` sequences (modern Flux's `initialstates`):
    /// `init` broadcast to `[out, batch]` (a batch of 0 keeps `init` as it is).
    ///
    /// ```
    /// let m = flux_recurrent::LSTM::new(3, 2);
    /// let (h, c) = m.initial_state(5);
    /// assert_eq!((h.shape().to_vec(), c.shape().to_vec()), (vec![2, 5], vec![2, 5]));
    /// ```
    pub fn initial_state(&self, batch: usize) -> C::State {
        if batch == 0 {
            return self.init.clone();
        }
        self.init.map_vars(|v| {
            let s = v.shape();
            if s.rank() == 1 {
                v.broadcast_to(&[s[0], batch])
            } else {
                v.clone()
            }
        })
    }

    /// One step from an explicit `state` (modern Flux's `layer(x, state)`): the output and the
    /// new state; the `Recur`'s own state is untouched. Errors name the layer and the shapes.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// use flux_tensor::Tensor;
    /// let m = flux_recurrent::GRU::new(3, 2);
    /// let s0 = m.initial_state(4);
    /// let (y, s1) = m.try_forward_state(&Var::from(Tensor::rand(&[3, 4])), &s0).unwrap();
    /// assert_eq!(y.shape(), &[2, 4]);
    /// assert_eq!(s1.to_vec(), y.to_vec());
    /// assert!(m.try_forward_state(&Var::from(Tensor::rand(&[5, 4])), &s0).is_err());
    /// ```
    pub fn try_forward_state(&self, x: &Var, state: &C::State) -> Result<(Var, C::State), LayerError> {
        let x = self.checked(x)?;
        let s = self.fitted(state, &x)?;
        let (s, y) = self.cell.step(&s, &x);
        Ok((y, s))
    }

    /// [`Recur::try_forward_state`], panicking with its message on bad input.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// let m = flux_recurrent::RNN::new(3, 2);
    /// let (y, h) = m.forward_state(&Var::from(flux_tensor::Tensor::rand(&[3])), &m.initial_state(0));
    /// assert_eq!(y.to_vec(), h.to_vec());
    /// ```
    pub fn forward_state(&self, x: &Var, state: &C::State) -> (Var, C::State) {
        self.try_forward_state(x, state).unwrap_or_else(|e| panic!("{e}"))
    }

    /// How many threads hold a state.
    #[cfg(test)]
    pub(crate) fn live_states(&self) -> usize {
        self.states.len()
    }

    /// How it prints, `Recur(LSTMCell(2 => 3))`, for messages.
    fn name(&self) -> String {
        struct Name<'a, C: RecurrentCell>(&'a Recur<C>);
        impl<C: RecurrentCell> fmt::Display for Name<'_, C> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt_recur(f)
            }
        }
        Name(self).to_string()
    }

    fn fmt_recur(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Recur(")?;
        self.cell.fmt_cell(f)?;
        f.write_str(")")
    }

    /// The input checked by the cell (the error relabelled with this layer's name) and
    /// converted to the cell's element type.
    fn checked(&self, x: &Var) -> Result<Var, LayerError> {
        self.cell.check_input(x).map_err(|e| match e {
            LayerError::InputShape { got, expected, .. } => LayerError::InputShape { layer: self.name(), got, expected },
            e => e,
        })?;
        Ok(self.cell.convert_input(x))
    }

    /// A state fitted to the batch of `x` (see the type's docs).
    fn fitted(&self, state: &C::State, x: &Var) -> Result<C::State, LayerError> {
        let xs = x.shape();
        if xs.rank() < 2 {
            return Ok(state.clone());
        }
        let xb = &xs[1..];
        let mut fitted = Vec::new();
        for (s, init) in state.vars().iter().zip(&self.init.vars()) {
            let ss = s.shape();
            let v = if ss.rank() == 0 || &ss[1..] == xb {
                s.clone()
            } else if ss.rank() == 1 {
                s.broadcast_to(&batched(ss[0], xb))
            } else {
                // the batch changed: the old state belongs to other sequences
                let is = init.shape();
                if is.rank() == 1 {
                    init.broadcast_to(&batched(is[0], xb))
                } else if is.rank() == 0 || &is[1..] == xb {
                    init.clone()
                } else {
                    return Err(LayerError::InputShape {
                        layer: self.name(),
                        got: xs.to_vec(),
                        expected: format!("a batch of {:?} (the state's) or {:?} (init's)", &ss[1..], &is[1..]),
                    });
                }
            };
            fitted.push(v);
        }
        Ok(C::State::from_vars(fitted))
    }
}

fn declares_params<C: RecurrentCell>(cell: &C) -> bool {
    struct Any(bool);
    impl flux_layers::Visitor for Any {
        fn param(&mut self, _: &str, _: &Var) {
            self.0 = true
        }
    }
    let mut any = Any(false);
    struct Cell<'a, C>(&'a C);
    impl<C: RecurrentCell> Traverse for Cell<'_, C> {
        fn visit(&self, w: &mut Walker<'_>) {
            self.0.visit_params(w)
        }
    }
    Walker::walk(&Cell(cell), &mut any);
    any.0
}

fn batched(n: usize, batch: &[usize]) -> Vec<usize> {
    let mut s = vec![n];
    s.extend_from_slice(batch);
    s
}

impl<C: RecurrentCell> Traverse for Recur<C> {
    /// The cell's parameters under `cell`, `init` as a buffer (or a param when learned), and
    /// the recurrent state.
    fn visit(&self, w: &mut Walker<'_>) {
        w.nest("cell", |w| self.cell.visit_params(w));
        for (v, name) in self.init.vars().iter().zip(C::State::names()) {
            if v.is_param() {
                w.param(name, v);
            } else {
                w.buffer(name, v);
            }
        }
        w.stateful(self);
    }
}

/// A new cell and `init` with the same values; the copy's state starts from `init` on every
/// thread.
impl<C: RecurrentCell> DeepCopy for Recur<C> {
    fn deepcopy(&self) -> Recur<C> {
        let init = C::State::from_vars(self.init.vars().iter().map(Var::deepcopy).collect());
        let cell = match self.cell.deepcopy_cell() {
            Some(c) => Arc::new(c),
            None if declares_params(&*self.cell) => {
                panic!("deepcopy: {} declares parameters but RecurrentCell::deepcopy_cell returns None", self.name())
            }
            None => self.cell.clone(),
        };
        Recur { cell, init, states: PerThread::new() }
    }
}

impl<C: RecurrentCell + 'static> Layer for Recur<C> {
    fn try_forward(&self, x: &Var) -> Result<Var, LayerError> {
        let (y, s) = self.try_forward_state(x, &self.state())?;
        self.states.set(s);
        Ok(y)
    }

    /// The whole sequence from the current state, through the cell's fused kernel when it has
    /// one; the state afterwards is the last step's.
    fn forward_seq(&self, xs: &[Var]) -> Vec<Var> {
        let Some(x0) = xs.first() else { return Vec::new() };
        let checked: Vec<Var> = xs.iter().map(|x| self.checked(x).unwrap_or_else(|e| panic!("{e}"))).collect();
        let s = self.fitted(&self.state(), x0).unwrap_or_else(|e| panic!("{e}"));
        let (s, ys) = self.cell.step_seq(&s, &checked);
        self.states.set(s);
        ys
    }

    fn fmt_layer(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_recur(f)
    }

    fn deepcopy_layer(&self) -> Option<Box<dyn Layer>> {
        Some(Box::new(self.deepcopy()))
    }
}

impl<C: RecurrentCell> Stateful for Recur<C> {
    fn reset(&self) {
        self.states.clear();
    }
    fn truncate(&self) {
        self.states.update(|s| s.map_vars(|v| v.detach()));
    }
    fn reset_all_threads(&self) {
        self.states.clear_all();
    }
}

impl<C: RecurrentCell> fmt::Display for Recur<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_recur(f)
    }
}

impl<C: RecurrentCell> fmt::Debug for Recur<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_recur(f)
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

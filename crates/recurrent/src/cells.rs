//! The built-in cells: [`RNNCell`], [`LSTMCell`], [`GRUCell`], with their weight layouts.

use std::fmt;

use flux_autograd::{param, Var};
use flux_layers::{cast_like, glorot_uniform, Activation, DeepCopy, LayerError, TorchModule, TorchSource, TorchValue, Traverse, Walker};
use flux_tensor::Tensor;

use crate::cell::RecurrentCell;
use crate::fused;

fn check(layer: &str, ok: bool, reason: impl FnOnce() -> String) -> Result<(), LayerError> {
    if ok {
        Ok(())
    } else {
        Err(LayerError::Config { layer: layer.into(), reason: reason() })
    }
}

/// An input must be `[in]` or `[in, N]` (features first).
fn check_features(cell: &dyn RecurrentCellShow, n_in: usize, x: &Var) -> Result<(), LayerError> {
    let s = x.shape();
    if (s.rank() == 1 || s.rank() == 2) && s[0] == n_in {
        return Ok(());
    }
    Err(LayerError::InputShape { layer: cell.shown(), got: s.to_vec(), expected: format!("[{n_in}] or [{n_in}, N] (features first)") })
}

/// A cell's printed form, for error messages.
trait RecurrentCellShow {
    fn shown(&self) -> String;
}

impl<T: fmt::Display> RecurrentCellShow for T {
    fn shown(&self) -> String {
        self.to_string()
    }
}

fn zeros(n: usize) -> Tensor {
    Tensor::zeros(&[n]).to_f32()
}

// ---------------------------------------------------------------------------------------------
// RNNCell
// ---------------------------------------------------------------------------------------------

/// The plain recurrent cell: `h' = σ.(Wi * x .+ Wh * h .+ b)`, returning `(h', h')`.
///
/// Weights: `Wi: [out, in]` and `Wh: [out, out]` glorot-uniform, `b: [out]` zeros, all f32
/// params (Flux v0.9 initialised `b` with glorot too; zeros is modern Flux's choice). The
/// activation is `tanh` unless given ([`RNNCell::with_activation`]). Input `[in]` or `[in, N]`.
///
/// ```
/// use flux_autograd::Var;
/// use flux_recurrent::{RNNCell, RecurrentCell};
/// use flux_tensor::Tensor;
/// let cell = RNNCell::new(10, 5);
/// assert_eq!(cell.to_string(), "RNNCell(10 => 5, tanh)");
/// let (h, y) = cell.step(&Var::from(Tensor::rand(&[5])), &Var::from(Tensor::rand(&[10])));
/// assert_eq!(h.shape(), &[5]);
/// assert_eq!(h.to_vec(), y.to_vec());
/// ```
#[derive(Traverse)]
#[layer(torch)]
pub struct RNNCell {
    #[layer(rename = "Wi")]
    wi: Var,
    #[layer(rename = "Wh")]
    wh: Var,
    b: Var,
    #[layer(skip)]
    act: Activation,
}

impl RNNCell {
    /// `RNNCell(in => out, tanh)`.
    ///
    /// ```
    /// let c = flux_recurrent::RNNCell::new(3, 2);
    /// assert_eq!(c.wi().shape(), &[2, 3]);
    /// ```
    pub fn new(input: usize, output: usize) -> RNNCell {
        RNNCell::with_activation(input, output, flux_layers::tanh)
    }

    /// `RNNCell(in => out, act)` with another activation.
    ///
    /// ```
    /// let c = flux_recurrent::RNNCell::with_activation(3, 2, flux_layers::relu);
    /// assert_eq!(c.to_string(), "RNNCell(3 => 2, relu)");
    /// ```
    pub fn with_activation<F: Fn(&Var) -> Var + Send + Sync + 'static>(input: usize, output: usize, act: F) -> RNNCell {
        RNNCell {
            wi: param(glorot_uniform(&[output, input])),
            wh: param(glorot_uniform(&[output, output])),
            b: param(zeros(output)),
            act: Activation::new(act),
        }
    }

    /// A cell from given values, used as they are (pass `param(t)` to train them, or the
    /// inputs of a gradient check). Errors unless `Wi: [out, in]`, `Wh: [out, out]`, `b: [out]`.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// use flux_recurrent::RNNCell;
    /// use flux_tensor::Tensor;
    /// let v = |s: &[usize]| Var::from(Tensor::zeros(s));
    /// assert!(RNNCell::from_parts(v(&[2, 3]), v(&[2, 2]), v(&[2]), flux_layers::tanh).is_ok());
    /// assert!(RNNCell::from_parts(v(&[2, 3]), v(&[3, 3]), v(&[2]), flux_layers::tanh).is_err());
    /// ```
    pub fn from_parts<F: Fn(&Var) -> Var + Send + Sync + 'static>(wi: Var, wh: Var, b: Var, act: F) -> Result<RNNCell, LayerError> {
        let (si, sh, sb) = (wi.shape(), wh.shape(), b.shape());
        check("RNNCell", si.rank() == 2 && sh == [si[0], si[0]] && sb == [si[0]], || {
            format!("Wi {si:?} must be [out, in], Wh {sh:?} [out, out] and b {sb:?} [out]")
        })?;
        Ok(RNNCell { wi, wh, b, act: Activation::new(act) })
    }

    /// Input weight `Wi`, `[out, in]`.
    ///
    /// ```
    /// assert!(flux_recurrent::RNNCell::new(3, 2).wi().is_param());
    /// ```
    pub fn wi(&self) -> &Var {
        &self.wi
    }

    /// Recurrent weight `Wh`, `[out, out]`.
    ///
    /// ```
    /// assert_eq!(flux_recurrent::RNNCell::new(3, 2).wh().shape(), &[2, 2]);
    /// ```
    pub fn wh(&self) -> &Var {
        &self.wh
    }

    /// Bias `b`, `[out]`.
    ///
    /// ```
    /// assert_eq!(flux_recurrent::RNNCell::new(3, 2).b().to_vec(), vec![0.0, 0.0]);
    /// ```
    pub fn b(&self) -> &Var {
        &self.b
    }

    /// The zero state `[out]` (f32), what `RNN::new` starts from.
    ///
    /// ```
    /// assert_eq!(flux_recurrent::RNNCell::new(3, 2).zero_state().shape(), &[2]);
    /// ```
    pub fn zero_state(&self) -> Var {
        Var::constant(zeros(self.wi.shape()[0]))
    }
}

impl RecurrentCell for RNNCell {
    type State = Var;
    fn step(&self, h: &Var, x: &Var) -> (Var, Var) {
        let h = self.act.apply(&(self.wi.matmul(x) + self.wh.matmul(h) + &self.b));
        (h.clone(), h)
    }
    fn visit_params(&self, w: &mut Walker<'_>) {
        self.visit(w)
    }
    fn deepcopy_cell(&self) -> Option<Self> {
        Some(self.deepcopy())
    }
    fn check_input(&self, x: &Var) -> Result<(), LayerError> {
        check_features(self, self.wi.shape()[1], x)
    }
    fn convert_input(&self, x: &Var) -> Var {
        cast_like(x, &self.wi)
    }
    fn fmt_cell(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RNNCell({} => {}, {})", self.wi.shape()[1], self.wi.shape()[0], self.act.name())
    }
}

// ---------------------------------------------------------------------------------------------
// LSTMCell
// ---------------------------------------------------------------------------------------------

/// The long short-term memory cell. State `(h, c)`; output `h'`.
///
/// Layout (Flux's and cuDNN's): the four gates are stacked in the order **input, forget, cell
/// (candidate), output** in one input weight `Wi: [4out, in]`, one recurrent weight
/// `Wh: [4out, out]` and one bias `b: [4out]`: rows `0..out` are the input gate, `out..2out`
/// the forget gate, `2out..3out` the candidate, `3out..4out` the output gate. With
/// `z = Wi*x .+ Wh*h .+ b`:
///
/// ```text
/// i = σ(z[input]); f = σ(z[forget]); g = tanh(z[cell]); o = σ(z[output])
/// c' = f .* c .+ i .* g;   h' = o .* tanh(c')
/// ```
///
/// Initialisation: `Wi`, `Wh` glorot-uniform; `b` zeros **except the forget-gate block, which
/// starts at 1** (as Flux v0.8-v0.14 did, so that the cell remembers by default). All f32.
///
/// [`RecurrentCell::step_seq`] runs a fused whole-sequence kernel (one GEMM for the input
/// projection of every step, one GEMM and one fused gate pass per step, fused backprop through
/// time), giving the same values as stepping one at a time.
///
/// ```
/// use flux_autograd::Var;
/// use flux_recurrent::{LSTMCell, RecurrentCell};
/// use flux_tensor::Tensor;
/// let cell = LSTMCell::new(10, 15);
/// assert_eq!(cell.to_string(), "LSTMCell(10 => 15)");
/// assert_eq!(cell.wi().shape(), &[60, 10]);
/// assert_eq!(cell.b().to_vec()[15], 1.0); // forget-gate bias
/// let ((h, c), y) = cell.step(&cell.zero_state(), &Var::from(Tensor::rand(&[10, 4])));
/// assert_eq!((h.shape().to_vec(), c.shape().to_vec(), y.shape().to_vec()), (vec![15, 4], vec![15, 4], vec![15, 4]));
/// ```
#[derive(Traverse)]
#[layer(torch)]
pub struct LSTMCell {
    #[layer(rename = "Wi")]
    wi: Var,
    #[layer(rename = "Wh")]
    wh: Var,
    b: Var,
}

impl LSTMCell {
    /// `LSTMCell(in => out)`.
    ///
    /// ```
    /// assert_eq!(flux_recurrent::LSTMCell::new(3, 2).wh().shape(), &[8, 2]);
    /// ```
    pub fn new(input: usize, output: usize) -> LSTMCell {
        let mut b = vec![0.0f32; 4 * output];
        b[output..2 * output].fill(1.0);
        LSTMCell {
            wi: param(glorot_uniform(&[4 * output, input])),
            wh: param(glorot_uniform(&[4 * output, output])),
            b: param(Tensor::from_vec(b, &[4 * output])),
        }
    }

    /// A cell from given values, used as they are (pass `param(t)` to train them, or the
    /// inputs of a gradient check). Errors unless `Wi: [4out, in]`, `Wh: [4out, out]`,
    /// `b: [4out]`.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// use flux_recurrent::LSTMCell;
    /// use flux_tensor::Tensor;
    /// let v = |s: &[usize]| Var::from(Tensor::zeros(s));
    /// assert!(LSTMCell::from_parts(v(&[8, 3]), v(&[8, 2]), v(&[8])).is_ok());
    /// assert!(LSTMCell::from_parts(v(&[6, 3]), v(&[6, 2]), v(&[6])).is_err());
    /// ```
    pub fn from_parts(wi: Var, wh: Var, b: Var) -> Result<LSTMCell, LayerError> {
        let (si, sh, sb) = (wi.shape(), wh.shape(), b.shape());
        check("LSTMCell", si.rank() == 2 && si[0] % 4 == 0 && sh == [si[0], si[0] / 4] && sb == [si[0]], || {
            format!("Wi {si:?} must be [4out, in], Wh {sh:?} [4out, out] and b {sb:?} [4out]")
        })?;
        Ok(LSTMCell { wi, wh, b })
    }

    /// Input weight `Wi`, `[4out, in]`, gates input, forget, cell, output.
    ///
    /// ```
    /// assert_eq!(flux_recurrent::LSTMCell::new(3, 2).wi().shape(), &[8, 3]);
    /// ```
    pub fn wi(&self) -> &Var {
        &self.wi
    }

    /// Recurrent weight `Wh`, `[4out, out]`.
    ///
    /// ```
    /// assert_eq!(flux_recurrent::LSTMCell::new(3, 2).wh().shape(), &[8, 2]);
    /// ```
    pub fn wh(&self) -> &Var {
        &self.wh
    }

    /// Bias `b`, `[4out]` (forget-gate block initialised to 1).
    ///
    /// ```
    /// assert_eq!(flux_recurrent::LSTMCell::new(3, 1).b().to_vec(), vec![0.0, 1.0, 0.0, 0.0]);
    /// ```
    pub fn b(&self) -> &Var {
        &self.b
    }

    /// Hidden size `out`.
    ///
    /// ```
    /// assert_eq!(flux_recurrent::LSTMCell::new(3, 2).hidden_size(), 2);
    /// ```
    pub fn hidden_size(&self) -> usize {
        self.wh.shape()[1]
    }

    /// The zero state `(h, c)`, each `[out]` (f32), what `LSTM::new` starts from.
    ///
    /// ```
    /// let (h, c) = flux_recurrent::LSTMCell::new(3, 2).zero_state();
    /// assert_eq!((h.shape().to_vec(), c.shape().to_vec()), (vec![2], vec![2]));
    /// ```
    pub fn zero_state(&self) -> (Var, Var) {
        let n = self.hidden_size();
        (Var::constant(zeros(n)), Var::constant(zeros(n)))
    }
}

/// One LSTM step with differentiable ops (the reference the fused kernel is checked against,
/// and what its nested backward differentiates).
pub(crate) fn lstm_step(wi: &Var, wh: &Var, b: &Var, h: &Var, c: &Var, x: &Var) -> (Var, Var) {
    let n = wh.shape()[1];
    let z = wi.matmul(x) + wh.matmul(h) + b;
    let i = z.slice(0, 0..n).sigmoid();
    let f = z.slice(0, n..2 * n).sigmoid();
    let g = z.slice(0, 2 * n..3 * n).tanh();
    let o = z.slice(0, 3 * n..4 * n).sigmoid();
    let c = &f * c + &i * &g;
    let h = &o * &c.tanh();
    (h, c)
}

impl RecurrentCell for LSTMCell {
    type State = (Var, Var);
    fn step(&self, (h, c): &(Var, Var), x: &Var) -> ((Var, Var), Var) {
        let (h, c) = lstm_step(&self.wi, &self.wh, &self.b, h, c, x);
        ((h.clone(), c), h)
    }
    fn step_seq(&self, state: &(Var, Var), xs: &[Var]) -> ((Var, Var), Vec<Var>) {
        match fused::lstm_seq(&self.wi, &self.wh, &self.b, &state.0, &state.1, xs) {
            Some(r) => r,
            None => {
                let mut s = state.clone();
                let ys = xs
                    .iter()
                    .map(|x| {
                        let (s2, y) = self.step(&s, x);
                        s = s2;
                        y
                    })
                    .collect();
                (s, ys)
            }
        }
    }
    fn visit_params(&self, w: &mut Walker<'_>) {
        self.visit(w)
    }
    fn deepcopy_cell(&self) -> Option<Self> {
        Some(self.deepcopy())
    }
    fn check_input(&self, x: &Var) -> Result<(), LayerError> {
        check_features(self, self.wi.shape()[1], x)
    }
    fn convert_input(&self, x: &Var) -> Var {
        cast_like(x, &self.wi)
    }
    fn fmt_cell(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LSTMCell({} => {})", self.wi.shape()[1], self.hidden_size())
    }
}

// ---------------------------------------------------------------------------------------------
// GRUCell
// ---------------------------------------------------------------------------------------------

/// The gated recurrent unit, in PyTorch's layout. State `h`; output `h'`.
///
/// Gates are stacked in the order **reset, update, new** in `Wi: [3out, in]`, `Wh: [3out, out]`
/// and two biases `bi: [3out]`, `bh: [3out]` (PyTorch's `b_ih`, `b_hh`), rows `0..out` reset,
/// `out..2out` update, `2out..3out` new. The reset gate multiplies the recurrent term *after*
/// its matrix product (cuDNN's and PyTorch's form, also Flux's):
///
/// ```text
/// r = σ(Wi_r x + bi_r + Wh_r h + bh_r);  z = σ(Wi_z x + bi_z + Wh_z h + bh_z)
/// n = tanh(Wi_n x + bi_n + r .* (Wh_n h + bh_n));  h' = (1 .- z) .* n .+ z .* h
/// ```
///
/// Initialisation: weights glorot-uniform, biases zeros, f32.
///
/// ```
/// use flux_autograd::Var;
/// use flux_recurrent::{GRUCell, RecurrentCell};
/// use flux_tensor::Tensor;
/// let cell = GRUCell::new(10, 5);
/// assert_eq!(cell.to_string(), "GRUCell(10 => 5)");
/// let (h, y) = cell.step(&cell.zero_state(), &Var::from(Tensor::rand(&[10, 3])));
/// assert_eq!(h.shape(), &[5, 3]);
/// # let _ = y;
/// ```
#[derive(Traverse)]
#[layer(torch)]
pub struct GRUCell {
    #[layer(rename = "Wi")]
    wi: Var,
    #[layer(rename = "Wh")]
    wh: Var,
    bi: Var,
    bh: Var,
}

impl GRUCell {
    /// `GRUCell(in => out)`.
    ///
    /// ```
    /// assert_eq!(flux_recurrent::GRUCell::new(3, 2).wi().shape(), &[6, 3]);
    /// ```
    pub fn new(input: usize, output: usize) -> GRUCell {
        GRUCell {
            wi: param(glorot_uniform(&[3 * output, input])),
            wh: param(glorot_uniform(&[3 * output, output])),
            bi: param(zeros(3 * output)),
            bh: param(zeros(3 * output)),
        }
    }

    /// A cell from given values, used as they are. Errors unless `Wi: [3out, in]`,
    /// `Wh: [3out, out]`, `bi`, `bh: [3out]`.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// use flux_recurrent::GRUCell;
    /// use flux_tensor::Tensor;
    /// let v = |s: &[usize]| Var::from(Tensor::zeros(s));
    /// assert!(GRUCell::from_parts(v(&[6, 3]), v(&[6, 2]), v(&[6]), v(&[6])).is_ok());
    /// assert!(GRUCell::from_parts(v(&[6, 3]), v(&[6, 2]), v(&[6]), v(&[2])).is_err());
    /// ```
    pub fn from_parts(wi: Var, wh: Var, bi: Var, bh: Var) -> Result<GRUCell, LayerError> {
        let (si, sh, sb, sc) = (wi.shape(), wh.shape(), bi.shape(), bh.shape());
        check("GRUCell", si.rank() == 2 && si[0] % 3 == 0 && sh == [si[0], si[0] / 3] && sb == [si[0]] && sc == [si[0]], || {
            format!("Wi {si:?} must be [3out, in], Wh {sh:?} [3out, out], bi {sb:?} and bh {sc:?} [3out]")
        })?;
        Ok(GRUCell { wi, wh, bi, bh })
    }

    /// Input weight `Wi`, `[3out, in]`, gates reset, update, new.
    ///
    /// ```
    /// assert!(flux_recurrent::GRUCell::new(3, 2).wi().is_param());
    /// ```
    pub fn wi(&self) -> &Var {
        &self.wi
    }

    /// Recurrent weight `Wh`, `[3out, out]`.
    ///
    /// ```
    /// assert_eq!(flux_recurrent::GRUCell::new(3, 2).wh().shape(), &[6, 2]);
    /// ```
    pub fn wh(&self) -> &Var {
        &self.wh
    }

    /// Input bias `bi` (PyTorch's `b_ih`), `[3out]`.
    ///
    /// ```
    /// assert_eq!(flux_recurrent::GRUCell::new(3, 2).bi().shape(), &[6]);
    /// ```
    pub fn bi(&self) -> &Var {
        &self.bi
    }

    /// Recurrent bias `bh` (PyTorch's `b_hh`), `[3out]`.
    ///
    /// ```
    /// assert_eq!(flux_recurrent::GRUCell::new(3, 2).bh().shape(), &[6]);
    /// ```
    pub fn bh(&self) -> &Var {
        &self.bh
    }

    /// Hidden size `out`.
    ///
    /// ```
    /// assert_eq!(flux_recurrent::GRUCell::new(3, 2).hidden_size(), 2);
    /// ```
    pub fn hidden_size(&self) -> usize {
        self.wh.shape()[1]
    }

    /// The zero state `[out]` (f32), what `GRU::new` starts from.
    ///
    /// ```
    /// assert_eq!(flux_recurrent::GRUCell::new(3, 2).zero_state().shape(), &[2]);
    /// ```
    pub fn zero_state(&self) -> Var {
        Var::constant(zeros(self.hidden_size()))
    }
}

impl RecurrentCell for GRUCell {
    type State = Var;
    fn step(&self, h: &Var, x: &Var) -> (Var, Var) {
        let n = self.hidden_size();
        let gx = self.wi.matmul(x) + &self.bi;
        let gh = self.wh.matmul(h) + &self.bh;
        let r = (gx.slice(0, 0..n) + gh.slice(0, 0..n)).sigmoid();
        let z = (gx.slice(0, n..2 * n) + gh.slice(0, n..2 * n)).sigmoid();
        let nn = (gx.slice(0, 2 * n..3 * n) + &r * &gh.slice(0, 2 * n..3 * n)).tanh();
        let h = &nn + &z * &(h - &nn);
        (h.clone(), h)
    }
    fn visit_params(&self, w: &mut Walker<'_>) {
        self.visit(w)
    }
    fn deepcopy_cell(&self) -> Option<Self> {
        Some(self.deepcopy())
    }
    fn check_input(&self, x: &Var) -> Result<(), LayerError> {
        check_features(self, self.wi.shape()[1], x)
    }
    fn convert_input(&self, x: &Var) -> Var {
        cast_like(x, &self.wi)
    }
    fn fmt_cell(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GRUCell({} => {})", self.wi.shape()[1], self.hidden_size())
    }
}

macro_rules! display_via_cell {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.fmt_cell(f)
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.fmt_cell(f)
            }
        }
    )*};
}
display_via_cell!(RNNCell, LSTMCell, GRUCell);

// ---------------------------------------------------------------------------------------------
// PyTorch names and layouts (load_torch_state / save_torch_state)
// ---------------------------------------------------------------------------------------------

/// Reads PyTorch's one-layer recurrent weights `weight_ih_l0`, `weight_hh_l0` into `wi`, `wh`,
/// and `bias_ih_l0 + bias_hh_l0` into the single bias `b` (both absent with `bias=False`: zeros).
fn import_one_bias(src: &mut TorchSource<'_>, wi: &Var, wh: &Var, b: &Var) -> Vec<(Var, Tensor)> {
    let mut out = Vec::new();
    for (name, v) in [("weight_ih_l0", wi), ("weight_hh_l0", wh)] {
        if let Some(t) = src.take(name, v.shape().dims(), v.dtype()) {
            out.push((v.clone(), t));
        }
    }
    let dims = b.shape().dims().to_vec();
    if !src.has("bias_ih_l0") && !src.has("bias_hh_l0") {
        out.push((b.clone(), Tensor::zeros(&dims).to_dtype(b.dtype())));
        return out;
    }
    // accumulate in f64, then round once to the model's dtype
    if let (Some(bi), Some(bh)) = (src.take("bias_ih_l0", &dims, flux_tensor::DType::F64), src.take("bias_hh_l0", &dims, flux_tensor::DType::F64)) {
        out.push((b.clone(), (&bi + &bh).to_dtype(b.dtype())));
    }
    out
}

/// Writes `wi`, `wh`, and the single bias `b` as PyTorch's `bias_ih_l0` with a zero `bias_hh_l0`.
fn export_one_bias(wi: &Var, wh: &Var, b: &Var) -> Vec<(String, TorchValue)> {
    let zeros = Tensor::zeros(b.shape().dims()).to_dtype(b.dtype());
    vec![
        ("weight_ih_l0".into(), TorchValue::Float(wi.data())),
        ("weight_hh_l0".into(), TorchValue::Float(wh.data())),
        ("bias_ih_l0".into(), TorchValue::Float(b.data())),
        ("bias_hh_l0".into(), TorchValue::Float(zeros)),
    ]
}

/// `RNNCell` <-> PyTorch `RNN` (one layer, unidirectional): `weight_ih_l0 [out, in]`,
/// `weight_hh_l0 [out, out]`, and our `b = bias_ih_l0 + bias_hh_l0` (saved as `bias_ih_l0 = b`,
/// `bias_hh_l0 = 0`). PyTorch's `nonlinearity` must match the cell's activation (`tanh` or
/// `relu`); the file does not record it.
impl TorchModule for RNNCell {
    fn torch_kind(&self) -> &'static str {
        "RNN"
    }
    fn torch_export(&self) -> Vec<(String, TorchValue)> {
        export_one_bias(&self.wi, &self.wh, &self.b)
    }
    fn torch_import(&self, src: &mut TorchSource<'_>) -> Vec<(Var, Tensor)> {
        import_one_bias(src, &self.wi, &self.wh, &self.b)
    }
}

/// `LSTMCell` <-> PyTorch `LSTM` (one layer, unidirectional): PyTorch stacks the gates
/// input, forget, cell, output, as we do, so `weight_ih_l0 [4out, in]` and `weight_hh_l0
/// [4out, out]` are our `Wi`, `Wh` as they are, and our `b = bias_ih_l0 + bias_hh_l0` (saved as
/// `bias_ih_l0 = b`, `bias_hh_l0 = 0`).
impl TorchModule for LSTMCell {
    fn torch_kind(&self) -> &'static str {
        "LSTM"
    }
    fn torch_export(&self) -> Vec<(String, TorchValue)> {
        export_one_bias(&self.wi, &self.wh, &self.b)
    }
    fn torch_import(&self, src: &mut TorchSource<'_>) -> Vec<(Var, Tensor)> {
        import_one_bias(src, &self.wi, &self.wh, &self.b)
    }
}

/// `GRUCell` <-> PyTorch `GRU` (one layer, unidirectional): the same layout (gates reset,
/// update, new; the reset gate applied after the recurrent product; two biases), so
/// `weight_ih_l0`, `weight_hh_l0`, `bias_ih_l0`, `bias_hh_l0` are our `Wi`, `Wh`, `bi`, `bh`.
impl TorchModule for GRUCell {
    fn torch_kind(&self) -> &'static str {
        "GRU"
    }
    fn torch_export(&self) -> Vec<(String, TorchValue)> {
        vec![
            ("weight_ih_l0".into(), TorchValue::Float(self.wi.data())),
            ("weight_hh_l0".into(), TorchValue::Float(self.wh.data())),
            ("bias_ih_l0".into(), TorchValue::Float(self.bi.data())),
            ("bias_hh_l0".into(), TorchValue::Float(self.bh.data())),
        ]
    }
    fn torch_import(&self, src: &mut TorchSource<'_>) -> Vec<(Var, Tensor)> {
        let mut out = Vec::new();
        for (name, v) in [("weight_ih_l0", &self.wi), ("weight_hh_l0", &self.wh), ("bias_ih_l0", &self.bi), ("bias_hh_l0", &self.bh)] {
            if let Some(t) = src.take(name, v.shape().dims(), v.dtype()) {
                out.push((v.clone(), t));
            }
        }
        out
    }
}

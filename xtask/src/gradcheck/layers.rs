//! Cases for the layers crate: every activation, every loss (and `norm`), Dense and Chain (with
//! respect to input and parameters), LayerNorm, BatchNorm (training mode) and Dropout (a fixed
//! mask).
//!
//! A layer owns its parameters, so a check with respect to them goes through [`ParamProbe`]: a
//! custom op whose inputs are the parameter values and the layer input. Its forward writes the
//! values into the layer and runs the layer's own `forward`; its backward is the library's
//! reverse mode through that same `forward` (`gradient_params`). Finite differences of the
//! forward against that backward check the layer's gradients with respect to its parameters (first
//! order; second order is checked with respect to the input, where gradients compose).

use std::sync::Arc;

use flux_autograd::{gradient_params, jvp_params, no_grad, param, CustomOp, Params, Var};
use flux_layers::{
    binarycrossentropy, chain, crossentropy, identity, logitbinarycrossentropy, logitcrossentropy, mse, norm, params, sigmoid, softmax, tanh, to_f64,
    trainmode, BatchNorm, Dense, Dropout, Layer, LayerNorm, TrainMode,
};
use flux_tensor::{Tensor, TensorError};

use super::Case;

/// Probabilities-like values in (0.1, 1.1), away from log's singularity.
fn positive(shape: &[usize]) -> Tensor {
    Tensor::rand(shape) + 0.1
}

/// Targets in [0, 1] with some exact zeros and ones (the `0 * log(0)` branches).
fn targets(shape: &[usize]) -> Tensor {
    Tensor::rand(shape).map(|u| {
        if u < 0.2 {
            0.0
        } else if u > 0.85 {
            1.0
        } else {
            u
        }
    })
}

/// A Dense layer with f64 parameters (random bias, so nothing sits at a special point).
fn dense64(input: usize, output: usize, act: fn(&Var) -> Var) -> Dense {
    Dense::from_parts(Tensor::randn(&[output, input]) * 0.7, Tensor::randn(&[output]) * 0.3, act).expect("valid Dense parts")
}

/// Runs a layer with its parameters replaced by the op's inputs (see the module docs).
struct ParamProbe<L: Layer> {
    name: String,
    layer: L,
    ps: Vec<Var>,
}

impl<L: Layer> ParamProbe<L> {
    fn set(&self, values: &[Tensor]) {
        for (p, v) in self.ps.iter().zip(values) {
            p.set_data(v.clone());
        }
    }
}

impl<L: Layer> CustomOp for ParamProbe<L> {
    fn name(&self) -> &str {
        &self.name
    }
    fn forward(&self, inputs: &[Tensor]) -> Result<Tensor, TensorError> {
        let (values, x) = inputs.split_at(self.ps.len());
        self.set(values);
        Ok(no_grad(|| self.layer.forward(&Var::constant(x[0].clone()))).data())
    }
    fn backward(&self, inputs: &[Var], _y: &Var, g: &Var) -> Vec<Option<Var>> {
        let (values, x) = inputs.split_at(self.ps.len());
        self.set(&values.iter().map(|v| v.data()).collect::<Vec<_>>());
        let xp = param(x[0].data());
        let mut all = Params::new();
        for p in &self.ps {
            all.push(p);
        }
        all.push(&xp);
        let g = g.detach();
        // A custom op's backward runs with recording paused, and a `gradient_params` called there
        // would record nothing (zeros). A fresh thread has its own, unpaused, tape state.
        std::thread::scope(|s| {
            s.spawn(|| {
                let gs = gradient_params(|| (self.layer.forward(&xp) * &g).sum(), &all);
                self.ps.iter().chain(std::iter::once(&xp)).map(|p| Some(gs[p].detach())).collect()
            })
            .join()
            .expect("probe backward")
        })
    }
    fn jvp(&self, inputs: &[Var], _y: &Var, tangents: &[Option<Var>]) -> Option<Var> {
        // forward mode runs the layer itself with tangents on its parameters and input
        let (values, x) = inputs.split_at(self.ps.len());
        self.set(&values.iter().map(|v| v.data()).collect::<Vec<_>>());
        let xp = param(x[0].data());
        let all: Params = self.ps.iter().chain(std::iter::once(&xp)).collect();
        let vs: Vec<Var> = all.iter().zip(tangents).map(|(p, t)| t.as_ref().map_or_else(|| Var::constant(p.data().zeros_like()), Var::detach)).collect();
        Some(jvp_params(|| self.layer.forward(&xp), &all, &vs).1.detach())
    }
}

/// A first-order case with respect to every parameter of `layer` and its input `x`.
pub(super) fn param_case<L: Layer + 'static>(op: &'static str, what: &str, layer: L, x: Tensor) -> Case {
    to_f64(&layer);
    let ps: Vec<Var> = params(&layer).iter().cloned().collect();
    let mut inputs: Vec<Tensor> = ps.iter().map(|p| p.data()).collect();
    inputs.push(x);
    let probe = Arc::new(ParamProbe { name: format!("{op} params"), layer, ps });
    Case::new(op, format!("w.r.t. parameters and input, {what}"), inputs, move |xs| Var::custom(probe.clone(), xs).expect("probe forward")).first_only()
}

pub fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    for (name, f) in flux_layers::ACTIVATIONS {
        let x = Tensor::randn(&[4, 3]).map(|x| if x.abs() < 0.05 { x + 0.2 } else { x });
        let case = Case::new(name, "[4, 3]", vec![x], move |x| f(&x[0]));
        // relu and leakyrelu are piecewise linear: their second derivative is zero where defined
        v.push(if matches!(name, "relu" | "leakyrelu") { case.first_only() } else { case });
    }
    losses(&mut v);
    norms(&mut v);
    dense_and_chain(&mut v);
    normalisation(&mut v);
    v
}

fn losses(v: &mut Vec<Case>) {
    for shape in [&[5][..], &[4, 3][..]] {
        let s = format!("{shape:?}");
        // with respect to the prediction (the target fixed)
        let y = Var::constant(Tensor::randn(shape));
        v.push(Case::new("mse", format!("w.r.t. ŷ, {s}"), vec![Tensor::randn(shape)], move |x| mse(&x[0], &y)));
        let y = Var::constant(targets(shape));
        v.push(Case::new("crossentropy", format!("w.r.t. ŷ, {s}, targets with zeros"), vec![positive(shape)], move |x| crossentropy(&x[0], &y)));
        let y = Var::constant(targets(shape));
        v.push(Case::new("crossentropy", format!("of softmax(x), {s}"), vec![Tensor::randn(shape)], move |x| crossentropy(&softmax(&x[0]), &y)));
        let y = Var::constant(targets(shape));
        v.push(Case::new("logitcrossentropy", format!("w.r.t. logits, {s}"), vec![Tensor::randn(shape) * 2.0], move |x| logitcrossentropy(&x[0], &y)));
        let y = Var::constant(targets(shape));
        let p = Tensor::rand(shape) * 0.8 + 0.1;
        v.push(Case::new("binarycrossentropy", format!("w.r.t. ŷ, {s}"), vec![p], move |x| binarycrossentropy(&x[0], &y)));
        let y = Var::constant(targets(shape));
        v.push(Case::new("logitbinarycrossentropy", format!("w.r.t. logits, {s}"), vec![Tensor::randn(shape) * 2.0], move |x| {
            logitbinarycrossentropy(&x[0], &y)
        }));
        // with respect to both arguments
        v.push(Case::new("mse", format!("w.r.t. ŷ and y, {s}"), vec![Tensor::randn(shape), Tensor::randn(shape)], |x| mse(&x[0], &x[1])));
        v.push(Case::new("logitcrossentropy", format!("w.r.t. logits and y, {s}"), vec![Tensor::randn(shape), Tensor::rand(shape)], |x| {
            logitcrossentropy(&x[0], &x[1])
        }));
        v.push(Case::new("crossentropy", format!("w.r.t. ŷ and y, {s}"), vec![positive(shape), Tensor::rand(shape)], |x| crossentropy(&x[0], &x[1])));
    }
}

fn norms(v: &mut Vec<Case>) {
    for shape in [&[][..], &[5][..], &[3, 2][..]] {
        v.push(Case::new("norm", format!("away from 0, {shape:?}"), vec![Tensor::randn(shape) + 0.1], |x| norm(&x[0])));
    }
    v.push(Case::new("norm", "penalty of a layer's weights, [3, 4] + [3]", vec![Tensor::randn(&[3, 4]), Tensor::randn(&[3])], |x| norm(&x[0]) + norm(&x[1])));
    // at exactly 0, central differences of the (symmetric) norm are exactly 0, and so must reverse
    // mode be: a NaN there fails the check
    let zero_gradient = flux_autograd::gradient(norm, &Var::constant(Tensor::zeros(&[4])));
    assert_eq!(zero_gradient.to_vec(), vec![0.0; 4], "norm: the gradient at 0 must be exactly 0");
    v.push(Case::new("norm", "at 0 (gradient exactly 0)", vec![Tensor::zeros(&[4])], |x| norm(&x[0])).first_only());
}

fn dense_and_chain(v: &mut Vec<Case>) {
    for (act_name, act) in [("identity", identity as fn(&Var) -> Var), ("σ", sigmoid), ("tanh", tanh)] {
        let d = dense64(4, 3, act);
        v.push(Case::new("Dense", format!("w.r.t. input [4], {act_name}"), vec![Tensor::randn(&[4])], move |x| d.forward(&x[0])));
        let d = dense64(4, 3, act);
        v.push(Case::new("Dense", format!("w.r.t. input [4, 5], {act_name}"), vec![Tensor::randn(&[4, 5])], move |x| d.forward(&x[0]).powi(2)));
        v.push(param_case("Dense", &format!("[4, 5], {act_name}"), dense64(4, 3, act), Tensor::randn(&[4, 5])));
    }
    v.push(param_case("Dense", "default f32 init converted to f64, [3]", Dense::new(3, 2, sigmoid), Tensor::randn(&[3])));

    let c = chain![dense64(5, 4, tanh), dense64(4, 3, identity), softmax];
    v.push(Case::new("Chain", "Dense tanh, Dense, softmax, w.r.t. input [5, 2]", vec![Tensor::randn(&[5, 2])], move |x| c.forward(&x[0])));
    let c = chain![dense64(5, 4, sigmoid), dense64(4, 3, identity), softmax];
    let y = Var::constant(flux_layers::onehotbatch(&[2, 0, 1], 3).to_f64());
    v.push(Case::new("Chain", "crossentropy(chain(x), y), [5, 3]", vec![Tensor::randn(&[5, 3])], move |x| crossentropy(&c.forward(&x[0]), &y)));
    v.push(param_case("Chain", "Dense tanh, Dense, softmax, [5, 2]", chain![dense64(5, 4, tanh), dense64(4, 3, identity), softmax], Tensor::randn(&[5, 2])));
}

pub(super) fn randomise(layer: &impl Layer) {
    to_f64(layer);
    for p in params(layer).iter() {
        p.set_data(&Tensor::randn(&p.shape()) * 0.5 + 1.0);
    }
}

fn normalisation(v: &mut Vec<Case>) {
    // LayerNorm
    for shape in [&[4][..], &[4, 3][..]] {
        let ln = LayerNorm::new(4);
        randomise(&ln);
        v.push(Case::new("LayerNorm", format!("w.r.t. input {shape:?}"), vec![Tensor::randn(shape)], move |x| ln.forward(&x[0])));
    }
    v.push(param_case("LayerNorm", "[4, 3]", LayerNorm::new(4), Tensor::randn(&[4, 3])));

    // BatchNorm, training mode (batch statistics), fixed explicitly: finite differences run
    // outside a gradient call, where the automatic mode would be test mode
    for shape in [&[3, 6][..], &[2, 2, 3, 2][..]] {
        let bn = BatchNorm::new(3);
        randomise(&bn);
        trainmode(&bn);
        v.push(Case::new("BatchNorm", format!("training, w.r.t. input {shape:?}"), vec![Tensor::randn(shape)], move |x| bn.forward(&x[0])));
    }
    let bn = BatchNorm::with_activation(3, tanh);
    randomise(&bn);
    trainmode(&bn);
    v.push(Case::new("BatchNorm", "training, tanh activation, [3, 5]", vec![Tensor::randn(&[3, 5])], move |x| bn.forward(&x[0])));
    let bn = BatchNorm::new(3);
    randomise(&bn);
    bn.running_mean().set_data(Tensor::randn(&[3]));
    bn.running_var().set_data(Tensor::rand(&[3]) + 0.5);
    bn.set_mode(TrainMode::Test);
    v.push(Case::new("BatchNorm", "test mode (running statistics), [3, 4]", vec![Tensor::randn(&[3, 4])], move |x| bn.forward(&x[0]).powi(2)));
    let bn = BatchNorm::new(3);
    trainmode(&bn);
    v.push(param_case("BatchNorm", "training, [3, 5]", bn, Tensor::randn(&[3, 5])));

    // Dropout: a fixed mask by reseeding before each call
    let d = Dropout::new(0.4);
    d.set_mode(TrainMode::Train);
    v.push(Case::new("Dropout", "training, reseeded mask, [6, 3]", vec![Tensor::randn(&[6, 3])], move |x| {
        flux_tensor::seed(99);
        d.forward(&x[0]).powi(3)
    }));
    let d = Dropout::new(0.4);
    d.set_mode(TrainMode::Test);
    v.push(Case::new("Dropout", "test mode (identity), [5]", vec![Tensor::randn(&[5])], move |x| d.forward(&x[0]).tanh()));
}

//! The update rules, with Flux's defaults and Flux's update formulas (Flux 0.10's
//! `src/optimise/optimisers.jl`, global `ϵ = 1e-8`), each written next to its rule.
//!
//! Every rule turns the gradient `Δ` into the step that is subtracted from the parameter
//! (`x -= Δ`). Per-parameter state is kept in `f64` whatever the parameter's dtype (Flux keeps
//! it in the parameter's element type; keeping f64 makes `f32` models slightly more accurate,
//! and the saved state exact).

use std::fmt;

use flux_autograd::Var;
use serde_json::{json, Map, Value};

use crate::optimiser::{config_num, Optimiser, StateMap};

/// Flux's global `ϵ`, the default `epsilon` of every rule that has one.
///
/// ```
/// assert_eq!(flux_optim::EPSILON, 1e-8);
/// ```
pub const EPSILON: f64 = 1e-8;

/// Hyperparameter JSON for a rule whose hyperparameters are all `f64` fields.
macro_rules! config_methods {
    ($rule:literal; $($field:ident),*) => {
        fn config_json(&self) -> Value {
            let mut m = Map::new();
            m.insert("rule".into(), json!($rule));
            $( m.insert(stringify!($field).into(), json!(self.$field)); )*
            Value::Object(m)
        }
        fn check_config_json(&self, v: &Value) -> Result<(), String> {
            let rule = v.get("rule").and_then(Value::as_str);
            if rule != Some($rule) {
                return Err(format!("saved rule {:?} does not match {}", rule, $rule));
            }
            $( config_num(v, stringify!($field))?; )*
            Ok(())
        }
        fn load_config_json(&mut self, v: &Value) {
            $( if let Some(x) = v.get(stringify!($field)).and_then(Value::as_f64) { self.$field = x; } )*
        }
    };
}

/// Per-parameter state methods for a rule whose state is one [`StateMap`] field.
macro_rules! state_methods {
    ($state:ident) => {
        fn clear_state(&mut self) {
            self.$state.map.clear();
        }
        fn param_state_json(&self, id: u64) -> Option<Value> {
            self.$state.to_json(id)
        }
        fn check_param_state_json(&self, v: &Value, numel: usize) -> Result<(), String> {
            self.$state.check(v, numel)
        }
        fn load_param_state_json(&mut self, id: u64, v: &Value) {
            self.$state.load(id, v)
        }
    };
}

/// `lr`/`set_lr` through the field `eta`.
macro_rules! lr_methods {
    () => {
        fn lr(&self) -> Option<f64> {
            Some(self.eta)
        }
        fn set_lr(&mut self, lr: f64) {
            self.eta = lr;
        }
    };
}

/// `Display` through [`Optimiser::name`].
macro_rules! display_by_name {
    ($($t:ty),*) => {
        $(impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.name())
            }
        })*
    };
}

/// Plain gradient descent (Flux's `Descent(η = 0.1)`): `Δ = η·g`.
///
/// ```
/// use flux_optim::{Descent, Optimiser};
/// use flux_autograd::{gradient_params, param, params};
/// let w = param(1.0);
/// let ps = params![&w];
/// Descent::new(0.1).update(&ps, &gradient_params(|| w.powi(2), &ps));
/// assert!((w.item() - 0.8).abs() < 1e-12);
/// assert_eq!(Descent::default().eta, 0.1);
/// ```
#[derive(Clone, Debug)]
pub struct Descent {
    /// Learning rate η.
    pub eta: f64,
}

impl Descent {
    /// Descent with learning rate `eta`.
    ///
    /// ```
    /// assert_eq!(flux_optim::Descent::new(0.5).eta, 0.5);
    /// ```
    pub fn new(eta: f64) -> Descent {
        Descent { eta }
    }
}

impl Default for Descent {
    fn default() -> Self {
        Descent::new(0.1)
    }
}

impl Optimiser for Descent {
    fn apply_step(&mut self, _p: &Var, delta: &mut [f64]) {
        for d in delta {
            *d *= self.eta;
        }
    }
    fn name(&self) -> String {
        format!("Descent({:?})", self.eta)
    }
    lr_methods!();
    config_methods!("Descent"; eta);
}

/// Gradient descent with momentum (Flux's `Momentum(η = 0.01, ρ = 0.9)`):
/// `v = ρ·v − η·g`, `Δ = −v`. The same trajectory as PyTorch's `SGD(lr=η, momentum=ρ)`.
///
/// ```
/// use flux_optim::{Momentum, Optimiser};
/// let w = flux_autograd::param(0.0);
/// let mut opt = Momentum::new(0.1).rho(0.5);
/// let mut d = [1.0];
/// opt.apply_step(&w, &mut d);          // v = -0.1
/// let mut d = [1.0];
/// opt.apply_step(&w, &mut d);          // v = 0.5 * -0.1 - 0.1
/// assert!((d[0] - 0.15).abs() < 1e-12);
/// ```
#[derive(Clone, Debug)]
pub struct Momentum {
    /// Learning rate η.
    pub eta: f64,
    /// Momentum ρ.
    pub rho: f64,
    velocity: StateMap<1, 0>,
}

impl Momentum {
    /// Momentum with learning rate `eta` and Flux's `ρ = 0.9`.
    ///
    /// ```
    /// assert_eq!(flux_optim::Momentum::new(0.01).rho, 0.9);
    /// ```
    pub fn new(eta: f64) -> Momentum {
        Momentum { eta, rho: 0.9, velocity: StateMap::new(["velocity"], []) }
    }

    /// Sets the momentum ρ.
    ///
    /// ```
    /// assert_eq!(flux_optim::Momentum::new(0.01).rho(0.5).rho, 0.5);
    /// ```
    pub fn rho(mut self, rho: f64) -> Self {
        self.rho = rho;
        self
    }
}

impl Default for Momentum {
    fn default() -> Self {
        Momentum::new(0.01)
    }
}

impl Optimiser for Momentum {
    fn apply_step(&mut self, p: &Var, delta: &mut [f64]) {
        let (eta, rho) = (self.eta, self.rho);
        let [v] = &mut self.velocity.get_or_init(p.id(), delta.len(), 0.0, []).vecs;
        for (d, v) in delta.iter_mut().zip(v.iter_mut()) {
            *v = rho * *v - eta * *d;
            *d = -*v;
        }
    }
    fn name(&self) -> String {
        format!("Momentum({:?}, {:?})", self.eta, self.rho)
    }
    lr_methods!();
    config_methods!("Momentum"; eta, rho);
    state_methods!(velocity);
}

/// Gradient descent with Nesterov momentum (Flux's `Nesterov(η = 0.001, ρ = 0.9)`):
/// `d = ρ²·v − (1+ρ)·η·g`, `v = ρ·v − η·g`, `Δ = −d`. The same trajectory as PyTorch's
/// `SGD(lr=η, momentum=ρ, nesterov=True)`.
///
/// ```
/// use flux_optim::{Nesterov, Optimiser};
/// let w = flux_autograd::param(0.0);
/// let mut d = [1.0];
/// Nesterov::new(0.1).apply_step(&w, &mut d);   // (1 + 0.9) * 0.1
/// assert!((d[0] - 0.19).abs() < 1e-12);
/// ```
#[derive(Clone, Debug)]
pub struct Nesterov {
    /// Learning rate η.
    pub eta: f64,
    /// Momentum ρ.
    pub rho: f64,
    velocity: StateMap<1, 0>,
}

impl Nesterov {
    /// Nesterov momentum with learning rate `eta` and Flux's `ρ = 0.9`.
    ///
    /// ```
    /// assert_eq!(flux_optim::Nesterov::new(0.001).rho, 0.9);
    /// ```
    pub fn new(eta: f64) -> Nesterov {
        Nesterov { eta, rho: 0.9, velocity: StateMap::new(["velocity"], []) }
    }

    /// Sets the momentum ρ.
    ///
    /// ```
    /// assert_eq!(flux_optim::Nesterov::new(0.01).rho(0.5).rho, 0.5);
    /// ```
    pub fn rho(mut self, rho: f64) -> Self {
        self.rho = rho;
        self
    }
}

impl Default for Nesterov {
    fn default() -> Self {
        Nesterov::new(0.001)
    }
}

impl Optimiser for Nesterov {
    fn apply_step(&mut self, p: &Var, delta: &mut [f64]) {
        let (eta, rho) = (self.eta, self.rho);
        let [v] = &mut self.velocity.get_or_init(p.id(), delta.len(), 0.0, []).vecs;
        for (d, v) in delta.iter_mut().zip(v.iter_mut()) {
            let step = rho * rho * *v - (1.0 + rho) * eta * *d;
            *v = rho * *v - eta * *d;
            *d = -step;
        }
    }
    fn name(&self) -> String {
        format!("Nesterov({:?}, {:?})", self.eta, self.rho)
    }
    lr_methods!();
    config_methods!("Nesterov"; eta, rho);
    state_methods!(velocity);
}

/// RMSProp (Flux's `RMSProp(η = 0.001, ρ = 0.9)`): `acc = ρ·acc + (1−ρ)·g²`,
/// `Δ = η·g / (√acc + ϵ)`. Epsilon is added **outside** the square root, as in PyTorch's
/// `RMSprop(lr=η, alpha=ρ, eps=ϵ)` (same trajectory; note PyTorch's default `alpha` is 0.99 and
/// TensorFlow/Keras put ϵ inside the root).
///
/// ```
/// use flux_optim::{RMSProp, Optimiser};
/// let w = flux_autograd::param(0.0);
/// let mut d = [2.0];
/// RMSProp::new(0.01).apply_step(&w, &mut d);     // 0.01 * 2 / (sqrt(0.1 * 4) + 1e-8)
/// assert!((d[0] - 0.02 / 0.4f64.sqrt()).abs() < 1e-9);
/// ```
#[derive(Clone, Debug)]
pub struct RMSProp {
    /// Learning rate η.
    pub eta: f64,
    /// Decay ρ of the squared-gradient average.
    pub rho: f64,
    /// ϵ, added to `√acc`.
    pub epsilon: f64,
    acc: StateMap<1, 0>,
}

impl RMSProp {
    /// RMSProp with learning rate `eta`, Flux's `ρ = 0.9` and `ϵ = 1e-8`.
    ///
    /// ```
    /// assert_eq!(flux_optim::RMSProp::new(0.001).rho, 0.9);
    /// ```
    pub fn new(eta: f64) -> RMSProp {
        RMSProp { eta, rho: 0.9, epsilon: EPSILON, acc: StateMap::new(["acc"], []) }
    }

    /// Sets ρ.
    ///
    /// ```
    /// assert_eq!(flux_optim::RMSProp::new(0.001).rho(0.99).rho, 0.99);
    /// ```
    pub fn rho(mut self, rho: f64) -> Self {
        self.rho = rho;
        self
    }

    /// Sets ϵ.
    ///
    /// ```
    /// assert_eq!(flux_optim::RMSProp::new(0.001).epsilon(1e-6).epsilon, 1e-6);
    /// ```
    pub fn epsilon(mut self, epsilon: f64) -> Self {
        self.epsilon = epsilon;
        self
    }
}

impl Default for RMSProp {
    fn default() -> Self {
        RMSProp::new(0.001)
    }
}

impl Optimiser for RMSProp {
    fn apply_step(&mut self, p: &Var, delta: &mut [f64]) {
        let (eta, rho, eps) = (self.eta, self.rho, self.epsilon);
        let [acc] = &mut self.acc.get_or_init(p.id(), delta.len(), 0.0, []).vecs;
        for (d, a) in delta.iter_mut().zip(acc.iter_mut()) {
            *a = rho * *a + (1.0 - rho) * *d * *d;
            *d *= eta / (a.sqrt() + eps);
        }
    }
    fn name(&self) -> String {
        format!("RMSProp({:?}, {:?})", self.eta, self.rho)
    }
    lr_methods!();
    config_methods!("RMSProp"; eta, rho, epsilon);
    state_methods!(acc);
}

/// The Adam update shared by [`Adam`] and [`AdamW`].
fn adam_step(state: &mut StateMap<2, 2>, id: u64, eta: f64, b1: f64, b2: f64, eps: f64, delta: &mut [f64]) {
    let slot = state.get_or_init(id, delta.len(), 0.0, [b1, b2]);
    let [b1p, b2p] = slot.scalars;
    let [mt, vt] = &mut slot.vecs;
    for ((d, m), v) in delta.iter_mut().zip(mt.iter_mut()).zip(vt.iter_mut()) {
        *m = b1 * *m + (1.0 - b1) * *d;
        *v = b2 * *v + (1.0 - b2) * *d * *d;
        *d = *m / (1.0 - b1p) / ((*v / (1.0 - b2p)).sqrt() + eps) * eta;
    }
    slot.scalars = [b1p * b1, b2p * b2];
}

/// Adam (Flux's `ADAM(η = 0.001, β = (0.9, 0.999))`):
/// `m = β₁·m + (1−β₁)·g`, `v = β₂·v + (1−β₂)·g²`,
/// `Δ = η · (m / (1−β₁ᵗ)) / (√(v / (1−β₂ᵗ)) + ϵ)`, with `β₁ᵗ, β₂ᵗ` kept per parameter as running
/// products (`beta1_power`, `beta2_power`). Epsilon is added after the root of the
/// bias-corrected `v`, exactly as PyTorch's `Adam` does (same trajectory).
///
/// ```
/// use flux_optim::{Adam, Optimiser};
/// let w = flux_autograd::param(0.0);
/// let mut d = [3.0];
/// Adam::new(0.1).apply_step(&w, &mut d);   // the first step is η·sign(g)
/// assert!((d[0] - 0.1).abs() < 1e-8);
/// ```
#[derive(Clone, Debug)]
pub struct Adam {
    /// Learning rate η.
    pub eta: f64,
    /// β₁.
    pub beta1: f64,
    /// β₂.
    pub beta2: f64,
    /// ϵ.
    pub epsilon: f64,
    state: StateMap<2, 2>,
}

impl Adam {
    /// Adam with learning rate `eta`, Flux's `β = (0.9, 0.999)` and `ϵ = 1e-8`.
    ///
    /// ```
    /// assert_eq!(flux_optim::Adam::new(0.001).beta2, 0.999);
    /// ```
    pub fn new(eta: f64) -> Adam {
        Adam { eta, beta1: 0.9, beta2: 0.999, epsilon: EPSILON, state: StateMap::new(["mt", "vt"], ["beta1_power", "beta2_power"]) }
    }

    /// Sets `β = (β₁, β₂)`.
    ///
    /// ```
    /// assert_eq!(flux_optim::Adam::new(0.001).beta((0.8, 0.99)).beta1, 0.8);
    /// ```
    pub fn beta(mut self, beta: (f64, f64)) -> Self {
        (self.beta1, self.beta2) = beta;
        self
    }

    /// Sets ϵ.
    ///
    /// ```
    /// assert_eq!(flux_optim::Adam::new(0.001).epsilon(1e-6).epsilon, 1e-6);
    /// ```
    pub fn epsilon(mut self, epsilon: f64) -> Self {
        self.epsilon = epsilon;
        self
    }
}

impl Default for Adam {
    fn default() -> Self {
        Adam::new(0.001)
    }
}

impl Optimiser for Adam {
    fn apply_step(&mut self, p: &Var, delta: &mut [f64]) {
        adam_step(&mut self.state, p.id(), self.eta, self.beta1, self.beta2, self.epsilon, delta);
    }
    fn name(&self) -> String {
        format!("Adam({:?}, ({:?}, {:?}))", self.eta, self.beta1, self.beta2)
    }
    lr_methods!();
    config_methods!("Adam"; eta, beta1, beta2, epsilon);
    state_methods!(state);
}

/// AdaMax, Adam on the ∞-norm (Flux's `AdaMax(η = 0.001, β = (0.9, 0.999))`):
/// `m = β₁·m + (1−β₁)·g`, `u = max(β₂·u, |g|)`, `Δ = (η / (1−β₁ᵗ)) · m / (u + ϵ)`.
/// PyTorch's `Adamax` puts ϵ inside the max instead (`u = max(β₂·u, |g| + ϵ)`, `Δ ∝ m / u`);
/// the two agree to about `ϵ/|g|` relative.
///
/// ```
/// use flux_optim::{AdaMax, Optimiser};
/// let w = flux_autograd::param(0.0);
/// let mut d = [3.0];
/// AdaMax::new(0.1).apply_step(&w, &mut d);
/// assert!((d[0] - 0.1).abs() < 1e-8);
/// ```
#[derive(Clone, Debug)]
pub struct AdaMax {
    /// Learning rate η.
    pub eta: f64,
    /// β₁.
    pub beta1: f64,
    /// β₂.
    pub beta2: f64,
    /// ϵ.
    pub epsilon: f64,
    state: StateMap<2, 1>,
}

impl AdaMax {
    /// AdaMax with learning rate `eta`, Flux's `β = (0.9, 0.999)` and `ϵ = 1e-8`.
    ///
    /// ```
    /// assert_eq!(flux_optim::AdaMax::new(0.001).beta1, 0.9);
    /// ```
    pub fn new(eta: f64) -> AdaMax {
        AdaMax { eta, beta1: 0.9, beta2: 0.999, epsilon: EPSILON, state: StateMap::new(["mt", "ut"], ["beta1_power"]) }
    }

    /// Sets `β = (β₁, β₂)`.
    ///
    /// ```
    /// assert_eq!(flux_optim::AdaMax::new(0.001).beta((0.8, 0.99)).beta2, 0.99);
    /// ```
    pub fn beta(mut self, beta: (f64, f64)) -> Self {
        (self.beta1, self.beta2) = beta;
        self
    }

    /// Sets ϵ.
    ///
    /// ```
    /// assert_eq!(flux_optim::AdaMax::new(0.001).epsilon(1e-6).epsilon, 1e-6);
    /// ```
    pub fn epsilon(mut self, epsilon: f64) -> Self {
        self.epsilon = epsilon;
        self
    }
}

impl Default for AdaMax {
    fn default() -> Self {
        AdaMax::new(0.001)
    }
}

impl Optimiser for AdaMax {
    fn apply_step(&mut self, p: &Var, delta: &mut [f64]) {
        let (eta, b1, b2, eps) = (self.eta, self.beta1, self.beta2, self.epsilon);
        let slot = self.state.get_or_init(p.id(), delta.len(), 0.0, [b1]);
        let [b1p] = slot.scalars;
        let [mt, ut] = &mut slot.vecs;
        for ((d, m), u) in delta.iter_mut().zip(mt.iter_mut()).zip(ut.iter_mut()) {
            *m = b1 * *m + (1.0 - b1) * *d;
            *u = (b2 * *u).max(d.abs());
            *d = (eta / (1.0 - b1p)) * *m / (*u + eps);
        }
        slot.scalars = [b1p * b1];
    }
    fn name(&self) -> String {
        format!("AdaMax({:?}, ({:?}, {:?}))", self.eta, self.beta1, self.beta2)
    }
    lr_methods!();
    config_methods!("AdaMax"; eta, beta1, beta2, epsilon);
    state_methods!(state);
}

/// AdaGrad (Flux's `ADAGrad(η = 0.1)`): the accumulator **starts at ϵ**, `acc += g²`,
/// `Δ = η·g / (√acc + ϵ)`. The same trajectory as PyTorch's
/// `Adagrad(lr=η, initial_accumulator_value=ϵ, eps=ϵ)`.
///
/// ```
/// use flux_optim::{AdaGrad, Optimiser};
/// let w = flux_autograd::param(0.0);
/// let mut d = [2.0];
/// AdaGrad::new(0.1).apply_step(&w, &mut d);
/// assert!((d[0] - 0.1).abs() < 1e-8);
/// ```
#[derive(Clone, Debug)]
pub struct AdaGrad {
    /// Learning rate η.
    pub eta: f64,
    /// ϵ (also the accumulator's initial value).
    pub epsilon: f64,
    acc: StateMap<1, 0>,
}

impl AdaGrad {
    /// AdaGrad with learning rate `eta` and `ϵ = 1e-8`.
    ///
    /// ```
    /// assert_eq!(flux_optim::AdaGrad::new(0.1).epsilon, 1e-8);
    /// ```
    pub fn new(eta: f64) -> AdaGrad {
        AdaGrad { eta, epsilon: EPSILON, acc: StateMap::new(["acc"], []) }
    }

    /// Sets ϵ.
    ///
    /// ```
    /// assert_eq!(flux_optim::AdaGrad::new(0.1).epsilon(1e-10).epsilon, 1e-10);
    /// ```
    pub fn epsilon(mut self, epsilon: f64) -> Self {
        self.epsilon = epsilon;
        self
    }
}

impl Default for AdaGrad {
    fn default() -> Self {
        AdaGrad::new(0.1)
    }
}

impl Optimiser for AdaGrad {
    fn apply_step(&mut self, p: &Var, delta: &mut [f64]) {
        let (eta, eps) = (self.eta, self.epsilon);
        let [acc] = &mut self.acc.get_or_init(p.id(), delta.len(), eps, []).vecs;
        for (d, a) in delta.iter_mut().zip(acc.iter_mut()) {
            *a += *d * *d;
            *d *= eta / (a.sqrt() + eps);
        }
    }
    fn name(&self) -> String {
        format!("AdaGrad({:?})", self.eta)
    }
    lr_methods!();
    config_methods!("AdaGrad"; eta, epsilon);
    state_methods!(acc);
}

/// AdaDelta (Flux's `ADADelta(ρ = 0.9)`): `acc = ρ·acc + (1−ρ)·g²`,
/// `Δ = g · √(Δacc + ϵ) / √(acc + ϵ)`, `Δacc = ρ·Δacc + (1−ρ)·Δ²`.
///
/// This is the formula of Flux ≥ 0.11 and of the paper. Flux 0.9/0.10 wrote
/// `Δ *= √Δacc / (√acc + ϵ)`, and since `Δacc` starts at zero every step was zero there (the
/// rule never moved); the fixed form is used instead. It is the same trajectory as PyTorch's
/// `Adadelta(lr=1, rho=ρ, eps=ϵ)` (PyTorch's default ϵ is 1e-6, Flux's 1e-8). AdaDelta has no
/// learning rate ([`Optimiser::lr`] is `None`).
///
/// ```
/// use flux_optim::{AdaDelta, Optimiser};
/// let w = flux_autograd::param(0.0);
/// let mut d = [1.0];
/// AdaDelta::new(0.9).epsilon(1e-6).apply_step(&w, &mut d);
/// assert!((d[0] - (1e-6f64 / (0.1 + 1e-6)).sqrt()).abs() < 1e-12);
/// ```
#[derive(Clone, Debug)]
pub struct AdaDelta {
    /// Decay ρ.
    pub rho: f64,
    /// ϵ, inside both roots.
    pub epsilon: f64,
    state: StateMap<2, 0>,
}

impl AdaDelta {
    /// AdaDelta with decay `rho` and `ϵ = 1e-8`.
    ///
    /// ```
    /// assert_eq!(flux_optim::AdaDelta::new(0.9).rho, 0.9);
    /// ```
    pub fn new(rho: f64) -> AdaDelta {
        AdaDelta { rho, epsilon: EPSILON, state: StateMap::new(["acc", "delta_acc"], []) }
    }

    /// Sets ϵ.
    ///
    /// ```
    /// assert_eq!(flux_optim::AdaDelta::new(0.9).epsilon(1e-6).epsilon, 1e-6);
    /// ```
    pub fn epsilon(mut self, epsilon: f64) -> Self {
        self.epsilon = epsilon;
        self
    }
}

impl Default for AdaDelta {
    fn default() -> Self {
        AdaDelta::new(0.9)
    }
}

impl Optimiser for AdaDelta {
    fn apply_step(&mut self, p: &Var, delta: &mut [f64]) {
        let (rho, eps) = (self.rho, self.epsilon);
        let [acc, dacc] = &mut self.state.get_or_init(p.id(), delta.len(), 0.0, []).vecs;
        for ((d, a), da) in delta.iter_mut().zip(acc.iter_mut()).zip(dacc.iter_mut()) {
            *a = rho * *a + (1.0 - rho) * *d * *d;
            *d *= (*da + eps).sqrt() / (*a + eps).sqrt();
            *da = rho * *da + (1.0 - rho) * *d * *d;
        }
    }
    fn name(&self) -> String {
        format!("AdaDelta({:?})", self.rho)
    }
    config_methods!("AdaDelta"; rho, epsilon);
    state_methods!(state);
}

/// AMSGrad (Flux's `AMSGrad(η = 0.001, β = (0.9, 0.999))`): all three state arrays **start at
/// ϵ**; `m = β₁·m + (1−β₁)·g`, `v = β₂·v + (1−β₂)·g²`, `v̂ = max(v̂, v)`,
/// `Δ = η·m / (√v̂ + ϵ)`, with **no bias correction**. PyTorch's `Adam(amsgrad=True)` is a
/// different rule (bias-corrected, state from zero), so only the formula is tested.
///
/// ```
/// use flux_optim::{AMSGrad, Optimiser};
/// let w = flux_autograd::param(0.0);
/// let mut d = [1.0];
/// AMSGrad::new(0.1).apply_step(&w, &mut d);
/// let m = 0.9 * 1e-8 + 0.1;
/// let v: f64 = 0.999 * 1e-8 + 0.001;
/// assert!((d[0] - 0.1 * m / (v.sqrt() + 1e-8)).abs() < 1e-12);
/// ```
#[derive(Clone, Debug)]
pub struct AMSGrad {
    /// Learning rate η.
    pub eta: f64,
    /// β₁.
    pub beta1: f64,
    /// β₂.
    pub beta2: f64,
    /// ϵ.
    pub epsilon: f64,
    state: StateMap<3, 0>,
}

impl AMSGrad {
    /// AMSGrad with learning rate `eta`, Flux's `β = (0.9, 0.999)` and `ϵ = 1e-8`.
    ///
    /// ```
    /// assert_eq!(flux_optim::AMSGrad::new(0.001).beta1, 0.9);
    /// ```
    pub fn new(eta: f64) -> AMSGrad {
        AMSGrad { eta, beta1: 0.9, beta2: 0.999, epsilon: EPSILON, state: StateMap::new(["mt", "vt", "vhat"], []) }
    }

    /// Sets `β = (β₁, β₂)`.
    ///
    /// ```
    /// assert_eq!(flux_optim::AMSGrad::new(0.001).beta((0.8, 0.99)).beta1, 0.8);
    /// ```
    pub fn beta(mut self, beta: (f64, f64)) -> Self {
        (self.beta1, self.beta2) = beta;
        self
    }

    /// Sets ϵ.
    ///
    /// ```
    /// assert_eq!(flux_optim::AMSGrad::new(0.001).epsilon(1e-6).epsilon, 1e-6);
    /// ```
    pub fn epsilon(mut self, epsilon: f64) -> Self {
        self.epsilon = epsilon;
        self
    }
}

impl Default for AMSGrad {
    fn default() -> Self {
        AMSGrad::new(0.001)
    }
}

impl Optimiser for AMSGrad {
    fn apply_step(&mut self, p: &Var, delta: &mut [f64]) {
        let (eta, b1, b2, eps) = (self.eta, self.beta1, self.beta2, self.epsilon);
        let [mt, vt, vh] = &mut self.state.get_or_init(p.id(), delta.len(), eps, []).vecs;
        for (((d, m), v), h) in delta.iter_mut().zip(mt.iter_mut()).zip(vt.iter_mut()).zip(vh.iter_mut()) {
            *m = b1 * *m + (1.0 - b1) * *d;
            *v = b2 * *v + (1.0 - b2) * *d * *d;
            *h = h.max(*v);
            *d = eta * *m / (h.sqrt() + eps);
        }
    }
    fn name(&self) -> String {
        format!("AMSGrad({:?}, ({:?}, {:?}))", self.eta, self.beta1, self.beta2)
    }
    lr_methods!();
    config_methods!("AMSGrad"; eta, beta1, beta2, epsilon);
    state_methods!(state);
}

/// Nesterov-accelerated Adam (Flux's `NADAM(η = 0.001, β = (0.9, 0.999))`), Dozat's form:
/// with `β₁ᵗ, β₂ᵗ` the running products (starting at `β₁, β₂`),
/// `Δ = η · (β₁·m / (1 − β₁·β₁ᵗ) + (1−β₁)·g / (1 − β₁ᵗ)) / (√(β₂·v / (1 − β₂ᵗ)) + ϵ)`.
/// PyTorch's `NAdam` uses a momentum-decay schedule (`μₜ = β₁(1 − ½·0.96^{t·ψ})`), a different
/// rule, so only the formula is tested.
///
/// ```
/// use flux_optim::{NAdam, Optimiser};
/// let w = flux_autograd::param(0.0);
/// let mut d = [1.0];
/// NAdam::new(0.1).apply_step(&w, &mut d);
/// let num = 0.9 * 0.1 / (1.0 - 0.81) + 0.1 / 0.1;
/// let den = (0.999f64 * 0.001 / 0.001).sqrt() + 1e-8;
/// assert!((d[0] - 0.1 * num / den).abs() < 1e-12);
/// ```
#[derive(Clone, Debug)]
pub struct NAdam {
    /// Learning rate η.
    pub eta: f64,
    /// β₁.
    pub beta1: f64,
    /// β₂.
    pub beta2: f64,
    /// ϵ.
    pub epsilon: f64,
    state: StateMap<2, 2>,
}

impl NAdam {
    /// NAdam with learning rate `eta`, Flux's `β = (0.9, 0.999)` and `ϵ = 1e-8`.
    ///
    /// ```
    /// assert_eq!(flux_optim::NAdam::new(0.001).beta2, 0.999);
    /// ```
    pub fn new(eta: f64) -> NAdam {
        NAdam { eta, beta1: 0.9, beta2: 0.999, epsilon: EPSILON, state: StateMap::new(["mt", "vt"], ["beta1_power", "beta2_power"]) }
    }

    /// Sets `β = (β₁, β₂)`.
    ///
    /// ```
    /// assert_eq!(flux_optim::NAdam::new(0.001).beta((0.8, 0.99)).beta1, 0.8);
    /// ```
    pub fn beta(mut self, beta: (f64, f64)) -> Self {
        (self.beta1, self.beta2) = beta;
        self
    }

    /// Sets ϵ.
    ///
    /// ```
    /// assert_eq!(flux_optim::NAdam::new(0.001).epsilon(1e-6).epsilon, 1e-6);
    /// ```
    pub fn epsilon(mut self, epsilon: f64) -> Self {
        self.epsilon = epsilon;
        self
    }
}

impl Default for NAdam {
    fn default() -> Self {
        NAdam::new(0.001)
    }
}

impl Optimiser for NAdam {
    fn apply_step(&mut self, p: &Var, delta: &mut [f64]) {
        let (eta, b1, b2, eps) = (self.eta, self.beta1, self.beta2, self.epsilon);
        let slot = self.state.get_or_init(p.id(), delta.len(), 0.0, [b1, b2]);
        let [b1p, b2p] = slot.scalars;
        let [mt, vt] = &mut slot.vecs;
        for ((d, m), v) in delta.iter_mut().zip(mt.iter_mut()).zip(vt.iter_mut()) {
            *m = b1 * *m + (1.0 - b1) * *d;
            *v = b2 * *v + (1.0 - b2) * *d * *d;
            *d = (b1 * *m / (1.0 - b1 * b1p) + (1.0 - b1) * *d / (1.0 - b1p)) / ((*v * b2 / (1.0 - b2p)).sqrt() + eps) * eta;
        }
        slot.scalars = [b1p * b1, b2p * b2];
    }
    fn name(&self) -> String {
        format!("NAdam({:?}, ({:?}, {:?}))", self.eta, self.beta1, self.beta2)
    }
    lr_methods!();
    config_methods!("NAdam"; eta, beta1, beta2, epsilon);
    state_methods!(state);
}

/// Adam with decoupled weight decay (Flux's `ADAMW(η = 0.001, β = (0.9, 0.999), decay = 0)`).
///
/// By default this is exactly Flux's `ADAMW = Optimiser(ADAM(η, β), WeightDecay(decay))`:
/// `Δ = Adam's Δ + decay·x`, the decay **not** multiplied by η (as in Loshchilov & Hutter's
/// paper, where the decay has its own schedule; Optimisers.jl#182 is the complaint about it).
///
/// With [`AdamW::couple_to_lr`]`(true)` the decay is multiplied by η:
/// `Δ = Adam's Δ + η·decay·x`, which is PyTorch's `AdamW(lr=η, weight_decay=decay)` (PyTorch
/// shrinks `x` by `1 − η·decay` before the Adam step, the same thing) and Optimisers.jl's
/// `AdamW(couple = true)`. PyTorch's default `weight_decay` is 0.01; Flux's is 0.
///
/// ```
/// use flux_optim::{AdamW, Optimiser};
/// let w = flux_autograd::param(2.0);
/// let mut d = [3.0];
/// AdamW::new(0.1).decay(0.5).apply_step(&w, &mut d);   // 0.1 (Adam) + 0.5 * 2
/// assert!((d[0] - 1.1).abs() < 1e-8);
/// let mut d = [3.0];
/// AdamW::new(0.1).decay(0.5).couple_to_lr(true).apply_step(&w, &mut d);   // 0.1 + 0.1 * 0.5 * 2
/// assert!((d[0] - 0.2).abs() < 1e-8);
/// ```
#[derive(Clone, Debug)]
pub struct AdamW {
    /// Learning rate η.
    pub eta: f64,
    /// β₁.
    pub beta1: f64,
    /// β₂.
    pub beta2: f64,
    /// ϵ.
    pub epsilon: f64,
    /// Weight decay.
    pub decay: f64,
    /// Multiply the decay by η (PyTorch) instead of not (Flux).
    pub coupled: bool,
    state: StateMap<2, 2>,
}

impl AdamW {
    /// AdamW with learning rate `eta`, Flux's `β = (0.9, 0.999)`, `decay = 0`, decay not
    /// multiplied by η.
    ///
    /// ```
    /// assert_eq!(flux_optim::AdamW::new(0.001).decay, 0.0);
    /// ```
    pub fn new(eta: f64) -> AdamW {
        AdamW {
            eta,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: EPSILON,
            decay: 0.0,
            coupled: false,
            state: StateMap::new(["mt", "vt"], ["beta1_power", "beta2_power"]),
        }
    }

    /// Sets the weight decay.
    ///
    /// ```
    /// assert_eq!(flux_optim::AdamW::new(0.001).decay(0.01).decay, 0.01);
    /// ```
    pub fn decay(mut self, decay: f64) -> Self {
        self.decay = decay;
        self
    }

    /// `true`: multiply the decay by η (PyTorch's `AdamW`); `false` (the default): Flux's
    /// `ADAMW`.
    ///
    /// ```
    /// assert!(flux_optim::AdamW::new(0.001).couple_to_lr(true).coupled);
    /// ```
    pub fn couple_to_lr(mut self, coupled: bool) -> Self {
        self.coupled = coupled;
        self
    }

    /// Sets `β = (β₁, β₂)`.
    ///
    /// ```
    /// assert_eq!(flux_optim::AdamW::new(0.001).beta((0.8, 0.99)).beta1, 0.8);
    /// ```
    pub fn beta(mut self, beta: (f64, f64)) -> Self {
        (self.beta1, self.beta2) = beta;
        self
    }

    /// Sets ϵ.
    ///
    /// ```
    /// assert_eq!(flux_optim::AdamW::new(0.001).epsilon(1e-6).epsilon, 1e-6);
    /// ```
    pub fn epsilon(mut self, epsilon: f64) -> Self {
        self.epsilon = epsilon;
        self
    }
}

impl Default for AdamW {
    fn default() -> Self {
        AdamW::new(0.001)
    }
}

impl Optimiser for AdamW {
    fn apply_step(&mut self, p: &Var, delta: &mut [f64]) {
        adam_step(&mut self.state, p.id(), self.eta, self.beta1, self.beta2, self.epsilon, delta);
        let wd = if self.coupled { self.eta * self.decay } else { self.decay };
        if wd != 0.0 {
            for (d, x) in delta.iter_mut().zip(p.to_vec()) {
                *d += wd * x;
            }
        }
    }
    fn name(&self) -> String {
        format!("AdamW({:?}, ({:?}, {:?}), {:?})", self.eta, self.beta1, self.beta2, self.decay)
    }
    lr_methods!();
    fn config_json(&self) -> Value {
        json!({"rule": "AdamW", "eta": self.eta, "beta1": self.beta1, "beta2": self.beta2, "epsilon": self.epsilon, "decay": self.decay, "coupled": self.coupled})
    }
    fn check_config_json(&self, v: &Value) -> Result<(), String> {
        let rule = v.get("rule").and_then(Value::as_str);
        if rule != Some("AdamW") {
            return Err(format!("saved rule {rule:?} does not match AdamW"));
        }
        for key in ["eta", "beta1", "beta2", "epsilon", "decay"] {
            config_num(v, key)?;
        }
        v.get("coupled").and_then(Value::as_bool).ok_or("saved hyperparameter `coupled` is missing or not a boolean")?;
        Ok(())
    }
    fn load_config_json(&mut self, v: &Value) {
        let num = |k: &str, old: f64| v.get(k).and_then(Value::as_f64).unwrap_or(old);
        self.eta = num("eta", self.eta);
        self.beta1 = num("beta1", self.beta1);
        self.beta2 = num("beta2", self.beta2);
        self.epsilon = num("epsilon", self.epsilon);
        self.decay = num("decay", self.decay);
        self.coupled = v.get("coupled").and_then(Value::as_bool).unwrap_or(self.coupled);
    }
    state_methods!(state);
}

/// Adds `wd·x` to the step (Flux's `WeightDecay(wd = 0)`): L2 regularisation with strength
/// `wd/2`. Placed before [`Descent`] in an [`crate::OptimiserChain`] it is PyTorch's
/// `SGD(weight_decay=wd)`; placed after a rule the decay is not scaled by the learning rate.
///
/// ```
/// use flux_optim::{WeightDecay, Optimiser};
/// let w = flux_autograd::param(2.0);
/// let mut d = [1.0];
/// WeightDecay::new(0.1).apply_step(&w, &mut d);
/// assert!((d[0] - 1.2).abs() < 1e-12);
/// ```
#[derive(Clone, Debug)]
pub struct WeightDecay {
    /// The decay.
    pub wd: f64,
}

impl WeightDecay {
    /// Weight decay `wd`.
    ///
    /// ```
    /// assert_eq!(flux_optim::WeightDecay::new(1e-4).wd, 1e-4);
    /// ```
    pub fn new(wd: f64) -> WeightDecay {
        WeightDecay { wd }
    }
}

impl Default for WeightDecay {
    fn default() -> Self {
        WeightDecay::new(0.0)
    }
}

impl Optimiser for WeightDecay {
    fn apply_step(&mut self, p: &Var, delta: &mut [f64]) {
        if self.wd != 0.0 {
            for (d, x) in delta.iter_mut().zip(p.to_vec()) {
                *d += self.wd * x;
            }
        }
    }
    fn name(&self) -> String {
        format!("WeightDecay({:?})", self.wd)
    }
    config_methods!("WeightDecay"; wd);
}

/// Clamps each element of the gradient to `[-thresh, thresh]` (Flux ≥ 0.11's
/// `ClipValue(thresh)`, Optimisers.jl's `ClipGrad`; PyTorch's `clip_grad_value_`). Put it first
/// in an [`crate::OptimiserChain`].
///
/// ```
/// use flux_optim::{ClipValue, Optimiser};
/// let w = flux_autograd::param(flux_tensor::Tensor::zeros(&[3]));
/// let mut d = [5.0, -0.5, -7.0];
/// ClipValue::new(1.0).apply_step(&w, &mut d);
/// assert_eq!(d, [1.0, -0.5, -1.0]);
/// ```
#[derive(Clone, Debug)]
pub struct ClipValue {
    /// The bound.
    pub thresh: f64,
}

impl ClipValue {
    /// Clipping to `[-thresh, thresh]`.
    ///
    /// ```
    /// assert_eq!(flux_optim::ClipValue::new(1.0).thresh, 1.0);
    /// ```
    pub fn new(thresh: f64) -> ClipValue {
        ClipValue { thresh }
    }
}

impl Default for ClipValue {
    /// Optimisers.jl's default bound, 10.
    fn default() -> Self {
        ClipValue::new(10.0)
    }
}

impl Optimiser for ClipValue {
    fn apply_step(&mut self, _p: &Var, delta: &mut [f64]) {
        for d in delta {
            *d = d.clamp(-self.thresh, self.thresh);
        }
    }
    fn name(&self) -> String {
        format!("ClipValue({:?})", self.thresh)
    }
    config_methods!("ClipValue"; thresh);
}

/// Rescales each parameter's gradient so that its L2 norm is at most `thresh` (Flux ≥ 0.11's
/// `ClipNorm(thresh)`: `if ‖g‖ > thresh { g *= thresh/‖g‖ }`, per parameter). PyTorch's
/// `clip_grad_norm_` divides by `‖g‖ + 1e-6` instead and, given several tensors, uses their
/// joint norm; applied per tensor it agrees to about `1e-6/‖g‖` relative.
///
/// ```
/// use flux_optim::{ClipNorm, Optimiser};
/// let w = flux_autograd::param(flux_tensor::Tensor::zeros(&[2]));
/// let mut d = [3.0, 4.0];
/// ClipNorm::new(1.0).apply_step(&w, &mut d);
/// assert!((d[0] - 0.6).abs() < 1e-12 && (d[1] - 0.8).abs() < 1e-12);
/// ```
#[derive(Clone, Debug)]
pub struct ClipNorm {
    /// The largest norm allowed.
    pub thresh: f64,
}

impl ClipNorm {
    /// Clipping to norm `thresh`.
    ///
    /// ```
    /// assert_eq!(flux_optim::ClipNorm::new(1.0).thresh, 1.0);
    /// ```
    pub fn new(thresh: f64) -> ClipNorm {
        ClipNorm { thresh }
    }
}

impl Default for ClipNorm {
    /// Optimisers.jl's default bound, 10.
    fn default() -> Self {
        ClipNorm::new(10.0)
    }
}

impl Optimiser for ClipNorm {
    fn apply_step(&mut self, _p: &Var, delta: &mut [f64]) {
        let norm = delta.iter().map(|d| d * d).sum::<f64>().sqrt();
        if norm > self.thresh {
            let s = self.thresh / norm;
            for d in delta {
                *d *= s;
            }
        }
    }
    fn name(&self) -> String {
        format!("ClipNorm({:?})", self.thresh)
    }
    config_methods!("ClipNorm"; thresh);
}

/// Exponential learning-rate decay (Flux's `ExpDecay(η = 0.001, decay = 0.1, decay_step = 1000,
/// clip = 1e-4)`): multiplies the step by `η`, and every `decay_step` steps sets
/// `η = max(η·decay, clip)` (the decay happens at the step whose count is a multiple of
/// `decay_step`, before it is applied, once per optimiser step however many parameters there
/// are). Compose it **after** a rule to scale that rule's step, with `η = 1`:
/// `optimiser_chain![Adam::new(1e-3), ExpDecay::new(1.0)]` (placed before Adam the scaling would
/// cancel out in Adam's normalisation). The same trajectory as PyTorch's `StepLR(step_size,
/// gamma=decay)` when the scheduler is stepped before the optimiser.
///
/// Flux 0.10 decayed by `decay^(decay_step/n)` at step `n` (so by less and less); this is the
/// later (Flux ≥ 0.11) form. The current `η` is [`Optimiser::lr`], saved with the state.
///
/// ```
/// use flux_optim::{ExpDecay, Optimiser};
/// let w = flux_autograd::param(0.0);
/// let mut opt = ExpDecay::new(1.0).decay(0.5).decay_step(2);
/// let steps: Vec<f64> = (0..5).map(|_| { let mut d = [1.0]; opt.apply_step(&w, &mut d); d[0] }).collect();
/// assert_eq!(steps, vec![1.0, 0.5, 0.5, 0.25, 0.25]);
/// ```
#[derive(Clone, Debug)]
pub struct ExpDecay {
    /// The current factor η.
    pub eta: f64,
    /// The factor applied every `decay_step` steps.
    pub decay: f64,
    /// Steps between decays.
    pub decay_step: u64,
    /// The smallest η.
    pub clip: f64,
    decayed_at: u64,
    counts: StateMap<0, 1>,
}

impl ExpDecay {
    /// A schedule starting at `eta` with Flux's `decay = 0.1`, `decay_step = 1000`,
    /// `clip = 1e-4`.
    ///
    /// ```
    /// assert_eq!(flux_optim::ExpDecay::new(1.0).decay_step, 1000);
    /// ```
    pub fn new(eta: f64) -> ExpDecay {
        ExpDecay { eta, decay: 0.1, decay_step: 1000, clip: 1e-4, decayed_at: 0, counts: StateMap::new([], ["count"]) }
    }

    /// Sets the factor.
    ///
    /// ```
    /// assert_eq!(flux_optim::ExpDecay::new(1.0).decay(0.5).decay, 0.5);
    /// ```
    pub fn decay(mut self, decay: f64) -> Self {
        self.decay = decay;
        self
    }

    /// Sets the number of steps between decays (at least 1).
    ///
    /// ```
    /// assert_eq!(flux_optim::ExpDecay::new(1.0).decay_step(10).decay_step, 10);
    /// ```
    pub fn decay_step(mut self, steps: u64) -> Self {
        self.decay_step = steps.max(1);
        self
    }

    /// Sets the smallest η.
    ///
    /// ```
    /// assert_eq!(flux_optim::ExpDecay::new(1.0).clip(1e-3).clip, 1e-3);
    /// ```
    pub fn clip(mut self, clip: f64) -> Self {
        self.clip = clip;
        self
    }
}

impl Default for ExpDecay {
    fn default() -> Self {
        ExpDecay::new(0.001)
    }
}

impl Optimiser for ExpDecay {
    fn apply_step(&mut self, p: &Var, delta: &mut [f64]) {
        let slot = self.counts.get_or_init(p.id(), 0, 0.0, [0.0]);
        slot.scalars[0] += 1.0;
        let n = slot.scalars[0] as u64;
        if n.is_multiple_of(self.decay_step.max(1)) && n > self.decayed_at {
            self.eta = (self.eta * self.decay).max(self.clip);
            self.decayed_at = n;
        }
        for d in delta {
            *d *= self.eta;
        }
    }
    fn name(&self) -> String {
        format!("ExpDecay({:?}, {:?}, {:?}, {:?})", self.eta, self.decay, self.decay_step, self.clip)
    }
    lr_methods!();
    fn config_json(&self) -> Value {
        json!({"rule": "ExpDecay", "eta": self.eta, "decay": self.decay, "decay_step": self.decay_step, "clip": self.clip, "decayed_at": self.decayed_at})
    }
    fn check_config_json(&self, v: &Value) -> Result<(), String> {
        let rule = v.get("rule").and_then(Value::as_str);
        if rule != Some("ExpDecay") {
            return Err(format!("saved rule {rule:?} does not match ExpDecay"));
        }
        for key in ["eta", "decay", "clip"] {
            config_num(v, key)?;
        }
        for key in ["decay_step", "decayed_at"] {
            v.get(key).and_then(Value::as_u64).ok_or_else(|| format!("saved hyperparameter `{key}` is missing or not a whole number"))?;
        }
        Ok(())
    }
    fn load_config_json(&mut self, v: &Value) {
        let num = |k: &str, old: f64| v.get(k).and_then(Value::as_f64).unwrap_or(old);
        self.eta = num("eta", self.eta);
        self.decay = num("decay", self.decay);
        self.clip = num("clip", self.clip);
        self.decay_step = v.get("decay_step").and_then(Value::as_u64).unwrap_or(self.decay_step).max(1);
        self.decayed_at = v.get("decayed_at").and_then(Value::as_u64).unwrap_or(self.decayed_at);
    }
    fn clear_state(&mut self) {
        self.counts.map.clear();
        self.decayed_at = 0;
    }
    fn param_state_json(&self, id: u64) -> Option<Value> {
        self.counts.to_json(id)
    }
    fn check_param_state_json(&self, v: &Value, _numel: usize) -> Result<(), String> {
        self.counts.check(v, 0)
    }
    fn load_param_state_json(&mut self, id: u64, v: &Value) {
        self.counts.load(id, v)
    }
}

/// Inverse time decay (Flux's `InvDecay(γ = 0.001)`): at a parameter's `n`-th step (from 1)
/// multiplies the step by `1 / (1 + γ·n)`. Compose it after a rule, like [`ExpDecay`].
///
/// ```
/// use flux_optim::{InvDecay, Optimiser};
/// let w = flux_autograd::param(0.0);
/// let mut opt = InvDecay::new(1.0);
/// let mut d = [1.0];
/// opt.apply_step(&w, &mut d);
/// assert_eq!(d[0], 0.5);
/// ```
#[derive(Clone, Debug)]
pub struct InvDecay {
    /// γ.
    pub gamma: f64,
    counts: StateMap<0, 1>,
}

impl InvDecay {
    /// Inverse decay with rate `gamma`.
    ///
    /// ```
    /// assert_eq!(flux_optim::InvDecay::new(0.01).gamma, 0.01);
    /// ```
    pub fn new(gamma: f64) -> InvDecay {
        InvDecay { gamma, counts: StateMap::new([], ["n"]) }
    }
}

impl Default for InvDecay {
    fn default() -> Self {
        InvDecay::new(0.001)
    }
}

impl Optimiser for InvDecay {
    fn apply_step(&mut self, p: &Var, delta: &mut [f64]) {
        let slot = self.counts.get_or_init(p.id(), 0, 0.0, [1.0]);
        let n = slot.scalars[0];
        slot.scalars[0] = n + 1.0;
        let s = 1.0 / (1.0 + self.gamma * n);
        for d in delta {
            *d *= s;
        }
    }
    fn name(&self) -> String {
        format!("InvDecay({:?})", self.gamma)
    }
    config_methods!("InvDecay"; gamma);
    fn clear_state(&mut self) {
        self.counts.map.clear();
    }
    fn param_state_json(&self, id: u64) -> Option<Value> {
        self.counts.to_json(id)
    }
    fn check_param_state_json(&self, v: &Value, _numel: usize) -> Result<(), String> {
        self.counts.check(v, 0)
    }
    fn load_param_state_json(&mut self, id: u64, v: &Value) {
        self.counts.load(id, v)
    }
}

display_by_name!(
    Descent,
    Momentum,
    Nesterov,
    RMSProp,
    Adam,
    AdaMax,
    AdaGrad,
    AdaDelta,
    AMSGrad,
    NAdam,
    AdamW,
    WeightDecay,
    ClipValue,
    ClipNorm,
    ExpDecay,
    InvDecay
);

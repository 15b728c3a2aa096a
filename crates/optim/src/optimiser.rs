//! The [`Optimiser`] trait (Flux's `apply!` plus `update!`), its error type, and saving and
//! loading optimiser state next to a model.

use std::collections::HashMap;
use std::path::Path;

use flux_autograd::{Grads, Params, Var};
use flux_layers::{named_params, Layer};
use flux_tensor::Tensor;
use serde_json::{json, Map, Value};

/// The format tag written into saved optimiser state.
///
/// ```
/// assert!(!flux_optim::STATE_FORMAT.is_empty());
/// ```
pub const STATE_FORMAT: &str = "flux-optim/1";

/// Errors from optimisers, the training loop, the data loader and saved optimiser state. Every
/// error that comes from loading state means that nothing was changed.
///
/// ```
/// use flux_optim::{Adam, Optimiser, OptimError};
/// use flux_autograd::{param, params, Params};
/// let w = param(1.0);
/// let gs = flux_autograd::gradient_params(|| w.powi(2), &params![&w]);
/// let other = param(2.0);
/// let e = Adam::new(0.1).try_update(&params![&other], &gs).unwrap_err();
/// assert!(matches!(e, OptimError::MissingGradient { .. }));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum OptimError {
    /// A parameter in the `Params` has no gradient in the `Grads`.
    #[error("update: parameter #{index} (shape {shape:?}) has no gradient in the Grads")]
    MissingGradient {
        /// Its position in the `Params`.
        index: usize,
        /// Its shape.
        shape: Vec<usize>,
    },
    /// A gradient whose shape differs from its parameter's.
    #[error("update: gradient of shape {grad:?} for a parameter of shape {param:?}")]
    GradShape {
        /// The parameter's shape.
        param: Vec<usize>,
        /// The gradient's shape.
        grad: Vec<usize>,
    },
    /// A parameter that is not a leaf (the result of an operation) cannot be updated in place.
    #[error("update: only a leaf (a param) can be updated in place, got the result of {op}")]
    NotALeaf {
        /// The operation that produced it.
        op: &'static str,
    },
    /// Saved optimiser state that does not fit this optimiser or this model.
    #[error("load optimiser state: {0}; the optimiser was left unchanged")]
    State(String),
    /// Reading or writing a state file failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// `save_state` or `load_state`.
        op: &'static str,
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The state file is not JSON.
    #[error("load optimiser state {path}: malformed file: {source}; the optimiser was left unchanged")]
    Json {
        /// The file.
        path: String,
        /// The parser's error.
        source: serde_json::Error,
    },
    /// Bad data for a `DataLoader` or a training loop.
    #[error("{0}")]
    Data(String),
    /// The loss was NaN or infinite; the parameters were not updated at that step.
    #[error("train: the loss is {loss} at step {step}; the parameters were not updated at that step")]
    NonFiniteLoss {
        /// The 1-based step.
        step: usize,
        /// The loss value.
        loss: f64,
    },
    /// A training callback returned an error (a checkpoint that could not be written, say);
    /// the update of that step was applied, and the loop stopped.
    #[error("train: the callback failed at step {step}: {source}")]
    Callback {
        /// The 1-based step.
        step: usize,
        /// The callback's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// An optimisation rule: Flux's `apply!` ([`Optimiser::apply_step`]) plus the `update!` that
/// uses it ([`Optimiser::update`]).
///
/// Per-parameter state (moments, step counts) is keyed by the parameter's identity
/// ([`Var::id`]), so converting a model's dtype in place keeps it. Only `apply_step` and `name`
/// are required; a rule with state also implements the `*_json` methods so that its state can be
/// saved ([`Optimiser::state_json`]) and loaded ([`Optimiser::load_state_json`]).
///
/// ```
/// use flux_optim::{Adam, Optimiser};
/// use flux_autograd::{gradient_params, param, params};
/// let w = param(3.0);
/// let ps = params![&w];
/// let mut opt = Adam::new(0.1);
/// for _ in 0..100 {
///     let gs = gradient_params(|| w.powi(2), &ps);
///     opt.update(&ps, &gs);
/// }
/// assert!(w.item().abs() < 0.5);
/// ```
pub trait Optimiser: Send {
    /// Flux's `apply!(opt, x, Δ)`: on entry `delta` holds the gradient of `p` (or the output of
    /// the previous rule in a chain); on exit it holds the step that will be **subtracted** from
    /// `p`. Updates the rule's state for `p`.
    ///
    /// ```
    /// use flux_optim::{Descent, Optimiser};
    /// let w = flux_autograd::param(1.0);
    /// let mut d = vec![2.0];
    /// Descent::new(0.1).apply_step(&w, &mut d);
    /// assert!((d[0] - 0.2).abs() < 1e-12);
    /// ```
    fn apply_step(&mut self, p: &Var, delta: &mut [f64]);

    /// How the rule prints: `Adam(0.001, (0.9, 0.999))`.
    ///
    /// ```
    /// use flux_optim::{Adam, Optimiser};
    /// assert_eq!(Adam::new(0.001).name(), "Adam(0.001, (0.9, 0.999))");
    /// ```
    fn name(&self) -> String;

    /// [`Optimiser::apply_step`] on tensors: the step Δ to subtract, for parameter `p` and its
    /// gradient `grad` (Δ has the gradient's shape; computed in f64, returned as f64).
    ///
    /// ```
    /// use flux_optim::{Descent, Optimiser};
    /// let w = flux_autograd::param(1.0);
    /// let d = Descent::new(0.5).apply(&w, &flux_tensor::Tensor::scalar(2.0));
    /// assert_eq!(d.item(), 1.0);
    /// ```
    fn apply(&mut self, p: &Var, grad: &Tensor) -> Tensor {
        let mut d = grad.to_vec();
        self.apply_step(p, &mut d);
        Tensor::from_vec(d, grad.shape())
    }

    /// One step for one parameter: `p -= apply(p, grad)` in place (Flux's `update!(opt, x, x̄)`).
    /// Checks the shape and that `p` is a leaf first; on error nothing changes.
    ///
    /// ```
    /// use flux_optim::{Descent, Optimiser};
    /// let w = flux_autograd::param(1.0);
    /// Descent::new(0.5).step(&w, &flux_tensor::Tensor::scalar(2.0)).unwrap();
    /// assert_eq!(w.item(), 0.0);
    /// ```
    fn step(&mut self, p: &Var, grad: &Tensor) -> Result<(), OptimError> {
        check_pair(p, grad)?;
        let mut d = grad.to_vec();
        self.apply_step(p, &mut d);
        subtract_in_place(p, &d);
        Ok(())
    }

    /// One optimisation step over every parameter in `ps`, in place (SPEC's
    /// `opt.update(&ps, &grads)`; Flux's `update!(opt, ps, gs)`). Panics with the message of
    /// [`Optimiser::try_update`]'s error.
    ///
    /// ```
    /// use flux_optim::{Descent, Optimiser};
    /// use flux_autograd::{gradient_params, param, params};
    /// let w = param(1.0);
    /// let ps = params![&w];
    /// let gs = gradient_params(|| w.powi(2), &ps);
    /// Descent::new(0.25).update(&ps, &gs);
    /// assert_eq!(w.item(), 0.5);
    /// ```
    fn update(&mut self, ps: &Params, gs: &Grads) {
        self.try_update(ps, gs).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Fallible [`Optimiser::update`]: checks every parameter first (a gradient exists, shapes
    /// agree, the parameter is a leaf), so on error nothing was changed.
    ///
    /// ```
    /// use flux_optim::{Descent, Optimiser};
    /// use flux_autograd::{gradient_params, param, params};
    /// let w = param(1.0);
    /// let gs = gradient_params(|| w.powi(2), &params![&w]);
    /// assert!(Descent::new(0.1).try_update(&params![&param(0.0)], &gs).is_err());
    /// assert_eq!(w.item(), 1.0);
    /// ```
    fn try_update(&mut self, ps: &Params, gs: &Grads) -> Result<(), OptimError> {
        let mut pairs = Vec::with_capacity(ps.len());
        for (index, p) in ps.iter().enumerate() {
            let g = gs.get(p).ok_or_else(|| OptimError::MissingGradient { index, shape: p.shape().to_vec() })?;
            let g = g.data();
            check_pair(p, &g)?;
            pairs.push((p, g));
        }
        for (p, g) in pairs {
            let mut d = g.to_vec();
            self.apply_step(p, &mut d);
            subtract_in_place(p, &d);
        }
        Ok(())
    }

    /// The learning rate, for rules that have one (`None` for clipping and weight decay). For an
    /// [`crate::OptimiserChain`], the first member's that has one.
    ///
    /// ```
    /// use flux_optim::{Adam, ClipNorm, Optimiser};
    /// assert_eq!(Adam::new(0.01).lr(), Some(0.01));
    /// assert_eq!(ClipNorm::new(1.0).lr(), None);
    /// ```
    fn lr(&self) -> Option<f64> {
        None
    }

    /// Changes the learning rate mid-training, keeping all state (Optimisers.jl's `adjust!`).
    /// A rule without a learning rate ignores it.
    ///
    /// ```
    /// use flux_optim::{Adam, Optimiser};
    /// let mut opt = Adam::new(0.01);
    /// opt.set_lr(0.001);
    /// assert_eq!(opt.lr(), Some(0.001));
    /// ```
    fn set_lr(&mut self, _lr: f64) {}

    /// Forgets all per-parameter state (moments, step counts), keeping the hyperparameters.
    ///
    /// ```
    /// use flux_optim::{Momentum, Optimiser};
    /// let w = flux_autograd::param(1.0);
    /// let mut opt = Momentum::new(0.1);
    /// opt.apply_step(&w, &mut [1.0]);
    /// opt.clear_state();
    /// assert!(opt.param_state_json(w.id()).is_none());
    /// ```
    fn clear_state(&mut self) {}

    /// The hyperparameters as JSON: `{"rule": "Adam", "eta": 0.001, ...}`. The default gives
    /// `{"rule": name}`.
    ///
    /// ```
    /// use flux_optim::{Adam, Optimiser};
    /// assert_eq!(Adam::new(0.5).config_json()["eta"], 0.5);
    /// ```
    fn config_json(&self) -> Value {
        json!({ "rule": self.name() })
    }

    /// Checks hyperparameters saved by [`Optimiser::config_json`] against this rule (same rule,
    /// every number present). Changes nothing.
    ///
    /// ```
    /// use flux_optim::{Adam, Descent, Optimiser};
    /// assert!(Adam::new(0.1).check_config_json(&Descent::new(0.1).config_json()).is_err());
    /// ```
    fn check_config_json(&self, v: &Value) -> Result<(), String> {
        let own = self.config_json();
        if v.get("rule") == own.get("rule") {
            Ok(())
        } else {
            Err(format!("saved rule {} does not match {}", v.get("rule").unwrap_or(&Value::Null), own["rule"]))
        }
    }

    /// Sets the hyperparameters from JSON that [`Optimiser::check_config_json`] accepted.
    ///
    /// ```
    /// use flux_optim::{Adam, Optimiser};
    /// let mut opt = Adam::new(0.1);
    /// opt.load_config_json(&Adam::new(0.5).config_json());
    /// assert_eq!(opt.lr(), Some(0.5));
    /// ```
    fn load_config_json(&mut self, _v: &Value) {}

    /// The state kept for the parameter with identity `id`, as JSON (`None` if the rule has no
    /// state for it, e.g. before its first step).
    ///
    /// ```
    /// use flux_optim::{Adam, Optimiser};
    /// let w = flux_autograd::param(1.0);
    /// let mut opt = Adam::new(0.1);
    /// assert!(opt.param_state_json(w.id()).is_none());
    /// opt.apply_step(&w, &mut [1.0]);
    /// assert!(opt.param_state_json(w.id()).is_some());
    /// ```
    fn param_state_json(&self, _id: u64) -> Option<Value> {
        None
    }

    /// Checks saved per-parameter state for a parameter with `numel` elements. Changes nothing.
    ///
    /// ```
    /// use flux_optim::{Adam, Optimiser};
    /// let opt = Adam::new(0.1);
    /// assert!(opt.check_param_state_json(&serde_json::json!({"mt": [1.0]}), 1).is_err());
    /// ```
    fn check_param_state_json(&self, v: &Value, _numel: usize) -> Result<(), String> {
        if v.is_null() {
            Ok(())
        } else {
            Err(format!("{} keeps no per-parameter state, but some was saved", self.name()))
        }
    }

    /// Sets (or with `Value::Null`, forgets) the state for parameter `id` from JSON that
    /// [`Optimiser::check_param_state_json`] accepted.
    ///
    /// ```
    /// use flux_optim::{Momentum, Optimiser};
    /// let w = flux_autograd::param(1.0);
    /// let mut opt = Momentum::new(0.1);
    /// opt.load_param_state_json(w.id(), &serde_json::json!({"velocity": [0.5]}));
    /// assert_eq!(opt.param_state_json(w.id()).unwrap()["velocity"][0], 0.5);
    /// ```
    fn load_param_state_json(&mut self, _id: u64, _v: &Value) {}

    /// The optimiser's state for every parameter of `model`, keyed by structural path (from
    /// [`flux_layers::named_params`]), with its hyperparameters:
    /// `{"format": "flux-optim/1", "optimiser": {...}, "params": {"0.weight": {"shape": [..],
    /// "state": {...}}, ...}}`.
    ///
    /// ```
    /// use flux_optim::{Adam, Optimiser};
    /// use flux_layers::{identity, Dense};
    /// let m = Dense::new(2, 1, identity);
    /// let s = Adam::new(0.1).state_json(&m);
    /// assert!(s["params"]["weight"]["state"].is_null());
    /// ```
    fn state_json(&self, model: &(impl Layer + ?Sized)) -> Value
    where
        Self: Sized,
    {
        self.state_json_named(&named_params(model))
    }

    /// [`Optimiser::state_json`] for parameters named by hand (for models that are not layers).
    ///
    /// ```
    /// use flux_optim::{Momentum, Optimiser};
    /// let w = flux_autograd::param(1.0);
    /// let s = Momentum::new(0.1).state_json_named(&[("w".to_string(), w)]);
    /// assert_eq!(s["params"]["w"]["shape"], serde_json::json!([]));
    /// ```
    fn state_json_named(&self, named: &[(String, Var)]) -> Value
    where
        Self: Sized,
    {
        let mut ps = Map::new();
        for (path, p) in named {
            let state = self.param_state_json(p.id()).unwrap_or(Value::Null);
            ps.insert(path.clone(), json!({ "shape": p.shape().to_vec(), "state": state }));
        }
        json!({ "format": STATE_FORMAT, "optimiser": self.config_json(), "params": Value::Object(ps) })
    }

    /// Loads state saved by [`Optimiser::state_json`] into this optimiser for the parameters of
    /// `model`. Everything is checked first (format, the rule and its structure, the same set of
    /// parameter paths, each shape, each state vector's length); on error nothing changes.
    /// Restores the hyperparameters too (a decayed learning rate continues where it was).
    ///
    /// ```
    /// use flux_optim::{Adam, Momentum, Optimiser};
    /// use flux_layers::{identity, Dense};
    /// let m = Dense::new(2, 1, identity);
    /// let saved = Adam::new(0.1).state_json(&m);
    /// assert!(Adam::new(0.5).load_state_json(&m, &saved).is_ok());
    /// assert!(Momentum::new(0.5).load_state_json(&m, &saved).is_err());
    /// ```
    fn load_state_json(&mut self, model: &(impl Layer + ?Sized), v: &Value) -> Result<(), OptimError>
    where
        Self: Sized,
    {
        self.load_state_json_named(&named_params(model), v)
    }

    /// [`Optimiser::load_state_json`] for parameters named by hand.
    ///
    /// ```
    /// use flux_optim::{Momentum, Optimiser};
    /// let w = flux_autograd::param(1.0);
    /// let named = vec![("w".to_string(), w.clone())];
    /// let mut a = Momentum::new(0.1);
    /// a.apply_step(&w, &mut [1.0]);
    /// let mut b = Momentum::new(0.1);
    /// b.load_state_json_named(&named, &a.state_json_named(&named)).unwrap();
    /// assert_eq!(b.param_state_json(w.id()), a.param_state_json(w.id()));
    /// ```
    fn load_state_json_named(&mut self, named: &[(String, Var)], v: &Value) -> Result<(), OptimError>
    where
        Self: Sized,
    {
        let bad = |s: String| OptimError::State(s);
        match v.get("format").and_then(Value::as_str) {
            Some(STATE_FORMAT) => {}
            other => return Err(bad(format!("format is {other:?}, expected \"{STATE_FORMAT}\""))),
        }
        let config = v.get("optimiser").ok_or_else(|| bad("no \"optimiser\" entry".into()))?;
        self.check_config_json(config).map_err(bad)?;
        let saved = v.get("params").and_then(Value::as_object).ok_or_else(|| bad("no \"params\" object".into()))?;
        let mut by_path: HashMap<&str, &Var> = HashMap::new();
        for (path, p) in named {
            by_path.insert(path.as_str(), p);
        }
        for key in saved.keys() {
            if !by_path.contains_key(key.as_str()) {
                return Err(bad(format!("saved parameter `{key}` is not in the model")));
            }
        }
        let mut plan = Vec::with_capacity(named.len());
        for (path, p) in named {
            let entry = saved.get(path).ok_or_else(|| bad(format!("parameter `{path}` is missing from the saved state")))?;
            let shape: Option<Vec<usize>> = entry.get("shape").and_then(|s| serde_json::from_value(s.clone()).ok());
            let shape = shape.ok_or_else(|| bad(format!("parameter `{path}`: no valid \"shape\"")))?;
            if shape.as_slice() != p.shape().dims() {
                return Err(bad(format!("parameter `{path}`: saved shape {shape:?}, the model's is {:?}", p.shape().dims())));
            }
            let state = entry.get("state").unwrap_or(&Value::Null);
            self.check_param_state_json(state, p.numel()).map_err(|e| bad(format!("parameter `{path}`: {e}")))?;
            plan.push((p.id(), state));
        }
        self.load_config_json(config);
        for (id, state) in plan {
            self.load_param_state_json(id, state);
        }
        Ok(())
    }

    /// Writes [`Optimiser::state_json`] to a file.
    ///
    /// ```
    /// use flux_optim::{Adam, Optimiser};
    /// use flux_layers::{identity, Dense};
    /// let m = Dense::new(2, 1, identity);
    /// let path = std::env::temp_dir().join("flux_optim_doc_save.json");
    /// Adam::new(0.1).save_state(&m, &path).unwrap();
    /// Adam::new(0.1).load_state(&m, &path).unwrap();
    /// ```
    fn save_state(&self, model: &(impl Layer + ?Sized), path: impl AsRef<Path>) -> Result<(), OptimError>
    where
        Self: Sized,
    {
        let path = path.as_ref();
        let text = serde_json::to_string(&self.state_json(model)).expect("optimiser state serialises");
        std::fs::write(path, text).map_err(|source| OptimError::Io { op: "save_state", path: path.display().to_string(), source })
    }

    /// Reads a file written by [`Optimiser::save_state`] and loads it as
    /// [`Optimiser::load_state_json`] does (checked first; on error nothing changes).
    ///
    /// ```
    /// use flux_optim::{Adam, Optimiser};
    /// use flux_layers::{identity, Dense};
    /// let m = Dense::new(2, 1, identity);
    /// assert!(Adam::new(0.1).load_state(&m, "/nonexistent/opt.json").is_err());
    /// ```
    fn load_state(&mut self, model: &(impl Layer + ?Sized), path: impl AsRef<Path>) -> Result<(), OptimError>
    where
        Self: Sized,
    {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| OptimError::Io { op: "load_state", path: path.display().to_string(), source })?;
        let v: Value = serde_json::from_str(&text).map_err(|source| OptimError::Json { path: path.display().to_string(), source })?;
        self.load_state_json(model, &v)
    }
}

impl<O: Optimiser + ?Sized> Optimiser for Box<O> {
    fn apply_step(&mut self, p: &Var, delta: &mut [f64]) {
        (**self).apply_step(p, delta)
    }
    fn name(&self) -> String {
        (**self).name()
    }
    fn lr(&self) -> Option<f64> {
        (**self).lr()
    }
    fn set_lr(&mut self, lr: f64) {
        (**self).set_lr(lr)
    }
    fn clear_state(&mut self) {
        (**self).clear_state()
    }
    fn config_json(&self) -> Value {
        (**self).config_json()
    }
    fn check_config_json(&self, v: &Value) -> Result<(), String> {
        (**self).check_config_json(v)
    }
    fn load_config_json(&mut self, v: &Value) {
        (**self).load_config_json(v)
    }
    fn param_state_json(&self, id: u64) -> Option<Value> {
        (**self).param_state_json(id)
    }
    fn check_param_state_json(&self, v: &Value, numel: usize) -> Result<(), String> {
        (**self).check_param_state_json(v, numel)
    }
    fn load_param_state_json(&mut self, id: u64, v: &Value) {
        (**self).load_param_state_json(id, v)
    }
}

fn check_pair(p: &Var, g: &Tensor) -> Result<(), OptimError> {
    if !p.is_leaf() {
        return Err(OptimError::NotALeaf { op: p.op_name() });
    }
    if g.shape().dims() != p.shape().dims() {
        return Err(OptimError::GradShape { param: p.shape().to_vec(), grad: g.shape().to_vec() });
    }
    Ok(())
}

/// `p -= delta`, computed in f64 and stored in `p`'s dtype.
fn subtract_in_place(p: &Var, delta: &[f64]) {
    let x = p.data();
    let mut v = x.to_vec();
    for (xi, di) in v.iter_mut().zip(delta) {
        *xi -= di;
    }
    p.set_data(Tensor::from_vec(v, x.shape()).to_dtype(x.dtype()));
}

/// Per-parameter state: `V` vectors (one number per element of the parameter) and `S` scalars,
/// keyed by parameter identity, with the names they are saved under.
#[derive(Clone, Debug)]
pub(crate) struct StateMap<const V: usize, const S: usize> {
    vec_names: [&'static str; V],
    scalar_names: [&'static str; S],
    pub(crate) map: HashMap<u64, Slot<V, S>>,
}

/// One parameter's state.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Slot<const V: usize, const S: usize> {
    pub(crate) vecs: [Vec<f64>; V],
    pub(crate) scalars: [f64; S],
}

impl<const V: usize, const S: usize> StateMap<V, S> {
    pub(crate) fn new(vec_names: [&'static str; V], scalar_names: [&'static str; S]) -> Self {
        StateMap { vec_names, scalar_names, map: HashMap::new() }
    }

    /// The slot for `id`, created with every vector filled with `fill` and the given scalars.
    pub(crate) fn get_or_init(&mut self, id: u64, numel: usize, fill: f64, scalars: [f64; S]) -> &mut Slot<V, S> {
        self.map.entry(id).or_insert_with(|| Slot { vecs: std::array::from_fn(|_| vec![fill; numel]), scalars })
    }

    pub(crate) fn to_json(&self, id: u64) -> Option<Value> {
        let slot = self.map.get(&id)?;
        let mut m = Map::new();
        for (name, v) in self.vec_names.iter().zip(&slot.vecs) {
            m.insert(name.to_string(), json!(v));
        }
        for (name, s) in self.scalar_names.iter().zip(&slot.scalars) {
            m.insert(name.to_string(), json!(s));
        }
        Some(Value::Object(m))
    }

    fn parse(&self, v: &Value, numel: usize) -> Result<Option<Slot<V, S>>, String> {
        if v.is_null() {
            return Ok(None);
        }
        let obj = v.as_object().ok_or_else(|| format!("state must be an object, got {v}"))?;
        for key in obj.keys() {
            if !self.vec_names.contains(&key.as_str()) && !self.scalar_names.contains(&key.as_str()) {
                return Err(format!("unknown state entry `{key}` (expected {:?} and {:?})", self.vec_names, self.scalar_names));
            }
        }
        let mut vecs: [Vec<f64>; V] = std::array::from_fn(|_| Vec::new());
        for (i, name) in self.vec_names.iter().enumerate() {
            let arr = obj.get(*name).and_then(Value::as_array).ok_or_else(|| format!("state entry `{name}` is missing or not an array"))?;
            if arr.len() != numel {
                return Err(format!("state entry `{name}` has {} numbers, the parameter has {numel} elements", arr.len()));
            }
            let mut out = Vec::with_capacity(numel);
            for x in arr {
                out.push(x.as_f64().ok_or_else(|| format!("state entry `{name}` holds a non-number: {x}"))?);
            }
            vecs[i] = out;
        }
        let mut scalars = [0.0; S];
        for (i, name) in self.scalar_names.iter().enumerate() {
            scalars[i] = obj.get(*name).and_then(Value::as_f64).ok_or_else(|| format!("state entry `{name}` is missing or not a number"))?;
        }
        Ok(Some(Slot { vecs, scalars }))
    }

    pub(crate) fn check(&self, v: &Value, numel: usize) -> Result<(), String> {
        self.parse(v, numel).map(|_| ())
    }

    /// Loads JSON that [`StateMap::check`] accepted (`null` forgets the parameter).
    pub(crate) fn load(&mut self, id: u64, v: &Value) {
        // The length was checked against the parameter before; re-parse with the saved length.
        let numel = self.vec_names.first().and_then(|n| v.get(*n)).and_then(Value::as_array).map_or(0, |a| a.len());
        match self.parse(v, numel) {
            Ok(Some(slot)) => {
                self.map.insert(id, slot);
            }
            _ => {
                self.map.remove(&id);
            }
        }
    }
}

/// Reads a number from a config object.
pub(crate) fn config_num(v: &Value, key: &str) -> Result<f64, String> {
    v.get(key).and_then(Value::as_f64).ok_or_else(|| format!("saved hyperparameter `{key}` is missing or not a number"))
}

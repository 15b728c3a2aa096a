//! [`OptimiserChain`]: several rules applied in order (Flux's `Optimiser(a, b, c...)`).

use std::fmt;

use flux_autograd::Var;
use serde_json::{json, Value};

use crate::optimiser::Optimiser;

/// Rules applied one after another: each turns the previous one's output into its own, and the
/// last result is the step (Flux's `Optimiser(o...)`, Optimisers.jl's `OptimiserChain`). Order
/// matters: clip first, then the rule, then schedules that scale the step.
///
/// ```
/// use flux_optim::{optimiser_chain, Adam, ClipNorm, ExpDecay, Optimiser, OptimiserChain};
/// let opt = optimiser_chain![ClipNorm::new(1.0), Adam::new(1e-3), ExpDecay::new(1.0)];
/// assert_eq!(opt.len(), 3);
/// assert_eq!(opt.name(), "OptimiserChain(ClipNorm(1.0), Adam(0.001, (0.9, 0.999)), ExpDecay(1.0, 0.1, 1000, 0.0001))");
/// let same = OptimiserChain::new(vec![Box::new(ClipNorm::new(1.0)), Box::new(Adam::new(1e-3))]);
/// assert_eq!(same.lr(), Some(1e-3));
/// ```
#[derive(Default)]
pub struct OptimiserChain {
    rules: Vec<Box<dyn Optimiser>>,
}

impl OptimiserChain {
    /// A chain of boxed rules, applied in order.
    ///
    /// ```
    /// use flux_optim::{Descent, OptimiserChain, WeightDecay};
    /// let c = OptimiserChain::new(vec![Box::new(WeightDecay::new(1e-4)), Box::new(Descent::new(0.1))]);
    /// assert_eq!(c.len(), 2);
    /// ```
    pub fn new(rules: Vec<Box<dyn Optimiser>>) -> OptimiserChain {
        OptimiserChain { rules }
    }

    /// Appends a rule (applied after the others).
    ///
    /// ```
    /// use flux_optim::{Descent, OptimiserChain, WeightDecay};
    /// let c = OptimiserChain::default().with(WeightDecay::new(1e-4)).with(Descent::new(0.1));
    /// assert_eq!(c.len(), 2);
    /// ```
    pub fn with(mut self, rule: impl Optimiser + 'static) -> Self {
        self.rules.push(Box::new(rule));
        self
    }

    /// Appends a rule in place.
    ///
    /// ```
    /// use flux_optim::{Descent, OptimiserChain};
    /// let mut c = OptimiserChain::default();
    /// c.push(Descent::new(0.1));
    /// assert_eq!(c.len(), 1);
    /// ```
    pub fn push(&mut self, rule: impl Optimiser + 'static) {
        self.rules.push(Box::new(rule));
    }

    /// How many rules.
    ///
    /// ```
    /// assert_eq!(flux_optim::OptimiserChain::default().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True when there are no rules (the chain then steps by the raw gradient).
    ///
    /// ```
    /// assert!(flux_optim::OptimiserChain::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rules, in order.
    ///
    /// ```
    /// use flux_optim::{optimiser_chain, Descent, Optimiser};
    /// let c = optimiser_chain![Descent::new(0.1)];
    /// assert_eq!(c.rules()[0].name(), "Descent(0.1)");
    /// ```
    pub fn rules(&self) -> &[Box<dyn Optimiser>] {
        &self.rules
    }

    /// The rules, mutably (to change one rule's hyperparameters).
    ///
    /// ```
    /// use flux_optim::{optimiser_chain, ClipNorm, Descent, Optimiser};
    /// let mut c = optimiser_chain![ClipNorm::new(1.0), Descent::new(0.1)];
    /// c.rules_mut()[1].set_lr(0.01);
    /// assert_eq!(c.lr(), Some(0.01));
    /// ```
    pub fn rules_mut(&mut self) -> &mut [Box<dyn Optimiser>] {
        &mut self.rules
    }
}

/// Builds an [`OptimiserChain`] from rules: `optimiser_chain![ClipNorm::new(1.0), Adam::new(1e-3)]`.
///
/// ```
/// use flux_optim::{optimiser_chain, Descent, WeightDecay};
/// assert_eq!(optimiser_chain![WeightDecay::new(1e-4), Descent::new(0.1)].len(), 2);
/// ```
#[macro_export]
macro_rules! optimiser_chain {
    ($($rule:expr),* $(,)?) => {
        $crate::OptimiserChain::new(vec![$(Box::new($rule) as Box<dyn $crate::Optimiser>),*])
    };
}

impl Optimiser for OptimiserChain {
    fn apply_step(&mut self, p: &Var, delta: &mut [f64]) {
        for r in &mut self.rules {
            r.apply_step(p, delta);
        }
    }
    fn name(&self) -> String {
        let names: Vec<String> = self.rules.iter().map(|r| r.name()).collect();
        format!("OptimiserChain({})", names.join(", "))
    }
    /// The first rule's learning rate that has one.
    fn lr(&self) -> Option<f64> {
        self.rules.iter().find_map(|r| r.lr())
    }
    /// Sets the learning rate of the first rule that has one.
    fn set_lr(&mut self, lr: f64) {
        if let Some(r) = self.rules.iter_mut().find(|r| r.lr().is_some()) {
            r.set_lr(lr);
        }
    }
    fn clear_state(&mut self) {
        for r in &mut self.rules {
            r.clear_state();
        }
    }
    fn config_json(&self) -> Value {
        json!({"rule": "OptimiserChain", "rules": self.rules.iter().map(|r| r.config_json()).collect::<Vec<_>>()})
    }
    fn check_config_json(&self, v: &Value) -> Result<(), String> {
        let rule = v.get("rule").and_then(Value::as_str);
        if rule != Some("OptimiserChain") {
            return Err(format!("saved rule {rule:?} does not match OptimiserChain"));
        }
        let rules = v.get("rules").and_then(Value::as_array).ok_or("saved OptimiserChain has no \"rules\" array")?;
        if rules.len() != self.rules.len() {
            return Err(format!("saved OptimiserChain has {} rules, this one {}", rules.len(), self.rules.len()));
        }
        for (i, (r, v)) in self.rules.iter().zip(rules).enumerate() {
            r.check_config_json(v).map_err(|e| format!("rule {i} of the chain: {e}"))?;
        }
        Ok(())
    }
    fn load_config_json(&mut self, v: &Value) {
        if let Some(rules) = v.get("rules").and_then(Value::as_array) {
            for (r, v) in self.rules.iter_mut().zip(rules) {
                r.load_config_json(v);
            }
        }
    }
    fn param_state_json(&self, id: u64) -> Option<Value> {
        let states: Vec<Value> = self.rules.iter().map(|r| r.param_state_json(id).unwrap_or(Value::Null)).collect();
        if states.iter().all(Value::is_null) {
            None
        } else {
            Some(Value::Array(states))
        }
    }
    fn check_param_state_json(&self, v: &Value, numel: usize) -> Result<(), String> {
        if v.is_null() {
            return Ok(());
        }
        let states = v.as_array().ok_or("the state of an OptimiserChain must be an array, one entry per rule")?;
        if states.len() != self.rules.len() {
            return Err(format!("saved state has {} entries for a chain of {} rules", states.len(), self.rules.len()));
        }
        for (i, (r, s)) in self.rules.iter().zip(states).enumerate() {
            r.check_param_state_json(s, numel).map_err(|e| format!("rule {i} of the chain: {e}"))?;
        }
        Ok(())
    }
    fn load_param_state_json(&mut self, id: u64, v: &Value) {
        let states = v.as_array();
        for (i, r) in self.rules.iter_mut().enumerate() {
            r.load_param_state_json(id, states.and_then(|s| s.get(i)).unwrap_or(&Value::Null));
        }
    }
}

impl fmt::Display for OptimiserChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl fmt::Debug for OptimiserChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

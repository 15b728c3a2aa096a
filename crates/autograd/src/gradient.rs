//! The user-facing calls: `gradient`, `gradients`, `gradient_params` (with [`Params`] and
//! [`Grads`]) and `update`. A gradient call made while another one is running on this thread
//! records its own backward pass, so the outer call can differentiate through it: nesting
//! needs no flag.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::ops::Index;

use flux_tensor::Tensor;

use crate::backward::{backward, backward_one};
use crate::error::AutogradError;
use crate::forward;
use crate::tape;
use crate::var::Var;

fn check_scalar(op: &'static str, y: &Var) {
    if y.numel() != 1 {
        panic!("{}", AutogradError::NotScalar { op, shape: y.shape().to_vec() });
    }
}

/// Should a gradient call record its backward pass? Yes inside another gradient call (so the
/// outer one can differentiate it) and inside a `jvp` (so the pass's values carry tangents).
pub(crate) fn records() -> bool {
    tape::depth() > 0 || forward::active()
}

/// The point a gradient call differentiates at, standing for `x`: inside an outer call a
/// tracked argument is wrapped (not copied) so that the outer call still sees through to it;
/// otherwise a fresh leaf holds the point, with `x`'s forward-mode tangents.
pub(crate) fn leaf_for(x: &Var, create_graph: bool) -> Var {
    if create_graph && x.is_tracked() {
        x.identity()
    } else {
        let leaf = Var::new_leaf(x.data());
        forward::alias(x, &leaf);
        leaf
    }
}

/// Shared by the explicit-argument calls: the value of `f` at `xs` and its gradients.
pub(crate) fn gradients_impl(f: impl FnOnce(&[Var]) -> Var, xs: &[Var], create_graph: bool, op: &'static str) -> (Var, Vec<Var>) {
    let leaves: Vec<Var> = xs.iter().map(|x| leaf_for(x, create_graph)).collect();
    let _depth = tape::Depth::enter();
    // the function is recorded even inside `no_grad` (or a custom op's backward): a gradient
    // call is an explicit request to differentiate
    let y = {
        let _rec = tape::Resume::new();
        f(&leaves)
    };
    check_scalar(op, &y);
    let grads = backward(&y, &leaves, create_graph, None);
    let gs = leaves.iter().zip(grads).map(|(l, g)| g.unwrap_or_else(|| Var::constant(l.data().zeros_like()))).collect();
    (y, gs)
}

/// The derivative of a scalar function at `x` (Tracker's `gradient(f, x)[1]`). Called inside
/// another gradient call, it records its backward pass so that the outer one can differentiate
/// it again: `gradient(|x| gradient(f, x), x)` is the second derivative. A closure that
/// captures is passed by reference (`&f`), since `&F` is `Fn` too.
///
/// ```
/// use flux_autograd::{gradient, Var};
/// let f = |x: &Var| 3.0 * x.powi(2) + 2.0 * x + 1.0;
/// let df = |x: &Var| gradient(f, x);
/// let d2f = |x: &Var| gradient(df, x);
/// assert_eq!(df(&Var::scalar(2.0)).item(), 14.0);
/// assert_eq!(d2f(&Var::scalar(2.0)).item(), 6.0);
/// ```
pub fn gradient(f: impl Fn(&Var) -> Var, x: &Var) -> Var {
    // `gradients_impl` for one argument, with no vectors (a scalar second derivative is a
    // handful of ops, where each allocation shows)
    let create_graph = records();
    let leaf = leaf_for(x, create_graph);
    let _depth = tape::Depth::enter();
    let y = {
        let _rec = tape::Resume::new();
        f(&leaf)
    };
    check_scalar("gradient", &y);
    backward_one(&y, &leaf, create_graph, None).unwrap_or_else(|| Var::constant(leaf.data().zeros_like()))
}

/// Like [`gradient`], but always records the backward pass, so the result is tracked even at
/// the top level (Tracker's `nest = true`: the notebook's `14.0 (tracked)`).
///
/// ```
/// use flux_autograd::{gradient_nested, Var};
/// let g = gradient_nested(|x: &Var| 3.0 * x.powi(2) + 2.0 * x + 1.0, &Var::scalar(2.0));
/// assert_eq!(format!("{g}"), "14.0 (tracked)");
/// ```
pub fn gradient_nested(f: impl Fn(&Var) -> Var, x: &Var) -> Var {
    let g = gradients_impl(|xs| f(&xs[0]), std::slice::from_ref(x), true, "gradient").1.remove(0);
    // A derivative that no longer depends on anything (6.0 for a quadratic) is still a tracked
    // value, as Tracker's: a leaf with no history, whose own derivative is zero.
    if g.is_tracked() {
        g
    } else {
        Var::new_leaf(g.data())
    }
}

/// Gradients with respect to several explicit arguments (Tracker's `gradient(f, xs...)`).
///
/// ```
/// use flux_autograd::{gradients, Var};
/// let g = gradients(|v: &[Var]| &v[0] * &v[2] + &v[1], &[2.0.into(), 3.0.into(), 4.0.into()]);
/// let g: Vec<f64> = g.iter().map(|g| g.item()).collect();
/// assert_eq!(g, vec![4.0, 1.0, 2.0]);
/// ```
pub fn gradients(f: impl Fn(&[Var]) -> Var, xs: &[Var]) -> Vec<Var> {
    gradients_impl(f, xs, records(), "gradients").1
}

/// Gradients of a zero-argument loss with respect to parameters (Flux's implicit style:
/// `gradient(() -> loss(x, y), params(m))`). A parameter the loss does not use gets zeros.
///
/// ```
/// use flux_autograd::{gradient_params, param, params};
/// let w = param(2.0);
/// let b = param(3.0);
/// let grads = gradient_params(|| &w * 4.0 + &b, &params![&w, &b]);
/// assert_eq!(grads[&w].item(), 4.0);
/// assert_eq!(grads[&b].item(), 1.0);
/// ```
pub fn gradient_params(f: impl FnMut() -> Var, ps: &Params) -> Grads {
    gradient_params_impl(f, ps, "gradient_params").1
}

/// Shared by `gradient_params` and `withgradient_params`: the loss and the gradients.
pub(crate) fn gradient_params_impl(mut f: impl FnMut() -> Var, ps: &Params, op: &'static str) -> (Var, Grads) {
    let create_graph = records();
    let _depth = tape::Depth::enter();
    let y = {
        let _rec = tape::Resume::new();
        f()
    };
    check_scalar(op, &y);
    let grads = backward(&y, &ps.list, create_graph, None);
    let map = ps.list.iter().zip(grads).map(|(p, g)| (p.id(), g.unwrap_or_else(|| Var::constant(p.data().zeros_like())))).collect();
    (y, Grads { params: ps.list.clone(), map })
}

/// An ordered set of parameters, de-duplicated by identity (Flux's `Params`).
///
/// ```
/// use flux_autograd::{param, params};
/// let w = param(1.0);
/// let ps = params![&w, &w];
/// assert_eq!(ps.len(), 1);
/// assert!(ps.contains(&w));
/// ```
#[derive(Clone, Default)]
pub struct Params {
    list: Vec<Var>,
    ids: HashSet<u64>,
}

impl Params {
    /// An empty set.
    ///
    /// ```
    /// assert!(flux_autograd::Params::new().is_empty());
    /// ```
    pub fn new() -> Params {
        Params::default()
    }

    /// Adds `p` unless it is already in (by identity).
    ///
    /// ```
    /// let mut ps = flux_autograd::Params::new();
    /// ps.push(&flux_autograd::param(1.0));
    /// assert_eq!(ps.len(), 1);
    /// ```
    pub fn push(&mut self, p: &Var) {
        if self.ids.insert(p.id()) {
            self.list.push(p.clone());
        }
    }

    /// The parameters in order.
    ///
    /// ```
    /// let ps = flux_autograd::params![&flux_autograd::param(1.0)];
    /// assert_eq!(ps.iter().count(), 1);
    /// ```
    pub fn iter(&self) -> std::slice::Iter<'_, Var> {
        self.list.iter()
    }

    /// How many.
    ///
    /// ```
    /// assert_eq!(flux_autograd::Params::new().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// True when empty.
    ///
    /// ```
    /// assert!(flux_autograd::Params::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Is `p` (by identity) in the set?
    ///
    /// ```
    /// let w = flux_autograd::param(1.0);
    /// assert!(!flux_autograd::Params::new().contains(&w));
    /// ```
    pub fn contains(&self, p: &Var) -> bool {
        self.ids.contains(&p.id())
    }

    /// The parameters as a slice.
    ///
    /// ```
    /// let ps = flux_autograd::params![&flux_autograd::param(1.0)];
    /// assert_eq!(ps.as_slice().len(), 1);
    /// ```
    pub fn as_slice(&self) -> &[Var] {
        &self.list
    }

    /// Total number of scalar parameters.
    ///
    /// ```
    /// let ps = flux_autograd::params![&flux_autograd::param(flux_tensor::Tensor::zeros(&[2, 3]))];
    /// assert_eq!(ps.numel(), 6);
    /// ```
    pub fn numel(&self) -> usize {
        self.list.iter().map(|p| p.numel()).sum()
    }
}

impl FromIterator<Var> for Params {
    fn from_iter<I: IntoIterator<Item = Var>>(iter: I) -> Params {
        let mut ps = Params::new();
        for p in iter {
            ps.push(&p);
        }
        ps
    }
}

impl<'a> FromIterator<&'a Var> for Params {
    fn from_iter<I: IntoIterator<Item = &'a Var>>(iter: I) -> Params {
        let mut ps = Params::new();
        for p in iter {
            ps.push(p);
        }
        ps
    }
}

impl<'a> IntoIterator for &'a Params {
    type Item = &'a Var;
    type IntoIter = std::slice::Iter<'a, Var>;
    fn into_iter(self) -> Self::IntoIter {
        self.list.iter()
    }
}

impl Extend<Var> for Params {
    fn extend<I: IntoIterator<Item = Var>>(&mut self, iter: I) {
        for p in iter {
            self.push(&p);
        }
    }
}

impl fmt::Display for Params {
    /// `Params([Float32[0.1 …] (tracked), Float32[0.0, 0.0] (tracked)])`, as Flux prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let items: Vec<String> = self.list.iter().map(|p| p.inline()).collect();
        write!(f, "Params([{}])", items.join(", "))
    }
}

impl fmt::Debug for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// Builds [`Params`] from references: `params![&w, &b]`.
///
/// ```
/// use flux_autograd::{param, params};
/// let (w, b) = (param(1.0), param(2.0));
/// assert_eq!(params![&w, &b].len(), 2);
/// ```
#[macro_export]
macro_rules! params {
    ($($p:expr),* $(,)?) => {{
        let mut ps = $crate::Params::new();
        $( ps.push($p); )*
        ps
    }};
}

/// Gradients by parameter, from [`gradient_params`]. `grads[&w]` panics for a value that was
/// not in the `Params` (see [`Grads::try_get`]).
///
/// ```
/// use flux_autograd::{gradient_params, param, params};
/// let w = param(3.0);
/// let gs = gradient_params(|| w.powi(2), &params![&w]);
/// assert_eq!(gs[&w].item(), 6.0);
/// assert_eq!(gs.len(), 1);
/// ```
#[derive(Clone)]
pub struct Grads {
    params: Vec<Var>,
    map: HashMap<u64, Var>,
}

impl Grads {
    /// The gradient of `p`, if `p` was differentiated.
    ///
    /// ```
    /// use flux_autograd::{gradient_params, param, params};
    /// let w = param(3.0);
    /// assert!(gradient_params(|| w.powi(2), &params![&w]).get(&w).is_some());
    /// ```
    pub fn get(&self, p: &Var) -> Option<&Var> {
        self.map.get(&p.id())
    }

    /// The gradient of `p`, or an error saying that `p` was not among the `Params`.
    ///
    /// ```
    /// use flux_autograd::{gradient_params, param, params};
    /// let w = param(3.0);
    /// assert!(gradient_params(|| w.powi(2), &params![&w]).try_get(&param(1.0)).is_err());
    /// ```
    pub fn try_get(&self, p: &Var) -> Result<&Var, AutogradError> {
        self.get(p).ok_or_else(|| AutogradError::NotInParams { shape: p.shape().to_vec() })
    }

    /// `(param, gradient)` pairs in the order of the `Params`.
    ///
    /// ```
    /// use flux_autograd::{gradient_params, param, params};
    /// let w = param(3.0);
    /// let gs = gradient_params(|| w.powi(2), &params![&w]);
    /// assert_eq!(gs.iter().count(), 1);
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = (&Var, &Var)> {
        self.params.iter().map(move |p| (p, &self.map[&p.id()]))
    }

    /// How many gradients.
    ///
    /// ```
    /// use flux_autograd::{gradient_params, params, Params, Var};
    /// assert_eq!(gradient_params(|| Var::scalar(1.0), &Params::new()).len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.params.len()
    }

    /// True when empty.
    ///
    /// ```
    /// use flux_autograd::{gradient_params, Params, Var};
    /// assert!(gradient_params(|| Var::scalar(1.0), &Params::new()).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// Replaces the gradient of `p` (for clipping or other gradient transforms).
    ///
    /// ```
    /// use flux_autograd::{gradient_params, param, params, Var};
    /// let w = param(3.0);
    /// let mut gs = gradient_params(|| w.powi(2), &params![&w]);
    /// gs.set(&w, Var::scalar(1.0));
    /// assert_eq!(gs[&w].item(), 1.0);
    /// ```
    pub fn set(&mut self, p: &Var, g: Var) {
        if !self.map.contains_key(&p.id()) {
            self.params.push(p.clone());
        }
        self.map.insert(p.id(), g);
    }
}

impl Index<&Var> for Grads {
    type Output = Var;
    fn index(&self, p: &Var) -> &Var {
        self.try_get(p).unwrap_or_else(|e| panic!("{e}"))
    }
}

impl fmt::Display for Grads {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Grads(...)")
    }
}

impl fmt::Debug for Grads {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Grads({} params)", self.params.len())
    }
}

/// Anything `update` can add: a [`Var`] or a [`Tensor`].
///
/// ```
/// use flux_autograd::{param, update, Var};
/// let w = param(1.0);
/// update(&w, &flux_tensor::Tensor::scalar(1.0)); // a Tensor
/// update(&w, &Var::scalar(1.0));                // or a Var
/// assert_eq!(w.item(), 3.0);
/// ```
pub trait AsTensor {
    /// The data.
    fn as_tensor(&self) -> Tensor;
}

impl AsTensor for Var {
    fn as_tensor(&self) -> Tensor {
        self.data()
    }
}

impl AsTensor for Tensor {
    fn as_tensor(&self) -> Tensor {
        self.clone()
    }
}

/// `p = p + delta` in place (Flux's `update!`); the delta is converted to `p`'s dtype.
/// Panics on a shape mismatch (see [`try_update`]).
///
/// ```
/// use flux_autograd::{param, update, Var};
/// let w = param(2.0);
/// update(&w, &Var::scalar(-0.5));
/// assert_eq!(w.item(), 1.5);
/// ```
pub fn update(p: &Var, delta: &impl AsTensor) {
    try_update(p, delta).unwrap_or_else(|e| panic!("{e}"))
}

/// Fallible [`update`]: checks the shape and that `p` is a leaf, and changes nothing on error.
///
/// ```
/// use flux_autograd::{param, try_update};
/// let w = param(flux_tensor::Tensor::zeros(&[2]));
/// assert!(try_update(&w, &flux_tensor::Tensor::zeros(&[3])).is_err());
/// ```
pub fn try_update(p: &Var, delta: &impl AsTensor) -> Result<(), AutogradError> {
    if !p.is_leaf() {
        return Err(AutogradError::NotALeaf { op: p.op_name() });
    }
    let d = delta.as_tensor();
    let cur = p.data();
    if d.shape() != cur.shape() {
        return Err(AutogradError::UpdateShape { param: cur.shape().to_vec(), delta: d.shape().to_vec() });
    }
    p.set_data(&cur + &d.to_dtype(cur.dtype()));
    Ok(())
}

//! [`Chain`] (and `chain!`), [`compose`] (Flux's `∘`), `Vec<Box<dyn Layer>>` as a chain, and
//! [`activations`].

use std::fmt;
use std::ops::{Deref, Index};
use std::sync::Arc;

use flux_autograd::Var;

use crate::deepcopy::DeepCopy;
use crate::layer::{Layer, Traverse, Walker};

/// Layers applied in order (Flux's `Chain`). Holds any mix of layers, functions and closures.
///
/// ```
/// use flux_layers::{chain, sigmoid, softmax, identity, Dense, Layer};
/// use flux_autograd::Var;
/// let model = chain![Dense::new(10, 5, sigmoid), Dense::new(5, 2, identity), softmax];
/// assert_eq!(model.len(), 3);
/// assert_eq!(model.to_string(), "Chain(Dense(10 => 5, σ), Dense(5 => 2), softmax)");
/// let m4 = chain![|x: &Var| x.powi(2), |x: &Var| x + 1.0];
/// assert_eq!(m4.forward(&Var::scalar(5.0)).item(), 26.0);
/// ```
pub struct Chain {
    // shared handles, so that `deepcopy` can share the functions it cannot copy
    layers: Vec<Arc<dyn Layer>>,
}

impl Chain {
    /// A chain of boxed layers.
    ///
    /// ```
    /// use flux_layers::{Chain, Layer, relu};
    /// let c = Chain::new(vec![Box::new(relu) as Box<dyn Layer>]);
    /// assert_eq!(c.len(), 1);
    /// ```
    pub fn new(layers: Vec<Box<dyn Layer>>) -> Chain {
        Chain { layers: layers.into_iter().map(Arc::from).collect() }
    }

    /// Appends a layer.
    ///
    /// ```
    /// use flux_layers::{Chain, relu};
    /// let mut c = Chain::new(vec![]);
    /// c.push(relu);
    /// assert_eq!(c.len(), 1);
    /// ```
    pub fn push(&mut self, layer: impl Layer + 'static) {
        self.layers.push(Arc::new(layer));
    }

    /// Number of layers.
    ///
    /// ```
    /// assert_eq!(flux_layers::chain![flux_layers::relu].len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// True when there are no layers (the chain is the identity).
    ///
    /// ```
    /// assert!(flux_layers::Chain::new(vec![]).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// The layers.
    ///
    /// ```
    /// assert_eq!(flux_layers::chain![flux_layers::relu].layers().len(), 1);
    /// ```
    pub fn layers(&self) -> &[Arc<dyn Layer>] {
        &self.layers
    }
}

impl Index<usize> for Chain {
    type Output = dyn Layer;
    fn index(&self, i: usize) -> &(dyn Layer + 'static) {
        &*self.layers[i]
    }
}

/// Builds a [`Chain`]: `chain![Dense::new(10, 5, sigmoid), softmax]`.
///
/// ```
/// use flux_layers::{chain, relu, tanh};
/// let c = chain![relu, tanh];
/// assert_eq!(c.to_string(), "Chain(relu, tanh)");
/// ```
#[macro_export]
macro_rules! chain {
    ($($layer:expr),* $(,)?) => {
        $crate::Chain::new(vec![$(Box::new($layer) as Box<dyn $crate::Layer>),*])
    };
}

fn fold<L: Deref<Target = dyn Layer>>(layers: &[L], x: &Var) -> Var {
    layers.iter().fold(x.clone(), |h, l| l.forward(&h))
}

fn try_fold<L: Deref<Target = dyn Layer>>(layers: &[L], x: &Var) -> Result<Var, crate::LayerError> {
    layers.iter().try_fold(x.clone(), |h, l| l.try_forward(&h))
}

fn fold_seq<L: Deref<Target = dyn Layer>>(layers: &[L], xs: &[Var]) -> Vec<Var> {
    layers.iter().fold(xs.to_vec(), |hs, l| l.forward_seq(&hs))
}

fn fmt_children<L: Deref<Target = dyn Layer>>(layers: &[L], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.write_str("Chain(")?;
    for (i, l) in layers.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        l.fmt_layer(f)?;
    }
    f.write_str(")")
}

impl Traverse for Chain {
    /// Each layer under its position: `0.weight`, `1.cell.Wi`.
    fn visit(&self, w: &mut Walker<'_>) {
        self.layers.visit(w)
    }
}

/// Each layer copied; functions (which hold nothing to copy) are shared.
impl DeepCopy for Chain {
    fn deepcopy(&self) -> Chain {
        Chain { layers: self.layers.iter().map(copy_or_share_dyn).collect() }
    }
}

impl Layer for Chain {
    fn forward(&self, x: &Var) -> Var {
        fold(&self.layers, x)
    }
    fn try_forward(&self, x: &Var) -> Result<Var, crate::LayerError> {
        try_fold(&self.layers, x)
    }
    /// Each layer's `forward_seq` over the whole sequence in turn, so recurrent layers inside
    /// use their fused sequence path.
    fn forward_seq(&self, xs: &[Var]) -> Vec<Var> {
        fold_seq(&self.layers, xs)
    }
    fn fmt_layer(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_children(&self.layers, f)
    }
    fn deepcopy_layer(&self) -> Option<Box<dyn Layer>> {
        Some(Box::new(self.deepcopy()))
    }
}

impl fmt::Display for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_layer(f)
    }
}

impl fmt::Debug for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_layer(f)
    }
}

/// A plain vector of boxed layers folds like Flux's `foldl((x, m) -> m(x), layers, init = x)`.
///
/// ```
/// use flux_layers::{Dense, Layer, sigmoid, identity, softmax};
/// use flux_autograd::Var;
/// let layers: Vec<Box<dyn Layer>> = vec![Box::new(Dense::new(10, 5, sigmoid)), Box::new(Dense::new(5, 2, identity)), Box::new(softmax)];
/// let y = layers.forward(&Var::from(flux_tensor::Tensor::rand(&[10])));
/// assert_eq!(y.shape(), &[2]);
/// ```
impl Layer for Vec<Box<dyn Layer>> {
    fn forward(&self, x: &Var) -> Var {
        fold(self, x)
    }
    fn try_forward(&self, x: &Var) -> Result<Var, crate::LayerError> {
        try_fold(self, x)
    }
    fn forward_seq(&self, xs: &[Var]) -> Vec<Var> {
        fold_seq(self, xs)
    }
    fn fmt_layer(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_children(self, f)
    }
    fn deepcopy_layer(&self) -> Option<Box<dyn Layer>> {
        Some(Box::new(self.deepcopy()))
    }
}

/// `outer ∘ inner`: applies `inner`, then `outer` (Flux's `∘`). See [`compose`].
///
/// ```
/// use flux_layers::{compose, relu, tanh, Layer};
/// let c = compose(tanh, relu);
/// assert_eq!(c.forward(&flux_autograd::Var::scalar(-1.0)).item(), 0.0);
/// ```
pub struct Compose<A: ?Sized, B: ?Sized> {
    // shared handles, so that `deepcopy` can share a function it cannot copy
    outer: Arc<A>,
    inner: Arc<B>,
}

/// Function composition of layers, `compose(f, g)(x) = f(g(x))`, as Flux's `f ∘ g`.
///
/// ```
/// use flux_layers::{compose, sigmoid, identity, Dense, Layer};
/// use flux_autograd::Var;
/// let m3 = compose(Dense::new(5, 2, identity), Dense::new(10, 5, sigmoid));
/// assert_eq!(m3.forward(&Var::from(flux_tensor::Tensor::rand(&[10]))).shape(), &[2]);
/// assert_eq!(m3.to_string(), "Dense(5 => 2) ∘ Dense(10 => 5, σ)");
/// ```
pub fn compose<A: Layer, B: Layer>(outer: A, inner: B) -> Compose<A, B> {
    Compose { outer: Arc::new(outer), inner: Arc::new(inner) }
}

impl<A: Layer + ?Sized, B: Layer + ?Sized> Traverse for Compose<A, B> {
    fn visit(&self, w: &mut Walker<'_>) {
        w.child("inner", &*self.inner);
        w.child("outer", &*self.outer);
    }
}

impl<A: DeepCopy, B: DeepCopy> DeepCopy for Compose<A, B> {
    fn deepcopy(&self) -> Self {
        Compose { outer: Arc::new(self.outer.deepcopy()), inner: Arc::new(self.inner.deepcopy()) }
    }
}

/// A copy of a part, or the part itself when it holds nothing to copy.
fn copy_or_share<L: Layer + 'static>(l: &Arc<L>) -> Arc<dyn Layer> {
    let shared: Arc<dyn Layer> = l.clone();
    copy_or_share_dyn(&shared)
}

fn copy_or_share_dyn(l: &Arc<dyn Layer>) -> Arc<dyn Layer> {
    match l.deepcopy_layer() {
        Some(b) => Arc::from(b),
        None => l.clone(),
    }
}

impl<A: Layer + 'static, B: Layer + 'static> Layer for Compose<A, B> {
    fn forward(&self, x: &Var) -> Var {
        self.outer.forward(&self.inner.forward(x))
    }
    fn try_forward(&self, x: &Var) -> Result<Var, crate::LayerError> {
        self.outer.try_forward(&self.inner.try_forward(x)?)
    }
    fn forward_seq(&self, xs: &[Var]) -> Vec<Var> {
        self.outer.forward_seq(&self.inner.forward_seq(xs))
    }
    fn fmt_layer(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_compose(&*self.outer, &*self.inner, f)
    }
    fn deepcopy_layer(&self) -> Option<Box<dyn Layer>> {
        Some(Box::new(Compose::<dyn Layer, dyn Layer> { outer: copy_or_share::<A>(&self.outer), inner: copy_or_share::<B>(&self.inner) }))
    }
}

/// What a copied composition is: its parts behind shared handles.
impl Layer for Compose<dyn Layer, dyn Layer> {
    fn try_forward(&self, x: &Var) -> Result<Var, crate::LayerError> {
        self.outer.try_forward(&self.inner.try_forward(x)?)
    }
    fn forward_seq(&self, xs: &[Var]) -> Vec<Var> {
        self.outer.forward_seq(&self.inner.forward_seq(xs))
    }
    fn fmt_layer(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_compose(&*self.outer, &*self.inner, f)
    }
    fn deepcopy_layer(&self) -> Option<Box<dyn Layer>> {
        Some(Box::new(Compose::<dyn Layer, dyn Layer> { outer: copy_or_share_dyn(&self.outer), inner: copy_or_share_dyn(&self.inner) }))
    }
}

impl<A: Layer + ?Sized, B: Layer + ?Sized> fmt::Display for Compose<A, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_compose(&*self.outer, &*self.inner, f)
    }
}

/// `outer ∘ inner`, each part as it prints.
fn fmt_compose<A: Layer + ?Sized, B: Layer + ?Sized>(outer: &A, inner: &B, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    outer.fmt_layer(f)?;
    f.write_str(" ∘ ")?;
    inner.fmt_layer(f)
}

/// The output of every layer of a chain, in order (Flux's `activations(c, x)`), for per-layer
/// regularisation.
///
/// ```
/// use flux_layers::{activations, chain, sigmoid, softmax, identity, Dense};
/// use flux_autograd::Var;
/// let c = chain![Dense::new(10, 5, sigmoid), Dense::new(5, 2, identity), softmax];
/// let acts = activations(&c, &Var::from(flux_tensor::Tensor::rand(&[10])));
/// assert_eq!(acts.len(), 3);
/// assert_eq!(acts[0].shape(), &[5]);
/// ```
pub fn activations(chain: &Chain, x: &Var) -> Vec<Var> {
    let mut out = Vec::with_capacity(chain.len());
    let mut h = x.clone();
    for l in &chain.layers {
        h = l.forward(&h);
        out.push(h.clone());
    }
    out
}

//! The [`Layer`] trait, and the one structural traversal ([`Layer::visit`] with a [`Walker`])
//! that every model-wide operation uses: parameters, recurrent state, train/test mode, dtype
//! conversion and saved state.

use std::fmt;

use flux_autograd::Var;

/// Anything with parts to declare to the structural traversal: parameters, buffers, recurrent
/// state, train/test switches and children. `params`, `reset`, `truncate`, `to_f32`,
/// `testmode`, `save_state` and `deepcopy`'s checks all walk through [`Traverse::visit`].
///
/// Every [`Layer`] is a `Traverse`; so are recurrent cells, `Var`s (a parameter), and `Vec`s and
/// `Option`s of traversable things. `#[derive(Traverse)]` (or `#[derive(Layer)]`) writes it; by
/// hand, `visit` has no default, so a layer always states what it holds, even when it is nothing.
///
/// ```
/// use flux_autograd::{param, Var};
/// use flux_layers::{named_params, Traverse, Walker};
/// use flux_tensor::Tensor;
/// struct Scale { s: Var }
/// impl Traverse for Scale {
///     fn visit(&self, w: &mut Walker<'_>) { w.param("s", &self.s); }
/// }
/// let names: Vec<String> = named_params(&Scale { s: param(2.0) }).into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, vec!["s"]);
/// ```
///
/// A field of a derived layer that is none of these is a compile error at that field (here
/// `steps: usize`: "`usize` is not traversable", with a note to mark it `#[layer(skip)]`):
///
/// ```compile_fail,E0277
/// use flux_autograd::Var;
/// use flux_layers::{Dense, Layer};
/// #[derive(Layer)]
/// struct Counted { inner: Dense, steps: usize }
/// impl Counted { fn forward(&self, x: &Var) -> Var { self.inner.forward(x) } }
/// ```
///
/// and so is a derived layer without an inherent `forward`:
///
/// ```compile_fail,E0034
/// use flux_layers::{Dense, Layer};
/// #[derive(Layer)]
/// struct NoForward { inner: Dense }
/// ```
///
/// or a buffer that is not a `Var`:
///
/// ```compile_fail,E0308
/// use flux_autograd::Var;
/// use flux_layers::Layer;
/// #[derive(Layer)]
/// struct Odd { #[layer(buffer)] count: f64 }
/// impl Odd { fn forward(&self, x: &Var) -> Var { x.clone() } }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not traversable: not a layer, a `Var`, or a `Vec`/`Option`/`Box` of them",
    label = "not a layer or a `Var`",
    note = "in a `#[derive(Layer)]` struct, mark such a field `#[layer(skip)]` (or `#[layer(buffer)]` for a `Var` that is state)",
    note = "a hand-written layer implements `Traverse` (declaring what it holds) and `Layer`"
)]
pub trait Traverse: Send + Sync {
    /// Declares the parameters, buffers, state and children to a traversal.
    fn visit(&self, w: &mut Walker<'_>);
}

/// A model or a part of one: anything that maps a value to a value. Plain functions and
/// closures `Fn(&Var) -> Var` are layers too.
///
/// A layer implements [`Layer::try_forward`] (bad input is an `Err` naming the layer and the
/// shapes); [`Layer::forward`] is its panicking wrapper. `#[derive(Layer)]` writes the whole
/// impl from the struct's inherent `forward`:
///
/// ```
/// use flux_autograd::Var;
/// use flux_layers::{params, relu, Dense, Layer};
/// use flux_tensor::Tensor;
///
/// #[derive(Layer)]
/// struct Residual { inner: Dense }
/// impl Residual { fn forward(&self, x: &Var) -> Var { x + &self.inner.forward(x) } }
///
/// let r = Residual { inner: Dense::new(4, 4, relu) };
/// assert_eq!(r.to_string(), "Residual(Dense(4 => 4, relu))");
/// assert_eq!(params(&r).len(), 2);
/// assert_eq!(r.forward(&Var::from(Tensor::rand(&[4, 3]))).shape(), &[4, 3]);
/// ```
///
/// By hand, a layer implements [`Traverse`] and `Layer`:
///
/// ```
/// use std::fmt;
/// use flux_autograd::{param, Var};
/// use flux_layers::{params, Layer, LayerError, Traverse, Walker};
/// use flux_tensor::Tensor;
///
/// /// The seed's hand-written affine layer.
/// struct Affine { w: Var, b: Var }
/// impl Traverse for Affine {
///     fn visit(&self, w: &mut Walker<'_>) { w.param("W", &self.w); w.param("b", &self.b); }
/// }
/// impl Layer for Affine {
///     fn try_forward(&self, x: &Var) -> Result<Var, LayerError> { Ok(self.w.try_matmul(x)? + &self.b) }
///     fn fmt_layer(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { write!(f, "Affine") }
/// }
/// let a = Affine { w: param(Tensor::randn(&[5, 10])), b: param(Tensor::randn(&[5])) };
/// assert_eq!(a.forward(&Var::from(Tensor::rand(&[10]))).shape(), &[5]);
/// assert!(a.try_forward(&Var::from(Tensor::rand(&[3]))).is_err());
/// assert_eq!(params(&a).len(), 2);
/// ```
pub trait Layer: Traverse {
    /// Applies the layer to one input (features first, batch last), returning an error (naming
    /// the layer as it prints and the input's shape) instead of panicking on bad input.
    fn try_forward(&self, x: &Var) -> Result<Var, crate::LayerError>;

    /// Applies the layer to one input; panics with [`Layer::try_forward`]'s message on bad input.
    fn forward(&self, x: &Var) -> Var {
        self.try_forward(x).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Applies the layer to each step of a sequence in order. Stateful layers carry their
    /// state from step to step; recurrent layers may override this with a fused path.
    fn forward_seq(&self, xs: &[Var]) -> Vec<Var> {
        xs.iter().map(|x| self.forward(x)).collect()
    }

    /// How the layer prints (inside a `Chain` too): `Dense(10 => 5, σ)`. The default prints the
    /// type's name.
    fn fmt_layer(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(short_type_name(std::any::type_name::<Self>()))
    }

    /// A boxed copy with new parameters of the same values, or `None` for a layer that holds
    /// nothing to copy (a function: it is shared by the copy). What [`crate::deepcopy`] uses
    /// for the items of a `Chain`. `#[derive(Layer)]` writes it. The default returns `None`
    /// when the layer declares no parameter, buffer, state or mode to [`Traverse::visit`],
    /// and otherwise panics saying that the layer must implement it: a copy that shared its
    /// parameters with the original would be a silent wrong answer.
    fn deepcopy_layer(&self) -> Option<Box<dyn Layer>> {
        if declares_nothing(self) {
            return None;
        }
        panic!("deepcopy: {} holds parameters but does not implement Layer::deepcopy_layer (derive Layer, or implement DeepCopy and return Some(Box::new(self.deepcopy())))", Show(self))
    }
}

/// True when a traversal finds no parameter, buffer, state or mode switch.
fn declares_nothing(t: &(impl Traverse + ?Sized)) -> bool {
    struct Any(bool);
    impl Visitor for Any {
        fn param(&mut self, _: &str, _: &Var) {
            self.0 = true
        }
        fn buffer(&mut self, _: &str, _: &Var) {
            self.0 = true
        }
        fn stateful(&mut self, _: &str, _: &dyn Stateful) {
            self.0 = true
        }
        fn modal(&mut self, _: &str, _: &dyn Modal) {
            self.0 = true
        }
    }
    let mut any = Any(false);
    Walker::walk(t, &mut any);
    !any.0
}

/// Something with recurrent state (a `Recur`): what `reset` and `truncate` act on.
///
/// ```
/// use flux_layers::{reset, Stateful};
/// struct Counter(std::sync::Mutex<u32>);
/// impl Stateful for Counter {
///     fn reset(&self) { *self.0.lock().unwrap() = 0; }
///     fn truncate(&self) {}
/// }
/// let c = Counter(std::sync::Mutex::new(3));
/// c.reset();
/// assert_eq!(*c.0.lock().unwrap(), 0);
/// ```
pub trait Stateful: Send + Sync {
    /// Puts the state back to its initial value.
    fn reset(&self);
    /// Keeps the state's value but drops its gradient history.
    fn truncate(&self);
    /// Puts every thread's state back to its initial value (after the model's element type
    /// changed). The default resets the calling thread's.
    fn reset_all_threads(&self) {
        self.reset()
    }
}

/// Something with a train/test mode (`Dropout`, `BatchNorm`).
///
/// ```
/// use flux_layers::{testmode, Dropout, Layer};
/// let d = Dropout::new(0.5);
/// testmode(&d); // switches it through Modal::set_training(false)
/// let x = flux_autograd::Var::from(flux_tensor::Tensor::ones(&[4]));
/// assert_eq!(d.forward(&x).to_vec(), vec![1.0; 4]);
/// ```
pub trait Modal: Send + Sync {
    /// `true` for training behaviour, `false` for test behaviour.
    fn set_training(&self, on: bool);
}

/// What a traversal does with each part a layer declares. Every method has an empty default,
/// so a visitor implements only what it needs.
///
/// ```
/// use flux_layers::{identity, Dense, Visitor, Walker};
/// struct Count(usize);
/// impl Visitor for Count {
///     fn param(&mut self, _path: &str, p: &flux_autograd::Var) { self.0 += p.numel(); }
/// }
/// let mut c = Count(0);
/// Walker::walk(&Dense::new(3, 2, identity), &mut c);
/// assert_eq!(c.0, 8);
/// ```
pub trait Visitor {
    /// A trainable parameter at `path` (like `0.weight`).
    fn param(&mut self, _path: &str, _p: &Var) {}
    /// Saved but not trained state at `path` (BatchNorm's running statistics, a Recur's init).
    fn buffer(&mut self, _path: &str, _b: &Var) {}
    /// A part with recurrent state.
    fn stateful(&mut self, _path: &str, _s: &dyn Stateful) {}
    /// A part with a train/test mode.
    fn modal(&mut self, _path: &str, _m: &dyn Modal) {}
    /// A part that declares its PyTorch names and layouts (`Dense` as `Linear`), at `path`
    /// (what `load_torch_state` and `save_torch_state` use).
    fn torch(&mut self, _path: &str, _m: &dyn crate::torch::TorchModule) {}
}

/// Carries a [`Visitor`] through a model, keeping the structural path (`1.cell.Wi`) of
/// every part.
///
/// ```
/// use flux_layers::{Dense, Layer, Visitor, Walker, identity};
/// use flux_autograd::Var;
/// struct Names(Vec<String>);
/// impl Visitor for Names {
///     fn param(&mut self, path: &str, _p: &Var) { self.0.push(path.to_string()); }
/// }
/// let mut names = Names(vec![]);
/// Walker::walk(&Dense::new(2, 3, identity), &mut names);
/// assert_eq!(names.0, vec!["weight", "bias"]);
/// ```
pub struct Walker<'a> {
    prefix: Vec<String>,
    visitor: &'a mut dyn Visitor,
}

impl<'a> Walker<'a> {
    /// Walks `layer` with `visitor`.
    ///
    /// ```
    /// use flux_layers::{chain, relu, Visitor, Walker};
    /// struct Nothing;
    /// impl Visitor for Nothing {}
    /// Walker::walk(&chain![relu], &mut Nothing);
    /// ```
    pub fn walk(model: &(impl Traverse + ?Sized), visitor: &'a mut dyn Visitor) {
        let mut w = Walker { prefix: Vec::new(), visitor };
        model.visit(&mut w);
    }

    fn path(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else if name.is_empty() {
            self.prefix.join(".")
        } else {
            format!("{}.{}", self.prefix.join("."), name)
        }
    }

    /// Declares a trainable parameter.
    ///
    /// ```
    /// // inside `Layer::visit`: `w.param("weight", &self.weight);`
    /// use flux_layers::{named_params, identity, Dense};
    /// assert_eq!(named_params(&Dense::new(1, 1, identity))[0].0, "weight");
    /// ```
    pub fn param(&mut self, name: &str, p: &Var) {
        let path = self.path(name);
        self.visitor.param(&path, p);
    }

    /// Declares a saved, untrained value.
    ///
    /// ```
    /// // inside `Layer::visit`: `w.buffer("running_mean", &self.mean);`
    /// use flux_layers::{params, BatchNorm};
    /// assert_eq!(params(&BatchNorm::new(3)).len(), 2); // running statistics are buffers, not params
    /// ```
    pub fn buffer(&mut self, name: &str, b: &Var) {
        let path = self.path(name);
        self.visitor.buffer(&path, b);
    }

    /// Declares recurrent state.
    ///
    /// ```
    /// // inside `Layer::visit` of a stateful layer: `w.stateful(self);`
    /// flux_layers::reset(&flux_layers::relu); // no state: nothing to reset
    /// ```
    pub fn stateful(&mut self, s: &dyn Stateful) {
        let path = self.path("");
        self.visitor.stateful(&path, s);
    }

    /// Declares a train/test mode switch.
    ///
    /// ```
    /// // inside `Layer::visit` of a layer with a train/test mode: `w.modal(self);`
    /// flux_layers::testmode(&flux_layers::Dropout::new(0.1));
    /// ```
    pub fn modal(&mut self, m: &dyn Modal) {
        let path = self.path("");
        self.visitor.modal(&path, m);
    }

    /// Declares that this part has a PyTorch counterpart ([`crate::TorchModule`]): what
    /// `#[layer(torch)]` writes at the start of a derived `visit`; a hand-written `visit` calls
    /// it itself.
    ///
    /// ```
    /// // inside `Layer::visit`: `w.torch(self);` (the layer implements `TorchModule`)
    /// use flux_layers::{save_torch_state, identity, Dense};
    /// let path = std::env::temp_dir().join(format!("flux_doc_walker_torch_{}.safetensors", std::process::id()));
    /// save_torch_state(&Dense::new(2, 1, identity), &path).unwrap();
    /// std::fs::remove_file(&path).unwrap();
    /// ```
    pub fn torch(&mut self, m: &dyn crate::torch::TorchModule) {
        let path = self.path("");
        self.visitor.torch(&path, m);
    }

    /// Walks a child (a layer, a cell, a `Var`, a `Vec` of layers...) under `name`.
    ///
    /// ```
    /// // inside `Layer::visit` of a container: `w.child("0", &self.first);`
    /// use flux_layers::{chain, named_params, identity, Dense};
    /// let names: Vec<String> = named_params(&chain![Dense::new(1, 1, identity)]).into_iter().map(|(n, _)| n).collect();
    /// assert_eq!(names, vec!["0.weight", "0.bias"]);
    /// ```
    pub fn child(&mut self, name: &str, part: &(impl Traverse + ?Sized)) {
        self.prefix.push(name.to_string());
        part.visit(self);
        self.prefix.pop();
    }
}

impl Walker<'_> {
    /// Walks whatever `f` declares under `name`: for a part that declares itself without
    /// being [`Traverse`] (a `Recur`'s cell, which may be a closure).
    ///
    /// ```
    /// use flux_autograd::{param, Var};
    /// use flux_layers::{named_params, Traverse, Walker};
    /// struct Outer { w: Var }
    /// impl Traverse for Outer {
    ///     fn visit(&self, w: &mut Walker<'_>) { w.nest("inner", |w| w.param("w", &self.w)); }
    /// }
    /// assert_eq!(named_params(&Outer { w: param(1.0) })[0].0, "inner.w");
    /// ```
    pub fn nest(&mut self, name: &str, f: impl FnOnce(&mut Walker<'_>)) {
        self.prefix.push(name.to_string());
        f(self);
        self.prefix.pop();
    }
}

/// The last path segment of a type name, without generics: `flux_layers::dense::Dense` ->
/// `Dense`.
pub(crate) fn short_type_name(full: &str) -> &str {
    let base = full.split('<').next().unwrap_or(full);
    base.rsplit("::").next().unwrap_or(base)
}

/// How a function prints as a layer: its own name (`softmax`), `σ` for sigmoid, `λ` for a
/// closure (Flux prints anonymous functions as `#1`).
///
/// ```
/// assert_eq!(flux_layers::fn_name::<fn(&flux_autograd::Var) -> flux_autograd::Var>(), "fn");
/// ```
pub fn fn_name<F: ?Sized>() -> &'static str {
    let full = std::any::type_name::<F>();
    if full.contains("{{closure}}") {
        return "λ";
    }
    if full.starts_with("fn(") || full.starts_with("for<") {
        return "fn";
    }
    match short_type_name(full) {
        "sigmoid" => "σ",
        name => name,
    }
}

/// A function from a value to a value is a layer with no parameters, printed by its name.
/// `deepcopy` shares it (what a closure captures is shared by the copy).
impl<F: Fn(&Var) -> Var + Send + Sync> Traverse for F {
    fn visit(&self, _w: &mut Walker<'_>) {}
}

impl<F: Fn(&Var) -> Var + Send + Sync> Layer for F {
    fn try_forward(&self, x: &Var) -> Result<Var, crate::LayerError> {
        Ok(self(x))
    }
    fn fmt_layer(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(fn_name::<F>())
    }
}

impl Traverse for Box<dyn Layer> {
    fn visit(&self, w: &mut Walker<'_>) {
        (**self).visit(w)
    }
}

impl Layer for Box<dyn Layer> {
    fn forward(&self, x: &Var) -> Var {
        (**self).forward(x)
    }
    fn try_forward(&self, x: &Var) -> Result<Var, crate::LayerError> {
        (**self).try_forward(x)
    }
    fn forward_seq(&self, xs: &[Var]) -> Vec<Var> {
        (**self).forward_seq(xs)
    }
    fn fmt_layer(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt_layer(f)
    }
    fn deepcopy_layer(&self) -> Option<Box<dyn Layer>> {
        (**self).deepcopy_layer()
    }
}

impl Traverse for std::sync::Arc<dyn Layer> {
    fn visit(&self, w: &mut Walker<'_>) {
        (**self).visit(w)
    }
}

/// A `Var` on its own is a trainable parameter, declared under the path it is visited at (a
/// field `weight` of a derived layer is the parameter `weight`).
impl Traverse for Var {
    fn visit(&self, w: &mut Walker<'_>) {
        w.param("", self)
    }
}

/// Each item under its index: `blocks.0.weight`, `blocks.1.weight`, ...
impl<T: Traverse> Traverse for Vec<T> {
    fn visit(&self, w: &mut Walker<'_>) {
        for (i, item) in self.iter().enumerate() {
            w.child(&i.to_string(), item);
        }
    }
}

/// The content, when there is one, under the field's own name (`head.bias`).
impl<T: Traverse> Traverse for Option<T> {
    fn visit(&self, w: &mut Walker<'_>) {
        if let Some(item) = self {
            item.visit(w)
        }
    }
}

/// Formats any layer through [`Layer::fmt_layer`] (so `format!("{}", Show(&layer))` works for
/// closures too).
///
/// ```
/// use flux_layers::{Show, softmax};
/// assert_eq!(Show(&softmax).to_string(), "softmax");
/// ```
pub struct Show<'a, L: Layer + ?Sized>(pub &'a L);

impl<L: Layer + ?Sized> fmt::Display for Show<'_, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt_layer(f)
    }
}

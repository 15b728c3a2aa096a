//! The [`Layer`] trait, and the one structural traversal ([`Layer::visit`] with a [`Walker`])
//! that every model-wide operation uses: parameters, recurrent state, train/test mode, dtype
//! conversion and saved state.

use std::fmt;

use flux_autograd::Var;

/// A model or a part of one: anything that maps a value to a value. Plain functions and
/// closures `Fn(&Var) -> Var` are layers too.
///
/// A layer declares its parts once in [`Layer::visit`]; `params`, `reset`, `truncate`,
/// `to_f32`, `testmode` and `save_state` all walk through it.
///
/// ```
/// use std::fmt;
/// use flux_autograd::{param, Var};
/// use flux_layers::{params, Layer, Walker};
/// use flux_tensor::Tensor;
///
/// /// The seed's hand-written affine layer.
/// struct Affine { w: Var, b: Var }
/// impl Layer for Affine {
///     fn forward(&self, x: &Var) -> Var { self.w.matmul(x) + &self.b }
///     fn visit(&self, w: &mut Walker) { w.param("W", &self.w); w.param("b", &self.b); }
///     fn fmt_layer(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { write!(f, "Affine") }
/// }
/// let a = Affine { w: param(Tensor::randn(&[5, 10])), b: param(Tensor::randn(&[5])) };
/// assert_eq!(a.forward(&Var::from(Tensor::rand(&[10]))).shape(), &[5]);
/// assert_eq!(params(&a).len(), 2);
/// ```
pub trait Layer: Send + Sync {
    /// Applies the layer to one input (features first, batch last).
    fn forward(&self, x: &Var) -> Var;

    /// Applies the layer to one input, returning an error (naming the layer and the shapes)
    /// instead of panicking on bad input. Layers that validate input override it.
    fn try_forward(&self, x: &Var) -> Result<Var, crate::LayerError> {
        Ok(self.forward(x))
    }

    /// Applies the layer to each step of a sequence in order. Stateful layers carry their
    /// state from step to step; recurrent layers may override this with a fused path.
    fn forward_seq(&self, xs: &[Var]) -> Vec<Var> {
        xs.iter().map(|x| self.forward(x)).collect()
    }

    /// Declares the layer's parameters, buffers, state and children to a traversal.
    /// The default declares nothing (a function has no parameters).
    fn visit(&self, _w: &mut Walker<'_>) {}

    /// How the layer prints (inside a `Chain` too): `Dense(10 => 5, σ)`. The default prints the
    /// type's name.
    fn fmt_layer(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(short_type_name(std::any::type_name::<Self>()))
    }
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
    pub fn walk(layer: &(impl Layer + ?Sized), visitor: &'a mut dyn Visitor) {
        let mut w = Walker { prefix: Vec::new(), visitor };
        layer.visit(&mut w);
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

    /// Walks a child layer under `name`.
    ///
    /// ```
    /// // inside `Layer::visit` of a container: `w.child("0", &self.first);`
    /// use flux_layers::{chain, named_params, identity, Dense};
    /// let names: Vec<String> = named_params(&chain![Dense::new(1, 1, identity)]).into_iter().map(|(n, _)| n).collect();
    /// assert_eq!(names, vec!["0.weight", "0.bias"]);
    /// ```
    pub fn child(&mut self, name: &str, layer: &(impl Layer + ?Sized)) {
        self.prefix.push(name.to_string());
        layer.visit(self);
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
impl<F: Fn(&Var) -> Var + Send + Sync> Layer for F {
    fn forward(&self, x: &Var) -> Var {
        self(x)
    }
    fn fmt_layer(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(fn_name::<F>())
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
    fn visit(&self, w: &mut Walker<'_>) {
        (**self).visit(w)
    }
    fn fmt_layer(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt_layer(f)
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

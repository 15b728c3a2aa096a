//! Model-wide operations, all built on the one traversal [`Layer::visit`]: `params`, `reset`,
//! `truncate`, `testmode`/`trainmode` and dtype conversion.

use flux_autograd::{Params, Var};
use flux_tensor::DType;

use crate::layer::{Modal, Stateful, Traverse, Visitor, Walker};

struct CollectParams(Params);
impl Visitor for CollectParams {
    fn param(&mut self, _path: &str, p: &Var) {
        self.0.push(p);
    }
}

/// Every trainable parameter of a model, in structural order, each once (Flux's `params(m)`).
///
/// ```
/// use flux_layers::{chain, params, relu, identity, Dense};
/// let m = chain![Dense::new(10, 5, relu), Dense::new(5, 2, identity)];
/// assert_eq!(params(&m).len(), 4);
/// ```
pub fn params(model: &(impl Traverse + ?Sized)) -> Params {
    let mut c = CollectParams(Params::new());
    Walker::walk(model, &mut c);
    c.0
}

/// Every trainable parameter with its structural path (`0.weight`, `1.bias`, ...).
///
/// ```
/// use flux_layers::{named_params, identity, Dense};
/// let names: Vec<String> = named_params(&Dense::new(2, 3, identity)).into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, vec!["weight", "bias"]);
/// ```
pub fn named_params(model: &(impl Traverse + ?Sized)) -> Vec<(String, Var)> {
    struct Named(Vec<(String, Var)>);
    impl Visitor for Named {
        fn param(&mut self, path: &str, p: &Var) {
            self.0.push((path.to_string(), p.clone()));
        }
    }
    let mut n = Named(Vec::new());
    Walker::walk(model, &mut n);
    n.0
}

struct ForEachState<F: FnMut(&dyn Stateful)>(F);
impl<F: FnMut(&dyn Stateful)> Visitor for ForEachState<F> {
    fn stateful(&mut self, _path: &str, s: &dyn Stateful) {
        (self.0)(s)
    }
}

/// Puts every recurrent state in the model back to its initial value (Flux's `reset!`).
///
/// ```
/// use flux_layers::{reset, identity, Dense};
/// reset(&Dense::new(2, 3, identity)); // no state: nothing to do
/// ```
pub fn reset(model: &(impl Traverse + ?Sized)) {
    Walker::walk(model, &mut ForEachState(|s: &dyn Stateful| s.reset()));
}

/// Keeps every recurrent state's value but cuts its gradient history (Flux's `truncate!`), so
/// the next gradient stops there and memory does not grow with the steps taken before.
///
/// ```
/// use flux_layers::{truncate, identity, Dense};
/// truncate(&Dense::new(2, 3, identity));
/// ```
pub fn truncate(model: &(impl Traverse + ?Sized)) {
    Walker::walk(model, &mut ForEachState(|s: &dyn Stateful| s.truncate()));
}

struct SetMode(bool);
impl Visitor for SetMode {
    fn modal(&mut self, _path: &str, m: &dyn Modal) {
        m.set_training(self.0)
    }
}

/// Switches every `Dropout` and `BatchNorm` in the model to test behaviour (Flux's
/// `testmode!`).
///
/// ```
/// use flux_layers::{testmode, identity, Dense};
/// testmode(&Dense::new(2, 3, identity));
/// ```
pub fn testmode(model: &(impl Traverse + ?Sized)) {
    Walker::walk(model, &mut SetMode(false));
}

/// Switches every `Dropout` and `BatchNorm` in the model to training behaviour (Flux's
/// `trainmode!`).
///
/// ```
/// use flux_layers::{trainmode, identity, Dense};
/// trainmode(&Dense::new(2, 3, identity));
/// ```
pub fn trainmode(model: &(impl Traverse + ?Sized)) {
    Walker::walk(model, &mut SetMode(true));
}

struct Convert(DType);
impl Visitor for Convert {
    fn param(&mut self, _path: &str, p: &Var) {
        p.set_data_unchecked(p.data().to_dtype(self.0));
    }
    fn buffer(&mut self, _path: &str, b: &Var) {
        b.set_data_unchecked(b.data().to_dtype(self.0));
    }
    fn stateful(&mut self, _path: &str, s: &dyn Stateful) {
        // a state computed in the old dtype is reset to the (converted) initial value, on
        // every thread
        s.reset_all_threads();
    }
}

/// Converts every parameter and buffer of the model to `dtype` in place (recurrent state is
/// reset to its converted initial value).
///
/// ```
/// use flux_layers::{params, to_dtype, identity, Dense};
/// use flux_tensor::DType;
/// let d = Dense::new(2, 3, identity);
/// to_dtype(&d, DType::F64);
/// assert!(params(&d).iter().all(|p| p.dtype() == DType::F64));
/// ```
pub fn to_dtype(model: &(impl Traverse + ?Sized), dtype: DType) {
    Walker::walk(model, &mut Convert(dtype));
}

/// Converts every parameter of the model to f64 in place (Flux's `f64(m)`).
///
/// ```
/// use flux_layers::{to_f64, identity, Dense};
/// let d = Dense::new(2, 3, identity);
/// to_f64(&d);
/// assert_eq!(d.weight().dtype(), flux_tensor::DType::F64);
/// ```
pub fn to_f64(model: &(impl Traverse + ?Sized)) {
    to_dtype(model, DType::F64)
}

/// Converts every parameter of the model to f32 in place (Flux's `f32(m)`).
///
/// ```
/// use flux_layers::{to_f32, to_f64, identity, Dense};
/// let d = Dense::new(2, 3, identity);
/// to_f64(&d);
/// to_f32(&d);
/// assert_eq!(d.weight().dtype(), flux_tensor::DType::F32);
/// ```
pub fn to_f32(model: &(impl Traverse + ?Sized)) {
    to_dtype(model, DType::F32)
}

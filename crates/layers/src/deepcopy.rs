//! [`deepcopy`]: the same model with new parameters of the same values (Flux's `deepcopy`, a
//! DQN's target network, an EMA of weights).

use std::cell::RefCell;
use std::collections::HashMap;

use flux_autograd::{param, Var};

use crate::layer::Layer;

/// A copy with new parameters and buffers of the same values: training one leaves the other
/// as it was. `#[derive(Layer)]` and `#[derive(Traverse)]` implement it field by field.
///
/// ```
/// use flux_autograd::param;
/// use flux_layers::DeepCopy;
/// let w = param(1.0);
/// let c = w.deepcopy();
/// flux_autograd::update(&w, &flux_autograd::Var::scalar(1.0));
/// assert_eq!((w.item(), c.item()), (2.0, 1.0));
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be deep-copied: not a layer, a `Var`, or a `Vec`/`Option`/`Box` of them",
    label = "not a layer or a `Var`"
)]
pub trait DeepCopy: Sized {
    /// The copy.
    fn deepcopy(&self) -> Self;
}

thread_local! {
    /// Parameters already copied in the current `deepcopy` call, by id, so that a parameter used
    /// twice in one model (tied weights) is one parameter in the copy too.
    static COPIED: RefCell<Option<HashMap<u64, Var>>> = const { RefCell::new(None) };
}

/// The same model with new parameters of the same values (`M` is the model's own type).
/// A parameter the model uses in two places stays shared in the copy; recurrent state starts
/// from `init`; closures are cloned (what they capture is shared).
///
/// ```
/// use flux_autograd::{update, Var};
/// use flux_layers::{chain, deepcopy, params, relu, Dense, Layer};
/// let online = chain![Dense::new(2, 3, relu), Dense::new(3, 1, relu)];
/// let target = deepcopy(&online);
/// assert_eq!(target.to_string(), online.to_string());
/// let (p, q) = (params(&online), params(&target));
/// let (p0, q0) = (p.iter().next().unwrap(), q.iter().next().unwrap());
/// update(p0, &Var::from(flux_tensor::Tensor::ones(&p0.shape()).to_f32()));
/// assert_ne!(p0.to_vec(), q0.to_vec());
/// ```
pub fn deepcopy<M: DeepCopy>(model: &M) -> M {
    let outer = COPIED.with(|c| c.borrow().is_some());
    if outer {
        return model.deepcopy();
    }
    COPIED.with(|c| *c.borrow_mut() = Some(HashMap::new()));
    struct Clear;
    impl Drop for Clear {
        fn drop(&mut self) {
            COPIED.with(|c| *c.borrow_mut() = None);
        }
    }
    let _clear = Clear;
    model.deepcopy()
}

/// A parameter becomes a new parameter, anything else a new untracked value, with the same
/// data (tensors are immutable, so the data itself is shared until one side is updated).
impl DeepCopy for Var {
    fn deepcopy(&self) -> Var {
        let fresh = || if self.is_param() { param(self.data()) } else { Var::constant(self.data()) };
        COPIED.with(|c| match c.borrow_mut().as_mut() {
            Some(seen) => seen.entry(self.id()).or_insert_with(fresh).clone(),
            None => fresh(),
        })
    }
}

impl<T: DeepCopy> DeepCopy for Vec<T> {
    fn deepcopy(&self) -> Vec<T> {
        self.iter().map(T::deepcopy).collect()
    }
}

impl<T: DeepCopy> DeepCopy for Option<T> {
    fn deepcopy(&self) -> Option<T> {
        self.as_ref().map(T::deepcopy)
    }
}

/// A boxed layer is copied through [`Layer::deepcopy_layer`]. A box cannot be shared, so a
/// boxed function cannot be copied: keep functions in a `Chain` (which shares them).
impl DeepCopy for Box<dyn Layer> {
    fn deepcopy(&self) -> Box<dyn Layer> {
        (**self).deepcopy_layer().unwrap_or_else(|| {
            panic!("deepcopy: {} in a Box<dyn Layer> holds nothing to copy and a box cannot be shared; put it in a Chain", crate::Show(&**self))
        })
    }
}

/// A function or closure is cloned: it holds no parameters of its own.
impl<F: Fn(&Var) -> Var + Clone + Send + Sync + 'static> DeepCopy for F {
    fn deepcopy(&self) -> F {
        self.clone()
    }
}

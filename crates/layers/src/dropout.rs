//! [`Dropout`]: zeroes each input with probability `p` while training.

use std::fmt;

use flux_autograd::Var;
use flux_tensor::rand::Rng;
use flux_tensor::{with_rng, Tensor};

use crate::deepcopy::DeepCopy;
use crate::error::LayerError;
use crate::layer::{Layer, Modal, Traverse, Walker};
use crate::mode::{ModeCell, TrainMode};

/// Dropout (Flux's `Dropout(p)`): while training, each element is zeroed with probability `p`
/// and the survivors are scaled by `1 / (1 - p)`, so the expected output equals the input; in
/// test mode it is the identity.
///
/// By default ([`TrainMode::Auto`]) it trains exactly while a gradient call runs, so evaluating
/// a model outside `gradient` needs no switch; [`crate::testmode`] / [`crate::trainmode`] (or
/// [`Dropout::set_mode`]) fix the mode. The mask comes from this thread's seeded generator
/// (`flux_tensor::seed`), or from a given one with [`Dropout::forward_with`].
///
/// ```
/// use flux_autograd::{gradient, Var};
/// use flux_layers::{Dropout, Layer};
/// use flux_tensor::Tensor;
/// let d = Dropout::new(0.5);
/// assert_eq!(d.to_string(), "Dropout(0.5)");
/// let x = Var::from(Tensor::ones(&[1000]));
/// assert_eq!(d.forward(&x).to_vec(), x.to_vec()); // not training: identity
/// let g = gradient(|x: &Var| d.forward(x).sum(), &x); // training inside gradient
/// assert!(g.to_vec().iter().all(|&v| v == 0.0 || v == 2.0));
/// ```
pub struct Dropout {
    p: f64,
    mode: ModeCell,
}

impl Dropout {
    /// Dropout with probability `p` in `[0, 1]`. Panics otherwise (see [`Dropout::try_new`]).
    ///
    /// ```
    /// assert_eq!(flux_layers::Dropout::new(0.1).p(), 0.1);
    /// ```
    pub fn new(p: f64) -> Dropout {
        Dropout::try_new(p).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Dropout::new`], returning an error for `p` outside `[0, 1]` (or NaN).
    ///
    /// ```
    /// assert!(flux_layers::Dropout::try_new(1.5).is_err());
    /// ```
    pub fn try_new(p: f64) -> Result<Dropout, LayerError> {
        if !(0.0..=1.0).contains(&p) {
            return Err(LayerError::Config { layer: format!("Dropout({p:?})"), reason: "the probability p must be in [0, 1]".into() });
        }
        Ok(Dropout { p, mode: ModeCell::default() })
    }

    /// The drop probability.
    ///
    /// ```
    /// assert_eq!(flux_layers::Dropout::new(0.25).p(), 0.25);
    /// ```
    pub fn p(&self) -> f64 {
        self.p
    }

    /// The current mode.
    ///
    /// ```
    /// assert_eq!(flux_layers::Dropout::new(0.5).mode(), flux_layers::TrainMode::Auto);
    /// ```
    pub fn mode(&self) -> TrainMode {
        self.mode.get()
    }

    /// Sets the mode (`TrainMode::Auto` restores the default).
    ///
    /// ```
    /// use flux_layers::{Dropout, Layer, TrainMode};
    /// let d = Dropout::new(1.0);
    /// d.set_mode(TrainMode::Train);
    /// let y = d.forward(&flux_autograd::Var::from(flux_tensor::Tensor::ones(&[3])));
    /// assert_eq!(y.to_vec(), vec![0.0; 3]);
    /// ```
    pub fn set_mode(&self, mode: TrainMode) {
        self.mode.set(mode)
    }

    /// Applies the layer drawing the mask from `rng` (when training).
    ///
    /// ```
    /// use flux_layers::{Dropout, TrainMode};
    /// use flux_tensor::rand::{rngs::StdRng, SeedableRng};
    /// let d = Dropout::new(0.5);
    /// d.set_mode(TrainMode::Train);
    /// let x = flux_autograd::Var::from(flux_tensor::Tensor::ones(&[8]));
    /// let a = d.forward_with(&x, &mut StdRng::seed_from_u64(3));
    /// let b = d.forward_with(&x, &mut StdRng::seed_from_u64(3));
    /// assert_eq!(a.to_vec(), b.to_vec());
    /// ```
    pub fn forward_with<R: Rng + ?Sized>(&self, x: &Var, rng: &mut R) -> Var {
        if !self.mode().is_training() || self.p == 0.0 {
            return x.clone();
        }
        let u = Tensor::rand_with(&x.shape(), rng);
        x * &Var::constant(self.mask(&u, x))
    }

    /// `1/(1-p)` where `u > p`, else 0, in `x`'s dtype (all zeros for `p = 1`).
    fn mask(&self, u: &Tensor, x: &Var) -> Tensor {
        let (p, scale) = (self.p, 1.0 / (1.0 - self.p));
        u.map(|u| if u > p && p < 1.0 { scale } else { 0.0 }).to_dtype(x.dtype())
    }
}

impl Traverse for Dropout {
    fn visit(&self, w: &mut Walker<'_>) {
        w.modal(self);
    }
}

impl DeepCopy for Dropout {
    fn deepcopy(&self) -> Dropout {
        Dropout { p: self.p, mode: self.mode.clone() }
    }
}

impl Layer for Dropout {
    fn try_forward(&self, x: &Var) -> Result<Var, crate::LayerError> {
        if !self.mode().is_training() || self.p == 0.0 {
            return Ok(x.clone());
        }
        Ok(with_rng(|r| self.forward_with(x, r)))
    }

    fn fmt_layer(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Dropout({:?})", self.p)
    }

    fn deepcopy_layer(&self) -> Option<Box<dyn Layer>> {
        Some(Box::new(self.deepcopy()))
    }
}

impl Modal for Dropout {
    fn set_training(&self, on: bool) {
        self.set_mode(if on { TrainMode::Train } else { TrainMode::Test })
    }
}

impl fmt::Display for Dropout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_layer(f)
    }
}

impl fmt::Debug for Dropout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_layer(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{testmode, trainmode};
    use flux_autograd::gradient;

    #[test]
    fn scaling_keeps_the_mean() {
        flux_tensor::seed(5);
        let d = Dropout::new(0.3);
        trainmode(&d);
        let x = Var::from(Tensor::ones(&[20000]));
        let y = d.forward(&x);
        let kept = y.to_vec().iter().filter(|&&v| v != 0.0).count() as f64 / 20000.0;
        assert!((kept - 0.7).abs() < 0.02, "{kept}");
        assert!((y.mean().item() - 1.0).abs() < 0.03);
        assert!(y.to_vec().iter().all(|&v| v == 0.0 || (v - 1.0 / 0.7).abs() < 1e-12));
    }

    #[test]
    fn testmode_is_identity_inside_gradient() {
        let d = Dropout::new(0.9);
        testmode(&d);
        let g = gradient(|x: &Var| d.forward(x).sum(), &Var::from(Tensor::ones(&[50])));
        assert_eq!(g.to_vec(), vec![1.0; 50]);
    }

    #[test]
    fn dtype_is_kept() {
        let d = Dropout::new(0.5);
        d.set_mode(TrainMode::Train);
        let y = d.forward(&Var::from(Tensor::ones(&[4]).to_f32()));
        assert_eq!(y.dtype(), flux_tensor::DType::F32);
    }

    #[test]
    fn bad_p() {
        assert!(Dropout::try_new(-0.1).is_err());
        assert!(Dropout::try_new(f64::NAN).is_err());
        assert_eq!(Dropout::new(1.0).to_string(), "Dropout(1.0)");
    }
}

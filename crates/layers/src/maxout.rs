//! [`Maxout`]: the elementwise maximum over several layers' outputs.

use std::fmt;

use flux_autograd::Var;

use crate::error::LayerError;
use crate::Layer;

/// Flux's `Maxout(layers...)`: every layer is applied to the input and the output is their
/// elementwise maximum (`max.(layer_1(x), ..., layer_n(x))`; the gradient goes to the largest,
/// the first of equals). [`Maxout::new`] builds `n` layers from a constructor, as Flux's
/// `Maxout(() -> Dense(...), n)`.
///
/// ```
/// use flux_autograd::Var;
/// use flux_layers::{identity, params, Dense, Layer, Maxout};
/// use flux_tensor::Tensor;
/// let m = Maxout::new(|| Dense::new(3, 2, identity), 4);
/// assert_eq!(m.to_string(), "Maxout(Dense(3 => 2), Dense(3 => 2), Dense(3 => 2), Dense(3 => 2))");
/// assert_eq!(params(&m).len(), 8);
/// assert_eq!(m.forward(&Var::from(Tensor::rand(&[3, 5]))).shape(), &[2, 5]);
/// ```
#[derive(crate::Layer)]
#[layer(try_forward, fmt)]
pub struct Maxout {
    layers: Vec<Box<dyn Layer>>,
}

impl Maxout {
    /// `n` layers made by `f` (each call makes new parameters).
    ///
    /// ```
    /// use flux_layers::{relu, Dense, Maxout};
    /// let m = Maxout::new(|| Dense::new(2, 2, relu), 2);
    /// assert_eq!(m.layers().len(), 2);
    /// ```
    pub fn new<L: Layer + 'static>(f: impl Fn() -> L, n: usize) -> Maxout {
        Maxout { layers: (0..n).map(|_| Box::new(f()) as Box<dyn Layer>).collect() }
    }

    /// The maximum over the given layers.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// use flux_layers::{Layer, Maxout};
    /// let m = Maxout::from_layers(vec![Box::new(|x: &Var| x * 2.0), Box::new(|x: &Var| -x)]);
    /// assert_eq!(m.forward(&Var::scalar(-1.0)).item(), 1.0);
    /// ```
    pub fn from_layers(layers: Vec<Box<dyn Layer>>) -> Maxout {
        Maxout { layers }
    }

    /// The layers.
    ///
    /// ```
    /// assert!(flux_layers::Maxout::from_layers(vec![]).layers().is_empty());
    /// ```
    pub fn layers(&self) -> &[Box<dyn Layer>] {
        &self.layers
    }

    /// The maximum of the layers' outputs; an error of a layer is returned as it is, and a
    /// `Maxout` of no layers is an error naming it.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// assert!(flux_layers::Maxout::from_layers(vec![]).try_forward(&Var::scalar(1.0)).is_err());
    /// ```
    pub fn try_forward(&self, x: &Var) -> Result<Var, LayerError> {
        let mut it = self.layers.iter();
        let Some(first) = it.next() else {
            return Err(LayerError::InputShape { layer: self.to_string(), got: x.shape().to_vec(), expected: "a Maxout with at least one layer".into() });
        };
        let mut acc = first.try_forward(x)?;
        for l in it {
            let y = l.try_forward(x)?;
            acc = acc.try_binary(&y, flux_tensor::BinaryOp::Max)?;
        }
        Ok(acc)
    }

    /// Prints `Maxout(layer, layer, ...)`.
    ///
    /// ```
    /// use flux_layers::{relu, Maxout};
    /// assert_eq!(Maxout::new(|| relu, 2).to_string(), "Maxout(relu, relu)");
    /// ```
    pub fn fmt_layer(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Maxout(")?;
        for (i, l) in self.layers.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            l.fmt_layer(f)?;
        }
        f.write_str(")")
    }
}

impl fmt::Debug for Maxout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_layer(f)
    }
}

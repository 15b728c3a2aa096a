//! [`SkipConnection`]: `combine(layer(x), x)`, Flux's residual block.

use std::fmt;
use std::sync::Arc;

use flux_autograd::Var;

use crate::error::LayerError;
use crate::layer::fn_name;
use crate::Layer;

/// A function of two values with the name it prints by (what [`SkipConnection`] combines with).
#[derive(Clone)]
struct Join {
    f: Arc<dyn Fn(&Var, &Var) -> Var + Send + Sync>,
    name: &'static str,
}

/// Flux's `SkipConnection(layer, connection)`: the output is `connection(layer(x), x)`, the
/// layer's output first. A residual block is `SkipConnection::new(layer, |a, b| a + b)` (or
/// [`SkipConnection::residual`], printed with `+` as Flux's `SkipConnection(layer, +)`);
/// `|a, b| Var::concat(&[a.clone(), b.clone()], 0)` stacks the features as Flux's `vcat`.
///
/// The connection is any `Fn(&Var, &Var) -> Var`; it is shared, not copied, by `deepcopy`.
///
/// ```
/// use flux_autograd::Var;
/// use flux_layers::{params, relu, Dense, Layer, SkipConnection};
/// use flux_tensor::Tensor;
/// let m = SkipConnection::new(Dense::new(3, 3, relu), |a, b| a + b);
/// assert_eq!(m.to_string(), "SkipConnection(Dense(3 => 3, relu), λ)");
/// assert_eq!(params(&m).len(), 2);
/// let x = Var::from(Tensor::rand(&[3, 2]));
/// assert_eq!(m.forward(&x).shape(), &[3, 2]);
/// let cat = SkipConnection::new(Dense::new(3, 2, relu), |a, b| Var::concat(&[a.clone(), b.clone()], 0));
/// assert_eq!(cat.forward(&x).shape(), &[5, 2]);
/// ```
#[derive(crate::Layer)]
#[layer(try_forward, fmt)]
pub struct SkipConnection<L> {
    layers: L,
    #[layer(skip)]
    connection: Join,
}

impl<L: Layer + 'static> SkipConnection<L> {
    /// `combine(layer(x), x)`; a closure prints as `λ`, a named function by its name.
    ///
    /// ```
    /// use flux_layers::{identity, Layer, SkipConnection};
    /// let m = SkipConnection::new(identity, |a, b| a * b);
    /// assert_eq!(m.forward(&flux_autograd::Var::scalar(3.0)).item(), 9.0);
    /// ```
    pub fn new<F: Fn(&Var, &Var) -> Var + Send + Sync + 'static>(layer: L, combine: F) -> SkipConnection<L> {
        SkipConnection { layers: layer, connection: Join { name: fn_name::<F>(), f: Arc::new(combine) } }
    }

    /// The residual block `layer(x) + x`, printed `SkipConnection(layer, +)`.
    ///
    /// ```
    /// use flux_layers::{relu, Dense, SkipConnection};
    /// assert_eq!(SkipConnection::residual(Dense::new(2, 2, relu)).to_string(), "SkipConnection(Dense(2 => 2, relu), +)");
    /// ```
    pub fn residual(layer: L) -> SkipConnection<L> {
        SkipConnection { layers: layer, connection: Join { name: "+", f: Arc::new(|a: &Var, b: &Var| a + b) } }
    }

    /// The wrapped layer (Flux's `m.layers`).
    ///
    /// ```
    /// use flux_layers::{relu, Dense, SkipConnection};
    /// assert_eq!(SkipConnection::residual(Dense::new(2, 2, relu)).layer().out_features(), 2);
    /// ```
    pub fn layer(&self) -> &L {
        &self.layers
    }

    /// `combine(layer(x), x)`; an error of the layer is returned as it is (it names the layer).
    ///
    /// ```
    /// use flux_autograd::Var;
    /// use flux_layers::{relu, Dense, SkipConnection};
    /// let m = SkipConnection::residual(Dense::new(2, 2, relu));
    /// assert!(m.try_forward(&Var::from(flux_tensor::Tensor::zeros(&[3]))).is_err());
    /// ```
    pub fn try_forward(&self, x: &Var) -> Result<Var, LayerError> {
        let y = self.layers.try_forward(x)?;
        Ok((self.connection.f)(&y, x))
    }

    /// Prints `SkipConnection(layer, connection)`.
    ///
    /// ```
    /// use flux_layers::{relu, SkipConnection};
    /// assert_eq!(SkipConnection::residual(relu).to_string(), "SkipConnection(relu, +)");
    /// ```
    pub fn fmt_layer(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SkipConnection(")?;
        self.layers.fmt_layer(f)?;
        write!(f, ", {})", self.connection.name)
    }
}

impl<L: Layer + 'static> fmt::Debug for SkipConnection<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_layer(f)
    }
}

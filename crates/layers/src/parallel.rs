//! [`Parallel`]: several layers applied to the same input (or one input each), their outputs
//! combined.

use std::fmt;
use std::sync::Arc;

use flux_autograd::Var;

use crate::error::LayerError;
use crate::layer::fn_name;
use crate::Layer;

/// A function of the branches' outputs with the name it prints by.
#[derive(Clone)]
struct Combine {
    f: Arc<dyn Fn(&[Var]) -> Var + Send + Sync>,
    name: &'static str,
}

/// Flux's `Parallel(connection, layers...)`: each layer is applied to the input and the outputs
/// are combined, `connection(layer_1(x), ..., layer_n(x))`.
///
/// Julia's connection is a function of `n` arguments (`vcat`, `+`); here it is a function of a
/// slice of the `n` outputs, `Fn(&[Var]) -> Var`, in the layers' order:
/// `|ys| ys.iter().sum()` is Flux's `+`, `|ys| Var::concat(ys, 0)` is `vcat` (also
/// [`Parallel::vcat`]). [`Parallel::try_forward_each`] gives each layer its own input (Flux's
/// `m(x1, x2, ...)`).
///
/// ```
/// use flux_autograd::Var;
/// use flux_layers::{params, relu, tanh, Dense, Layer, Parallel};
/// use flux_tensor::Tensor;
/// let m = Parallel::new(|ys: &[Var]| ys.iter().sum(), vec![Box::new(Dense::new(3, 2, relu)), Box::new(Dense::new(3, 2, tanh))]);
/// assert_eq!(m.to_string(), "Parallel(λ, Dense(3 => 2, relu), Dense(3 => 2, tanh))");
/// assert_eq!(params(&m).len(), 4);
/// assert_eq!(m.forward(&Var::from(Tensor::rand(&[3, 5]))).shape(), &[2, 5]);
/// ```
#[derive(crate::Layer)]
#[layer(try_forward, fmt)]
pub struct Parallel {
    #[layer(skip)]
    connection: Combine,
    layers: Vec<Box<dyn Layer>>,
}

impl Parallel {
    /// `connection` applied to the outputs of `layers` (in order) on the same input.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// use flux_layers::{identity, Layer, Parallel};
    /// let m = Parallel::new(|ys: &[Var]| &ys[0] * &ys[1], vec![Box::new(identity), Box::new(|x: &Var| x + 1.0)]);
    /// assert_eq!(m.forward(&Var::scalar(2.0)).item(), 6.0);
    /// ```
    pub fn new<F: Fn(&[Var]) -> Var + Send + Sync + 'static>(connection: F, layers: Vec<Box<dyn Layer>>) -> Parallel {
        Parallel { connection: Combine { name: fn_name::<F>(), f: Arc::new(connection) }, layers }
    }

    /// The outputs stacked along the features (dim 0), printed as Flux's `Parallel(vcat, ...)`.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// use flux_layers::{relu, Dense, Layer, Parallel};
    /// let m = Parallel::vcat(vec![Box::new(Dense::new(3, 2, relu)), Box::new(Dense::new(3, 4, relu))]);
    /// assert_eq!(m.to_string(), "Parallel(vcat, Dense(3 => 2, relu), Dense(3 => 4, relu))");
    /// assert_eq!(m.forward(&Var::from(flux_tensor::Tensor::rand(&[3, 7]))).shape(), &[6, 7]);
    /// ```
    pub fn vcat(layers: Vec<Box<dyn Layer>>) -> Parallel {
        Parallel { connection: Combine { name: "vcat", f: Arc::new(|ys: &[Var]| Var::concat(ys, 0)) }, layers }
    }

    /// The branches.
    ///
    /// ```
    /// use flux_layers::{relu, Parallel};
    /// assert_eq!(Parallel::vcat(vec![Box::new(relu)]).layers().len(), 1);
    /// ```
    pub fn layers(&self) -> &[Box<dyn Layer>] {
        &self.layers
    }

    /// Every branch on `x`, then the connection. An error of a branch is returned as it is (it
    /// names that layer); no branches is an error naming the `Parallel`.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// use flux_layers::{relu, Dense, Parallel};
    /// let m = Parallel::vcat(vec![Box::new(Dense::new(3, 2, relu))]);
    /// assert!(m.try_forward(&Var::from(flux_tensor::Tensor::zeros(&[2]))).is_err());
    /// assert!(Parallel::vcat(vec![]).try_forward(&Var::scalar(1.0)).is_err());
    /// ```
    pub fn try_forward(&self, x: &Var) -> Result<Var, LayerError> {
        self.no_branches(x)?;
        let ys = self.layers.iter().map(|l| l.try_forward(x)).collect::<Result<Vec<Var>, LayerError>>()?;
        Ok((self.connection.f)(&ys))
    }

    /// Flux's `m(x1, x2, ...)`: layer `i` on `xs[i]`, then the connection. One input for several
    /// layers is shared by all (as [`Parallel::try_forward`]); another count is an error naming
    /// the layer and the counts.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// use flux_layers::{relu, tanh, Dense, Parallel};
    /// use flux_tensor::Tensor;
    /// let m = Parallel::vcat(vec![Box::new(Dense::new(3, 2, relu)), Box::new(Dense::new(5, 2, tanh))]);
    /// let y = m.try_forward_each(&[Var::from(Tensor::rand(&[3, 4])), Var::from(Tensor::rand(&[5, 4]))]).unwrap();
    /// assert_eq!(y.shape(), &[4, 4]);
    /// assert!(m.try_forward_each(&[Var::scalar(1.0), Var::scalar(1.0), Var::scalar(1.0)]).is_err());
    /// ```
    pub fn try_forward_each(&self, xs: &[Var]) -> Result<Var, LayerError> {
        if xs.len() == 1 {
            return self.try_forward(&xs[0]);
        }
        if xs.len() != self.layers.len() {
            return Err(LayerError::InputShape {
                layer: self.to_string(),
                got: xs.iter().map(|x| x.numel()).collect(),
                expected: format!("one input or {} inputs, one per layer (got {} inputs, their sizes shown)", self.layers.len(), xs.len()),
            });
        }
        let ys = self.layers.iter().zip(xs).map(|(l, x)| l.try_forward(x)).collect::<Result<Vec<Var>, LayerError>>()?;
        Ok((self.connection.f)(&ys))
    }

    fn no_branches(&self, x: &Var) -> Result<(), LayerError> {
        if self.layers.is_empty() {
            return Err(LayerError::InputShape { layer: self.to_string(), got: x.shape().to_vec(), expected: "a Parallel with at least one layer".into() });
        }
        Ok(())
    }

    /// Prints `Parallel(connection, layer, layer, ...)`.
    ///
    /// ```
    /// use flux_layers::{relu, Parallel};
    /// assert_eq!(Parallel::vcat(vec![Box::new(relu)]).to_string(), "Parallel(vcat, relu)");
    /// ```
    pub fn fmt_layer(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Parallel({}", self.connection.name)?;
        for l in &self.layers {
            f.write_str(", ")?;
            l.fmt_layer(f)?;
        }
        f.write_str(")")
    }
}

impl fmt::Debug for Parallel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_layer(f)
    }
}

//! [`Dense`]: `σ.(W * x .+ b)`, the fully connected layer.

use std::fmt;
use std::sync::Arc;

use flux_autograd::{param, Var};
use flux_tensor::Tensor;

use crate::error::LayerError;
use crate::init::glorot_uniform;
use crate::input::cast_like;
use crate::layer::fn_name;
use crate::Layer;

/// An activation function with the name it prints by.
///
/// ```
/// let a = flux_layers::Activation::new(flux_layers::tanh);
/// assert_eq!(a.name(), "tanh");
/// ```
#[derive(Clone)]
pub struct Activation {
    f: Arc<dyn Fn(&Var) -> Var + Send + Sync>,
    name: &'static str,
}

impl Activation {
    /// Wraps a function, naming it from its type (`sigmoid` prints as `σ`).
    ///
    /// ```
    /// let a = flux_layers::Activation::new(flux_layers::sigmoid);
    /// assert_eq!(a.name(), "σ");
    /// ```
    pub fn new<F: Fn(&Var) -> Var + Send + Sync + 'static>(f: F) -> Activation {
        Activation { name: fn_name::<F>(), f: Arc::new(f) }
    }

    /// The printed name.
    ///
    /// ```
    /// assert_eq!(flux_layers::Activation::new(flux_layers::relu).name(), "relu");
    /// ```
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Applies the function.
    ///
    /// ```
    /// let a = flux_layers::Activation::new(flux_layers::relu);
    /// assert_eq!(a.apply(&flux_autograd::Var::scalar(-1.0)).item(), 0.0);
    /// ```
    pub fn apply(&self, x: &Var) -> Var {
        (self.f)(x)
    }

    /// True for `identity` (printed as nothing).
    ///
    /// ```
    /// assert!(flux_layers::Activation::new(flux_layers::identity).is_identity());
    /// ```
    pub fn is_identity(&self) -> bool {
        self.name == "identity"
    }
}

/// A fully connected layer: `y = σ.(W * x .+ b)` with `W: [out, in]` (glorot-uniform, f32)
/// and `b: [out]` (zeros, f32). Takes `[in]` or a batch `[in, N]` (more trailing dims work
/// too); an input of another element type is converted to the weight's first (Flux's rule), so
/// a f64 input to a f32 layer gives a f32 output.
///
/// ```
/// use flux_layers::{Dense, Layer, sigmoid};
/// use flux_autograd::Var;
/// use flux_tensor::Tensor;
/// let d = Dense::new(10, 5, sigmoid);
/// assert_eq!(d.to_string(), "Dense(10 => 5, σ)");
/// assert_eq!(d.weight().shape(), &[5, 10]);
/// assert_eq!(d.forward(&Var::from(Tensor::rand(&[10, 3]))).shape(), &[5, 3]);
/// ```
#[derive(Layer)]
#[layer(try_forward, fmt, torch)]
pub struct Dense {
    weight: Var,
    bias: Var,
    #[layer(skip)]
    act: Activation,
}

impl Dense {
    /// `Dense(in => out, act)`: glorot-uniform weight, zero bias, f32.
    ///
    /// ```
    /// let d = flux_layers::Dense::new(3, 2, flux_layers::identity);
    /// assert_eq!(d.bias().to_vec(), vec![0.0, 0.0]);
    /// ```
    pub fn new<F: Fn(&Var) -> Var + Send + Sync + 'static>(input: usize, output: usize, act: F) -> Dense {
        Dense { weight: param(glorot_uniform(&[output, input])), bias: param(Tensor::zeros(&[output]).to_f32()), act: Activation::new(act) }
    }

    /// A layer from given weight `[out, in]` and bias `[out]` values (made into params).
    /// Errors if the shapes disagree.
    ///
    /// ```
    /// use flux_tensor::Tensor;
    /// let d = flux_layers::Dense::from_parts(Tensor::ones(&[2, 3]), Tensor::zeros(&[2]), flux_layers::relu).unwrap();
    /// assert_eq!(d.to_string(), "Dense(3 => 2, relu)");
    /// assert!(flux_layers::Dense::from_parts(Tensor::ones(&[2, 3]), Tensor::zeros(&[3]), flux_layers::relu).is_err());
    /// ```
    pub fn from_parts<F: Fn(&Var) -> Var + Send + Sync + 'static>(weight: Tensor, bias: Tensor, act: F) -> Result<Dense, LayerError> {
        if weight.rank() != 2 || bias.shape() != &[weight.shape()[0]] {
            return Err(LayerError::Config {
                layer: "Dense".into(),
                reason: format!("weight {:?} must be [out, in] and bias {:?} must be [out]", weight.shape(), bias.shape()),
            });
        }
        Ok(Dense { weight: param(weight), bias: param(bias), act: Activation::new(act) })
    }

    /// A layer from given weight `[out, in]` and bias `[out]` values: the same as
    /// [`Dense::from_parts`], under the name the convolutional layers use.
    ///
    /// ```
    /// use flux_tensor::Tensor;
    /// let d = flux_layers::Dense::from_weights(Tensor::ones(&[2, 3]), Tensor::zeros(&[2]), flux_layers::relu).unwrap();
    /// assert_eq!(d.to_string(), "Dense(3 => 2, relu)");
    /// ```
    pub fn from_weights<F: Fn(&Var) -> Var + Send + Sync + 'static>(weight: Tensor, bias: Tensor, act: F) -> Result<Dense, LayerError> {
        Dense::from_parts(weight, bias, act)
    }

    /// The weight `W`, `[out, in]` (Flux's `m.W`).
    ///
    /// ```
    /// assert!(flux_layers::Dense::new(3, 2, flux_layers::relu).weight().is_param());
    /// ```
    pub fn weight(&self) -> &Var {
        &self.weight
    }

    /// The bias `b`, `[out]` (Flux's `m.b`).
    ///
    /// ```
    /// assert_eq!(flux_layers::Dense::new(3, 2, flux_layers::relu).bias().shape(), &[2]);
    /// ```
    pub fn bias(&self) -> &Var {
        &self.bias
    }

    /// The activation.
    ///
    /// ```
    /// assert_eq!(flux_layers::Dense::new(3, 2, flux_layers::relu).activation().name(), "relu");
    /// ```
    pub fn activation(&self) -> &Activation {
        &self.act
    }

    /// Input size.
    ///
    /// ```
    /// assert_eq!(flux_layers::Dense::new(3, 2, flux_layers::relu).in_features(), 3);
    /// ```
    pub fn in_features(&self) -> usize {
        self.weight.shape()[1]
    }

    /// Output size.
    ///
    /// ```
    /// assert_eq!(flux_layers::Dense::new(3, 2, flux_layers::relu).out_features(), 2);
    /// ```
    pub fn out_features(&self) -> usize {
        self.weight.shape()[0]
    }
}

impl Dense {
    /// The forward pass, or an error naming the layer and the input's shape (what
    /// [`Layer::try_forward`] and [`Layer::forward`] call).
    ///
    /// ```
    /// use flux_autograd::Var;
    /// let d = flux_layers::Dense::new(3, 2, flux_layers::relu);
    /// assert!(d.try_forward(&Var::from(flux_tensor::Tensor::zeros(&[4]))).is_err());
    /// ```
    pub fn try_forward(&self, x: &Var) -> Result<Var, LayerError> {
        let shape = x.shape();
        let n_in = self.in_features();
        if shape.rank() == 0 || shape[0] != n_in {
            return Err(LayerError::InputShape {
                layer: self.to_string(),
                got: shape.to_vec(),
                expected: format!("[{n_in}] or [{n_in}, N] (weight is {:?})", self.weight.shape()),
            });
        }
        // the bias is added inside the product (one pass over the output), then the activation
        let x = cast_like(x, &self.weight);
        Ok(self.act.apply(&Var::affine(&self.weight, &x, &self.bias)?))
    }

    /// Prints `Dense(in => out, act)` (no activation shown for `identity`).
    ///
    /// ```
    /// assert_eq!(flux_layers::Dense::new(3, 2, flux_layers::identity).to_string(), "Dense(3 => 2)");
    /// ```
    pub fn fmt_layer(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Dense({} => {}", self.in_features(), self.out_features())?;
        if !self.act.is_identity() {
            write!(f, ", {}", self.act.name())?;
        }
        f.write_str(")")
    }
}

impl fmt::Debug for Dense {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_layer(f)
    }
}

/// `Dense` <-> `Linear`: `weight [out, in]`, `bias [out]` (a `Linear(bias=False)` loads a
/// zero bias).
impl crate::TorchModule for Dense {
    fn torch_kind(&self) -> &'static str {
        "Linear"
    }
    fn torch_export(&self) -> Vec<(String, crate::TorchValue)> {
        vec![("weight".into(), crate::TorchValue::Float(self.weight().data())), ("bias".into(), crate::TorchValue::Float(self.bias().data()))]
    }
    fn torch_import(&self, src: &mut crate::TorchSource<'_>) -> Vec<(Var, Tensor)> {
        let (w, b) = (self.weight(), self.bias());
        let mut out = Vec::new();
        if let Some(t) = src.take("weight", w.shape().dims(), w.dtype()) {
            out.push((w.clone(), t));
        }
        if src.has("bias") {
            if let Some(t) = src.take("bias", b.shape().dims(), b.dtype()) {
                out.push((b.clone(), t));
            }
        } else {
            out.push((b.clone(), Tensor::zeros(b.shape().dims()).to_dtype(b.dtype())));
        }
        out
    }
}

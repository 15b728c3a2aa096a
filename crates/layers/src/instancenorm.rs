//! [`InstanceNorm`]: normalisation of each channel of each sample over the spatial dimensions.

use std::fmt;

use flux_autograd::{param, Var};
use flux_tensor::Tensor;

use crate::error::LayerError;
use crate::input::cast_like;

/// Instance normalisation (Flux's `InstanceNorm(channels)`, PyTorch's `nn.InstanceNorm2d`): each
/// channel of each sample is normalised over the spatial positions to zero mean and unit
/// (uncorrected) variance, `ϵ = 1e-5`. Flux's defaults: no affine map (`affine = false`) and no
/// running statistics (`track_stats = false`), so train and test behave the same;
/// [`InstanceNorm::affine`] adds a learnable per-channel scale `γ = ones(C)` and shift
/// `β = zeros(C)` (Flux's `affine = true`). Running statistics are not offered.
///
/// Layout `[spatial..., C, N]` (at least one spatial dim): `[W, H, C, N]`, or `[L, C, N]`.
///
/// ```
/// use flux_autograd::Var;
/// use flux_layers::{params, InstanceNorm, Layer};
/// use flux_tensor::Tensor;
/// let m = InstanceNorm::new(3);
/// assert_eq!(m.to_string(), "InstanceNorm(3)");
/// assert!(params(&m).is_empty());
/// let y = m.forward(&Var::from(Tensor::randn(&[5, 5, 3, 2])));
/// assert!(y.data().mean_dims(&[0, 1]).to_vec().iter().all(|m| m.abs() < 1e-5));
/// assert_eq!(InstanceNorm::affine(3).to_string(), "InstanceNorm(3, affine=true)");
/// ```
#[derive(crate::Layer)]
#[layer(try_forward, fmt)]
pub struct InstanceNorm {
    scale: Option<Var>,
    bias: Option<Var>,
    #[layer(skip)]
    channels: usize,
    #[layer(skip)]
    eps: f64,
}

impl InstanceNorm {
    /// `InstanceNorm(channels)`: no parameters, `ϵ = 1e-5`.
    ///
    /// ```
    /// assert!(flux_layers::InstanceNorm::new(2).scale().is_none());
    /// ```
    pub fn new(channels: usize) -> InstanceNorm {
        InstanceNorm { scale: None, bias: None, channels, eps: 1e-5 }
    }

    /// `InstanceNorm(channels; affine = true)`: with a learnable per-channel scale and shift.
    ///
    /// ```
    /// assert_eq!(flux_layers::params(&flux_layers::InstanceNorm::affine(2)).len(), 2);
    /// ```
    pub fn affine(channels: usize) -> InstanceNorm {
        InstanceNorm { scale: Some(param(Tensor::ones(&[channels]).to_f32())), bias: Some(param(Tensor::zeros(&[channels]).to_f32())), channels, eps: 1e-5 }
    }

    /// The same layer with another `ϵ`.
    ///
    /// ```
    /// assert_eq!(flux_layers::InstanceNorm::new(2).with_eps(1e-3).eps(), 1e-3);
    /// ```
    pub fn with_eps(mut self, eps: f64) -> InstanceNorm {
        self.eps = eps;
        self
    }

    /// The learnable per-channel scale `γ` (affine only).
    ///
    /// ```
    /// assert!(flux_layers::InstanceNorm::affine(2).scale().is_some());
    /// ```
    pub fn scale(&self) -> Option<&Var> {
        self.scale.as_ref()
    }

    /// The learnable per-channel shift `β` (affine only).
    ///
    /// ```
    /// assert!(flux_layers::InstanceNorm::new(2).bias().is_none());
    /// ```
    pub fn bias(&self) -> Option<&Var> {
        self.bias.as_ref()
    }

    /// The number of channels.
    ///
    /// ```
    /// assert_eq!(flux_layers::InstanceNorm::new(2).channels(), 2);
    /// ```
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// The `ϵ` added to the variance.
    ///
    /// ```
    /// assert_eq!(flux_layers::InstanceNorm::new(2).eps(), 1e-5);
    /// ```
    pub fn eps(&self) -> f64 {
        self.eps
    }

    /// The forward pass on `[spatial..., C, N]`, or an error naming the layer and the shape.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// let e = flux_layers::InstanceNorm::new(3).try_forward(&Var::from(flux_tensor::Tensor::zeros(&[3, 2]))).unwrap_err();
    /// assert!(e.to_string().contains("InstanceNorm(3)") && e.to_string().contains("[3, 2]"));
    /// ```
    pub fn try_forward(&self, x: &Var) -> Result<Var, LayerError> {
        let shape = x.shape();
        let c = self.channels;
        let r = shape.rank();
        if r < 3 || shape[r - 2] != c {
            return Err(LayerError::InputShape {
                layer: self.to_string(),
                got: shape.to_vec(),
                expected: format!("[spatial..., {c}, N] (at least one spatial dim, channels next to last)"),
            });
        }
        let x = match &self.scale {
            Some(s) => cast_like(x, s),
            None => x.clone(),
        };
        let spatial: usize = shape[..r - 2].iter().product();
        let x3 = x.try_reshape(&[spatial, c, shape[r - 1]])?;
        let mu = x3.mean_dims(&[0]);
        let centred = &x3 - &mu;
        let var = centred.powi(2).mean_dims(&[0]);
        let mut y = centred / (var + self.eps).sqrt();
        if let (Some(s), Some(b)) = (&self.scale, &self.bias) {
            y = y * s.try_reshape(&[1, c])? + b.try_reshape(&[1, c])?;
        }
        Ok(y.try_reshape(&shape.to_vec())?)
    }

    /// Prints `InstanceNorm(C)`, or `InstanceNorm(C, affine=true)`.
    ///
    /// ```
    /// assert_eq!(flux_layers::InstanceNorm::new(4).to_string(), "InstanceNorm(4)");
    /// ```
    pub fn fmt_layer(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InstanceNorm({}", self.channels)?;
        if self.scale.is_some() {
            f.write_str(", affine=true")?;
        }
        f.write_str(")")
    }
}

impl fmt::Debug for InstanceNorm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_layer(f)
    }
}

//! [`GroupNorm`]: normalisation over groups of channels and the spatial dimensions.

use std::fmt;

use flux_autograd::{param, Var};
use flux_tensor::Tensor;

use crate::error::LayerError;
use crate::input::cast_like;

/// Group normalisation (Flux's `GroupNorm(channels, groups)`, PyTorch's `nn.GroupNorm`): the
/// channels are split into `groups` consecutive groups; each sample's group is normalised over
/// its channels and all spatial positions to zero mean and unit (uncorrected) variance, then
/// scaled and shifted per channel: `y = γ .* (x .- μ) ./ sqrt.(σ² .+ ϵ) .+ β`, with learnable
/// `γ = ones(C)` (`scale`) and `β = zeros(C)` (`bias`), f32, and `ϵ = 1e-5` (Flux's defaults).
///
/// Layout is Julia's: the channels are the next-to-last dimension and the batch the last,
/// `[W, H, C, N]` (any number of spatial dims, also none: `[C, N]`).
///
/// ```
/// use flux_autograd::Var;
/// use flux_layers::{params, GroupNorm, Layer};
/// use flux_tensor::Tensor;
/// let gn = GroupNorm::new(6, 3);
/// assert_eq!(gn.to_string(), "GroupNorm(6, 3)");
/// assert_eq!(params(&gn).len(), 2);
/// let y = gn.forward(&Var::from(Tensor::randn(&[4, 4, 6, 2])));
/// assert_eq!(y.shape(), &[4, 4, 6, 2]);
/// ```
#[derive(crate::Layer)]
#[layer(try_forward, fmt)]
pub struct GroupNorm {
    scale: Var,
    bias: Var,
    #[layer(skip)]
    groups: usize,
    #[layer(skip)]
    eps: f64,
}

impl GroupNorm {
    /// `GroupNorm(channels, groups)` with `ϵ = 1e-5`; panics unless `groups` divides `channels`
    /// (see [`GroupNorm::try_new`]).
    ///
    /// ```
    /// assert_eq!(flux_layers::GroupNorm::new(4, 2).groups(), 2);
    /// ```
    pub fn new(channels: usize, groups: usize) -> GroupNorm {
        GroupNorm::try_new(channels, groups, 1e-5).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `GroupNorm(channels, groups; eps)`, or an error unless `groups` divides `channels`.
    ///
    /// ```
    /// assert!(flux_layers::GroupNorm::try_new(6, 4, 1e-5).is_err());
    /// assert_eq!(flux_layers::GroupNorm::try_new(6, 2, 1e-3).unwrap().eps(), 1e-3);
    /// ```
    pub fn try_new(channels: usize, groups: usize, eps: f64) -> Result<GroupNorm, LayerError> {
        if groups == 0 || !channels.is_multiple_of(groups) {
            return Err(LayerError::Config {
                layer: "GroupNorm".into(),
                reason: format!("the number of groups ({groups}) must divide the number of channels ({channels})"),
            });
        }
        Ok(GroupNorm { scale: param(Tensor::ones(&[channels]).to_f32()), bias: param(Tensor::zeros(&[channels]).to_f32()), groups, eps })
    }

    /// The learnable per-channel scale `γ`, `[C]`.
    ///
    /// ```
    /// assert!(flux_layers::GroupNorm::new(4, 2).scale().is_param());
    /// ```
    pub fn scale(&self) -> &Var {
        &self.scale
    }

    /// The learnable per-channel shift `β`, `[C]`.
    ///
    /// ```
    /// assert_eq!(flux_layers::GroupNorm::new(4, 2).bias().to_vec(), vec![0.0; 4]);
    /// ```
    pub fn bias(&self) -> &Var {
        &self.bias
    }

    /// The number of channels `C`.
    ///
    /// ```
    /// assert_eq!(flux_layers::GroupNorm::new(4, 2).channels(), 4);
    /// ```
    pub fn channels(&self) -> usize {
        self.scale.shape()[0]
    }

    /// The number of groups.
    ///
    /// ```
    /// assert_eq!(flux_layers::GroupNorm::new(4, 4).groups(), 4);
    /// ```
    pub fn groups(&self) -> usize {
        self.groups
    }

    /// The `ϵ` added to the variance.
    ///
    /// ```
    /// assert_eq!(flux_layers::GroupNorm::new(4, 2).eps(), 1e-5);
    /// ```
    pub fn eps(&self) -> f64 {
        self.eps
    }

    /// The forward pass on `[spatial..., C, N]`, or an error naming the layer and the shape.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// let e = flux_layers::GroupNorm::new(4, 2).try_forward(&Var::from(flux_tensor::Tensor::zeros(&[3, 3, 5, 1]))).unwrap_err();
    /// assert!(e.to_string().contains("GroupNorm(4, 2)") && e.to_string().contains("[3, 3, 5, 1]"));
    /// ```
    pub fn try_forward(&self, x: &Var) -> Result<Var, LayerError> {
        let shape = x.shape();
        let c = self.channels();
        let r = shape.rank();
        if r < 2 || shape[r - 2] != c {
            return Err(LayerError::InputShape {
                layer: self.to_string(),
                got: shape.to_vec(),
                expected: format!("[spatial..., {c}, N] (channels next to last)"),
            });
        }
        let x = cast_like(x, &self.scale);
        let spatial: usize = shape[..r - 2].iter().product();
        let n = shape[r - 1];
        let g = self.groups;
        // column-major: channel `c` lands in group `c ÷ (C / G)`, as Flux's and PyTorch's
        let xg = x.try_reshape(&[spatial, c / g, g, n])?;
        let mu = xg.mean_dims(&[0, 1]);
        let centred = &xg - &mu;
        let var = centred.powi(2).mean_dims(&[0, 1]);
        let xhat = (centred / (var + self.eps).sqrt()).try_reshape(&[spatial, c, n])?;
        let y = xhat * self.scale.try_reshape(&[1, c])? + self.bias.try_reshape(&[1, c])?;
        Ok(y.try_reshape(&shape.to_vec())?)
    }

    /// Prints `GroupNorm(C, G)`.
    ///
    /// ```
    /// assert_eq!(flux_layers::GroupNorm::new(8, 4).to_string(), "GroupNorm(8, 4)");
    /// ```
    pub fn fmt_layer(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GroupNorm({}, {})", self.channels(), self.groups)
    }
}

impl fmt::Debug for GroupNorm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_layer(f)
    }
}

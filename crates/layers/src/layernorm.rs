//! [`LayerNorm`]: normalisation over the feature dimension with a learnable affine map.

use std::fmt;

use flux_autograd::{param, Var};
use flux_tensor::Tensor;

use crate::deepcopy::DeepCopy;
use crate::error::LayerError;
use crate::layer::{Layer, Traverse, Walker};

/// Layer normalisation (Flux's `LayerNorm(n)`): each sample (column) is normalised over the
/// feature dimension (dim 0) to zero mean and unit variance (uncorrected), then scaled and
/// shifted per feature: `y = γ .* (x .- μ) ./ sqrt.(σ² .+ ϵ) .+ β`, with learnable
/// `γ = ones(n)` (`scale`) and `β = zeros(n)` (`bias`), f32, and `ϵ = 1e-5` (modern Flux's;
/// the Tracker-era layer had none, which divides by zero on a constant column).
///
/// Takes `[n]` or `[n, N...]`.
///
/// ```
/// use flux_autograd::Var;
/// use flux_layers::{params, LayerNorm, Layer};
/// use flux_tensor::Tensor;
/// let ln = LayerNorm::new(4);
/// assert_eq!(ln.to_string(), "LayerNorm(4)");
/// assert_eq!(params(&ln).len(), 2);
/// let y = ln.forward(&Var::from(Tensor::randn(&[4, 3])));
/// let means = y.data().mean_dims(&[0]).to_vec();
/// assert!(means.iter().all(|m| m.abs() < 1e-6));
/// ```
pub struct LayerNorm {
    scale: Var,
    bias: Var,
    eps: f64,
}

impl LayerNorm {
    /// Layer normalisation over `n` features with `ϵ = 1e-5`.
    ///
    /// ```
    /// assert_eq!(flux_layers::LayerNorm::new(3).scale().to_vec(), vec![1.0; 3]);
    /// ```
    pub fn new(n: usize) -> LayerNorm {
        LayerNorm::with_eps(n, 1e-5)
    }

    /// Layer normalisation with a given `ϵ` (added to the variance).
    ///
    /// ```
    /// assert_eq!(flux_layers::LayerNorm::with_eps(3, 1e-3).eps(), 1e-3);
    /// ```
    pub fn with_eps(n: usize, eps: f64) -> LayerNorm {
        LayerNorm { scale: param(Tensor::ones(&[n]).to_f32()), bias: param(Tensor::zeros(&[n]).to_f32()), eps }
    }

    /// The learnable per-feature scale `γ`, `[n]`.
    ///
    /// ```
    /// assert!(flux_layers::LayerNorm::new(3).scale().is_param());
    /// ```
    pub fn scale(&self) -> &Var {
        &self.scale
    }

    /// The learnable per-feature shift `β`, `[n]`.
    ///
    /// ```
    /// assert_eq!(flux_layers::LayerNorm::new(3).bias().to_vec(), vec![0.0; 3]);
    /// ```
    pub fn bias(&self) -> &Var {
        &self.bias
    }

    /// The `ϵ` added to the variance.
    ///
    /// ```
    /// assert_eq!(flux_layers::LayerNorm::new(3).eps(), 1e-5);
    /// ```
    pub fn eps(&self) -> f64 {
        self.eps
    }

    /// The number of features.
    ///
    /// ```
    /// assert_eq!(flux_layers::LayerNorm::new(3).features(), 3);
    /// ```
    pub fn features(&self) -> usize {
        self.scale.shape()[0]
    }
}

impl Traverse for LayerNorm {
    fn visit(&self, w: &mut Walker<'_>) {
        w.torch(self);
        w.param("scale", &self.scale);
        w.param("bias", &self.bias);
    }
}

impl DeepCopy for LayerNorm {
    fn deepcopy(&self) -> LayerNorm {
        LayerNorm { scale: self.scale.deepcopy(), bias: self.bias.deepcopy(), eps: self.eps }
    }
}

impl Layer for LayerNorm {
    fn try_forward(&self, x: &Var) -> Result<Var, LayerError> {
        let shape = x.shape();
        let n = self.features();
        if shape.rank() == 0 || shape[0] != n {
            return Err(LayerError::InputShape { layer: self.to_string(), got: shape.to_vec(), expected: format!("[{n}] or [{n}, N] (features first)") });
        }
        // one fused op (forward and backward each a few passes per column)
        Ok(crate::cast_like(x, &self.scale).try_layernorm(&self.scale, &self.bias, self.eps)?)
    }

    fn fmt_layer(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LayerNorm({})", self.features())
    }

    fn deepcopy_layer(&self) -> Option<Box<dyn Layer>> {
        Some(Box::new(self.deepcopy()))
    }
}

impl fmt::Display for LayerNorm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_layer(f)
    }
}

impl fmt::Debug for LayerNorm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_layer(f)
    }
}

/// `LayerNorm` <-> PyTorch `LayerNorm` over the first dimension: `weight` (our `scale`) and
/// `bias`, both `[n]`.
impl crate::TorchModule for LayerNorm {
    fn torch_kind(&self) -> &'static str {
        "LayerNorm"
    }
    fn torch_export(&self) -> Vec<(String, crate::TorchValue)> {
        vec![("weight".into(), crate::TorchValue::Float(self.scale.data())), ("bias".into(), crate::TorchValue::Float(self.bias.data()))]
    }
    fn torch_import(&self, src: &mut crate::TorchSource<'_>) -> Vec<(Var, Tensor)> {
        let mut out = Vec::new();
        for (name, v) in [("weight", &self.scale), ("bias", &self.bias)] {
            if let Some(t) = src.take(name, v.shape().dims(), v.dtype()) {
                out.push((v.clone(), t));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params;
    use flux_autograd::gradient_params;

    #[test]
    fn unit_variance_per_column() {
        let ln = LayerNorm::new(5);
        let x = Var::from(Tensor::randn(&[5, 4]) * 3.0 + 2.0);
        let y = ln.forward(&x).data();
        let var = (&y * &y).mean_dims(&[0]).to_vec();
        assert!(var.iter().all(|v| (v - 1.0).abs() < 1e-3), "{var:?}");
        assert_eq!(y.dtype(), flux_tensor::DType::F32, "a f64 input runs in the layer's f32");
    }

    #[test]
    fn constant_column_is_finite() {
        let ln = LayerNorm::new(3);
        let y = ln.forward(&Var::from(Tensor::ones(&[3])));
        assert_eq!(y.to_vec(), vec![0.0; 3]);
    }

    #[test]
    fn affine_params_get_gradients() {
        let ln = LayerNorm::new(3);
        let x = Var::from(Tensor::randn(&[3, 2]));
        let gs = gradient_params(|| ln.forward(&x).sum(), &params(&ln));
        assert_eq!(gs[ln.bias()].to_vec(), vec![2.0; 3]);
    }

    #[test]
    fn wrong_shape_names_the_layer_and_shapes() {
        let e = LayerNorm::new(5).try_forward(&Var::from(Tensor::zeros(&[4, 2]))).unwrap_err().to_string();
        assert!(e.contains("LayerNorm(5)") && e.contains("[4, 2]") && e.contains("[5]"), "{e}");
    }
}

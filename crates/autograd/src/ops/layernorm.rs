//! Layer normalisation over the first dimension as one recorded op (`Var::layernorm`): the
//! fused tensor kernel forward, and a backward rule that is the fused kernel when nothing
//! records and the same formula in differentiable ops when something does (a gradient of a
//! gradient, forward mode).

use std::sync::Arc;

use flux_tensor::{Tensor, TensorError};

use crate::ops::custom::CustomOp;
use crate::var::Var;

/// `scale .* (x .- μ) ./ √(σ² .+ ϵ) .+ bias` over the first dimension, inputs `[x, scale, bias]`.
struct LayerNormOp {
    eps: f64,
}

impl CustomOp for LayerNormOp {
    fn name(&self) -> &str {
        "layernorm"
    }

    fn forward(&self, xs: &[Tensor]) -> Result<Tensor, TensorError> {
        xs[0].try_layernorm(&xs[1], &xs[2], self.eps)
    }

    /// `dx = (ĝ - mean(ĝ) - x̂ .* mean(ĝ .* x̂)) ./ √(σ² + ϵ)` with `ĝ = g .* scale` and the
    /// means per column; `dscale = Σ g .* x̂`, `dbias = Σ g` over the columns.
    fn backward(&self, xs: &[Var], _y: &Var, g: &Var) -> Vec<Option<Var>> {
        let (x, scale) = (&xs[0], &xs[1]);
        if !g.is_tracked() && !xs.iter().any(Var::is_tracked) {
            let (dx, ds, db) = Tensor::try_layernorm_grad(&x.data(), &scale.data(), &g.data(), self.eps).unwrap_or_else(|e| panic!("{e}"));
            return vec![Some(Var::constant(dx)), Some(Var::constant(ds)), Some(Var::constant(db))];
        }
        let features = [scale.shape()[0]];
        let centred = x - &x.mean_dims(&[0]);
        let rstd = (centred.powi(2).mean_dims(&[0]) + self.eps).powf(-0.5);
        let xhat = &centred * &rstd;
        let gs = g * scale;
        let dx = (&gs - &gs.mean_dims(&[0]) - &xhat * &(&gs * &xhat).mean_dims(&[0])) * &rstd;
        vec![Some(dx), Some((g * &xhat).sum_to(&features)), Some(g.sum_to(&features))]
    }
}

impl Var {
    /// Layer normalisation over the first dimension, `scale .* (x .- μ) ./ √(σ² .+ ϵ) .+ bias`
    /// with the mean and (uncorrected) variance of each column, for `x` of shape `[n, ...]` and
    /// `scale`, `bias` of shape `[n]` (Flux's `LayerNorm`'s computation, as one op). Panics on
    /// bad shapes (see [`Var::try_layernorm`]).
    ///
    /// ```
    /// use flux_autograd::{gradient, Var};
    /// use flux_tensor::Tensor;
    /// let x = Var::from(Tensor::from_vec(vec![1.0, 3.0], &[2]));
    /// let (s, b) = (Var::from(Tensor::ones(&[2])), Var::from(Tensor::zeros(&[2])));
    /// assert_eq!(x.layernorm(&s, &b, 0.0).to_vec(), vec![-1.0, 1.0]);
    /// assert_eq!(gradient(|b: &Var| x.layernorm(&s, b, 0.0).sum(), &b).to_vec(), vec![1.0, 1.0]);
    /// ```
    pub fn layernorm(&self, scale: &Var, bias: &Var, eps: f64) -> Var {
        self.try_layernorm(scale, bias, eps).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Var::layernorm`], or an error naming the op and the shapes.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// use flux_tensor::Tensor;
    /// let x = Var::from(Tensor::zeros(&[3, 2]));
    /// let e = x.try_layernorm(&Var::from(Tensor::ones(&[2])), &Var::from(Tensor::zeros(&[2])), 1e-5).unwrap_err();
    /// assert!(e.to_string().contains("layernorm"));
    /// ```
    pub fn try_layernorm(&self, scale: &Var, bias: &Var, eps: f64) -> Result<Var, TensorError> {
        Var::custom(Arc::new(LayerNormOp { eps }), &[self.clone(), scale.clone(), bias.clone()])
    }
}

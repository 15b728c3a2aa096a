//! [`BatchNorm`]: batch normalisation with running statistics.

use std::fmt;

use flux_autograd::{param, Var};
use flux_tensor::Tensor;

use crate::deepcopy::DeepCopy;
use crate::dense::Activation;
use crate::error::LayerError;
use crate::layer::{Layer, Modal, Traverse, Walker};
use crate::mode::{ModeCell, TrainMode};

/// Batch normalisation (Flux's `BatchNorm(channels, λ)`). The channel dimension is the one
/// before the last (`C` in `[C, N]` or `[W, H, C, N]`; a lone vector `[C]` is one sample); every
/// other dimension is normalised over.
///
/// While training, each channel is normalised with the batch's mean and (uncorrected) variance,
/// and the running statistics move towards them with momentum 0.1:
/// `μ_run = 0.9 μ_run + 0.1 μ`, `σ²_run = 0.9 σ²_run + 0.1 σ² m/(m-1)` (`m` values per channel,
/// the corrected variance, as Flux does). In test mode the running statistics are used instead.
/// Then `y = λ.(γ .* x̂ .+ β)` with learnable `γ = ones(C)` (`scale`) and `β = zeros(C)`
/// (`bias`), `ϵ = 1e-5`.
///
/// The running statistics are buffers (saved by `save_state`, converted by `to_f64`, not
/// trained). The mode is [`TrainMode::Auto`] by default: training exactly inside a gradient call;
/// [`crate::testmode`] / [`crate::trainmode`] fix it.
///
/// ```
/// use flux_autograd::{gradient_params, Var};
/// use flux_layers::{params, BatchNorm, Layer};
/// use flux_tensor::Tensor;
/// let bn = BatchNorm::new(3);
/// assert_eq!(bn.to_string(), "BatchNorm(3)");
/// let x = Var::from(Tensor::randn(&[3, 16]) + 5.0);
/// let _ = gradient_params(|| bn.forward(&x).powi(2).sum(), &params(&bn)); // training step
/// assert!(bn.running_mean().to_vec().iter().all(|&m| m > 0.3)); // moved towards 5
/// ```
pub struct BatchNorm {
    scale: Var,
    bias: Var,
    running_mean: Var,
    running_var: Var,
    act: Activation,
    momentum: f64,
    eps: f64,
    mode: ModeCell,
}

impl BatchNorm {
    /// Batch normalisation over `channels` channels, no activation.
    ///
    /// ```
    /// let bn = flux_layers::BatchNorm::new(4);
    /// assert_eq!(bn.running_var().to_vec(), vec![1.0; 4]);
    /// ```
    pub fn new(channels: usize) -> BatchNorm {
        BatchNorm::with_activation(channels, crate::activation::identity)
    }

    /// Batch normalisation followed by an activation (Flux's `BatchNorm(ch, λ)`).
    ///
    /// ```
    /// let bn = flux_layers::BatchNorm::with_activation(4, flux_layers::relu);
    /// assert_eq!(bn.to_string(), "BatchNorm(4, relu)");
    /// ```
    pub fn with_activation<F: Fn(&Var) -> Var + Send + Sync + 'static>(channels: usize, act: F) -> BatchNorm {
        BatchNorm {
            scale: param(Tensor::ones(&[channels]).to_f32()),
            bias: param(Tensor::zeros(&[channels]).to_f32()),
            running_mean: Var::constant(Tensor::zeros(&[channels]).to_f32()),
            running_var: Var::constant(Tensor::ones(&[channels]).to_f32()),
            act: Activation::new(act),
            momentum: 0.1,
            eps: 1e-5,
            mode: ModeCell::default(),
        }
    }

    /// The number of channels.
    ///
    /// ```
    /// assert_eq!(flux_layers::BatchNorm::new(4).channels(), 4);
    /// ```
    pub fn channels(&self) -> usize {
        self.scale.shape()[0]
    }

    /// The learnable per-channel scale `γ`.
    ///
    /// ```
    /// assert!(flux_layers::BatchNorm::new(2).scale().is_param());
    /// ```
    pub fn scale(&self) -> &Var {
        &self.scale
    }

    /// The learnable per-channel shift `β`.
    ///
    /// ```
    /// assert!(flux_layers::BatchNorm::new(2).bias().is_param());
    /// ```
    pub fn bias(&self) -> &Var {
        &self.bias
    }

    /// The running mean per channel (a buffer: saved, not trained).
    ///
    /// ```
    /// assert!(!flux_layers::BatchNorm::new(2).running_mean().is_param());
    /// ```
    pub fn running_mean(&self) -> &Var {
        &self.running_mean
    }

    /// The running variance per channel (a buffer: saved, not trained).
    ///
    /// ```
    /// assert_eq!(flux_layers::BatchNorm::new(2).running_var().to_vec(), vec![1.0, 1.0]);
    /// ```
    pub fn running_var(&self) -> &Var {
        &self.running_var
    }

    /// The momentum of the running statistics (0.1).
    ///
    /// ```
    /// assert_eq!(flux_layers::BatchNorm::new(2).momentum(), 0.1);
    /// ```
    pub fn momentum(&self) -> f64 {
        self.momentum
    }

    /// The `ϵ` added to the variance (1e-5).
    ///
    /// ```
    /// assert_eq!(flux_layers::BatchNorm::new(2).eps(), 1e-5);
    /// ```
    pub fn eps(&self) -> f64 {
        self.eps
    }

    /// The current mode.
    ///
    /// ```
    /// assert_eq!(flux_layers::BatchNorm::new(2).mode(), flux_layers::TrainMode::Auto);
    /// ```
    pub fn mode(&self) -> TrainMode {
        self.mode.get()
    }

    /// Sets the mode (`TrainMode::Auto` restores the default).
    ///
    /// ```
    /// use flux_layers::{BatchNorm, TrainMode};
    /// let bn = BatchNorm::new(2);
    /// bn.set_mode(TrainMode::Test);
    /// assert_eq!(bn.mode(), TrainMode::Test);
    /// ```
    pub fn set_mode(&self, mode: TrainMode) {
        self.mode.set(mode)
    }

    /// The channel dimension of an input of rank `rank` (>= 1).
    fn channel_dim(rank: usize) -> usize {
        rank.saturating_sub(2)
    }

    fn shape_error(&self, x: &Var, why: &str) -> LayerError {
        let c = self.channels();
        LayerError::InputShape {
            layer: self.to_string(),
            got: x.shape().to_vec(),
            expected: format!("[{c}, N] or [..., {c}, N] (channels before the batch){why}"),
        }
    }
}

impl Traverse for BatchNorm {
    fn visit(&self, w: &mut Walker<'_>) {
        w.torch(self);
        w.param("scale", &self.scale);
        w.param("bias", &self.bias);
        w.buffer("running_mean", &self.running_mean);
        w.buffer("running_var", &self.running_var);
        w.modal(self);
    }
}

impl DeepCopy for BatchNorm {
    fn deepcopy(&self) -> BatchNorm {
        BatchNorm {
            scale: self.scale.deepcopy(),
            bias: self.bias.deepcopy(),
            running_mean: self.running_mean.deepcopy(),
            running_var: self.running_var.deepcopy(),
            act: self.act.clone(),
            momentum: self.momentum,
            eps: self.eps,
            mode: self.mode.clone(),
        }
    }
}

impl Layer for BatchNorm {
    fn try_forward(&self, x: &Var) -> Result<Var, LayerError> {
        let shape = x.shape();
        let c = self.channels();
        if shape.rank() == 0 {
            return Err(self.shape_error(x, ""));
        }
        let cdim = Self::channel_dim(shape.rank());
        if shape[cdim] != c {
            return Err(self.shape_error(x, ""));
        }
        let x = &crate::cast_like(x, &self.scale);
        // per-channel values broadcast along dimension cdim
        let mut bshape = vec![1; cdim + 1];
        bshape[cdim] = c;
        let per_channel = |v: &Var| if cdim == 0 { v.clone() } else { v.reshape(&bshape) };
        let xhat = if self.mode().is_training() {
            let m = shape.numel() / c.max(1);
            if m < 2 {
                return Err(self.shape_error(x, &format!("; training needs more than one value per channel, got {m}")));
            }
            let dims: Vec<usize> = (0..shape.rank()).filter(|&d| d != cdim).collect();
            let mu = x.mean_dims(&dims);
            let centred = x - &mu;
            let var = centred.powi(2).mean_dims(&dims);
            let xhat = &centred / &(&var + self.eps).sqrt();
            // running statistics, on raw values (no gradient history)
            let mom = self.momentum;
            let rm = self.running_mean.data();
            let rv = self.running_var.data();
            let mu_c = mu.data().reshape(&[c]).to_dtype(rm.dtype());
            let var_c = var.data().reshape(&[c]).to_dtype(rv.dtype());
            let corr = m as f64 / (m as f64 - 1.0);
            self.running_mean.set_data(&(&rm * (1.0 - mom)) + &(&mu_c * mom));
            self.running_var.set_data(&(&rv * (1.0 - mom)) + &(&var_c * (mom * corr)));
            xhat
        } else {
            let mean = per_channel(&self.running_mean.detach());
            let var = per_channel(&self.running_var.detach());
            (x - &mean) / (var + self.eps).sqrt()
        };
        Ok(self.act.apply(&(xhat * &per_channel(&self.scale) + &per_channel(&self.bias))))
    }

    fn fmt_layer(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BatchNorm({}", self.channels())?;
        if !self.act.is_identity() {
            write!(f, ", {}", self.act.name())?;
        }
        f.write_str(")")
    }

    fn deepcopy_layer(&self) -> Option<Box<dyn Layer>> {
        Some(Box::new(self.deepcopy()))
    }
}

impl Modal for BatchNorm {
    fn set_training(&self, on: bool) {
        self.set_mode(if on { TrainMode::Train } else { TrainMode::Test })
    }
}

impl fmt::Display for BatchNorm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_layer(f)
    }
}

impl fmt::Debug for BatchNorm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_layer(f)
    }
}

/// `BatchNorm` <-> PyTorch `BatchNorm1d`/`BatchNorm2d`: `weight` (our `scale`), `bias`,
/// `running_mean`, `running_var`, all `[channels]`; `num_batches_tracked` is accepted and
/// ignored on load, and written as 0 on save.
impl crate::TorchModule for BatchNorm {
    fn torch_kind(&self) -> &'static str {
        "BatchNorm"
    }
    fn torch_export(&self) -> Vec<(String, crate::TorchValue)> {
        let mut out: Vec<(String, crate::TorchValue)> =
            self.torch_parts().into_iter().map(|(n, v)| (n.to_string(), crate::TorchValue::Float(v.data()))).collect();
        out.push(("num_batches_tracked".into(), crate::TorchValue::I64(0)));
        out
    }
    fn torch_import(&self, src: &mut crate::TorchSource<'_>) -> Vec<(Var, Tensor)> {
        let mut out = Vec::new();
        for (name, v) in self.torch_parts() {
            if let Some(t) = src.take(name, v.shape().dims(), v.dtype()) {
                out.push((v.clone(), t));
            }
        }
        src.ignore("num_batches_tracked");
        out
    }
}

impl BatchNorm {
    fn torch_parts(&self) -> [(&'static str, &Var); 4] {
        [("weight", &self.scale), ("bias", &self.bias), ("running_mean", &self.running_mean), ("running_var", &self.running_var)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{testmode, trainmode};

    #[test]
    fn training_normalises_each_channel() {
        let bn = BatchNorm::new(3);
        trainmode(&bn);
        let x = Var::from(Tensor::randn(&[3, 50]) * 4.0 - 2.0);
        let y = bn.forward(&x).data();
        for m in y.mean_dims(&[1]).to_vec() {
            assert!(m.abs() < 1e-6);
        }
        for v in (&y * &y).mean_dims(&[1]).to_vec() {
            assert!((v - 1.0).abs() < 1e-3);
        }
    }

    #[test]
    fn running_statistics_follow_flux() {
        let bn = BatchNorm::new(1);
        trainmode(&bn);
        let x = Var::from(Tensor::from_vec(vec![1.0, 3.0], &[1, 2]));
        bn.forward(&x);
        // μ = 2, σ² = 1 (uncorrected), corrected = 2
        assert!((bn.running_mean().to_vec()[0] - 0.2).abs() < 1e-6);
        assert!((bn.running_var().to_vec()[0] - (0.9 + 0.1 * 2.0)).abs() < 1e-6);
        // test mode uses them and leaves them alone
        testmode(&bn);
        let before = bn.running_mean().to_vec();
        let y = bn.forward(&Var::from(Tensor::from_vec(vec![0.2], &[1, 1])));
        assert!(y.item().abs() < 1e-6);
        assert_eq!(bn.running_mean().to_vec(), before);
    }

    #[test]
    fn four_dimensional_input_uses_the_channel_dimension() {
        let bn = BatchNorm::new(2);
        trainmode(&bn);
        let x = Var::from(Tensor::randn(&[3, 3, 2, 4]));
        let y = bn.forward(&x);
        assert_eq!(y.shape(), &[3, 3, 2, 4]);
        let m = y.data().mean_dims(&[0, 1, 3]).to_vec();
        assert!(m.iter().all(|v| v.abs() < 1e-6));
        assert!(bn.try_forward(&Var::from(Tensor::randn(&[3, 2, 2, 4]).slice(2, 0..1))).is_err());
    }

    #[test]
    fn outside_gradient_auto_mode_is_test_mode() {
        let bn = BatchNorm::new(2);
        let x = Var::from(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]));
        let y = bn.forward(&x).to_vec();
        // running stats 0 / 1: y ≈ x
        assert!(y.iter().zip([1.0, 2.0, 3.0, 4.0]).all(|(a, b)| (a - b).abs() < 1e-4));
        assert_eq!(bn.running_mean().to_vec(), vec![0.0, 0.0]);
    }

    #[test]
    fn errors_name_layer_and_shapes() {
        let bn = BatchNorm::new(3);
        let e = bn.try_forward(&Var::from(Tensor::zeros(&[4, 2]))).unwrap_err().to_string();
        assert!(e.contains("BatchNorm(3)") && e.contains("[4, 2]") && e.contains("[3, N]"), "{e}");
        trainmode(&bn);
        let e = bn.try_forward(&Var::from(Tensor::zeros(&[3, 1]))).unwrap_err().to_string();
        assert!(e.contains("more than one value per channel"), "{e}");
    }
}

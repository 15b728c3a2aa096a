//! Loss functions, prediction first (`loss(ŷ, y)`), as in Flux: [`mse`], [`crossentropy`],
//! [`logitcrossentropy`], [`binarycrossentropy`], [`logitbinarycrossentropy`], [`huber_loss`],
//! [`kldivergence`], [`focal_loss`], [`binary_focal_loss`], [`crossentropy_weighted`].
//!
//! All are built from autograd `Var` operations (the only data-dependent pieces are constant
//! masks), so they are differentiable twice and nest inside `gradient` like any other function.
//! A prediction and a target of different shapes is an error naming the loss and both shapes:
//! the plain forms panic with it, the `try_` forms return it.

use flux_autograd::Var;
use flux_tensor::DType;

use crate::error::LayerError;

fn check_shapes(loss: &str, yhat: &Var, y: &Var) -> Result<(), LayerError> {
    let (a, b) = (yhat.shape(), y.shape());
    if a != b {
        return Err(LayerError::InputShape {
            layer: loss.to_string(),
            got: b.to_vec(),
            expected: format!("target y to have the shape of prediction ŷ, {:?} (ŷ is {:?}, y is {:?})", a.to_vec(), a.to_vec(), b.to_vec()),
        });
    }
    Ok(())
}

fn or_panic(r: Result<Var, LayerError>) -> Var {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// The number of samples: every dimension after the first (feature) one; a vector or a
/// scalar is one sample.
fn batch_size(x: &Var) -> usize {
    let s = x.shape();
    if s.rank() <= 1 {
        1
    } else {
        s[1..].iter().product()
    }
}

/// `x .* log(y)` with `0 * log(0) = 0` wherever `x == 0` (Flux's `xlogy`), built so that it stays
/// twice differentiable: where `x == 0` the log's argument is replaced by the constant 1 (through a
/// constant mask), so neither the value nor any derivative sees `log(0)`.
fn xlogy(x: &Var, y: &Var) -> Var {
    let xd = x.data();
    if !xd.to_vec().contains(&0.0) {
        return x * &y.ln();
    }
    let keep = xd.map(|v| if v != 0.0 { 1.0 } else { 0.0 }).to_dtype(y.dtype());
    let fill = keep.map(|k| 1.0 - k);
    let safe = y * &Var::constant(keep) + &Var::constant(fill);
    x * &safe.ln()
}

/// The machine epsilon of a dtype (Flux's `eps(ŷ)`).
fn eps_of(d: DType) -> f64 {
    match d {
        DType::F32 => f32::EPSILON as f64,
        DType::F64 => f64::EPSILON,
    }
}

/// Mean squared error, `sum((ŷ .- y).^2) / length(y)`: the mean over every element.
///
/// ```
/// use flux_autograd::Var;
/// use flux_layers::mse;
/// use flux_tensor::Tensor;
/// let yhat = Var::from(Tensor::from_vec(vec![1.0, 2.0], &[2]));
/// let y = Var::from(Tensor::from_vec(vec![1.0, 4.0], &[2]));
/// assert_eq!(mse(&yhat, &y).item(), 2.0);
/// ```
pub fn mse(yhat: &Var, y: &Var) -> Var {
    or_panic(try_mse(yhat, y))
}

/// [`mse`], returning an error when the shapes differ.
///
/// ```
/// use flux_autograd::Var;
/// use flux_tensor::Tensor;
/// let e = flux_layers::try_mse(&Var::from(Tensor::zeros(&[2, 3])), &Var::from(Tensor::zeros(&[3, 2]))).unwrap_err();
/// assert!(e.to_string().contains("mse") && e.to_string().contains("[2, 3]") && e.to_string().contains("[3, 2]"));
/// ```
pub fn try_mse(yhat: &Var, y: &Var) -> Result<Var, LayerError> {
    check_shapes("mse", yhat, y)?;
    Ok((yhat - y).powi(2).mean())
}

/// Cross-entropy of probabilities `ŷ` (a softmax output) against targets `y`:
/// `-sum(y .* log.(ŷ)) / batch`, summing over the feature dimension (dim 0) and averaging over
/// the rest (a vector is one sample). `0 * log(0)` counts as 0, as in modern Flux's `xlogy`,
/// so a zero probability where the target is zero is harmless (its gradient is 0, not NaN).
///
/// ```
/// use flux_autograd::Var;
/// use flux_layers::{crossentropy, onehotbatch, softmax};
/// use flux_tensor::Tensor;
/// let logits = Var::from(Tensor::zeros(&[4, 3]));
/// let y = Var::from(onehotbatch(&[0, 1, 3], 4));
/// let l = crossentropy(&softmax(&logits), &y);
/// assert!((l.item() - 4f64.ln()).abs() < 1e-6);
/// ```
pub fn crossentropy(yhat: &Var, y: &Var) -> Var {
    or_panic(try_crossentropy(yhat, y))
}

/// [`crossentropy`], returning an error when the shapes differ.
///
/// ```
/// use flux_autograd::Var;
/// use flux_tensor::Tensor;
/// let e = flux_layers::try_crossentropy(&Var::from(Tensor::ones(&[3])), &Var::from(Tensor::ones(&[2]))).unwrap_err();
/// assert!(e.to_string().starts_with("crossentropy"));
/// ```
pub fn try_crossentropy(yhat: &Var, y: &Var) -> Result<Var, LayerError> {
    check_shapes("crossentropy", yhat, y)?;
    let n = batch_size(y) as f64;
    Ok(xlogy(y, yhat).sum() * (-1.0 / n))
}

/// Cross-entropy from logits: `crossentropy(softmax(ŷ), y)` computed stably through
/// `logsoftmax` (log-sum-exp), so extreme logits give no NaN or infinity. Summed over the
/// feature dimension, averaged over the rest.
///
/// ```
/// use flux_autograd::Var;
/// use flux_layers::{logitcrossentropy, onehot};
/// use flux_tensor::Tensor;
/// let logits = Var::from(Tensor::from_vec(vec![1000.0, -1000.0], &[2]));
/// let l = logitcrossentropy(&logits, &Var::from(onehot(1, 2)));
/// assert_eq!(l.item(), 2000.0);
/// ```
pub fn logitcrossentropy(yhat: &Var, y: &Var) -> Var {
    or_panic(try_logitcrossentropy(yhat, y))
}

/// [`logitcrossentropy`], returning an error when the shapes differ.
///
/// ```
/// use flux_autograd::Var;
/// use flux_tensor::Tensor;
/// assert!(flux_layers::try_logitcrossentropy(&Var::from(Tensor::ones(&[3, 2])), &Var::from(Tensor::ones(&[3]))).is_err());
/// ```
pub fn try_logitcrossentropy(yhat: &Var, y: &Var) -> Result<Var, LayerError> {
    check_shapes("logitcrossentropy", yhat, y)?;
    let n = batch_size(y) as f64;
    Ok((y * &yhat.logsoftmax(0)).sum() * (-1.0 / n))
}

/// Binary cross-entropy of probabilities `ŷ` against targets `y` in `[0, 1]`, averaged over
/// every element: `mean(-xlogy(y, ŷ + ϵ) - xlogy(1 - y, 1 - ŷ + ϵ))` with `ϵ = eps(dtype)`, as
/// modern Flux computes it. Prefer [`logitbinarycrossentropy`] on logits.
///
/// ```
/// use flux_autograd::Var;
/// use flux_tensor::Tensor;
/// let p = Var::from(Tensor::from_vec(vec![0.5, 0.5], &[2]));
/// let y = Var::from(Tensor::from_vec(vec![1.0, 0.0], &[2]));
/// assert!((flux_layers::binarycrossentropy(&p, &y).item() - 2f64.ln()).abs() < 1e-12);
/// ```
pub fn binarycrossentropy(yhat: &Var, y: &Var) -> Var {
    or_panic(try_binarycrossentropy(yhat, y))
}

/// [`binarycrossentropy`], returning an error when the shapes differ.
///
/// ```
/// use flux_autograd::Var;
/// use flux_tensor::Tensor;
/// assert!(flux_layers::try_binarycrossentropy(&Var::from(Tensor::ones(&[2])), &Var::from(Tensor::ones(&[1, 2]))).is_err());
/// ```
pub fn try_binarycrossentropy(yhat: &Var, y: &Var) -> Result<Var, LayerError> {
    check_shapes("binarycrossentropy", yhat, y)?;
    let eps = eps_of(yhat.dtype());
    let pos = xlogy(y, &(yhat + eps));
    let neg = xlogy(&(1.0 - y), &((1.0 + eps) - yhat));
    Ok(-(pos + neg).mean())
}

/// Binary cross-entropy from logits, averaged over every element:
/// `mean((1 .- y) .* ŷ .- logσ(ŷ))` with `logσ(x) = -softplus(-x)`, stable for any logit.
///
/// ```
/// use flux_autograd::Var;
/// use flux_tensor::Tensor;
/// let logits = Var::from(Tensor::from_vec(vec![1000.0, -1000.0], &[2]));
/// let y = Var::from(Tensor::from_vec(vec![1.0, 0.0], &[2]));
/// assert_eq!(flux_layers::logitbinarycrossentropy(&logits, &y).item(), 0.0);
/// ```
pub fn logitbinarycrossentropy(yhat: &Var, y: &Var) -> Var {
    or_panic(try_logitbinarycrossentropy(yhat, y))
}

/// [`logitbinarycrossentropy`], returning an error when the shapes differ.
///
/// ```
/// use flux_autograd::Var;
/// use flux_tensor::Tensor;
/// assert!(flux_layers::try_logitbinarycrossentropy(&Var::from(Tensor::ones(&[2])), &Var::from(Tensor::ones(&[3]))).is_err());
/// ```
pub fn try_logitbinarycrossentropy(yhat: &Var, y: &Var) -> Result<Var, LayerError> {
    check_shapes("logitbinarycrossentropy", yhat, y)?;
    Ok(((1.0 - y) * yhat + (-yhat).softplus()).mean())
}

/// Every loss with its Flux name, for tests and the gradcheck suite.
///
/// ```
/// assert_eq!(flux_layers::LOSSES.len(), 5);
/// ```
pub const ALL: [(&str, fn(&Var, &Var) -> Var); 5] = [
    ("mse", mse),
    ("crossentropy", crossentropy),
    ("logitcrossentropy", logitcrossentropy),
    ("binarycrossentropy", binarycrossentropy),
    ("logitbinarycrossentropy", logitbinarycrossentropy),
];

#[cfg(test)]
mod tests {
    use super::*;
    use flux_autograd::{gradient, gradients};
    use flux_tensor::Tensor;

    fn v(data: Vec<f64>, shape: &[usize]) -> Var {
        Var::from(Tensor::from_vec(data, shape))
    }

    #[test]
    fn crossentropy_batches_average_over_samples() {
        // two identical samples give the loss of one
        let p = v(vec![0.2, 0.8], &[2]);
        let y = v(vec![0.0, 1.0], &[2]);
        let one = crossentropy(&p, &y).item();
        assert!((one + 0.8f64.ln()).abs() < 1e-12);
        let pb = v(vec![0.2, 0.8, 0.2, 0.8], &[2, 2]);
        let yb = v(vec![0.0, 1.0, 0.0, 1.0], &[2, 2]);
        assert!((crossentropy(&pb, &yb).item() - one).abs() < 1e-12);
        // a rank-3 batch [C, A, B] averages over A*B samples
        let p3 = Var::from(Tensor::full(&[2, 2, 3], 0.5));
        let y3 = Var::from(Tensor::full(&[2, 2, 3], 0.5));
        assert!((crossentropy(&p3, &y3).item() - 2f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn crossentropy_zero_times_log_zero_is_zero() {
        let p = v(vec![0.0, 1.0], &[2]);
        let y = v(vec![0.0, 1.0], &[2]);
        assert_eq!(crossentropy(&p, &y).item(), 0.0);
        let g = gradient(|p: &Var| crossentropy(p, &y), &p);
        assert_eq!(g.to_vec(), vec![0.0, -1.0]);
        // and the second derivative is finite too
        let h = gradient(|p: &Var| gradient(|q: &Var| crossentropy(q, &y), p).sum(), &p);
        assert!(h.to_vec().iter().all(|x| x.is_finite()));
    }

    #[test]
    fn logit_losses_have_no_nan_at_extreme_logits() {
        let x = v(vec![1e4, -1e4, 0.0, 3e38], &[4]);
        let y = v(vec![0.0, 1.0, 0.5, 1.0], &[4]);
        for (name, f) in [("logitcrossentropy", logitcrossentropy as fn(&Var, &Var) -> Var), ("logitbinarycrossentropy", logitbinarycrossentropy)] {
            let l = f(&x, &y).item();
            assert!(l.is_finite(), "{name}: {l}");
            let g = gradient(|x: &Var| f(x, &y), &x);
            assert!(g.to_vec().iter().all(|g| g.is_finite()), "{name}: {g:?}");
        }
    }

    #[test]
    fn logit_forms_agree_with_plain_forms() {
        let x = v(vec![0.3, -1.2, 2.0, 0.1, 0.5, -0.7], &[3, 2]);
        let y = v(vec![0.0, 1.0, 0.0, 1.0, 0.0, 0.0], &[3, 2]);
        let a = logitcrossentropy(&x, &y).item();
        let b = crossentropy(&x.softmax(0), &y).item();
        assert!((a - b).abs() < 1e-12);
        let a = logitbinarycrossentropy(&x, &y).item();
        let b = binarycrossentropy(&x.sigmoid(), &y).item();
        assert!((a - b).abs() < 1e-9);
    }

    #[test]
    fn gradient_with_respect_to_both_arguments() {
        let p = v(vec![0.3, 0.7], &[2]);
        let y = v(vec![0.0, 1.0], &[2]);
        let g = gradients(|a: &[Var]| mse(&a[0], &a[1]), &[p, y]);
        assert!((g[0].to_vec()[0] - 0.3).abs() < 1e-12);
        assert!((g[1].to_vec()[0] + 0.3).abs() < 1e-12);
    }

    #[test]
    fn f32_prediction_keeps_f32() {
        let p = Var::from(Tensor::from_vec(vec![0.25f32, 0.75], &[2]));
        let y = Var::from(Tensor::from_vec(vec![0.0f32, 1.0], &[2]));
        for (name, f) in ALL {
            assert_eq!(f(&p, &y).dtype(), DType::F32, "{name}");
        }
    }

    #[test]
    #[should_panic(expected = "crossentropy")]
    fn mismatch_panics_with_the_loss_name() {
        crossentropy(&v(vec![0.5, 0.5], &[2]), &v(vec![1.0, 0.0, 0.0], &[3]));
    }
}

/// Huber loss with `δ = 1`, averaged over every element (Flux's `huber_loss(ŷ, y)`):
/// `0.5·|ŷ - y|²` where `|ŷ - y| < δ`, `δ·(|ŷ - y| - 0.5·δ)` elsewhere. The branch is a
/// constant mask, as Flux's `ignore_derivatives`, so the loss is twice differentiable away from
/// the kink at `|ŷ - y| = δ`.
///
/// ```
/// use flux_autograd::Var;
/// use flux_tensor::Tensor;
/// let yhat = Var::from(Tensor::from_vec(vec![0.5, 3.0], &[2]));
/// let y = Var::from(Tensor::zeros(&[2]));
/// // (0.5·0.25 + (3 - 0.5)) / 2
/// assert_eq!(flux_layers::huber_loss(&yhat, &y).item(), 1.3125);
/// ```
pub fn huber_loss(yhat: &Var, y: &Var) -> Var {
    or_panic(try_huber_loss(yhat, y))
}

/// [`huber_loss`], returning an error naming `huber_loss` when the shapes differ.
///
/// ```
/// use flux_autograd::Var;
/// use flux_tensor::Tensor;
/// assert!(flux_layers::try_huber_loss(&Var::from(Tensor::ones(&[2])), &Var::from(Tensor::ones(&[3]))).unwrap_err().to_string().starts_with("huber_loss"));
/// ```
pub fn try_huber_loss(yhat: &Var, y: &Var) -> Result<Var, LayerError> {
    check_shapes("huber_loss", yhat, y)?;
    const DELTA: f64 = 1.0;
    let abs_error = (yhat - y).abs();
    let inside = abs_error.data().map(|e| if e < DELTA { 1.0 } else { 0.0 });
    let outside = inside.map(|k| 1.0 - k);
    let quadratic = abs_error.powi(2) * Var::constant(inside) * 0.5;
    let linear = (&abs_error - 0.5 * DELTA) * DELTA * Var::constant(outside);
    Ok((quadratic + linear).mean())
}

/// `x .* log(x)` with `0·log(0) = 0` (Flux's `xlogx`).
fn xlogx(x: &Var) -> Var {
    xlogy(x, x)
}

/// Kullback-Leibler divergence of the distribution `y` from the prediction `ŷ`, both
/// probabilities along dim 0, averaged over the other dims (Flux's `kldivergence(ŷ, y)`):
/// `mean(sum(xlogx.(y); dims = 1)) + crossentropy(ŷ, y)` with `crossentropy`'s `ϵ = eps(ŷ)`
/// added to `ŷ`.
///
/// ```
/// use flux_autograd::Var;
/// use flux_tensor::Tensor;
/// let p1 = Var::from(Tensor::from_vec(vec![1.0, 0.0, 0.0, 1.0], &[2, 2]));
/// let p2 = Var::from(Tensor::full(&[2, 2], 0.5));
/// assert!((flux_layers::kldivergence(&p2, &p1).item() - 2f64.ln()).abs() < 1e-12);
/// ```
pub fn kldivergence(yhat: &Var, y: &Var) -> Var {
    or_panic(try_kldivergence(yhat, y))
}

/// [`kldivergence`], returning an error naming `kldivergence` when the shapes differ.
///
/// ```
/// use flux_autograd::Var;
/// use flux_tensor::Tensor;
/// assert!(flux_layers::try_kldivergence(&Var::from(Tensor::ones(&[2])), &Var::from(Tensor::ones(&[1, 2]))).is_err());
/// ```
pub fn try_kldivergence(yhat: &Var, y: &Var) -> Result<Var, LayerError> {
    check_shapes("kldivergence", yhat, y)?;
    let n = batch_size(y) as f64;
    let eps = eps_of(yhat.dtype());
    let entropy = xlogx(y).sum() * (1.0 / n);
    let cross_entropy = xlogy(y, &(yhat + eps)).sum() * (-1.0 / n);
    Ok(entropy + cross_entropy)
}

/// Focal loss with `γ = 2` (Flux's `focal_loss(ŷ, y)`, Lin et al. 2017) of probabilities `ŷ`
/// (a softmax output) against one-hot targets `y`, classes along dim 0:
/// `mean(sum(-y .* (1 .- ŷ).^γ .* log.(ŷ); dims = 1))` with `ŷ = ŷ .+ eps(ŷ)`. Well-classified
/// samples weigh less than in [`crossentropy`].
///
/// ```
/// use flux_autograd::Var;
/// use flux_tensor::Tensor;
/// let p = Var::from(Tensor::from_vec(vec![0.5, 0.5], &[2]));
/// let y = Var::from(Tensor::from_vec(vec![0.0, 1.0], &[2]));
/// assert!((flux_layers::focal_loss(&p, &y).item() - 0.25 * 2f64.ln()).abs() < 1e-12);
/// ```
pub fn focal_loss(yhat: &Var, y: &Var) -> Var {
    or_panic(try_focal_loss(yhat, y))
}

/// [`focal_loss`], returning an error naming `focal_loss` when the shapes differ.
///
/// ```
/// use flux_autograd::Var;
/// use flux_tensor::Tensor;
/// assert!(flux_layers::try_focal_loss(&Var::from(Tensor::ones(&[3])), &Var::from(Tensor::ones(&[2]))).is_err());
/// ```
pub fn try_focal_loss(yhat: &Var, y: &Var) -> Result<Var, LayerError> {
    check_shapes("focal_loss", yhat, y)?;
    const GAMMA: i32 = 2;
    let n = batch_size(y) as f64;
    let p = yhat + eps_of(yhat.dtype());
    let weight = (1.0 - &p).powi(GAMMA);
    Ok((xlogy(y, &p) * weight).sum() * (-1.0 / n))
}

/// Binary focal loss with `γ = 2` (Flux's `binary_focal_loss(ŷ, y)`) of probabilities `ŷ` (a
/// sigmoid output) against 0/1 targets `y` of the same shape: with `p = ŷ .+ eps(ŷ)` and
/// `p_t = y .* p .+ (1 .- y) .* (1 .- p)`, `mean(-(1 .- p_t).^γ .* log.(p_t))` over every
/// element (Flux's `agg = mean`). With `γ = 0` it would be [`binarycrossentropy`].
///
/// ```
/// use flux_autograd::Var;
/// use flux_tensor::Tensor;
/// // Flux's doctest: ŷ = [0.268941 0.5 0.268941; 0.731059 0.5 0.731059], y = [0 1 0; 1 0 1]
/// let p = Var::from(Tensor::from_vec(vec![0.268941, 0.731059, 0.5, 0.5, 0.268941, 0.731059], &[2, 3]));
/// let y = Var::from(Tensor::from_vec(vec![0.0, 1.0, 1.0, 0.0, 0.0, 1.0], &[2, 3]));
/// assert!((flux_layers::binary_focal_loss(&p, &y).item() - 0.0728675615927385).abs() < 1e-12);
/// ```
pub fn binary_focal_loss(yhat: &Var, y: &Var) -> Var {
    or_panic(try_binary_focal_loss(yhat, y))
}

/// [`binary_focal_loss`], returning an error naming `binary_focal_loss` when the shapes differ.
///
/// ```
/// use flux_autograd::Var;
/// use flux_tensor::Tensor;
/// let e = flux_layers::try_binary_focal_loss(&Var::from(Tensor::ones(&[3])), &Var::from(Tensor::ones(&[2]))).unwrap_err();
/// assert!(e.to_string().starts_with("binary_focal_loss"));
/// ```
pub fn try_binary_focal_loss(yhat: &Var, y: &Var) -> Result<Var, LayerError> {
    check_shapes("binary_focal_loss", yhat, y)?;
    const GAMMA: i32 = 2;
    let p = yhat + eps_of(yhat.dtype());
    let p_t = y * &p + (1.0 - y) * (1.0 - &p);
    let weight = (1.0 - &p_t).powi(GAMMA);
    Ok((weight * p_t.ln()).mean() * -1.0)
}

/// Cross-entropy with class weights `w` (one per class, the length of dim 0):
/// `mean(-sum(w .* y .* log.(ŷ .+ ϵ); dims = 1))`, `ϵ = eps(ŷ)`, the mean over samples (the
/// other dims), as Flux's `crossentropy(ŷ, y; agg = x -> mean(w .* x))` on per-class terms and
/// Flux 0.10's `crossentropy(ŷ, y; weight = w)`. Unlike PyTorch's `weight`, it does not
/// divide by the total weight of the targets. `0·log(0)` counts as 0.
///
/// ```
/// use flux_autograd::Var;
/// use flux_layers::{crossentropy_weighted, onehotbatch};
/// use flux_tensor::Tensor;
/// let p = Var::from(Tensor::full(&[2, 2], 0.5));
/// let y = Var::from(onehotbatch(&[0, 1], 2));
/// let w = Var::from(Tensor::from_vec(vec![1.0, 3.0], &[2]));
/// assert!((crossentropy_weighted(&p, &y, &w).item() - 2.0 * 2f64.ln()).abs() < 1e-12);
/// ```
pub fn crossentropy_weighted(yhat: &Var, y: &Var, w: &Var) -> Var {
    or_panic(try_crossentropy_weighted(yhat, y, w))
}

/// [`crossentropy_weighted`], returning an error naming the loss when the shapes of `ŷ` and
/// `y` differ or `w` is not a vector with one weight per class.
///
/// ```
/// use flux_autograd::Var;
/// use flux_tensor::Tensor;
/// let (p, w) = (Var::from(Tensor::ones(&[3, 2])), Var::from(Tensor::ones(&[2])));
/// let e = flux_layers::try_crossentropy_weighted(&p, &p, &w).unwrap_err();
/// assert!(e.to_string().starts_with("crossentropy_weighted"));
/// ```
pub fn try_crossentropy_weighted(yhat: &Var, y: &Var, w: &Var) -> Result<Var, LayerError> {
    check_shapes("crossentropy_weighted", yhat, y)?;
    let classes = if yhat.rank() == 0 { 1 } else { yhat.shape()[0] };
    if w.shape().dims() != [classes] {
        return Err(LayerError::InputShape {
            layer: "crossentropy_weighted".to_string(),
            got: w.shape().to_vec(),
            expected: format!("weights w of shape [{classes}], one per class of ŷ {:?}", yhat.shape().to_vec()),
        });
    }
    let n = batch_size(y) as f64;
    let eps = eps_of(yhat.dtype());
    Ok((xlogy(y, &(yhat + eps)) * w).sum() * (-1.0 / n))
}

#[cfg(test)]
mod issue13_tests {
    use super::*;
    use flux_autograd::gradient;
    use flux_tensor::Tensor;

    fn v(data: Vec<f64>, shape: &[usize]) -> Var {
        Var::from(Tensor::from_vec(data, shape))
    }

    #[test]
    fn huber_matches_flux_piecewise() {
        // errors -2, -0.5, 0, 1.5 with δ = 1: 1.5, 0.125, 0, 1.0
        let yhat = v(vec![-2.0, -0.5, 0.0, 1.5], &[2, 2]);
        let y = v(vec![0.0; 4], &[2, 2]);
        assert!((huber_loss(&yhat, &y).item() - 2.625 / 4.0).abs() < 1e-12);
        // gradient: clamp(error, -1, 1) / n
        let g = gradient(|p| huber_loss(p, &y), &yhat).to_vec();
        assert_eq!(g, vec![-0.25, -0.125, 0.0, 0.25]);
    }

    #[test]
    fn kldivergence_is_zero_for_equal_distributions_and_matches_hand_values() {
        let p = v(vec![0.2, 0.8, 0.6, 0.4], &[2, 2]);
        assert!(kldivergence(&p, &p).item().abs() < 1e-12);
        let q = v(vec![0.5, 0.5, 0.5, 0.5], &[2, 2]);
        let want = ((0.2f64 * (0.2f64 / 0.5).ln() + 0.8 * (0.8f64 / 0.5).ln()) + (0.6 * (0.6f64 / 0.5).ln() + 0.4 * (0.4f64 / 0.5).ln())) / 2.0;
        assert!((kldivergence(&q, &p).item() - want).abs() < 1e-12);
        // d/dŷ = -y / (ŷ + ϵ) / batch
        let g = gradient(|q| kldivergence(q, &p), &q).to_vec();
        assert!((g[0] + 0.2 / 0.5 / 2.0).abs() < 1e-12);
    }

    #[test]
    fn focal_loss_matches_hand_values() {
        // one sample, classes 3, target class 2 with p = 0.7: -(0.3)^2 log(0.7)
        let p = v(vec![0.1, 0.2, 0.7], &[3]);
        let y = v(vec![0.0, 0.0, 1.0], &[3]);
        let want = -(0.3f64.powi(2)) * 0.7f64.ln();
        assert!((focal_loss(&p, &y).item() - want).abs() < 1e-12);
        // derivative in p_t: 2(1-p) log p - (1-p)^2 / p
        let g = gradient(|p| focal_loss(p, &y), &p).to_vec();
        assert!((g[2] - (2.0 * 0.3 * 0.7f64.ln() - 0.09 / 0.7)).abs() < 1e-12);
        assert_eq!(&g[..2], &[0.0, 0.0]);
    }

    /// The values of Flux's own tests (`test/losses.jl`), computed in f64 there except the
    /// softmax case (Float32 in Flux, so compared to 1e-6).
    #[test]
    fn focal_losses_match_flux_tests() {
        let y1 = v(vec![1.0, 0.0, 0.0, 0.0, 0.0, 1.0], &[3, 2]);
        let p1 = v(vec![0.4, 0.5, 0.1, 0.2, 0.5, 0.3], &[3, 2]);
        assert!((focal_loss(&p1, &y1).item() - 0.45990566879720157).abs() < 1e-12);
        let logits = v((-7..=7).map(f64::from).collect(), &[3, 5]);
        let y = Var::from(crate::onehotbatch(&[0, 1, 2, 1, 0], 3));
        assert!((focal_loss(&logits.softmax(0), &y).item() - 1.1277571935622628).abs() < 1e-6);

        let y2 = v(vec![1.0, 0.0, 0.0, 1.0], &[2, 2]);
        let p2 = v(vec![0.6, 0.4, 0.3, 0.7], &[2, 2]);
        assert!((binary_focal_loss(&p2, &y2).item() - 0.05691642237852222).abs() < 1e-12);
        // the mean runs over every element, not over the columns of a per-column sum
        let one = binary_focal_loss(&v(vec![0.6], &[1]), &v(vec![1.0], &[1])).item();
        assert!((one - 0.16 * -(0.6f64.ln())).abs() < 1e-12);
        // d/dp of -(1 - p)^2 log p at p = 0.6, one element: 2(1 - p) log p - (1 - p)^2 / p
        let g = gradient(|p| binary_focal_loss(p, &v(vec![1.0], &[1])), &v(vec![0.6], &[1])).to_vec();
        assert!((g[0] - (2.0 * 0.4 * 0.6f64.ln() - 0.16 / 0.6)).abs() < 1e-12);
        assert!(try_binary_focal_loss(&p2, &y1).unwrap_err().to_string().contains("[3, 2]"));
    }

    #[test]
    fn weighted_crossentropy_reduces_to_crossentropy_with_unit_weights() {
        let p = v(vec![0.2, 0.3, 0.5, 0.6, 0.1, 0.3], &[3, 2]);
        let y = v(vec![0.0, 1.0, 0.0, 1.0, 0.0, 0.0], &[3, 2]);
        let ones = v(vec![1.0; 3], &[3]);
        let want = -(0.3f64.ln() + 0.6f64.ln()) / 2.0;
        assert!((crossentropy_weighted(&p, &y, &ones).item() - want).abs() < 1e-12);
        let w = v(vec![2.0, 5.0, 1.0], &[3]);
        let want_w = -(5.0 * 0.3f64.ln() + 2.0 * 0.6f64.ln()) / 2.0;
        assert!((crossentropy_weighted(&p, &y, &w).item() - want_w).abs() < 1e-12);
        let e = try_crossentropy_weighted(&p, &y, &v(vec![1.0; 2], &[2])).unwrap_err().to_string();
        assert!(e.contains("crossentropy_weighted") && e.contains("[3]") && e.contains("[2]"), "{e}");
    }
}

//! Layer normalisation over the first dimension, fused: the forward pass and its backward rule
//! each read a column (one sample's features, contiguous) a few times and write it once, where
//! the composed form (mean, centre, square, mean, add, sqrt, divide, scale, shift) makes nine
//! tensors and the autograd bookkeeping for each.

use crate::dtype::Element;
use crate::error::{Result, TensorError};
use crate::tensor::{Elements, StorageElement, Tensor};

/// `Σ f(a_k, b_k)` in eight interleaved lanes: the sums of a column are short, and one
/// accumulator would make them a chain of dependent additions (latency-bound, not vectorised).
#[inline(always)]
fn sum_lanes<T: Element>(a: &[T], b: &[T], f: impl Fn(T, T) -> T) -> T {
    let mut acc = [T::ZERO; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail = ca.remainder().iter().zip(cb.remainder()).fold(T::ZERO, |s, (&x, &y)| s + f(x, y));
    for (xa, xb) in ca.zip(cb) {
        for ((s, &x), &y) in acc.iter_mut().zip(xa).zip(xb) {
            *s += f(x, y);
        }
    }
    acc.iter().fold(tail, |s, &v| s + v)
}

/// The column's mean and `1/√(σ² + ϵ)` (σ² uncorrected, from the centred values).
#[inline(always)]
fn stats<T: Element>(col: &[T], eps: T) -> (T, T) {
    let inv_n = T::ONE / T::from_f64(col.len() as f64);
    let mu = sum_lanes(col, col, |v, _| v) * inv_n;
    let var = sum_lanes(col, col, |v, _| (v - mu) * (v - mu)) * inv_n;
    (mu, T::ONE / (var + eps).sqrt())
}

fn forward<T: StorageElement>(x: &[T], scale: &[T], bias: &[T], eps: T) -> Vec<T> {
    let n = scale.len();
    let mut out = vec![T::ZERO; x.len()];
    for (xc, oc) in x.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
        let (mu, rstd) = stats(xc, eps);
        for (((o, &v), &s), &b) in oc.iter_mut().zip(xc).zip(scale).zip(bias) {
            *o = (v - mu) * rstd * s + b;
        }
    }
    out
}

/// `(dx, dscale, dbias)`: with `x̂ = (x - μ)/√(σ² + ϵ)` and `ĝ = g .* scale`,
/// `dx = (ĝ - mean(ĝ) - x̂ .* mean(ĝ .* x̂)) / √(σ² + ϵ)` per column, `dscale = Σ g .* x̂` and
/// `dbias = Σ g` over the columns.
fn backward<T: StorageElement>(x: &[T], scale: &[T], g: &[T], eps: T) -> (Vec<T>, Vec<T>, Vec<T>) {
    let n = scale.len();
    let inv_n = T::ONE / T::from_f64(n as f64);
    let (mut dx, mut ds, mut db) = (vec![T::ZERO; x.len()], vec![T::ZERO; n], vec![T::ZERO; n]);
    for ((xc, gc), dc) in x.chunks_exact(n).zip(g.chunks_exact(n)).zip(dx.chunks_exact_mut(n)) {
        let (mu, rstd) = stats(xc, eps);
        // dc holds ĝ = g .* scale until the last pass
        for (((d, &v), &gv), (&s, (dsk, dbk))) in dc.iter_mut().zip(xc).zip(gc).zip(scale.iter().zip(ds.iter_mut().zip(db.iter_mut()))) {
            *d = gv * s;
            *dsk += gv * (v - mu) * rstd;
            *dbk += gv;
        }
        let mean_g = sum_lanes(dc, dc, |gs, _| gs) * inv_n;
        let mean_gx = sum_lanes(dc, xc, |gs, v| gs * (v - mu)) * rstd * inv_n;
        for (d, &v) in dc.iter_mut().zip(xc) {
            *d = (*d - mean_g - (v - mu) * rstd * mean_gx) * rstd;
        }
    }
    (dx, ds, db)
}

impl Tensor {
    /// Layer normalisation over the first dimension (each column normalised to zero mean and
    /// unit uncorrected variance, then scaled and shifted per feature):
    /// `scale .* (x .- μ) ./ √(σ² .+ ϵ) .+ bias`, for `x` of shape `[n, ...]` and `scale`,
    /// `bias` of shape `[n]`, all of one dtype. One pass for the statistics of a column, one
    /// to write it.
    ///
    /// ```
    /// use flux_tensor::Tensor;
    /// let x = Tensor::from_vec(vec![1.0, 3.0, 0.0, 4.0], &[2, 2]);
    /// let y = x.try_layernorm(&Tensor::ones(&[2]), &Tensor::zeros(&[2]), 0.0).unwrap();
    /// assert_eq!(y.to_vec(), vec![-1.0, 1.0, -1.0, 1.0]);
    /// ```
    pub fn try_layernorm(&self, scale: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
        check(self, scale, &[bias], "layernorm")?;
        Ok(match (self.elements(), scale.elements(), bias.elements()) {
            (Elements::F32(x), Elements::F32(s), Elements::F32(b)) => Tensor::from_typed(forward(x, s, b, eps as f32), self.shape().clone()),
            (Elements::F64(x), Elements::F64(s), Elements::F64(b)) => Tensor::from_typed(forward(x, s, b, eps), self.shape().clone()),
            _ => unreachable!("check compares the dtypes"),
        })
    }

    /// The backward rule of [`Tensor::try_layernorm`] for the output gradient `g`:
    /// `(dx, dscale, dbias)`, in one pass per column for the statistics and two for the
    /// gradients.
    ///
    /// ```
    /// use flux_tensor::Tensor;
    /// let x = Tensor::from_vec(vec![1.0, 3.0], &[2]);
    /// let (dx, ds, db) = Tensor::try_layernorm_grad(&x, &Tensor::ones(&[2]), &Tensor::ones(&[2]), 0.0).unwrap();
    /// assert_eq!((dx.to_vec(), ds.to_vec(), db.to_vec()), (vec![0.0, 0.0], vec![-1.0, 1.0], vec![1.0, 1.0]));
    /// ```
    pub fn try_layernorm_grad(x: &Tensor, scale: &Tensor, g: &Tensor, eps: f64) -> Result<(Tensor, Tensor, Tensor)> {
        check(x, scale, &[], "layernorm_grad")?;
        if g.shape() != x.shape() || g.dtype() != x.dtype() {
            return Err(TensorError::ShapeMismatch {
                op: "layernorm_grad",
                lhs: x.shape().to_vec(),
                rhs: g.shape().to_vec(),
                reason: "the gradient must have the input's shape and dtype".into(),
            });
        }
        let (xs, ss) = (x.shape().clone(), scale.shape().clone());
        Ok(match (x.elements(), scale.elements(), g.elements()) {
            (Elements::F32(x), Elements::F32(s), Elements::F32(g)) => {
                let (dx, ds, db) = backward(x, s, g, eps as f32);
                (Tensor::from_typed(dx, xs), Tensor::from_typed(ds, ss.clone()), Tensor::from_typed(db, ss))
            }
            (Elements::F64(x), Elements::F64(s), Elements::F64(g)) => {
                let (dx, ds, db) = backward(x, s, g, eps);
                (Tensor::from_typed(dx, xs), Tensor::from_typed(ds, ss.clone()), Tensor::from_typed(db, ss))
            }
            _ => unreachable!("the dtypes were compared"),
        })
    }
}

/// `x` is `[n, ...]` with `n > 0`, the per-feature tensors `[n]`, all of `x`'s dtype.
fn check(x: &Tensor, scale: &Tensor, others: &[&Tensor], op: &'static str) -> Result<()> {
    let n = x.shape().first().copied().unwrap_or(0);
    if n == 0 {
        return Err(TensorError::InvalidShape { op, shape: x.shape().to_vec(), reason: "normalises over a non-empty first dimension".into() });
    }
    for p in std::iter::once(scale).chain(others.iter().copied()) {
        if p.shape() != &[n] || p.dtype() != x.dtype() {
            return Err(TensorError::ShapeMismatch {
                op,
                lhs: x.shape().to_vec(),
                rhs: p.shape().to_vec(),
                reason: format!("scale and bias must be [{n}] (the first dimension) of the input's dtype {:?}, got {:?}", x.dtype(), p.dtype()),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The composed definition, for comparison.
    fn reference(x: &Tensor, s: &Tensor, b: &Tensor, eps: f64) -> Tensor {
        let c = x - &x.mean_dims(&[0]);
        let var = (&c * &c).mean_dims(&[0]);
        &(&(&c / &(var.add_scalar(eps)).sqrt()) * s) + b
    }

    #[test]
    fn matches_the_composed_form_in_both_dtypes() {
        let (x, s, b) = (Tensor::randn(&[5, 3, 2]) * 3.0 + 1.0, Tensor::randn(&[5]), Tensor::randn(&[5]));
        let want = reference(&x, &s, &b, 1e-5);
        assert!(x.try_layernorm(&s, &b, 1e-5).unwrap().allclose(&want, 1e-12, 1e-12));
        let y32 = x.to_f32().try_layernorm(&s.to_f32(), &b.to_f32(), 1e-5).unwrap();
        assert!(y32.to_f64().allclose(&want, 1e-5, 1e-5));
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let (x, s, g) = (Tensor::randn(&[4, 3]), Tensor::randn(&[4]), Tensor::randn(&[4, 3]));
        let b = Tensor::randn(&[4]);
        let (dx, ds, db) = Tensor::try_layernorm_grad(&x, &s, &g, 1e-3).unwrap();
        let loss = |x: &Tensor, s: &Tensor, b: &Tensor| (&x.try_layernorm(s, b, 1e-3).unwrap() * &g).sum_all();
        let h = 1e-6;
        for (which, grad) in [(0, &dx), (1, &ds), (2, &db)] {
            let base = [&x, &s, &b][which];
            for i in 0..base.numel() {
                let bump = |d: f64| {
                    let mut v = base.to_vec();
                    v[i] += d;
                    let t = Tensor::from_vec(v, base.shape().dims());
                    let mut args = [x.clone(), s.clone(), b.clone()];
                    args[which] = t;
                    loss(&args[0], &args[1], &args[2])
                };
                let fd = (bump(h) - bump(-h)) / (2.0 * h);
                assert!((grad.to_vec()[i] - fd).abs() < 1e-6, "input {which} element {i}: {} vs {fd}", grad.to_vec()[i]);
            }
        }
    }

    #[test]
    fn bad_shapes_are_errors_naming_the_op() {
        let x = Tensor::zeros(&[3, 2]);
        let e = x.try_layernorm(&Tensor::ones(&[2]), &Tensor::zeros(&[3]), 1e-5).unwrap_err().to_string();
        assert!(e.contains("layernorm") && e.contains("[3, 2]") && e.contains("[2]"), "{e}");
        assert!(x.try_layernorm(&Tensor::ones(&[3]).to_f32(), &Tensor::zeros(&[3]), 1e-5).is_err());
        assert!(Tensor::try_layernorm_grad(&x, &Tensor::ones(&[3]), &Tensor::zeros(&[2, 3]), 1e-5).is_err());
    }
}

//! Scans and the statistics Julia users reach for: `cumsum` (a primitive over flux-tensor's
//! scan kernel; its adjoint is the reversed scan and its tangent the scan of the tangent),
//! and `prod`, `var`, `std` composed from differentiable ops (so they have every order of
//! derivative and forward mode for free).

use flux_tensor::{Tensor, TensorError};

use crate::op::Op;
use crate::value::Value;
use crate::var::Var;

/// Gradient for `y = cumsum(x, dim)` (or its reverse): the scan of `g` the other way.
pub(crate) fn cumsum_backward<V: Value>(dim: usize, reverse: bool, g: &V) -> V {
    V::from_var(g.to_var().scan(dim, !reverse))
}

impl Var {
    fn try_scan(&self, dim: usize, reverse: bool) -> Result<Var, TensorError> {
        let x = self.data();
        let y = if reverse { x.try_cumsum_reverse(dim)? } else { x.try_cumsum(dim)? };
        Ok(Var::from_op(y, Op::Cumsum(self.clone(), dim, reverse)))
    }

    /// `cumsum` (`reverse` false) or the reversed scan, the primitive behind [`Var::cumsum`].
    pub(crate) fn scan(&self, dim: usize, reverse: bool) -> Var {
        self.try_scan(dim, reverse).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Fallible [`Var::cumsum`]: an error naming `cumsum` and the shape when `dim` is past the
    /// rank.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// let e = Var::from(flux_tensor::Tensor::ones(&[3])).try_cumsum(1).unwrap_err();
    /// assert_eq!(e.to_string(), "cumsum: dimension 1 is out of range for shape [3]");
    /// ```
    pub fn try_cumsum(&self, dim: usize) -> Result<Var, TensorError> {
        self.try_scan(dim, false)
    }

    /// Cumulative sum along `dim` (0-based: Julia's `cumsum(x; dims = dim + 1)`).
    ///
    /// ```
    /// use flux_autograd::{gradient, Var};
    /// let x = Var::from(flux_tensor::Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3]));
    /// assert_eq!(x.cumsum(0).to_vec(), vec![1.0, 3.0, 6.0]);
    /// // each x[i] appears in n - i partial sums
    /// assert_eq!(gradient(|x| x.cumsum(0).sum(), &x).to_vec(), vec![3.0, 2.0, 1.0]);
    /// ```
    pub fn cumsum(&self, dim: usize) -> Var {
        self.try_cumsum(dim).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Product of every element, 0-d (Julia's `prod(x)`; 1 for an empty array). Computed as a
    /// tree of elementwise products of halves (`log₂ n` steps), so the gradient is exact where
    /// elements are zero, unlike `prod(x) ./ x`.
    ///
    /// ```
    /// use flux_autograd::{gradient, Var};
    /// let x = Var::from(flux_tensor::Tensor::from_vec(vec![2.0, 0.0, 3.0], &[3]));
    /// assert_eq!(x.prod().item(), 0.0);
    /// assert_eq!(gradient(|x| x.prod(), &x).to_vec(), vec![0.0, 6.0, 0.0]);
    /// ```
    pub fn prod(&self) -> Var {
        let n = self.numel();
        if n == 0 {
            return Var::constant(Tensor::scalar_of(1.0, self.dtype()));
        }
        let mut x = self.reshape(&[n]);
        let mut len = n;
        while len > 1 {
            if !len.is_multiple_of(2) {
                x = Var::concat(&[x, Var::constant(Tensor::full_of(&[1], 1.0, self.dtype()))], 0);
                len += 1;
            }
            let half = len / 2;
            x = &x.slice(0, 0..half) * &x.slice(0, half..len);
            len = half;
        }
        x.reshape(&[])
    }

    /// Sample variance of every element, 0-d, corrected as Julia's `var(x)`:
    /// `sum((x .- mean(x)).^2) / (n - 1)` (NaN for one element, as in Julia).
    ///
    /// ```
    /// use flux_autograd::Var;
    /// let x = Var::from(flux_tensor::Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[4]));
    /// assert!((x.var().item() - 5.0 / 3.0).abs() < 1e-12);
    /// ```
    pub fn var(&self) -> Var {
        let n = self.numel() as f64;
        let d = self - &self.mean();
        d.powi(2).sum() * (1.0 / (n - 1.0))
    }

    /// Sample standard deviation of every element, 0-d: `sqrt(var(x))` (Julia's `std(x)`,
    /// corrected by `n - 1`).
    ///
    /// ```
    /// use flux_autograd::Var;
    /// let x = Var::from(flux_tensor::Tensor::from_vec(vec![2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0], &[8]));
    /// assert!((x.std().item() - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
    /// ```
    pub fn std(&self) -> Var {
        self.var().sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{gradient, jvp};

    fn v(x: Vec<f64>, s: &[usize]) -> Var {
        Var::from(Tensor::from_vec(x, s))
    }

    #[test]
    fn cumsum_gradient_and_tangent() {
        let x = v(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
        assert_eq!(x.cumsum(1).to_vec(), vec![1.0, 2.0, 4.0, 6.0, 9.0, 12.0]);
        // weights w: d sum(w .* cumsum(x)) = reverse cumsum of w
        let w = Tensor::from_vec(vec![1.0, 10.0, 100.0, 1000.0, 1e4, 1e5], &[2, 3]);
        let g = gradient(|x| (x.cumsum(1) * Var::from(w.clone())).sum(), &x);
        assert_eq!(g.to_vec(), vec![10101.0, 101010.0, 10100.0, 101000.0, 10000.0, 100000.0]);
        let (_, t) = jvp(|x| x.cumsum(0), &x, &Var::from(Tensor::ones(&[2, 3])));
        assert_eq!(t.to_vec(), vec![1.0, 2.0, 1.0, 2.0, 1.0, 2.0]);
    }

    #[test]
    fn prod_of_every_length() {
        for n in 0..12 {
            let vals: Vec<f64> = (0..n).map(|i| 1.0 + 0.1 * i as f64).collect();
            let want: f64 = vals.iter().product();
            let x = v(vals.clone(), &[n]);
            assert!((x.prod().item() - want).abs() < 1e-12);
            if n > 0 {
                let g = gradient(|x| x.prod(), &x).to_vec();
                for (i, gi) in g.iter().enumerate() {
                    assert!((gi - want / vals[i]).abs() < 1e-12);
                }
            }
        }
        // two zeros: every gradient entry is 0
        assert_eq!(gradient(|x| x.prod(), &v(vec![0.0, 2.0, 0.0], &[3])).to_vec(), vec![0.0; 3]);
    }

    #[test]
    fn var_and_std_are_corrected() {
        let x = v(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]);
        assert!((x.var().item() - 1.25 * 4.0 / 3.0).abs() < 1e-12);
        // d var / dx = 2 (x - mean) / (n - 1)
        let g = gradient(|x| x.var(), &x).to_vec();
        let want: Vec<f64> = [1.0, 2.0, 3.0, 4.0].iter().map(|x| 2.0 * (x - 2.5) / 3.0).collect();
        assert!(g.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-12));
        assert!(v(vec![1.0], &[1]).var().item().is_nan());
    }
}

//! Cumulative sums along one dimension ([`Tensor::cumsum`], Julia's `cumsum(x; dims)`), and the
//! reversed scan that is its adjoint ([`Tensor::cumsum_reverse`]). Viewed as `[inner, n, outer]`,
//! the scan runs over `n` with the `inner` elements of one step contiguous, so the inner loop is
//! a vector add of whole rows.

use crate::dtype::Element;
use crate::error::{Result, TensorError};
use crate::tensor::{dispatch, Tensor};

fn kernel<T: Element>(x: &[T], inner: usize, n: usize, outer: usize, reverse: bool) -> Vec<T> {
    let mut out = x.to_vec();
    for o in 0..outer {
        let block = &mut out[o * n * inner..(o + 1) * n * inner];
        for step in 1..n {
            // forward: row k += row k-1; reverse: row n-1-k += row n-k
            let (dst, src) = if reverse { (n - 1 - step, n - step) } else { (step, step - 1) };
            let (lo, hi) = block.split_at_mut(dst.max(src) * inner);
            let (d, s) = if reverse { (&mut lo[dst * inner..], &hi[..inner]) } else { (&mut hi[..inner], &lo[src * inner..]) };
            for (a, &b) in d.iter_mut().zip(s) {
                *a += b;
            }
        }
    }
    out
}

impl Tensor {
    fn scan(&self, op: &'static str, dim: usize, reverse: bool) -> Result<Tensor> {
        if dim >= self.rank() {
            return Err(TensorError::DimOutOfRange { op, dim, shape: self.shape().to_vec() });
        }
        let inner: usize = self.shape()[..dim].iter().product();
        let n = self.shape()[dim];
        let outer: usize = self.shape()[dim + 1..].iter().product();
        Ok(dispatch!(self, |v: T| Tensor::from_typed(kernel(v, inner, n, outer, reverse), self.shape().clone())))
    }

    /// Fallible [`Tensor::cumsum`]: an error naming `cumsum` when `dim` is past the rank.
    ///
    /// ```
    /// assert!(flux_tensor::Tensor::ones(&[3]).try_cumsum(1).is_err());
    /// ```
    pub fn try_cumsum(&self, dim: usize) -> Result<Tensor> {
        self.scan("cumsum", dim, false)
    }

    /// Cumulative sum along `dim` (0-based; Julia's `cumsum(x; dims = dim + 1)`).
    ///
    /// ```
    /// use flux_tensor::Tensor;
    /// let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]);
    /// assert_eq!(x.cumsum(0).to_vec(), vec![1.0, 3.0, 3.0, 7.0]);
    /// assert_eq!(x.cumsum(1).to_vec(), vec![1.0, 2.0, 4.0, 6.0]);
    /// ```
    pub fn cumsum(&self, dim: usize) -> Tensor {
        self.try_cumsum(dim).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Fallible [`Tensor::cumsum_reverse`].
    ///
    /// ```
    /// assert!(flux_tensor::Tensor::scalar(1.0).try_cumsum_reverse(0).is_err());
    /// ```
    pub fn try_cumsum_reverse(&self, dim: usize) -> Result<Tensor> {
        self.scan("cumsum_reverse", dim, true)
    }

    /// Cumulative sum along `dim` from the end (`reverse(cumsum(reverse(x)))`): the adjoint of
    /// [`Tensor::cumsum`].
    ///
    /// ```
    /// use flux_tensor::Tensor;
    /// let x = Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3]);
    /// assert_eq!(x.cumsum_reverse(0).to_vec(), vec![6.0, 5.0, 3.0]);
    /// ```
    pub fn cumsum_reverse(&self, dim: usize) -> Tensor {
        self.try_cumsum_reverse(dim).unwrap_or_else(|e| panic!("{e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference: a running sum over each line along `dim`, by explicit indexing.
    fn naive(x: &Tensor, dim: usize, reverse: bool) -> Vec<f64> {
        let s = x.shape().to_vec();
        let v = x.to_vec();
        let inner: usize = s[..dim].iter().product();
        let n = s[dim];
        let outer: usize = s[dim + 1..].iter().product();
        let mut out = v.clone();
        for o in 0..outer {
            for i in 0..inner {
                let mut acc = 0.0;
                let ks: Vec<usize> = if reverse { (0..n).rev().collect() } else { (0..n).collect() };
                for k in ks {
                    let at = o * n * inner + k * inner + i;
                    acc += v[at];
                    out[at] = acc;
                }
            }
        }
        out
    }

    #[test]
    fn matches_running_sums_on_every_dim() {
        crate::seed(5);
        let x = Tensor::randn(&[3, 4, 2]).to_f64();
        for dim in 0..3 {
            for reverse in [false, true] {
                let got = if reverse { x.cumsum_reverse(dim) } else { x.cumsum(dim) };
                let want = naive(&x, dim, reverse);
                for (a, b) in got.to_vec().iter().zip(&want) {
                    assert!((a - b).abs() < 1e-12, "dim {dim} reverse {reverse}");
                }
            }
        }
        assert_eq!(Tensor::zeros(&[0, 3]).cumsum(0).shape(), &[0, 3]);
        assert_eq!(x.try_cumsum(3).unwrap_err().to_string(), "cumsum: dimension 3 is out of range for shape [3, 4, 2]");
    }
}

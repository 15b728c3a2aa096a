//! Max and mean pooling over the spatial dims of `[spatial..., C, N]` (1 to 3 spatial dims).
//! Max pooling finds each window's argmax (`maxpool_indices`) and gathers; its adjoint adds the
//! output gradient back at those indices (`index_add`). Mean pooling is a convolution of each
//! channel with a constant kernel `1 / prod(window)` (padding counts, as NNlib's `meanpool`),
//! so its adjoint is that convolution's input gradient.

use crate::conv::{window_argmax, ConvSpec};
use crate::error::{Result, TensorError};
use crate::shape::Shape;
use crate::tensor::Tensor;

/// A pooling window with its stride (the window unless set) and padding (one value, one per
/// spatial dim, or one per side as `(lo1, hi1, lo2, hi2, ...)`).
///
/// ```
/// use flux_tensor::{PoolSpec, Tensor};
/// let x = Tensor::from_vec((1..=16).map(f64::from).collect::<Vec<_>>(), &[4, 4, 1, 1]);
/// let y = x.maxpool(&PoolSpec::new(&[2, 2]));
/// assert_eq!(y.to_vec(), vec![6.0, 8.0, 14.0, 16.0]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolSpec {
    window: Vec<usize>,
    stride: Option<Vec<usize>>,
    pad: Vec<usize>,
}

impl PoolSpec {
    /// A window, stride = window, no padding.
    ///
    /// ```
    /// assert_eq!(flux_tensor::PoolSpec::new(&[2, 2]).window(), &[2, 2]);
    /// ```
    pub fn new(window: &[usize]) -> PoolSpec {
        PoolSpec { window: window.to_vec(), stride: None, pad: vec![0] }
    }
    /// The stride: one value or one per spatial dim.
    ///
    /// ```
    /// assert_eq!(flux_tensor::PoolSpec::new(&[3]).stride(&[1]).stride_values(), &[1]);
    /// ```
    pub fn stride(mut self, s: &[usize]) -> PoolSpec {
        self.stride = Some(s.to_vec());
        self
    }
    /// The padding: one value, one per spatial dim, or one per side.
    ///
    /// ```
    /// assert_eq!(flux_tensor::PoolSpec::new(&[3]).pad(&[1]).pad_values(), &[1]);
    /// ```
    pub fn pad(mut self, p: &[usize]) -> PoolSpec {
        self.pad = p.to_vec();
        self
    }
    /// The window.
    ///
    /// ```
    /// assert_eq!(flux_tensor::PoolSpec::new(&[3]).window(), &[3]);
    /// ```
    pub fn window(&self) -> &[usize] {
        &self.window
    }
    /// The stride (the window unless set).
    ///
    /// ```
    /// assert_eq!(flux_tensor::PoolSpec::new(&[3]).stride_values(), &[3]);
    /// ```
    pub fn stride_values(&self) -> &[usize] {
        self.stride.as_deref().unwrap_or(&self.window)
    }
    /// The padding as given.
    ///
    /// ```
    /// assert_eq!(flux_tensor::PoolSpec::new(&[3]).pad_values(), &[0]);
    /// ```
    pub fn pad_values(&self) -> &[usize] {
        &self.pad
    }
    /// The convolution geometry of the window (stride and padding; no dilation, no flip).
    ///
    /// ```
    /// assert_eq!(flux_tensor::PoolSpec::new(&[2]).conv_spec().stride_values(), &[2]);
    /// ```
    pub fn conv_spec(&self) -> ConvSpec {
        ConvSpec::new().stride(self.stride_values()).pad(&self.pad)
    }
    /// The per-channel shapes a mean pool convolves: the input `[spatial..., 1, C·N]` and the
    /// kernel `[window..., 1, 1]`; errors name the op and the shapes.
    fn slabs(&self, op: &'static str, x: &[usize]) -> Result<(Vec<usize>, Vec<usize>)> {
        let nd = x.len().saturating_sub(2);
        if !(1..=3).contains(&nd) || self.window.len() != nd {
            return Err(TensorError::ShapeMismatch {
                op,
                lhs: x.to_vec(),
                rhs: self.window.clone(),
                reason: "the input must be [spatial..., channels, batch] with 1 to 3 spatial dims, one window size per spatial dim".into(),
            });
        }
        let mut xs = x[..nd].to_vec();
        xs.extend([1, x[nd] * x[nd + 1]]);
        let mut ws = self.window.clone();
        ws.extend([1, 1]);
        Ok((xs, ws))
    }
    /// The output shape of a pool of an input of shape `x`.
    ///
    /// ```
    /// use flux_tensor::PoolSpec;
    /// assert_eq!(PoolSpec::new(&[2, 2]).output_shape(&[5, 5, 3, 2]).unwrap(), vec![2, 2, 3, 2]);
    /// ```
    pub fn output_shape(&self, x: &[usize]) -> Result<Vec<usize>> {
        let (xs, ws) = self.slabs("pool", x)?;
        let nd = x.len() - 2;
        let mut out = self.conv_spec().output_shape(&xs, &ws).map_err(|e| rename(e, "pool", x, &self.window))?;
        out.truncate(nd);
        out.extend_from_slice(&x[nd..]);
        Ok(out)
    }

    /// The kernel of a mean pool and the per-channel input shape (for the autograd ops).
    ///
    /// ```
    /// use flux_tensor::PoolSpec;
    /// let (w, xs) = PoolSpec::new(&[2]).mean_kernel(&[6, 3, 2], flux_tensor::DType::F64).unwrap();
    /// assert_eq!((w.to_vec(), xs), (vec![0.5, 0.5], vec![6, 1, 6]));
    /// ```
    pub fn mean_kernel(&self, x: &[usize], dtype: crate::DType) -> Result<(Tensor, Vec<usize>)> {
        let (xs, ws) = self.slabs("meanpool", x)?;
        let k: usize = self.window.iter().product();
        Ok((Tensor::full_of(&ws, 1.0 / k as f64, dtype), xs))
    }
}

fn rename(e: TensorError, op: &'static str, x: &[usize], w: &[usize]) -> TensorError {
    match e {
        TensorError::ShapeMismatch { reason, .. } => TensorError::ShapeMismatch { op, lhs: x.to_vec(), rhs: w.to_vec(), reason },
        e => e,
    }
}

impl Tensor {
    /// For each max-pooling window, the flat (column-major) index into `self` of its first
    /// largest element, in the output's order, and the output shape. The padding must be
    /// smaller than the window, so that every window holds an element.
    ///
    /// ```
    /// use flux_tensor::{PoolSpec, Tensor};
    /// let x = Tensor::from_vec(vec![3.0, 1.0, 2.0, 5.0], &[4, 1, 1]);
    /// let (idx, shape) = x.try_maxpool_indices(&PoolSpec::new(&[2])).unwrap();
    /// assert_eq!((idx, shape), (vec![0, 3], vec![2, 1, 1]));
    /// ```
    pub fn try_maxpool_indices(&self, spec: &PoolSpec) -> Result<(Vec<usize>, Vec<usize>)> {
        crate::dispatch!(self, |xv: T| window_argmax(&spec.conv_spec(), self.shape(), &spec.window, xv, true).map(|(idx, _, out)| (idx, out)))
    }

    /// Max pooling and its argmax in one pass: the pooled tensor and, in its order, the flat
    /// index into `self` of each window's first largest element (what the adjoint scatters to).
    ///
    /// ```
    /// use flux_tensor::{PoolSpec, Tensor};
    /// let x = Tensor::from_vec(vec![3.0, 1.0, 2.0, 5.0], &[4, 1, 1]);
    /// let (y, idx) = x.try_maxpool_with_indices(&PoolSpec::new(&[2])).unwrap();
    /// assert_eq!((y.to_vec(), y.shape().to_vec(), idx), (vec![3.0, 5.0], vec![2, 1, 1], vec![0, 3]));
    /// ```
    pub fn try_maxpool_with_indices(&self, spec: &PoolSpec) -> Result<(Tensor, Vec<usize>)> {
        crate::dispatch!(self, |xv: T| {
            let (idx, vals, out) = window_argmax(&spec.conv_spec(), self.shape(), &spec.window, xv, true)?;
            Ok((Tensor::from_typed(vals, Shape::new(&out)), idx))
        })
    }

    /// Max pooling over the spatial dims of `[spatial..., C, N]`. Panics on bad shapes (see
    /// [`Tensor::try_maxpool`]).
    ///
    /// ```
    /// use flux_tensor::{PoolSpec, Tensor};
    /// let x = Tensor::from_vec(vec![3.0, 1.0, 2.0, 5.0, 4.0], &[5, 1, 1]);
    /// assert_eq!(x.maxpool(&PoolSpec::new(&[2])).to_vec(), vec![3.0, 5.0]);
    /// assert_eq!(x.maxpool(&PoolSpec::new(&[2]).pad(&[1])).to_vec(), vec![3.0, 2.0, 5.0]);
    /// ```
    pub fn maxpool(&self, spec: &PoolSpec) -> Tensor {
        self.try_maxpool(spec).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Fallible [`Tensor::maxpool`]: the error names the op, the input shape and the window.
    ///
    /// ```
    /// use flux_tensor::{PoolSpec, Tensor};
    /// assert!(Tensor::zeros(&[3, 1, 1]).try_maxpool(&PoolSpec::new(&[4])).is_err());
    /// ```
    pub fn try_maxpool(&self, spec: &PoolSpec) -> Result<Tensor> {
        crate::dispatch!(self, |xv: T| {
            let (_, vals, out) = window_argmax(&spec.conv_spec(), self.shape(), &spec.window, xv, false)?;
            Ok(Tensor::from_typed(vals, Shape::new(&out)))
        })
    }

    /// Mean pooling over the spatial dims of `[spatial..., C, N]`; padding counts as zeros in
    /// the mean (NNlib's `meanpool`). Panics on bad shapes (see [`Tensor::try_meanpool`]).
    ///
    /// ```
    /// use flux_tensor::{PoolSpec, Tensor};
    /// let x = Tensor::from_vec(vec![1.0, 3.0, 5.0, 7.0], &[4, 1, 1]);
    /// assert_eq!(x.meanpool(&PoolSpec::new(&[2])).to_vec(), vec![2.0, 6.0]);
    /// ```
    pub fn meanpool(&self, spec: &PoolSpec) -> Tensor {
        self.try_meanpool(spec).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Fallible [`Tensor::meanpool`].
    ///
    /// ```
    /// use flux_tensor::{PoolSpec, Tensor};
    /// assert!(Tensor::zeros(&[3, 1]).try_meanpool(&PoolSpec::new(&[2])).is_err());
    /// ```
    pub fn try_meanpool(&self, spec: &PoolSpec) -> Result<Tensor> {
        let out = spec.output_shape(self.shape())?;
        let (w, xs) = spec.mean_kernel(self.shape(), self.dtype())?;
        Ok(self.reshape(&xs).try_conv(&w, &spec.conv_spec())?.reshape(&out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maxpool_2d_with_stride_and_padding() {
        // x[i, j] = i + 10 j on 5x5
        let v: Vec<f64> = (0..25).map(|k| (k % 5 + 10 * (k / 5)) as f64).collect();
        let x = Tensor::from_vec(v, &[5, 5, 1, 1]);
        let y = x.maxpool(&PoolSpec::new(&[3, 3]).stride(&[2]).pad(&[1]));
        assert_eq!(y.shape(), &[3, 3, 1, 1]);
        assert_eq!(y.to_vec(), vec![11.0, 13.0, 14.0, 31.0, 33.0, 34.0, 41.0, 43.0, 44.0]);
        // stride > window skips elements
        let y = x.maxpool(&PoolSpec::new(&[1, 1]).stride(&[3]));
        assert_eq!(y.to_vec(), vec![0.0, 3.0, 30.0, 33.0]);
    }

    #[test]
    fn maxpool_with_per_side_padding_matches_a_direct_loop() {
        let x = Tensor::randn(&[40, 40, 8, 6]);
        let y = x.maxpool(&PoolSpec::new(&[3, 2]).stride(&[2, 3]).pad(&[1, 0, 1, 1]));
        assert_eq!(y.shape(), &[20, 14, 8, 6]);
        let (xv, yv) = (x.to_vec(), y.to_vec());
        for s in 0..48 {
            for o1 in 0..14usize {
                for o0 in 0..20usize {
                    let mut m = f64::NEG_INFINITY;
                    for i1 in (3 * o1).saturating_sub(1)..(3 * o1 + 1).min(40) {
                        for i0 in (2 * o0).saturating_sub(1)..(2 * o0 + 2).min(40) {
                            m = m.max(xv[i0 + 40 * (i1 + 40 * s)]);
                        }
                    }
                    assert_eq!(yv[o0 + 20 * (o1 + 14 * s)], m);
                }
            }
        }
    }

    #[test]
    fn maxpool_2x2_takes_the_first_largest_and_the_first_nan() {
        // odd sizes (the last row and column are dropped), ties from rounding, a few NaNs
        let (x0, x1, slabs) = (7, 5, 6);
        let mut v: Vec<f64> = Tensor::randn(&[x0 * x1 * slabs]).to_vec().iter().map(|x| (x * 2.0).round()).collect();
        for i in [3, 40, 41, 100, 150] {
            v[i] = f64::NAN;
        }
        let x = Tensor::from_vec(v.clone(), &[x0, x1, 2, 3]);
        let (y, idx) = x.try_maxpool_with_indices(&PoolSpec::new(&[2, 2])).unwrap();
        assert_eq!(y.shape(), &[3, 2, 2, 3]);
        let yv = y.to_vec();
        // the values-only path agrees
        let same = |a: f64, b: f64| a == b || (a.is_nan() && b.is_nan());
        assert!(x.maxpool(&PoolSpec::new(&[2, 2])).to_vec().iter().zip(&yv).all(|(&a, &b)| same(a, b)));
        for s in 0..slabs {
            for o1 in 0..2 {
                for o0 in 0..3 {
                    let mut best = usize::MAX;
                    for i1 in 2 * o1..2 * o1 + 2 {
                        for i0 in 2 * o0..2 * o0 + 2 {
                            let i = i0 + x0 * (i1 + x1 * s);
                            let nan_wins = v[i].is_nan() && (best == usize::MAX || !v[best].is_nan());
                            if best == usize::MAX || v[i] > v[best] || nan_wins {
                                best = i;
                            }
                        }
                    }
                    let o = o0 + 3 * (o1 + 2 * s);
                    assert_eq!(idx[o], best, "window {o}");
                    assert!(same(yv[o], v[best]));
                }
            }
        }
    }

    #[test]
    fn meanpool_counts_padding() {
        let x = Tensor::ones(&[3, 3, 2, 1]);
        let y = x.meanpool(&PoolSpec::new(&[2, 2]).pad(&[1]));
        assert_eq!(y.shape(), &[2, 2, 2, 1]);
        assert_eq!(y.to_vec(), vec![0.25, 0.5, 0.5, 1.0, 0.25, 0.5, 0.5, 1.0]);
        let e = x.try_maxpool(&PoolSpec::new(&[2, 2]).pad(&[2])).unwrap_err();
        assert!(e.to_string().contains("smaller than the window"), "{e}");
    }
}

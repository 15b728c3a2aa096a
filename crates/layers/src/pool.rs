//! Pooling and resampling layers over the spatial dims of `[spatial..., C, N]`: [`MaxPool`],
//! [`MeanPool`], [`GlobalMaxPool`], [`GlobalMeanPool`], [`AdaptiveMaxPool`],
//! [`AdaptiveMeanPool`], [`Upsample`], and [`flatten`].

use std::fmt;

use flux_autograd::Var;
use flux_tensor::{PoolSpec, Tensor, TensorError};

use crate::error::LayerError;
use crate::Layer;

fn tuple(v: &[usize]) -> String {
    match v {
        [a] => format!("({a},)"),
        _ => format!("({})", v.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")),
    }
}

fn maybe_tuple(v: &[usize]) -> String {
    if v.iter().all(|&x| x == v[0]) {
        v[0].to_string()
    } else {
        tuple(v)
    }
}

fn input_error(layer: String, x: &Var, e: TensorError) -> LayerError {
    let reason = match e {
        TensorError::ShapeMismatch { reason, .. } | TensorError::InvalidShape { reason, .. } => reason,
        e => e.to_string(),
    };
    LayerError::InputShape { layer, got: x.shape().to_vec(), expected: reason }
}

fn check_rank(layer: &dyn fmt::Display, x: &Var, nd: usize) -> Result<(), LayerError> {
    if x.shape().rank() != nd + 2 {
        return Err(LayerError::InputShape {
            layer: layer.to_string(),
            got: x.shape().to_vec(),
            expected: format!("[spatial..., C, N] with {nd} spatial dims"),
        });
    }
    Ok(())
}

macro_rules! pool_layer {
    ($name:ident, $method:ident, $doc:literal, $example:literal) => {
        #[doc = $doc]
        ///
        /// ```
        #[doc = $example]
        /// ```
        #[derive(Layer, Clone)]
        #[layer(try_forward, fmt)]
        pub struct $name {
            #[layer(skip)]
            spec: PoolSpec,
        }

        impl $name {
            /// A window (one size per spatial dim, 1 to 3); stride = window, no padding.
            pub fn new(window: &[usize]) -> $name {
                $name { spec: PoolSpec::new(window) }
            }
            /// The stride: one value or one per spatial dim.
            pub fn stride(mut self, s: &[usize]) -> $name {
                let nd = self.spec.window().len();
                let s = if s.len() == 1 { vec![s[0]; nd] } else { s.to_vec() };
                self.spec = self.spec.stride(&s);
                self
            }
            /// The padding: one value, one per spatial dim, or one per side.
            pub fn pad(mut self, p: &[usize]) -> $name {
                self.spec = self.spec.pad(p);
                self
            }
            /// The window, stride and padding.
            pub fn spec(&self) -> &PoolSpec {
                &self.spec
            }
            /// The forward pass, or an error naming the layer and the input's shape.
            pub fn try_forward(&self, x: &Var) -> Result<Var, LayerError> {
                check_rank(self, x, self.spec.window().len())?;
                x.$method(&self.spec).map_err(|e| input_error(self.to_string(), x, e))
            }
            /// Prints Flux's form, e.g. `MaxPool((2, 2))`, `MaxPool((3, 3), pad=1, stride=2)`.
            pub fn fmt_layer(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({}", stringify!($name), tuple(self.spec.window()))?;
                let pad = self.spec.pad_values();
                if pad.iter().any(|&p| p != 0) {
                    write!(f, ", pad={}", maybe_tuple(pad))?;
                }
                if self.spec.stride_values() != self.spec.window() {
                    write!(f, ", stride={}", maybe_tuple(self.spec.stride_values()))?;
                }
                f.write_str(")")
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.fmt_layer(f)
            }
        }
    };
}

pool_layer!(
    MaxPool,
    try_maxpool,
    "Max pooling (Flux's `MaxPool`): the largest element of each window; stride = window unless set.",
    "use flux_layers::{Layer, MaxPool};\nuse flux_autograd::Var;\nuse flux_tensor::Tensor;\n\
     let p = MaxPool::new(&[2, 2]);\n\
     assert_eq!(p.to_string(), \"MaxPool((2, 2))\");\n\
     let x = Var::from(Tensor::from_vec((1..=16).map(f64::from).collect::<Vec<_>>(), &[4, 4, 1, 1]));\n\
     assert_eq!(p.forward(&x).to_vec(), vec![6.0, 8.0, 14.0, 16.0]);\n\
     assert_eq!(MaxPool::new(&[3, 3]).pad(&[1]).stride(&[2]).to_string(), \"MaxPool((3, 3), pad=1, stride=2)\");"
);

pool_layer!(
    MeanPool,
    try_meanpool,
    "Mean pooling (Flux's `MeanPool`): the mean of each window, padding counted as zeros; stride = window unless set.",
    "use flux_layers::{Layer, MeanPool};\nuse flux_autograd::Var;\nuse flux_tensor::Tensor;\n\
     let p = MeanPool::new(&[2]);\n\
     assert_eq!(p.to_string(), \"MeanPool((2,))\");\n\
     let x = Var::from(Tensor::from_vec(vec![1.0, 3.0, 5.0, 7.0], &[4, 1, 1]));\n\
     assert_eq!(p.forward(&x).to_vec(), vec![2.0, 6.0]);"
);

/// The spatial dims of an input `[spatial..., C, N]` (at least one).
fn spatial(layer: &dyn fmt::Display, x: &Var) -> Result<Vec<usize>, LayerError> {
    let s = x.shape();
    if s.rank() < 3 {
        return Err(LayerError::InputShape { layer: layer.to_string(), got: s.to_vec(), expected: "[spatial..., C, N] with 1 or more spatial dims".into() });
    }
    Ok(s[..s.rank() - 2].to_vec())
}

/// Max over all spatial dims (Flux's `GlobalMaxPool`): `[spatial..., C, N] -> [1..., C, N]`.
///
/// ```
/// use flux_layers::{GlobalMaxPool, Layer};
/// use flux_autograd::Var;
/// use flux_tensor::Tensor;
/// let x = Var::from(Tensor::from_vec(vec![1.0, 4.0, 2.0, 3.0], &[2, 2, 1, 1]));
/// assert_eq!(GlobalMaxPool.forward(&x).shape(), &[1, 1, 1, 1]);
/// assert_eq!(GlobalMaxPool.forward(&x).to_vec(), vec![4.0]);
/// assert_eq!(GlobalMaxPool.to_string(), "GlobalMaxPool()");
/// ```
#[derive(Layer, Clone, Copy, Debug, Default)]
#[layer(try_forward, fmt)]
pub struct GlobalMaxPool;

impl GlobalMaxPool {
    /// The forward pass, or an error naming the layer and the input's shape.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// assert!(flux_layers::GlobalMaxPool.try_forward(&Var::from(flux_tensor::Tensor::zeros(&[3, 2]))).is_err());
    /// ```
    pub fn try_forward(&self, x: &Var) -> Result<Var, LayerError> {
        let nd = spatial(self, x)?.len();
        Ok(x.max_dims(&(0..nd).collect::<Vec<_>>()))
    }
    /// Prints `GlobalMaxPool()`.
    ///
    /// ```
    /// assert_eq!(format!("{}", flux_layers::GlobalMaxPool), "GlobalMaxPool()");
    /// ```
    pub fn fmt_layer(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GlobalMaxPool()")
    }
}

/// Mean over all spatial dims (Flux's `GlobalMeanPool`): `[spatial..., C, N] -> [1..., C, N]`.
///
/// ```
/// use flux_layers::{GlobalMeanPool, Layer};
/// use flux_autograd::Var;
/// use flux_tensor::Tensor;
/// let x = Var::from(Tensor::from_vec(vec![1.0, 4.0, 2.0, 3.0], &[2, 2, 1, 1]));
/// assert_eq!(GlobalMeanPool.forward(&x).to_vec(), vec![2.5]);
/// ```
#[derive(Layer, Clone, Copy, Debug, Default)]
#[layer(try_forward, fmt)]
pub struct GlobalMeanPool;

impl GlobalMeanPool {
    /// The forward pass, or an error naming the layer and the input's shape.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// assert!(flux_layers::GlobalMeanPool.try_forward(&Var::from(flux_tensor::Tensor::zeros(&[3]))).is_err());
    /// ```
    pub fn try_forward(&self, x: &Var) -> Result<Var, LayerError> {
        let nd = spatial(self, x)?.len();
        Ok(x.mean_dims(&(0..nd).collect::<Vec<_>>()))
    }
    /// Prints `GlobalMeanPool()`.
    ///
    /// ```
    /// assert_eq!(format!("{}", flux_layers::GlobalMeanPool), "GlobalMeanPool()");
    /// ```
    pub fn fmt_layer(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GlobalMeanPool()")
    }
}

/// Flux's adaptive window: `stride = in ÷ out`, `k = in - (out - 1)·stride`, no padding.
fn adaptive_spec(layer: &dyn fmt::Display, x: &Var, out: &[usize]) -> Result<PoolSpec, LayerError> {
    let sp = spatial(layer, x)?;
    if sp.len() != out.len() || sp.iter().zip(out).any(|(&i, &m)| m == 0 || m > i) {
        return Err(LayerError::InputShape {
            layer: layer.to_string(),
            got: x.shape().to_vec(),
            expected: format!("[spatial..., C, N] with {} spatial dims each at least the output {out:?}", out.len()),
        });
    }
    let stride: Vec<usize> = sp.iter().zip(out).map(|(&i, &m)| i / m).collect();
    let k: Vec<usize> = sp.iter().zip(out).zip(&stride).map(|((&i, &m), &s)| i - (m - 1) * s).collect();
    Ok(PoolSpec::new(&k).stride(&stride))
}

macro_rules! adaptive_layer {
    ($name:ident, $method:ident, $doc:literal, $example:literal) => {
        #[doc = $doc]
        ///
        /// ```
        #[doc = $example]
        /// ```
        #[derive(Layer, Clone)]
        #[layer(try_forward, fmt)]
        pub struct $name {
            #[layer(skip)]
            out: Vec<usize>,
        }

        impl $name {
            /// The output's spatial size (one per spatial dim).
            pub fn new(out: &[usize]) -> $name {
                $name { out: out.to_vec() }
            }
            /// The forward pass, or an error naming the layer and the input's shape.
            pub fn try_forward(&self, x: &Var) -> Result<Var, LayerError> {
                let spec = adaptive_spec(self, x, &self.out)?;
                x.$method(&spec).map_err(|e| input_error(self.to_string(), x, e))
            }
            /// Prints Flux's form, e.g. `AdaptiveMaxPool((5, 5))`.
            pub fn fmt_layer(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), tuple(&self.out))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.fmt_layer(f)
            }
        }
    };
}

adaptive_layer!(
    AdaptiveMaxPool,
    try_maxpool,
    "Max pooling to a fixed output size (Flux's `AdaptiveMaxPool`).",
    "use flux_layers::{AdaptiveMaxPool, Layer};\nuse flux_autograd::Var;\nuse flux_tensor::Tensor;\n\
     let p = AdaptiveMaxPool::new(&[2, 3]);\n\
     assert_eq!(p.to_string(), \"AdaptiveMaxPool((2, 3))\");\n\
     assert_eq!(p.forward(&Var::from(Tensor::rand(&[7, 9, 4, 2]))).shape(), &[2, 3, 4, 2]);"
);

adaptive_layer!(
    AdaptiveMeanPool,
    try_meanpool,
    "Mean pooling to a fixed output size (Flux's `AdaptiveMeanPool`).",
    "use flux_layers::{AdaptiveMeanPool, Layer};\nuse flux_autograd::Var;\nuse flux_tensor::Tensor;\n\
     let p = AdaptiveMeanPool::new(&[1]);\n\
     let x = Var::from(Tensor::from_vec(vec![1.0, 2.0, 6.0], &[3, 1, 1]));\n\
     assert_eq!(p.forward(&x).to_vec(), vec![3.0]);"
);

/// All dims but the last into one (Flux's `flatten`): `[a, b, ..., N] -> [a·b·..., N]`; a
/// vector stays as it is.
///
/// ```
/// use flux_autograd::Var;
/// use flux_tensor::Tensor;
/// let x = Var::from(Tensor::zeros(&[4, 4, 16, 2]));
/// assert_eq!(flux_layers::flatten(&x).shape(), &[256, 2]);
/// ```
pub fn flatten(x: &Var) -> Var {
    let s = x.shape();
    if s.rank() <= 1 {
        return x.clone();
    }
    let n = s[s.rank() - 1];
    x.reshape(&[x.numel() / n.max(1), n])
}

/// How [`Upsample`] fills in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpsampleMode {
    /// Each element repeated `scale` times along each spatial dim.
    Nearest,
    /// Linear interpolation along each spatial dim, corners aligned (NNlib's
    /// `upsample_bilinear`, `align_corners = true`); bilinear in 2-d, trilinear in 3-d.
    Bilinear,
}

/// Upsampling by integer scales (Flux's `Upsample(:nearest, scale = 2)`,
/// `Upsample(:bilinear, scale = 2)`), differentiable to any order (built from index selections
/// and constant weights).
///
/// ```
/// use flux_layers::{Layer, Upsample, UpsampleMode};
/// use flux_autograd::Var;
/// use flux_tensor::Tensor;
/// let x = Var::from(Tensor::from_vec(vec![1.0, 3.0], &[2, 1, 1]));
/// let up = Upsample::new(UpsampleMode::Nearest, &[2]);
/// assert_eq!(up.to_string(), "Upsample(:nearest, scale = 2)");
/// assert_eq!(up.forward(&x).to_vec(), vec![1.0, 1.0, 3.0, 3.0]);
/// let bl = Upsample::new(UpsampleMode::Bilinear, &[2]);
/// let y = bl.forward(&x).to_vec();
/// assert!(y.iter().zip([1.0, 5.0 / 3.0, 7.0 / 3.0, 3.0]).all(|(a, b)| (a - b).abs() < 1e-12));
/// ```
#[derive(Layer, Clone)]
#[layer(try_forward, fmt)]
pub struct Upsample {
    #[layer(skip)]
    mode: UpsampleMode,
    #[layer(skip)]
    scale: Vec<usize>,
}

impl Upsample {
    /// Upsampling with a mode and integer scales (one value for every spatial dim, or one per
    /// spatial dim).
    ///
    /// ```
    /// let up = flux_layers::Upsample::new(flux_layers::UpsampleMode::Bilinear, &[2, 3]);
    /// assert_eq!(up.to_string(), "Upsample(:bilinear, scale = (2, 3))");
    /// ```
    pub fn new(mode: UpsampleMode, scale: &[usize]) -> Upsample {
        Upsample { mode, scale: scale.to_vec() }
    }

    /// The forward pass, or an error naming the layer and the input's shape.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// let up = flux_layers::Upsample::new(flux_layers::UpsampleMode::Nearest, &[2, 2]);
    /// assert!(up.try_forward(&Var::from(flux_tensor::Tensor::zeros(&[3, 1, 1]))).is_err());
    /// ```
    pub fn try_forward(&self, x: &Var) -> Result<Var, LayerError> {
        let sp = spatial(self, x)?;
        let nd = sp.len();
        let scale = match self.scale.len() {
            1 => vec![self.scale[0]; nd],
            n if n == nd => self.scale.clone(),
            _ => {
                return Err(LayerError::InputShape {
                    layer: self.to_string(),
                    got: x.shape().to_vec(),
                    expected: format!("[spatial..., C, N] with {} spatial dims (one per scale)", self.scale.len()),
                })
            }
        };
        if scale.contains(&0) {
            return Err(LayerError::Config { layer: self.to_string(), reason: "scales must be positive".into() });
        }
        let mut y = x.clone();
        for (d, (&n, &s)) in sp.iter().zip(&scale).enumerate() {
            let len = n * s;
            y = match self.mode {
                UpsampleMode::Nearest => y.index_select(d, &(0..len).map(|j| j / s).collect::<Vec<_>>()),
                UpsampleMode::Bilinear => {
                    let pos = |j: usize| if len > 1 { j as f64 * (n - 1) as f64 / (len - 1) as f64 } else { 0.0 };
                    let lo: Vec<usize> = (0..len).map(|j| (pos(j).floor() as usize).min(n - 1)).collect();
                    let hi: Vec<usize> = lo.iter().map(|&l| (l + 1).min(n - 1)).collect();
                    let t: Vec<f64> = (0..len).map(|j| pos(j) - lo[j] as f64).collect();
                    let mut wshape = vec![1; d];
                    wshape.push(len);
                    let wt = Var::constant(Tensor::from_vec(t.clone(), &wshape).to_dtype(x.dtype()));
                    let w1 = Var::constant(Tensor::from_vec(t.iter().map(|t| 1.0 - t).collect::<Vec<_>>(), &wshape).to_dtype(x.dtype()));
                    &(&y.index_select(d, &lo) * &w1) + &(&y.index_select(d, &hi) * &wt)
                }
            };
        }
        Ok(y)
    }

    /// Prints Flux's form, e.g. `Upsample(:nearest, scale = 2)`.
    ///
    /// ```
    /// let up = flux_layers::Upsample::new(flux_layers::UpsampleMode::Nearest, &[2, 2]);
    /// assert_eq!(up.to_string(), "Upsample(:nearest, scale = (2, 2))");
    /// ```
    pub fn fmt_layer(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.mode {
            UpsampleMode::Nearest => "nearest",
            UpsampleMode::Bilinear => "bilinear",
        };
        let scale = if self.scale.len() == 1 { self.scale[0].to_string() } else { tuple(&self.scale) };
        write!(f, "Upsample(:{mode}, scale = {scale})")
    }
}

impl fmt::Debug for Upsample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_layer(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_and_errors() {
        let x = Var::from(Tensor::rand(&[7, 5, 3, 2]));
        assert_eq!(MaxPool::new(&[2, 2]).forward(&x).shape(), &[3, 2, 3, 2]);
        assert_eq!(MeanPool::new(&[3, 3]).stride(&[1]).pad(&[1]).forward(&x).shape(), &[7, 5, 3, 2]);
        let e = MaxPool::new(&[2, 2]).try_forward(&Var::from(Tensor::rand(&[7, 3, 2]))).unwrap_err().to_string();
        assert!(e.starts_with("MaxPool((2, 2))") && e.contains("[7, 3, 2]"), "{e}");
        let e = MaxPool::new(&[9, 9]).try_forward(&x).unwrap_err().to_string();
        assert!(e.contains("[7, 5, 3, 2]"), "{e}");
        assert_eq!(GlobalMeanPool.forward(&x).shape(), &[1, 1, 3, 2]);
        assert!(AdaptiveMeanPool::new(&[8, 1]).try_forward(&x).is_err());
        let up = Upsample::new(UpsampleMode::Bilinear, &[2]).forward(&x);
        assert_eq!(up.shape(), &[14, 10, 3, 2]);
        // corners are kept
        assert_eq!(up.data().get(&[13, 9, 2, 1]), x.data().get(&[6, 4, 2, 1]));
    }
}

//! [`Embedding`]: a lookup table of learnable vectors, one column per token.

use std::fmt;

use flux_autograd::{param, Var};
use flux_tensor::Tensor;

use crate::error::LayerError;
use crate::input::cast_like;

/// A table of `vocab` learnable vectors of length `dim` (Flux's `Embedding(vocab => dim)`):
/// the weight is `[dim, vocab]` (Flux's layout; PyTorch's `nn.Embedding` stores its
/// transpose), initialised `randn` (f32) as Flux's `randn32`.
///
/// [`Embedding::lookup`] gathers columns by (0-based) index, giving `[dim, n]`; its gradient
/// scatter-adds into the used columns only. [`Layer::forward`] takes a one-hot batch
/// `[vocab, N]` (or one one-hot vector `[vocab]`) and gives the same columns as `W * x`.
///
/// ```
/// use flux_autograd::Var;
/// use flux_layers::{onehotbatch, Embedding, Layer};
/// let emb = Embedding::new(10, 4);
/// assert_eq!(emb.to_string(), "Embedding(10 => 4)");
/// let a = emb.lookup(&[3, 1, 3]);
/// assert_eq!(a.shape(), &[4, 3]);
/// let b = emb.forward(&Var::from(onehotbatch(&[3, 1, 3], 10)));
/// assert_eq!(a.to_vec(), b.to_vec());
/// assert!(emb.try_lookup(&[10]).is_err());
/// ```
#[derive(crate::Layer)]
#[layer(try_forward, fmt, torch)]
pub struct Embedding {
    weight: Var,
}

impl Embedding {
    /// `Embedding(vocab => dim)` with a `randn` f32 weight `[dim, vocab]`.
    ///
    /// ```
    /// assert_eq!(flux_layers::Embedding::new(7, 3).weight().shape(), &[3, 7]);
    /// ```
    pub fn new(vocab: usize, dim: usize) -> Embedding {
        Embedding { weight: param(Tensor::randn(&[dim, vocab]).to_f32()) }
    }

    /// An embedding from a given weight `[dim, vocab]` (made into a param); errors unless it is
    /// a matrix.
    ///
    /// ```
    /// use flux_tensor::Tensor;
    /// let e = flux_layers::Embedding::from_weights(Tensor::ones(&[2, 5])).unwrap();
    /// assert_eq!((e.vocab(), e.dim()), (5, 2));
    /// assert!(flux_layers::Embedding::from_weights(Tensor::ones(&[5])).is_err());
    /// ```
    pub fn from_weights(weight: Tensor) -> Result<Embedding, LayerError> {
        if weight.rank() != 2 {
            return Err(LayerError::Config { layer: "Embedding".into(), reason: format!("weight {:?} must be [dim, vocab]", weight.shape()) });
        }
        Ok(Embedding { weight: param(weight) })
    }

    /// The table `[dim, vocab]` (Flux's `m.weight`).
    ///
    /// ```
    /// assert!(flux_layers::Embedding::new(4, 2).weight().is_param());
    /// ```
    pub fn weight(&self) -> &Var {
        &self.weight
    }

    /// Number of entries (`vocab`).
    ///
    /// ```
    /// assert_eq!(flux_layers::Embedding::new(4, 2).vocab(), 4);
    /// ```
    pub fn vocab(&self) -> usize {
        self.weight.shape()[1]
    }

    /// Length of each vector (`dim`).
    ///
    /// ```
    /// assert_eq!(flux_layers::Embedding::new(4, 2).dim(), 2);
    /// ```
    pub fn dim(&self) -> usize {
        self.weight.shape()[0]
    }

    /// The columns at `idx` (0-based), `[dim, idx.len()]`; panics on an index out of range
    /// (see [`Embedding::try_lookup`]).
    ///
    /// ```
    /// let e = flux_layers::Embedding::from_weights(flux_tensor::Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2])).unwrap();
    /// assert_eq!(e.lookup(&[1, 0]).to_vec(), vec![3.0, 4.0, 1.0, 2.0]);
    /// ```
    pub fn lookup(&self, idx: &[usize]) -> Var {
        self.try_lookup(idx).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The columns at `idx`, or an error naming the layer and the first index out of range.
    ///
    /// ```
    /// let e = flux_layers::Embedding::new(3, 2);
    /// let err = e.try_lookup(&[0, 3]).unwrap_err().to_string();
    /// assert!(err.contains("Embedding(3 => 2)") && err.contains('3'));
    /// ```
    pub fn try_lookup(&self, idx: &[usize]) -> Result<Var, LayerError> {
        let vocab = self.vocab();
        if let Some(&bad) = idx.iter().find(|&&i| i >= vocab) {
            return Err(LayerError::InputShape { layer: self.to_string(), got: vec![idx.len()], expected: format!("indices in 0..{vocab} (got index {bad})") });
        }
        Ok(self.weight.try_index_select(1, idx)?)
    }

    /// Julia's `emb(x)` for an integer array `x` of `shape` (column-major, like `idx`): the
    /// columns at `idx` as `[dim, shape...]`, e.g. `[dim, len, batch]` for a batch of sequences.
    ///
    /// ```
    /// let e = flux_layers::Embedding::new(5, 3);
    /// assert_eq!(e.try_lookup_array(&[0, 1, 2, 3, 4, 0], &[3, 2]).unwrap().shape(), &[3, 3, 2]);
    /// assert!(e.try_lookup_array(&[0, 1], &[3]).is_err());
    /// ```
    pub fn try_lookup_array(&self, idx: &[usize], shape: &[usize]) -> Result<Var, LayerError> {
        if shape.iter().product::<usize>() != idx.len() {
            return Err(LayerError::InputShape {
                layer: self.to_string(),
                got: vec![idx.len()],
                expected: format!("{} indices for shape {shape:?}", shape.iter().product::<usize>()),
            });
        }
        let out: Vec<usize> = std::iter::once(self.dim()).chain(shape.iter().copied()).collect();
        Ok(self.try_lookup(idx)?.try_reshape(&out)?)
    }

    /// The forward pass on a one-hot input `[vocab]` or `[vocab, N...]`: `W * x`, `[dim, N...]`.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// let e = flux_layers::Embedding::new(3, 2);
    /// assert!(e.try_forward(&Var::from(flux_tensor::Tensor::zeros(&[4, 2]))).is_err());
    /// ```
    pub fn try_forward(&self, x: &Var) -> Result<Var, LayerError> {
        let shape = x.shape();
        let vocab = self.vocab();
        if shape.rank() == 0 || shape[0] != vocab {
            return Err(LayerError::InputShape {
                layer: self.to_string(),
                got: shape.to_vec(),
                expected: format!("one-hot [{vocab}] or [{vocab}, N] (or use lookup with indices)"),
            });
        }
        let x = cast_like(x, &self.weight);
        if shape.rank() <= 2 {
            return Ok(self.weight.try_matmul(&x)?);
        }
        let n: usize = shape[1..].iter().product();
        let y = self.weight.try_matmul(&x.try_reshape(&[vocab, n])?)?;
        let out: Vec<usize> = std::iter::once(self.dim()).chain(shape[1..].iter().copied()).collect();
        Ok(y.try_reshape(&out)?)
    }

    /// Prints `Embedding(vocab => dim)`.
    ///
    /// ```
    /// assert_eq!(flux_layers::Embedding::new(3, 2).to_string(), "Embedding(3 => 2)");
    /// ```
    pub fn fmt_layer(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Embedding({} => {})", self.vocab(), self.dim())
    }
}

impl fmt::Debug for Embedding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_layer(f)
    }
}

/// PyTorch's `Embedding`: `weight [vocab, dim]`, row `i` the vector of token `i` (ours is
/// `[dim, vocab]`, column `i`: the transpose).
impl crate::TorchModule for Embedding {
    fn torch_kind(&self) -> &'static str {
        "Embedding"
    }
    fn torch_export(&self) -> Vec<(String, crate::TorchValue)> {
        vec![("weight".into(), crate::TorchValue::Float(crate::torch::reverse_dims(&self.weight.data())))]
    }
    fn torch_import(&self, src: &mut crate::TorchSource<'_>) -> Vec<(Var, Tensor)> {
        let s = self.weight.shape().dims().to_vec();
        src.take("weight", &[s[1], s[0]], self.weight.dtype()).map(|t| (self.weight.clone(), crate::torch::reverse_dims(&t))).into_iter().collect()
    }
}

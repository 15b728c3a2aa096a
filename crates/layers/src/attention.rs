//! [`MultiHeadAttention`] (Flux's, with NNlib's `dot_product_attention`) and [`causal_mask`].

use std::fmt;

use flux_autograd::{param, Var};
use flux_tensor::{Shape, Tensor};

use crate::error::LayerError;
use crate::init::glorot_uniform;
use crate::input::cast_like;

/// What a masked-out logit becomes before the softmax: finite, so that a fully masked column
/// is uniform instead of NaN, and `exp` of it minus any real logit is exactly 0.
const MASKED: f64 = -1e30;

/// Multi-head dot-product attention (Flux's `MultiHeadAttention(dim; nheads)`, PyTorch's
/// `nn.MultiheadAttention(dim, nheads, bias=False)`).
///
/// The query, key and value inputs are projected by `q_proj`, `k_proj`, `v_proj` (`[dim, dim]`
/// weights, glorot-uniform, f32, no bias, as Flux's default `bias = false`; with biases,
/// zeros, from [`MultiHeadAttention::with_bias`], as PyTorch's default), split into
/// `nheads` heads of `dim / nheads` features (feature `f` is in head `f ÷ (dim / nheads)`), and
/// each head attends: `α = softmax(kᵀ q / √(dim / nheads))` along the keys, output `v α`. The
/// heads are joined and projected by `out_proj`.
///
/// Layout is Julia's: `[dim, len, batch]` (or `[dim, len]` for one sequence). The attention
/// scores are `[len_k, len_q, nheads, batch]`, each column (one query) summing to 1.
/// [`MultiHeadAttention::forward_qkv`] takes separate inputs and an optional mask;
/// [`Layer::forward`](crate::Layer::forward) is self-attention without a mask.
///
/// ```
/// use flux_autograd::Var;
/// use flux_layers::{causal_mask, params, Layer, MultiHeadAttention};
/// use flux_tensor::Tensor;
/// let mha = MultiHeadAttention::new(8, 2);
/// assert_eq!(mha.to_string(), "MultiHeadAttention(8; nheads=2)");
/// assert_eq!(params(&mha).len(), 4);
/// let x = Var::from(Tensor::randn(&[8, 5, 3]));
/// assert_eq!(mha.forward(&x).shape(), &[8, 5, 3]);
/// let (y, scores) = mha.forward_qkv(&x, &x, &x, Some(&causal_mask(5)));
/// assert_eq!((y.shape().to_vec(), scores.shape().to_vec()), (vec![8, 5, 3], vec![5, 5, 2, 3]));
/// assert_eq!(scores.data().get(&[1, 0, 0, 0]), 0.0); // query 0 cannot see key 1
/// ```
#[derive(crate::Layer)]
#[layer(try_forward, fmt)]
pub struct MultiHeadAttention {
    q_proj: Var,
    k_proj: Var,
    v_proj: Var,
    out_proj: Var,
    q_bias: Option<Var>,
    k_bias: Option<Var>,
    v_bias: Option<Var>,
    out_bias: Option<Var>,
    #[layer(skip)]
    nheads: usize,
}

/// Flux's (NNlib's) `make_causal_mask`: a `[len, len]` mask whose entry `[k, q]` is 1 when
/// query `q` may see key `k` (`k <= q`, the upper triangle) and 0 otherwise.
///
/// ```
/// let m = flux_layers::causal_mask(3);
/// assert_eq!(m.shape(), &[3, 3]);
/// // column-major: column q lists the keys that query q sees
/// assert_eq!(m.to_vec(), vec![1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0]);
/// ```
pub fn causal_mask(len: usize) -> Tensor {
    let mut v = vec![0.0; len * len];
    for q in 0..len {
        for k in 0..=q {
            v[k + q * len] = 1.0;
        }
    }
    Tensor::from_vec(v, &[len, len])
}

impl MultiHeadAttention {
    /// `MultiHeadAttention(dim; nheads)`; panics unless `nheads` divides `dim` (see
    /// [`MultiHeadAttention::try_new`]).
    ///
    /// ```
    /// assert_eq!(flux_layers::MultiHeadAttention::new(6, 3).head_dim(), 2);
    /// ```
    pub fn new(dim: usize, nheads: usize) -> MultiHeadAttention {
        MultiHeadAttention::try_new(dim, nheads).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `MultiHeadAttention(dim; nheads)`, or an error unless `nheads` divides `dim`.
    ///
    /// ```
    /// assert!(flux_layers::MultiHeadAttention::try_new(6, 4).is_err());
    /// ```
    pub fn try_new(dim: usize, nheads: usize) -> Result<MultiHeadAttention, LayerError> {
        check_heads(dim, nheads)?;
        let w = || param(glorot_uniform(&[dim, dim]));
        Ok(MultiHeadAttention { q_proj: w(), k_proj: w(), v_proj: w(), out_proj: w(), q_bias: None, k_bias: None, v_bias: None, out_bias: None, nheads })
    }

    /// `MultiHeadAttention(dim; nheads, bias = true)`: each projection also adds a learnable
    /// bias `[dim]` (zeros, f32), as PyTorch's `nn.MultiheadAttention` by default. Panics unless
    /// `nheads` divides `dim`.
    ///
    /// ```
    /// let m = flux_layers::MultiHeadAttention::with_bias(4, 2);
    /// assert_eq!(m.to_string(), "MultiHeadAttention(4; nheads=2, bias=true)");
    /// assert_eq!(flux_layers::params(&m).len(), 8);
    /// ```
    pub fn with_bias(dim: usize, nheads: usize) -> MultiHeadAttention {
        let b = || Some(param(Tensor::zeros(&[dim]).to_f32()));
        MultiHeadAttention { q_bias: b(), k_bias: b(), v_bias: b(), out_bias: b(), ..MultiHeadAttention::new(dim, nheads) }
    }

    /// [`MultiHeadAttention::from_weights`] with the biases of the four projections (each
    /// `[dim]`, PyTorch's `in_proj_bias` split in three and `out_proj.bias`).
    ///
    /// ```
    /// use flux_tensor::Tensor;
    /// let (w, b) = (Tensor::ones(&[4, 4]), Tensor::zeros(&[4]));
    /// let m = flux_layers::MultiHeadAttention::from_weights_and_biases([w.clone(), w.clone(), w.clone(), w], [b.clone(), b.clone(), b.clone(), b], 2).unwrap();
    /// assert_eq!(m.biases().unwrap().3.shape(), &[4]);
    /// ```
    pub fn from_weights_and_biases(weights: [Tensor; 4], biases: [Tensor; 4], nheads: usize) -> Result<MultiHeadAttention, LayerError> {
        let [q, k, v, out] = weights;
        let m = MultiHeadAttention::from_weights(q, k, v, out, nheads)?;
        let dim = m.dim();
        if let Some(b) = biases.iter().find(|b| b.shape() != &[dim]) {
            return Err(LayerError::Config { layer: "MultiHeadAttention".into(), reason: format!("bias {:?} must be [{dim}]", b.shape()) });
        }
        let [bq, bk, bv, bo] = biases.map(|b| Some(param(b)));
        Ok(MultiHeadAttention { q_bias: bq, k_bias: bk, v_bias: bv, out_bias: bo, ..m })
    }

    /// A layer from given projection weights, each `[dim, dim]` (`[out, in]`, as PyTorch's
    /// `in_proj_weight` split in three and `out_proj.weight`), made into params.
    ///
    /// ```
    /// use flux_tensor::Tensor;
    /// let w = Tensor::ones(&[4, 4]);
    /// let m = flux_layers::MultiHeadAttention::from_weights(w.clone(), w.clone(), w.clone(), w.clone(), 2).unwrap();
    /// assert_eq!(m.dim(), 4);
    /// assert!(flux_layers::MultiHeadAttention::from_weights(w.clone(), w.clone(), w.clone(), Tensor::ones(&[4, 3]), 2).is_err());
    /// ```
    pub fn from_weights(q: Tensor, k: Tensor, v: Tensor, out: Tensor, nheads: usize) -> Result<MultiHeadAttention, LayerError> {
        let dim = q.shape().first().copied().unwrap_or(0);
        for (name, w) in [("q", &q), ("k", &k), ("v", &v), ("out", &out)] {
            if w.shape() != &[dim, dim] {
                return Err(LayerError::Config { layer: "MultiHeadAttention".into(), reason: format!("{name} weight {:?} must be [{dim}, {dim}]", w.shape()) });
            }
        }
        check_heads(dim, nheads)?;
        Ok(MultiHeadAttention {
            q_proj: param(q),
            k_proj: param(k),
            v_proj: param(v),
            out_proj: param(out),
            q_bias: None,
            k_bias: None,
            v_bias: None,
            out_bias: None,
            nheads,
        })
    }

    /// The model dimension.
    ///
    /// ```
    /// assert_eq!(flux_layers::MultiHeadAttention::new(6, 3).dim(), 6);
    /// ```
    pub fn dim(&self) -> usize {
        self.q_proj.shape()[0]
    }

    /// The number of heads.
    ///
    /// ```
    /// assert_eq!(flux_layers::MultiHeadAttention::new(6, 3).nheads(), 3);
    /// ```
    pub fn nheads(&self) -> usize {
        self.nheads
    }

    /// Features per head, `dim / nheads`.
    ///
    /// ```
    /// assert_eq!(flux_layers::MultiHeadAttention::new(8, 2).head_dim(), 4);
    /// ```
    pub fn head_dim(&self) -> usize {
        self.dim() / self.nheads
    }

    /// The projection weights `(q, k, v, out)`, each `[dim, dim]`.
    ///
    /// ```
    /// let m = flux_layers::MultiHeadAttention::new(4, 2);
    /// assert!(m.projections().3.is_param());
    /// ```
    pub fn projections(&self) -> (&Var, &Var, &Var, &Var) {
        (&self.q_proj, &self.k_proj, &self.v_proj, &self.out_proj)
    }

    /// The projection biases `(q, k, v, out)`, each `[dim]`, when the layer has them.
    ///
    /// ```
    /// assert!(flux_layers::MultiHeadAttention::new(4, 2).biases().is_none());
    /// assert!(flux_layers::MultiHeadAttention::with_bias(4, 2).biases().is_some());
    /// ```
    pub fn biases(&self) -> Option<(&Var, &Var, &Var, &Var)> {
        match (&self.q_bias, &self.k_bias, &self.v_bias, &self.out_bias) {
            (Some(q), Some(k), Some(v), Some(out)) => Some((q, k, v, out)),
            _ => None,
        }
    }

    /// Attention of queries `q` over keys `k` and values `v`, all `[dim, len, batch]` (keys and
    /// values of the same length, possibly not the queries'), or `[dim, len]`. `mask` (1 where
    /// a query may see a key, 0 where not) is broadcast against the scores
    /// `[len_k, len_q, nheads, batch]`: `[len_k, len_q]` (e.g. [`causal_mask`]) or the full
    /// shape. Masked scores are exactly 0. Returns the output `[dim, len_q, batch]` and the
    /// scores. Panics on bad shapes (see [`MultiHeadAttention::try_forward_qkv`]).
    ///
    /// ```
    /// use flux_autograd::Var;
    /// use flux_tensor::Tensor;
    /// let m = flux_layers::MultiHeadAttention::new(4, 2);
    /// let q = Var::from(Tensor::randn(&[4, 3, 2]));
    /// let kv = Var::from(Tensor::randn(&[4, 6, 2]));
    /// let (y, a) = m.forward_qkv(&q, &kv, &kv, None);
    /// assert_eq!((y.shape().to_vec(), a.shape().to_vec()), (vec![4, 3, 2], vec![6, 3, 2, 2]));
    /// ```
    pub fn forward_qkv(&self, q: &Var, k: &Var, v: &Var, mask: Option<&Tensor>) -> (Var, Var) {
        self.try_forward_qkv(q, k, v, mask).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`MultiHeadAttention::forward_qkv`], or an error naming the layer and the shape at fault.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// use flux_tensor::Tensor;
    /// let m = flux_layers::MultiHeadAttention::new(4, 2);
    /// let x = Var::from(Tensor::randn(&[4, 3, 2]));
    /// let e = m.try_forward_qkv(&x, &x, &x, Some(&Tensor::ones(&[2, 2]))).unwrap_err().to_string();
    /// assert!(e.contains("MultiHeadAttention(4; nheads=2)") && e.contains("[2, 2]"), "{e}");
    /// ```
    pub fn try_forward_qkv(&self, q: &Var, k: &Var, v: &Var, mask: Option<&Tensor>) -> Result<(Var, Var), LayerError> {
        let dim = self.dim();
        let (qs, ks, vs) = (q.shape(), k.shape(), v.shape());
        for s in [&qs, &ks, &vs] {
            if !(s.rank() == 2 || s.rank() == 3) || s[0] != dim {
                return Err(self.shape_error(s, format!("[{dim}, len, batch] or [{dim}, len]")));
            }
        }
        let batch = |s: &Shape| if s.rank() == 3 { s[2] } else { 1 };
        let (lq, lk, b) = (qs[1], ks[1], batch(&qs));
        if batch(&ks) != b || batch(&vs) != b || ks.rank() != qs.rank() || vs.rank() != qs.rank() || vs[1] != lk {
            return Err(self.shape_error(&ks, format!("keys and values of one length and the queries' batch and rank (queries {qs:?}, values {vs:?})")));
        }
        let (h, hd) = (self.nheads, self.head_dim());
        let bias = match mask {
            None => None,
            Some(m) => Some(self.mask_bias(m, lk, lq, b)?),
        };
        // projections, then heads split off: [dim, len*b] -> [hd, h, len, b] -> [hd, len, h*b]
        let heads = |w: &Var, bias: &Option<Var>, x: &Var, len: usize| -> Result<Var, LayerError> {
            let y = project(w, bias, &cast_like(x, w).try_reshape(&[dim, len * b])?)?;
            Ok(y.try_reshape(&[hd, h, len, b])?.try_permute(&[0, 2, 1, 3])?.try_reshape(&[hd, len, h * b])?)
        };
        let qh = heads(&self.q_proj, &self.q_bias, q, lq)? * (1.0 / (hd as f64).sqrt());
        let kh = heads(&self.k_proj, &self.k_bias, k, lk)?;
        let vh = heads(&self.v_proj, &self.v_bias, v, lk)?;
        let logits = kh.try_bmm_t(&qh, true, false)?.try_reshape(&[lk, lq, h, b])?; // [lk, lq, h, b]
        let logits = match bias {
            Some(bias) => logits + Var::constant(bias.to_dtype(self.q_proj.dtype())),
            None => logits,
        };
        let alpha = logits.softmax(0);
        let joined = vh.try_bmm_t(&alpha.try_reshape(&[lk, lq, h * b])?, false, false)?; // [hd, lq, h*b]
        let joined = joined.try_reshape(&[hd, lq, h, b])?.try_permute(&[0, 2, 1, 3])?.try_reshape(&[dim, lq * b])?;
        let y = project(&self.out_proj, &self.out_bias, &joined)?;
        let y = if qs.rank() == 3 { y.try_reshape(&[dim, lq, b])? } else { y.try_reshape(&[dim, lq])? };
        Ok((y, alpha))
    }

    /// The additive mask: 0 where visible, [`MASKED`] where not, in a shape that broadcasts
    /// against `[lk, lq, h, b]`.
    fn mask_bias(&self, m: &Tensor, lk: usize, lq: usize, b: usize) -> Result<Tensor, LayerError> {
        let full = [lk, lq, self.nheads, b];
        let s = m.shape();
        let ok = s.rank() >= 2 && s.rank() <= 4 && s.iter().zip(full.iter()).all(|(&d, &f)| d == f || (d == 1 && f != 0));
        if !ok {
            return Err(self.shape_error(s, format!("a mask that broadcasts against the scores {full:?} ([{lk}, {lq}] or [{lk}, {lq}, nheads, batch])")));
        }
        Ok(m.map(|x| if x == 0.0 { MASKED } else { 0.0 }))
    }

    fn shape_error(&self, got: &[usize], expected: String) -> LayerError {
        LayerError::InputShape { layer: self.to_string(), got: got.to_vec(), expected }
    }

    /// Self-attention without a mask: the output of `forward_qkv(x, x, x, None)`.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// let m = flux_layers::MultiHeadAttention::new(4, 2);
    /// assert!(m.try_forward(&Var::from(flux_tensor::Tensor::zeros(&[3, 5]))).is_err());
    /// ```
    pub fn try_forward(&self, x: &Var) -> Result<Var, LayerError> {
        Ok(self.try_forward_qkv(x, x, x, None)?.0)
    }

    /// Prints `MultiHeadAttention(dim; nheads=n)` (with `, bias=true` when it has biases), as
    /// Flux.
    ///
    /// ```
    /// assert_eq!(flux_layers::MultiHeadAttention::new(4, 4).to_string(), "MultiHeadAttention(4; nheads=4)");
    /// ```
    pub fn fmt_layer(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MultiHeadAttention({}; nheads={}", self.dim(), self.nheads)?;
        if self.q_bias.is_some() {
            f.write_str(", bias=true")?;
        }
        f.write_str(")")
    }
}

/// `w·x`, or `w·x .+ b` with the bias added inside the product.
fn project(w: &Var, bias: &Option<Var>, x: &Var) -> Result<Var, LayerError> {
    Ok(match bias {
        Some(b) => Var::affine(w, x, b)?,
        None => w.try_matmul(x)?,
    })
}

fn check_heads(dim: usize, nheads: usize) -> Result<(), LayerError> {
    if nheads == 0 || !dim.is_multiple_of(nheads) {
        return Err(LayerError::Config { layer: "MultiHeadAttention".into(), reason: format!("nheads ({nheads}) must divide the dimension ({dim})") });
    }
    Ok(())
}

impl fmt::Debug for MultiHeadAttention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_layer(f)
    }
}

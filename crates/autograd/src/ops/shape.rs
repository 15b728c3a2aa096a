//! Shape operations: reshape, permute/transpose, gathering and scattering along a dimension,
//! slicing, concatenation and stacking, dtype conversion, and identity.

use std::ops::Range;
use std::sync::Arc;

use flux_tensor::{DType, Tensor, TensorError};

use crate::op::Op;
use crate::value::Value;
use crate::var::Var;

/// `dx` of a permutation is `g` permuted back.
pub(crate) fn permute_backward<V: Value>(perm: &[usize], g: &V) -> V {
    let mut inv = vec![0; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i;
    }
    g.permute(&inv)
}

/// Each part of a concatenation takes its own slice of `g`.
pub(crate) fn concat_backward<V: Value>(xs: &[Var], dim: usize, g: &V, needs: &[bool]) -> Vec<Option<V>> {
    let mut start = 0;
    xs.iter()
        .zip(needs)
        .map(|(x, &need)| {
            let n = x.shape().dim_or_one(dim);
            let range: Vec<usize> = (start..start + n).collect();
            start += n;
            need.then(|| g.index_select(dim, &range).reshape(&x.shape()))
        })
        .collect()
}

/// Forward mode of a concatenation: the parts' tangents joined the same way (zeros for a
/// part without one).
pub(crate) fn concat_tangent(xs: &[Var], dim: usize, ts: &[Option<Var>]) -> Var {
    let parts: Vec<Var> = xs.iter().zip(ts).map(|(x, t)| t.clone().unwrap_or_else(|| Var::constant(x.data().zeros_like()))).collect();
    Var::concat(&parts, dim)
}

impl Var {
    /// Same elements, new shape (column-major, as Julia's `reshape`). Panics on a count mismatch.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// let x = Var::from(flux_tensor::Tensor::ones(&[2, 3]));
    /// assert_eq!(x.reshape(&[6]).shape(), &[6]);
    /// ```
    pub fn reshape(&self, shape: &[usize]) -> Var {
        self.try_reshape(shape).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Fallible [`Var::reshape`].
    ///
    /// ```
    /// use flux_autograd::Var;
    /// assert!(Var::from(flux_tensor::Tensor::ones(&[2, 3])).try_reshape(&[4]).is_err());
    /// ```
    pub fn try_reshape(&self, shape: &[usize]) -> Result<Var, TensorError> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        let value = self.data().try_reshape(shape)?;
        Ok(Var::from_op(value, Op::Reshape(self.clone())))
    }

    /// Reorders dimensions (Julia's `permutedims`).
    ///
    /// ```
    /// use flux_autograd::Var;
    /// let x = Var::from(flux_tensor::Tensor::ones(&[2, 3, 4]));
    /// assert_eq!(x.permute(&[2, 0, 1]).shape(), &[4, 2, 3]);
    /// ```
    pub fn permute(&self, perm: &[usize]) -> Var {
        self.try_permute(perm).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Fallible [`Var::permute`].
    ///
    /// ```
    /// use flux_autograd::Var;
    /// assert!(Var::from(flux_tensor::Tensor::ones(&[2, 3])).try_permute(&[1]).is_err());
    /// ```
    pub fn try_permute(&self, perm: &[usize]) -> Result<Var, TensorError> {
        let value = self.data().try_permute(perm)?;
        Ok(Var::from_op(value, Op::Permute(self.clone(), perm.to_vec())))
    }

    /// Matrix transpose (`x'`); a vector `[n]` becomes a row `[1, n]`.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// let x = Var::from(flux_tensor::Tensor::ones(&[2, 3]));
    /// assert_eq!(x.transpose().shape(), &[3, 2]);
    /// ```
    pub fn transpose(&self) -> Var {
        match self.rank() {
            0 => self.clone(),
            1 => self.reshape(&[1, self.numel()]),
            2 => self.permute(&[1, 0]),
            r => panic!("transpose: shape {:?} has rank {r}; use permute for rank > 2", self.shape()),
        }
    }

    /// Gathers indices along `dim` (repeats allowed), like Julia's `x[:, idx]`.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// let x = Var::from(flux_tensor::Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3]));
    /// assert_eq!(x.index_select(0, &[2, 2]).to_vec(), vec![3.0, 3.0]);
    /// ```
    pub fn index_select(&self, dim: usize, idx: &[usize]) -> Var {
        self.try_index_select(dim, idx).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Fallible [`Var::index_select`].
    ///
    /// ```
    /// use flux_autograd::Var;
    /// assert!(Var::from(flux_tensor::Tensor::ones(&[3])).try_index_select(0, &[5]).is_err());
    /// ```
    pub fn try_index_select(&self, dim: usize, idx: &[usize]) -> Result<Var, TensorError> {
        let value = self.data().try_index_select(dim, idx)?;
        Ok(Var::from_op(value, Op::IndexSelect(self.clone(), dim, Arc::from(idx))))
    }

    /// Adds the slices of `self` into a zero value of `shape` at `idx` along `dim` (the adjoint
    /// of [`Var::index_select`]).
    ///
    /// ```
    /// use flux_autograd::Var;
    /// let g = Var::from(flux_tensor::Tensor::ones(&[2]));
    /// assert_eq!(g.index_add(0, &[1, 1], &[3]).to_vec(), vec![0.0, 2.0, 0.0]);
    /// ```
    pub fn index_add(&self, dim: usize, idx: &[usize], shape: &[usize]) -> Var {
        let value = self.data().index_add(dim, idx, shape);
        Var::from_op(value, Op::IndexAdd(self.clone(), dim, Arc::from(idx)))
    }

    /// Elements `range` along `dim`, keeping the dimension (0-based, half-open).
    ///
    /// ```
    /// use flux_autograd::Var;
    /// let x = Var::from(flux_tensor::Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3]));
    /// assert_eq!(x.slice(0, 1..3).to_vec(), vec![2.0, 3.0]);
    /// ```
    pub fn slice(&self, dim: usize, range: Range<usize>) -> Var {
        self.try_slice(dim, range).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Fallible [`Var::slice`].
    ///
    /// ```
    /// use flux_autograd::Var;
    /// assert!(Var::from(flux_tensor::Tensor::ones(&[3])).try_slice(0, 2..5).is_err());
    /// ```
    pub fn try_slice(&self, dim: usize, range: Range<usize>) -> Result<Var, TensorError> {
        self.data().try_slice(dim, range.clone())?;
        let idx: Vec<usize> = range.collect();
        self.try_index_select(dim, &idx)
    }

    /// Element `i` along `dim`, dropping the dimension (`x[:, i]`).
    ///
    /// ```
    /// use flux_autograd::Var;
    /// let x = Var::from(flux_tensor::Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]));
    /// assert_eq!(x.select(1, 1).to_vec(), vec![3.0, 4.0]);
    /// ```
    pub fn select(&self, dim: usize, i: usize) -> Var {
        let mut dims = self.shape().to_vec();
        let s = self.slice(dim, i..i + 1);
        dims.remove(dim);
        s.reshape(&dims)
    }

    /// Joins values along an existing `dim` (Julia's `cat`).
    ///
    /// ```
    /// use flux_autograd::Var;
    /// let a = Var::from(flux_tensor::Tensor::ones(&[2, 1]));
    /// assert_eq!(Var::concat(&[a.clone(), a], 1).shape(), &[2, 2]);
    /// ```
    pub fn concat(parts: &[Var], dim: usize) -> Var {
        Var::try_concat(parts, dim).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Fallible [`Var::concat`].
    ///
    /// ```
    /// use flux_autograd::Var;
    /// let a = Var::from(flux_tensor::Tensor::ones(&[2, 1]));
    /// let b = Var::from(flux_tensor::Tensor::ones(&[3, 1]));
    /// assert!(Var::try_concat(&[a, b], 1).is_err());
    /// ```
    pub fn try_concat(parts: &[Var], dim: usize) -> Result<Var, TensorError> {
        let dtype = parts.iter().map(|p| p.dtype()).fold(DType::F32, DType::promote);
        let parts: Vec<Var> = parts.iter().map(|p| p.to_dtype(dtype)).collect();
        let data: Vec<Tensor> = parts.iter().map(|p| p.data()).collect();
        let value = Tensor::try_concat(&data, dim)?;
        Ok(Var::from_op(value, Op::Concat(parts, dim)))
    }

    /// Stacks equal-shaped values along a new dimension `dim` (a batch of `[n]` vectors along
    /// 1 is `[n, len]`).
    ///
    /// ```
    /// use flux_autograd::Var;
    /// let v = Var::from(flux_tensor::Tensor::ones(&[3]));
    /// assert_eq!(Var::stack(&[v.clone(), v], 1).shape(), &[3, 2]);
    /// ```
    pub fn stack(parts: &[Var], dim: usize) -> Var {
        assert!(!parts.is_empty(), "stack: no values to stack");
        let mut dims = parts[0].shape().to_vec();
        for p in parts {
            assert!(p.shape() == dims.as_slice(), "stack: shapes {:?} and {:?} differ", dims, p.shape());
        }
        dims.insert(dim.min(dims.len()), 1);
        let parts: Vec<Var> = parts.iter().map(|p| p.reshape(&dims)).collect();
        Var::concat(&parts, dim)
    }

    /// Converts the element type, recorded so gradients flow back in the original type.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// use flux_tensor::DType;
    /// assert_eq!(Var::scalar(1.0).to_dtype(DType::F32).dtype(), DType::F32);
    /// ```
    pub fn to_dtype(&self, dtype: DType) -> Var {
        if self.dtype() == dtype {
            return self.clone();
        }
        Var::from_op(self.data().to_dtype(dtype), Op::Cast(self.clone()))
    }

    /// Converts to f32 (recorded).
    ///
    /// ```
    /// assert_eq!(flux_autograd::Var::scalar(1.0).to_f32().dtype(), flux_tensor::DType::F32);
    /// ```
    pub fn to_f32(&self) -> Var {
        self.to_dtype(DType::F32)
    }

    /// Converts to f64 (recorded).
    ///
    /// ```
    /// assert_eq!(flux_autograd::Var::from(1.0f32).to_f64().dtype(), flux_tensor::DType::F64);
    /// ```
    pub fn to_f64(&self) -> Var {
        self.to_dtype(DType::F64)
    }

    /// The same value under a new identity that gradients pass straight through.
    pub(crate) fn identity(&self) -> Var {
        Var::from_op(self.data(), Op::Identity(self.clone()))
    }
}

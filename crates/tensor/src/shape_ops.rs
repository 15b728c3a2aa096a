//! Shape operations: transpose and permute, slicing and selection along a dimension,
//! gathering by index, concatenation and stacking. Each copies into a new contiguous tensor.

use std::ops::Range;

use crate::dtype::Element;
use crate::error::{Result, TensorError};
use crate::shape::Shape;
use crate::tensor::{StorageElement, Tensor};

/// Splits `shape` around `dim` into (elements before it, its size, elements after it).
fn around(shape: &[usize], dim: usize) -> (usize, usize, usize) {
    let inner: usize = shape[..dim].iter().product();
    let n = shape[dim];
    let outer: usize = shape[dim + 1..].iter().product();
    (inner, n, outer)
}

fn gather_typed<T: Element>(x: &[T], inner: usize, n: usize, outer: usize, idx: &[usize]) -> Vec<T> {
    if inner == 1 {
        // single elements: a copy call per index would cost more than the element
        return (0..outer).flat_map(|o| idx.iter().map(move |&i| x[o * n + i])).collect();
    }
    let mut out = Vec::with_capacity(inner * idx.len() * outer);
    for o in 0..outer {
        let block = &x[o * inner * n..(o + 1) * inner * n];
        for &i in idx {
            out.extend_from_slice(&block[i * inner..(i + 1) * inner]);
        }
    }
    out
}

impl Tensor {
    /// Matrix transpose (`x'` in Julia); a vector `[n]` becomes a row `[1, n]`.
    /// Panics for rank above 2 (use [`Tensor::permute`]).
    ///
    /// ```
    /// let m = flux_tensor::Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    /// let t = m.transpose();
    /// assert_eq!(t.shape(), &[3, 2]);
    /// assert_eq!(t.get(&[2, 1]), 6.0);
    /// ```
    pub fn transpose(&self) -> Tensor {
        match self.rank() {
            0 => self.clone(),
            1 => self.reshape(&[1, self.numel()]),
            2 => self.permute(&[1, 0]),
            _ => panic!("transpose: shape {:?} has rank {}; use permute for rank > 2", self.shape(), self.rank()),
        }
    }

    /// Reorders dimensions: output dimension `i` is input dimension `perm[i]` (Julia's
    /// `permutedims`). Panics if `perm` is not a permutation (see [`Tensor::try_permute`]).
    ///
    /// ```
    /// let t = flux_tensor::Tensor::zeros(&[2, 3, 4]);
    /// assert_eq!(t.permute(&[2, 0, 1]).shape(), &[4, 2, 3]);
    /// ```
    pub fn permute(&self, perm: &[usize]) -> Tensor {
        self.try_permute(perm).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Fallible [`Tensor::permute`].
    ///
    /// ```
    /// assert!(flux_tensor::Tensor::zeros(&[2, 3]).try_permute(&[0, 0]).is_err());
    /// ```
    pub fn try_permute(&self, perm: &[usize]) -> Result<Tensor> {
        let rank = self.rank();
        let mut seen = vec![false; rank];
        if perm.len() != rank || perm.iter().any(|&p| p >= rank || std::mem::replace(&mut seen[p], true)) {
            return Err(TensorError::InvalidValue {
                op: "permute",
                reason: format!("{perm:?} is not a permutation of the {rank} dimensions of {:?}", self.shape()),
            });
        }
        let in_strides = self.shape().strides();
        let out_dims: Vec<usize> = perm.iter().map(|&p| self.shape()[p]).collect();
        let src_strides: Vec<usize> = perm.iter().map(|&p| in_strides[p]).collect();
        let shape = Shape::new(&out_dims);
        let n = self.numel();
        // when the first dimension stays first, its elements are contiguous runs in both
        // layouts: copy run by run (the odometer below then walks the other dimensions)
        let first = usize::from(rank > 0 && n > 0 && src_strides[0] == 1);
        let run = if first == 1 { out_dims[0] } else { 1 };
        Ok(crate::dispatch!(self, |v: T| {
            let mut out = Vec::with_capacity(n);
            if n > 0 {
                let mut idx = vec![0usize; rank];
                let mut off = 0usize;
                for _ in 0..n / run {
                    out.extend_from_slice(&v[off..off + run]);
                    for d in first..rank {
                        idx[d] += 1;
                        off += src_strides[d];
                        if idx[d] < out_dims[d] {
                            break;
                        }
                        off -= src_strides[d] * out_dims[d];
                        idx[d] = 0;
                    }
                }
            }
            Tensor::from_typed(out, shape)
        }))
    }

    /// Elements `range` along `dim`, keeping the dimension (`x[:, 2:3]` in Julia, 0-based and
    /// half-open here). Panics when out of bounds (see [`Tensor::try_slice`]).
    ///
    /// ```
    /// let m = flux_tensor::Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    /// assert_eq!(m.slice(1, 1..3).to_vec(), vec![3.0, 4.0, 5.0, 6.0]);
    /// ```
    pub fn slice(&self, dim: usize, range: Range<usize>) -> Tensor {
        self.try_slice(dim, range).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Fallible [`Tensor::slice`].
    ///
    /// ```
    /// assert!(flux_tensor::Tensor::zeros(&[2, 3]).try_slice(1, 2..4).is_err());
    /// ```
    pub fn try_slice(&self, dim: usize, range: Range<usize>) -> Result<Tensor> {
        self.check_dim("slice", dim)?;
        if range.start > range.end || range.end > self.shape()[dim] {
            return Err(TensorError::IndexOutOfBounds { op: "slice", index: range.end.max(range.start), dim, shape: self.shape().to_vec() });
        }
        let idx: Vec<usize> = range.collect();
        self.try_index_select(dim, &idx)
    }

    /// Element `i` along `dim`, dropping the dimension (`x[:, i]` in Julia, 0-based).
    ///
    /// ```
    /// let m = flux_tensor::Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    /// assert_eq!(m.select(1, 2).to_vec(), vec![5.0, 6.0]);
    /// ```
    pub fn select(&self, dim: usize, i: usize) -> Tensor {
        self.try_select(dim, i).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Fallible [`Tensor::select`].
    ///
    /// ```
    /// assert!(flux_tensor::Tensor::zeros(&[2, 3]).try_select(0, 2).is_err());
    /// ```
    pub fn try_select(&self, dim: usize, i: usize) -> Result<Tensor> {
        let s = self.try_slice(dim, i..i + 1).map_err(|_| TensorError::IndexOutOfBounds { op: "select", index: i, dim, shape: self.shape().to_vec() })?;
        let mut dims = self.shape().to_vec();
        dims.remove(dim);
        s.try_reshape(&dims)
    }

    /// Gathers the given indices along `dim` (repeats allowed), like Julia's `x[:, idx]`.
    ///
    /// ```
    /// let v = flux_tensor::Tensor::from_vec(vec![10.0, 20.0, 30.0], &[3]);
    /// assert_eq!(v.index_select(0, &[2, 0, 2]).to_vec(), vec![30.0, 10.0, 30.0]);
    /// ```
    pub fn index_select(&self, dim: usize, idx: &[usize]) -> Tensor {
        self.try_index_select(dim, idx).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Fallible [`Tensor::index_select`].
    ///
    /// ```
    /// assert!(flux_tensor::Tensor::zeros(&[3]).try_index_select(0, &[3]).is_err());
    /// ```
    pub fn try_index_select(&self, dim: usize, idx: &[usize]) -> Result<Tensor> {
        self.check_dim("index_select", dim)?;
        let n = self.shape()[dim];
        if let Some(&bad) = idx.iter().find(|&&i| i >= n) {
            return Err(TensorError::IndexOutOfBounds { op: "index_select", index: bad, dim, shape: self.shape().to_vec() });
        }
        let (inner, n, outer) = around(self.shape(), dim);
        let mut dims = self.shape().to_vec();
        dims[dim] = idx.len();
        let shape = Shape::new(&dims);
        Ok(crate::dispatch!(self, |v: T| Tensor::from_typed(gather_typed(v, inner, n, outer, idx), shape)))
    }

    /// Adds `src` into a zero tensor of `shape` at indices `idx` along `dim` (the adjoint of
    /// [`Tensor::index_select`]; repeated indices accumulate).
    ///
    /// ```
    /// let g = flux_tensor::Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3]);
    /// assert_eq!(g.index_add(0, &[2, 0, 2], &[3]).to_vec(), vec![2.0, 0.0, 4.0]);
    /// ```
    pub fn index_add(&self, dim: usize, idx: &[usize], shape: &[usize]) -> Tensor {
        let (inner, n, outer) = around(shape, dim);
        assert_eq!(self.shape()[dim], idx.len(), "index_add: {} indices for dimension {dim} of {:?}", idx.len(), self.shape());
        let target = Shape::new(shape);
        crate::dispatch!(self, |v: T| {
            let mut out = vec![<T as Element>::ZERO; inner * n * outer];
            let m = idx.len();
            if inner == 1 {
                for (o, src) in v.chunks_exact(m.max(1)).enumerate().take(outer) {
                    let dst = &mut out[o * n..(o + 1) * n];
                    for (&i, &s) in idx.iter().zip(src) {
                        dst[i] += s;
                    }
                }
                return Tensor::from_typed(out, target);
            }
            for o in 0..outer {
                for (j, &i) in idx.iter().enumerate() {
                    let src = &v[(o * m + j) * inner..(o * m + j + 1) * inner];
                    let dst = &mut out[(o * n + i) * inner..(o * n + i + 1) * inner];
                    for (d, &s) in dst.iter_mut().zip(src) {
                        *d += s;
                    }
                }
            }
            Tensor::from_typed(out, target)
        })
    }

    /// Joins tensors along an existing `dim` (Julia's `cat(xs...; dims)`); the other dimensions
    /// must agree; dtypes promote. Panics on a mismatch (see [`Tensor::try_concat`]).
    ///
    /// ```
    /// use flux_tensor::Tensor;
    /// let a = Tensor::ones(&[2, 1]);
    /// let b = Tensor::zeros(&[2, 2]);
    /// assert_eq!(Tensor::concat(&[a, b], 1).shape(), &[2, 3]);
    /// ```
    pub fn concat(parts: &[Tensor], dim: usize) -> Tensor {
        Tensor::try_concat(parts, dim).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Fallible [`Tensor::concat`].
    ///
    /// ```
    /// use flux_tensor::Tensor;
    /// assert!(Tensor::try_concat(&[Tensor::ones(&[2]), Tensor::ones(&[3, 2])], 1).is_err());
    /// ```
    pub fn try_concat(parts: &[Tensor], dim: usize) -> Result<Tensor> {
        let first = parts.first().ok_or_else(|| TensorError::InvalidValue { op: "concat", reason: "no tensors to join".into() })?;
        let rank = parts.iter().map(|p| p.rank()).max().unwrap_or(0).max(dim + 1);
        let pad = |s: &[usize]| -> Vec<usize> { (0..rank).map(|d| s.get(d).copied().unwrap_or(1)).collect() };
        let base = pad(first.shape());
        let mut dtype = first.dtype();
        let mut total = 0;
        for p in parts {
            let s = pad(p.shape());
            for d in 0..rank {
                if d != dim && s[d] != base[d] {
                    return Err(TensorError::ShapeMismatch {
                        op: "concat",
                        lhs: first.shape().to_vec(),
                        rhs: p.shape().to_vec(),
                        reason: format!("dimension {} differs ({} vs {}) outside the joined dimension {}", d, base[d], s[d], dim),
                    });
                }
            }
            total += s[dim];
            dtype = dtype.promote(p.dtype());
        }
        let mut dims = base.clone();
        dims[dim] = total;
        let inner: usize = base[..dim].iter().product();
        let outer: usize = base[dim + 1..].iter().product();
        let parts: Vec<Tensor> = parts.iter().map(|p| p.to_dtype(dtype)).collect();
        let shape = Shape::new(&dims);
        fn join<T: StorageElement>(parts: &[Tensor], inner: usize, outer: usize, dim: usize, rank: usize) -> Vec<T> {
            let mut out = Vec::new();
            for o in 0..outer {
                for p in parts {
                    let n = if p.rank() > dim { p.shape()[dim] } else { 1 };
                    let _ = rank;
                    let v = p.as_slice::<T>().expect("promoted");
                    out.extend_from_slice(&v[o * inner * n..(o + 1) * inner * n]);
                }
            }
            out
        }
        Ok(crate::dispatch!(parts[0], |_v: T| Tensor::from_typed(join::<T>(&parts, inner, outer, dim, rank), shape)))
    }

    /// Stacks equal-shaped tensors along a new dimension `dim` (Julia's `stack`); stacking
    /// `[n]` vectors along 1 gives an `[n, len]` matrix (a batch).
    ///
    /// ```
    /// use flux_tensor::Tensor;
    /// let xs = vec![Tensor::ones(&[3]), Tensor::zeros(&[3])];
    /// assert_eq!(Tensor::stack(&xs, 1).shape(), &[3, 2]);
    /// ```
    pub fn stack(parts: &[Tensor], dim: usize) -> Tensor {
        Tensor::try_stack(parts, dim).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Fallible [`Tensor::stack`].
    ///
    /// ```
    /// use flux_tensor::Tensor;
    /// assert!(Tensor::try_stack(&[Tensor::ones(&[3]), Tensor::ones(&[2])], 1).is_err());
    /// ```
    pub fn try_stack(parts: &[Tensor], dim: usize) -> Result<Tensor> {
        let first = parts.first().ok_or_else(|| TensorError::InvalidValue { op: "stack", reason: "no tensors to stack".into() })?;
        if dim > first.rank() {
            return Err(TensorError::DimOutOfRange { op: "stack", dim, shape: first.shape().to_vec() });
        }
        for p in parts {
            if p.shape() != first.shape() {
                return Err(TensorError::ShapeMismatch {
                    op: "stack",
                    lhs: first.shape().to_vec(),
                    rhs: p.shape().to_vec(),
                    reason: "stacked tensors must have one shape".into(),
                });
            }
        }
        let mut dims = first.shape().to_vec();
        dims.insert(dim, 1);
        let reshaped: Vec<Tensor> = parts.iter().map(|p| p.reshape(&dims)).collect();
        Tensor::try_concat(&reshaped, dim)
    }

    fn check_dim(&self, op: &'static str, dim: usize) -> Result<()> {
        if dim >= self.rank() {
            return Err(TensorError::DimOutOfRange { op, dim, shape: self.shape().to_vec() });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn permute_roundtrip(shape in prop::collection::vec(1usize..4, 1..5), seed in 0u64..100) {
            crate::seed(seed);
            let t = Tensor::randn(&shape);
            let rank = shape.len();
            let perm: Vec<usize> = (0..rank).rev().collect();
            let back = t.permute(&perm).permute(&perm);
            prop_assert_eq!(back, t.clone());
            let r = t.reshape(&[t.numel()]).reshape(&shape);
            prop_assert_eq!(r, t);
        }

        #[test]
        fn concat_of_slices_is_identity(shape in prop::collection::vec(1usize..5, 1..4), d in 0usize..3) {
            let t = Tensor::randn(&shape);
            let dim = d % shape.len();
            let n = shape[dim];
            let parts: Vec<Tensor> = (0..n).map(|i| t.slice(dim, i..i + 1)).collect();
            prop_assert_eq!(Tensor::concat(&parts, dim), t);
        }
    }

    #[test]
    fn transpose_matches_get() {
        let m = Tensor::randn(&[3, 5]);
        let t = m.transpose();
        for i in 0..3 {
            for j in 0..5 {
                assert_eq!(m.get(&[i, j]), t.get(&[j, i]));
            }
        }
    }

    #[test]
    fn permute_keeping_the_first_dim_matches_get() {
        // the run-by-run copy (first dimension kept) and the element walk, against `get`
        let t = Tensor::randn(&[3, 2, 4, 2]);
        for perm in [[0, 2, 1, 3], [0, 3, 2, 1], [2, 0, 3, 1]] {
            let p = t.permute(&perm);
            for i in 0..t.numel() {
                let idx = [i % 3, i / 3 % 2, i / 6 % 4, i / 24];
                assert_eq!(t.get(&idx), p.get(&perm.map(|d| idx[d])), "{perm:?} at {idx:?}");
            }
        }
        assert_eq!(Tensor::scalar(2.0).permute(&[]).item(), 2.0);
    }

    #[test]
    fn bad_indices_are_errors() {
        let m = Tensor::zeros(&[2, 3]);
        assert!(m.try_slice(2, 0..1).unwrap_err().to_string().contains("dimension 2"));
        assert!(m.try_select(1, 3).unwrap_err().to_string().contains("select"));
        assert!(m.try_permute(&[0]).is_err());
        assert!(Tensor::try_concat(&[], 0).is_err());
        let e = Tensor::try_concat(&[Tensor::zeros(&[2, 2]), Tensor::zeros(&[3, 2])], 1).unwrap_err().to_string();
        assert!(e.contains("[2, 2]") && e.contains("[3, 2]"), "{e}");
    }

    #[test]
    fn index_add_is_adjoint_of_index_select() {
        let x = Tensor::randn(&[3, 4]);
        let idx = [1, 1, 0];
        let y = x.index_select(0, &idx);
        let g = Tensor::randn(y.shape());
        let lhs = (&y * &g).sum_all();
        let rhs = (&x * &g.index_add(0, &idx, &[3, 4])).sum_all();
        assert!((lhs - rhs).abs() < 1e-12);
    }
}

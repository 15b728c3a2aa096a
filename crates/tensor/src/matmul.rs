//! Matrix products on tensors: shapes, promotion and errors. Every product goes through the GEMM
//! in `kernels` (the `gemm` crate, or `matrixmultiply` as the portable fallback); transposed
//! operands are passed as strides, never copied.

use crate::error::{Result, TensorError};
use crate::kernels::{batch_products, GemmElement};
use crate::shape::Shape;
use crate::tensor::Tensor;

/// How an operand of [`Tensor::matmul_t`] is read.
fn as_matrix(op: &'static str, t: &Tensor, other: &Tensor, side: &str) -> Result<(usize, usize)> {
    match t.rank() {
        1 if side == "rhs" => Ok((t.shape()[0], 1)),
        1 => Ok((t.shape()[0], 1)),
        2 => Ok((t.shape()[0], t.shape()[1])),
        _ => Err(TensorError::ShapeMismatch {
            op,
            lhs: t.shape().to_vec(),
            rhs: other.shape().to_vec(),
            reason: format!("the {side} must be a vector or a matrix here"),
        }),
    }
}

impl Tensor {
    /// Matrix product with Julia's shapes: `[m, k] · [k, n] -> [m, n]`, `[m, k] · [k] -> [m]`,
    /// `[m, k] · [k, n, b...] -> [m, n, b...]` (a weight applied to every slice), and batched
    /// `[m, k, b] · [k, n, b] -> [m, n, b]`. Mixed dtypes promote. Panics on bad shapes
    /// (see [`Tensor::try_matmul`]).
    ///
    /// ```
    /// use flux_tensor::Tensor;
    /// let a = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]); // [1 3; 2 4]
    /// let x = Tensor::from_vec(vec![1.0, 1.0], &[2]);
    /// assert_eq!(a.matmul(&x).to_vec(), vec![4.0, 6.0]);
    /// ```
    pub fn matmul(&self, other: &Tensor) -> Tensor {
        self.try_matmul(other).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Fallible [`Tensor::matmul`]: the error names both shapes and the inner dimensions.
    ///
    /// ```
    /// use flux_tensor::Tensor;
    /// let e = Tensor::zeros(&[2, 3]).try_matmul(&Tensor::zeros(&[2])).unwrap_err();
    /// assert!(e.to_string().contains("[2, 3] and [2]"));
    /// ```
    pub fn try_matmul(&self, other: &Tensor) -> Result<Tensor> {
        let dtype = self.dtype().promote(other.dtype());
        let (a, b) = (self.to_dtype(dtype), other.to_dtype(dtype));
        match (a.rank(), b.rank()) {
            (2, r) if r >= 3 => {
                let k = b.shape()[0];
                let rest: usize = b.shape()[1..].iter().product();
                let flat = b.reshape(&[k, rest]);
                let c = a.try_matmul_t(&flat, false, false).map_err(|_| mismatch(self, other, a.shape()[1], k))?;
                let mut out = vec![a.shape()[0]];
                out.extend_from_slice(&b.shape()[1..]);
                Ok(c.reshape(&out))
            }
            (3, 3) => batched(&a, &b).map_err(|_| mismatch(self, other, a.shape()[1], b.shape()[0])),
            (2, 1) => {
                let c = a.try_matmul_t(&b.reshape(&[b.numel(), 1]), false, false).map_err(|_| mismatch(self, other, a.shape()[1], b.numel()))?;
                Ok(c.reshape(&[a.shape()[0]]))
            }
            (1, 2) => a.reshape(&[a.numel(), 1]).try_matmul_t(&b, false, false).map_err(|_| mismatch(self, other, 1, b.shape()[0])),
            (2, 2) => a.try_matmul_t(&b, false, false),
            _ => Err(TensorError::ShapeMismatch {
                op: "matmul",
                lhs: self.shape().to_vec(),
                rhs: other.shape().to_vec(),
                reason: "matmul takes a matrix times a vector, a matrix or a batch, or two batches".into(),
            }),
        }
    }

    /// `op(a) · op(b)` for matrices, where `op` transposes when the flag is set, without copying
    /// the transposed operand. Vectors count as one-column matrices.
    ///
    /// ```
    /// use flux_tensor::Tensor;
    /// let a = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]);
    /// assert_eq!(a.matmul_t(&a, true, false), a.transpose().matmul(&a));
    /// ```
    pub fn matmul_t(&self, other: &Tensor, ta: bool, tb: bool) -> Tensor {
        self.try_matmul_t(other, ta, tb).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Fallible [`Tensor::matmul_t`].
    ///
    /// ```
    /// use flux_tensor::Tensor;
    /// assert!(Tensor::zeros(&[2, 3]).try_matmul_t(&Tensor::zeros(&[2, 3]), false, false).is_err());
    /// ```
    pub fn try_matmul_t(&self, other: &Tensor, ta: bool, tb: bool) -> Result<Tensor> {
        let (ar, ac) = as_matrix("matmul", self, other, "lhs")?;
        let (br, bc) = as_matrix("matmul", other, self, "rhs")?;
        let (m, k) = if ta { (ac, ar) } else { (ar, ac) };
        let (k2, n) = if tb { (bc, br) } else { (br, bc) };
        if k != k2 {
            return Err(mismatch(self, other, k, k2));
        }
        Ok(product(self, other, m, n, k, ta, tb, Shape::new(&[m, n])))
    }
}

impl Tensor {
    /// `op(A)·x` for a matrix `A` (transposed when `ta` is set, without a copy) and a vector
    /// `x`: a vector. Panics on bad shapes (see [`Tensor::try_matvec_t`]).
    ///
    /// ```
    /// use flux_tensor::Tensor;
    /// let a = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]); // [1 3; 2 4]
    /// assert_eq!(a.matvec_t(&Tensor::ones(&[2]), true).to_vec(), vec![3.0, 7.0]);
    /// ```
    pub fn matvec_t(&self, x: &Tensor, ta: bool) -> Tensor {
        self.try_matvec_t(x, ta).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Fallible [`Tensor::matvec_t`]: the error names both shapes.
    ///
    /// ```
    /// use flux_tensor::Tensor;
    /// let e = Tensor::zeros(&[2, 3]).try_matvec_t(&Tensor::zeros(&[2]), false).unwrap_err();
    /// assert!(e.to_string().contains("[2, 3] and [2]"));
    /// ```
    pub fn try_matvec_t(&self, x: &Tensor, ta: bool) -> Result<Tensor> {
        if self.rank() != 2 || x.rank() != 1 {
            return Err(TensorError::ShapeMismatch {
                op: "matvec",
                lhs: self.shape().to_vec(),
                rhs: x.shape().to_vec(),
                reason: "matvec takes a matrix and a vector".into(),
            });
        }
        let (r, c) = (self.shape()[0], self.shape()[1]);
        let (m, k) = if ta { (c, r) } else { (r, c) };
        if k != x.numel() {
            return Err(mismatch(self, x, k, x.numel()));
        }
        Ok(product(self, x, m, 1, k, ta, false, Shape::new(&[m])))
    }
}

/// `op(a)·op(b)` of the given sizes (checked by the caller) into a tensor of `shape`, in the
/// wider dtype of the two (an operand is converted only when the dtypes differ).
#[allow(clippy::too_many_arguments)]
fn product(a: &Tensor, b: &Tensor, m: usize, n: usize, k: usize, ta: bool, tb: bool, shape: Shape) -> Tensor {
    if a.dtype() != b.dtype() {
        let dtype = a.dtype().promote(b.dtype());
        return product(&a.to_dtype(dtype), &b.to_dtype(dtype), m, n, k, ta, tb, shape);
    }
    crate::dispatch!(a, |av: T| {
        let bv = b.as_slice::<T>().expect("same dtype");
        Tensor::from_typed(batch_products(1, m, n, k, av, ta, bv, tb), shape)
    })
}

fn mismatch(a: &Tensor, b: &Tensor, k1: usize, k2: usize) -> TensorError {
    TensorError::ShapeMismatch { op: "matmul", lhs: a.shape().to_vec(), rhs: b.shape().to_vec(), reason: format!("inner dimensions differ ({k1} vs {k2})") }
}

/// `[m, k, b] · [k, n, b] -> [m, n, b]`, one GEMM per slice.
fn batched(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (m, k, nb) = (a.shape()[0], a.shape()[1], a.shape()[2]);
    let (k2, n, nb2) = (b.shape()[0], b.shape()[1], b.shape()[2]);
    if k != k2 || nb != nb2 {
        return Err(TensorError::ShapeMismatch {
            op: "matmul",
            lhs: a.shape().to_vec(),
            rhs: b.shape().to_vec(),
            reason: "batched matmul needs [m, k, b] and [k, n, b]".into(),
        });
    }
    let shape = Shape::new(&[m, n, nb]);
    Ok(crate::dispatch!(a, |av: T| {
        let bv = b.as_slice::<T>().expect("same dtype");
        Tensor::from_typed(batch_products(nb, m, n, k, av, false, bv, false), shape)
    }))
}

impl Tensor {
    /// Batched `op(a_i) · op(b_i)` over the last dimension of two rank-3 tensors, where `op`
    /// transposes each `[rows, cols]` slice when its flag is set (no copies).
    ///
    /// ```
    /// use flux_tensor::Tensor;
    /// let a = Tensor::randn(&[2, 3, 4]);
    /// let b = Tensor::randn(&[2, 5, 4]);
    /// assert_eq!(a.bmm_t(&b, true, false).shape(), &[3, 5, 4]);
    /// ```
    pub fn bmm_t(&self, other: &Tensor, ta: bool, tb: bool) -> Tensor {
        self.try_bmm_t(other, ta, tb).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Fallible [`Tensor::bmm_t`].
    ///
    /// ```
    /// use flux_tensor::Tensor;
    /// assert!(Tensor::zeros(&[2, 3, 4]).try_bmm_t(&Tensor::zeros(&[2, 3, 5]), false, false).is_err());
    /// ```
    pub fn try_bmm_t(&self, other: &Tensor, ta: bool, tb: bool) -> Result<Tensor> {
        let dtype = self.dtype().promote(other.dtype());
        let (a, b) = (self.to_dtype(dtype), other.to_dtype(dtype));
        let bad =
            |reason: &str| TensorError::ShapeMismatch { op: "batched matmul", lhs: self.shape().to_vec(), rhs: other.shape().to_vec(), reason: reason.into() };
        if a.rank() != 3 || b.rank() != 3 {
            return Err(bad("both operands must have rank 3"));
        }
        let (ar, ac, nb) = (a.shape()[0], a.shape()[1], a.shape()[2]);
        let (br, bc, nb2) = (b.shape()[0], b.shape()[1], b.shape()[2]);
        let (m, k) = if ta { (ac, ar) } else { (ar, ac) };
        let (k2, n) = if tb { (bc, br) } else { (br, bc) };
        if k != k2 || nb != nb2 {
            return Err(bad(&format!("inner dimensions ({k} vs {k2}) and batch sizes ({nb} vs {nb2}) must agree")));
        }
        let shape = Shape::new(&[m, n, nb]);
        Ok(crate::dispatch!(a, |av: T| {
            let bv = b.as_slice::<T>().expect("same dtype");
            Tensor::from_typed(batch_products(nb, m, n, k, av, ta, bv, tb), shape)
        }))
    }
}

impl Tensor {
    /// `w · x .+ b` for a weight `[m, k]`, input `[k, n]` and bias `[m]`, in one pass over the
    /// output: the bias is written first and the GEMM accumulates onto it (a Dense layer's
    /// pre-activation without a separate broadcast add).
    ///
    /// ```
    /// use flux_tensor::Tensor;
    /// let w = Tensor::from_vec(vec![1.0, 0.0, 0.0, 1.0], &[2, 2]);
    /// let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]);
    /// let b = Tensor::from_vec(vec![10.0, 20.0], &[2]);
    /// assert_eq!(Tensor::affine(&w, &x, &b).to_vec(), vec![11.0, 22.0, 13.0, 24.0]);
    /// ```
    pub fn affine(w: &Tensor, x: &Tensor, b: &Tensor) -> Tensor {
        Tensor::try_affine(w, x, b).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Fallible [`Tensor::affine`].
    ///
    /// ```
    /// use flux_tensor::Tensor;
    /// assert!(Tensor::try_affine(&Tensor::zeros(&[2, 3]), &Tensor::zeros(&[3, 4]), &Tensor::zeros(&[3])).is_err());
    /// ```
    pub fn try_affine(w: &Tensor, x: &Tensor, b: &Tensor) -> Result<Tensor> {
        let dtype = w.dtype().promote(x.dtype()).promote(b.dtype());
        let (w, x, b) = (w.to_dtype(dtype), x.to_dtype(dtype), b.to_dtype(dtype));
        if w.rank() != 2 || x.rank() != 2 || w.shape()[1] != x.shape()[0] {
            return Err(mismatch(&w, &x, w.shape().get(1).copied().unwrap_or(0), x.shape().first().copied().unwrap_or(0)));
        }
        let (m, k, n) = (w.shape()[0], w.shape()[1], x.shape()[1]);
        if b.shape() != &[m] {
            return Err(TensorError::ShapeMismatch {
                op: "affine",
                lhs: w.shape().to_vec(),
                rhs: b.shape().to_vec(),
                reason: format!("the bias must be [{m}]"),
            });
        }
        let shape = Shape::new(&[m, n]);
        Ok(crate::dispatch!(w, |wv: T| {
            let (xv, bv) = (x.as_slice::<T>().expect("promoted"), b.as_slice::<T>().expect("promoted"));
            let mut c: Vec<T> = Vec::with_capacity(m * n);
            for _ in 0..n {
                c.extend_from_slice(bv);
            }
            T::gemm(m, n, k, wv, false, xv, false, &mut c, true);
            Tensor::from_typed(c, shape)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive(a: &Tensor, b: &Tensor) -> Vec<f64> {
        let (m, k) = (a.shape()[0], a.shape()[1]);
        let n = b.shape()[1];
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                for p in 0..k {
                    c[i + j * m] += a.get(&[i, p]) * b.get(&[p, j]);
                }
            }
        }
        c
    }

    proptest! {
        #[test]
        fn matmul_matches_naive(m in 1usize..40, k in 0usize..40, n in 1usize..40, ta: bool, tb: bool, f32_: bool) {
            let mut a = if ta { Tensor::randn(&[k, m]) } else { Tensor::randn(&[m, k]) };
            let mut b = if tb { Tensor::randn(&[n, k]) } else { Tensor::randn(&[k, n]) };
            if f32_ { a = a.to_f32(); b = b.to_f32(); }
            let got = a.matmul_t(&b, ta, tb);
            let (ea, eb) = (if ta { a.transpose() } else { a.clone() }, if tb { b.transpose() } else { b.clone() });
            let want = naive(&ea, &eb);
            let tol = if f32_ { 1e-4 } else { 1e-10 };
            for (g, w) in got.to_vec().iter().zip(&want) {
                prop_assert!((g - w).abs() <= tol * (1.0 + w.abs()), "{} vs {}", g, w);
            }
        }
    }

    #[test]
    fn large_parallel_product_matches_portable() {
        for &n in &[97usize, 200] {
            let a = Tensor::randn(&[n, n + 3]).to_f32();
            let b = Tensor::randn(&[n + 3, n - 1]).to_f32();
            let got = a.matmul(&b);
            let mut want = vec![0.0f32; n * (n - 1)];
            crate::gemm_portable(n, n - 1, n + 3, a.as_slice::<f32>().unwrap(), false, b.as_slice::<f32>().unwrap(), false, &mut want);
            for (g, w) in got.to_vec_f32().iter().zip(&want) {
                assert!((g - w).abs() <= 1e-3 * (1.0 + w.abs()));
            }
        }
    }

    #[test]
    fn vector_and_batch_shapes() {
        let w = Tensor::randn(&[3, 4]);
        assert_eq!(w.matmul(&Tensor::randn(&[4])).shape(), &[3]);
        assert_eq!(w.matmul(&Tensor::randn(&[4, 5, 2])).shape(), &[3, 5, 2]);
        let a = Tensor::randn(&[2, 3, 4]);
        let b = Tensor::randn(&[3, 5, 4]);
        let c = a.matmul(&b);
        assert_eq!(c.shape(), &[2, 5, 4]);
        let slice = |t: &Tensor, i: usize| t.select(2, i);
        assert!(c.select(2, 1).allclose(&slice(&a, 1).matmul(&slice(&b, 1)), 1e-12, 1e-12));
    }

    #[test]
    fn products_fill_fresh_outputs_completely() {
        // outputs are never cleared before the GEMM: an empty inner dimension must still give zeros
        assert_eq!(Tensor::zeros(&[2, 0]).matmul(&Tensor::zeros(&[0, 3])).to_vec(), vec![0.0; 6]);
        assert_eq!(Tensor::zeros(&[2, 0, 2]).bmm_t(&Tensor::zeros(&[0, 3, 2]), false, false).to_vec(), vec![0.0; 12]);
        assert_eq!(Tensor::zeros(&[0, 4]).matmul(&Tensor::ones(&[4, 3])).shape(), &[0, 3]);
        // and a product of ones is exactly k everywhere, batched or not
        assert!(Tensor::ones(&[7, 5]).matmul(&Tensor::ones(&[5, 9])).to_vec().iter().all(|&v| v == 5.0));
        assert!(Tensor::ones(&[5, 7, 3]).bmm_t(&Tensor::ones(&[5, 9, 3]), true, false).to_vec().iter().all(|&v| v == 5.0));
    }

    #[test]
    fn mismatch_is_an_error_naming_shapes() {
        let e = Tensor::zeros(&[2, 3]).try_matmul(&Tensor::zeros(&[4, 2])).unwrap_err().to_string();
        assert!(e.contains("matmul") && e.contains("[2, 3]") && e.contains("[4, 2]") && e.contains("3 vs 4"), "{e}");
    }
}

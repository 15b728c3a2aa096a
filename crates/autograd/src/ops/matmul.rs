//! Matrix products: `matmul` with Julia's shapes (matrix·vector, matrix·matrix, a weight over
//! a batch of any rank, and batched 3-d products), reduced to two primitives with transposes
//! carried as flags, so no backward rule ever copies a transposed matrix.

use flux_tensor::{Shape, Tensor, TensorError};

use crate::op::Op;
use crate::value::Value;
use crate::var::Var;

/// A gradient in its input's shape: `matmul_t` treats a vector `[n]` as the column `[n, 1]`,
/// so the product rule gives `[n, 1]` (or `[1, n]`) for it; the input is `[n]`.
fn like<V: Value>(d: V, s: &Shape) -> V {
    if d.shape() == *s {
        d
    } else {
        d.reshape(s)
    }
}

/// Gradients of `C = op(A) · op(B)`, where `op` transposes when its flag is set:
/// `dA = G·op(B)ᵀ` (or its transpose), `dB = op(A)ᵀ·G` (or its transpose), each in its
/// input's shape (a vector operand gets a vector gradient).
/// Each operand's value is fetched only for the gradient that reads it.
pub(crate) fn matmul_backward<V: Value>(av: &Var, bv: &Var, ta: bool, tb: bool, g: &V, needs: &[bool]) -> [Option<V>; 2] {
    let da = needs[0].then(|| like(V::with_of(bv, |b| if ta { b.matmul_t(g, tb, true) } else { g.matmul_t(b, false, !tb) }), &av.shape()));
    let db = needs[1].then(|| like(V::with_of(av, |a| if tb { g.matmul_t(a, true, ta) } else { a.matmul_t(g, !ta, false) }), &bv.shape()));
    [da, db]
}

/// Forward mode of `C = op(A)·op(B)`: `op(Ȧ)·op(B) + op(A)·op(Ḃ)`.
pub(crate) fn matmul_tangent(a: &Var, b: &Var, ta: bool, tb: bool, da: Option<&Var>, db: Option<&Var>) -> Option<Var> {
    let l = da.map(|da| da.matmul_t(b, ta, tb));
    let r = db.map(|db| a.matmul_t(db, ta, tb));
    sum(l, r)
}

fn sum(a: Option<Var>, b: Option<Var>) -> Option<Var> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    }
}

/// Gradients of `y = op(A)·x` for a vector `x`: `dA = g·xᵀ` (`x·gᵀ` for `Aᵀ`), and
/// `dx = op(A)ᵀ·g`, itself a matrix-vector product, so no gradient needs a reshape.
pub(crate) fn matvec_backward<V: Value>(av: &Var, xv: &Var, ta: bool, g: &V, needs: &[bool]) -> [Option<V>; 2] {
    let da = needs[0].then(|| V::with_of(xv, |x| if ta { x.matmul_t(g, false, true) } else { g.matmul_t(x, false, true) }));
    [da, needs[1].then(|| V::with_of(av, |a| a.matvec_t(g, !ta)))]
}

/// Forward mode of `y = op(A)·x`: `op(Ȧ)·x + op(A)·ẋ`.
pub(crate) fn matvec_tangent(a: &Var, x: &Var, ta: bool, da: Option<&Var>, dx: Option<&Var>) -> Option<Var> {
    sum(da.map(|da| da.matvec_t(x, ta)), dx.map(|dx| a.matvec_t(dx, ta)))
}

/// Gradients of `y = w·x .+ b`: `dw = g·xᵀ`, `dx = wᵀ·g`, `db = sum(g, dims = 2)`.
pub(crate) fn affine_backward<V: Value>(w: &V, x: &V, bshape: &[usize], g: &V, needs: &[bool]) -> [Option<V>; 3] {
    [needs[0].then(|| g.matmul_t(x, false, true)), needs[1].then(|| w.matmul_t(g, true, false)), needs[2].then(|| g.sum_to(bshape))]
}

/// Forward mode of `y = w·x .+ b`: `ẇ·x + w·ẋ .+ ḃ` (the caller broadcasts a lone `ḃ`).
pub(crate) fn affine_tangent(w: &Var, x: &Var, dw: Option<&Var>, dx: Option<&Var>, db: Option<&Var>) -> Option<Var> {
    let prod = sum(dw.map(|dw| dw.matmul_t(x, false, false)), dx.map(|dx| w.matmul_t(dx, false, false)));
    sum(prod, db.cloned())
}

/// The same rule for batched products, slice by slice.
pub(crate) fn bmm_backward<V: Value>(a: &V, b: &V, ta: bool, tb: bool, g: &V, needs: &[bool]) -> [Option<V>; 2] {
    let da = needs[0].then(|| if ta { b.bmm_t(g, tb, true) } else { g.bmm_t(b, false, !tb) });
    let db = needs[1].then(|| if tb { g.bmm_t(a, true, ta) } else { a.bmm_t(g, !ta, false) });
    [da, db]
}

/// Forward mode of batched products: `op(Ȧ_i)·op(B_i) + op(A_i)·op(Ḃ_i)`.
pub(crate) fn bmm_tangent(a: &Var, b: &Var, ta: bool, tb: bool, da: Option<&Var>, db: Option<&Var>) -> Option<Var> {
    sum(da.map(|da| da.bmm_t(b, ta, tb)), db.map(|db| a.bmm_t(db, ta, tb)))
}

impl Var {
    /// Matrix product with Julia's shapes: `[m, k]·[k, n] -> [m, n]`, `[m, k]·[k] -> [m]`,
    /// `[m, k]·[k, n, b...] -> [m, n, b...]`, `[m, k, b]·[k, n, b] -> [m, n, b]`. Panics on
    /// bad shapes (see [`Var::try_matmul`]).
    ///
    /// ```
    /// use flux_autograd::{param, Var};
    /// use flux_tensor::Tensor;
    /// let w = param(Tensor::ones(&[2, 3]));
    /// let x = Var::from(Tensor::ones(&[3]));
    /// assert_eq!(w.matmul(&x).to_vec(), vec![3.0, 3.0]);
    /// ```
    pub fn matmul(&self, other: &Var) -> Var {
        self.try_matmul(other).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Fallible [`Var::matmul`]: the error names both shapes.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// use flux_tensor::Tensor;
    /// let e = Var::from(Tensor::ones(&[2, 3])).try_matmul(&Var::from(Tensor::ones(&[2]))).unwrap_err();
    /// assert!(e.to_string().contains("[2, 3] and [2]"));
    /// ```
    pub fn try_matmul(&self, other: &Var) -> Result<Var, TensorError> {
        let (sa, sb) = (self.shape(), other.shape());
        // Shape errors come from the tensor kernel, with the caller's shapes in them.
        let check = || self.data().try_matmul(&other.data()).map(|_| ());
        match (sa.rank(), sb.rank()) {
            (2, 2) => self.try_matmul_t(other, false, false),
            (2, 1) => self.try_matvec_t(other, false),
            (1, 2) if sb[0] == 1 => Ok(self.reshape(&[sa[0], 1]).matmul_t(other, false, false)),
            (2, r) if r >= 3 && sa[1] == sb[0] => {
                let rest: usize = sb[1..].iter().product();
                let mut out = vec![sa[0]];
                out.extend_from_slice(&sb[1..]);
                Ok(self.matmul_t(&other.reshape(&[sb[0], rest]), false, false).reshape(&out))
            }
            (3, 3) => self.try_bmm_t(other, false, false),
            _ => check().and_then(|_| self.try_matmul_t(other, false, false)),
        }
    }

    /// `op(a)·op(b)` for matrices, transposing by flag without copies.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// use flux_tensor::Tensor;
    /// let a = Var::from(Tensor::ones(&[3, 2]));
    /// assert_eq!(a.matmul_t(&a, true, false).shape(), &[2, 2]);
    /// ```
    pub fn matmul_t(&self, other: &Var, ta: bool, tb: bool) -> Var {
        self.try_matmul_t(other, ta, tb).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Fallible [`Var::matmul_t`].
    ///
    /// ```
    /// use flux_autograd::Var;
    /// use flux_tensor::Tensor;
    /// assert!(Var::from(Tensor::ones(&[3, 2])).try_matmul_t(&Var::from(Tensor::ones(&[3, 2])), false, false).is_err());
    /// ```
    pub fn try_matmul_t(&self, other: &Var, ta: bool, tb: bool) -> Result<Var, TensorError> {
        let (value, a, b) = crate::ops::arith::promoted(self, other, |a, b| a.try_matmul_t(b, ta, tb));
        Ok(Var::from_op(value?, Op::MatmulT(a, b, ta, tb)))
    }

    /// `op(A)·x` for a matrix `A` (transposed when `ta` is set) and a vector `x`: a vector,
    /// recorded as one op (the matrix-vector case of [`Var::matmul`]).
    ///
    /// ```
    /// use flux_autograd::Var;
    /// use flux_tensor::Tensor;
    /// let a = Var::from(Tensor::ones(&[3, 2]));
    /// assert_eq!(a.matvec_t(&Var::from(Tensor::ones(&[3])), true).to_vec(), vec![3.0, 3.0]);
    /// ```
    pub fn matvec_t(&self, x: &Var, ta: bool) -> Var {
        self.try_matvec_t(x, ta).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Fallible [`Var::matvec_t`]: the error names both shapes.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// use flux_tensor::Tensor;
    /// let e = Var::from(Tensor::ones(&[2, 3])).try_matvec_t(&Var::from(Tensor::ones(&[2])), false).unwrap_err();
    /// assert!(e.to_string().contains("[2, 3] and [2]"));
    /// ```
    pub fn try_matvec_t(&self, x: &Var, ta: bool) -> Result<Var, TensorError> {
        let (value, a, x) = crate::ops::arith::promoted(self, x, |a, x| a.try_matvec_t(x, ta));
        Ok(Var::from_op(value?, Op::MatVec(a, x, ta)))
    }

    /// `w·x .+ b` (a Dense layer's pre-activation) with the bias added inside the product:
    /// `w: [m, k]`, `x: [k]` or `[k, n...]`, `b: [m]`. The error names the shapes.
    ///
    /// ```
    /// use flux_autograd::{param, Var};
    /// use flux_tensor::Tensor;
    /// let w = param(Tensor::ones(&[2, 3]));
    /// let b = param(Tensor::ones(&[2]));
    /// let y = Var::affine(&w, &Var::from(Tensor::ones(&[3, 4])), &b).unwrap();
    /// assert_eq!(y.shape(), &[2, 4]);
    /// assert_eq!(y.to_vec(), vec![4.0; 8]);
    /// ```
    pub fn affine(w: &Var, x: &Var, b: &Var) -> Result<Var, TensorError> {
        let xs = x.shape();
        if xs.rank() == 0 {
            return Err(TensorError::ShapeMismatch {
                op: "affine",
                lhs: w.shape().to_vec(),
                rhs: xs.to_vec(),
                reason: "the input must have a feature dimension".into(),
            });
        }
        let cols: usize = xs[1..].iter().product();
        let flat = if xs.rank() == 2 { x.clone() } else { x.reshape(&[xs[0], cols]) };
        let dtype = w.dtype().promote(x.dtype()).promote(b.dtype());
        let (w, flat, b) = (w.to_dtype(dtype), flat.to_dtype(dtype), b.to_dtype(dtype));
        let value = Tensor::try_affine(&w.data(), &flat.data(), &b.data()).map_err(|e| match e {
            TensorError::ShapeMismatch { reason, .. } => TensorError::ShapeMismatch { op: "affine", lhs: w.shape().to_vec(), rhs: xs.to_vec(), reason },
            other => other,
        })?;
        let m = w.shape()[0];
        let y = Var::from_op(value, Op::Affine(w, flat, b));
        if xs.rank() == 2 {
            return Ok(y);
        }
        let mut out = vec![m];
        out.extend_from_slice(&xs[1..]);
        Ok(y.reshape(&out))
    }

    /// Batched `op(a_i)·op(b_i)` over the last dimension of rank-3 values.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// use flux_tensor::Tensor;
    /// let a = Var::from(Tensor::ones(&[2, 3, 4]));
    /// assert_eq!(a.bmm_t(&a, true, false).shape(), &[3, 3, 4]);
    /// ```
    pub fn bmm_t(&self, other: &Var, ta: bool, tb: bool) -> Var {
        self.try_bmm_t(other, ta, tb).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Fallible [`Var::bmm_t`].
    ///
    /// ```
    /// use flux_autograd::Var;
    /// use flux_tensor::Tensor;
    /// assert!(Var::from(Tensor::ones(&[2, 3])).try_bmm_t(&Var::from(Tensor::ones(&[3, 2])), false, false).is_err());
    /// ```
    pub fn try_bmm_t(&self, other: &Var, ta: bool, tb: bool) -> Result<Var, TensorError> {
        let (value, a, b) = crate::ops::arith::promoted(self, other, |a, b| a.try_bmm_t(b, ta, tb));
        Ok(Var::from_op(value?, Op::BmmT(a, b, ta, tb)))
    }
}

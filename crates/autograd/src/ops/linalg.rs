//! Linear algebra: `solve` (Julia's `A \ B`), `inv`, `det`, `logdet` as primitives over the LU
//! kernels of flux-tensor, and `dot`, `kron` composed from differentiable ops.
//!
//! The backward and tangent rules are written in `Var` operations (through [`Value::to_var`]),
//! so they record under a nested gradient and every op here is differentiable to any order:
//!
//! - `X = A \ B`: `B̄ = Aᵀ \ Ḡ`, `Ā = -B̄ Xᵀ`; tangent `Ẋ = A \ (Ḃ - Ȧ X)`.
//! - `Y = inv(A)`: `Ā = -Yᵀ Ḡ Yᵀ`; tangent `Ẏ = -Y Ȧ Y`.
//! - `d = det(A)`: `Ā = ḡ d A⁻ᵀ`; tangent `ḋ = d tr(A⁻¹ Ȧ)`.
//! - `l = logdet(A)`: `Ā = ḡ A⁻ᵀ`; tangent `l̇ = tr(A⁻¹ Ȧ)`.
//!
//! As in Julia (Zygote's rules use `inv(A)` too), the gradient of `det` at a singular matrix is
//! not defined here: the backward pass panics with the `solve` error naming the matrix.

use flux_tensor::TensorError;

use crate::op::Op;
use crate::value::Value;
use crate::var::Var;

/// `op(a) \ b` as Vars of any representation, where `op` transposes when `t` is set.
fn solve_v<V: Value>(a: &V, b: &V, t: bool) -> V {
    V::from_var(a.to_var().solve_flag(&b.to_var(), t))
}

/// `A⁻ᵀ` of a square matrix, as a value of the rule's representation (the transpose of
/// `inv`, whose many-right-hand-side solve is blocked over the GEMM, and whose own rule is two
/// products).
fn inv_t<V: Value>(a: &V) -> V {
    V::from_var(a.to_var().inv().transpose())
}

/// A vector `[n]` as the column `[n, 1]`; a matrix unchanged.
fn as_matrix<V: Value>(x: &V) -> V {
    let s = x.shape();
    if s.rank() == 1 {
        x.reshape(&[s[0], 1])
    } else {
        x.clone()
    }
}

/// Gradients of `a` and `b` for `x = op(a) \ b`.
pub(crate) fn solve_backward<V: Value>(a: &V, x: &V, t: bool, g: &V, needs: &[bool]) -> [Option<V>; 2] {
    let gb = solve_v(a, g, !t);
    let ga = needs[0].then(|| {
        let (gbm, xm) = (as_matrix(&gb), as_matrix(x));
        // d op(A) = -B̄ Xᵀ; for op(A) = Aᵀ, dA = -X B̄ᵀ
        let outer = if t { xm.matmul_t(&gbm, false, true) } else { gbm.matmul_t(&xm, false, true) };
        outer.neg()
    });
    [ga, needs[1].then_some(gb)]
}

/// Tangent of `x = op(a) \ b`: `op(a) \ (ḃ - op(ȧ) x)`.
pub(crate) fn solve_tangent(a: &Var, out: &Var, t: bool, ta: Option<&Var>, tb: Option<&Var>) -> Option<Var> {
    let shape = out.shape();
    let from_a = ta.map(|ta| ta.matmul_t(&as_matrix(out), t, false).reshape(&shape));
    let rhs = match (tb, from_a) {
        (Some(tb), Some(fa)) => tb - &fa,
        (Some(tb), None) => tb.clone(),
        (None, Some(fa)) => -&fa,
        (None, None) => return None,
    };
    Some(a.solve_flag(&rhs, t))
}

/// Gradient of `a` for `y = inv(a)`: `-Yᵀ Ḡ Yᵀ`.
pub(crate) fn inv_backward<V: Value>(y: &V, g: &V) -> V {
    y.matmul_t(g, true, false).matmul_t(y, false, true).neg()
}

/// Tangent of `y = inv(a)`: `-Y Ȧ Y`.
pub(crate) fn inv_tangent(out: &Var, t: &Var) -> Var {
    -&out.matmul(t).matmul(out)
}

/// Gradient of `a` for `d = det(a)`: `ḡ d A⁻ᵀ`.
pub(crate) fn det_backward<V: Value>(a: &V, d: &V, g: &V) -> V {
    inv_t(a).mul(&g.mul(d))
}

/// Gradient of `a` for `l = logdet(a)`: `ḡ A⁻ᵀ`.
pub(crate) fn logdet_backward<V: Value>(a: &V, g: &V) -> V {
    inv_t(a).mul(g)
}

/// `tr(A⁻¹ Ȧ) = sum(A⁻ᵀ .* Ȧ)`, the tangent of `logdet` (times `d` for `det`).
pub(crate) fn trace_inv_times(a: &Var, t: &Var) -> Var {
    (&inv_t(a) * t).sum()
}

impl Var {
    /// `op(self) \ b` with `op` a transpose when `t` is set: the primitive behind
    /// [`Var::solve`] and the rules above.
    pub(crate) fn solve_flag(&self, b: &Var, t: bool) -> Var {
        self.try_solve_flag(b, t).unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_solve_flag(&self, b: &Var, t: bool) -> Result<Var, TensorError> {
        let (a, bv) = (self.data(), b.data());
        let x = if t { a.try_solve_t(&bv)? } else { a.try_solve(&bv)? };
        Ok(Var::from_op(x, Op::Solve(self.clone(), b.clone(), t)))
    }

    /// Fallible [`Var::solve`]: an error naming `solve` and both shapes when `self` is not
    /// square or `b` is not `[n]` or `[n, m]`, or naming the matrix when it is singular.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// use flux_tensor::Tensor;
    /// let a = Var::from(Tensor::ones(&[2, 2]));
    /// let err = a.try_solve(&Var::from(Tensor::ones(&[2]))).unwrap_err();
    /// assert!(err.to_string().starts_with("solve: matrix of shape [2, 2] is singular"));
    /// ```
    pub fn try_solve(&self, b: &Var) -> Result<Var, TensorError> {
        self.try_solve_flag(b, false)
    }

    /// `A \ b` (Julia's left division): the `x` with `A·x = b` for a square `A` and `b` of
    /// shape `[n]` or `[n, m]`, by LU with partial pivoting; differentiable in both (to any
    /// order, and in forward mode).
    ///
    /// ```
    /// use flux_autograd::{gradient, Var};
    /// use flux_tensor::Tensor;
    /// let a = Var::from(Tensor::from_vec(vec![2.0, 0.0, 1.0, 4.0], &[2, 2])); // [2 1; 0 4]
    /// let b = Var::from(Tensor::from_vec(vec![3.0, 4.0], &[2]));
    /// assert_eq!(a.solve(&b).to_vec(), vec![1.0, 1.0]);
    /// // d(sum(A \ b))/db = A⁻ᵀ·1
    /// let g = gradient(|b| a.solve(b).sum(), &b);
    /// assert_eq!(g.to_vec(), vec![0.5, 0.125]);
    /// ```
    pub fn solve(&self, b: &Var) -> Var {
        self.try_solve(b).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Fallible [`Var::inv`]: an error naming `inv` for a non-square or singular matrix.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// assert!(Var::from(flux_tensor::Tensor::zeros(&[2, 2])).try_inv().is_err());
    /// ```
    pub fn try_inv(&self) -> Result<Var, TensorError> {
        let y = self.data().try_inv()?;
        Ok(Var::from_op(y, Op::Inv(self.clone())))
    }

    /// The inverse of a square matrix (Julia's `inv`).
    ///
    /// ```
    /// use flux_autograd::Var;
    /// let a = Var::from(flux_tensor::Tensor::from_vec(vec![2.0, 0.0, 0.0, 4.0], &[2, 2]));
    /// assert_eq!(a.inv().to_vec(), vec![0.5, 0.0, 0.0, 0.25]);
    /// ```
    pub fn inv(&self) -> Var {
        self.try_inv().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Fallible [`Var::det`]: an error naming `det` for a non-square matrix.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// assert!(Var::from(flux_tensor::Tensor::ones(&[2, 3])).try_det().is_err());
    /// ```
    pub fn try_det(&self) -> Result<Var, TensorError> {
        let d = self.data().try_det()?;
        Ok(Var::from_op(d, Op::Det(self.clone())))
    }

    /// The determinant of a square matrix (Julia's `det`), 0-d. Its gradient is
    /// `det(A)·inv(A)ᵀ`, so it is not defined at a singular matrix (the backward pass panics
    /// naming the matrix, as Julia's rule throws `SingularException`).
    ///
    /// ```
    /// use flux_autograd::{gradient, Var};
    /// let a = Var::from(flux_tensor::Tensor::from_vec(vec![1.0, 3.0, 2.0, 4.0], &[2, 2])); // [1 2; 3 4]
    /// assert!((a.det().item() + 2.0).abs() < 1e-12);
    /// let g = gradient(|a| a.det(), &a); // the cofactor matrix [4 -3; -2 1]
    /// assert!(g.to_vec().iter().zip([4.0, -2.0, -3.0, 1.0]).all(|(x, y)| (x - y).abs() < 1e-12));
    /// ```
    pub fn det(&self) -> Var {
        self.try_det().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Fallible [`Var::logdet`]: an error naming `logdet` for a non-square matrix or a negative
    /// determinant (Julia's `logdet` throws a `DomainError` there).
    ///
    /// ```
    /// use flux_autograd::Var;
    /// let a = Var::from(flux_tensor::Tensor::from_vec(vec![-1.0, 0.0, 0.0, 1.0], &[2, 2]));
    /// assert!(a.try_logdet().unwrap_err().to_string().contains("negative determinant"));
    /// ```
    pub fn try_logdet(&self) -> Result<Var, TensorError> {
        let l = self.data().try_logdet()?;
        Ok(Var::from_op(l, Op::LogDet(self.clone())))
    }

    /// `log(det(A))` (Julia's `logdet`), 0-d, from the LU factors' logarithms (no overflow for
    /// large matrices); gradient `inv(A)ᵀ`. A negative determinant is an error, as in Julia
    /// (this form panics; see [`Var::try_logdet`]); a singular matrix gives `-Inf`.
    ///
    /// ```
    /// use flux_autograd::{gradient, Var};
    /// let a = Var::from(flux_tensor::Tensor::from_vec(vec![2.0, 0.0, 0.0, 4.0], &[2, 2]));
    /// assert!((a.logdet().item() - 8f64.ln()).abs() < 1e-12);
    /// assert_eq!(gradient(|a| a.logdet(), &a).to_vec(), vec![0.5, 0.0, 0.0, 0.25]);
    /// ```
    pub fn logdet(&self) -> Var {
        self.try_logdet().unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Fallible [`dot`]: an error naming `dot` and both shapes when the element counts differ.
///
/// ```
/// use flux_autograd::{try_dot, Var};
/// let e = try_dot(&Var::from(flux_tensor::Tensor::ones(&[2])), &Var::from(flux_tensor::Tensor::ones(&[3])));
/// assert_eq!(e.unwrap_err().to_string(), "dot: incompatible shapes [2] and [3]: the two arrays must have the same length");
/// ```
pub fn try_dot(a: &Var, b: &Var) -> Result<Var, TensorError> {
    let (n, m) = (a.numel(), b.numel());
    if n != m {
        return Err(TensorError::ShapeMismatch {
            op: "dot",
            lhs: a.shape().to_vec(),
            rhs: b.shape().to_vec(),
            reason: "the two arrays must have the same length".into(),
        });
    }
    Ok((&a.reshape(&[n]) * &b.reshape(&[n])).sum())
}

/// Julia's `dot(a, b)`: the sum of the elementwise products of two arrays of the same length
/// (any shapes), 0-d.
///
/// ```
/// use flux_autograd::{dot, Var};
/// let a = Var::from(flux_tensor::Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3]));
/// let b = Var::from(flux_tensor::Tensor::from_vec(vec![4.0, 5.0, 6.0], &[3]));
/// assert_eq!(dot(&a, &b).item(), 32.0);
/// ```
pub fn dot(a: &Var, b: &Var) -> Var {
    try_dot(a, b).unwrap_or_else(|e| panic!("{e}"))
}

/// Fallible [`kron`]: an error naming `kron` and both shapes when an operand has rank above 2.
///
/// ```
/// use flux_autograd::{try_kron, Var};
/// assert!(try_kron(&Var::from(flux_tensor::Tensor::ones(&[2, 2, 2])), &Var::from(flux_tensor::Tensor::ones(&[2]))).is_err());
/// ```
pub fn try_kron(a: &Var, b: &Var) -> Result<Var, TensorError> {
    let dims2 = |x: &Var| match x.shape().dims() {
        [] => Some((1, 1)),
        [m] => Some((*m, 1)),
        [m, n] => Some((*m, *n)),
        _ => None,
    };
    let ((m, n), (p, q)) = match (dims2(a), dims2(b)) {
        (Some(sa), Some(sb)) => (sa, sb),
        _ => {
            return Err(TensorError::ShapeMismatch {
                op: "kron",
                lhs: a.shape().to_vec(),
                rhs: b.shape().to_vec(),
                reason: "both operands must be vectors or matrices".into(),
            })
        }
    };
    // column-major: K[k + p·i, l + q·j] = A[i, j]·B[k, l], the [p, m, q, n] broadcast product
    let k = &a.reshape(&[1, m, 1, n]) * &b.reshape(&[p, 1, q, 1]);
    Ok(if a.rank() <= 1 && b.rank() <= 1 && (a.rank() == 1 || b.rank() == 1) {
        k.reshape(&[p * m])
    } else if a.rank() == 0 && b.rank() == 0 {
        k.reshape(&[])
    } else {
        k.reshape(&[p * m, q * n])
    })
}

/// Julia's Kronecker product `kron(a, b)` of vectors or matrices: the block matrix whose block
/// `(i, j)` is `a[i, j]·b` (a vector when both are vectors).
///
/// ```
/// use flux_autograd::{kron, Var};
/// use flux_tensor::Tensor;
/// let a = Var::from(Tensor::from_vec(vec![1.0, 2.0], &[2]));
/// let b = Var::from(Tensor::from_vec(vec![1.0, 10.0, 100.0], &[3]));
/// assert_eq!(kron(&a, &b).to_vec(), vec![1.0, 10.0, 100.0, 2.0, 20.0, 200.0]);
/// let i = Var::from(Tensor::from_vec(vec![1.0, 0.0, 0.0, 1.0], &[2, 2]));
/// assert_eq!(kron(&i, &Var::from(Tensor::ones(&[1, 2]))).shape(), &[2, 4]);
/// ```
pub fn kron(a: &Var, b: &Var) -> Var {
    try_kron(a, b).unwrap_or_else(|e| panic!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{gradient, jvp};
    use flux_tensor::Tensor;

    fn m(v: Vec<f64>, s: &[usize]) -> Var {
        Var::from(Tensor::from_vec(v, s))
    }

    fn close(a: &[f64], b: &[f64]) {
        assert_eq!(a.len(), b.len());
        assert!(a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-10), "{a:?} vs {b:?}");
    }

    #[test]
    fn solve_gradients_by_hand() {
        // A = [2 1; 0 4], b = [3, 4], x = [1, 1]; loss = sum(x): b̄ = A⁻ᵀ 1 = [0.5, 0.125]
        let a = m(vec![2.0, 0.0, 1.0, 4.0], &[2, 2]);
        let b = m(vec![3.0, 4.0], &[2]);
        let ga = gradient(|a| a.solve(&b).sum(), &a);
        // Ā = -b̄ xᵀ = -[0.5 0.5; 0.125 0.125]
        close(&ga.to_vec(), &[-0.5, -0.125, -0.5, -0.125]);
        // forward mode agrees with the gradient along a direction
        let dir = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]);
        let (_, t) = jvp(|a| a.solve(&b).sum(), &a, &Var::from(dir.clone()));
        close(&[t.item()], &[(ga.data() * &dir).sum().item()]);
    }

    #[test]
    fn inv_det_logdet_values_and_gradients() {
        let a = m(vec![4.0, 2.0, 7.0, 6.0], &[2, 2]); // [4 7; 2 6], det 10
        close(&[a.det().item()], &[10.0]);
        close(&a.inv().to_vec(), &[0.6, -0.2, -0.7, 0.4]);
        close(&[a.logdet().item()], &[10f64.ln()]);
        // d logdet = inv(A)ᵀ; d det = det·inv(A)ᵀ
        close(&gradient(|a| a.logdet(), &a).to_vec(), &[0.6, -0.7, -0.2, 0.4]);
        close(&gradient(|a| a.det(), &a).to_vec(), &[6.0, -7.0, -2.0, 4.0]);
        // d sum(inv(A)) = -inv(A)ᵀ 1 1ᵀ inv(A)ᵀ
        let yt = Tensor::from_vec(vec![0.6, -0.7, -0.2, 0.4], &[2, 2]);
        let want = -(&yt.matmul(&Tensor::ones(&[2, 2])).matmul(&yt));
        close(&gradient(|a| a.inv().sum(), &a).to_vec(), &want.to_vec());
    }

    #[test]
    fn errors_name_the_op() {
        let neg = m(vec![0.0, 1.0, 1.0, 0.0], &[2, 2]);
        assert!(neg.try_logdet().unwrap_err().to_string().starts_with("logdet: matrix of shape [2, 2] has a negative determinant"));
        assert!(m(vec![1.0; 6], &[2, 3]).try_inv().unwrap_err().to_string().starts_with("inv: invalid shape [2, 3]"));
        assert!(neg.try_solve(&m(vec![1.0; 3], &[3])).unwrap_err().to_string().starts_with("solve: incompatible shapes [2, 2] and [3]"));
    }

    #[test]
    fn kron_matches_julia() {
        // kron([1 2; 3 4], [0 5; 6 7]) in Julia
        let a = m(vec![1.0, 3.0, 2.0, 4.0], &[2, 2]);
        let b = m(vec![0.0, 6.0, 5.0, 7.0], &[2, 2]);
        let k = kron(&a, &b);
        assert_eq!(k.shape(), &[4, 4]);
        // columns of [0 5 0 10; 6 7 12 14; 0 15 0 20; 18 21 24 28]
        let want = [0.0, 6.0, 0.0, 18.0, 5.0, 7.0, 15.0, 21.0, 0.0, 12.0, 0.0, 24.0, 10.0, 14.0, 20.0, 28.0];
        close(&k.to_vec(), &want);
        // vector ⊗ matrix is a matrix
        assert_eq!(kron(&m(vec![1.0, 2.0], &[2]), &b).shape(), &[4, 2]);
        close(&[dot(&a, &b).item()], &[0.0 + 18.0 + 10.0 + 28.0]);
    }
}

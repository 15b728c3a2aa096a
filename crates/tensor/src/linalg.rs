//! Dense linear algebra on square matrices through an LU factorisation with partial pivoting
//! (`P·A = L·U`, LAPACK's `getrf` in column-major order): [`Tensor::solve`] (Julia's `A \ B`),
//! [`Tensor::solve_t`] (`Aᵀ \ B`), [`Tensor::inv`], [`Tensor::det`] and [`Tensor::logdet`].
//!
//! The factorisation is right-looking with every inner loop running down a contiguous column
//! (the trailing update is a column AXPY), and the triangular solves work column by column of
//! the right-hand side the same way, so no loop strides across memory.

use crate::dtype::Element;
use crate::error::{Result, TensorError};
use crate::shape::Shape;
use crate::tensor::{dispatch, Tensor};
use crate::GemmElement;

/// An LU factorisation of an `n × n` matrix: `lu` holds `L` (unit diagonal, below) and `U` (on
/// and above the diagonal), column-major; row `i` of `P·A` is row `perm[i]` of `A`. `singular`
/// is set when a pivot column was entirely zero (the factorisation carries on, as LAPACK's
/// `getrf` does, so the determinant comes out as 0).
struct Lu<T> {
    n: usize,
    lu: Vec<T>,
    perm: Vec<usize>,
    /// Number of row swaps made (the determinant's sign is `(-1)^swaps`).
    swaps: usize,
    singular: bool,
}

fn abs<T: Element>(x: T) -> T {
    if x < T::ZERO {
        -x
    } else {
        x
    }
}

/// Columns per panel of the blocked factorisation; below twice this the unblocked loop runs.
const PANEL: usize = 48;

fn lu<T: GemmElement>(a: &[T], n: usize) -> Lu<T> {
    let mut f = Lu { n, lu: a.to_vec(), perm: (0..n).collect(), swaps: 0, singular: false };
    if n < 2 * PANEL {
        f.factor_panel(0, n);
        return f;
    }
    // blocked right-looking LU (LAPACK's getrf): factor a panel of columns unblocked, solve
    // for the block row of U to its right, then update the trailing matrix with one GEMM
    let (mut l21, mut u12, mut prod) = (Vec::new(), Vec::new(), Vec::new());
    let mut k0 = 0;
    while k0 < n {
        let b = PANEL.min(n - k0);
        f.factor_panel(k0, k0 + b);
        let rest = n - k0 - b;
        if rest == 0 {
            break;
        }
        let lu = &mut f.lu;
        // U12 = L11⁻¹ A12, column by column (L11 unit lower triangular, b × b)
        for j in k0 + b..n {
            let (left, right) = lu.split_at_mut(j * n);
            let col = &mut right[k0..k0 + b];
            for k in 0..b {
                let ukj = col[k];
                if ukj != T::ZERO {
                    let l = &left[(k0 + k) * n + k0 + k + 1..(k0 + k) * n + k0 + b];
                    for (x, &lik) in col[k + 1..].iter_mut().zip(l) {
                        *x = *x - lik * ukj;
                    }
                }
            }
        }
        // A22 -= L21 · U12, the operands packed contiguous for the GEMM
        l21.clear();
        for c in k0..k0 + b {
            l21.extend_from_slice(&lu[c * n + k0 + b..(c + 1) * n]);
        }
        u12.clear();
        for j in k0 + b..n {
            u12.extend_from_slice(&lu[j * n + k0..j * n + k0 + b]);
        }
        prod.resize(rest * rest, T::ZERO);
        T::gemm(rest, rest, b, &l21, false, &u12, false, &mut prod, false);
        for (j, p) in prod.chunks_exact(rest).enumerate() {
            let c = (k0 + b + j) * n;
            for (x, &y) in lu[c + k0 + b..c + n].iter_mut().zip(p) {
                *x = *x - y;
            }
        }
        k0 += b;
    }
    f
}

impl<T: Element> Lu<T> {
    /// Unblocked LU of columns `c0..c1` (rows `c0..n`), the trailing update confined to those
    /// columns; row swaps are applied across the whole matrix. With `0..n` it is the whole
    /// factorisation.
    fn factor_panel(&mut self, c0: usize, c1: usize) {
        let n = self.n;
        let lu = &mut self.lu;
        for k in c0..c1 {
            // pivot: the largest magnitude in column k at or below the diagonal
            let col = k * n;
            let mut p = k;
            let mut best = abs(lu[col + k]);
            for i in k + 1..n {
                let v = abs(lu[col + i]);
                if v > best {
                    best = v;
                    p = i;
                }
            }
            if best == T::ZERO {
                self.singular = true;
                continue;
            }
            if p != k {
                for j in 0..n {
                    lu.swap(j * n + k, j * n + p);
                }
                self.perm.swap(k, p);
                self.swaps += 1;
            }
            let inv_pivot = T::ONE / lu[col + k];
            for i in k + 1..n {
                lu[col + i] = lu[col + i] * inv_pivot;
            }
            // update of the panel's later columns: a[k+1.., j] -= l[k+1.., k] * a[k, j]
            let (left, right) = lu.split_at_mut((k + 1) * n);
            let l = &left[col + k + 1..col + n];
            for j in k + 1..c1 {
                let cj = &mut right[(j - k - 1) * n..(j - k) * n];
                let ukj = cj[k];
                if ukj != T::ZERO {
                    for (x, &lik) in cj[k + 1..].iter_mut().zip(l) {
                        *x = *x - lik * ukj;
                    }
                }
            }
        }
    }
}

impl<T: GemmElement> Lu<T> {
    /// `A \ B` for many right-hand sides at once (an inverse): the triangular solves blocked by
    /// panels of rows, each panel's effect on the rows after it (forward) or before it (back)
    /// applied with one GEMM, so the factors are read once per panel, not once per column.
    fn solve_many(&self, b: &[T], m: usize) -> Vec<T> {
        let n = self.n;
        if n < 2 * PANEL || m < 8 {
            return self.solve(b, m);
        }
        let mut x = vec![T::ZERO; n * m];
        for c in 0..m {
            for (i, &p) in self.perm.iter().enumerate() {
                x[c * n + i] = b[c * n + p];
            }
        }
        let (mut fac, mut top, mut prod) = (Vec::new(), Vec::new(), Vec::new());
        let panels: Vec<usize> = (0..n).step_by(PANEL).collect();
        // L Y = P B: solve a panel's rows, then remove them from the rows below
        for &k0 in &panels {
            let bs = PANEL.min(n - k0);
            for c in 0..m {
                let xc = &mut x[c * n..(c + 1) * n];
                for k in k0..k0 + bs {
                    let yk = xc[k];
                    if yk != T::ZERO {
                        let l = &self.lu[k * n + k + 1..k * n + k0 + bs];
                        for (v, &lik) in xc[k + 1..k0 + bs].iter_mut().zip(l) {
                            *v = *v - lik * yk;
                        }
                    }
                }
            }
            let below = n - k0 - bs;
            if below > 0 {
                fac.clear();
                for k in k0..k0 + bs {
                    fac.extend_from_slice(&self.lu[k * n + k0 + bs..(k + 1) * n]);
                }
                self.update(&mut x, &fac, &mut top, &mut prod, (k0, bs), (k0 + bs, below), m);
            }
        }
        // U X = Y: the panels from the last, each removed from the rows above
        for &k0 in panels.iter().rev() {
            let bs = PANEL.min(n - k0);
            for c in 0..m {
                let xc = &mut x[c * n..(c + 1) * n];
                for k in (k0..k0 + bs).rev() {
                    let xk = xc[k] / self.lu[k * n + k];
                    xc[k] = xk;
                    if xk != T::ZERO {
                        let u = &self.lu[k * n + k0..k * n + k];
                        for (v, &uik) in xc[k0..k].iter_mut().zip(u) {
                            *v = *v - uik * xk;
                        }
                    }
                }
            }
            if k0 > 0 {
                fac.clear();
                for k in k0..k0 + bs {
                    fac.extend_from_slice(&self.lu[k * n..k * n + k0]);
                }
                self.update(&mut x, &fac, &mut top, &mut prod, (k0, bs), (0, k0), m);
            }
        }
        x
    }

    /// `x[rows] -= fac · x[src]` over all `m` columns, where `src = (start, len)` and
    /// `rows = (start, len)` are row ranges and `fac` is the packed `[rows.len, src.len]` block
    /// of the factor.
    #[allow(clippy::too_many_arguments)]
    fn update(&self, x: &mut [T], fac: &[T], top: &mut Vec<T>, prod: &mut Vec<T>, src: (usize, usize), rows: (usize, usize), m: usize) {
        let n = self.n;
        top.clear();
        for c in 0..m {
            top.extend_from_slice(&x[c * n + src.0..c * n + src.0 + src.1]);
        }
        prod.resize(rows.1 * m, T::ZERO);
        T::gemm(rows.1, m, src.1, fac, false, top, false, prod, false);
        for (c, p) in prod.chunks_exact(rows.1).enumerate() {
            for (v, &y) in x[c * n + rows.0..c * n + rows.0 + rows.1].iter_mut().zip(p) {
                *v = *v - y;
            }
        }
    }
}

impl<T: Element> Lu<T> {
    /// `A \ B` for `B` with `m` columns (column-major `n × m`).
    fn solve(&self, b: &[T], m: usize) -> Vec<T> {
        let n = self.n;
        let mut x = vec![T::ZERO; n * m];
        for c in 0..m {
            let bc = &b[c * n..(c + 1) * n];
            let xc = &mut x[c * n..(c + 1) * n];
            for (i, &p) in self.perm.iter().enumerate() {
                xc[i] = bc[p];
            }
            // L y = P b (unit lower), column-oriented
            for k in 0..n {
                let yk = xc[k];
                if yk != T::ZERO {
                    let l = &self.lu[k * n + k + 1..(k + 1) * n];
                    for (x, &lik) in xc[k + 1..].iter_mut().zip(l) {
                        *x = *x - lik * yk;
                    }
                }
            }
            // U x = y, column-oriented
            for k in (0..n).rev() {
                let xk = xc[k] / self.lu[k * n + k];
                xc[k] = xk;
                if xk != T::ZERO {
                    let u = &self.lu[k * n..k * n + k];
                    for (x, &uik) in xc[..k].iter_mut().zip(u) {
                        *x = *x - uik * xk;
                    }
                }
            }
        }
        x
    }

    /// `Aᵀ \ B`: with `A = Pᵀ L U`, solve `Uᵀ y = B`, `Lᵀ z = y`, then `x = Pᵀ z`. Each step
    /// is a dot product down a contiguous column of the factors.
    fn solve_t(&self, b: &[T], m: usize) -> Vec<T> {
        let n = self.n;
        let mut x = vec![T::ZERO; n * m];
        let mut z = vec![T::ZERO; n];
        for c in 0..m {
            z.copy_from_slice(&b[c * n..(c + 1) * n]);
            for k in 0..n {
                let u = &self.lu[k * n..k * n + k];
                let s: T = u.iter().zip(&z[..k]).map(|(&a, &b)| a * b).sum();
                z[k] = (z[k] - s) / self.lu[k * n + k];
            }
            for k in (0..n).rev() {
                let l = &self.lu[k * n + k + 1..(k + 1) * n];
                let s: T = l.iter().zip(&z[k + 1..]).map(|(&a, &b)| a * b).sum();
                z[k] = z[k] - s;
            }
            let xc = &mut x[c * n..(c + 1) * n];
            for (i, &p) in self.perm.iter().enumerate() {
                xc[p] = z[i];
            }
        }
        x
    }

    fn det(&self) -> T {
        if self.singular {
            return T::ZERO;
        }
        let mut d = if self.swaps.is_multiple_of(2) { T::ONE } else { -T::ONE };
        for k in 0..self.n {
            d = d * self.lu[k * self.n + k];
        }
        d
    }

    /// `(log|det|, sign)`, summing logarithms so large matrices do not overflow.
    fn logabsdet(&self) -> (T, T) {
        if self.singular {
            return (T::neg_infinity(), T::ZERO);
        }
        let mut sign = if self.swaps.is_multiple_of(2) { T::ONE } else { -T::ONE };
        let mut s = T::ZERO;
        for k in 0..self.n {
            let u = self.lu[k * self.n + k];
            if u < T::ZERO {
                sign = -sign;
            }
            s += abs(u).ln();
        }
        (s, sign)
    }
}

impl Tensor {
    fn square(&self, op: &'static str) -> Result<usize> {
        match self.shape().dims() {
            [r, c] if r == c => Ok(*r),
            d => Err(TensorError::InvalidShape { op, shape: d.to_vec(), reason: "expected a square matrix [n, n]".into() }),
        }
    }

    /// Columns of a right-hand side for an `n × n` system: `[n]` or `[n, m]`.
    fn rhs_cols(&self, op: &'static str, a: &Tensor, n: usize) -> Result<usize> {
        match self.shape().dims() {
            [r] if *r == n => Ok(1),
            [r, m] if *r == n => Ok(*m),
            d => Err(TensorError::ShapeMismatch {
                op,
                lhs: a.shape().to_vec(),
                rhs: d.to_vec(),
                reason: format!("the right-hand side must be [{n}] or [{n}, m]"),
            }),
        }
    }

    fn solve_impl(&self, b: &Tensor, op: &'static str, transposed: bool) -> Result<Tensor> {
        let n = self.square(op)?;
        let m = b.rhs_cols(op, self, n)?;
        let dtype = self.dtype().promote(b.dtype());
        let (a, b) = (self.to_dtype(dtype), b.to_dtype(dtype));
        let shape = b.shape().clone();
        dispatch!(a, |av: T| {
            let f = lu(av, n);
            if f.singular {
                return Err(singular(op, self));
            }
            let bv: Vec<T> = b.elements_as::<T>();
            let x = if transposed { f.solve_t(&bv, m) } else { f.solve_many(&bv, m) };
            Ok(Tensor::from_typed(x, shape))
        })
    }

    /// Fallible [`Tensor::solve`]: an error naming `solve` and the shapes when `self` is not
    /// square, `b` is not `[n]` or `[n, m]`, or `self` is singular.
    ///
    /// ```
    /// use flux_tensor::Tensor;
    /// let a = Tensor::from_vec(vec![1.0, 2.0, 2.0, 4.0], &[2, 2]);
    /// let err = a.try_solve(&Tensor::ones(&[2])).unwrap_err();
    /// assert!(err.to_string().contains("singular"));
    /// ```
    pub fn try_solve(&self, b: &Tensor) -> Result<Tensor> {
        self.solve_impl(b, "solve", false)
    }

    /// `A \ b` (Julia's left division): the `x` with `A·x = b`, by an LU factorisation with
    /// partial pivoting. `b` is a vector `[n]` or a matrix `[n, m]` (each column solved).
    ///
    /// ```
    /// use flux_tensor::Tensor;
    /// let a = Tensor::from_vec(vec![2.0, 0.0, 1.0, 4.0], &[2, 2]); // [2 1; 0 4]
    /// let x = a.solve(&Tensor::from_vec(vec![3.0, 4.0], &[2]));
    /// assert_eq!(x.to_vec(), vec![1.0, 1.0]);
    /// ```
    pub fn solve(&self, b: &Tensor) -> Tensor {
        self.try_solve(b).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Fallible [`Tensor::solve_t`].
    ///
    /// ```
    /// assert!(flux_tensor::Tensor::ones(&[2, 3]).try_solve_t(&flux_tensor::Tensor::ones(&[2])).is_err());
    /// ```
    pub fn try_solve_t(&self, b: &Tensor) -> Result<Tensor> {
        self.solve_impl(b, "solve_t", true)
    }

    /// `Aᵀ \ b` without forming the transpose (the adjoint of [`Tensor::solve`]).
    ///
    /// ```
    /// use flux_tensor::Tensor;
    /// let a = Tensor::from_vec(vec![2.0, 0.0, 1.0, 4.0], &[2, 2]); // [2 1; 0 4], Aᵀ = [2 0; 1 4]
    /// let x = a.solve_t(&Tensor::from_vec(vec![2.0, 5.0], &[2]));
    /// assert_eq!(x.to_vec(), vec![1.0, 1.0]);
    /// ```
    pub fn solve_t(&self, b: &Tensor) -> Tensor {
        self.try_solve_t(b).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Fallible [`Tensor::inv`]: an error naming `inv` for a non-square or singular matrix.
    ///
    /// ```
    /// use flux_tensor::Tensor;
    /// assert!(Tensor::zeros(&[2, 2]).try_inv().unwrap_err().to_string().contains("inv: matrix of shape [2, 2] is singular"));
    /// ```
    pub fn try_inv(&self) -> Result<Tensor> {
        let n = self.square("inv")?;
        let eye = Tensor::eye_of(n, self.dtype());
        self.solve_impl(&eye, "inv", false)
    }

    /// The inverse of a square matrix (Julia's `inv`), by LU with partial pivoting.
    ///
    /// ```
    /// use flux_tensor::Tensor;
    /// let a = Tensor::from_vec(vec![2.0, 0.0, 0.0, 4.0], &[2, 2]);
    /// assert_eq!(a.inv().to_vec(), vec![0.5, 0.0, 0.0, 0.25]);
    /// ```
    pub fn inv(&self) -> Tensor {
        self.try_inv().unwrap_or_else(|e| panic!("{e}"))
    }

    /// The `n × n` identity matrix of an element type.
    ///
    /// ```
    /// use flux_tensor::{DType, Tensor};
    /// assert_eq!(Tensor::eye_of(2, DType::F32).to_vec(), vec![1.0, 0.0, 0.0, 1.0]);
    /// ```
    pub fn eye_of(n: usize, dtype: crate::DType) -> Tensor {
        let mut v = vec![0.0; n * n];
        for i in 0..n {
            v[i * n + i] = 1.0;
        }
        Tensor::from_vec(v, &[n, n]).to_dtype(dtype)
    }

    /// Fallible [`Tensor::det`]: an error naming `det` for a non-square matrix.
    ///
    /// ```
    /// assert!(flux_tensor::Tensor::ones(&[2, 3]).try_det().is_err());
    /// ```
    pub fn try_det(&self) -> Result<Tensor> {
        let n = self.square("det")?;
        Ok(dispatch!(self, |v: T| Tensor::from_typed(vec![lu(v, n).det()], Shape::scalar())))
    }

    /// The determinant (Julia's `det`), 0-d: the product of `U`'s diagonal and the sign of
    /// the row permutation. A singular matrix gives 0.
    ///
    /// ```
    /// use flux_tensor::Tensor;
    /// let a = Tensor::from_vec(vec![0.0, 1.0, 1.0, 0.0], &[2, 2]);
    /// assert_eq!(a.det().item(), -1.0);
    /// ```
    pub fn det(&self) -> Tensor {
        self.try_det().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Fallible [`Tensor::logdet`]: an error naming `logdet` for a non-square matrix or a
    /// negative determinant (where Julia's `logdet` throws a `DomainError`).
    ///
    /// ```
    /// use flux_tensor::Tensor;
    /// let a = Tensor::from_vec(vec![0.0, 1.0, 1.0, 0.0], &[2, 2]);
    /// assert!(a.try_logdet().unwrap_err().to_string().contains("negative determinant"));
    /// ```
    pub fn try_logdet(&self) -> Result<Tensor> {
        let n = self.square("logdet")?;
        let (l, s) = self.logabsdet_f64(n);
        if s < 0.0 {
            return Err(TensorError::InvalidValue {
                op: "logdet",
                reason: format!(
                    "matrix of shape {:?} has a negative determinant (log|det| = {l}); Julia's logdet throws a DomainError here",
                    self.shape().dims()
                ),
            });
        }
        // a singular matrix (sign 0) gives -Inf, as Julia's logdet does
        Ok(Tensor::scalar_of(l, self.dtype()))
    }

    /// `log(det(A))` (Julia's `logdet`), 0-d, computed from the LU factors' logarithms so a
    /// large matrix does not overflow. Panics on a negative determinant (see
    /// [`Tensor::try_logdet`]); a singular matrix gives `-Inf`.
    ///
    /// ```
    /// use flux_tensor::Tensor;
    /// let a = Tensor::from_vec(vec![2.0, 0.0, 0.0, 3.0], &[2, 2]);
    /// assert!((a.logdet().item() - 6f64.ln()).abs() < 1e-12);
    /// ```
    pub fn logdet(&self) -> Tensor {
        self.try_logdet().unwrap_or_else(|e| panic!("{e}"))
    }

    fn logabsdet_f64(&self, n: usize) -> (f64, f64) {
        dispatch!(self, |v: T| {
            let (l, s) = lu(v, n).logabsdet();
            (l.to_f64(), s.to_f64())
        })
    }

    fn elements_as<T: Element>(&self) -> Vec<T> {
        dispatch!(self, |v: U| v.iter().map(|x| T::from_f64(x.to_f64())).collect())
    }
}

fn singular(op: &'static str, a: &Tensor) -> TensorError {
    TensorError::InvalidValue { op, reason: format!("matrix of shape {:?} is singular (a zero pivot in its LU factorisation)", a.shape().dims()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_det(a: &[f64], n: usize) -> f64 {
        // Laplace expansion along the first row (column-major storage)
        if n == 1 {
            return a[0];
        }
        let mut s = 0.0;
        for j in 0..n {
            let mut minor = Vec::with_capacity((n - 1) * (n - 1));
            for c in (0..n).filter(|&c| c != j) {
                for r in 1..n {
                    minor.push(a[c * n + r]);
                }
            }
            let sign = if j % 2 == 0 { 1.0 } else { -1.0 };
            s += sign * a[j * n] * naive_det(&minor, n - 1);
        }
        s
    }

    fn close(a: &[f64], b: &[f64], tol: f64) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn solve_and_inverse_agree_with_products() {
        crate::seed(3);
        for n in [1, 2, 3, 5, 17, 40, 97, 150] {
            let a = Tensor::randn(&[n, n]).to_f64();
            let b = Tensor::randn(&[n, 3]).to_f64();
            let x = a.solve(&b);
            close(&a.matmul(&x).to_vec(), &b.to_vec(), 1e-9);
            let xt = a.solve_t(&b);
            close(&a.transpose().matmul(&xt).to_vec(), &b.to_vec(), 1e-9);
            let ai = a.inv();
            close(&a.matmul(&ai).to_vec(), &Tensor::eye_of(n, crate::DType::F64).to_vec(), 1e-9);
            let v = Tensor::randn(&[n]).to_f64();
            assert_eq!(a.solve(&v).shape(), &[n]);
        }
    }

    #[test]
    fn determinants_match_laplace_expansion() {
        crate::seed(4);
        for n in [1, 2, 3, 4, 6] {
            let a = Tensor::randn(&[n, n]).to_f64();
            let d = naive_det(&a.to_vec(), n);
            close(&[a.det().item()], &[d], 1e-10);
            if d > 0.0 {
                close(&[a.logdet().item()], &[d.ln()], 1e-10);
            } else {
                assert!(a.try_logdet().is_err());
            }
        }
        // pivoting needed: a zero in the corner
        let p = Tensor::from_vec(vec![0.0, 2.0, 3.0, 1.0], &[2, 2]); // [0 3; 2 1]
        assert_eq!(p.det().item(), -6.0);
        assert_eq!(p.inv().to_vec(), vec![-1.0 / 6.0, 1.0 / 3.0, 0.5, 0.0]);
    }

    #[test]
    fn singular_and_bad_shapes_are_errors() {
        let s = Tensor::from_vec(vec![1.0, 2.0, 2.0, 4.0], &[2, 2]);
        assert_eq!(s.det().item(), 0.0);
        assert_eq!(s.logdet().item(), f64::NEG_INFINITY);
        assert!(s.try_inv().unwrap_err().to_string().starts_with("inv: matrix of shape [2, 2] is singular"));
        let e = Tensor::eye_of(3, crate::DType::F64).try_solve(&Tensor::ones(&[2])).unwrap_err();
        assert_eq!(e.to_string(), "solve: incompatible shapes [3, 3] and [2]: the right-hand side must be [3] or [3, m]");
        assert!(Tensor::ones(&[2, 3]).try_det().unwrap_err().to_string().starts_with("det: invalid shape [2, 3]"));
        assert_eq!(Tensor::zeros(&[0, 0]).det().item(), 1.0);
    }

    #[test]
    fn blocked_factorisation_keeps_determinants_multiplicative_and_finds_singularity() {
        crate::seed(6);
        let n = 130;
        let a = Tensor::randn(&[n, n]).to_f64();
        let b = Tensor::randn(&[n, n]).to_f64();
        let (la, lb, lab) = (a.logabsdet_f64(n), b.logabsdet_f64(n), a.matmul(&b).logabsdet_f64(n));
        close(&[lab.0, lab.1], &[la.0 + lb.0, la.1 * lb.1], 1e-9);
        // a repeated column makes it singular (numerically: rounding leaves a tiny pivot, as in
        // LAPACK, so the determinant is ~0 rather than exactly 0)
        for (from, to) in [(3, 120), (100, 7)] {
            let mut v = a.to_vec();
            let c: Vec<f64> = v[from * n..(from + 1) * n].to_vec();
            v[to * n..(to + 1) * n].copy_from_slice(&c);
            let s = Tensor::from_vec(v, &[n, n]);
            assert!(s.det().item().abs() < 1e-6 * a.det().item().abs().max(1.0));
        }
    }

    #[test]
    fn blocked_solve_matches_column_solve() {
        crate::seed(7);
        let n = 150;
        let a = Tensor::randn(&[n, n]).to_f64();
        let b = Tensor::randn(&[n, 20]).to_f64();
        let f = lu(&a.to_vec(), n);
        let (many, cols) = (f.solve_many(&b.to_vec(), 20), f.solve(&b.to_vec(), 20));
        close(&many, &cols, 1e-9);
    }

    #[test]
    fn f32_and_mixed_types() {
        let a = Tensor::from_vec(vec![4.0f32, 1.0, 2.0, 3.0], &[2, 2]);
        assert_eq!(a.dtype(), crate::DType::F32);
        assert!((a.det().item() - 10.0).abs() < 1e-5);
        let x = a.solve(&Tensor::from_vec(vec![1.0f64, 2.0], &[2]));
        assert_eq!(x.dtype(), crate::DType::F64);
        close(&a.to_f64().matmul(&x).to_vec(), &[1.0, 2.0], 1e-6);
    }
}

#[cfg(test)]
mod timing {
    use super::*;

    /// `cargo test -p flux-tensor --release --lib -- --ignored linalg_timing --nocapture`
    #[test]
    #[ignore]
    fn linalg_timing() {
        for n in [64, 128, 256, 512] {
            let a = (&Tensor::randn(&[n, n]) + &Tensor::eye_of(n, crate::DType::F32)).to_f64();
            let v: Vec<f64> = a.to_vec();
            let reps = (20_000_000 / (n * n * n / 8 + 1)).clamp(5, 2000);
            let (mut blocked, mut plain) = (f64::INFINITY, f64::INFINITY);
            for _ in 0..3 {
                let t = std::time::Instant::now();
                for _ in 0..reps {
                    std::hint::black_box(lu(&v, n));
                }
                blocked = blocked.min(t.elapsed().as_secs_f64() / reps as f64);
                let t = std::time::Instant::now();
                for _ in 0..reps {
                    let mut f = Lu { n, lu: v.clone(), perm: (0..n).collect(), swaps: 0, singular: false };
                    f.factor_panel(0, n);
                    std::hint::black_box(f);
                }
                plain = plain.min(t.elapsed().as_secs_f64() / reps as f64);
            }
            let f = lu(&v, n);
            let eye = Tensor::eye_of(n, crate::DType::F64).to_vec();
            let (mut many, mut cols) = (f64::INFINITY, f64::INFINITY);
            for _ in 0..3 {
                let t = std::time::Instant::now();
                for _ in 0..reps {
                    std::hint::black_box(f.solve_many(&eye, n));
                }
                many = many.min(t.elapsed().as_secs_f64() / reps as f64);
                let t = std::time::Instant::now();
                for _ in 0..reps {
                    std::hint::black_box(f.solve(&eye, n));
                }
                cols = cols.min(t.elapsed().as_secs_f64() / reps as f64);
            }
            println!("n = {n}: inverse from the factors: blocked {:.3} ms, column by column {:.3} ms", many * 1e3, cols * 1e3);
            let gf = |t: f64| 2.0 / 3.0 * (n as f64).powi(3) / t / 1e9;
            println!("n = {n}: LU blocked {:.3} ms ({:.2} GFLOP/s), unblocked {:.3} ms ({:.2} GFLOP/s)", blocked * 1e3, gf(blocked), plain * 1e3, gf(plain));
        }
    }
}

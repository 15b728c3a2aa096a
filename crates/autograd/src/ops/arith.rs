//! Broadcasting arithmetic (`+ - * /`, `pow`, `max`, `min`, comparisons) and the two shape
//! adjoints that broadcasting needs: `sum_to` and `broadcast_to`.

use flux_tensor::{BinaryOp, Tensor, TensorError, UnaryOp};

use crate::op::Op;
use crate::value::Value;
use crate::var::Var;

/// `(ga .* ∂y/∂a, gb .* ∂y/∂b)` for `y = op(a, b)`, in `y`'s (broadcast) shape: the shared
/// core of the backward rule (`ga = gb = g`) and the tangent rule (`ga`, `gb` the inputs'
/// tangents). Comparisons have zero derivative. Values are fetched only where read.
fn scaled_partials<V: Value>(op: BinaryOp, av: &Var, bv: &Var, yv: &Var, ga: Option<&V>, gb: Option<&V>) -> (Option<V>, Option<V>) {
    use BinaryOp::*;
    let (a, b, y) = (|| V::of(av), || V::of(bv), || V::of(yv));
    match op {
        Add => (ga.cloned(), gb.cloned()),
        Sub => (ga.cloned(), gb.map(|g| g.neg())),
        Mul => (ga.map(|g| V::with_of(bv, |b| g.mul(b))), gb.map(|g| V::with_of(av, |a| g.mul(a)))),
        Div => (ga.map(|g| V::with_of(bv, |b| g.div(b))), gb.map(|g| g.mul(&y()).div(&b()).neg())),
        Pow => (ga.map(|g| g.mul(&b()).mul(&a().binary(&b().unary(UnaryOp::AddScalar(-1.0)), Pow))), gb.map(|g| g.mul(&y()).mul(&a().unary(UnaryOp::Ln)))),
        Max | Min => {
            // the larger (smaller) input takes the derivative; ties go to `a`
            let mask = av.data().binary(&bv.data(), if op == Max { Ge } else { Le });
            (ga.map(|g| g.mul_const(&mask)), gb.map(|g| g.mul_const(&mask.unary(UnaryOp::RSubScalar(1.0)))))
        }
        Gt | Ge | Lt | Le | Eq => (None, None),
        // y = a(1 - b²): ∂y/∂a = 1 - b² (the same op again), ∂y/∂b = -2ab
        TanhGrad => (ga.map(|g| V::with_of(bv, |b| g.binary(b, TanhGrad))), gb.map(|g| g.mul(&a().mul(&b())).scale(-2.0))),
        // y = ab(1 - b): ∂y/∂a = b(1 - b) (the same op again), ∂y/∂b = a(1 - 2b)
        SigmoidGrad => (ga.map(|g| g.binary(&b(), SigmoidGrad)), gb.map(|g| g.mul(&a().mul(&b().scale(-2.0).unary(UnaryOp::AddScalar(1.0)))))),
    }
}

/// `(da, db)` for `y = op(a, b)` with broadcasting: each gradient is summed back to its
/// input's shape.
pub(crate) fn binary_backward<V: Value>(op: BinaryOp, av: &Var, bv: &Var, yv: &Var, g: &V, needs: &[bool]) -> [Option<V>; 2] {
    let (ga, gb) = scaled_partials(op, av, bv, yv, needs[0].then_some(g), needs[1].then_some(g));
    let fit = |d: V, v: &Var| if d.same_shape(v) { d } else { d.sum_to(&v.shape()) };
    [ga.map(|d| fit(d, av)), gb.map(|d| fit(d, bv))]
}

/// Forward mode: `ta .* ∂y/∂a + tb .* ∂y/∂b` (broadcast to `y`'s shape by the caller).
pub(crate) fn binary_tangent(op: BinaryOp, a: &Var, b: &Var, y: &Var, ta: Option<&Var>, tb: Option<&Var>) -> Option<Var> {
    match scaled_partials(op, a, b, y, ta, tb) {
        (Some(da), Some(db)) => Some(da + db),
        (da, db) => da.or(db),
    }
}

/// Forward mode of `sum_to`: the tangent summed the same way.
pub(crate) fn sum_to_tangent(y: &Var, t: &Var) -> Var {
    t.sum_to(&y.shape())
}

/// Forward mode of `broadcast_to`: the tangent stretched the same way.
pub(crate) fn broadcast_to_tangent(y: &Var, t: &Var) -> Var {
    t.broadcast_to(&y.shape())
}

/// `kernel` on the values of `a` and `b`, both in the wider dtype (Julia's promotion): when
/// the dtypes agree (nearly always) on the values borrowed in place, else on values converted
/// by a recorded cast. Returns the result with the operands the op records.
pub(crate) fn promoted<R>(a: &Var, b: &Var, kernel: impl Fn(&Tensor, &Tensor) -> R) -> (R, Var, Var) {
    promoted_owned(a.clone(), b.clone(), kernel)
}

/// [`promoted`] on operands the caller gives up (`a * b` on owned values): they move into the
/// result's record instead of being cloned, which saves a reference count increment here and
/// the caller's decrement (a fifth of a scalar op's bookkeeping).
pub(crate) fn promoted_owned<R>(a: Var, b: Var, kernel: impl Fn(&Tensor, &Tensor) -> R) -> (R, Var, Var) {
    let same = Var::with_data2(&a, &b, |ta, tb| (ta.dtype() == tb.dtype()).then(|| kernel(ta, tb)));
    match same {
        Some(r) => (r, a, b),
        None => {
            let d = a.dtype().promote(b.dtype());
            let (a, b) = (a.to_dtype(d), b.to_dtype(d));
            (kernel(&a.data(), &b.data()), a, b)
        }
    }
}

impl Var {
    /// Broadcasting binary operation with Julia's rules; mixed dtypes promote. The error names
    /// the operation and both shapes.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// use flux_tensor::{BinaryOp, Tensor};
    /// let a = Var::from(Tensor::zeros(&[2, 3]));
    /// let e = a.try_binary(&Var::from(Tensor::zeros(&[3])), BinaryOp::Add).unwrap_err();
    /// assert!(e.to_string().contains("[2, 3] and [3]"));
    /// ```
    pub fn try_binary(&self, other: &Var, op: BinaryOp) -> Result<Var, TensorError> {
        Var::try_binary_owned(self.clone(), other.clone(), op)
    }

    /// [`Var::try_binary`] consuming its operands (what the operators on owned values call).
    pub(crate) fn try_binary_owned(a: Var, b: Var, op: BinaryOp) -> Result<Var, TensorError> {
        let (value, a, b) = promoted_owned(a, b, |a, b| a.try_binary(b, op));
        Ok(Var::from_op(value?, Op::Binary(op, a, b)))
    }

    /// Panicking [`Var::try_binary_owned`].
    pub(crate) fn binary_owned(a: Var, b: Var, op: BinaryOp) -> Var {
        Var::try_binary_owned(a, b, op).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Panicking [`Var::try_binary`].
    ///
    /// ```
    /// use flux_autograd::Var;
    /// use flux_tensor::BinaryOp;
    /// assert_eq!(Var::scalar(2.0).binary(&Var::scalar(3.0), BinaryOp::Pow).item(), 8.0);
    /// ```
    pub fn binary(&self, other: &Var, op: BinaryOp) -> Var {
        self.try_binary(other, op).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Broadcasting `a .^ b`.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// assert_eq!(Var::scalar(2.0).pow(&Var::scalar(3.0)).item(), 8.0);
    /// ```
    pub fn pow(&self, other: &Var) -> Var {
        self.binary(other, BinaryOp::Pow)
    }

    /// Broadcasting `max.(a, b)`.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// assert_eq!(Var::scalar(2.0).maximum(&Var::scalar(3.0)).item(), 3.0);
    /// ```
    pub fn maximum(&self, other: &Var) -> Var {
        self.binary(other, BinaryOp::Max)
    }

    /// Broadcasting `min.(a, b)`.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// assert_eq!(Var::scalar(2.0).minimum(&Var::scalar(3.0)).item(), 2.0);
    /// ```
    pub fn minimum(&self, other: &Var) -> Var {
        self.binary(other, BinaryOp::Min)
    }

    /// Fallible sum down to `shape` (every dimension where `shape` is 1 or missing is summed):
    /// the adjoint of broadcasting.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// let x = Var::from(flux_tensor::Tensor::ones(&[2, 3]));
    /// assert!(x.try_sum_to(&[3]).is_err());
    /// ```
    pub fn try_sum_to(&self, shape: &[usize]) -> Result<Var, TensorError> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        let value = self.data().try_sum_to(shape)?;
        Ok(Var::from_op(value, Op::SumTo(self.clone())))
    }

    /// Panicking [`Var::try_sum_to`].
    ///
    /// ```
    /// use flux_autograd::Var;
    /// let x = Var::from(flux_tensor::Tensor::ones(&[2, 3]));
    /// assert_eq!(x.sum_to(&[2]).to_vec(), vec![3.0, 3.0]);
    /// ```
    pub fn sum_to(&self, shape: &[usize]) -> Var {
        self.try_sum_to(shape).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Fallible stretch to `shape`.
    ///
    /// ```
    /// use flux_autograd::Var;
    /// assert!(Var::from(flux_tensor::Tensor::ones(&[3])).try_broadcast_to(&[2]).is_err());
    /// ```
    pub fn try_broadcast_to(&self, shape: &[usize]) -> Result<Var, TensorError> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        let value = self.data().try_broadcast_to(shape)?;
        Ok(Var::from_op(value, Op::BroadcastTo(self.clone())))
    }

    /// Panicking [`Var::try_broadcast_to`].
    ///
    /// ```
    /// use flux_autograd::Var;
    /// assert_eq!(Var::scalar(1.0).broadcast_to(&[2]).to_vec(), vec![1.0, 1.0]);
    /// ```
    pub fn broadcast_to(&self, shape: &[usize]) -> Var {
        self.try_broadcast_to(shape).unwrap_or_else(|e| panic!("{e}"))
    }
}

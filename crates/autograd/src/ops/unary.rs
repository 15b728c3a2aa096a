//! Elementwise functions of one value: forward (`Var::exp`, `Var::tanh`, ...) and backward.

use flux_tensor::{TensorError, UnaryOp};

use crate::op::Op;
use crate::value::Value;
use crate::var::Var;

/// `dx` for `y = op(x)` given `g = dL/dy`; `None` where the derivative is zero everywhere.
/// Rules reuse the output `y` where it is cheaper (exp, tanh, sigmoid, sqrt); `x` and `y` are
/// fetched only by the rules that read them.
pub(crate) fn backward<V: Value>(op: UnaryOp, xv: &Var, yv: &Var, g: &V) -> Option<V> {
    use UnaryOp::*;
    if let Some(d) = V::fused_unary_grad(op, xv, yv, g) {
        return Some(d);
    }
    let x = || V::of(xv);
    let y = || V::of(yv);
    Some(match op {
        Neg => g.neg(),
        Exp => V::with_of(yv, |y| g.mul(y)),
        Ln => V::with_of(xv, |x| g.div(x)),
        Log1p => g.div(&x().unary(AddScalar(1.0))),
        Sqrt => g.div(&y().scale(2.0)),
        Abs => g.mul_const(&xv.data().sign()),
        Sign | Step => return None,
        Sin => g.mul(&V::with_of(xv, |x| x.unary(Cos))),
        Cos => g.mul(&V::with_of(xv, |x| x.unary(Sin))).neg(),
        Tanh => V::with_of(yv, |y| g.mul(&y.mul(y).unary(RSubScalar(1.0)))),
        Sigmoid => {
            let y = y();
            g.mul(&y.mul(&y.unary(RSubScalar(1.0))))
        }
        Relu => g.mul_const(&xv.data().unary(Step)),
        Softplus => g.mul(&x().unary(Sigmoid)),
        Recip => {
            let y = y();
            g.mul(&y.mul(&y)).neg()
        }
        Powi(0) => return None,
        Powi(1) => g.clone(),
        Powi(2) => g.mul(&x().scale(2.0)),
        Powi(n) => g.mul(&x().unary(Powi(n - 1)).scale(n as f64)),
        Powf(p) => g.mul(&x().unary(Powf(p - 1.0)).scale(p)),
        AddScalar(_) => g.clone(),
        MulScalar(c) => g.scale(c),
        RSubScalar(_) => g.neg(),
        RDivScalar(_) => g.mul(&y()).div(&x()).neg(),
        MaxScalar(c) => g.mul_const(&xv.data().unary(AddScalar(-c)).unary(Step)),
        MinScalar(c) => g.mul_const(&xv.data().unary(RSubScalar(c)).unary(Step)),
        Gelu => g.mul(&x().unary(GeluDeriv)),
        GeluDeriv => g.mul(&gelu_second_derivative(&x())),
    })
}

/// `gelu''(x) = s(1-s)·(4u' + 12ac·x² + 4x·u'²(1 - 2s))` for `u = c(x + ax³)`, `s = σ(2u)`,
/// `u' = c(1 + 3ax²)` (`c = √(2/π)`, `a = 0.044715`), composed from differentiable ops so
/// that gelu is differentiable to any order (the first derivative is the fused `GeluDeriv`).
fn gelu_second_derivative<V: Value>(x: &V) -> V {
    use UnaryOp::*;
    let (c, a) = ((2.0 / std::f64::consts::PI).sqrt(), 0.044715);
    let x2 = x.mul(x);
    let du = x2.scale(3.0 * a).unary(AddScalar(1.0)).scale(c);
    let s = x.add(&x2.mul(x).scale(a)).scale(2.0 * c).unary(Sigmoid);
    let s_one_minus_s = s.mul(&s.unary(RSubScalar(1.0)));
    let one_minus_2s = s.scale(-2.0).unary(AddScalar(1.0));
    let bracket = du.scale(4.0).add(&x2.scale(12.0 * a * c)).add(&x.mul(&du).mul(&du).mul(&one_minus_2s).scale(4.0));
    s_one_minus_s.mul(&bracket)
}

/// Forward mode: the tangent of `y = op(x)` for an input tangent `t`, `t .* f'(x)` (`None`
/// where the derivative is zero everywhere). An elementwise function's Jacobian is diagonal,
/// hence its own transpose: the backward rule applied to `t` is the tangent, in `Var`
/// operations so that it is differentiable again.
pub(crate) fn tangent(op: UnaryOp, x: &Var, y: &Var, t: &Var) -> Option<Var> {
    backward::<Var>(op, x, y, t)
}

impl Var {
    /// Applies an elementwise function, recording it.
    ///
    /// ```
    /// use flux_autograd::{gradient, Var};
    /// use flux_tensor::UnaryOp;
    /// let g = gradient(|x: &Var| x.unary(UnaryOp::Exp), &Var::scalar(0.0));
    /// assert_eq!(g.item(), 1.0);
    /// ```
    pub fn unary(&self, op: UnaryOp) -> Var {
        self.clone().unary_owned(op)
    }

    /// [`Var::unary`] consuming the operand, which moves into the record instead of being
    /// cloned (what the operators on owned values call).
    pub(crate) fn unary_owned(self, op: UnaryOp) -> Var {
        let value = self.with_data(|x| x.unary(op));
        Var::from_op(value, Op::Unary(op, self))
    }

    /// `x^n` elementwise (Julia's `x .^ n` for an integer `n`).
    ///
    /// ```
    /// assert_eq!(flux_autograd::Var::scalar(3.0).powi(2).item(), 9.0);
    /// ```
    pub fn powi(&self, n: i32) -> Var {
        self.unary(UnaryOp::Powi(n))
    }

    /// `x^p` elementwise for a real power.
    ///
    /// ```
    /// assert_eq!(flux_autograd::Var::scalar(4.0).powf(0.5).item(), 2.0);
    /// ```
    pub fn powf(&self, p: f64) -> Var {
        self.unary(UnaryOp::Powf(p))
    }

    /// `max(x, c)` elementwise.
    ///
    /// ```
    /// assert_eq!(flux_autograd::Var::scalar(-1.0).clamp_min(0.0).item(), 0.0);
    /// ```
    pub fn clamp_min(&self, c: f64) -> Var {
        self.unary(UnaryOp::MaxScalar(c))
    }

    /// `min(x, c)` elementwise.
    ///
    /// ```
    /// assert_eq!(flux_autograd::Var::scalar(3.0).clamp_max(1.0).item(), 1.0);
    /// ```
    pub fn clamp_max(&self, c: f64) -> Var {
        self.unary(UnaryOp::MinScalar(c))
    }

    /// Checks that no element is NaN, naming `op` in the error (for inputs where NaN is
    /// forbidden).
    ///
    /// ```
    /// let v = flux_autograd::Var::scalar(f64::NAN);
    /// assert!(v.check_finite("loss").is_err());
    /// ```
    pub fn check_finite(&self, op: &'static str) -> Result<(), TensorError> {
        if self.data().has_nan() {
            return Err(TensorError::InvalidValue { op, reason: format!("input of shape {:?} contains NaN", self.shape()) });
        }
        Ok(())
    }
}

macro_rules! unary_vars {
    ($($(#[$doc:meta])* $name:ident => $op:expr;)*) => {
        impl Var {
            $(
                $(#[$doc])*
                pub fn $name(&self) -> Var {
                    self.unary($op)
                }
            )*
        }
    };
}

unary_vars! {
    /// `e^x` elementwise.
    ///
    /// ```
    /// assert_eq!(flux_autograd::Var::scalar(0.0).exp().item(), 1.0);
    /// ```
    exp => UnaryOp::Exp;
    /// Natural log elementwise.
    ///
    /// ```
    /// assert_eq!(flux_autograd::Var::scalar(1.0).ln().item(), 0.0);
    /// ```
    ln => UnaryOp::Ln;
    /// `ln(1 + x)` elementwise.
    ///
    /// ```
    /// assert_eq!(flux_autograd::Var::scalar(0.0).log1p().item(), 0.0);
    /// ```
    log1p => UnaryOp::Log1p;
    /// Square root elementwise.
    ///
    /// ```
    /// assert_eq!(flux_autograd::Var::scalar(9.0).sqrt().item(), 3.0);
    /// ```
    sqrt => UnaryOp::Sqrt;
    /// Absolute value elementwise.
    ///
    /// ```
    /// assert_eq!(flux_autograd::Var::scalar(-2.0).abs().item(), 2.0);
    /// ```
    abs => UnaryOp::Abs;
    /// Sign elementwise (its derivative is zero).
    ///
    /// ```
    /// assert_eq!(flux_autograd::Var::scalar(-2.0).sign().item(), -1.0);
    /// ```
    sign => UnaryOp::Sign;
    /// Sine elementwise.
    ///
    /// ```
    /// assert_eq!(flux_autograd::Var::scalar(0.0).sin().item(), 0.0);
    /// ```
    sin => UnaryOp::Sin;
    /// Cosine elementwise.
    ///
    /// ```
    /// assert_eq!(flux_autograd::Var::scalar(0.0).cos().item(), 1.0);
    /// ```
    cos => UnaryOp::Cos;
    /// Hyperbolic tangent elementwise.
    ///
    /// ```
    /// assert_eq!(flux_autograd::Var::scalar(0.0).tanh().item(), 0.0);
    /// ```
    tanh => UnaryOp::Tanh;
    /// Logistic sigmoid elementwise (stable).
    ///
    /// ```
    /// assert_eq!(flux_autograd::Var::scalar(0.0).sigmoid().item(), 0.5);
    /// ```
    sigmoid => UnaryOp::Sigmoid;
    /// `max(x, 0)` elementwise.
    ///
    /// ```
    /// assert_eq!(flux_autograd::Var::scalar(-1.0).relu().item(), 0.0);
    /// ```
    relu => UnaryOp::Relu;
    /// `ln(1 + e^x)` elementwise (stable).
    ///
    /// ```
    /// assert!((flux_autograd::Var::scalar(0.0).softplus().item() - 2f64.ln()).abs() < 1e-15);
    /// ```
    softplus => UnaryOp::Softplus;
    /// `1 / x` elementwise.
    ///
    /// ```
    /// assert_eq!(flux_autograd::Var::scalar(4.0).recip().item(), 0.25);
    /// ```
    recip => UnaryOp::Recip;
    /// Flux's GELU, the tanh form `0.5x(1 + tanh(√(2/π)(x + 0.044715x³)))`, as one fused op
    /// (its derivative is the fused `UnaryOp::GeluDeriv`).
    ///
    /// ```
    /// use flux_autograd::{gradient, Var};
    /// assert_eq!(Var::scalar(0.0).gelu().item(), 0.0);
    /// assert_eq!(gradient(|x: &Var| x.gelu(), &Var::scalar(0.0)).item(), 0.5);
    /// ```
    gelu => UnaryOp::Gelu;
}

//! `+ - * /` between `Var`s (owned or borrowed) and with `f64` on either side, unary `-`, and
//! `Sum` over an iterator of Vars. `*` is elementwise (Julia's `.*`); use `matmul` for `W * x`.

use std::iter::Sum;
use std::ops::{Add, Div, Mul, Neg, Sub};

use flux_tensor::{BinaryOp, UnaryOp};

use crate::var::Var;

macro_rules! var_binop {
    ($tr:ident, $m:ident, $op:expr, $scalar_rhs:expr, $scalar_lhs:expr) => {
        impl $tr<&Var> for &Var {
            type Output = Var;
            fn $m(self, rhs: &Var) -> Var {
                self.binary(rhs, $op)
            }
        }
        impl $tr<Var> for Var {
            type Output = Var;
            fn $m(self, rhs: Var) -> Var {
                Var::binary_owned(self, rhs, $op)
            }
        }
        impl $tr<&Var> for Var {
            type Output = Var;
            fn $m(self, rhs: &Var) -> Var {
                Var::binary_owned(self, rhs.clone(), $op)
            }
        }
        impl $tr<Var> for &Var {
            type Output = Var;
            fn $m(self, rhs: Var) -> Var {
                Var::binary_owned(self.clone(), rhs, $op)
            }
        }
        impl $tr<f64> for &Var {
            type Output = Var;
            fn $m(self, rhs: f64) -> Var {
                self.unary($scalar_rhs(rhs))
            }
        }
        impl $tr<f64> for Var {
            type Output = Var;
            fn $m(self, rhs: f64) -> Var {
                self.unary_owned($scalar_rhs(rhs))
            }
        }
        impl $tr<&Var> for f64 {
            type Output = Var;
            fn $m(self, rhs: &Var) -> Var {
                rhs.unary($scalar_lhs(self))
            }
        }
        impl $tr<Var> for f64 {
            type Output = Var;
            fn $m(self, rhs: Var) -> Var {
                rhs.unary_owned($scalar_lhs(self))
            }
        }
    };
}

var_binop!(Add, add, BinaryOp::Add, UnaryOp::AddScalar, UnaryOp::AddScalar);
var_binop!(Sub, sub, BinaryOp::Sub, |c: f64| UnaryOp::AddScalar(-c), UnaryOp::RSubScalar);
var_binop!(Mul, mul, BinaryOp::Mul, UnaryOp::MulScalar, UnaryOp::MulScalar);
var_binop!(Div, div, BinaryOp::Div, |c: f64| UnaryOp::MulScalar(1.0 / c), UnaryOp::RDivScalar);

impl Neg for &Var {
    type Output = Var;
    fn neg(self) -> Var {
        self.unary(UnaryOp::Neg)
    }
}

impl Neg for Var {
    type Output = Var;
    fn neg(self) -> Var {
        self.unary_owned(UnaryOp::Neg)
    }
}

impl Sum for Var {
    /// Adds the values (Flux's `sum(norm, params(m))`); an empty sum is the scalar 0.
    fn sum<I: Iterator<Item = Var>>(iter: I) -> Var {
        iter.reduce(|a, b| a + b).unwrap_or_else(|| Var::scalar(0.0))
    }
}

impl<'a> Sum<&'a Var> for Var {
    fn sum<I: Iterator<Item = &'a Var>>(iter: I) -> Var {
        iter.cloned().sum()
    }
}

#[cfg(test)]
mod tests {
    use crate::Var;

    #[test]
    fn numbers_mix_on_both_sides() {
        let x = Var::scalar(4.0);
        assert_eq!((3.0 * &x).item(), 12.0);
        assert_eq!((&x + 1.0).item(), 5.0);
        assert_eq!((1.0 - &x).item(), -3.0);
        assert_eq!((&x / 2.0).item(), 2.0);
        assert_eq!((8.0 / &x).item(), 2.0);
        assert_eq!((-&x).item(), -4.0);
        let s: Var = vec![x.clone(), x.clone()].into_iter().sum();
        assert_eq!(s.item(), 8.0);
    }
}

//! Operator overloads: `&a + &b` (and `- * /`) broadcast elementwise; Rust numbers mix on either
//! side (`2.0 * &t`, `&t + 1.0`) and take the tensor's dtype. `*` is elementwise, as Julia's `.*`;
//! the matrix product is [`Tensor::matmul`].

use std::ops::{Add, Div, Mul, Neg, Sub};

use crate::binary::BinaryOp;
use crate::tensor::Tensor;
use crate::unary::UnaryOp;

macro_rules! tensor_binop {
    ($tr:ident, $m:ident, $op:expr, $scalar_rhs:expr, $scalar_lhs:expr) => {
        impl $tr<&Tensor> for &Tensor {
            type Output = Tensor;
            fn $m(self, rhs: &Tensor) -> Tensor {
                self.binary(rhs, $op)
            }
        }
        impl $tr<Tensor> for Tensor {
            type Output = Tensor;
            fn $m(self, rhs: Tensor) -> Tensor {
                self.binary(&rhs, $op)
            }
        }
        impl $tr<&Tensor> for Tensor {
            type Output = Tensor;
            fn $m(self, rhs: &Tensor) -> Tensor {
                self.binary(rhs, $op)
            }
        }
        impl $tr<Tensor> for &Tensor {
            type Output = Tensor;
            fn $m(self, rhs: Tensor) -> Tensor {
                self.binary(&rhs, $op)
            }
        }
        impl $tr<f64> for &Tensor {
            type Output = Tensor;
            fn $m(self, rhs: f64) -> Tensor {
                self.unary($scalar_rhs(rhs))
            }
        }
        impl $tr<f64> for Tensor {
            type Output = Tensor;
            fn $m(self, rhs: f64) -> Tensor {
                self.unary($scalar_rhs(rhs))
            }
        }
        impl $tr<&Tensor> for f64 {
            type Output = Tensor;
            fn $m(self, rhs: &Tensor) -> Tensor {
                rhs.unary($scalar_lhs(self))
            }
        }
        impl $tr<Tensor> for f64 {
            type Output = Tensor;
            fn $m(self, rhs: Tensor) -> Tensor {
                rhs.unary($scalar_lhs(self))
            }
        }
    };
}

tensor_binop!(Add, add, BinaryOp::Add, UnaryOp::AddScalar, UnaryOp::AddScalar);
tensor_binop!(Sub, sub, BinaryOp::Sub, |c: f64| UnaryOp::AddScalar(-c), UnaryOp::RSubScalar);
tensor_binop!(Mul, mul, BinaryOp::Mul, UnaryOp::MulScalar, UnaryOp::MulScalar);
tensor_binop!(Div, div, BinaryOp::Div, |c: f64| UnaryOp::MulScalar(1.0 / c), UnaryOp::RDivScalar);

impl Neg for &Tensor {
    type Output = Tensor;
    fn neg(self) -> Tensor {
        self.unary(UnaryOp::Neg)
    }
}

impl Neg for Tensor {
    type Output = Tensor;
    fn neg(self) -> Tensor {
        self.unary(UnaryOp::Neg)
    }
}

#[cfg(test)]
mod tests {
    use crate::Tensor;

    #[test]
    fn scalars_mix_on_both_sides() {
        let t = Tensor::from_vec(vec![1.0f32, 2.0], &[2]);
        assert_eq!((2.0 * &t).to_vec(), vec![2.0, 4.0]);
        assert_eq!((&t + 1.0).to_vec(), vec![2.0, 3.0]);
        assert_eq!((1.0 - &t).to_vec(), vec![0.0, -1.0]);
        assert_eq!((&t / 2.0).to_vec(), vec![0.5, 1.0]);
        assert_eq!((2.0 / &t).to_vec(), vec![2.0, 1.0]);
        assert_eq!((-&t).to_vec(), vec![-1.0, -2.0]);
        assert_eq!((2.0 * &t).dtype(), crate::DType::F32);
    }
}

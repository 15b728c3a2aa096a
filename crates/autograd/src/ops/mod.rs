//! Differentiable operations, one file per family. Each file holds the `Var` methods (forward)
//! and the backward rules of its family, written over [`crate::Value`].

pub mod arith;
pub mod checkpoint;
pub mod conv;
pub mod custom;
pub mod layernorm;
pub mod linalg;
pub mod matmul;
pub mod operators;
pub mod pool;
pub mod reduce;
pub mod scan;
pub mod shape;
pub mod softmax;
pub mod unary;

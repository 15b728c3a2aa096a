//! # flux-tensor
//!
//! The n-dimensional arrays that every flux-rs crate computes with: `f32` or `f64` chosen at
//! run time ([`DType`]), any rank including 0-d scalars, column-major storage (Julia's order: the
//! first index varies fastest) and Julia's broadcasting (dimensions matched from the first, a
//! missing trailing dimension counts as 1). Matrix products go through a real GEMM.
//!
//! Start with [`Tensor`]: constructors (`zeros`, `rand`, `from_vec`), elementwise math
//! (`exp`, `tanh`, operators), reductions (`sum_dims`, `max`), [`Tensor::matmul`], and shape
//! operations (`transpose`, `reshape`, `slice`, `concat`).
//!
//! ```
//! use flux_tensor::{seed, Tensor};
//! seed(42);
//! let w = Tensor::rand(&[2, 5]);
//! let b = Tensor::rand(&[2]);
//! let x = Tensor::rand(&[5, 3]);          // three samples, one per column
//! let y = &w.matmul(&x) + &b;             // [2] broadcasts over the batch
//! assert_eq!(y.shape(), &[2, 3]);
//! ```

// Unsafe code is confined to `kernels/` (the GEMM entry points); everywhere else it is denied.
#![deny(unsafe_code)]

// The modules are private: every public item has exactly one path, at the crate root.
mod binary;
mod conv;
mod display;
mod dtype;
mod error;
#[allow(unsafe_code)]
mod kernels;
mod layernorm;
mod linalg;
mod matmul;
mod ops;
mod pool;
mod random;
mod reduce;
mod scan;
mod shape;
mod shape_ops;
mod softmax;
mod tensor;
mod unary;

pub use binary::{broadcast_shape, BinaryOp};
pub use conv::ConvSpec;
pub use dtype::{DType, Element};
pub use error::{Result, TensorError};
pub use kernels::{gemm_portable, num_threads, parties_for, run_parties, set_num_threads, GemmElement, Tuner};
pub use pool::PoolSpec;
pub use random::{normal_sample, seed, with_rng, DEFAULT_SEED};
pub use reduce::ReduceOp;
pub use shape::Shape;
pub use tensor::{Elements, IntoStorage, Storage, StorageElement, Tensor};
pub use unary::{gelu, gelu_deriv, relu, sigmoid, sign, softplus, UnaryOp};

pub(crate) use tensor::dispatch;

/// The random-number crate that `*_with` constructors take generators from.
pub use rand;

#[cfg(test)]
mod send_sync {
    fn assert_send_sync<T: Send + Sync>() {}
    #[test]
    fn tensor_is_send_sync() {
        assert_send_sync::<crate::Tensor>();
        assert_send_sync::<crate::TensorError>();
    }
}

//! Every line of flux-tensor's `unsafe` code lives in this folder (the crate root denies
//! `unsafe_code` elsewhere): the GEMM entry points, where handing raw pointers and strides to the
//! `gemm` and `matrixmultiply` kernels, and writing products into uninitialised output buffers,
//! is what a measurement pays for (see docs/design.md), `RunBuffer`, which fills im2col's
//! column buffer with short row copies into reserved memory, the thread pool's regions
//! (`threads.rs`), whose pool tasks borrow the caller's closure until the region closes, the
//! run-time choice of a SIMD build of the vectorised math (`vmath`), and one call of glibc's
//! `mallopt` (`malloc.rs`). Each public function here
//! checks the lengths it relies on, and the element types are sealed, so no safe caller can make
//! the kernels read or write out of bounds.

mod gemm;
mod gemv;
mod malloc;
mod runs;
mod threads;
pub(crate) mod vmath;

pub(crate) use gemm::{batch_products, gemm_ns};
pub use gemm::{gemm_portable, GemmElement};
pub(crate) use malloc::tune_once as tune_malloc;
pub(crate) use runs::{filled_in_parts, RunBuffer};
pub(crate) use threads::claim_items;
pub use threads::{num_threads, parties_for, run_parties, set_num_threads, Tuner};

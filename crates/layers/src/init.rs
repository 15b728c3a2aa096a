//! Weight initialisers (Flux's `glorot_uniform`, `glorot_normal`), f32, from this thread's
//! seeded generator or a given one.

use flux_tensor::rand::Rng;
use flux_tensor::{with_rng, DType, Tensor};

/// (fan_in, fan_out) of a weight shape: `[out, in]` for matrices, as Flux computes them.
fn fans(shape: &[usize]) -> (f64, f64) {
    match shape.len() {
        0 => (1.0, 1.0),
        1 => (shape[0] as f64, shape[0] as f64),
        _ => {
            let receptive: usize = shape[2..].iter().product();
            ((shape[1] * receptive) as f64, (shape[0] * receptive) as f64)
        }
    }
}

/// Uniform in `±√(6 / (fan_in + fan_out))`, f32 (Flux's default weight initialiser).
///
/// ```
/// let w = flux_layers::glorot_uniform(&[5, 10]);
/// let s = (6.0f64 / 15.0).sqrt();
/// assert!(w.to_vec().iter().all(|&x| x.abs() <= s));
/// assert_eq!(w.dtype(), flux_tensor::DType::F32);
/// ```
pub fn glorot_uniform(shape: &[usize]) -> Tensor {
    with_rng(|r| glorot_uniform_with(shape, r))
}

/// [`glorot_uniform`] from the given generator.
///
/// ```
/// use flux_tensor::rand::SeedableRng;
/// let mut rng = flux_tensor::rand::rngs::StdRng::seed_from_u64(1);
/// assert_eq!(flux_layers::glorot_uniform_with(&[2, 3], &mut rng).shape(), &[2, 3]);
/// ```
pub fn glorot_uniform_with<R: Rng + ?Sized>(shape: &[usize], rng: &mut R) -> Tensor {
    let (fi, fo) = fans(shape);
    let s = (6.0 / (fi + fo)).sqrt();
    Tensor::uniform_with(shape, -s, s, DType::F32, rng)
}

/// Normal with standard deviation `√(2 / (fan_in + fan_out))`, f32.
///
/// ```
/// let w = flux_layers::glorot_normal(&[50, 50]);
/// assert!((w.to_vec().iter().map(|x| x * x).sum::<f64>() / 2500.0 - 0.02).abs() < 0.005);
/// ```
pub fn glorot_normal(shape: &[usize]) -> Tensor {
    with_rng(|r| glorot_normal_with(shape, r))
}

/// [`glorot_normal`] from the given generator.
///
/// ```
/// use flux_tensor::rand::SeedableRng;
/// let mut rng = flux_tensor::rand::rngs::StdRng::seed_from_u64(1);
/// assert_eq!(flux_layers::glorot_normal_with(&[2, 3], &mut rng).shape(), &[2, 3]);
/// ```
pub fn glorot_normal_with<R: Rng + ?Sized>(shape: &[usize], rng: &mut R) -> Tensor {
    let (fi, fo) = fans(shape);
    let s = (2.0 / (fi + fo)).sqrt();
    (Tensor::randn_with(shape, rng) * s).to_f32()
}

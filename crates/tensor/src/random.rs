//! Reproducible randomness: one generator per thread, seeded by [`seed`], plus constructors that
//! take any `&mut impl Rng` for callers who manage their own.

use std::cell::RefCell;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::dtype::DType;
use crate::shape::Shape;
use crate::tensor::Tensor;

/// The seed a thread's generator starts from when [`seed`] was never called (fixed, like
/// PyTorch's default, so that a program gives the same numbers every run).
///
/// ```
/// // a fresh thread starts from DEFAULT_SEED, so this is reproducible
/// let a = std::thread::spawn(|| flux_tensor::Tensor::rand(&[2])).join().unwrap();
/// flux_tensor::seed(flux_tensor::DEFAULT_SEED);
/// assert_eq!(a, flux_tensor::Tensor::rand(&[2]));
/// ```
pub const DEFAULT_SEED: u64 = 0x5EED_F1A5;

thread_local! {
    static RNG: RefCell<StdRng> = RefCell::new(StdRng::seed_from_u64(DEFAULT_SEED));
}

/// Re-seeds this thread's default generator (Julia's `Random.seed!`, re-exported as
/// `flux::seed`).
///
/// ```
/// use flux_tensor::{seed, Tensor};
/// seed(42);
/// let a = Tensor::rand(&[3]);
/// seed(42);
/// assert_eq!(a, Tensor::rand(&[3]));
/// ```
pub fn seed(s: u64) {
    RNG.with(|r| *r.borrow_mut() = StdRng::seed_from_u64(s));
}

/// Runs `f` with this thread's default generator (for layer initialisers and data shuffling).
///
/// ```
/// use rand::Rng;
/// let x: f64 = flux_tensor::with_rng(|r| r.random());
/// assert!((0.0..1.0).contains(&x));
/// ```
pub fn with_rng<R>(f: impl FnOnce(&mut StdRng) -> R) -> R {
    RNG.with(|r| f(&mut r.borrow_mut()))
}

/// One standard-normal sample (Box–Muller; two uniforms per sample, so the stream is the same on
/// every platform).
///
/// ```
/// use flux_tensor::rand::SeedableRng;
/// let mut rng = flux_tensor::rand::rngs::StdRng::seed_from_u64(1);
/// assert!(flux_tensor::normal_sample(&mut rng).is_finite());
/// ```
pub fn normal_sample<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    loop {
        let u: f64 = rng.random();
        if u > 0.0 {
            let v: f64 = rng.random();
            return (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos();
        }
    }
}

impl Tensor {
    /// Uniform in [0, 1), f64, from this thread's generator (Julia's `rand(dims...)`).
    ///
    /// ```
    /// let t = flux_tensor::Tensor::rand(&[2, 5]);
    /// assert!(t.to_vec().iter().all(|&x| (0.0..1.0).contains(&x)));
    /// ```
    pub fn rand(shape: &[usize]) -> Tensor {
        with_rng(|r| Tensor::rand_with(shape, r))
    }

    /// Standard normal, f64, from this thread's generator (Julia's `randn(dims...)`).
    ///
    /// ```
    /// let t = flux_tensor::Tensor::randn(&[1000]);
    /// assert!(t.mean().item().abs() < 0.2);
    /// ```
    pub fn randn(shape: &[usize]) -> Tensor {
        with_rng(|r| Tensor::randn_with(shape, r))
    }

    /// Uniform in [0, 1), f64, from the given generator.
    ///
    /// ```
    /// use rand::SeedableRng;
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    /// assert_eq!(flux_tensor::Tensor::rand_with(&[4], &mut rng).numel(), 4);
    /// ```
    pub fn rand_with<R: Rng + ?Sized>(shape: &[usize], rng: &mut R) -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<f64> = (0..n).map(|_| rng.random::<f64>()).collect();
        Tensor::from_typed(v, Shape::new(shape))
    }

    /// Standard normal, f64, from the given generator.
    ///
    /// ```
    /// use rand::SeedableRng;
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    /// assert_eq!(flux_tensor::Tensor::randn_with(&[4], &mut rng).numel(), 4);
    /// ```
    pub fn randn_with<R: Rng + ?Sized>(shape: &[usize], rng: &mut R) -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<f64> = (0..n).map(|_| normal_sample(rng)).collect();
        Tensor::from_typed(v, Shape::new(shape))
    }

    /// Uniform in [lo, hi) of the given dtype, from the given generator.
    ///
    /// ```
    /// use flux_tensor::{DType, Tensor};
    /// use rand::SeedableRng;
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    /// let t = Tensor::uniform_with(&[10], -1.0, 1.0, DType::F32, &mut rng);
    /// assert!(t.to_vec().iter().all(|&x| (-1.0..1.0).contains(&x)));
    /// ```
    pub fn uniform_with<R: Rng + ?Sized>(shape: &[usize], lo: f64, hi: f64, dtype: DType, rng: &mut R) -> Tensor {
        Tensor::rand_with(shape, rng).map(|u| lo + (hi - lo) * u).to_dtype(dtype)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeding_is_reproducible_and_per_thread() {
        seed(7);
        let a = Tensor::randn(&[5]);
        let other = std::thread::spawn(|| {
            seed(7);
            Tensor::randn(&[5])
        })
        .join()
        .unwrap();
        assert_eq!(a, other);
        seed(8);
        assert_ne!(a, Tensor::randn(&[5]));
    }

    #[test]
    fn normal_moments() {
        seed(3);
        let t = Tensor::randn(&[20000]);
        let m = t.mean().item();
        let v = t.map(|x| (x - m) * (x - m)).mean().item();
        assert!(m.abs() < 0.03, "{m}");
        assert!((v - 1.0).abs() < 0.05, "{v}");
    }
}

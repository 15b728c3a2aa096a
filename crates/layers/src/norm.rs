//! [`norm`]: the L2 norm of a value, with gradient 0 (not NaN) at 0.

use flux_autograd::Var;
use flux_tensor::Tensor;

/// The L2 norm `sqrt(sum(x.^2))` of every element, as a 0-d value (Flux's `norm(x)`), for
/// weight penalties: `norm(m.weight()) + norm(m.bias())`, or `params(&m).iter().map(norm).sum()`.
///
/// Its gradient `x / norm(x)` would be `0 / 0` at `x = 0`; here it is 0 there, so penalising a
/// zero-initialised bias works. Away from 0 it is the plain formula, differentiable to any order.
/// (At exactly 0 the value is computed as `sqrt(s + 1) - 1` with `s = sum(x.^2) = 0`: the same
/// value 0, a zero gradient, and a finite second derivative.)
///
/// ```
/// use flux_autograd::{gradient, Var};
/// use flux_layers::norm;
/// use flux_tensor::Tensor;
/// let x = Var::from(Tensor::from_vec(vec![3.0, 4.0], &[2]));
/// assert_eq!(norm(&x).item(), 5.0);
/// let g = gradient(norm, &x).to_vec(); // x / norm(x)
/// assert!((g[0] - 0.6).abs() < 1e-15 && (g[1] - 0.8).abs() < 1e-15);
/// let z = Var::from(Tensor::zeros(&[3]));
/// assert_eq!(gradient(norm, &z).to_vec(), vec![0.0, 0.0, 0.0]);
/// ```
pub fn norm(x: &Var) -> Var {
    let s = x.powi(2).sum();
    if s.item() == 0.0 {
        // every element is 0: shift the square root away from its singular point by a
        // constant, and take the same constant off again
        let one = Var::constant(Tensor::scalar_of(1.0, s.dtype()));
        (&s + &one).sqrt() - &one
    } else {
        s.sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flux_autograd::{gradient, gradient_params, param, params};
    use flux_tensor::DType;

    #[test]
    fn value_and_gradient_away_from_zero() {
        let x = Var::from(Tensor::from_vec(vec![1.0, -2.0, 2.0], &[3]));
        assert_eq!(norm(&x).item(), 3.0);
        let g = gradient(norm, &x).to_vec();
        assert!((g[0] - 1.0 / 3.0).abs() < 1e-15 && (g[1] + 2.0 / 3.0).abs() < 1e-15);
    }

    #[test]
    fn gradient_at_zero_is_zero_for_params() {
        let b = param(Tensor::zeros(&[5]).to_f32());
        let gs = gradient_params(|| norm(&b), &params![&b]);
        assert_eq!(gs[&b].to_vec(), vec![0.0; 5]);
        assert_eq!(norm(&b).dtype(), DType::F32);
        assert_eq!(norm(&b).item(), 0.0);
    }

    #[test]
    fn second_derivative_at_zero_is_finite_and_at_one_is_right() {
        let z = Var::from(Tensor::zeros(&[2]));
        let h = gradient(|x: &Var| gradient(norm, x).sum(), &z);
        assert!(h.to_vec().iter().all(|v| v.is_finite()));
        // for a scalar, |x|'' = 0 away from 0
        let h = gradient(|x: &Var| gradient(norm, x), &Var::scalar(-2.0));
        assert_eq!(h.item(), 0.0);
    }

    #[test]
    fn scalar_and_matrix() {
        assert_eq!(norm(&Var::scalar(-4.0)).item(), 4.0);
        assert_eq!(norm(&Var::from(Tensor::ones(&[2, 2]))).item(), 2.0);
        assert_eq!(norm(&Var::from(Tensor::ones(&[2, 2]))).rank(), 0);
    }
}

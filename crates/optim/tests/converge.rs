//! The whole optimiser set converges on a convex function (an ill-conditioned quadratic) and a
//! non-convex one (Rosenbrock's banana), through autograd and `opt.update`.

use flux_autograd::{gradient_params, param, params, Var};
use flux_optim::*;
use flux_tensor::Tensor;

/// Minimises `f` from `x0` for `steps` steps; returns the final loss.
fn minimise(opt: &mut dyn Optimiser, x0: &[f64], steps: usize, f: impl Fn(&Var) -> Var) -> f64 {
    let x = param(Tensor::from_vec(x0.to_vec(), &[x0.len()]));
    let ps = params![&x];
    for _ in 0..steps {
        let gs = gradient_params(|| f(&x), &ps);
        opt.update(&ps, &gs);
    }
    f(&x).item()
}

fn quadratic(x: &Var) -> Var {
    let a = Var::from(Tensor::from_vec(vec![1.0, 10.0, 0.1, 3.0], &[4]));
    let c = Var::from(Tensor::from_vec(vec![1.0, -2.0, 3.0, 0.5], &[4]));
    (a * (x - c).powi(2)).sum()
}

/// Rosenbrock: `(1 - x)^2 + 100 (y - x^2)^2`, minimum 0 at (1, 1).
fn rosenbrock(v: &Var) -> Var {
    let x = Var::from(Tensor::from_vec(vec![1.0, 0.0], &[2]));
    let y = Var::from(Tensor::from_vec(vec![0.0, 1.0], &[2]));
    let px = (v * &x).sum();
    let py = (v * &y).sum();
    (1.0 - &px).powi(2) + 100.0 * (py - px.powi(2)).powi(2)
}

fn set() -> Vec<(Box<dyn Optimiser>, usize)> {
    vec![
        (Box::new(Descent::new(0.04)), 2000),
        (Box::new(Momentum::new(0.01)), 2000),
        (Box::new(Nesterov::new(0.01)), 2000),
        (Box::new(RMSProp::new(0.01)), 2000),
        (Box::new(Adam::new(0.05)), 2000),
        (Box::new(AdaMax::new(0.05)), 2000),
        (Box::new(AdaGrad::new(0.5)), 2000),
        (Box::new(AdaDelta::new(0.9).epsilon(1e-4)), 4000),
        (Box::new(AMSGrad::new(0.05)), 2000),
        (Box::new(NAdam::new(0.05)), 2000),
        (Box::new(AdamW::new(0.05)), 2000),
        (Box::new(optimiser_chain![ClipValue::new(1.0), Descent::new(0.04)]), 2000),
        (Box::new(optimiser_chain![ClipNorm::new(1.0), Momentum::new(0.01)]), 2000),
        (Box::new(optimiser_chain![WeightDecay::new(1e-6), Descent::new(0.04)]), 2000),
        (Box::new(optimiser_chain![Adam::new(0.05), ExpDecay::new(1.0).decay(0.5).decay_step(500)]), 2000),
    ]
}

#[test]
fn every_rule_converges_on_a_quadratic() {
    let x0 = [5.0, 5.0, -5.0, -5.0];
    let start = quadratic(&Var::from(Tensor::from_vec(x0.to_vec(), &[4]))).item();
    for (mut opt, steps) in set() {
        let name = opt.name();
        let end = minimise(opt.as_mut(), &x0, steps, quadratic);
        eprintln!("quadratic {name}: {start:.3} -> {end:.3e}");
        assert!(end < 1e-3, "{name} did not converge on the quadratic: {start} -> {end}");
    }
}

/// Rosenbrock's valley has curvature up to ~1000 and the adaptive rules step by about η, so
/// each rule gets a learning rate that fits the function.
fn rosenbrock_set() -> Vec<Box<dyn Optimiser>> {
    vec![
        Box::new(Descent::new(0.001)),
        Box::new(Momentum::new(0.0002)),
        Box::new(Nesterov::new(0.0002)),
        Box::new(RMSProp::new(0.001)),
        Box::new(Adam::new(0.002)),
        Box::new(AdaMax::new(0.002)),
        Box::new(AdaGrad::new(0.1)),
        // AdaDelta's step never falls below about √ϵ, so it settles within that of the minimum
        Box::new(AdaDelta::new(0.9).epsilon(1e-10)),
        Box::new(AMSGrad::new(0.005)),
        Box::new(NAdam::new(0.002)),
        Box::new(AdamW::new(0.002)),
        Box::new(optimiser_chain![ClipValue::new(1.0), Descent::new(0.001)]),
        Box::new(optimiser_chain![ClipNorm::new(1.0), Momentum::new(0.0002)]),
        Box::new(optimiser_chain![WeightDecay::new(1e-6), Descent::new(0.001)]),
        Box::new(optimiser_chain![Adam::new(0.01), ExpDecay::new(1.0).decay(0.5).decay_step(2000)]),
    ]
}

#[test]
fn every_rule_converges_on_rosenbrock() {
    let x0 = [-1.2, 1.0];
    let start = rosenbrock(&Var::from(Tensor::from_vec(x0.to_vec(), &[2]))).item();
    let mut failed = Vec::new();
    for mut opt in rosenbrock_set() {
        let name = opt.name();
        let end = minimise(opt.as_mut(), &x0, 20_000, rosenbrock);
        eprintln!("rosenbrock {name}: {start:.3} -> {end:.3e}");
        if !(end.is_finite() && end < 1e-3) {
            failed.push(format!("{name}: {start} -> {end}"));
        }
    }
    assert!(failed.is_empty(), "did not converge on Rosenbrock: {failed:#?}");
}

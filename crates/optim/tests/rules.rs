//! Every rule, step by step for 20 steps on a fixed quadratic, against (1) its formula written out
//! by hand here in plain f64 and (2) PyTorch's implementation where PyTorch has the same rule
//! (trajectories in `reference/mod.rs`). Tolerance: 1e-6 relative.

#![allow(mixed_script_confusables)]

mod reference;

use flux_autograd::{gradient_params, param, params, Var};
use flux_optim::*;
use flux_tensor::{DType, Tensor};

const A: [f64; 4] = [1.0, 2.0, 3.0, 0.5];
const C: [f64; 4] = [0.5, -1.0, 2.0, 1.0];
const X0: [f64; 4] = [1.0, -2.0, 0.5, 3.0];
const STEPS: usize = 20;
const EPS: f64 = 1e-8;

/// 20 steps of `opt` on `f(x) = sum(a .* (x - c).^2)` through autograd and `opt.update`.
fn run(opt: &mut dyn Optimiser) -> Vec<[f64; 4]> {
    let x = param(Tensor::from_vec(X0.to_vec(), &[4]));
    let a = Var::from(Tensor::from_vec(A.to_vec(), &[4]));
    let c = Var::from(Tensor::from_vec(C.to_vec(), &[4]));
    let ps = params![&x];
    let mut out = Vec::new();
    for _ in 0..STEPS {
        let gs = gradient_params(|| (&a * (&x - &c).powi(2)).sum(), &ps);
        opt.update(&ps, &gs);
        out.push(x.to_vec().try_into().unwrap());
    }
    out
}

/// The same problem by hand: `step(k, x, g)` returns Δ (1-based step k), `x -= Δ`.
fn reference(mut step: impl FnMut(usize, &[f64; 4], &[f64; 4]) -> [f64; 4]) -> Vec<[f64; 4]> {
    let mut x = X0;
    let mut out = Vec::new();
    for k in 1..=STEPS {
        let g: [f64; 4] = std::array::from_fn(|i| 2.0 * A[i] * (x[i] - C[i]));
        let d = step(k, &x, &g);
        for i in 0..4 {
            x[i] -= d[i];
        }
        out.push(x);
    }
    out
}

#[track_caller]
fn assert_close(what: &str, got: &[[f64; 4]], want: &[[f64; 4]], rtol: f64) {
    assert_eq!(got.len(), want.len());
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        for i in 0..4 {
            let tol = rtol * w[i].abs().max(1e-3);
            assert!((g[i] - w[i]).abs() <= tol, "{what}: step {} element {i}: got {}, want {} (diff {:e})", k + 1, g[i], w[i], (g[i] - w[i]).abs());
        }
    }
}

/// Moves: the trajectory is not constant (a rule that never steps would match a broken reference).
fn assert_moves(what: &str, traj: &[[f64; 4]]) {
    let moved: f64 = (0..4).map(|i| (traj[STEPS - 1][i] - X0[i]).abs()).sum();
    assert!(moved > 1e-3, "{what} did not move: {:?}", traj[STEPS - 1]);
}

fn map4(f: impl FnMut(usize) -> f64) -> [f64; 4] {
    std::array::from_fn(f)
}

#[test]
fn descent() {
    let eta = 0.1;
    let want = reference(|_, _, g| map4(|i| eta * g[i]));
    let got = run(&mut Descent::new(eta));
    assert_close("Descent vs formula", &got, &want, 1e-6);
    assert_close("Descent vs PyTorch SGD", &got, &reference::DESCENT, 1e-6);
    assert_moves("Descent", &got);
}

#[test]
fn momentum() {
    let (eta, rho): (f64, f64) = (0.01, 0.9);
    let mut v = [0.0; 4];
    let want = reference(|_, _, g| {
        map4(|i| {
            v[i] = rho * v[i] - eta * g[i];
            -v[i]
        })
    });
    let got = run(&mut Momentum::new(eta));
    assert_close("Momentum vs formula", &got, &want, 1e-6);
    assert_close("Momentum vs PyTorch SGD(momentum)", &got, &reference::MOMENTUM, 1e-6);
    assert_moves("Momentum", &got);
}

#[test]
fn nesterov() {
    let (eta, rho): (f64, f64) = (0.01, 0.9);
    let mut v = [0.0; 4];
    let want = reference(|_, _, g| {
        map4(|i| {
            let d = rho.powi(2) * v[i] - (1.0 + rho) * eta * g[i];
            v[i] = rho * v[i] - eta * g[i];
            -d
        })
    });
    let got = run(&mut Nesterov::new(eta));
    assert_close("Nesterov vs formula", &got, &want, 1e-6);
    assert_close("Nesterov vs PyTorch SGD(nesterov)", &got, &reference::NESTEROV, 1e-6);
    assert_moves("Nesterov", &got);
}

#[test]
fn rmsprop() {
    let (eta, rho): (f64, f64) = (0.01, 0.9);
    let mut acc = [0.0; 4];
    let want = reference(|_, _, g| {
        map4(|i| {
            acc[i] = rho * acc[i] + (1.0 - rho) * g[i].powi(2);
            g[i] * eta / (acc[i].sqrt() + EPS)
        })
    });
    let got = run(&mut RMSProp::new(eta));
    assert_close("RMSProp vs formula", &got, &want, 1e-6);
    assert_close("RMSProp vs PyTorch RMSprop(alpha=0.9)", &got, &reference::RMSPROP, 1e-6);
    assert_moves("RMSProp", &got);
}

fn adam_reference(eta: f64, wd: impl Fn(f64) -> f64) -> Vec<[f64; 4]> {
    let (b1, b2): (f64, f64) = (0.9, 0.999);
    let (mut m, mut v) = ([0.0; 4], [0.0; 4]);
    reference(|k, x, g| {
        map4(|i| {
            m[i] = b1 * m[i] + (1.0 - b1) * g[i];
            v[i] = b2 * v[i] + (1.0 - b2) * g[i].powi(2);
            let mhat = m[i] / (1.0 - b1.powi(k as i32));
            let vhat = v[i] / (1.0 - b2.powi(k as i32));
            eta * mhat / (vhat.sqrt() + EPS) + wd(x[i])
        })
    })
}

#[test]
fn adam() {
    let got = run(&mut Adam::new(0.1));
    assert_close("Adam vs formula", &got, &adam_reference(0.1, |_| 0.0), 1e-6);
    assert_close("Adam vs PyTorch Adam", &got, &reference::ADAM, 1e-6);
    assert_moves("Adam", &got);
}

#[test]
fn adamax() {
    let (eta, b1, b2): (f64, f64, f64) = (0.1, 0.9, 0.999);
    let (mut m, mut u) = ([0.0; 4], [0.0; 4]);
    let want = reference(|k, _, g| {
        map4(|i| {
            m[i] = b1 * m[i] + (1.0 - b1) * g[i];
            u[i] = f64::max(b2 * u[i], g[i].abs());
            eta / (1.0 - b1.powi(k as i32)) * m[i] / (u[i] + EPS)
        })
    });
    let got = run(&mut AdaMax::new(eta));
    assert_close("AdaMax vs formula", &got, &want, 1e-6);
    // PyTorch puts ϵ inside the max; with gradients of order 1 that is far below 1e-6.
    assert_close("AdaMax vs PyTorch Adamax", &got, &reference::ADAMAX, 1e-6);
    assert_moves("AdaMax", &got);
}

#[test]
fn adagrad() {
    let eta = 0.1;
    let mut acc = [EPS; 4];
    let want = reference(|_, _, g| {
        map4(|i| {
            acc[i] += g[i].powi(2);
            g[i] * eta / (acc[i].sqrt() + EPS)
        })
    });
    let got = run(&mut AdaGrad::new(eta));
    assert_close("AdaGrad vs formula", &got, &want, 1e-6);
    assert_close("AdaGrad vs PyTorch Adagrad(initial_accumulator_value=1e-8)", &got, &reference::ADAGRAD, 1e-6);
    assert_moves("AdaGrad", &got);
}

#[test]
fn adadelta() {
    let (rho, eps): (f64, f64) = (0.9, 1e-6);
    let (mut acc, mut dacc) = ([0.0; 4], [0.0; 4]);
    let want = reference(|_, _, g| {
        map4(|i| {
            acc[i] = rho * acc[i] + (1.0 - rho) * g[i].powi(2);
            let d = g[i] * (dacc[i] + eps).sqrt() / (acc[i] + eps).sqrt();
            dacc[i] = rho * dacc[i] + (1.0 - rho) * d.powi(2);
            d
        })
    });
    let got = run(&mut AdaDelta::new(rho).epsilon(eps));
    assert_close("AdaDelta vs formula", &got, &want, 1e-6);
    assert_close("AdaDelta vs PyTorch Adadelta(lr=1, eps=1e-6)", &got, &reference::ADADELTA, 1e-6);
    assert_moves("AdaDelta", &got);
}

#[test]
fn amsgrad() {
    let (eta, b1, b2): (f64, f64, f64) = (0.1, 0.9, 0.999);
    let (mut m, mut v, mut vh) = ([EPS; 4], [EPS; 4], [EPS; 4]);
    let want = reference(|_, _, g| {
        map4(|i| {
            m[i] = b1 * m[i] + (1.0 - b1) * g[i];
            v[i] = b2 * v[i] + (1.0 - b2) * g[i].powi(2);
            vh[i] = vh[i].max(v[i]);
            eta * m[i] / (vh[i].sqrt() + EPS)
        })
    });
    let got = run(&mut AMSGrad::new(eta));
    assert_close("AMSGrad vs formula", &got, &want, 1e-6);
    assert_moves("AMSGrad", &got);
}

#[test]
fn nadam() {
    let (eta, b1, b2): (f64, f64, f64) = (0.1, 0.9, 0.999);
    let (mut m, mut v) = ([0.0; 4], [0.0; 4]);
    let want = reference(|k, _, g| {
        let (b1p, b2p) = (b1.powi(k as i32), b2.powi(k as i32));
        map4(|i| {
            m[i] = b1 * m[i] + (1.0 - b1) * g[i];
            v[i] = b2 * v[i] + (1.0 - b2) * g[i].powi(2);
            let num = b1 * m[i] / (1.0 - b1 * b1p) + (1.0 - b1) * g[i] / (1.0 - b1p);
            eta * num / ((v[i] * b2 / (1.0 - b2p)).sqrt() + EPS)
        })
    });
    let got = run(&mut NAdam::new(eta));
    assert_close("NAdam vs formula", &got, &want, 1e-6);
    assert_moves("NAdam", &got);
}

#[test]
fn adamw_flux_form() {
    // Flux's ADAMW = Optimiser(ADAM(η, β), WeightDecay(decay)): decay not scaled by η.
    let decay = 0.1;
    let got = run(&mut AdamW::new(0.1).decay(decay));
    assert_close("AdamW vs formula", &got, &adam_reference(0.1, |x| decay * x), 1e-6);
    let chained = run(&mut optimiser_chain![Adam::new(0.1), WeightDecay::new(decay)]);
    assert_close("AdamW vs Adam then WeightDecay", &got, &chained, 1e-12);
}

#[test]
fn adamw_coupled_is_pytorch() {
    let (eta, decay) = (0.1, 0.1);
    let got = run(&mut AdamW::new(eta).decay(decay).couple_to_lr(true));
    assert_close("AdamW(coupled) vs formula", &got, &adam_reference(eta, |x| eta * decay * x), 1e-6);
    assert_close("AdamW(coupled) vs PyTorch AdamW", &got, &reference::ADAMW_COUPLED, 1e-6);
}

#[test]
fn weight_decay_then_descent_is_pytorch_sgd_weight_decay() {
    let (eta, wd) = (0.05, 0.1);
    let want = reference(|_, x, g| map4(|i| eta * (g[i] + wd * x[i])));
    let got = run(&mut optimiser_chain![WeightDecay::new(wd), Descent::new(eta)]);
    assert_close("WeightDecay+Descent vs formula", &got, &want, 1e-6);
    assert_close("WeightDecay+Descent vs PyTorch SGD(weight_decay)", &got, &reference::WEIGHTDECAY_DESCENT, 1e-6);
}

#[test]
fn clip_value() {
    let want = reference(|_, _, g| map4(|i| 0.1 * g[i].clamp(-0.5, 0.5)));
    let got = run(&mut optimiser_chain![ClipValue::new(0.5), Descent::new(0.1)]);
    assert_close("ClipValue+Descent vs formula", &got, &want, 1e-6);
    assert_close("ClipValue+Descent vs PyTorch clip_grad_value_", &got, &reference::CLIPVALUE_DESCENT, 1e-6);
    assert_moves("ClipValue", &got);
}

#[test]
fn clip_norm() {
    let want = reference(|_, _, g| {
        let n = g.iter().map(|v| v * v).sum::<f64>().sqrt();
        let s = if n > 1.0 { 1.0 / n } else { 1.0 };
        map4(|i| 0.05 * g[i] * s)
    });
    let got = run(&mut optimiser_chain![ClipNorm::new(1.0), Descent::new(0.05)]);
    assert_close("ClipNorm+Descent vs formula", &got, &want, 1e-6);
    // PyTorch divides by ‖g‖ + 1e-6; the gradient norms here are 1 to 11, so the two agree to
    // about 1e-6 relative in the step, far less in x.
    assert_close("ClipNorm+Descent vs PyTorch clip_grad_norm_", &got, &reference::CLIPNORM_DESCENT, 1e-6);
}

#[test]
fn exp_decay() {
    let mut eta = 1.0;
    let want = reference(|k, _, g| {
        if k % 5 == 0 {
            eta = f64::max(eta * 0.5, 1e-4);
        }
        map4(|i| 0.1 * g[i] * eta)
    });
    let got = run(&mut optimiser_chain![Descent::new(0.1), ExpDecay::new(1.0).decay(0.5).decay_step(5)]);
    assert_close("Descent+ExpDecay vs formula", &got, &want, 1e-6);
    assert_close("Descent+ExpDecay vs PyTorch StepLR", &got, &reference::DESCENT_EXPDECAY, 1e-6);
}

#[test]
fn exp_decay_clips_and_counts_steps_not_params() {
    let (w, b) = (param(1.0), param(1.0));
    let mut opt = ExpDecay::new(1.0).decay(0.1).decay_step(1).clip(0.05);
    for _ in 0..3 {
        opt.apply_step(&w, &mut [1.0]);
        opt.apply_step(&b, &mut [1.0]);
    }
    // three optimiser steps with two parameters each: 1 -> 0.1 -> 0.05 (clipped) -> 0.05
    assert_eq!(opt.lr(), Some(0.05));
    let mut opt = ExpDecay::new(1.0).decay(0.5).decay_step(2);
    for _ in 0..4 {
        opt.apply_step(&w, &mut [1.0]);
        opt.apply_step(&b, &mut [1.0]);
    }
    assert_eq!(opt.lr(), Some(0.25));
}

#[test]
fn inv_decay() {
    let gamma = 0.5;
    let want = reference(|k, _, g| map4(|i| 0.1 * g[i] / (1.0 + gamma * k as f64)));
    let got = run(&mut optimiser_chain![Descent::new(0.1), InvDecay::new(gamma)]);
    assert_close("Descent+InvDecay vs formula", &got, &want, 1e-6);
}

#[test]
fn flux_defaults() {
    assert_eq!(Descent::default().eta, 0.1);
    let m = Momentum::default();
    assert_eq!((m.eta, m.rho), (0.01, 0.9));
    let n = Nesterov::default();
    assert_eq!((n.eta, n.rho), (0.001, 0.9));
    let r = RMSProp::default();
    assert_eq!((r.eta, r.rho, r.epsilon), (0.001, 0.9, 1e-8));
    for (eta, b1, b2) in [
        (Adam::default().eta, Adam::default().beta1, Adam::default().beta2),
        (AdaMax::default().eta, AdaMax::default().beta1, AdaMax::default().beta2),
        (AMSGrad::default().eta, AMSGrad::default().beta1, AMSGrad::default().beta2),
        (NAdam::default().eta, NAdam::default().beta1, NAdam::default().beta2),
        (AdamW::default().eta, AdamW::default().beta1, AdamW::default().beta2),
    ] {
        assert_eq!((eta, b1, b2), (0.001, 0.9, 0.999));
    }
    assert_eq!(AdamW::default().decay, 0.0);
    assert_eq!(AdaGrad::default().eta, 0.1);
    assert_eq!(AdaDelta::default().rho, 0.9);
    assert_eq!(WeightDecay::default().wd, 0.0);
    let e = ExpDecay::default();
    assert_eq!((e.eta, e.decay, e.decay_step, e.clip), (0.001, 0.1, 1000, 1e-4));
    assert_eq!(Adam::new(0.001).to_string(), "Adam(0.001, (0.9, 0.999))");
}

#[test]
fn set_lr_mid_training_keeps_state() {
    // Two runs of Momentum: one with the learning rate halved after 10 steps by set_lr, one by
    // hand. Momentum's velocity must carry over.
    let mut opt = Momentum::new(0.01);
    let x = param(Tensor::from_vec(X0.to_vec(), &[4]));
    let a = Var::from(Tensor::from_vec(A.to_vec(), &[4]));
    let c = Var::from(Tensor::from_vec(C.to_vec(), &[4]));
    let ps = params![&x];
    let mut got = Vec::new();
    for k in 1..=STEPS {
        if k == 11 {
            opt.set_lr(0.005);
        }
        let gs = gradient_params(|| (&a * (&x - &c).powi(2)).sum(), &ps);
        opt.update(&ps, &gs);
        got.push(x.to_vec().try_into().unwrap());
    }
    let mut v = [0.0; 4];
    let want = reference(|k, _, g| {
        let eta = if k > 10 { 0.005 } else { 0.01 };
        map4(|i| {
            v[i] = 0.9 * v[i] - eta * g[i];
            -v[i]
        })
    });
    assert_close("Momentum with set_lr", &got, &want, 1e-6);
}

#[test]
fn chain_lr_is_first_rule_with_one() {
    let mut c = optimiser_chain![ClipNorm::new(1.0), Adam::new(0.1), ExpDecay::new(1.0)];
    assert_eq!(c.lr(), Some(0.1));
    c.set_lr(0.2);
    assert_eq!(c.rules()[1].lr(), Some(0.2));
    assert_eq!(c.rules()[2].lr(), Some(1.0));
}

#[test]
fn f32_parameters_stay_f32() {
    let w = param(Tensor::from_vec(vec![1.0f32, -1.0], &[2]));
    let ps = params![&w];
    let mut opt = Adam::new(0.1);
    for _ in 0..5 {
        let gs = gradient_params(|| w.powi(2).sum(), &ps);
        opt.update(&ps, &gs);
    }
    assert_eq!(w.dtype(), DType::F32);
    assert!(w.to_vec().iter().all(|v| v.abs() < 1.0));
}

#[test]
fn update_errors_change_nothing() {
    let w = param(Tensor::from_vec(vec![1.0, 2.0], &[2]));
    let b = param(1.0);
    let ps = params![&w, &b];
    let mut gs = gradient_params(|| w.sum() + &b, &ps);
    gs.set(&b, Var::from(Tensor::zeros(&[3])));
    let mut opt = Momentum::new(0.1);
    let e = opt.try_update(&ps, &gs).unwrap_err();
    assert!(matches!(e, OptimError::GradShape { .. }), "{e}");
    assert_eq!(w.to_vec(), vec![1.0, 2.0]);
    assert!(opt.param_state_json(w.id()).is_none());
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| opt.update(&ps, &gs)));
    assert!(r.is_err());
}

#[test]
fn apply_returns_the_step() {
    let w = param(Tensor::from_vec(vec![1.0, 2.0], &[2]));
    let d = Descent::new(0.5).apply(&w, &Tensor::from_vec(vec![2.0, 4.0], &[2]));
    assert_eq!(d.to_vec(), vec![1.0, 2.0]);
    assert_eq!(d.shape(), &[2]);
}

#[test]
fn boxed_optimisers_work() {
    let mut opts: Vec<Box<dyn Optimiser>> = vec![Box::new(Adam::new(0.1)), Box::new(Descent::new(0.1))];
    for o in &mut opts {
        let got = run(o.as_mut());
        assert_moves(&o.name(), &got);
    }
    let w = param(1.0);
    let mut b: Box<dyn Optimiser> = Box::new(Momentum::new(0.1));
    b.step(&w, &Tensor::scalar(1.0)).unwrap();
    assert!((w.item() - 0.9).abs() < 1e-12);
}

//! The training loop, callbacks, throttle and DataLoader.

use std::ops::ControlFlow;
use std::time::Duration;

use flux_autograd::{param, params, Var};
use flux_optim::*;
use flux_tensor::rand::rngs::StdRng;
use flux_tensor::rand::SeedableRng;
use flux_tensor::{seed, Tensor};

/// x: [3, n] with sample j = [j, 100 + j, 200 + j]; y: [n] with sample j = j.
fn numbered(n: usize) -> (Tensor, Tensor) {
    let x: Vec<f64> = (0..n).flat_map(|j| [j as f64, 100.0 + j as f64, 200.0 + j as f64]).collect();
    let y: Vec<f64> = (0..n).map(|j| j as f64).collect();
    (Tensor::from_vec(x, &[3, n]), Tensor::from_vec(y, &[n]))
}

fn ids(batches: &DataLoader) -> Vec<Vec<usize>> {
    batches.iter().map(|(_, y)| y.to_vec().into_iter().map(|v| v as usize).collect()).collect()
}

#[test]
fn batches_in_order_with_partial_last() {
    let (x, y) = numbered(10);
    let l = DataLoader::new(x, y, 4);
    assert_eq!(l.len(), 3);
    assert_eq!(ids(&l), vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7], vec![8, 9]]);
    let (x0, _) = l.iter().next().unwrap();
    assert_eq!(x0.shape(), &[3, 4]);
    // columns stay whole: sample 1 is [1, 101, 201]
    assert_eq!(&x0.to_vec()[3..6], &[1.0, 101.0, 201.0]);
}

#[test]
fn partial_false_drops_the_last_batch() {
    let (x, y) = numbered(10);
    let l = DataLoader::new(x, y, 4).partial(false);
    assert_eq!(l.len(), 2);
    assert_eq!(ids(&l), vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7]]);
    let (x, y) = numbered(8);
    assert_eq!(DataLoader::new(x, y, 4).partial(false).len(), 2);
}

#[test]
fn shuffling_is_a_permutation_and_keeps_pairs_together() {
    let (x, y) = numbered(23);
    let l = DataLoader::new(x, y, 5).seed(3);
    let mut seen = Vec::new();
    for (xb, yb) in &l {
        let xs = xb.to_vec();
        for (k, j) in yb.to_vec().into_iter().enumerate() {
            assert_eq!(&xs[3 * k..3 * k + 3], &[j, 100.0 + j, 200.0 + j]);
            seen.push(j as usize);
        }
    }
    assert_ne!(seen, (0..23).collect::<Vec<_>>(), "shuffled order should differ from 0..n");
    seen.sort();
    assert_eq!(seen, (0..23).collect::<Vec<_>>());
}

#[test]
fn shuffling_is_reproducible_and_differs_between_epochs() {
    let (x, y) = numbered(50);
    let a = DataLoader::new(x.clone(), y.clone(), 10).seed(42);
    let b = DataLoader::new(x.clone(), y.clone(), 10).seed(42);
    let (a1, a2) = (ids(&a), ids(&a));
    assert_eq!(a1, ids(&b));
    assert_eq!(a2, ids(&b));
    assert_ne!(a1, a2, "each epoch draws a new order");
    let c = DataLoader::new(x.clone(), y.clone(), 10).rng(StdRng::seed_from_u64(42));
    assert_eq!(ids(&c), a1);
    // without its own generator, the thread's default one (flux::seed) decides
    let d = DataLoader::new(x, y, 10).shuffle(true);
    seed(9);
    let d1 = ids(&d);
    seed(9);
    assert_eq!(ids(&d), d1);
}

#[test]
fn loader_checks_its_input() {
    let e = DataLoader::try_new(Tensor::zeros(&[2, 5]), Tensor::zeros(&[4]), 2).unwrap_err();
    assert!(e.to_string().contains("5") && e.to_string().contains("4"), "{e}");
    assert!(DataLoader::try_new(Tensor::zeros(&[2, 5]), Tensor::zeros(&[5]), 0).is_err());
    assert!(DataLoader::try_new(Tensor::scalar(1.0), Tensor::zeros(&[1]), 1).is_err());
    // 3-d data: batches along the last dimension
    let l = DataLoader::new(Tensor::zeros(&[2, 3, 7]), Tensor::zeros(&[1, 7]), 3);
    assert_eq!(l.iter().next().unwrap().0.shape(), &[2, 3, 3]);
    assert_eq!(l.iter().last().unwrap().0.shape(), &[2, 3, 1]);
}

#[test]
fn train_fits_a_line_from_a_loader() {
    seed(1);
    let x = Tensor::rand(&[1, 200]);
    let y = x.map(|v| 3.0 * v - 1.0);
    let (w, b) = (param(Tensor::zeros(&[1, 1])), param(Tensor::zeros(&[1])));
    let ps = params![&w, &b];
    let loss = |x: &Var, y: &Var| flux_layers_free_mse(&(w.matmul(x) + &b), y);
    let data = DataLoader::new(x, y, 20).seed(5);
    let mut opt = Adam::new(0.05);
    let mut last = f64::INFINITY;
    for _ in 0..60 {
        let s = train(loss, &ps, &data, &mut opt);
        assert_eq!(s.steps, 10);
        last = s.mean_loss;
    }
    assert!(last < 1e-4, "{last}");
    assert!((w.item() - 3.0).abs() < 0.02 && (b.item() + 1.0).abs() < 0.02);
}

fn flux_layers_free_mse(a: &Var, b: &Var) -> Var {
    (a - b).powi(2).mean()
}

#[test]
fn train_accepts_pairs_of_vars_and_tensors() {
    let w = param(0.0);
    let ps = params![&w];
    let loss = |x: &Var, y: &Var| (&w * x - y).powi(2);
    let vars = vec![(Var::scalar(1.0), Var::scalar(2.0)); 5];
    let tensors = vec![(Tensor::scalar(1.0), Tensor::scalar(2.0)); 5];
    assert_eq!(train(loss, &ps, &vars, &mut Descent::new(0.1)).steps, 5);
    assert_eq!(train(loss, &ps, vars, &mut Descent::new(0.1)).steps, 5);
    assert_eq!(train(loss, &ps, &tensors, &mut Descent::new(0.1)).steps, 5);
    assert_eq!(train(loss, &ps, tensors, &mut Descent::new(0.1)).steps, 5);
    // a boxed optimiser
    let mut boxed: Box<dyn Optimiser> = Box::new(Momentum::new(0.1));
    assert_eq!(train(loss, &ps, vec![(Var::scalar(1.0), Var::scalar(2.0)); 3], &mut *boxed).steps, 3);
    assert!((w.item() - 2.0).abs() < 0.1);
}

#[test]
fn callback_stops_early_after_the_step() {
    let w = param(0.0);
    let ps = params![&w];
    let data = vec![(Var::scalar(1.0), Var::scalar(2.0)); 100];
    let mut seen = Vec::new();
    let s = train_with(
        |x: &Var, y: &Var| (&w * x - y).powi(2),
        &ps,
        &data,
        &mut Descent::new(0.1),
        |e: &TrainEvent| {
            seen.push(e.step);
            if e.step == 7 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        },
    );
    assert_eq!(seen, (1..=7).collect::<Vec<_>>());
    assert_eq!(s.steps, 7);
    assert!(s.stopped_early);
    // the 7th update was applied: w = 2 (1 - 0.8^7)
    assert!((w.item() - 2.0 * (1.0 - 0.8f64.powi(7))).abs() < 1e-12);
}

#[test]
fn callback_sees_the_loss_before_the_update() {
    let w = param(0.0);
    let data = vec![(Var::scalar(1.0), Var::scalar(2.0)); 3];
    let mut losses = Vec::new();
    train_with(|x: &Var, y: &Var| (&w * x - y).powi(2), &params![&w], &data, &mut Descent::new(0.1), |e: &TrainEvent| losses.push(e.loss));
    let want: Vec<f64> = (0..3).map(|k| (2.0 * 0.8f64.powi(k)).powi(2)).collect();
    for (g, w) in losses.iter().zip(&want) {
        assert!((g - w).abs() < 1e-12);
    }
}

#[test]
fn non_finite_loss_stops_before_updating() {
    let w = param(1.0);
    let data = vec![(Var::scalar(1.0), Var::scalar(0.0)), (Var::scalar(0.0), Var::scalar(0.0))];
    let r = try_train_with(|x: &Var, _: &Var| (&w * x).ln() * -1.0, &params![&w], &data, &mut Descent::new(0.1), |_: &TrainEvent| ());
    match r {
        Err(OptimError::NonFiniteLoss { step, loss }) => {
            assert_eq!(step, 2);
            assert!(loss.is_infinite());
        }
        other => panic!("expected NonFiniteLoss, got {other:?}"),
    }
    // only the first step was applied: d/dw (-ln w) = -1/w = -1 at w = 1
    assert!((w.item() - 1.1).abs() < 1e-12);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        train(|x: &Var, _: &Var| (&w * x).ln(), &params![&w], &data[1..], &mut Descent::new(0.1));
    }));
    assert!(r.is_err());
}

#[test]
fn throttle_calls_at_most_once_per_interval() {
    let mut n = 0;
    {
        let mut f = throttle(
            || {
                n += 1;
            },
            0.05,
        );
        assert!(f().is_some());
        assert!(f().is_none());
        assert!(f().is_none());
        std::thread::sleep(Duration::from_millis(70));
        assert!(f().is_some());
        assert!(f().is_none());
    }
    assert_eq!(n, 2);
    let mut zero = throttle(|| 1, 0.0);
    assert_eq!((zero(), zero()), (Some(1), Some(1)));
}

#[test]
fn throttled_callback_can_stop_training() {
    let w = param(0.0);
    let data = vec![(Var::scalar(1.0), Var::scalar(2.0)); 50];
    let mut calls = 0;
    let s = train_with(
        |x: &Var, y: &Var| (&w * x - y).powi(2),
        &params![&w],
        &data,
        &mut Descent::new(0.1),
        throttle_event(
            |e: &TrainEvent| {
                calls += 1;
                if e.step >= 1 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
            3600.0,
        ),
    );
    assert_eq!(calls, 1);
    assert_eq!(s.steps, 1);
}

#[test]
fn progress_switch() {
    set_progress(true);
    assert!(progress_enabled());
    // a short run prints nothing even when on (the line starts after two seconds)
    let w = param(0.0);
    train(|x: &Var, y: &Var| (&w * x - y).powi(2), &params![&w], vec![(Var::scalar(1.0), Var::scalar(1.0))], &mut Descent::new(0.1));
    set_progress(false);
    assert!(!progress_enabled());
}

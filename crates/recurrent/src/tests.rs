//! Unit tests of the fused LSTM path against the step-by-step reference.

use flux_autograd::{gradient, gradient_params, gradients, param, params, Grads, Params, Var};
use flux_layers::{params as model_params, Layer};
use flux_tensor::Tensor;

use crate::cells::lstm_step;
use crate::{LSTMCell, RecurrentCell, LSTM};

fn close(a: &Var, b: &Var, tol: f64) {
    assert_eq!(a.shape(), b.shape());
    let (x, y) = (a.to_vec(), b.to_vec());
    for (p, q) in x.iter().zip(&y) {
        assert!((p - q).abs() <= tol * (1.0 + q.abs()), "{p} vs {q}\n{x:?}\n{y:?}");
    }
}

fn seq(n_in: usize, batch: Option<usize>, t: usize) -> Vec<Var> {
    (0..t)
        .map(|_| match batch {
            Some(b) => Var::from(Tensor::randn(&[n_in, b])),
            None => Var::from(Tensor::randn(&[n_in])),
        })
        .collect()
}

fn f64_cell(n_in: usize, h: usize) -> LSTMCell {
    let p = |s: &[usize]| param(Tensor::randn(s) * 0.5);
    LSTMCell::from_parts(p(&[4 * h, n_in]), p(&[4 * h, h]), p(&[4 * h])).unwrap()
}

/// Gradients over `ps` of `sum(h_t .* w)` over every `every`-th step plus `sum(c_T)`, through
/// the fused sequence and through the unrolled cell.
fn fused_and_unrolled(cell: &LSTMCell, xs: &[Var], h0: &Var, c0: &Var, w: &Var, every: usize, ps: &Params) -> (Grads, Grads) {
    let fused = gradient_params(
        || {
            let ((_, c), ys) = cell.step_seq(&(h0.clone(), c0.clone()), xs);
            ys.iter().step_by(every).map(|y| (y * w).sum()).sum::<Var>() + c.sum()
        },
        ps,
    );
    let unrolled = gradient_params(
        || {
            let (mut h, mut c) = (h0.clone(), c0.clone());
            let mut l = Vec::new();
            for (t, x) in xs.iter().enumerate() {
                (h, c) = lstm_step(cell.wi(), cell.wh(), cell.b(), &h, &c, x);
                if t % every == 0 {
                    l.push((&h * w).sum());
                }
            }
            l.into_iter().sum::<Var>() + c.sum()
        },
        ps,
    );
    (fused, unrolled)
}

#[test]
fn fused_forward_matches_steps_f32_and_f64() {
    flux_tensor::seed(3);
    for batch in [None, Some(1), Some(4)] {
        let cell = LSTMCell::new(3, 5);
        let xs: Vec<Var> = seq(3, batch, 7).iter().map(|x| x.to_f32()).collect();
        let s0 = cell.zero_state();
        let ((h, c), ys) = cell.step_seq(&s0, &xs);
        let mut s = s0.clone();
        for (x, y) in xs.iter().zip(&ys) {
            let (s2, y2) = cell.step(&s, x);
            s = s2;
            close(y, &y2, 1e-5);
        }
        close(&h, &s.0, 1e-5);
        close(&c, &s.1, 1e-5);
        let cell = f64_cell(3, 5);
        let xs = seq(3, batch, 7);
        let ((h, c), ys) = cell.step_seq(&cell.zero_state(), &xs);
        let mut s = cell.zero_state();
        for (x, y) in xs.iter().zip(&ys) {
            let (s2, y2) = cell.step(&s, x);
            s = s2;
            close(y, &y2, 1e-12);
        }
        close(&h, &s.0.to_f64(), 1e-12);
        close(&c, &s.1.to_f64(), 1e-12);
    }
}

#[test]
fn fused_gradients_match_unrolled() {
    flux_tensor::seed(4);
    let cell = f64_cell(3, 4);
    let xs: Vec<Var> = seq(3, Some(2), 6).into_iter().map(|x| param(x.data())).collect();
    let h0 = param(Tensor::randn(&[4, 2]));
    let c0 = param(Tensor::randn(&[4, 2]));
    let w = Var::from(Tensor::randn(&[4, 2]));
    let mut ps = params![cell.wi(), cell.wh(), cell.b(), &h0, &c0];
    for x in &xs {
        ps.push(x);
    }
    // a loss over every step and the final cell state
    let fused = gradient_params(
        || {
            let ((_, c), ys) = cell.step_seq(&(h0.clone(), c0.clone()), &xs);
            ys.iter().map(|y| (y * &w).tanh().sum()).sum::<Var>() + c.powi(2).sum()
        },
        &ps,
    );
    let unrolled = gradient_params(
        || {
            let (mut h, mut c) = (h0.clone(), c0.clone());
            let mut l = Vec::new();
            for x in &xs {
                (h, c) = lstm_step(cell.wi(), cell.wh(), cell.b(), &h, &c, x);
                l.push((&h * &w).tanh().sum());
            }
            l.into_iter().sum::<Var>() + c.powi(2).sum()
        },
        &ps,
    );
    for p in ps.iter() {
        close(&fused[p], &unrolled[p], 1e-10);
    }
}

#[test]
fn fused_second_order_matches_unrolled() {
    flux_tensor::seed(5);
    let cell = f64_cell(2, 3);
    let xs = seq(2, Some(2), 4);
    let x0 = Tensor::randn(&[2, 2]);
    let v = Var::from(Tensor::randn(&[2, 2]));
    let loss_fused = |x: &Var| {
        let mut all = vec![x.clone()];
        all.extend(xs.iter().cloned());
        let (_, ys) = cell.step_seq(&cell.zero_state(), &all);
        ys.iter().map(|y| y.powi(2).sum()).sum::<Var>()
    };
    let loss_steps = |x: &Var| {
        let mut s = cell.zero_state();
        let mut l = Vec::new();
        for x in std::iter::once(x).chain(xs.iter()) {
            let (s2, y) = cell.step(&s, x);
            s = s2;
            l.push(y.powi(2).sum());
        }
        l.into_iter().sum::<Var>()
    };
    let hvp = |l: &dyn Fn(&Var) -> Var| gradient(|x: &Var| (gradient(l, x) * &v).sum(), &Var::from(x0.clone()));
    close(&hvp(&loss_fused), &hvp(&loss_steps), 1e-9);
    // and w.r.t. the weights, through gradients of several arguments
    let g = |use_fused: bool| {
        gradients(
            |a: &[Var]| {
                let c = LSTMCell::from_parts(a[0].clone(), a[1].clone(), a[2].clone()).unwrap();
                let inner = gradients(
                    |b: &[Var]| {
                        let c2 = LSTMCell::from_parts(b[0].clone(), c.wh().clone(), c.b().clone()).unwrap();
                        let ys = if use_fused {
                            c2.step_seq(&c2.zero_state(), &xs).1
                        } else {
                            xs.iter()
                                .scan(c2.zero_state(), |s, x| {
                                    let (s2, y) = c2.step(s, x);
                                    *s = s2;
                                    Some(y)
                                })
                                .collect()
                        };
                        ys.iter().map(|y| y.tanh().sum()).sum::<Var>()
                    },
                    std::slice::from_ref(&a[0]),
                );
                inner[0].powi(2).sum()
            },
            &[cell.wi().clone(), cell.wh().clone(), cell.b().clone()],
        )
    };
    for (a, b) in g(true).iter().zip(&g(false)) {
        close(a, b, 1e-9);
    }
}

#[test]
fn unused_steps_and_untracked_inputs() {
    let m = LSTM::new(3, 4);
    let xs = seq(3, Some(2), 5);
    let ys = m.forward_seq(&xs);
    let ps = model_params(&m);
    // only the third output is used
    let gs = gradient_params(|| ys[2].sum(), &ps);
    assert!(gs.iter().all(|(_, g)| !g.data().has_nan()));
    let again = gradient_params(|| ys[2].sum(), &ps);
    for p in ps.iter() {
        close(&gs[p], &again[p], 1e-6);
    }
}

/// Runs `f` with every fused sequence split into `parts` chunks and parties, whatever the cost
/// model says (more parties than the pool has threads start late and find work taken).
fn split_into<R>(parts: usize, f: impl FnOnce() -> R) -> R {
    crate::fused::FORCE_SPLIT.set(Some(parts));
    let r = f();
    crate::fused::FORCE_SPLIT.set(None);
    r
}

#[test]
fn threads_splitting_the_hidden_units_match_steps() {
    split_into(2, threads_splitting_the_hidden_units_match_steps_body);
    split_into(5, threads_splitting_the_hidden_units_match_steps_body);
}

fn threads_splitting_the_hidden_units_match_steps_body() {
    flux_tensor::seed(8);
    // two chunks of 16 hidden units each (or as many as 16-unit chunks allow)
    let cell = f64_cell(8, 32);
    let xs: Vec<Var> = seq(8, Some(48), 70).into_iter().map(|x| param(x.data())).collect();
    let h0 = param(Tensor::randn(&[32, 48]));
    let c0 = param(Tensor::randn(&[32, 48]));
    let mut ps = params![cell.wi(), cell.wh(), cell.b(), &h0, &c0];
    ps.push(&xs[3]);
    let w = Var::from(Tensor::randn(&[32, 48]));
    let (fused, unrolled) = fused_and_unrolled(&cell, &xs, &h0, &c0, &w, 7, &ps);
    for p in ps.iter() {
        close(&fused[p], &unrolled[p], 1e-9);
    }
    // f32 through the register-blocked kernel
    let cell = LSTMCell::new(8, 32);
    let xs: Vec<Var> = seq(8, Some(48), 70).iter().map(|x| x.to_f32()).collect();
    let ((h, c), ys) = cell.step_seq(&cell.zero_state(), &xs);
    let mut s = cell.zero_state();
    for (x, y) in xs.iter().zip(&ys) {
        let (s2, y2) = cell.step(&s, x);
        s = s2;
        close(y, &y2, 1e-4);
    }
    close(&h, &s.0, 1e-4);
    close(&c, &s.1, 1e-4);
}

#[test]
fn forward_without_recording_matches_steps() {
    split_into(2, forward_without_recording_matches_steps_body);
    split_into(3, forward_without_recording_matches_steps_body);
}

fn forward_without_recording_matches_steps_body() {
    // under no_grad the fused path keeps nothing for backward and splits the hidden units over
    // the threads: f32 through the packed kernel (batches of 16k), f64 and ragged shapes through
    // the general GEMM, an odd hidden size split unevenly
    flux_tensor::seed(9);
    for (n_in, hidden, batch, t, f32) in [(64, 256, Some(32), 12, true), (8, 33, Some(48), 9, true), (3, 5, None, 6, false), (6, 37, Some(5), 8, false)] {
        let cell = if f32 { LSTMCell::new(n_in, hidden) } else { f64_cell(n_in, hidden) };
        let xs: Vec<Var> = seq(n_in, batch, t).iter().map(|x| if f32 { x.to_f32() } else { x.clone() }).collect();
        let state_shape = match batch {
            Some(b) => vec![hidden, b],
            None => vec![hidden],
        };
        let random = |s: &[usize]| {
            let t = Tensor::randn(s);
            Var::from(if f32 { t.to_f32() } else { t })
        };
        let s0 = (random(&state_shape), random(&state_shape));
        let ((h, c), ys) = flux_autograd::no_grad(|| cell.step_seq(&s0, &xs));
        assert!(!h.is_tracked());
        let mut s = s0.clone();
        let tol = if f32 { 1e-4 } else { 1e-12 };
        for (x, y) in xs.iter().zip(&ys) {
            let (s2, y2) = cell.step(&s, x);
            s = s2;
            close(y, &y2, tol);
        }
        close(&h, &s.0, tol);
        close(&c, &s.1, tol);
    }
}

#[test]
fn inference_reuses_stacked_weights_only_while_they_are_the_same() {
    split_into(2, inference_reuses_stacked_weights_only_while_they_are_the_same_body);
}

fn inference_reuses_stacked_weights_only_while_they_are_the_same_body() {
    // the second pass finds the first one's stacked weights; after the weights change (an
    // update, a load) a pass must use the new values, never the kept ones
    flux_tensor::seed(11);
    let cell = LSTMCell::new(16, 48);
    let xs: Vec<Var> = seq(16, Some(32), 6).iter().map(|x| x.to_f32()).collect();
    let s0 = (Var::from(Tensor::zeros(&[48, 32]).to_f32()), Var::from(Tensor::zeros(&[48, 32]).to_f32()));
    let check = |cell: &LSTMCell| {
        let ((h, _), _) = flux_autograd::no_grad(|| cell.step_seq(&s0, &xs));
        let mut s = s0.clone();
        for x in &xs {
            s = cell.step(&s, x).0;
        }
        close(&h, &s.0, 1e-4);
    };
    check(&cell);
    check(&cell);
    for w in [cell.wi(), cell.wh(), cell.b()] {
        w.set_data(w.data().map(|v| 1.5 * v + 0.1));
        check(&cell);
    }
}

#[test]
fn a_zero_initial_state_skips_its_product_but_not_a_nan_weight() {
    // from a zero state the first step multiplies only x and the bias (the packed kernel,
    // f32, batch 32); a NaN in Wh must still reach the outputs as it does step by step
    flux_tensor::seed(12);
    let cell = LSTMCell::new(16, 48);
    let xs: Vec<Var> = seq(16, Some(32), 3).iter().map(|x| x.to_f32()).collect();
    let zero = || Var::from(Tensor::zeros(&[48, 32]).to_f32());
    let s0 = (zero(), zero());
    let run = |cell: &LSTMCell| {
        let ((h, c), ys) = flux_autograd::no_grad(|| cell.step_seq(&s0, &xs));
        let mut s = s0.clone();
        let mut want = Vec::new();
        for x in &xs {
            let (s2, y) = cell.step(&s, x);
            s = s2;
            want.push(y);
        }
        (ys, want, h, c, s)
    };
    let (ys, want, h, c, s) = run(&cell);
    for (y, w) in ys.iter().zip(&want) {
        close(y, w, 1e-4);
    }
    close(&h, &s.0, 1e-4);
    close(&c, &s.1, 1e-4);
    let mut wh = cell.wh().data().to_vec();
    wh[5] = f64::NAN;
    cell.wh().set_data(Tensor::from_vec(wh, &[4 * 48, 48]).to_f32());
    let (ys, want, ..) = run(&cell);
    let nan = |v: &Var| v.to_vec().iter().map(|x| x.is_nan()).collect::<Vec<_>>();
    assert!(nan(&want[0]).iter().any(|&b| b), "the reference shows the NaN at the first step");
    assert_eq!(nan(&ys[0]), nan(&want[0]));
}

#[test]
fn f32_gradients_through_the_packed_kernel_on_two_threads_match_unrolled() {
    split_into(2, f32_gradients_through_the_packed_kernel_on_two_threads_match_unrolled_body);
    split_into(3, f32_gradients_through_the_packed_kernel_on_two_threads_match_unrolled_body);
}

fn f32_gradients_through_the_packed_kernel_on_two_threads_match_unrolled_body() {
    // batch 32 (the register-blocked kernel), 56 units over two threads (28 each: panels of 12
    // columns that straddle gate blocks), long enough to split
    flux_tensor::seed(10);
    let cell = LSTMCell::new(8, 56);
    let xs: Vec<Var> = seq(8, Some(32), 70).iter().map(|x| param(x.data().to_f32())).collect();
    let h0 = param(Tensor::randn(&[56, 32]).to_f32());
    let c0 = param(Tensor::randn(&[56, 32]).to_f32());
    let w = Var::from(Tensor::randn(&[56, 32]).to_f32());
    let mut ps = params![cell.wi(), cell.wh(), cell.b(), &h0, &c0];
    ps.push(&xs[0]);
    ps.push(&xs[69]);
    let (fused, unrolled) = fused_and_unrolled(&cell, &xs, &h0, &c0, &w, 5, &ps);
    for p in ps.iter() {
        close(&fused[p], &unrolled[p], 2e-3);
    }
}

/// Many short-lived threads using one model leave no state behind: each thread's state is
/// freed when the thread ends, and the model's table is empty again.
#[test]
fn finished_threads_leave_no_state() {
    let m = std::sync::Arc::new(LSTM::new(4, 16));
    let x = Var::from(Tensor::ones(&[4, 8]).to_f32());
    for _ in 0..300 {
        let (m, x) = (m.clone(), x.clone());
        std::thread::spawn(move || {
            m.forward(&x);
            assert_eq!(m.live_states(), m.live_states().max(1));
        })
        .join()
        .unwrap();
    }
    assert_eq!(m.live_states(), 0);
    m.forward(&x);
    assert_eq!(m.live_states(), 1);
    flux_layers::to_f64(&*m);
    assert_eq!(m.live_states(), 0, "a dtype change restarts every thread from init");
}

//! SPEC §3's recurrence cells as written, and the semantics of §5: `truncate`, `reset`, the
//! state following the batch, the fused sequence path equal to stepping.

use flux_autograd::{gradient_params, param, params, Var};
use flux_layers::{chain, identity, named_params, params as model_params, to_f64, Dense, Layer};
use flux_recurrent::{reset, truncate, GRUCell, LSTMCell, RNNCell, Recur, RecurrentCell, GRU, LSTM, RNN};
use flux_tensor::{DType, Tensor};
use proptest::prelude::*;

fn close(a: &Var, b: &Var, tol: f64) {
    assert_eq!(a.shape(), b.shape());
    for (p, q) in a.to_vec().iter().zip(&b.to_vec()) {
        assert!((p - q).abs() <= tol * (1.0 + q.abs()), "{p} vs {q}");
    }
}

fn rand(shape: &[usize]) -> Var {
    Var::from(Tensor::rand(shape))
}

#[test]
fn seed_hand_written_rnn() {
    flux_tensor::seed(22);
    let wxh = Var::from(Tensor::randn(&[5, 10]));
    let whh = Var::from(Tensor::randn(&[5, 5]));
    let b = Var::from(Tensor::randn(&[5]));
    let rnn = move |h: &Var, x: &Var| {
        let h = (wxh.matmul(x) + whh.matmul(h) + &b).tanh();
        (h.clone(), h)
    };
    let x = rand(&[10]);
    let h = rand(&[5]);
    let (h1, y1) = rnn.step(&h, &x);
    assert_eq!(h1.to_vec(), y1.to_vec());
    let (h2, _) = rnn.step(&h1, &x);
    assert_ne!(h1.to_vec(), h2.to_vec()); // the same x, a different y: the state moved

    let m5 = Recur::new(rnn.clone(), h.clone());
    assert_eq!(m5.to_string(), "Recur(λ)");
    let y = m5.forward(&x);
    close(&y, &h1, 0.0);
    close(&m5.state(), &h1, 0.0);
    let seq: Vec<Var> = (0..10).map(|_| rand(&[10])).collect();
    let ys: Vec<Var> = seq.iter().map(|x| m5.forward(x)).collect();
    assert_eq!(ys.len(), 10);
    // the same as an explicit fold over the cell
    let mut s = h1;
    for (x, y) in seq.iter().zip(&ys) {
        let (s2, y2) = rnn.step(&s, x);
        s = s2;
        close(y, &y2, 0.0);
    }
}

#[test]
fn seed_rnn_cell_and_constructor() {
    let rnn2 = RNNCell::new(10, 5);
    let x = rand(&[10]);
    let h = rand(&[5]);
    let (h, y) = rnn2.step(&h, &x);
    assert_eq!(h.shape(), &[5]);
    assert!(h.is_tracked() && y.is_tracked());
    assert_eq!(format!("{}", RNN::new(10, 5)), "Recur(RNNCell(10 => 5, tanh))");
    assert_eq!(format!("{}", LSTM::new(10, 15)), "Recur(LSTMCell(10 => 15))");
    assert_eq!(format!("{}", GRU::new(10, 5)), "Recur(GRUCell(10 => 5))");
    assert_eq!(RNN::new(10, 5).cell().to_string(), "RNNCell(10 => 5, tanh)");
}

#[test]
fn seed_chain_lstm_dense_forward_seq_equals_steps() {
    flux_tensor::seed(29);
    let m51 = chain![LSTM::new(10, 15), Dense::new(15, 5, identity)];
    assert_eq!(m51.to_string(), "Chain(Recur(LSTMCell(10 => 15)), Dense(15 => 5))");
    for batch in [None, Some(4)] {
        let seq: Vec<Var> = (0..10).map(|_| rand(&batch.map_or(vec![10], |b| vec![10, b]))).collect();
        reset(&m51);
        let fused = m51.forward_seq(&seq);
        reset(&m51);
        let stepped: Vec<Var> = seq.iter().map(|x| m51.forward(x)).collect();
        assert_eq!(fused.len(), 10);
        for (a, b) in fused.iter().zip(&stepped) {
            assert_eq!(a.shape(), &batch.map_or(vec![5], |b| vec![5, b])[..]);
            close(a, b, 1e-5);
        }
    }
    // parameters: the cell's three and the Dense's two; init is a buffer, not a param
    let names: Vec<String> = named_params(&m51).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["0.cell.Wi", "0.cell.Wh", "0.cell.b", "1.weight", "1.bias"]);
}

#[test]
fn reset_puts_state_back_to_init() {
    let m = LSTM::new(3, 4);
    m.forward_seq(&[rand(&[3, 2]), rand(&[3, 2])]);
    assert_eq!(m.state().0.shape(), &[4, 2]);
    reset(&m);
    let (h, c) = m.state();
    let (h0, c0) = m.init().clone();
    assert_eq!((h.to_vec(), c.to_vec()), (h0.to_vec(), c0.to_vec()));
    assert_eq!(h.shape(), &[4]);
}

#[test]
fn truncate_cuts_gradient_history() {
    flux_tensor::seed(31);
    for fused in [false, true] {
        let m = LSTM::new(3, 4);
        let ps = model_params(&m);
        let run = |xs: &[Var]| -> Vec<Var> {
            if fused {
                m.forward_seq(xs)
            } else {
                xs.iter().map(|x| m.forward(x)).collect()
            }
        };
        let before: Vec<Var> = (0..5).map(|_| rand(&[3, 2])).collect();
        let after: Vec<Var> = (0..3).map(|_| rand(&[3, 2])).collect();
        run(&before);
        truncate(&m);
        let (h, c) = m.state();
        assert!(!h.is_tracked() && !c.is_tracked(), "truncate leaves the state untracked");
        let cut = (h.data(), c.data());
        let ys = run(&after);
        let gs = gradient_params(|| ys.iter().map(|y| y.sum()).sum(), &ps);
        // the same gradient as a fresh run from the cut state's value over the later steps only
        let fresh = Recur::new(LSTMCell::from_parts(m.cell().wi().clone(), m.cell().wh().clone(), m.cell().b().clone()).unwrap(), m.init().clone());
        fresh.set_state((Var::from(cut.0), Var::from(cut.1)));
        let ys2: Vec<Var> = after.iter().map(|x| fresh.forward(x)).collect();
        let gs2 = gradient_params(|| ys2.iter().map(|y| y.sum()).sum(), &ps);
        for p in ps.iter() {
            close(&gs[p], &gs2[p], 1e-5);
        }
        // without the cut, the gradient differs (it reaches the earlier steps)
        reset(&m);
        run(&before);
        let ys3 = run(&after);
        let gs3 = gradient_params(|| ys3.iter().map(|y| y.sum()).sum(), &ps);
        let wi = m.cell().wi();
        assert!(gs3[wi].to_vec().iter().zip(gs[wi].to_vec()).any(|(a, b)| (a - b).abs() > 1e-6));
    }
}

#[test]
fn state_follows_the_batch() {
    for m in [Box::new(LSTM::new(3, 4)) as Box<dyn Layer>, Box::new(RNN::new(3, 4)), Box::new(GRU::new(3, 4))] {
        assert_eq!(m.forward(&rand(&[3])).shape(), &[4]);
        assert_eq!(m.forward(&rand(&[3, 5])).shape(), &[4, 5]); // [4] state broadcasts to the batch
        assert_eq!(m.forward(&rand(&[3, 5])).shape(), &[4, 5]);
        assert_eq!(m.forward(&rand(&[3, 2])).shape(), &[4, 2]); // another batch: no manual reset
        assert_eq!(m.forward_seq(&[rand(&[3, 7]), rand(&[3, 7])])[1].shape(), &[4, 7]);
        assert_eq!(m.forward(&rand(&[3, 7])).shape(), &[4, 7]);
    }
    // a new batch size restarts from init, as a reset would
    let m = RNN::new(3, 4);
    let x = rand(&[3, 2]);
    m.forward(&rand(&[3, 5]));
    let y = m.forward(&x);
    reset(&m);
    close(&y, &m.forward(&x), 0.0);
}

#[test]
fn learned_init_is_opt_in() {
    let cell = RNNCell::new(3, 2);
    let h0 = param(Tensor::zeros(&[2]).to_f32());
    let m = Recur::new(cell, h0.clone());
    assert_eq!(model_params(&m).len(), 4);
    assert!(model_params(&m).contains(&h0));
    let ys: Vec<Var> = (0..3).map(|_| m.forward(&rand(&[3]))).collect();
    let gs = gradient_params(|| ys.iter().map(|y| y.sum()).sum(), &params![&h0]);
    assert!(gs[&h0].to_vec().iter().any(|g| *g != 0.0));
    assert_eq!(model_params(&RNN::new(3, 2)).len(), 3);
}

#[test]
fn dtype_conversion_reaches_init_and_fused_path() {
    let m = chain![LSTM::new(3, 4), Dense::new(4, 2, identity)];
    to_f64(&m);
    let ys = m.forward_seq(&[rand(&[3, 2]), rand(&[3, 2])]);
    assert_eq!(ys[1].dtype(), DType::F64);
    reset(&m);
    let ys2: Vec<Var> = [rand(&[3, 2])].iter().map(|x| m.forward(x)).collect();
    assert_eq!(ys2[0].dtype(), DType::F64);
}

#[test]
fn models_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Recur<LSTMCell>>();
    assert_send_sync::<Recur<RNNCell>>();
    assert_send_sync::<Recur<GRUCell>>();
    assert_send_sync::<RNNCell>();
    assert_send_sync::<flux_layers::Chain>();
    let m = std::sync::Arc::new(LSTM::new(3, 2));
    let m2 = m.clone();
    std::thread::spawn(move || m2.forward(&rand(&[3]))).join().unwrap();
    assert_eq!(m.state().0.shape(), &[2]);
}

#[test]
fn long_sequences_train_with_fused_bptt() {
    // a sequence long enough that a recursive backward would overflow the stack
    let m = LSTM::new(2, 3);
    let xs: Vec<Var> = (0..2000).map(|_| rand(&[2, 1])).collect();
    let ys = m.forward_seq(&xs);
    let gs = gradient_params(|| ys.last().unwrap().sum(), &model_params(&m));
    assert_eq!(gs.len(), 3);
}

fn fold<C: RecurrentCell>(cell: &C, s0: &C::State, xs: &[Var]) -> (C::State, Vec<Var>) {
    let mut s = s0.clone();
    let ys = xs
        .iter()
        .map(|x| {
            let (s2, y) = cell.step(&s, x);
            s = s2;
            y
        })
        .collect();
    (s, ys)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn unrolled_recur_equals_fold_over_step(n_in in 1usize..5, hidden in 1usize..6, steps in 1usize..8, batch in 0usize..4, seed in 0u64..1000) {
        flux_tensor::seed(seed);
        let shape = if batch == 0 { vec![n_in] } else { vec![n_in, batch] };
        let xs: Vec<Var> = (0..steps).map(|_| Var::from(Tensor::randn(&shape))).collect();
        // LSTM: forward_seq (fused) and per-step forward against the fold
        let m = LSTM::new(n_in, hidden);
        let (s, want) = fold(m.cell(), m.init(), &xs);
        let got = m.forward_seq(&xs);
        for (a, b) in got.iter().zip(&want) { close(a, b, 1e-5); }
        close(&m.state().1, &s.1, 1e-5);
        reset(&m);
        for (x, b) in xs.iter().zip(&want) { close(&m.forward(x), b, 1e-6); }
        // RNN and GRU
        let r = RNN::new(n_in, hidden);
        let (_, want) = fold(r.cell(), r.init(), &xs);
        for (a, b) in r.forward_seq(&xs).iter().zip(&want) { close(a, b, 1e-6); }
        let g = GRU::new(n_in, hidden);
        let (_, want) = fold(g.cell(), g.init(), &xs);
        for (a, b) in g.forward_seq(&xs).iter().zip(&want) { close(a, b, 1e-6); }
    }
}

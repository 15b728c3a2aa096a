//! Recurrent layers in the layer tree (SPEC §7.2): state per thread, errors that name the
//! layer, explicit state, deep copies, input dtypes.

use std::sync::Arc;
use std::thread;

use flux_autograd::{gradient_params, param, update, Var};
use flux_layers::{chain, deepcopy, identity, params, reset, truncate, Chain, Dense, Layer};
use flux_recurrent::{Recur, GRU, LSTM, RNN};
use flux_tensor::{DType, Tensor};

fn sequence(seed: u64, n_in: usize, batch: usize, len: usize) -> Vec<Var> {
    flux_tensor::seed(seed);
    (0..len).map(|_| Var::from(Tensor::randn(&[n_in, batch]).to_f32())).collect()
}

/// The outputs of running `xs` step by step from a fresh state, then as a fused sequence.
fn run(m: &Chain, xs: &[Var]) -> Vec<f64> {
    reset(m);
    let mut out: Vec<f64> = xs.iter().flat_map(|x| m.forward(x).to_vec()).collect();
    reset(m);
    out.extend(m.forward_seq(xs).iter().flat_map(|y| y.to_vec()));
    out
}

#[test]
fn threads_sharing_a_model_each_get_the_serial_result() {
    flux_tensor::seed(7);
    let m = Arc::new(chain![LSTM::new(3, 8), GRU::new(8, 4), RNN::new(4, 4), Dense::new(4, 2, identity)]);
    let inputs: Vec<Vec<Var>> = (0..4).map(|t| sequence(100 + t, 3, 5, 12)).collect();
    let serial: Vec<Vec<f64>> = inputs.iter().map(|xs| run(&m, xs)).collect();
    for _trial in 0..5 {
        let handles: Vec<_> = inputs
            .iter()
            .cloned()
            .map(|xs| {
                let m = m.clone();
                thread::spawn(move || run(&m, &xs))
            })
            .collect();
        let got: Vec<Vec<f64>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(got, serial);
    }
}

#[test]
fn state_reset_and_truncate_act_on_the_calling_thread() {
    let m = Arc::new(RNN::new(2, 3));
    m.forward(&Var::from(Tensor::ones(&[2]).to_f32()));
    let mine = m.state().to_vec();
    assert_ne!(mine, vec![0.0; 3]);
    let other = m.clone();
    thread::spawn(move || {
        assert_eq!(other.state().to_vec(), vec![0.0; 3], "a new thread starts from init");
        other.forward(&Var::from(Tensor::ones(&[2]).to_f32()));
        reset(&*other);
        truncate(&*other);
        assert_eq!(other.state().to_vec(), vec![0.0; 3]);
    })
    .join()
    .unwrap();
    assert_eq!(m.state().to_vec(), mine, "another thread's reset leaves this one's state");
}

#[test]
fn try_forward_names_the_layer_and_the_shape() {
    for (m, name) in [
        (Box::new(LSTM::new(2, 3)) as Box<dyn Layer>, "Recur(LSTMCell(2 => 3))"),
        (Box::new(GRU::new(2, 3)), "Recur(GRUCell(2 => 3))"),
        (Box::new(RNN::new(2, 3)), "Recur(RNNCell(2 => 3, tanh))"),
    ] {
        let e = m.try_forward(&Var::from(Tensor::ones(&[5, 4]))).unwrap_err().to_string();
        assert!(e.contains(name) && e.contains("[5, 4]"), "{e}");
        let p = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| m.forward(&Var::from(Tensor::ones(&[5])))));
        let msg = p.err().unwrap().downcast_ref::<String>().cloned().unwrap();
        assert!(msg.contains(name), "{msg}");
    }
    let c = chain![LSTM::new(2, 3), Dense::new(3, 1, identity)];
    let e = c.try_forward(&Var::from(Tensor::ones(&[12, 2]))).unwrap_err().to_string();
    assert!(e.contains("Recur(LSTMCell(2 => 3))") && e.contains("[12, 2]"), "{e}");
}

#[test]
fn explicit_state_leaves_the_recur_alone() {
    let m = LSTM::new(3, 4);
    let xs = sequence(3, 3, 2, 5);
    let mut s = m.initial_state(2);
    assert_eq!(s.0.shape(), &[4, 2]);
    let mut explicit = Vec::new();
    for x in &xs {
        let (y, s2) = m.forward_state(x, &s);
        explicit.push(y.to_vec());
        s = s2;
    }
    assert_eq!(m.state().0.to_vec(), vec![0.0; 4], "the Recur's own state is untouched");
    let stateful: Vec<Vec<f64>> = xs.iter().map(|x| m.forward(x).to_vec()).collect();
    assert_eq!(explicit, stateful);
    assert!(m.try_forward_state(&Var::from(Tensor::ones(&[7, 2])), &s).is_err());
}

#[test]
fn deepcopy_of_a_recurrent_model() {
    let m = chain![LSTM::new(2, 3), Dense::new(3, 1, identity)];
    let c = deepcopy(&m);
    assert_eq!(c.to_string(), m.to_string());
    let xs = sequence(4, 2, 3, 4);
    let (a, b) = (run(&m, &xs), run(&c, &xs));
    assert_eq!(a, b);
    let pm = params(&m);
    let gs = gradient_params(|| m.forward_seq(&xs).iter().map(|y| y.sum()).sum(), &pm);
    for p in pm.iter() {
        update(p, &(-0.5 * &gs[p]));
    }
    assert_ne!(run(&m, &xs), b);
    assert_eq!(run(&c, &xs), b, "training the original leaves the copy alone");
    // a closure cell is shared by the copy
    let rnn = |h: &Var, x: &Var| {
        let h = (h + x).tanh();
        (h.clone(), h)
    };
    let r = Recur::new(rnn, Var::scalar(0.0));
    let rc = deepcopy(&r);
    assert_eq!(rc.forward(&Var::scalar(1.0)).item(), r.forward(&Var::scalar(1.0)).item());
}

#[test]
fn f64_input_to_a_f32_recurrent_layer() {
    let m = LSTM::new(3, 2);
    let y = m.forward(&Var::from(Tensor::rand(&[3, 2])));
    assert_eq!(y.dtype(), DType::F32);
    let x = param(Tensor::rand(&[3, 2]));
    let gs = gradient_params(|| m.forward(&x).sum(), &flux_autograd::params![&x]);
    assert_eq!(gs[&x].dtype(), DType::F64);
}

/// Weights replaced with inconsistent shapes never reach the fused kernels: the sequence takes
/// the step-by-step path, whose ops report the shapes (a panic with a message, never a read out
/// of bounds).
#[test]
fn inconsistent_weights_do_not_reach_the_fused_kernels() {
    let m = LSTM::new(3, 4);
    m.cell().b().set_data_unchecked(Tensor::zeros(&[7]).to_f32());
    let xs = sequence(5, 3, 2, 3);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| m.forward_seq(&xs)));
    assert!(r.is_err());
}

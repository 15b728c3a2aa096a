//! Cases for the recurrent crate: every cell one step (with respect to the input, the state and
//! the weights), backprop through time over 20+ steps for each, and the fused LSTM sequence path
//! (its raw BPTT kernels at first order, its recomputing nested rule at second order).

use flux_autograd::Var;
use flux_recurrent::{GRUCell, LSTMCell, RNNCell, RecurrentCell};
use flux_tensor::Tensor;

use super::Case;

const IN: usize = 2;
const H: usize = 3;
const N: usize = 2;
const STEPS: usize = 20;

fn randn(shape: &[usize]) -> Tensor {
    Tensor::randn(shape)
}

/// Weights scaled so that 20 steps neither saturate nor vanish.
fn weight(shape: &[usize]) -> Tensor {
    Tensor::randn(shape) * 0.6
}

fn rnn(v: &[Var]) -> RNNCell {
    RNNCell::from_parts(v[0].clone(), v[1].clone(), v[2].clone(), flux_layers::tanh).expect("RNNCell parts")
}

fn lstm(v: &[Var]) -> LSTMCell {
    LSTMCell::from_parts(v[0].clone(), v[1].clone(), v[2].clone()).expect("LSTMCell parts")
}

fn gru(v: &[Var]) -> GRUCell {
    GRUCell::from_parts(v[0].clone(), v[1].clone(), v[2].clone(), v[3].clone()).expect("GRUCell parts")
}

/// The steps of a `[in, N, T]` input.
fn steps(x: &Var) -> Vec<Var> {
    (0..x.shape()[2]).map(|t| x.select(2, t)).collect()
}

/// Every output of a sequence (and extra state) side by side, so the check sees all of them.
fn joined(mut ys: Vec<Var>, extra: Option<Var>) -> Var {
    ys.extend(extra);
    Var::concat(&ys, 0)
}

fn fold<C: RecurrentCell>(cell: &C, s0: C::State, xs: &[Var]) -> (C::State, Vec<Var>) {
    let mut s = s0;
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

pub fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    // one step, with respect to the weights, the state and the input (batched and not)
    for batch in [None, Some(N)] {
        let sx = batch.map_or(vec![IN], |n| vec![IN, n]);
        let sh = batch.map_or(vec![H], |n| vec![H, n]);
        let what = format!("one step, x {sx:?}");
        v.push(Case::new("RNNCell", what.clone(), vec![weight(&[H, IN]), weight(&[H, H]), randn(&[H]), randn(&sh), randn(&sx)], |v| {
            rnn(v).step(&v[3], &v[4]).1
        }));
        v.push(Case::new(
            "LSTMCell",
            what.clone(),
            vec![weight(&[4 * H, IN]), weight(&[4 * H, H]), randn(&[4 * H]), randn(&sh), randn(&sh), randn(&sx)],
            |v| {
                let ((h, c), _) = lstm(v).step(&(v[3].clone(), v[4].clone()), &v[5]);
                Var::concat(&[h, c], 0)
            },
        ));
        v.push(Case::new("GRUCell", what, vec![weight(&[3 * H, IN]), weight(&[3 * H, H]), randn(&[3 * H]), randn(&[3 * H]), randn(&sh), randn(&sx)], |v| {
            gru(v).step(&v[4], &v[5]).1
        }));
    }
    // backprop through time, 20 steps, every output checked
    let what = format!("BPTT {STEPS} steps, batch {N}");
    v.push(Case::new("RNNCell", what.clone(), vec![weight(&[H, IN]), weight(&[H, H]), randn(&[H]), randn(&[H]), randn(&[IN, N, STEPS])], |v| {
        joined(fold(&rnn(v), v[3].clone(), &steps(&v[4])).1, None)
    }));
    v.push(Case::new(
        "GRUCell",
        what.clone(),
        vec![weight(&[3 * H, IN]), weight(&[3 * H, H]), randn(&[3 * H]), randn(&[3 * H]), randn(&[H, N]), randn(&[IN, N, STEPS])],
        |v| joined(fold(&gru(v), v[4].clone(), &steps(&v[5])).1, None),
    ));
    let lstm_inputs = || vec![weight(&[4 * H, IN]), weight(&[4 * H, H]), randn(&[4 * H]), randn(&[H, N]), randn(&[H, N]), randn(&[IN, N, STEPS])];
    v.push(Case::new("LSTMCell", format!("{what}, step by step"), lstm_inputs(), |v| {
        let ((_, c), ys) = fold(&lstm(v), (v[3].clone(), v[4].clone()), &steps(&v[5]));
        joined(ys, Some(c))
    }));
    // the fused sequence path: raw BPTT kernels (first order), recomputing rule (second order)
    v.push(Case::new("lstm_sequence", format!("fused, {what}, every output and c_T"), lstm_inputs(), |v| {
        let ((_, c), ys) = lstm(v).step_seq(&(v[3].clone(), v[4].clone()), &steps(&v[5]));
        joined(ys, Some(c))
    }));
    v.push(Case::new(
        "lstm_sequence",
        "fused, unbatched, [H] state broadcast, last output only",
        vec![weight(&[4 * H, IN]), weight(&[4 * H, H]), randn(&[4 * H]), randn(&[H]), randn(&[IN, 1, 6])],
        |v| {
            let xs: Vec<Var> = steps(&v[4]).iter().map(|x| x.reshape(&[IN])).collect();
            let (_, ys) = lstm(v).step_seq(&(v[3].clone(), v[3].clone()), &xs);
            ys.last().expect("steps").tanh()
        },
    ));
    v
}

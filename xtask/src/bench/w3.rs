//! W3: LSTM(64 => 256) then Dense(256, 10) on the last hidden state, sequence 50, batch 32,
//! zero initial state, mse against a random target: a full train step (forward through the fused
//! LSTM sequence path, backprop through time, plain SGD with lr 0.01) and the forward alone
//! (no tape, inside `no_grad`).

use flux_autograd::{gradient_params, no_grad, update, Params, Var};
use flux_layers::{identity, mse, params, reset, Dense, Layer};
use flux_recurrent::LSTM;
use flux_tensor::Tensor;
use serde_json::json;

use super::{emit, median_time, round, Opts};

const T: usize = 50;
const B: usize = 32;
const I: usize = 64;
const H: usize = 256;

pub fn run(o: &Opts) {
    if std::env::var_os("W3_PROFILE").is_some() {
        profile_gemms();
        flux_tensor::set_num_threads(o.threads);
    }
    let xs: Vec<Var> = (0..T).map(|_| Var::from(Tensor::randn(&[I, B]).to_f32())).collect();
    let target = Var::from(Tensor::randn(&[10, B]).to_f32());
    let lstm = LSTM::new(I, H);
    let dense = Dense::new(H, 10, identity);
    let mut ps: Params = params(&lstm);
    ps.extend(params(&dense).iter().cloned());
    let loss = || {
        reset(&lstm);
        let hs = lstm.forward_seq(&xs);
        mse(&dense.forward(hs.last().expect("50 steps")), &target)
    };
    let lr = 0.01;
    let only = std::env::var("W3_MODE").ok();
    if only.as_deref() == Some("forward") {
        let (t, _) = median_time(o.min_time, || {
            std::hint::black_box(no_grad(loss));
        });
        eprintln!("W3 forward only: {:.3} ms", t * 1e3);
        return;
    }
    let first = no_grad(loss).item();
    let train_step = || {
        let gs = gradient_params(loss, &ps);
        for (p, g) in gs.iter() {
            update(p, &(-lr * g));
        }
    };
    let (t, st) = median_time(o.min_time, train_step);
    let after = no_grad(loss).item();
    assert!(after < first, "W3: training did not lower the loss ({first} -> {after})");
    emit(o.threads, "W3", json!({"impl": "fused", "mode": "train", "ms_per_step": round(t * 1e3, 3)}), st);
    let (t, st) = median_time(o.min_time, || {
        std::hint::black_box(no_grad(loss));
    });
    emit(o.threads, "W3", json!({"impl": "fused", "mode": "forward", "ms_per_step": round(t * 1e3, 3)}), st);
}

/// `W3_PROFILE=1`: times each GEMM shape of the fused path alone (ms per call).
pub fn profile_gemms() {
    use flux_tensor::GemmElement;
    use std::time::Instant;
    let shapes: [(&str, usize, usize, usize, bool, bool, usize); 9] = [
        ("WhT·dz (per step)", H, B, 4 * H, false, false, T),
        ("h'·Wh' (per step)", B, 4 * H, H, false, false, T),
        ("dz'·Wh (per step)", B, H, 4 * H, false, false, T),
        ("Wh·h 2-split", 2 * H, B, H, false, false, 2 * T),
        ("Wi·X", 4 * H, B * T, I, false, false, 1),
        ("Wh·h (per step)", 4 * H, B, H, false, false, T),
        ("Wh'·dz (per step)", H, B, 4 * H, true, false, T),
        ("dWh = dz·H'", 4 * H, H, B * T, false, true, 1),
        ("dWi = dz·X'", 4 * H, I, B * T, false, true, 1),
    ];
    for threads in [1, 2] {
        flux_tensor::set_num_threads(threads);
        for (name, m, n, k, ta, tb, reps) in shapes {
            let a = vec![0.01f32; m * k];
            let b = vec![0.02f32; k * n];
            let mut c = vec![0.0f32; m * n];
            let mut best = f64::INFINITY;
            for _ in 0..20 {
                let t0 = Instant::now();
                for _ in 0..reps {
                    f32::gemm(m, n, k, &a, ta, &b, tb, &mut c, true);
                }
                best = best.min(t0.elapsed().as_secs_f64());
            }
            let gf = 2.0 * (m * n * k * reps) as f64 / best / 1e9;
            eprintln!("threads {threads} {name:20} m={m} n={n} k={k} x{reps}: {:.3} ms ({gf:.0} GFLOP/s)", best * 1e3);
        }
    }
}

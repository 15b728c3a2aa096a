//! W6: LeNet-5 on 28x28x1 images, batch 64, as `torch_bench.py` builds it: `Conv(5x5, 1=>6,
//! relu)`, `MaxPool(2)`, `Conv(5x5, 6=>16, relu)`, `MaxPool(2)`, flatten, `Dense(256,120,relu)`,
//! `Dense(120,84,relu)`, `Dense(84,10)`, logitcrossentropy on integer labels, SGD (lr 0.01);
//! `mode=train` (one step) and `mode=forward` (the loss alone, nothing recorded).

use flux_autograd::{gradient_params, no_grad, update, Var};
use flux_layers::{chain, flatten, identity, logitcrossentropy, onehotbatch, params, relu, Conv, Dense, Layer, MaxPool};
use flux_tensor::Tensor;
use serde_json::json;

use super::{emit, median_time, round, Opts};

pub fn run(o: &Opts) {
    let batch = 64usize;
    let model = chain![
        Conv::new(&[5, 5], 1, 6, relu),
        MaxPool::new(&[2, 2]),
        Conv::new(&[5, 5], 6, 16, relu),
        MaxPool::new(&[2, 2]),
        flatten,
        Dense::new(256, 120, relu),
        Dense::new(120, 84, relu),
        Dense::new(84, 10, identity)
    ];
    let ps = params(&model);
    let x = Var::from(Tensor::randn(&[28, 28, 1, batch]).to_f32());
    let labels: Vec<usize> = (0..batch).map(|i| (i * 7 + 3) % 10).collect();
    let y = Var::from(onehotbatch(&labels, 10).to_f32());
    let step = || {
        let gs = gradient_params(|| logitcrossentropy(&model.forward(&x), &y), &ps);
        for p in ps.iter() {
            update(p, &(-0.01 * &gs[p]));
        }
    };
    let (t, st) = median_time(o.min_time, step);
    emit(o.threads, "W6", json!({"batch": batch, "mode": "train", "ms_per_step": round(t * 1e3, 4)}), st);
    let (t, st) = median_time(o.min_time, || {
        std::hint::black_box(no_grad(|| logitcrossentropy(&model.forward(&x), &y)));
    });
    emit(o.threads, "W6", json!({"batch": batch, "mode": "forward", "ms_per_step": round(t * 1e3, 4)}), st);
}

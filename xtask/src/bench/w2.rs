//! W2: one training step of the seed's MLP, `Chain(Dense(784,128,relu), Dense(128,32,relu),
//! Dense(32,10), softmax)` with Flux's crossentropy on the softmax output, at batch 64 and
//! 256: forward, backward, and a plain SGD update (lr 0.01).

use flux_autograd::{gradient_params, update, Var};
use flux_layers::{chain, identity, params, relu, softmax, Dense};
use flux_tensor::Tensor;
use serde_json::json;

use super::{emit, median_time, round, Opts};

/// Flux 0.x's crossentropy on probabilities: `-sum(y .* log.(ŷ)) / batch`.
fn crossentropy(yhat: &Var, y: &Var) -> Var {
    let batch = yhat.shape().get(1).copied().unwrap_or(1) as f64;
    -(y * &yhat.ln()).sum() / batch
}

pub fn run(o: &Opts) {
    for batch in [64usize, 256] {
        let model = chain![Dense::new(784, 128, relu), Dense::new(128, 32, relu), Dense::new(32, 10, identity), softmax];
        let ps = params(&model);
        let x = Var::from(Tensor::randn(&[784, batch]).to_f32());
        let labels: Vec<usize> = (0..batch).map(|i| (i * 7 + 3) % 10).collect();
        let mut onehot = vec![0.0f32; 10 * batch];
        for (j, &l) in labels.iter().enumerate() {
            onehot[l + 10 * j] = 1.0;
        }
        let y = Var::from(Tensor::from_vec(onehot, &[10, batch]));
        let step = || {
            let gs = gradient_params(|| crossentropy(&flux_layers::Layer::forward(&model, &x), &y), &ps);
            for p in ps.iter() {
                update(p, &(-0.01 * &gs[p]));
            }
        };
        let (t, st) = median_time(o.min_time, step);
        emit(o.threads, "W2", json!({"batch": batch, "ms_per_step": round(t * 1e3, 4)}), st);
    }
}

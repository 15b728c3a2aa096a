//! W7: one pre-norm transformer block as `torch_bench.py` builds it: dim 128, 4 heads, MLP 512
//! (gelu), sequence 64, batch 16, causal self-attention (projections with biases, as PyTorch's
//! `nn.MultiheadAttention` default), `x + attn(ln1(x))` then `x + mlp(ln2(x))`, mse to a random
//! target, SGD (lr 0.01); `mode=train` (one step) and `mode=forward` (the loss alone, nothing
//! recorded). Layout `[dim, len, batch]`. flux-rs's `gelu` is the tanh form (Flux's), PyTorch's
//! `nn.GELU()` the erf form: the same cost class, not the same function.

use flux_autograd::{gradient_params, no_grad, update, Var};
use flux_layers::{causal_mask, gelu, identity, mse, params, Dense, Layer, LayerNorm, MultiHeadAttention};
use flux_tensor::Tensor;
use serde_json::json;

use super::{emit, median_time, round, Opts};

const D: usize = 128;
const NH: usize = 4;
const L: usize = 64;
const B: usize = 16;

/// The block: pre-norm causal self-attention and MLP, each with a residual connection.
#[derive(flux_layers::Layer)]
struct Block {
    ln1: LayerNorm,
    attn: MultiHeadAttention,
    ln2: LayerNorm,
    fc1: Dense,
    fc2: Dense,
    #[layer(skip)]
    mask: Tensor,
}

impl Block {
    fn forward(&self, x: &Var) -> Var {
        let h = self.ln1.forward(x);
        let x = x + &self.attn.forward_qkv(&h, &h, &h, Some(&self.mask)).0;
        let m = self.fc2.forward(&self.fc1.forward(&self.ln2.forward(&x)));
        x + m
    }
}

pub fn run(o: &Opts) {
    let block = Block {
        ln1: LayerNorm::new(D),
        attn: MultiHeadAttention::with_bias(D, NH),
        ln2: LayerNorm::new(D),
        fc1: Dense::new(D, 4 * D, gelu),
        fc2: Dense::new(4 * D, D, identity),
        mask: causal_mask(L).to_f32(),
    };
    let ps = params(&block);
    let x = Var::from(Tensor::randn(&[D, L, B]).to_f32());
    let target = Var::from(Tensor::randn(&[D, L, B]).to_f32());
    let step = || {
        let gs = gradient_params(|| mse(&block.forward(&x), &target), &ps);
        for p in ps.iter() {
            update(p, &(-0.01 * &gs[p]));
        }
    };
    let (t, st) = median_time(o.min_time, step);
    emit(o.threads, "W7", json!({"mode": "train", "ms_per_step": round(t * 1e3, 4)}), st);
    let forward = || {
        std::hint::black_box(no_grad(|| mse(&block.forward(&x), &target)));
    };
    let (t, st) = median_time(o.min_time, forward);
    emit(o.threads, "W7", json!({"mode": "forward", "ms_per_step": round(t * 1e3, 4)}), st);
}

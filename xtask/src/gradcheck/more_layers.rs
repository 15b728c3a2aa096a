//! Cases for the layers of SPEC 7.3 that are not convolutions: Embedding (one-hot forward and
//! the lookup gather), SkipConnection, Parallel, Maxout, GroupNorm, InstanceNorm and
//! MultiHeadAttention (self, masked and cross attention). Each is checked with respect to its
//! input at first and second order, and with respect to its parameters at first order through
//! the layers module's parameter probe.

use flux_autograd::Var;
use flux_layers::{
    causal_mask, onehotbatch, sigmoid, tanh, Dense, Embedding, GroupNorm, InstanceNorm, Layer, Maxout, MultiHeadAttention, Parallel, SkipConnection,
};
use flux_tensor::Tensor;

use super::layers::{param_case, randomise};
use super::Case;

/// A Dense layer with f64 parameters.
fn dense(input: usize, output: usize, act: fn(&Var) -> Var) -> Dense {
    Dense::from_parts(Tensor::randn(&[output, input]) * 0.7, Tensor::randn(&[output]) * 0.3, act).expect("valid Dense parts")
}

/// Attention with f64 weights of moderate size (softmax away from saturation).
fn mha(dim: usize, nheads: usize) -> MultiHeadAttention {
    let w = || Tensor::randn(&[dim, dim]) * 0.5;
    MultiHeadAttention::from_weights(w(), w(), w(), w(), nheads).expect("valid attention weights")
}

/// The gathered columns scaled by the input, so that the lookup meets the checked input.
#[derive(flux_layers::Layer)]
struct Lookup {
    emb: Embedding,
    #[layer(skip)]
    idx: Vec<usize>,
}

impl Lookup {
    fn forward(&self, x: &Var) -> Var {
        (self.emb.lookup(&self.idx) * x).powi(2)
    }
}

/// Cross attention: the input holds the queries and, after them, the keys (= values).
#[derive(flux_layers::Layer)]
struct Cross {
    mha: MultiHeadAttention,
    #[layer(skip)]
    lq: usize,
}

impl Cross {
    fn forward(&self, x: &Var) -> Var {
        let n = x.shape()[1];
        let (q, kv) = (x.slice(1, 0..self.lq), x.slice(1, self.lq..n));
        self.mha.forward_qkv(&q, &kv, &kv, None).0
    }
}

/// Masked self-attention: output and scores, both checked.
#[derive(flux_layers::Layer)]
struct Causal {
    mha: MultiHeadAttention,
}

impl Causal {
    fn forward(&self, x: &Var) -> Var {
        let (y, a) = self.mha.forward_qkv(x, x, x, Some(&causal_mask(x.shape()[1])));
        Var::concat(&[y.reshape(&[y.numel()]), a.reshape(&[a.numel()])], 0)
    }
}

pub fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    embedding(&mut v);
    containers(&mut v);
    norms(&mut v);
    attention(&mut v);
    v
}

fn embedding(v: &mut Vec<Case>) {
    let emb = Embedding::from_weights(Tensor::randn(&[3, 5])).expect("valid weight");
    v.push(Case::new("Embedding", "one-hot batch as a dense input [5, 4]", vec![Tensor::randn(&[5, 4])], move |x| emb.forward(&x[0]).powi(2)));
    let onehot = onehotbatch(&[4, 0, 4, 2], 5).to_f64();
    v.push(param_case("Embedding", "one-hot [5, 4]", Embedding::from_weights(Tensor::randn(&[3, 5])).expect("valid weight"), onehot));
    let lookup = Lookup { emb: Embedding::from_weights(Tensor::randn(&[3, 5])).expect("valid weight"), idx: vec![1, 3, 1, 0] };
    v.push(Case::new("Embedding", "lookup with a repeated index, times the input [3, 4]", vec![Tensor::randn(&[3, 4])], move |x| lookup.forward(&x[0])));
    let lookup = Lookup { emb: Embedding::from_weights(Tensor::randn(&[3, 5])).expect("valid weight"), idx: vec![1, 3, 1, 0] };
    v.push(param_case("Embedding", "lookup (gather, scatter-add gradient) [3, 4]", lookup, Tensor::randn(&[3, 4])));
}

fn containers(v: &mut Vec<Case>) {
    let skip = SkipConnection::new(dense(3, 3, tanh), |a, b| a * b);
    v.push(Case::new("SkipConnection", "Dense tanh, combined by *, [3, 4]", vec![Tensor::randn(&[3, 4])], move |x| skip.forward(&x[0])));
    let skip = SkipConnection::residual(dense(3, 3, sigmoid));
    v.push(Case::new("SkipConnection", "residual Dense σ, [3, 4]", vec![Tensor::randn(&[3, 4])], move |x| skip.forward(&x[0]).powi(2)));
    v.push(param_case("SkipConnection", "Dense tanh, combined by *, [3, 4]", SkipConnection::new(dense(3, 3, tanh), |a, b| a * b), Tensor::randn(&[3, 4])));

    let par = || Parallel::vcat(vec![Box::new(dense(3, 2, tanh)), Box::new(dense(3, 4, sigmoid))]);
    let p = par();
    v.push(Case::new("Parallel", "vcat of Dense tanh and Dense σ, [3, 5]", vec![Tensor::randn(&[3, 5])], move |x| p.forward(&x[0])));
    let p =
        Parallel::new(|ys: &[Var]| &ys[0] * &ys[1] + &ys[2], vec![Box::new(dense(3, 2, tanh)), Box::new(dense(3, 2, sigmoid)), Box::new(dense(3, 2, tanh))]);
    v.push(Case::new("Parallel", "a * b + c of three Dense, [3, 5]", vec![Tensor::randn(&[3, 5])], move |x| p.forward(&x[0])));
    v.push(param_case("Parallel", "vcat of Dense tanh and Dense σ, [3, 5]", par(), Tensor::randn(&[3, 5])));

    let maxout = || Maxout::from_layers(vec![Box::new(dense(3, 4, tanh)), Box::new(dense(3, 4, tanh)), Box::new(dense(3, 4, sigmoid))]);
    let m = maxout();
    v.push(Case::new("Maxout", "three Dense, [3, 5]", vec![Tensor::randn(&[3, 5])], move |x| m.forward(&x[0])));
    v.push(param_case("Maxout", "three Dense, [3, 5]", maxout(), Tensor::randn(&[3, 5])));
}

fn norms(v: &mut Vec<Case>) {
    for (shape, groups) in [(&[3, 2, 4, 2][..], 2), (&[5, 6, 3][..], 3), (&[6, 4][..], 2)] {
        let c = shape[shape.len() - 2];
        let gn = GroupNorm::new(c, groups);
        randomise(&gn);
        v.push(Case::new("GroupNorm", format!("{groups} groups, input {shape:?}"), vec![Tensor::randn(shape)], move |x| gn.forward(&x[0])));
    }
    v.push(param_case("GroupNorm", "2 groups, [3, 2, 4, 2]", GroupNorm::new(4, 2), Tensor::randn(&[3, 2, 4, 2])));

    let inorm = InstanceNorm::new(3);
    v.push(Case::new("InstanceNorm", "input [4, 3, 3, 2]", vec![Tensor::randn(&[4, 3, 3, 2])], move |x| inorm.forward(&x[0])));
    let inorm = InstanceNorm::affine(3);
    randomise(&inorm);
    v.push(Case::new("InstanceNorm", "affine, input [5, 3, 2]", vec![Tensor::randn(&[5, 3, 2])], move |x| inorm.forward(&x[0]).powi(2)));
    v.push(param_case("InstanceNorm", "affine, [4, 3, 3, 2]", InstanceNorm::affine(3), Tensor::randn(&[4, 3, 3, 2])));
}

fn attention(v: &mut Vec<Case>) {
    let m = mha(4, 2);
    v.push(Case::new("MultiHeadAttention", "self-attention, 2 heads, [4, 3, 2]", vec![Tensor::randn(&[4, 3, 2])], move |x| m.forward(&x[0])));
    let m = mha(6, 3);
    v.push(Case::new("MultiHeadAttention", "self-attention of one sequence, 3 heads, [6, 4]", vec![Tensor::randn(&[6, 4])], move |x| m.forward(&x[0])));
    let m = mha(4, 2);
    v.push(Case::new(
        "MultiHeadAttention",
        "scores of q, k, v given separately, [4, 2, 2] / [4, 3, 2]",
        vec![Tensor::randn(&[4, 2, 2]), Tensor::randn(&[4, 3, 2]), Tensor::randn(&[4, 3, 2])],
        move |x| m.forward_qkv(&x[0], &x[1], &x[2], None).1,
    ));
    let c = Causal { mha: mha(4, 2) };
    v.push(Case::new("MultiHeadAttention", "causal mask, output and scores, [4, 4, 2]", vec![Tensor::randn(&[4, 4, 2])], move |x| c.forward(&x[0])));
    let cross = Cross { mha: mha(4, 2), lq: 2 };
    v.push(Case::new("MultiHeadAttention", "cross attention, 2 queries over 3 keys, [4, 5, 2]", vec![Tensor::randn(&[4, 5, 2])], move |x| {
        cross.forward(&x[0])
    }));
    v.push(param_case("MultiHeadAttention", "self-attention, 2 heads, [4, 3, 2]", mha(4, 2), Tensor::randn(&[4, 3, 2])));
    v.push(param_case("MultiHeadAttention", "causal mask, [4, 4, 2]", Causal { mha: mha(4, 2) }, Tensor::randn(&[4, 4, 2])));
    let biased = || {
        let w = || Tensor::randn(&[4, 4]) * 0.5;
        let b = || Tensor::randn(&[4]) * 0.3;
        MultiHeadAttention::from_weights_and_biases([w(), w(), w(), w()], [b(), b(), b(), b()], 2).expect("valid attention parts")
    };
    let m = biased();
    v.push(Case::new("MultiHeadAttention", "with biases, causal, [4, 3, 2]", vec![Tensor::randn(&[4, 3, 2])], move |x| {
        m.forward_qkv(&x[0], &x[0], &x[0], Some(&causal_mask(3))).0
    }));
    v.push(param_case("MultiHeadAttention", "with biases, [4, 3, 2]", biased(), Tensor::randn(&[4, 3, 2])));
}

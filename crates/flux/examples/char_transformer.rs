//! A small causal transformer, character by character, on Shakespeare's *The Tempest*
//! (`data/shakespeare/tempest.txt`, public domain via Project Gutenberg; see its README): the
//! model of GPT-style language models at toy size, written as a user would with
//! `#[derive(Layer)]` structs.
//!
//! Characters are embedded (`Embedding(vocab => 64)`) and a learned position embedding is added
//! (`Embedding(64 => 64)`, one column per position); two pre-norm blocks follow, each
//! `x + attention(LayerNorm(x))` with a `causal_mask` (a position sees itself and the ones before)
//! then `x + mlp(LayerNorm(x))`; a last `LayerNorm` and `Dense(64 => vocab)` give the logits of
//! the next character at every position. Layout `[dim, len, batch]`. Trained with Adam on random
//! 64-character windows, 32 at a time; it prints the loss falling (nats per character, from
//! about `ln(vocab)`), then samples text from a prompt. Under a minute on 2 cores (50 s on a
//! loaded shared machine, about 90 ms a step).
//!
//! ```text
//! cargo run --release -p flux --example char_transformer            # 500 steps
//! cargo run --release -p flux --example char_transformer -- 3000    # more steps, better text
//! ```

use std::time::Instant;

#[path = "common/sampling.rs"]
mod sampling;

use flux::prelude::*;
use flux::tensor::rand::rngs::StdRng;
use flux::tensor::rand::{Rng, SeedableRng};

const TEXT: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/shakespeare/tempest.txt"));

/// The sizes of a model and of its training.
#[derive(Clone, Copy)]
struct Config {
    dim: usize,
    heads: usize,
    layers: usize,
    /// The window: the longest context the model sees (its position table's length).
    seq: usize,
    batch: usize,
    lr: f64,
}

const FULL: Config = Config { dim: 64, heads: 4, layers: 2, seq: 64, batch: 32, lr: 3e-3 };

/// One pre-norm transformer block on `[dim, len, batch]`.
#[derive(Layer)]
struct Block {
    ln1: LayerNorm,
    attn: MultiHeadAttention,
    ln2: LayerNorm,
    fc1: Dense,
    fc2: Dense,
}

impl Block {
    fn new(dim: usize, heads: usize) -> Block {
        Block {
            ln1: LayerNorm::new(dim),
            attn: MultiHeadAttention::new(dim, heads),
            ln2: LayerNorm::new(dim),
            fc1: Dense::new(dim, 4 * dim, gelu),
            fc2: Dense::new(4 * dim, dim, identity),
        }
    }

    /// Causal self-attention then the MLP, each added to its input.
    fn forward(&self, x: &Var) -> Var {
        let mask = causal_mask(x.shape()[1]); // [len, len]: key k is visible to query q when k <= q
        let h = self.ln1.forward(x);
        let x = x + &self.attn.forward_qkv(&h, &h, &h, Some(&mask)).0;
        &x + &self.fc2.forward(&self.fc1.forward(&self.ln2.forward(&x)))
    }
}

/// The whole model (Flux's `@layer`): `params` and `save_state` see `tok.weight`,
/// `pos.weight`, `blocks.0.attn.q_proj`, ..., `head.bias` through the derive.
#[derive(Layer)]
struct CharTransformer {
    tok: Embedding,
    pos: Embedding,
    blocks: Vec<Block>,
    ln: LayerNorm,
    head: Dense,
}

impl CharTransformer {
    fn new(vocab: usize, c: Config) -> CharTransformer {
        CharTransformer {
            tok: Embedding::new(vocab, c.dim),
            pos: Embedding::new(c.seq, c.dim),
            blocks: (0..c.layers).map(|_| Block::new(c.dim, c.heads)).collect(),
            ln: LayerNorm::new(c.dim),
            head: Dense::new(c.dim, vocab, identity),
        }
    }

    /// Logits `[vocab, len, batch]` of the next character after each of `ids` (`[len, batch]`,
    /// column-major: one window per column).
    fn logits(&self, ids: &[usize], len: usize, batch: usize) -> Var {
        self.decode(&self.tok.try_lookup_array(ids, &[len, batch]).expect("ids from the vocabulary"))
    }

    /// The `Layer` forward: one-hot characters `[vocab, len, batch]` in (`Embedding` multiplies
    /// them, picking the same columns as `logits` looks up), logits out.
    fn forward(&self, x: &Var) -> Var {
        self.decode(&self.tok.forward(x))
    }

    /// Characters embedded `[dim, len, batch]` to logits: positions added, the blocks, the head.
    fn decode(&self, x: &Var) -> Var {
        let len = x.shape()[1];
        let x = x + &self.pos.lookup(&(0..len).collect::<Vec<_>>()); // [dim, len] broadcast over the batch
        let x = self.blocks.iter().fold(x, |x, b| b.forward(&x));
        self.head.forward(&self.ln.forward(&x))
    }
}

/// The text as indices into its sorted, de-duplicated characters.
struct Corpus {
    vocab: Vec<char>,
    ids: Vec<usize>,
}

impl Corpus {
    fn new(text: &str) -> Corpus {
        let mut vocab: Vec<char> = text.chars().collect();
        vocab.sort_unstable();
        vocab.dedup();
        let ids = text.chars().map(|c| vocab.binary_search(&c).expect("a character of the text")).collect();
        Corpus { vocab, ids }
    }

    /// `batch` random windows: the inputs `[seq, batch]` and the one-hot next characters
    /// `[vocab, seq * batch]`.
    fn windows(&self, rng: &mut StdRng, seq: usize, batch: usize) -> (Vec<usize>, Var) {
        let starts: Vec<usize> = (0..batch).map(|_| rng.random_range(0..self.ids.len() - seq - 1)).collect();
        let input: Vec<usize> = starts.iter().flat_map(|&s| self.ids[s..s + seq].iter().copied()).collect();
        let next: Vec<usize> = starts.iter().flat_map(|&s| self.ids[s + 1..s + seq + 1].iter().copied()).collect();
        (input, Var::from(onehotbatch(&next, self.vocab.len())))
    }
}

/// Trains `model` for `steps` steps and returns the loss of each.
fn train_steps(model: &CharTransformer, corpus: &Corpus, c: Config, steps: usize, rng: &mut StdRng, mut report: impl FnMut(usize, f64)) -> Vec<f64> {
    let ps = params(model);
    let mut opt = Adam::new(c.lr);
    let v = corpus.vocab.len();
    let mut losses = Vec::with_capacity(steps);
    for step in 1..=steps {
        let (input, targets) = corpus.windows(rng, c.seq, c.batch);
        let mut loss_value = 0.0;
        let gs = gradient_params(
            || {
                let logits = model.logits(&input, c.seq, c.batch).reshape(&[v, c.seq * c.batch]);
                let loss = logitcrossentropy(&logits, &targets);
                loss_value = loss.item();
                loss
            },
            &ps,
        );
        opt.update(&ps, &gs);
        losses.push(loss_value);
        report(step, loss_value);
    }
    losses
}

/// `n` characters after `prompt`, each drawn from the softmax of the last position's logits at
/// `temperature`, the context cut to the last `seq` characters.
fn sample(model: &CharTransformer, corpus: &Corpus, seq: usize, prompt: &str, n: usize, temperature: f64, rng: &mut StdRng) -> String {
    let v = corpus.vocab.len();
    let mut ids: Vec<usize> = prompt.chars().map(|c| corpus.vocab.binary_search(&c).expect("prompt characters from the text")).collect();
    no_grad(|| {
        for _ in 0..n {
            let context = &ids[ids.len().saturating_sub(seq)..];
            let logits = model.logits(context, context.len(), 1);
            let last = logits.reshape(&[v, context.len()]).select(1, context.len() - 1);
            let p = softmax(&(last * (1.0 / temperature))).to_vec();
            let next = sampling::draw(&p, rng);
            ids.push(next);
        }
    });
    ids.iter().map(|&i| corpus.vocab[i]).collect()
}

fn main() {
    let steps: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(500);
    flux::seed(1);
    let mut rng = StdRng::seed_from_u64(7);
    let corpus = Corpus::new(TEXT);
    let v = corpus.vocab.len();
    println!("{} characters, vocabulary of {v}; chance level is ln({v}) = {:.2} nats/char", corpus.ids.len(), (v as f64).ln());

    let model = CharTransformer::new(v, FULL);
    println!("model: {model}, {} parameters", params(&model).numel());
    let start = Instant::now();
    let mut running = 0.0;
    train_steps(&model, &corpus, FULL, steps, &mut rng, |step, loss| {
        running = if step == 1 { loss } else { 0.95 * running + 0.05 * loss };
        if step == 1 || step % 50 == 0 {
            println!("step {step:5}  loss {running:.3}  ({:.1} s)", start.elapsed().as_secs_f64());
        }
    });

    let temperature = 0.7;
    let text = sample(&model, &corpus, FULL.seq, "PROSPERO.\n", 400, temperature, &mut rng);
    println!("\n--- sample (temperature {temperature}) ---\n{text}\n---");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny model for a few steps: the loss falls well below chance, and the `Layer` forward
    /// on one-hot characters agrees with the lookup path.
    #[test]
    fn trains_briefly_and_forward_matches_lookup() {
        flux::seed(3);
        let mut rng = StdRng::seed_from_u64(3);
        let corpus = Corpus::new(&TEXT[..20_000]);
        let c = Config { dim: 16, heads: 2, layers: 1, seq: 16, batch: 8, lr: 1e-2 };
        let model = CharTransformer::new(corpus.vocab.len(), c);
        let losses = train_steps(&model, &corpus, c, 60, &mut rng, |_, _| {});
        let chance = (corpus.vocab.len() as f64).ln();
        let last: f64 = losses[50..].iter().sum::<f64>() / 10.0;
        assert!(losses[0] > 0.8 * chance && last < 0.8 * chance, "first {} last {last} chance {chance}", losses[0]);

        let (input, _) = corpus.windows(&mut rng, c.seq, 2);
        let onehot = onehotbatch(&input, corpus.vocab.len()).reshape(&[corpus.vocab.len(), c.seq, 2]);
        let a = model.logits(&input, c.seq, 2).to_vec();
        let b = model.forward(&Var::from(onehot)).to_vec();
        assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-4), "one-hot forward and lookup differ");
        assert_eq!(sample(&model, &corpus, c.seq, "the", 20, 1.0, &mut rng).chars().count(), 23);
    }
}

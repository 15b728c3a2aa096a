//! A character-level LSTM language model on Shakespeare's *The Tempest*
//! (`data/shakespeare/tempest.txt`, public domain via Project Gutenberg; see its README).
//!
//! `LSTM(vocab => 128)` then `Dense(128 => vocab)`, trained with Adam on random 50-character
//! windows, 32 at a time, through the fused LSTM sequence path (backprop through time over each
//! window, the state reset between windows). The model is one `#[derive(Layer)]` struct, saved
//! with `save_state` at the end. It prints the loss falling (nats per character,
//! starting near `ln(vocab)`), then a sample of generated text. The loss of every step goes
//! into a `History`, drawn to `target/plots/char_lstm.png`.
//!
//! ```text
//! cargo run --release --example char_lstm -p flux            # under a minute on 2 cores
//! cargo run --release --example char_lstm -p flux -- 6000    # more steps, better text
//! ```

use std::time::Instant;

#[path = "common/sampling.rs"]
mod sampling;

use flux::prelude::*;
use flux::tensor::rand::rngs::StdRng;
use flux::tensor::rand::{Rng, SeedableRng};

const TEXT: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/shakespeare/tempest.txt"));
const HIDDEN: usize = 128;
const SEQ: usize = 50;
const BATCH: usize = 32;

/// The whole model in one value (Flux's `@layer`): `params`, `reset` and `save_state` see
/// `lstm.cell.Wi`, ..., `out.weight`, `out.bias` through the derive.
#[derive(Layer)]
struct CharModel {
    lstm: Recur<LSTMCell>,
    out: Dense,
}

impl CharModel {
    /// One character's one-hot in, the next character's logits out (the state carries over).
    fn forward(&self, x: &Var) -> Var {
        self.out.forward(&self.lstm.forward(x))
    }

    /// A window of steps through the fused LSTM path, logits `[vocab, steps * batch]`.
    fn window(&self, xs: &[Var]) -> Var {
        self.out.forward(&Var::concat(&self.lstm.forward_seq(xs), 1))
    }
}

fn main() {
    let steps: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(2500);
    flux::seed(1);
    let mut rng = StdRng::seed_from_u64(7);

    let mut vocab: Vec<char> = TEXT.chars().collect();
    vocab.sort_unstable();
    vocab.dedup();
    let index = |c: char| vocab.binary_search(&c).expect("a character of the text");
    let ids: Vec<usize> = TEXT.chars().map(index).collect();
    let v = vocab.len();
    println!("{} characters, vocabulary of {v}; chance level is ln({v}) = {:.2} nats/char", ids.len(), (v as f64).ln());

    let model = CharModel { lstm: LSTM::new(v, HIDDEN), out: Dense::new(HIDDEN, v, identity) };
    let ps = params(&model);
    let mut opt = Adam::new(3e-3);
    println!("model: {model}, {} parameters", ps.numel());

    let start = Instant::now();
    let mut running = 0.0;
    let mut history = History::new();
    for step in 1..=steps {
        // BATCH random windows of SEQ + 1 characters; step t reads column t of every window
        let starts: Vec<usize> = (0..BATCH).map(|_| rng.random_range(0..ids.len() - SEQ - 1)).collect();
        let xs: Vec<Var> = (0..SEQ).map(|t| Var::from(onehotbatch(&starts.iter().map(|&s| ids[s + t]).collect::<Vec<_>>(), v))).collect();
        let next: Vec<usize> = (0..SEQ).flat_map(|t| starts.iter().map(move |&s| (s, t))).map(|(s, t)| ids[s + t + 1]).collect();
        let targets = Var::from(onehotbatch(&next, v));
        let mut loss_value = 0.0;
        let gs = gradient_params(
            || {
                reset(&model);
                let logits = model.window(&xs); // fused: one kernel over the whole window
                let loss = logitcrossentropy(&logits, &targets);
                loss_value = loss.item();
                loss
            },
            &ps,
        );
        opt.update(&ps, &gs);
        history.push("train loss", step, loss_value);
        running = if step == 1 { loss_value } else { 0.95 * running + 0.05 * loss_value };
        if step == 1 || step % 50 == 0 {
            println!("step {step:5}  loss {running:.3}  ({:.1} s)", start.elapsed().as_secs_f64());
        }
    }

    let plots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/plots");
    let written = std::fs::create_dir_all(&plots).map_err(|e| e.to_string()).and_then(|()| {
        let path = plots.canonicalize().map_err(|e| e.to_string())?.join("char_lstm.png");
        plot_history(&history, &path).map_err(|e| e.to_string())?;
        Ok(path)
    });
    match written {
        Ok(path) => println!("curves: {}", path.display()),
        Err(e) => eprintln!("could not write the loss curve: {e}"),
    }
    let saved = plots.join("../char_lstm.json");
    match save_state(&model, &saved) {
        Ok(()) => println!("model state: {} (load_state(&model, path) restores it)", saved.display()),
        Err(e) => eprintln!("could not save the model: {e}"),
    }

    // generate: prime with a line of the play, then sample one character at a time
    let temperature = 0.6;
    let prompt = "PROSPERO.\n";
    let mut out = String::from(prompt);
    let text = no_grad(|| {
        reset(&model);
        let mut logits = None;
        for c in prompt.chars() {
            logits = Some(model.forward(&Var::from(onehot(index(c), v))));
        }
        for _ in 0..400 {
            let p = softmax(&(logits.take().expect("primed") * (1.0 / temperature))).to_vec();
            let next = sampling::draw(&p, &mut rng);
            out.push(vocab[next]);
            logits = Some(model.forward(&Var::from(onehot(next, v))));
        }
        out
    });
    println!("\n--- sample (temperature {temperature}) ---\n{text}\n---");
}

//! A small convolutional network on the shipped 8x8 handwritten digits (the images and the 20%
//! hold-out of `examples/digits.rs`; see `data/digits/README.md`).
//!
//! The images go in as Julia's layout `[W, H, C, N]` = `[8, 8, 1, N]`; two 3x3 convolutions
//! with padding 1 keep the 8x8 size, a 2x2 max pool halves it, `flatten` makes `[512, N]`, and
//! `Dropout(0.5)` and two `Dense` layers classify. Trained with Adam (the learning rate decayed
//! by 0.9 each epoch) on shuffled batches of 32; prints the loss and the held-out accuracy as it
//! goes, and fails unless the final held-out accuracy is at least 98% (98.3-99.4% over seeds
//! 1-18; the MLP of `examples/digits.rs` reaches about 97%). Two seconds on 2 cores.
//!
//! ```text
//! cargo run --release -p flux --example digits_cnn         # seed 1
//! cargo run --release -p flux --example digits_cnn -- 2    # another seed (initialisation and batch order)
//! ```

#[path = "common/digits_data.rs"]
mod digits_data;

use std::error::Error;
use std::time::Instant;

use digits_data::{accuracy, Digits, CLASSES};
use flux::prelude::*;

const EPOCHS: usize = 20;

/// `[8, 8, 1, N]` images in, `[10, N]` logits out.
fn cnn() -> Chain {
    chain![
        Conv::new(&[3, 3], 1, 16, relu).pad(&[1]),  // [8, 8, 16, N]
        Conv::new(&[3, 3], 16, 32, relu).pad(&[1]), // [8, 8, 32, N]
        MaxPool::new(&[2, 2]),                      // [4, 4, 32, N]
        flatten,                                    // [512, N]
        Dropout::new(0.5),                          // active only inside a gradient call
        Dense::new(4 * 4 * 32, 64, relu),
        Dense::new(64, CLASSES, identity)
    ]
}

/// A `[64, n]` batch of images as `[8, 8, 1, n]` (each column is one image, row by row, so the
/// first dim runs along a row: W, then H).
fn as_images(x: &Tensor) -> Tensor {
    x.reshape(&[8, 8, 1, x.shape()[1]])
}

/// Trains a fresh CNN for `epochs` epochs from `seed` (initialisation and batch order),
/// printing progress, and returns its held-out accuracy.
fn run(digits: &Digits, seed: u64, epochs: usize) -> f64 {
    let start = Instant::now();
    let (test_idx, train_idx) = digits.holdout();
    let (xtrain, ytrain, _) = digits.batch(&train_idx);
    let (xtest, _, test_labels) = digits.batch(&test_idx);
    let (xtrain, xtest) = (as_images(&xtrain), as_images(&xtest));
    println!("train on {} images {:?}, hold out {}; seed {seed}", train_idx.len(), &xtrain.shape()[..3], test_idx.len());

    flux::seed(seed);
    let model = cnn();
    let ps = params(&model);
    println!("model: {model}, {} parameters", ps.numel());
    let loss = |x: &Var, y: &Var| logitcrossentropy(&model.forward(x), y);
    let data = DataLoader::new(xtrain, ytrain, 32).seed(seed + 100);
    let mut opt = Adam::new(0.003);
    for epoch in 1..=epochs {
        opt.set_lr(0.003 * 0.9f64.powi(epoch as i32 - 1)); // ExpDecay by hand, once per epoch
        let s = train(loss, &ps, &data, &mut opt);
        if epoch % 3 == 0 || epoch == 1 {
            let acc = accuracy(&model, &xtest, &test_labels);
            println!("epoch {epoch:2}: mean loss {:.4}, held-out accuracy {:.2}% ({:.1} s)", s.mean_loss, 100.0 * acc, start.elapsed().as_secs_f64());
        }
    }
    let acc = accuracy(&model, &xtest, &test_labels);
    println!("held-out accuracy after {epochs} epochs: {:.2}% ({:.1} s)", 100.0 * acc, start.elapsed().as_secs_f64());
    acc
}

fn main() -> Result<(), Box<dyn Error>> {
    let seed: u64 = std::env::args().nth(1).map(|s| s.parse()).transpose()?.unwrap_or(1);
    let acc = run(&Digits::load()?, seed, EPOCHS);
    if acc < 0.98 {
        return Err(format!("held-out accuracy {:.2}% is below 98%", 100.0 * acc).into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// Three epochs already classify most held-out digits (about 97%; the full run's 98% takes
    /// 20 epochs and stays in the example).
    #[test]
    fn three_epochs_learn_the_digits() {
        let acc = super::run(&super::Digits::load().unwrap(), 1, 3);
        assert!(acc > 0.93, "held-out accuracy {acc} after 3 epochs");
    }
}

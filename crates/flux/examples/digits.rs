//! An MLP on real handwritten digits: the UCI "Optical Recognition of Handwritten Digits" test
//! set (1797 8x8 images, E. Alpaydin and C. Kaynak, CC BY 4.0; see `data/digits/README.md`).
//!
//! Holds out 20% of the images, trains `64 => 64 => 10` with Adam and a shuffling
//! `DataLoader`, reports held-out accuracy, saves the model and the optimiser state, reloads
//! both into fresh objects, checks that nothing changed, and trains one more epoch. The loss of
//! every step and the accuracies of every epoch go into a `History`, drawn to
//! `target/plots/digits.png` (and saved as `target/plots/digits.csv`).
//!
//! ```text
//! cargo run --release -p flux --example digits
//! ```

use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::Instant;

use flux::prelude::*;
use flux::tensor::rand::rngs::StdRng;
use flux::tensor::rand::seq::SliceRandom;
use flux::tensor::rand::SeedableRng;

const CLASSES: usize = 10;
const PIXELS: usize = 64;

/// Reads `digits.csv`: 64 pixel values in 0..=16 then the label, one image per line. Returns
/// the pixels scaled to [0, 1] and the labels.
fn read_digits(path: &Path) -> Result<(Vec<[f32; PIXELS]>, Vec<usize>), Box<dyn Error>> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.trim().split(',').collect();
        if fields.len() != PIXELS + 1 {
            return Err(format!("{}:{}: expected {} fields, found {}", path.display(), n + 1, PIXELS + 1, fields.len()).into());
        }
        let mut img = [0f32; PIXELS];
        for (p, f) in img.iter_mut().zip(&fields[..PIXELS]) {
            *p = f.parse::<f32>().map_err(|e| format!("{}:{}: {e}", path.display(), n + 1))? / 16.0;
        }
        let label: usize = fields[PIXELS].parse().map_err(|e| format!("{}:{}: {e}", path.display(), n + 1))?;
        if label >= CLASSES {
            return Err(format!("{}:{}: label {label} out of range", path.display(), n + 1).into());
        }
        images.push(img);
        labels.push(label);
    }
    Ok((images, labels))
}

/// The images `idx` as a `[64, n]` matrix (one image per column) and their one-hot labels.
fn batch(images: &[[f32; PIXELS]], labels: &[usize], idx: &[usize]) -> (Tensor, Tensor, Vec<usize>) {
    let x: Vec<f32> = idx.iter().flat_map(|&i| images[i]).collect();
    let y: Vec<usize> = idx.iter().map(|&i| labels[i]).collect();
    (Tensor::from_vec(x, &[PIXELS, idx.len()]), onehotbatch(&y, CLASSES), y)
}

fn accuracy(model: &impl Layer, x: &Tensor, labels: &[usize]) -> f64 {
    let pred = no_grad(|| onecold(&model.forward(&Var::from(x))));
    pred.iter().zip(labels).filter(|(p, l)| p == l).count() as f64 / labels.len() as f64
}

fn mlp() -> Chain {
    chain![Dense::new(PIXELS, 64, relu), Dense::new(64, CLASSES, identity)]
}

fn main() -> Result<(), Box<dyn Error>> {
    let start = Instant::now();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let (images, labels) = read_digits(&root.join("data/digits/digits.csv"))?;
    println!("{} images of {} pixels", images.len(), PIXELS);

    // Hold out 20%, chosen with a fixed seed.
    seed(1);
    let mut order: Vec<usize> = (0..images.len()).collect();
    order.shuffle(&mut StdRng::seed_from_u64(2024));
    let ntest = images.len() / 5;
    let (test_idx, train_idx) = order.split_at(ntest);
    let (xtrain, ytrain, train_labels) = batch(&images, &labels, train_idx);
    let (xtest, _, test_labels) = batch(&images, &labels, test_idx);
    println!("train on {}, hold out {}", train_idx.len(), test_idx.len());

    let model = mlp();
    println!("model: {model}");
    let ps = params(&model);
    let loss = |x: &Var, y: &Var| logitcrossentropy(&model.forward(x), y);
    let data = DataLoader::new(xtrain.clone(), ytrain.clone(), 32).seed(7);
    let mut opt = Adam::new(0.003);

    let epochs = 30;
    let mut history = History::new();
    let ytest = Var::from(batch(&images, &labels, test_idx).1);
    for epoch in 1..=epochs {
        let s = train(loss, &ps, &data, &mut opt);
        history.extend("train loss", &s.losses);
        let step = history.last_step("train loss").unwrap_or(0);
        let (train_acc, test_acc) = (accuracy(&model, &xtrain, &train_labels), accuracy(&model, &xtest, &test_labels));
        history.push("held-out loss", step, no_grad(|| loss(&Var::from(&xtest), &ytest).item()));
        history.push("train accuracy", step, train_acc);
        history.push("held-out accuracy", step, test_acc);
        if epoch % 5 == 0 {
            println!("epoch {epoch:2}: mean loss {:.4}, train accuracy {:.2}%, held-out accuracy {:.2}%", s.mean_loss, 100.0 * train_acc, 100.0 * test_acc);
        }
    }
    let plots = root.join("target/plots");
    std::fs::create_dir_all(&plots)?;
    let plots = plots.canonicalize()?;
    plot_history(&history, plots.join("digits.png"))?;
    history.save_csv(plots.join("digits.csv"))?;
    println!("curves: {} (data: {})", plots.join("digits.png").display(), plots.join("digits.csv").display());
    let acc = accuracy(&model, &xtest, &test_labels);
    println!("held-out accuracy after {epochs} epochs: {:.2}% ({:.1}s)", 100.0 * acc, start.elapsed().as_secs_f64());

    // Save the model and the optimiser state, then load both into fresh objects.
    let dir = std::env::temp_dir();
    let (model_path, opt_path) = (dir.join("flux_digits_model.json"), dir.join("flux_digits_adam.json"));
    save_state(&model, &model_path)?;
    opt.save_state(&model, &opt_path)?;
    println!("saved {} and {}", model_path.display(), opt_path.display());

    let model2 = mlp(); // freshly initialised
    load_state(&model2, &model_path)?;
    let mut opt2 = Adam::new(0.003);
    opt2.load_state(&model2, &opt_path)?;
    let acc2 = accuracy(&model2, &xtest, &test_labels);
    println!("reloaded: held-out accuracy {:.2}%", 100.0 * acc2);
    assert_eq!(acc, acc2, "the reloaded model must predict exactly as the saved one");
    assert_eq!(opt2.state_json(&model2)["params"], opt.state_json(&model)["params"], "the reloaded optimiser state must be identical");

    // Continue for an epoch from the reloaded state, and the original for the same epoch: with
    // the same batches, the two must stay identical (the moments and step counts came along).
    let ps2 = params(&model2);
    let loss2 = |x: &Var, y: &Var| logitcrossentropy(&model2.forward(x), y);
    let s = train(loss2, &ps2, &DataLoader::new(xtrain.clone(), ytrain.clone(), 32).seed(99), &mut opt2);
    train(loss, &ps, &DataLoader::new(xtrain.clone(), ytrain.clone(), 32).seed(99), &mut opt);
    let acc3 = accuracy(&model2, &xtest, &test_labels);
    println!("one more epoch after reloading: mean loss {:.4}, held-out accuracy {:.2}%", s.mean_loss, 100.0 * acc3);
    let same = ps.iter().zip(ps2.iter()).all(|(a, b)| a.to_vec() == b.to_vec());
    println!("the reloaded model and the original, trained on the same epoch, are identical: {same}");
    assert!(same);
    println!("total time {:.1}s", start.elapsed().as_secs_f64());
    assert!(acc >= 0.95 && acc3 >= 0.95, "held-out accuracy below 95%: {acc} then {acc3}");
    let _ = std::fs::remove_file(model_path);
    let _ = std::fs::remove_file(opt_path);
    Ok(())
}

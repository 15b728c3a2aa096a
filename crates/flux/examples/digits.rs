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

#[path = "common/digits_data.rs"]
mod digits_data;

use std::error::Error;
use std::time::Instant;

use digits_data::{accuracy, repo_root, Digits, CLASSES, PIXELS};
use flux::prelude::*;

fn mlp() -> Chain {
    chain![Dense::new(PIXELS, 64, relu), Dense::new(64, CLASSES, identity)]
}

fn main() -> Result<(), Box<dyn Error>> {
    let start = Instant::now();
    let root = repo_root();
    let digits = Digits::load()?;
    println!("{} images of {} pixels", digits.images.len(), PIXELS);

    // Hold out 20%, chosen with a fixed seed.
    seed(1);
    let (test_idx, train_idx) = digits.holdout();
    let (xtrain, ytrain, train_labels) = digits.batch(&train_idx);
    let (xtest, ytest, test_labels) = digits.batch(&test_idx);
    println!("train on {}, hold out {}", train_idx.len(), test_idx.len());

    let model = mlp();
    println!("model: {model}");
    let ps = params(&model);
    let loss = |x: &Var, y: &Var| logitcrossentropy(&model.forward(x), y);
    let data = DataLoader::new(xtrain.clone(), ytrain.clone(), 32).seed(7);
    let mut opt = Adam::new(0.003);

    let epochs = 30;
    let mut history = History::new();
    let ytest = Var::from(ytest);
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

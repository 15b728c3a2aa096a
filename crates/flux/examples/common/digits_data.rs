//! The shipped handwritten digits (`data/digits/digits.csv`, the UCI "Optical Recognition of
//! Handwritten Digits" test set: 1797 8x8 images, E. Alpaydin and C. Kaynak, CC BY 4.0; see
//! `data/digits/README.md`), read once for the digits examples: the file, the fixed 20%
//! hold-out, batches and accuracy. `digits.rs`, `digits_cnn.rs` and `digits_ddp.rs` include it
//! with `#[path]` (Cargo builds each example from its own file), so all three train and test on
//! the same images.

use std::error::Error;
use std::path::{Path, PathBuf};

use flux::prelude::*;
use flux::tensor::rand::rngs::StdRng;
use flux::tensor::rand::seq::SliceRandom;
use flux::tensor::rand::SeedableRng;

/// Ten digits.
pub const CLASSES: usize = 10;
/// Pixels per image (8 by 8).
pub const PIXELS: usize = 64;

/// The images (pixels scaled to [0, 1], row by row) and their labels `0..10`.
pub struct Digits {
    pub images: Vec<[f32; PIXELS]>,
    pub labels: Vec<usize>,
}

/// The repository's root, where `data/` and `target/` are.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

impl Digits {
    /// Reads `data/digits/digits.csv` from the repository.
    pub fn load() -> Result<Digits, Box<dyn Error>> {
        Digits::read(&repo_root().join("data/digits/digits.csv"))
    }

    /// Reads a `digits.csv`: 64 pixel values in 0..=16 then the label, one image per line.
    pub fn read(path: &Path) -> Result<Digits, Box<dyn Error>> {
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
        Ok(Digits { images, labels })
    }

    /// The indices of the held-out 20% and of the rest, `(test, train)`: the same for every
    /// example and every run (a fixed shuffle).
    pub fn holdout(&self) -> (Vec<usize>, Vec<usize>) {
        let n = self.images.len();
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut StdRng::seed_from_u64(2024));
        let train = order.split_off(n / 5);
        (order, train)
    }

    /// The images `idx` as a `[64, n]` matrix (one image per column), their one-hot labels
    /// `[10, n]` and the labels.
    pub fn batch(&self, idx: &[usize]) -> (Tensor, Tensor, Vec<usize>) {
        let x: Vec<f32> = idx.iter().flat_map(|&i| self.images[i]).collect();
        let y: Vec<usize> = idx.iter().map(|&i| self.labels[i]).collect();
        (Tensor::from_vec(x, &[PIXELS, idx.len()]), onehotbatch(&y, CLASSES), y)
    }
}

/// The fraction of `x`'s samples (along its last dim) that `model` labels as `labels`.
pub fn accuracy(model: &impl Layer, x: &Tensor, labels: &[usize]) -> f64 {
    let pred = no_grad(|| onecold(&model.forward(&Var::from(x))));
    pred.iter().zip(labels).filter(|(p, l)| p == l).count() as f64 / labels.len() as f64
}

//! The digits MLP of `examples/digits.rs`, trained data-parallel over MPI: every rank holds the
//! model, trains on its part of each batch (`DataLoader::shard`), and averages gradients with
//! the others before each Adam step (`DistributedOptimiser`). Each rank prints its throughput;
//! rank 0 prints the held-out accuracy, then trains the same model as one process on the
//! union of the ranks' batches and prints that accuracy too (they agree to f32 rounding).
//!
//! ```text
//! cargo build --release -p flux --example digits_ddp --features distributed
//! mpirun -np 2 target/release/examples/digits_ddp            # add --allow-run-as-root as root
//! cargo run --release -p flux --example digits_ddp --features distributed   # one rank
//! ```

use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::Instant;

use flux::distributed::{broadcast_params, init, Comm, DistributedOptimiser};
use flux::prelude::*;
use flux::tensor::rand::rngs::StdRng;
use flux::tensor::rand::seq::SliceRandom;
use flux::tensor::rand::SeedableRng;

const CLASSES: usize = 10;
const PIXELS: usize = 64;
/// The global batch (32, as in `examples/digits.rs`) is split over the ranks.
const GLOBAL_BATCH: usize = 32;
const EPOCHS: usize = 30;

/// Reads `digits.csv`: 64 pixel values in 0..=16 then the label, one image per line.
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

/// The images `idx` as a `[64, n]` matrix and their one-hot labels.
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

/// Are the parameters bit-identical on every rank?
fn same_everywhere(comm: &Comm, ps: &Params) -> Result<bool, Box<dyn Error>> {
    let mine: Vec<f64> = ps.iter().flat_map(|p| p.data().to_vec()).collect();
    let mut root = mine.clone();
    comm.broadcast(&mut root, 0)?;
    let mut differ = [f64::from(u8::from(root != mine))];
    comm.all_reduce_sum(&mut differ)?;
    Ok(differ[0] == 0.0)
}

fn main() -> Result<(), Box<dyn Error>> {
    let comm = init()?;
    let (rank, size) = (comm.rank(), comm.size());
    if !GLOBAL_BATCH.is_multiple_of(size) {
        return Err(format!("{size} ranks do not divide the global batch of {GLOBAL_BATCH}").into());
    }
    let root_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let (images, labels) = read_digits(&root_dir.join("data/digits/digits.csv"))?;

    // The same 20% hold-out on every rank (a fixed seed), as in examples/digits.rs.
    let mut order: Vec<usize> = (0..images.len()).collect();
    order.shuffle(&mut StdRng::seed_from_u64(2024));
    let (test_idx, train_idx) = order.split_at(images.len() / 5);
    let (xtrain, ytrain, _) = batch(&images, &labels, train_idx);
    let (xtest, _, test_labels) = batch(&images, &labels, test_idx);
    if comm.is_root() {
        println!(
            "{size} rank(s) over {}: train on {}, hold out {}; global batch {GLOBAL_BATCH}, {} per rank",
            comm.backend_name(),
            train_idx.len(),
            test_idx.len(),
            GLOBAL_BATCH / size
        );
    }

    // Each rank initialises with its own seed; broadcast_params gives everyone rank 0's model.
    seed(1 + rank as u64);
    let model = mlp();
    let ps = params(&model);
    broadcast_params(&comm, &ps)?;
    let start_values: Vec<Tensor> = ps.iter().map(|p| p.data()).collect();

    let samples = std::cell::Cell::new(0usize);
    let loss = |x: &Var, y: &Var| {
        samples.set(samples.get() + x.shape()[1]);
        logitcrossentropy(&model.forward(x), y)
    };
    let data = DataLoader::new(xtrain.clone(), ytrain.clone(), GLOBAL_BATCH / size).seed(7).shard(rank, size);
    let mut opt = DistributedOptimiser::new(&comm, Adam::new(0.003));
    comm.barrier()?;
    let t0 = Instant::now();
    let mut steps = 0;
    for _ in 0..EPOCHS {
        steps += train(loss, &ps, &data, &mut opt).steps;
    }
    let secs = t0.elapsed().as_secs_f64();
    let (reduce, reduces) = opt.allreduce_stats();
    println!(
        "[rank {rank}/{size}] {steps} steps in {secs:.2}s: {:.0} samples/s on this rank, {:.3} ms/step, all-reduce {:.1}% of it ({reduces} calls)",
        samples.get() as f64 / secs,
        1e3 * secs / steps as f64,
        100.0 * reduce.as_secs_f64() / secs
    );
    let acc = accuracy(&model, &xtest, &test_labels);
    let same = same_everywhere(&comm, &ps)?;
    comm.barrier()?;
    if comm.is_root() {
        println!("held-out accuracy after {EPOCHS} epochs, data-parallel on {size} rank(s): {:.2}%", 100.0 * acc);
        println!("parameters identical on every rank: {same}");

        // One process on the union of the ranks' batches: the same start, global batches.
        let single = mlp();
        let sps = params(&single);
        for (p, v) in sps.iter().zip(&start_values) {
            p.set_data(v.clone());
        }
        let sloss = |x: &Var, y: &Var| logitcrossentropy(&single.forward(x), y);
        let whole = DataLoader::new(xtrain, ytrain, GLOBAL_BATCH).seed(7);
        let mut sopt = Adam::new(0.003);
        let t1 = Instant::now();
        for _ in 0..EPOCHS {
            train(sloss, &sps, &whole, &mut sopt);
        }
        let single_secs = t1.elapsed().as_secs_f64();
        let sacc = accuracy(&single, &xtest, &test_labels);
        let diff =
            ps.iter().zip(sps.iter()).flat_map(|(a, b)| a.data().to_vec().into_iter().zip(b.data().to_vec())).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        println!(
            "one process on the union of the batches: held-out accuracy {:.2}% ({single_secs:.2}s); largest parameter difference {diff:.2e}",
            100.0 * sacc
        );
        if !same || acc < 0.95 || diff > 1e-4 {
            return Err(format!("data-parallel training went wrong: identical {same}, accuracy {acc}, difference {diff}").into());
        }
    }
    Ok(())
}

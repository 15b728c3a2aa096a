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

#[path = "common/digits_data.rs"]
mod digits_data;

use std::error::Error;
use std::time::Instant;

use digits_data::{accuracy, Digits, CLASSES, PIXELS};
use flux::distributed::{broadcast_params, init, Comm, DistributedOptimiser};
use flux::prelude::*;

/// The global batch (32, as in `examples/digits.rs`) is split over the ranks.
const GLOBAL_BATCH: usize = 32;
const EPOCHS: usize = 30;

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
    let digits = Digits::load()?;

    // The same 20% hold-out on every rank (a fixed seed), as in examples/digits.rs.
    let (test_idx, train_idx) = digits.holdout();
    let (xtrain, ytrain, _) = digits.batch(&train_idx);
    let (xtest, _, test_labels) = digits.batch(&test_idx);
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

//! The data-parallel scenarios both test programs run: on threads (`tests/threads.rs`, no MPI)
//! and on MPI processes (`tests/mpi_ranks.rs`, under `mpirun -np 2`). Each rank trains with
//! sharded data and a `DistributedOptimiser`, and also trains, alone, the single-process
//! reference on the union of the ranks' batches; the two must end with the same parameters.

#![allow(dead_code)]

use flux_autograd::{Params, Var};
use flux_distributed::{broadcast_params, Comm, DistributedOptimiser};
use flux_layers::{chain, identity, logitcrossentropy, mse, onehotbatch, params, relu, reset, Chain, Dense, Layer};
use flux_optim::{train, Adam, DataLoader, Optimiser};
use flux_recurrent::LSTM;
use flux_tensor::rand::rngs::StdRng;
use flux_tensor::rand::SeedableRng;
use flux_tensor::Tensor;

/// Samples, per-rank batch, epochs: `N` divisible by `B * size` for 2 and 3 ranks.
pub const N: usize = 96;
pub const B: usize = 8;
pub const EPOCHS: usize = 3;
/// "To f32 rounding": the largest difference allowed, relative to `1 + |value|`.
pub const TOL: f64 = 1e-6;

/// Every parameter's values, flattened.
pub fn values(ps: &Params) -> Vec<Vec<f64>> {
    ps.iter().map(|p| p.data().to_vec()).collect()
}

/// Sets the parameters to `vals` (same order and sizes).
pub fn set_values(ps: &Params, vals: &[Vec<f64>]) {
    for (p, v) in ps.iter().zip(vals) {
        p.set_data(Tensor::from_vec(v.clone(), p.shape().dims()).to_dtype(p.dtype()));
    }
}

/// The largest `|a - b| / (1 + |b|)` over all parameters.
pub fn max_rel_diff(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
    a.iter().flatten().zip(b.iter().flatten()).map(|(x, y)| (x - y).abs() / (1.0 + y.abs())).fold(0.0, f64::max)
}

/// Do all ranks hold exactly (bit for bit) rank 0's values?
pub fn same_on_every_rank(comm: &Comm, vals: &[Vec<f64>]) -> bool {
    let mut flat: Vec<f64> = vals.iter().flatten().copied().collect();
    let mine = flat.clone();
    comm.broadcast(&mut flat, 0).expect("broadcast");
    let mut differs = [f64::from(u8::from(flat != mine))];
    comm.all_reduce_sum(&mut differs).expect("all_reduce_sum");
    differs[0] == 0.0
}

/// What a scenario found on this rank.
#[derive(Debug)]
pub struct Outcome {
    /// Parameters differed between ranks before `broadcast_params`.
    pub differed_before: bool,
    /// ... and were bit-identical on every rank after it.
    pub equal_after_broadcast: bool,
    /// ... and after training.
    pub equal_after_training: bool,
    /// Largest relative difference to the single-process reference.
    pub diff_to_reference: f64,
    /// The loss went down (the scenario trains something).
    pub loss_fell: bool,
}

impl Outcome {
    pub fn check(&self, name: &str) -> Result<(), String> {
        let ok = self.differed_before && self.equal_after_broadcast && self.equal_after_training && self.diff_to_reference <= TOL && self.loss_fell;
        if ok {
            Ok(())
        } else {
            Err(format!("{name}: {self:?} (tolerance {TOL})"))
        }
    }
}

/// Trains `make()` data-parallel on `comm` and as one process on the union of the batches.
/// `loss(model, x, y)`; `x` and `y` hold `N` samples along their last dimension.
fn scenario<M: Layer>(comm: &Comm, make: impl Fn() -> M, loss: impl Fn(&M, &Var, &Var) -> Var, x: Tensor, y: Tensor) -> Outcome {
    // Every rank initialises differently, as separately seeded processes do.
    flux_tensor::seed(1000 + comm.rank() as u64);
    let model = make();
    let ps = params(&model);
    let differed_before = !same_on_every_rank(comm, &values(&ps)) || comm.size() == 1;
    broadcast_params(comm, &ps).expect("broadcast_params");
    let start = values(&ps);
    let equal_after_broadcast = same_on_every_rank(comm, &start);

    // The single-process reference: rank 0's start, batches of B * size, the same seed.
    let reference = make();
    let rps = params(&reference);
    set_values(&rps, &start);
    let whole = DataLoader::new(x.clone(), y.clone(), B * comm.size()).seed(77);
    let mut ropt = Adam::new(0.01);
    let first = flux_autograd::no_grad(|| loss(&reference, &Var::from(x.clone()), &Var::from(y.clone())).item());
    for _ in 0..EPOCHS {
        train(|x: &Var, y: &Var| loss(&reference, x, y), &rps, &whole, &mut ropt);
    }
    let last = flux_autograd::no_grad(|| loss(&reference, &Var::from(x.clone()), &Var::from(y.clone())).item());

    // Data-parallel: this rank's part of every batch, gradients averaged before each step.
    let shard = DataLoader::new(x, y, B).seed(77).shard(comm.rank(), comm.size());
    assert_eq!(shard.len(), whole.len(), "one step per global batch");
    let mut opt = DistributedOptimiser::new(comm, Adam::new(0.01));
    for _ in 0..EPOCHS {
        train(|x: &Var, y: &Var| loss(&model, x, y), &ps, &shard, &mut opt);
    }
    assert_eq!(opt.allreduce_stats().1, EPOCHS * whole.len(), "one all-reduce per step");
    assert!(opt.name().starts_with("Adam"));
    let trained = values(&ps);
    Outcome {
        differed_before,
        equal_after_broadcast,
        equal_after_training: same_on_every_rank(comm, &trained),
        diff_to_reference: max_rel_diff(&trained, &values(&rps)),
        loss_fell: last < first,
    }
}

/// The same data on every rank, from a fixed generator.
fn data(features: &[usize], classes: usize) -> (Tensor, Tensor) {
    let mut rng = StdRng::seed_from_u64(5);
    let mut shape = features.to_vec();
    shape.push(N);
    let x = Tensor::randn_with(&shape, &mut rng).to_f32();
    let labels: Vec<usize> = (0..N).map(|i| (i * 7 + i / 5) % classes).collect();
    (x, onehotbatch(&labels, classes))
}

/// An MLP classifier (`8 => 16 => 4`), logit cross-entropy, Adam.
pub fn mlp(comm: &Comm) -> Outcome {
    let (x, y) = data(&[8], 4);
    let make = || -> Chain { chain![Dense::new(8, 16, relu), Dense::new(16, 4, identity)] };
    scenario(comm, make, |m: &Chain, x: &Var, y: &Var| logitcrossentropy(&m.forward(x), y), x, y)
}

/// The steps of a `[features, T, batch]` sequence batch as `[features, batch]` inputs.
pub fn steps(x: &Var) -> Vec<Var> {
    let t = x.data();
    let (f, len, b) = (t.shape()[0], t.shape()[1], t.shape()[2]);
    (0..len).map(|s| Var::from(t.slice(1, s..s + 1).reshape(&[f, b]))).collect()
}

/// `Chain(LSTM(3 => 8), Dense(8 => 2))` on sequences of 5 steps, mse on the last output, Adam.
pub fn lstm(comm: &Comm) -> Outcome {
    let (x, _) = data(&[3, 5], 2);
    let mut rng = StdRng::seed_from_u64(6);
    let y = Tensor::randn_with(&[2, N], &mut rng).to_f32();
    let make = || -> Chain { chain![LSTM::new(3, 8), Dense::new(8, 2, identity)] };
    let loss = |m: &Chain, x: &Var, y: &Var| {
        reset(m);
        let ys = m.forward_seq(&steps(x));
        mse(ys.last().expect("5 steps"), y)
    };
    scenario(comm, make, loss, x, y)
}

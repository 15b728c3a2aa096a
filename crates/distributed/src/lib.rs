//! # flux-distributed
//!
//! Data-parallel training for flux-rs: every rank (an MPI process, usually one per core, socket
//! or machine) holds the whole model, trains on its own part of each batch, and averages the
//! gradients with the others before every step, so all ranks take the same steps, those of one
//! process training on the union of their batches. This is Flux's `DistributedUtils` and
//! PyTorch's `DistributedDataParallel` on MPI (the `mpi` crate, rsmpi, over the system's Open MPI
//! or MPICH), as HPC clusters run it. See `docs/distributed.md` for running it on one machine
//! and on a cluster.
//!
//! | Flux.jl `DistributedUtils`                    | PyTorch                                   | flux-rs                                      |
//! |-----------------------------------------------|-------------------------------------------|----------------------------------------------|
//! | `initialize(MPIBackend)`, `get_distributed_backend` | `init_process_group("mpi")`         | `let comm = init()?;`                        |
//! | `local_rank(b)`, `total_workers(b)`           | `get_rank()`, `get_world_size()`          | `comm.rank()`, `comm.size()`                 |
//! | `synchronize!!(b, ps; root = 0)`              | DDP's broadcast at construction           | `broadcast_params(&comm, &ps)?`              |
//! | `allreduce!(b, g, avg)`                       | DDP's bucketed all-reduce in `backward()` | `allreduce_grads(&comm, &mut grads)?`        |
//! | `DistributedOptimizer(b, opt)`                | `DistributedDataParallel(model)`          | `DistributedOptimiser::new(&comm, opt)`      |
//! | `DistributedDataContainer(b, data)`           | `DistributedSampler`                      | `DataLoader::new(..).seed(s).shard(rank, size)` |
//!
//! ```
//! use flux_distributed::{broadcast_params, init, DistributedOptimiser};
//! use flux_optim::{train, Adam, DataLoader};
//! use flux_autograd::{param, params, Var};
//! use flux_tensor::Tensor;
//!
//! // Under `mpirun -np N` (with the `mpi` feature) every process is one rank; started alone,
//! // or built without the feature, it is rank 0 of 1 and trains as usual.
//! let comm = init().unwrap();
//! let x = Tensor::from_vec((0..64).map(|i| i as f64 / 64.0).collect::<Vec<_>>(), &[1, 64]);
//! let y = x.map(|v| 2.0 * v + 1.0);
//! let (w, b) = (param(Tensor::randn(&[1, 1])), param(Tensor::zeros(&[1])));
//! let ps = params![&w, &b];
//! broadcast_params(&comm, &ps).unwrap(); // rank 0's initial values everywhere
//! let loss = |x: &Var, y: &Var| (w.matmul(x) + &b - y).powi(2).mean();
//! // Each rank 8 samples of every global batch of 8 × size; the same order on every rank.
//! let data = DataLoader::new(x, y, 8).seed(1).shard(comm.rank(), comm.size());
//! let mut opt = DistributedOptimiser::new(&comm, Adam::new(0.05));
//! for _epoch in 0..100 {
//!     train(loss, &ps, &data, &mut opt);
//! }
//! assert!((w.item() - 2.0).abs() < 0.1);
//! ```
//!
//! **Failures.** Collectives return [`DistError`]s: a rank whose local check fails (a gradient
//! of the wrong shape, a parameter that is not a leaf) still takes part in the exchange with a
//! failure flag, and models that differ between ranks are caught by a layout signature carried
//! in the same buffer, so every rank returns an error together and none waits for the others.
//! A rank that **panics** runs the panic hook that [`init`] installs: after the usual message
//! it calls `MPI_Abort`, and `mpirun` ends every rank with an error instead of leaving them
//! blocked in their next collective ([`set_abort_on_panic`] turns this off). A rank that is
//! killed is noticed by `mpirun`, which ends the others. Errors inside the MPI library abort
//! the job (MPI's default `MPI_ERRORS_ARE_FATAL`; rsmpi offers no other handler).

#![forbid(unsafe_code)]

mod comm;
mod error;
mod local;
#[cfg(feature = "mpi")]
mod mpi_backend;
mod optimiser;
mod pack;
mod sync;

pub use comm::{BufMut, Comm, Element};
pub use error::DistError;
pub use optimiser::DistributedOptimiser;
pub use sync::{allreduce_grads, broadcast_params};

/// Starts the distributed run and returns this process's [`Comm`].
///
/// With the `mpi` feature: initialises MPI (`MPI_Init_thread`, serialised threading) over
/// `MPI_COMM_WORLD` and installs the panic hook described in the crate docs. Called again while
/// a `Comm` from it is alive, it returns that world again. MPI is finalised when the last
/// `Comm` is dropped and cannot start twice in one process: `init` after that is an error.
/// Started without a launcher, it is rank 0 of 1 (MPI's singleton start).
///
/// Without the feature: [`Comm::single`], unless a launcher (`mpirun`, `srun`) announced
/// several ranks, which is [`DistError::NoMpiBackend`] rather than N processes training alone.
///
/// ```
/// let comm = flux_distributed::init().unwrap();
/// assert!(comm.rank() < comm.size());
/// ```
pub fn init() -> Result<Comm, DistError> {
    #[cfg(feature = "mpi")]
    {
        mpi_backend::init()
    }
    #[cfg(not(feature = "mpi"))]
    {
        match launched_ranks() {
            Some(ranks) if ranks > 1 => Err(DistError::NoMpiBackend { ranks }),
            _ => Ok(Comm::single()),
        }
    }
}

/// The number of ranks a launcher announced in the environment, if any (Open MPI, MPICH/PMI,
/// Slurm).
#[cfg(not(feature = "mpi"))]
fn launched_ranks() -> Option<usize> {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_NTASKS"].iter().find_map(|k| std::env::var(k).ok()?.trim().parse().ok())
}

/// Whether a panic on one rank calls `MPI_Abort` to end every rank (the default: `true`). Turn
/// it off only if the program catches panics and keeps every rank in step by itself. Without
/// the `mpi` feature there is nothing to abort and this does nothing.
///
/// ```
/// flux_distributed::set_abort_on_panic(true);
/// ```
pub fn set_abort_on_panic(on: bool) {
    #[cfg(feature = "mpi")]
    mpi_backend::set_abort_on_panic(on);
    #[cfg(not(feature = "mpi"))]
    let _ = on;
}

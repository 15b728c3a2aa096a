//! Multi-process tests over MPI (`harness = false`, feature `mpi`). Started alone (by
//! `cargo test --features mpi` or `cargo xtask test`), this program relaunches itself as
//! `mpirun -np 2 <itself>` and checks the exit status; under `mpirun` each process is one rank
//! and runs the checks:
//!
//! - `broadcast_params` makes differently seeded ranks bit-identical;
//! - an MLP and an LSTM model (`flux_recurrent::LSTM` inside a `flux_layers::Chain`) trained
//!   with sharded data and `DistributedOptimiser` end with the parameters of one process trained
//!   on the union of the two ranks' batches, to f32 rounding;
//! - a local error on one rank (a gradient of the wrong shape) is an error on both, no hang;
//! - a rank that panics ends the whole job with an error (the `MPI_Abort` panic hook) within a
//!   time limit, instead of leaving the other blocked in its next collective.

mod common;

use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use flux_autograd::{gradient_params, param, params, Var};
use flux_distributed::{allreduce_grads, init, DistError};
use flux_tensor::Tensor;

const RANKS: &str = "2";
const LIMIT: Duration = Duration::from_secs(300);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if std::env::var_os("OMPI_COMM_WORLD_SIZE").is_none() && std::env::var_os("PMI_SIZE").is_none() {
        return launch();
    }
    match args.get(1).map(String::as_str) {
        Some("panic") => panic_rank(),
        _ => ranks(),
    }
}

/// `mpirun -np 2 <this program> [arg]` with a time limit; the exit status and whether it
/// finished in time.
fn mpirun(arg: Option<&str>) -> Result<(bool, Duration), String> {
    let me = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let mut cmd = Command::new("mpirun");
    cmd.args(["--oversubscribe", "-np", RANKS]).arg(&me).args(arg);
    // Open MPI refuses to start as root unless told (CI runs as root).
    cmd.env("OMPI_ALLOW_RUN_AS_ROOT", "1").env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    // Keep each rank to one compute thread: two ranks on two cores.
    cmd.env("RAYON_NUM_THREADS", "1").stdin(Stdio::null());
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("cannot run mpirun ({e}); install Open MPI (openmpi-bin) or run under mpirun yourself"))?;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Ok((status.success(), start.elapsed()));
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("mpirun -np {RANKS} {} did not finish within {LIMIT:?}: a rank hangs", arg.unwrap_or("")));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn launch() -> ExitCode {
    let mut failed = 0;
    match mpirun(None) {
        Ok((true, t)) => println!("mpi_ranks: the checks passed on {RANKS} ranks ({:.1}s)", t.as_secs_f64()),
        Ok((false, _)) => {
            println!("mpi_ranks: FAILED on {RANKS} ranks (see the ranks' output above)");
            failed += 1;
        }
        Err(e) => {
            println!("mpi_ranks: FAILED: {e}");
            failed += 1;
        }
    }
    // A panicking rank must end the job with an error, not leave the other waiting forever.
    match mpirun(Some("panic")) {
        Ok((false, t)) => println!("mpi_ranks: a panicking rank ended the job with an error after {:.1}s, as it must", t.as_secs_f64()),
        Ok((true, _)) => {
            println!("mpi_ranks: FAILED: the job with a panicking rank reported success");
            failed += 1;
        }
        Err(e) => {
            println!("mpi_ranks: FAILED: {e}");
            failed += 1;
        }
    }
    println!("{} passed, {failed} failed", 2 - failed);
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The checks, on every rank. A failed check panics, and the panic hook aborts the job.
fn ranks() -> ExitCode {
    let comm = init().expect("init");
    assert_eq!(comm.backend_name(), "mpi");
    assert_eq!(comm.size(), 2, "run me under mpirun -np 2");
    let say = |s: String| println!("[rank {}/{}] {s}", comm.rank(), comm.size());
    comm.barrier().expect("barrier");

    for (name, outcome) in [("MLP", common::mlp(&comm)), ("LSTM", common::lstm(&comm))] {
        say(format!("{name}: {outcome:?}"));
        outcome.check(name).unwrap_or_else(|e| panic!("{e}"));
    }

    // A local error on rank 1 is an error on both ranks, and nothing changes.
    let w = param(Tensor::ones(&[3]).to_f32());
    let mut gs = gradient_params(|| (&w * &w).sum(), &params![&w]);
    if comm.rank() == 1 {
        gs.set(&w, Var::from(Tensor::zeros(&[4]).to_f32()));
    }
    let before = gs[&w].data().to_vec();
    let e = allreduce_grads(&comm, &mut gs).expect_err("a bad gradient on rank 1 must fail every rank");
    assert_eq!(gs[&w].data().to_vec(), before);
    match (comm.rank(), &e) {
        (0, DistError::PeerFailed { .. }) | (1, DistError::GradShape { .. }) => say(format!("a bad gradient on rank 1 fails every rank: {e}")),
        _ => panic!("unexpected error on rank {}: {e}", comm.rank()),
    }
    // ... and the world is still usable afterwards.
    let mut gs = gradient_params(|| (&w * &w).sum() * (comm.rank() + 1) as f64, &params![&w]);
    allreduce_grads(&comm, &mut gs).expect("allreduce_grads");
    assert_eq!(gs[&w].data().to_vec(), vec![3.0; 3], "mean of 2·1 and 2·2");
    comm.barrier().expect("barrier");
    say("all checks passed".into());
    ExitCode::SUCCESS
}

/// Rank 1 panics before a collective that rank 0 waits in.
fn panic_rank() -> ExitCode {
    let comm = init().expect("init");
    if comm.rank() == 1 {
        panic!("rank 1 panics on purpose (mpi_ranks' panic check)");
    }
    let mut v = [1.0f32; 4];
    let _ = comm.all_reduce_sum(&mut v);
    // Never reached in a correct run: MPI_Abort from rank 1 ends this process too.
    println!("[rank 0] the all-reduce returned although rank 1 panicked");
    ExitCode::SUCCESS
}

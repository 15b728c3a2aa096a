//! flux-rs developer tasks, run as `cargo xtask <task>`:
//!
//! - `gradcheck [FILTER]`: the cross-crate gradient-check suite (first and second order).
//! - `bench [--workloads W1,W2,...] [--threads N] [--min-time S]`: benchmarks as JSON lines,
//!   in the schema of the peer scripts (`../shared/bench/peers`).
//! - `test`: everything CI runs: format check, clippy, workspace and doc tests, gradcheck, and
//!   the multi-process MPI tests of flux-distributed when MPI is installed.

mod bench;
mod gradcheck;

use std::process::{exit, Command};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("gradcheck") => {
            let failed = gradcheck::run(args.get(1).map(String::as_str));
            exit(if failed == 0 { 0 } else { 1 });
        }
        Some("bench") => bench::run(&args[1..]),
        Some("test") => test(),
        _ => {
            eprintln!("usage: cargo xtask <gradcheck [FILTER] | bench [--workloads W1,..] [--threads N] [--min-time S] | test>");
            exit(2);
        }
    }
}

/// Runs one command, echoing it; exits on failure.
fn step(name: &str, program: &str, args: &[&str]) {
    println!("==> {name}: {program} {}", args.join(" "));
    let status = Command::new(program).args(args).status().unwrap_or_else(|e| {
        eprintln!("xtask: cannot run {program}: {e}");
        exit(1)
    });
    if !status.success() {
        eprintln!("xtask: {name} failed");
        exit(1);
    }
}

/// Everything CI checks, in order of cost. Tests build in release mode once (the gradcheck and
/// integration suites are heavy); the gradcheck suite runs in this already-built binary.
fn test() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    step("format", &cargo, &["fmt", "--all", "--", "--check"]);
    step("lint", &cargo, &["clippy", "--workspace", "--all-targets", "--release", "--", "-D", "warnings"]);
    step("tests", &cargo, &["test", "--workspace", "--release", "--no-fail-fast"]);
    mpi_tests(&cargo);
    println!("==> gradcheck");
    let failed = gradcheck::run(None);
    if failed > 0 {
        exit(1);
    }
}

/// Does `program --version` run?
fn runs(program: &str) -> bool {
    Command::new(program).arg("--version").stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).status().is_ok_and(|s| s.success())
}

/// flux-distributed with its `mpi` feature: lint it, then run its multi-process tests
/// (`tests/mpi_ranks.rs` relaunches itself under `mpirun -np 2`). Skipped, saying why, when
/// MPI is not installed (`.ci/run` installs it, so CI always runs them).
fn mpi_tests(cargo: &str) {
    let missing: Vec<&str> = ["mpirun", "mpicc"].into_iter().filter(|p| !runs(p)).collect();
    if !missing.is_empty() {
        println!(
            "==> mpi: SKIPPED the multi-process tests of flux-distributed: {} not found (install Open MPI: apt-get install openmpi-bin libopenmpi-dev libclang-dev)",
            missing.join(" and ")
        );
        return;
    }
    step("mpi lint", cargo, &["clippy", "-p", "flux-distributed", "--features", "mpi", "--all-targets", "--release", "--", "-D", "warnings"]);
    step(
        "mpi lint (digits_ddp)",
        cargo,
        &["clippy", "-p", "flux", "--features", "distributed", "--example", "digits_ddp", "--release", "--", "-D", "warnings"],
    );
    step("mpi tests", cargo, &["test", "-p", "flux-distributed", "--features", "mpi", "--release", "--test", "mpi_ranks"]);
}

//! Peak memory of one gradient call on a 200-layer tanh MLP, with and without `checkpoint`.
//!
//! `cargo run --release -p flux-autograd --example checkpoint_memory` runs each variant in a
//! fresh process (peak RSS only grows within a process) and prints `VmHWM` from
//! `/proc/self/status` (Linux) for both, the time of the call, and the ratio. `-- plain` or
//! `-- checkpoint` runs one variant in this process.
//!
//! The model: 200 layers `tanh.(W·h .+ b)`, width 128, batch 1024, f32. Plain, the gradient
//! call keeps two `[128, 1024]` values per layer (the affine output and the tanh) until the
//! backward pass reaches them. Checkpointed in segments of 14 layers (about √200), it keeps the
//! 15 segment boundaries and, during the backward pass, one segment's graph at a time.

use std::process::Command;
use std::time::Instant;

use flux_autograd::{checkpoint, gradient_params, param, Params, Var};
use flux_tensor::Tensor;

const LAYERS: usize = 200;
const WIDTH: usize = 128;
const BATCH: usize = 1024;
const SEGMENT: usize = 14;

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn run(mode: &str) {
    flux_tensor::seed(1);
    let layers: Vec<(Var, Var)> =
        (0..LAYERS).map(|_| (param((Tensor::randn(&[WIDTH, WIDTH]) / (WIDTH as f64).sqrt()).to_f32()), param(Tensor::zeros(&[WIDTH]).to_f32()))).collect();
    let ps: Params = layers.iter().flat_map(|(w, b)| [w.clone(), b.clone()]).collect();
    let x = Var::from(Tensor::randn(&[WIDTH, BATCH]).to_f32());
    let before = peak_rss_kib().unwrap_or(0);
    let t = Instant::now();
    let gs = match mode {
        "plain" => gradient_params(
            || {
                let h = layers.iter().fold(x.clone(), |h, (w, b)| Var::affine(w, &h, b).expect("shapes").tanh());
                h.powi(2).mean()
            },
            &ps,
        ),
        "checkpoint" => gradient_params(
            || {
                let h = layers.chunks(SEGMENT).fold(x.clone(), |h, seg| {
                    let seg = seg.to_vec();
                    checkpoint(move |h: &Var| seg.iter().fold(h.clone(), |h, (w, b)| Var::affine(w, &h, b).expect("shapes").tanh()), &h)
                });
                h.powi(2).mean()
            },
            &ps,
        ),
        other => panic!("checkpoint_memory: unknown mode {other:?} (plain or checkpoint)"),
    };
    let secs = t.elapsed().as_secs_f64();
    let norm: f64 = gs.iter().map(|(_, g)| g.data().to_f64().powi(2).sum().item()).sum::<f64>().sqrt();
    let peak = peak_rss_kib().unwrap_or(0);
    println!(
        "{mode}: peak RSS {:.1} MiB (model and input: {:.1} MiB), gradient call {:.3} s, gradient norm {norm:.6e}",
        peak as f64 / 1024.0,
        before as f64 / 1024.0,
        secs
    );
}

fn main() {
    if let Some(mode) = std::env::args().nth(1) {
        run(&mode);
        return;
    }
    let exe = std::env::current_exe().expect("current_exe");
    let mut peaks = Vec::new();
    for mode in ["plain", "checkpoint"] {
        let out = Command::new(&exe).arg(mode).output().expect("run a variant");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        print!("{text}");
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        let peak = text.split("peak RSS ").nth(1).and_then(|r| r.split(' ').next()).and_then(|m| m.parse::<f64>().ok());
        peaks.push(peak);
    }
    if let [Some(plain), Some(saved)] = peaks[..] {
        println!("checkpointed peak / plain peak = {:.2}", saved / plain);
    }
}

//! Step time of data-parallel training at a fixed global batch, for `docs/distributed.md`:
//! W2's MLP (`Dense(784,128,relu), Dense(128,32,relu), Dense(32,10), softmax`, crossentropy,
//! global batch 64 and 256) and W3's LSTM (`LSTM(64 => 256)` then `Dense(256, 10)` on the last
//! hidden state, 50 steps, global batch 32, mse), with plain SGD (lr 0.01) through
//! `DistributedOptimiser`. Each rank computes on `global / size` samples, one compute thread.
//!
//! ```text
//! cargo build --release -p flux-distributed --example ddp_scaling --features mpi
//! RAYON_NUM_THREADS=1 target/release/examples/ddp_scaling              # 1 process
//! RAYON_NUM_THREADS=1 mpirun -np 2 target/release/examples/ddp_scaling # 2 ranks
//! ```
//!
//! Rank 0 prints one JSON line per workload: the median step time (forward, backward,
//! all-reduce, update, as training runs them: `ms_per_step`, with its compute and all-reduce
//! parts `loop_compute_ms`, `loop_allreduce_ms`), and from a second, instrumented loop that puts
//! a barrier before the all-reduce, the median time of the all-reduce alone (`allreduce_ms`:
//! packing, the exchange, unpacking; `allreduce_share_pct` of the step) and of the wait at the
//! barrier (load imbalance between ranks). `DDP_ONLY=W2` or `DDP_ONLY=W3` runs one workload.
//! `docs/distributed.md` has the figures and how they were taken (glibc's allocator settings
//! and CPU isolation matter on a busy two-core machine).

use std::time::{Duration, Instant};

use flux_autograd::{gradient_params, Params, Var};
use flux_distributed::{allreduce_grads, broadcast_params, init, Comm, DistributedOptimiser};
use flux_layers::{chain, identity, mse, params, relu, reset, softmax, Dense, Layer};
use flux_optim::{Descent, Optimiser};
use flux_recurrent::LSTM;
use flux_tensor::Tensor;

const MIN_TIME: Duration = Duration::from_secs(3);

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The step count every rank runs: rank 0 decides (at least 20 steps and `MIN_TIME`).
fn agreed_steps(comm: &Comm, step_secs: f64) -> usize {
    let mut n = [(MIN_TIME.as_secs_f64() / step_secs).ceil().max(20.0)];
    comm.broadcast(&mut n, 0).expect("broadcast");
    n[0] as usize
}

fn measure(comm: &Comm, name: &str, extra: &str, ps: &Params, loss: &dyn Fn() -> Var) {
    broadcast_params(comm, ps).expect("broadcast_params");
    let mut opt = DistributedOptimiser::new(comm, Descent::new(0.01));
    let step = |opt: &mut DistributedOptimiser<Descent>| {
        let gs = gradient_params(loss, ps);
        opt.update(ps, &gs);
    };
    let t0 = Instant::now();
    for _ in 0..3 {
        step(&mut opt);
    }
    let n = agreed_steps(comm, t0.elapsed().as_secs_f64() / 3.0);
    let mut steps = Vec::with_capacity(n);
    let mut loop_compute = Vec::with_capacity(n);
    let mut loop_reduce = Vec::with_capacity(n);
    let (reduce_before, _) = opt.allreduce_stats();
    let t_all = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        let gs = gradient_params(loss, ps);
        loop_compute.push(t.elapsed().as_secs_f64());
        let r0 = opt.allreduce_stats().0;
        opt.update(ps, &gs);
        loop_reduce.push((opt.allreduce_stats().0 - r0).as_secs_f64());
        steps.push(t.elapsed().as_secs_f64());
    }
    // The all-reduce's share of the training loop as it runs (waiting for the other rank
    // included).
    let in_loop = (opt.allreduce_stats().0 - reduce_before).as_secs_f64() / t_all.elapsed().as_secs_f64();
    // Instrumented: compute, barrier, all-reduce alone.
    let (mut compute, mut wait, mut reduce) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        let t = Instant::now();
        let mut gs = gradient_params(loss, ps);
        let t1 = Instant::now();
        comm.barrier().expect("barrier");
        let t2 = Instant::now();
        allreduce_grads(comm, &mut gs).expect("allreduce_grads");
        let t3 = Instant::now();
        compute.push((t1 - t).as_secs_f64());
        wait.push((t2 - t1).as_secs_f64());
        reduce.push((t3 - t2).as_secs_f64());
    }
    let numel: usize = ps.iter().map(|p| p.data().numel()).sum();
    if comm.is_root() {
        let (s, r) = (median(steps), median(reduce));
        println!(
            "{{\"workload\": \"{name}\", {extra}, \"ranks\": {}, \"params\": {numel}, \"steps\": {n}, \"ms_per_step\": {:.4}, \"loop_allreduce_pct\": {:.1}, \"loop_compute_ms\": {:.4}, \"loop_allreduce_ms\": {:.4}, \"compute_ms\": {:.4}, \"barrier_wait_ms\": {:.4}, \"allreduce_ms\": {:.4}, \"allreduce_share_pct\": {:.1}}}",
            comm.size(),
            s * 1e3,
            100.0 * in_loop,
            median(loop_compute) * 1e3,
            median(loop_reduce) * 1e3,
            median(compute) * 1e3,
            median(wait) * 1e3,
            r * 1e3,
            100.0 * r / s
        );
    }
}

fn crossentropy(yhat: &Var, y: &Var) -> Var {
    let batch = yhat.shape().get(1).copied().unwrap_or(1) as f64;
    -(y * &yhat.ln()).sum() / batch
}

fn main() {
    let comm = init().expect("init");
    flux_tensor::set_num_threads(1);
    flux_tensor::seed(1 + comm.rank() as u64);
    let size = comm.size();
    let only = std::env::var("DDP_ONLY").unwrap_or_default();
    for global in [64usize, 256] {
        if only == "W3" {
            break;
        }
        assert!(global.is_multiple_of(size), "{size} ranks do not divide the global batch {global}");
        let b = global / size;
        let model = chain![Dense::new(784, 128, relu), Dense::new(128, 32, relu), Dense::new(32, 10, identity), softmax];
        let ps = params(&model);
        let x = Var::from(Tensor::randn(&[784, b]).to_f32());
        let mut onehot = vec![0.0f32; 10 * b];
        for j in 0..b {
            onehot[(j * 7 + 3) % 10 + 10 * j] = 1.0;
        }
        let y = Var::from(Tensor::from_vec(onehot, &[10, b]));
        let loss = || crossentropy(&model.forward(&x), &y);
        measure(&comm, "W2", &format!("\"global_batch\": {global}"), &ps, &loss);
    }
    if only == "W2" {
        return;
    }
    let (t, global, i, h) = (50, 32, 64, 256);
    let b = global / size;
    let xs: Vec<Var> = (0..t).map(|_| Var::from(Tensor::randn(&[i, b]).to_f32())).collect();
    let target = Var::from(Tensor::randn(&[10, b]).to_f32());
    let model = chain![LSTM::new(i, h), Dense::new(h, 10, identity)];
    let ps = params(&model);
    let loss = || {
        reset(&model);
        let ys = model.forward_seq(&xs);
        mse(ys.last().expect("50 steps"), &target)
    };
    measure(&comm, "W3", &format!("\"global_batch\": {global}"), &ps, &loss);
}

//! `cargo xtask bench`: the peers' workloads (`../shared/bench/peers/README.md`), printed as
//! JSON lines with `"peer": "flux-rs"` so rows join with the peers' on (workload, key, threads).

mod w2;
mod w3;
mod w6;
mod w7;

use std::time::{Duration, Instant};

use flux_autograd::{gradient, Var};
use flux_tensor::Tensor;
use serde_json::{json, Value};

/// Command-line options of `bench`.
pub struct Opts {
    /// Workloads to run.
    pub workloads: Vec<String>,
    /// Threads for matrix products.
    pub threads: usize,
    /// Seconds of timed samples per measurement.
    pub min_time: f64,
}

fn parse(args: &[String]) -> Opts {
    let mut o = Opts { workloads: ["W1", "W2", "W3", "W4", "W5"].map(String::from).to_vec(), threads: 2, min_time: 2.0 };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().unwrap_or_else(|| panic!("bench: {a} needs a value"));
        match a.as_str() {
            "--workloads" => o.workloads = val().split(',').map(String::from).collect(),
            "--threads" => o.threads = val().parse().expect("bench: --threads takes a number"),
            "--min-time" => o.min_time = val().parse().expect("bench: --min-time takes seconds"),
            other => panic!("bench: unknown option {other}"),
        }
    }
    o
}

/// Median seconds per call, as the peers time it: 3 warm-ups, then calls until at least 20 calls
/// and `min_time` seconds (or 5 calls when one call is very slow). Also the IQR in % of the median.
pub fn median_time(min_time: f64, mut f: impl FnMut()) -> (f64, Value) {
    for _ in 0..3 {
        f();
    }
    let mut ts = Vec::new();
    let start = Instant::now();
    let min = Duration::from_secs_f64(min_time);
    while ts.len() < 100_000 {
        let t0 = Instant::now();
        f();
        ts.push(t0.elapsed().as_secs_f64());
        let el = start.elapsed();
        if el >= min && (ts.len() >= 20 || (el >= min * 10 && ts.len() >= 5)) {
            break;
        }
    }
    ts.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let q = |p: f64| ts[((ts.len() - 1) as f64 * p).round() as usize];
    let med = q(0.5);
    (med, json!({"reps": ts.len(), "iqr_pct": ((q(0.75) - q(0.25)) / med * 1000.0).round() / 10.0}))
}

pub fn emit(threads: usize, workload: &str, fields: Value, stats: Value) {
    let mut obj = json!({"peer": "flux-rs", "version": "0.1.0", "threads": threads, "workload": workload});
    for src in [fields, stats] {
        if let Value::Object(m) = src {
            for (k, v) in m {
                obj[k] = v;
            }
        }
    }
    println!("{obj}");
}

pub fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}

pub fn run(args: &[String]) {
    let o = parse(args);
    flux_tensor::set_num_threads(o.threads);
    flux_tensor::seed(0);
    let has = |w: &str| o.workloads.iter().any(|x| x == w);
    if has("W1") {
        for n in [128usize, 512, 1024] {
            let a = Tensor::randn(&[n, n]).to_f32();
            let b = Tensor::randn(&[n, n]).to_f32();
            let (t, st) = median_time(o.min_time, || {
                std::hint::black_box(a.matmul(&b));
            });
            emit(o.threads, "W1", json!({"n": n, "ms": round(t * 1e3, 4), "gflops": round(2.0 * (n as f64).powi(3) / t / 1e9, 2)}), st);
            // the portable fallback (matrixmultiply, one thread), for the record of why gemm is used
            let (av, bv) = (a.as_slice::<f32>().unwrap(), b.as_slice::<f32>().unwrap());
            let mut c = vec![0.0f32; n * n];
            let (t, st) = median_time(o.min_time, || flux_tensor::gemm_portable(n, n, n, av, false, bv, false, &mut c));
            emit(1, "W1", json!({"impl": "matrixmultiply", "n": n, "ms": round(t * 1e3, 4), "gflops": round(2.0 * (n as f64).powi(3) / t / 1e9, 2)}), st);
        }
    }
    if has("W2") {
        w2::run(&o);
    }
    if has("W3") {
        w3::run(&o);
    }
    if has("W6") {
        w6::run(&o);
    }
    if has("W7") {
        w7::run(&o);
    }
    if has("W4") {
        let x = Var::from(Tensor::scalar(0.5).to_f32());
        let chain = |x: &Var| {
            let mut y = x.clone();
            for _ in 0..2500 {
                y = &y * 1.0001 + 0.0001 * y.sin();
            }
            y
        };
        let (t, st) = median_time(o.min_time, || {
            std::hint::black_box(gradient(chain, &x));
        });
        emit(o.threads, "W4", json!({"ops": 10_000, "us_per_op": round(t / 10_000.0 * 1e6, 4)}), st);
    }
    if has("W5") {
        let f = |x: &Var| 3.0 * x.powi(2) + 2.0 * x + 1.0;
        let d2f = |x: &Var| gradient(|x: &Var| gradient(f, x), x);
        let x = Var::from(Tensor::scalar(2.0).to_f32());
        assert_eq!(d2f(&x).item(), 6.0);
        let (t, st) = median_time(o.min_time, || {
            std::hint::black_box(d2f(&x));
        });
        emit(o.threads, "W5", json!({"case": "d2f_scalar", "us_per_call": round(t * 1e6, 3)}), st);

        let w1 = Var::from((Tensor::randn(&[64, 64]) / 8.0).to_f32());
        let b1 = Var::from((Tensor::randn(&[64]) / 8.0).to_f32());
        let w2 = Var::from((Tensor::randn(&[1, 64]) / 8.0).to_f32());
        let b2 = Var::from((Tensor::randn(&[1]) / 8.0).to_f32());
        let x0 = Var::from(Tensor::randn(&[64]).to_f32());
        let v = Var::from(Tensor::randn(&[64]).to_f32());
        let loss = |x: &Var| (w2.matmul(&(w1.matmul(x) + &b1).tanh()) + &b2).sum();
        let hvp = || gradient(|x: &Var| (gradient(loss, x) * &v).sum(), &x0);
        let th = (w1.data().matmul(&x0.data()) + &b1.data()).tanh();
        let inner = &(&w2.data().reshape(&[64]) * &(&th * &(1.0 - &(&th * &th)))) * -2.0;
        let expect = w1.data().transpose().matmul(&(&inner * &w1.data().matmul(&v.data())));
        assert!(hvp().data().allclose(&expect, 1e-3, 1e-5), "W5 hvp disagrees with the analytic form");
        let (t, st) = median_time(o.min_time, || {
            std::hint::black_box(hvp());
        });
        emit(o.threads, "W5", json!({"case": "hvp_mlp_64_64_1", "us_per_call": round(t * 1e6, 3)}), st);
    }
}

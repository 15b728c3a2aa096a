//! Saving and loading optimiser state with a model: round trips continue training exactly, and
//! every kind of bad input is refused with the optimiser left unchanged.

use flux_autograd::{gradient_params, Var};
use flux_layers::{chain, named_params, params, relu, Chain, Dense, Layer};
use flux_optim::*;
use flux_tensor::{seed, Tensor};
use serde_json::{json, Value};

fn model() -> Chain {
    chain![Dense::new(3, 4, relu), Dense::new(4, 2, flux_layers::identity)]
}

/// Copies `src`'s parameter values into `dst` (same architecture).
fn copy_weights(src: &Chain, dst: &Chain) {
    for ((_, a), (_, b)) in named_params(src).iter().zip(named_params(dst).iter()) {
        b.set_data(a.data());
    }
}

fn steps(m: &Chain, opt: &mut impl Optimiser, n: usize) {
    let ps = params(m);
    let x = Var::from(Tensor::from_vec((0..15).map(|i| (i as f32 - 7.0) / 7.0).collect::<Vec<f32>>(), &[3, 5]));
    let y = Var::from(Tensor::from_vec((0..10).map(|i| (i % 3) as f32).collect::<Vec<f32>>(), &[2, 5]));
    for _ in 0..n {
        let gs = gradient_params(|| (m.forward(&x) - &y).powi(2).mean(), &ps);
        opt.update(&ps, &gs);
    }
}

fn weights(m: &Chain) -> Vec<Vec<f64>> {
    params(m).iter().map(|p| p.to_vec()).collect()
}

fn round_trip_continues_exactly<O: Optimiser>(make: impl Fn() -> O) {
    seed(11);
    let a = model();
    let mut opt_a = make();
    steps(&a, &mut opt_a, 5);
    let saved = opt_a.state_json(&a);

    let b = model();
    copy_weights(&a, &b);
    let mut opt_b = make();
    opt_b.load_state_json(&b, &saved).unwrap();
    assert_eq!(opt_b.state_json(&b), saved, "{}: loaded state reads back the same", opt_a.name());

    steps(&a, &mut opt_a, 5);
    steps(&b, &mut opt_b, 5);
    assert_eq!(weights(&a), weights(&b), "{}: training continues exactly after a reload", opt_a.name());
}

#[test]
fn round_trips_for_every_stateful_rule() {
    round_trip_continues_exactly(|| Momentum::new(0.01));
    round_trip_continues_exactly(|| Nesterov::new(0.01));
    round_trip_continues_exactly(|| RMSProp::new(0.01));
    round_trip_continues_exactly(|| Adam::new(0.01));
    round_trip_continues_exactly(|| AdaMax::new(0.01));
    round_trip_continues_exactly(|| AdaGrad::new(0.01));
    round_trip_continues_exactly(|| AdaDelta::new(0.9));
    round_trip_continues_exactly(|| AMSGrad::new(0.01));
    round_trip_continues_exactly(|| NAdam::new(0.01));
    round_trip_continues_exactly(|| AdamW::new(0.01).decay(0.01));
    round_trip_continues_exactly(|| Descent::new(0.01));
    round_trip_continues_exactly(|| optimiser_chain![ClipNorm::new(1.0), Adam::new(0.01), ExpDecay::new(1.0).decay(0.5).decay_step(3), InvDecay::new(0.1)]);
}

#[test]
fn hyperparameters_are_restored() {
    seed(2);
    let m = model();
    let mut opt = optimiser_chain![Adam::new(0.01), ExpDecay::new(1.0).decay(0.5).decay_step(2)];
    steps(&m, &mut opt, 5);
    assert_eq!(opt.rules()[1].lr(), Some(0.25));
    let saved = opt.state_json(&m);
    let mut fresh = optimiser_chain![Adam::new(0.5), ExpDecay::new(1.0).decay(0.5).decay_step(2)];
    fresh.load_state_json(&m, &saved).unwrap();
    assert_eq!(fresh.rules()[0].lr(), Some(0.01));
    assert_eq!(fresh.rules()[1].lr(), Some(0.25));
}

#[test]
fn state_is_keyed_by_structural_path() {
    seed(3);
    let m = model();
    let mut opt = Adam::new(0.01);
    steps(&m, &mut opt, 2);
    let s = opt.state_json(&m);
    assert_eq!(s["format"], STATE_FORMAT);
    assert_eq!(s["optimiser"]["rule"], "Adam");
    let ps = s["params"].as_object().unwrap();
    let keys: Vec<&str> = ps.keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 4);
    for k in ["0.weight", "0.bias", "1.weight", "1.bias"] {
        assert!(ps.contains_key(k), "{k} in {keys:?}");
    }
    assert_eq!(s["params"]["0.weight"]["shape"], json!([4, 3]));
    assert_eq!(s["params"]["0.weight"]["state"]["mt"].as_array().unwrap().len(), 12);
    assert!((s["params"]["0.weight"]["state"]["beta1_power"].as_f64().unwrap() - 0.9f64.powi(3)).abs() < 1e-15);
}

#[test]
fn file_round_trip() {
    seed(4);
    let m = model();
    let mut opt = NAdam::new(0.01);
    steps(&m, &mut opt, 3);
    let path = std::env::temp_dir().join(format!("flux_optim_state_test_{}.json", std::process::id()));
    opt.save_state(&m, &path).unwrap();
    let mut fresh = NAdam::new(0.01);
    fresh.load_state(&m, &path).unwrap();
    assert_eq!(fresh.state_json(&m), opt.state_json(&m));
    std::fs::write(&path, "{ not json").unwrap();
    let before = fresh.state_json(&m);
    let e = fresh.load_state(&m, &path).unwrap_err();
    assert!(matches!(e, OptimError::Json { .. }), "{e}");
    assert_eq!(fresh.state_json(&m), before);
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(fresh.load_state(&m, &path).unwrap_err(), OptimError::Io { .. }));
}

/// Every malformed state is refused, names what is wrong, and changes nothing.
#[test]
fn bad_state_is_refused_and_changes_nothing() {
    seed(5);
    let m = model();
    let mut src = Adam::new(0.01);
    steps(&m, &mut src, 2);
    let good = src.state_json(&m);

    let mut target = Adam::new(0.02);
    steps(&m, &mut target, 1);
    let before = target.state_json(&m);

    let mutate = |f: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        f(&mut v);
        v
    };
    let cases: Vec<(&str, Value)> = vec![
        ("format", mutate(&|v| v["format"] = json!("something-else"))),
        ("Momentum", Momentum::new(0.1).state_json(&m)),
        ("eta", mutate(&|v| v["optimiser"]["eta"] = json!("fast"))),
        ("is missing", mutate(&|v| drop(v["params"].as_object_mut().unwrap().remove("1.bias")))),
        ("not in the model", mutate(&|v| v["params"]["2.weight"] = v["params"]["1.bias"].clone())),
        ("shape", mutate(&|v| v["params"]["1.bias"]["shape"] = json!([3]))),
        ("numbers", mutate(&|v| drop(v["params"]["0.weight"]["state"]["vt"].as_array_mut().unwrap().pop()))),
        ("non-number", mutate(&|v| v["params"]["0.bias"]["state"]["mt"][0] = json!("x"))),
        ("beta1_power", mutate(&|v| drop(v["params"]["0.bias"]["state"].as_object_mut().unwrap().remove("beta1_power")))),
        ("unknown", mutate(&|v| v["params"]["0.bias"]["state"]["velocity"] = json!([0.0]))),
    ];
    for (needle, bad) in cases {
        let e = target.load_state_json(&m, &bad).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, OptimError::State(_)), "{msg}");
        assert!(msg.contains(needle), "`{needle}` not in: {msg}");
        assert!(msg.contains("left unchanged"), "{msg}");
        assert_eq!(target.state_json(&m), before, "{needle}: the optimiser must be unchanged");
        assert_eq!(target.lr(), Some(0.02));
    }
    // a chain of a different length
    let mut chain = optimiser_chain![ClipNorm::new(1.0), Adam::new(0.01)];
    let saved = optimiser_chain![Adam::new(0.01)].state_json(&m);
    assert!(chain.load_state_json(&m, &saved).unwrap_err().to_string().contains("rules"));
    // the good one loads
    target.load_state_json(&m, &good).unwrap();
    assert_eq!(target.state_json(&m), good);
}

#[test]
fn null_state_forgets_and_clear_state_resets() {
    seed(6);
    let m = model();
    let mut opt = Adam::new(0.01);
    let fresh = opt.state_json(&m);
    steps(&m, &mut opt, 2);
    assert_ne!(opt.state_json(&m), fresh);
    opt.load_state_json(&m, &fresh).unwrap();
    assert_eq!(opt.state_json(&m), fresh);
    steps(&m, &mut opt, 1);
    opt.clear_state();
    assert_eq!(opt.state_json(&m), fresh);
}

#[test]
fn state_survives_dtype_conversion() {
    seed(7);
    let m = model();
    let mut opt = Adam::new(0.01);
    steps(&m, &mut opt, 2);
    let before = opt.state_json(&m);
    flux_layers::to_f64(&m);
    assert_eq!(opt.state_json(&m), before, "state is keyed by identity, which dtype conversion keeps");
}

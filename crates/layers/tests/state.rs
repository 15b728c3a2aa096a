//! save_state / load_state: round trips, and every failure mode of loading leaving the model
//! exactly as it was.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use flux_autograd::Var;
use flux_layers::{
    chain, identity, load_state, load_state_json, relu, save_state, state_to_json, testmode, to_f64, BatchNorm, Chain, Dense, Dropout, Layer, LayerError,
    LayerNorm,
};
use flux_tensor::Tensor;
use serde_json::{json, Value};

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("flux_layers_state_{}_{name}.json", std::process::id()))
}

fn model() -> Chain {
    chain![Dense::new(4, 3, relu), BatchNorm::new(3), Dropout::new(0.5), LayerNorm::new(3), Dense::new(3, 2, identity)]
}

/// Every parameter and buffer value of a model, by path.
fn snapshot(m: &impl Layer) -> Value {
    state_to_json(m)
}

fn train_a_little(m: &Chain) {
    // move the BatchNorm running statistics and change some weights
    flux_layers::trainmode(m);
    m.forward(&Var::from(Tensor::randn(&[4, 8])));
    testmode(m);
    let p = flux_layers::params(m);
    for w in p.iter() {
        w.set_data(&w.data() + 0.25);
    }
}

#[test]
fn keys_are_structural_paths() {
    let s = state_to_json(&model());
    let keys: Vec<&str> = s.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    let mut want = vec!["0.weight", "0.bias", "1.scale", "1.bias", "1.running_mean", "1.running_var", "3.scale", "3.bias", "4.weight", "4.bias"];
    want.sort();
    let mut got = keys.clone();
    got.sort();
    assert_eq!(got, want);
    assert_eq!(s["0.weight"]["shape"], json!([3, 4]));
    assert_eq!(s["0.weight"]["dtype"], json!("f32"));
    assert_eq!(s["0.weight"]["data"].as_array().unwrap().len(), 12);
}

#[test]
fn file_round_trip_restores_every_value_and_the_outputs() {
    let a = model();
    train_a_little(&a);
    let path = tmp("round_trip");
    save_state(&a, &path).unwrap();
    let b = model();
    testmode(&b);
    assert_ne!(snapshot(&a), snapshot(&b));
    load_state(&b, &path).unwrap();
    assert_eq!(snapshot(&a), snapshot(&b));
    let x = Var::from(Tensor::randn(&[4, 5]));
    assert_eq!(a.forward(&x).to_vec(), b.forward(&x).to_vec());
    // data is column-major: element (1, 0) of the first weight is the second value
    let text: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let w = flux_layers::named_params(&a).into_iter().find(|(n, _)| n == "0.weight").unwrap().1;
    assert_eq!(text["0.weight"]["data"][1].as_f64().unwrap(), w.data().get(&[1, 0]));
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn f64_models_round_trip_exactly() {
    let a = model();
    to_f64(&a);
    train_a_little(&a);
    let b = model();
    to_f64(&b);
    load_state_json(&b, &state_to_json(&a)).unwrap();
    assert_eq!(snapshot(&a), snapshot(&b));
}

#[test]
fn non_finite_values_survive() {
    let d = Dense::new(2, 2, identity);
    d.weight().set_data(Tensor::from_vec(vec![f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1.5], &[2, 2]));
    let path = tmp("nonfinite");
    save_state(&d, &path).unwrap();
    let e = Dense::new(2, 2, identity);
    load_state(&e, &path).unwrap();
    let v = e.weight().to_vec();
    assert!(v[0].is_nan() && v[1] == f64::INFINITY && v[2] == f64::NEG_INFINITY && v[3] == 1.5);
    std::fs::remove_file(&path).unwrap();
}

/// Applies `corrupt` to a valid state, loads it, and checks the error mentions every `needle`
/// and the model is unchanged.
fn rejects(corrupt: impl Fn(&mut serde_json::Map<String, Value>), needles: &[&str]) {
    let src = model();
    train_a_little(&src);
    let mut s = state_to_json(&src);
    corrupt(s.as_object_mut().unwrap());
    let dst = model();
    let before = snapshot(&dst);
    let e = load_state_json(&dst, &s).unwrap_err();
    assert!(matches!(e, LayerError::State(_)));
    let msg = e.to_string();
    for n in needles {
        assert!(msg.contains(n), "{n:?} not in {msg:?}");
    }
    assert!(msg.contains("left unchanged"));
    assert_eq!(snapshot(&dst), before, "a failed load changed the model");
    // the same through a file
    static N: AtomicUsize = AtomicUsize::new(0);
    let path = tmp(&format!("rejects_{}", N.fetch_add(1, Ordering::Relaxed)));
    std::fs::write(&path, serde_json::to_vec(&s).unwrap()).unwrap();
    assert!(load_state(&dst, &path).is_err());
    assert_eq!(snapshot(&dst), before);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn missing_key() {
    rejects(|s| drop(s.remove("4.bias")), &["missing key \"4.bias\"", "[2] f32"]);
}

#[test]
fn missing_buffer() {
    rejects(|s| drop(s.remove("1.running_var")), &["missing key \"1.running_var\""]);
}

#[test]
fn extra_key() {
    rejects(|s| drop(s.insert("5.weight".into(), json!({"shape": [1], "dtype": "f32", "data": [0.0]}))), &["unexpected key \"5.weight\""]);
}

#[test]
fn wrong_shape() {
    rejects(
        |s| {
            s["0.weight"]["shape"] = json!([4, 3]);
        },
        &["key \"0.weight\"", "shape [4, 3] in the state", "the model has [3, 4]"],
    );
}

#[test]
fn wrong_dtype() {
    rejects(
        |s| {
            s["3.scale"]["dtype"] = json!("f64");
        },
        &["key \"3.scale\"", "dtype f64 in the state", "the model has f32"],
    );
}

#[test]
fn unknown_dtype() {
    rejects(
        |s| {
            s["3.scale"]["dtype"] = json!("f16");
        },
        &["key \"3.scale\"", "unknown dtype \"f16\""],
    );
}

#[test]
fn wrong_element_count() {
    rejects(
        |s| {
            s["4.weight"]["data"].as_array_mut().unwrap().pop();
        },
        &["key \"4.weight\"", "5 values for shape [2, 3] (6 elements)"],
    );
}

#[test]
fn non_numeric_element() {
    rejects(
        |s| {
            s["0.bias"]["data"][2] = json!("x");
        },
        &["key \"0.bias\"", "element 2"],
    );
}

#[test]
fn malformed_entries() {
    rejects(
        |s| {
            s["0.bias"] = json!([1, 2, 3]);
            s["4.bias"] = json!({"dtype": "f32", "data": [0.0, 0.0]});
            s["1.scale"]["shape"] = json!([-3]);
        },
        &["key \"0.bias\": expected an object", "key \"4.bias\": no \"shape\"", "key \"1.scale\": \"shape\" must be an array of sizes"],
    );
}

#[test]
fn only_the_last_entry_wrong_still_writes_nothing() {
    // every other key is valid (and differs from the model), only one is bad
    rejects(
        |s| {
            s["4.bias"]["shape"] = json!([3]);
        },
        &["key \"4.bias\""],
    );
}

#[test]
fn not_an_object_and_malformed_files() {
    let m = model();
    let before = snapshot(&m);
    let e = load_state_json(&m, &json!([1, 2])).unwrap_err().to_string();
    assert!(e.contains("JSON object"), "{e}");

    let path = tmp("malformed");
    std::fs::write(&path, b"{\"0.weight\": {\"shape\": [3, 4], ").unwrap();
    let e = load_state(&m, &path).unwrap_err();
    assert!(matches!(e, LayerError::Json { .. }));
    assert!(e.to_string().contains("malformed state file") && e.to_string().contains(&path.display().to_string()));
    std::fs::remove_file(&path).unwrap();

    let e = load_state(&m, tmp("does_not_exist")).unwrap_err();
    assert!(matches!(e, LayerError::Io { op: "load_state", .. }), "{e}");
    assert_eq!(snapshot(&m), before);
}

#[test]
fn save_to_a_missing_directory_is_an_io_error() {
    let e = save_state(&model(), std::env::temp_dir().join("flux_no_such_dir_xyz").join("m.json")).unwrap_err();
    assert!(matches!(e, LayerError::Io { op: "save_state", .. }));
}

#[test]
fn works_through_trait_objects() {
    let boxed: Box<dyn Layer> = Box::new(model());
    let s = state_to_json(&*boxed);
    load_state_json(&*boxed, &s).unwrap();
    let layers: Vec<Box<dyn Layer>> = vec![Box::new(Dense::new(2, 2, relu))];
    let path = tmp("vec");
    save_state(&layers, &path).unwrap();
    load_state(&layers, &path).unwrap();
    std::fs::remove_file(&path).unwrap();
}

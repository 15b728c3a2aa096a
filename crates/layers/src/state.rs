//! Saved model state: [`save_state`] / [`load_state`] (a JSON file) and their in-memory forms
//! [`state_to_json`] / [`load_state_json`], all through the one traversal [`Layer::visit`].
//!
//! The state is a JSON object keyed by structural path (`0.weight`, `1.bias`,
//! `2.running_mean`, ...), holding every parameter and buffer of the model:
//!
//! ```json
//! {"0.bias": {"shape": [5], "dtype": "f32", "data": [0.0, 0.0, 0.0, 0.0, 0.0]}, ...}
//! ```
//!
//! `data` lists the elements in column-major order (Julia's; the first index varies fastest).
//! Non-finite values, which JSON numbers cannot hold, are the strings `"NaN"`, `"Inf"`, `"-Inf"`.
//! Loading checks every key, shape, dtype and element before it writes anything; on any problem
//! it returns an error naming each key at fault and leaves the model exactly as it was.
//! [`tensor_to_json`] / [`tensor_from_json`] give the same encoding for other state (an
//! optimiser's, say) stored alongside.

use std::collections::BTreeSet;
use std::path::Path;

use flux_autograd::Var;
use flux_tensor::{DType, Tensor};
use serde_json::{Map, Value as Json};

use crate::error::LayerError;
use crate::layer::{Traverse, Visitor, Walker};

/// Every parameter and buffer with its path, in traversal order.
fn entries(model: &(impl Traverse + ?Sized)) -> Vec<(String, Var)> {
    struct Collect(Vec<(String, Var)>);
    impl Visitor for Collect {
        fn param(&mut self, path: &str, p: &Var) {
            self.0.push((path.to_string(), p.clone()));
        }
        fn buffer(&mut self, path: &str, b: &Var) {
            self.0.push((path.to_string(), b.clone()));
        }
    }
    let mut c = Collect(Vec::new());
    Walker::walk(model, &mut c);
    c.0
}

/// The entries, or an error naming a path that two different values claim.
pub(crate) fn unique_entries(model: &(impl Traverse + ?Sized)) -> Result<Vec<(String, Var)>, String> {
    let list = entries(model);
    let mut seen = std::collections::HashMap::new();
    for (path, v) in &list {
        if let Some(id) = seen.insert(path.as_str(), v.id()) {
            if id != v.id() {
                return Err(format!("two different values are declared at path \"{path}\" (check the model's Layer::visit)"));
            }
        }
    }
    Ok(list)
}

fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::F32 => "f32",
        DType::F64 => "f64",
    }
}

fn number(x: f64) -> Json {
    if x.is_nan() {
        Json::from("NaN")
    } else if x == f64::INFINITY {
        Json::from("Inf")
    } else if x == f64::NEG_INFINITY {
        Json::from("-Inf")
    } else {
        Json::from(x)
    }
}

/// One tensor as `{"shape": [...], "dtype": "f32", "data": [...]}` (column-major data;
/// non-finite values as `"NaN"`, `"Inf"`, `"-Inf"`).
///
/// ```
/// use flux_layers::{tensor_from_json, tensor_to_json};
/// use flux_tensor::Tensor;
/// let t = Tensor::from_vec(vec![1.0f32, f32::NAN, 3.0, 4.0], &[2, 2]);
/// let j = tensor_to_json(&t);
/// assert_eq!(j["shape"], serde_json::json!([2, 2]));
/// assert_eq!(j["data"][1], "NaN");
/// let back = tensor_from_json(&j).unwrap();
/// assert_eq!(back.shape(), &[2, 2]);
/// assert!(back.to_vec()[1].is_nan());
/// ```
pub fn tensor_to_json(t: &Tensor) -> Json {
    let mut m = Map::new();
    m.insert("shape".into(), Json::from(t.shape().to_vec()));
    m.insert("dtype".into(), Json::from(dtype_name(t.dtype())));
    m.insert("data".into(), Json::Array(t.to_vec().into_iter().map(number).collect()));
    Json::Object(m)
}

/// Reads a tensor written by [`tensor_to_json`], checking its form, dtype, element count and
/// that every element fits the dtype. The error says what was wrong.
///
/// ```
/// use serde_json::json;
/// let t = flux_layers::tensor_from_json(&json!({"shape": [2], "dtype": "f64", "data": [1.5, "-Inf"]})).unwrap();
/// assert_eq!(t.to_vec(), vec![1.5, f64::NEG_INFINITY]);
/// let e = flux_layers::tensor_from_json(&json!({"shape": [3], "dtype": "f64", "data": [1.0]})).unwrap_err();
/// assert!(e.contains("1 values for shape [3]"));
/// ```
pub fn tensor_from_json(j: &Json) -> Result<Tensor, String> {
    let obj = j.as_object().ok_or_else(|| format!("expected an object with \"shape\", \"dtype\" and \"data\", found {}", kind_of(j)))?;
    let shape = parse_shape(obj.get("shape"))?;
    let dtype = parse_dtype(obj.get("dtype"))?;
    let data = parse_data(obj.get("data"), &shape, dtype)?;
    Tensor::try_from_vec(data, &shape).map(|t| t.to_dtype(dtype)).map_err(|e| e.to_string())
}

fn kind_of(j: &Json) -> &'static str {
    match j {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

fn parse_shape(j: Option<&Json>) -> Result<Vec<usize>, String> {
    let arr = match j {
        None => return Err("no \"shape\"".into()),
        Some(Json::Array(a)) => a,
        Some(other) => return Err(format!("\"shape\" must be an array of sizes, found {}", kind_of(other))),
    };
    arr.iter()
        .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()).ok_or_else(|| format!("\"shape\" must be an array of sizes, found the element {d}")))
        .collect()
}

fn parse_dtype(j: Option<&Json>) -> Result<DType, String> {
    match j {
        None => Err("no \"dtype\"".into()),
        Some(Json::String(s)) if s == "f32" => Ok(DType::F32),
        Some(Json::String(s)) if s == "f64" => Ok(DType::F64),
        Some(other) => Err(format!("unknown dtype {other} (expected \"f32\" or \"f64\")")),
    }
}

fn parse_data(j: Option<&Json>, shape: &[usize], dtype: DType) -> Result<Vec<f64>, String> {
    let arr = match j {
        None => return Err("no \"data\"".into()),
        Some(Json::Array(a)) => a,
        Some(other) => return Err(format!("\"data\" must be an array of numbers, found {}", kind_of(other))),
    };
    let expected: usize = shape.iter().product();
    if arr.len() != expected {
        return Err(format!("{} values for shape {shape:?} ({expected} elements)", arr.len()));
    }
    arr.iter()
        .enumerate()
        .map(|(i, x)| {
            let v = match x {
                Json::Number(n) => n.as_f64().ok_or_else(|| format!("element {i} ({n}) is not a float"))?,
                Json::String(s) if s == "NaN" => f64::NAN,
                Json::String(s) if s == "Inf" => f64::INFINITY,
                Json::String(s) if s == "-Inf" => f64::NEG_INFINITY,
                other => return Err(format!("element {i} is {other}, not a number")),
            };
            if dtype == DType::F32 && v.is_finite() && !(v as f32).is_finite() {
                return Err(format!("element {i} ({v}) does not fit in f32"));
            }
            Ok(v)
        })
        .collect()
}

/// The model's state as a JSON object keyed by structural path (see the [module
/// docs](self)): every parameter and buffer. Panics if two different values claim one path
/// (a faulty `Layer::visit`); [`save_state`] returns that as an error.
///
/// ```
/// use flux_layers::{chain, state_to_json, identity, relu, Dense};
/// let m = chain![Dense::new(3, 2, relu), Dense::new(2, 1, identity)];
/// let s = state_to_json(&m);
/// assert_eq!(s["0.weight"]["shape"], serde_json::json!([2, 3]));
/// assert_eq!(s["1.bias"]["dtype"], "f32");
/// assert_eq!(s.as_object().unwrap().len(), 4);
/// ```
pub fn state_to_json(model: &(impl Traverse + ?Sized)) -> Json {
    try_state_to_json(model).unwrap_or_else(|e| panic!("{e}"))
}

/// [`state_to_json`], returning an error if two different values claim one path.
///
/// ```
/// let s = flux_layers::try_state_to_json(&flux_layers::LayerNorm::new(2)).unwrap();
/// assert!(s.get("scale").is_some());
/// ```
pub fn try_state_to_json(model: &(impl Traverse + ?Sized)) -> Result<Json, LayerError> {
    let list = unique_entries(model).map_err(|reason| LayerError::Config { layer: "save_state".into(), reason })?;
    let mut m = Map::new();
    for (path, v) in list {
        m.insert(path, tensor_to_json(&v.data()));
    }
    Ok(Json::Object(m))
}

/// Loads a state made by [`state_to_json`] into the model, in place. Every key, shape, dtype
/// and element is checked first: a missing key, an extra key, a wrong shape or dtype, a wrong
/// element count or a malformed entry is an error naming each key at fault, and then nothing
/// is written.
///
/// ```
/// use flux_layers::{load_state_json, state_to_json, identity, Dense};
/// let a = Dense::new(3, 2, identity);
/// let b = Dense::new(3, 2, identity);
/// load_state_json(&b, &state_to_json(&a)).unwrap();
/// assert_eq!(a.weight().to_vec(), b.weight().to_vec());
///
/// let c = Dense::new(4, 2, identity);
/// let before = c.weight().to_vec();
/// let e = load_state_json(&c, &state_to_json(&a)).unwrap_err().to_string();
/// assert!(e.contains("\"weight\"") && e.contains("[2, 3]") && e.contains("[2, 4]"));
/// assert_eq!(c.weight().to_vec(), before);
/// ```
pub fn load_state_json(model: &(impl Traverse + ?Sized), state: &Json) -> Result<(), LayerError> {
    let list = unique_entries(model).map_err(LayerError::State)?;
    let obj = state.as_object().ok_or_else(|| LayerError::State(format!("the state must be a JSON object keyed by path, found {}", kind_of(state))))?;
    let mut problems = Vec::new();
    let mut ready = Vec::with_capacity(list.len());
    let mut known = BTreeSet::new();
    for (path, v) in &list {
        if !known.insert(path.as_str()) {
            continue; // one value declared twice at the same path
        }
        let (want_shape, want_dtype) = (v.shape().to_vec(), v.dtype());
        let Some(entry) = obj.get(path) else {
            problems.push(format!("missing key \"{path}\" (the model has {want_shape:?} {})", dtype_name(want_dtype)));
            continue;
        };
        if !v.is_leaf() {
            problems.push(format!("key \"{path}\": the model's value there is computed, not stored, so it cannot be loaded"));
            continue;
        }
        let check = || -> Result<Tensor, String> {
            let fields = entry.as_object().ok_or_else(|| format!("expected an object with \"shape\", \"dtype\" and \"data\", found {}", kind_of(entry)))?;
            let shape = parse_shape(fields.get("shape"))?;
            if shape != want_shape {
                return Err(format!("shape {shape:?} in the state, but the model has {want_shape:?}"));
            }
            let dtype = parse_dtype(fields.get("dtype"))?;
            if dtype != want_dtype {
                return Err(format!("dtype {} in the state, but the model has {}", dtype_name(dtype), dtype_name(want_dtype)));
            }
            let data = parse_data(fields.get("data"), &shape, dtype)?;
            Tensor::try_from_vec(data, &shape).map(|t| t.to_dtype(dtype)).map_err(|e| e.to_string())
        };
        match check() {
            Ok(t) => ready.push((v.clone(), t)),
            Err(e) => problems.push(format!("key \"{path}\": {e}")),
        }
    }
    for key in obj.keys() {
        if !known.contains(key.as_str()) {
            problems.push(format!("unexpected key \"{key}\" (the model has no parameter or buffer there)"));
        }
    }
    if !problems.is_empty() {
        return Err(LayerError::State(problems.join("; ")));
    }
    for (v, t) in ready {
        v.set_data(t);
    }
    Ok(())
}

/// Saves every parameter and buffer of the model to a JSON file at `path` (see the [module
/// docs](self) for the format). The file is written whole or not at all (through a temporary
/// file beside it, then renamed).
///
/// ```
/// use flux_layers::{chain, load_state, save_state, identity, relu, Dense};
/// let path = std::env::temp_dir().join(format!("flux_doc_state_{}.json", std::process::id()));
/// let a = chain![Dense::new(3, 2, relu), Dense::new(2, 1, identity)];
/// save_state(&a, &path).unwrap();
/// let b = chain![Dense::new(3, 2, relu), Dense::new(2, 1, identity)];
/// load_state(&b, &path).unwrap();
/// assert_eq!(a[0].forward(&flux_autograd::Var::from(flux_tensor::Tensor::ones(&[3]))).to_vec(),
///            b[0].forward(&flux_autograd::Var::from(flux_tensor::Tensor::ones(&[3]))).to_vec());
/// std::fs::remove_file(&path).unwrap();
/// ```
pub fn save_state(model: &(impl Traverse + ?Sized), path: impl AsRef<Path>) -> Result<(), LayerError> {
    let path = path.as_ref();
    let json = try_state_to_json(model)?;
    let bytes = serde_json::to_vec(&json).map_err(|e| LayerError::Config { layer: "save_state".into(), reason: e.to_string() })?;
    let io = |source| LayerError::Io { op: "save_state", path: path.display().to_string(), source };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "state".into());
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })
}

/// Loads a file written by [`save_state`] into the model, in place. A file that cannot be read
/// or is not JSON, and every mismatch [`load_state_json`] finds, is an error; the model is then
/// left exactly as it was.
///
/// ```
/// use flux_layers::{load_state, identity, Dense};
/// let path = std::env::temp_dir().join(format!("flux_doc_bad_{}.json", std::process::id()));
/// std::fs::write(&path, "{ not json").unwrap();
/// let d = Dense::new(2, 2, identity);
/// let e = load_state(&d, &path).unwrap_err();
/// assert!(e.to_string().contains("malformed"));
/// std::fs::remove_file(&path).unwrap();
/// ```
pub fn load_state(model: &(impl Traverse + ?Sized), path: impl AsRef<Path>) -> Result<(), LayerError> {
    let path = path.as_ref();
    let text = std::fs::read(path).map_err(|source| LayerError::Io { op: "load_state", path: path.display().to_string(), source })?;
    let json: Json = serde_json::from_slice(&text).map_err(|source| LayerError::Json { path: path.display().to_string(), source })?;
    load_state_json(model, &json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{chain, identity, BatchNorm, Dense};
    use serde_json::json;

    #[test]
    fn buffers_are_saved_and_loaded() {
        let bn = BatchNorm::new(2);
        bn.running_mean().set_data(Tensor::from_vec(vec![1.0f32, 2.0], &[2]));
        let s = state_to_json(&bn);
        assert_eq!(s["running_mean"]["data"], json!([1.0, 2.0]));
        let other = BatchNorm::new(2);
        load_state_json(&other, &s).unwrap();
        assert_eq!(other.running_mean().to_vec(), vec![1.0, 2.0]);
    }

    #[test]
    fn every_problem_is_reported() {
        let m = chain![Dense::new(2, 2, identity), Dense::new(2, 1, identity)];
        let mut s = state_to_json(&m);
        let obj = s.as_object_mut().unwrap();
        obj.remove("0.bias");
        obj.insert("9.weight".into(), json!({}));
        obj["1.weight"]["dtype"] = json!("f64");
        obj["1.bias"]["data"] = json!([1.0, 2.0]);
        let e = load_state_json(&m, &s).unwrap_err().to_string();
        for part in ["missing key \"0.bias\"", "unexpected key \"9.weight\"", "key \"1.weight\": dtype f64", "key \"1.bias\": 2 values for shape [1]"] {
            assert!(e.contains(part), "{part} not in {e}");
        }
        assert!(e.ends_with("the model was left unchanged"));
    }

    #[test]
    fn f32_overflow_is_an_error() {
        let d = Dense::new(1, 1, identity);
        let mut s = state_to_json(&d);
        s["weight"]["data"] = json!([1e300]);
        assert!(load_state_json(&d, &s).unwrap_err().to_string().contains("does not fit in f32"));
    }

    #[test]
    fn duplicate_paths_are_an_error() {
        struct Twice(Dense, Dense);
        impl Traverse for Twice {
            fn visit(&self, w: &mut Walker<'_>) {
                w.child("a", &self.0);
                w.child("a", &self.1);
            }
        }
        let t = Twice(Dense::new(1, 1, identity), Dense::new(1, 1, identity));
        assert!(try_state_to_json(&t).unwrap_err().to_string().contains("\"a.weight\""));
    }
}

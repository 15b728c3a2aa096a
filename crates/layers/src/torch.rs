//! PyTorch state dicts in and out: [`load_torch_state`] / [`save_torch_state`].
//!
//! A file written by `safetensors.torch.save_file(seq.state_dict(), path)` for an
//! `nn.Sequential` holds keys `0.weight`, `0.bias`, `2.weight`, ...: the module's position in
//! the `Sequential`, then PyTorch's own name. flux-rs folds activations into `Dense` and has
//! its own parameterless items, so modules are matched **in order**: the k-th PyTorch module
//! that has tensors goes to the k-th flux-rs layer that declares a PyTorch counterpart
//! (`ReLU`, `Flatten`, `Dropout`, pooling, activations hold nothing and are skipped on both
//! sides).
//!
//! Each layer declares its own mapping next to its definition by implementing
//! [`TorchModule`] and declaring itself to the traversal with `Walker::torch` (what
//! `#[layer(torch)]` writes in a derived `visit`); there is no central table. The mappings of
//! this crate and flux-recurrent:
//!
//! | flux-rs | PyTorch | tensors |
//! |---|---|---|
//! | `Dense` | `Linear` | `weight [out, in]`, `bias [out]` (absent with `bias=False`: zeros) |
//! | `LayerNorm` | `LayerNorm` | `weight`, `bias` (our `scale`, `bias`) |
//! | `BatchNorm` | `BatchNorm1d/2d` | `weight`, `bias`, `running_mean`, `running_var`, `num_batches_tracked` (ignored on load, 0 on save) |
//! | `LSTM` | `LSTM` (1 layer) | `weight_ih_l0 [4h, in]`, `weight_hh_l0 [4h, h]`, `bias_ih_l0 + bias_hh_l0` = our `b` (gates i, f, g, o on both sides) |
//! | `GRU` | `GRU` (1 layer) | `weight_ih_l0 [3h, in]`, `weight_hh_l0 [3h, h]`, `bias_ih_l0`, `bias_hh_l0` (gates r, z, n on both sides) |
//! | `RNN` | `RNN` (1 layer) | `weight_ih_l0`, `weight_hh_l0`, `bias_ih_l0 + bias_hh_l0` = our `b` |
//! | `CrossCor` | `Conv1d/2d/3d` | `weight [cout, cin / groups, k...]` = our `[k..., cin / groups, cout]` with the dimensions reversed, `bias [cout]` |
//! | `Conv` | `Conv1d/2d/3d` | as `CrossCor`, the kernel flipped (we convolve, PyTorch cross-correlates) |
//! | `ConvTranspose` | `ConvTranspose1d/2d/3d` | `weight [cin, cout / groups, k...]` = our `[k..., cout / groups, cin]` reversed and flipped, `bias [cout]` |
//! | `Embedding` | `Embedding` | `weight [vocab, dim]` = our `[dim, vocab]` transposed |
//!
//! Saving writes the reverse mapping under the flux-rs chain position (`1.weight_ih_l0`); where
//! flux-rs has one bias and PyTorch two, the whole bias goes to `bias_ih_l0` and `bias_hh_l0`
//! is zeros. A recurrent layer's initial state is not part of a PyTorch state dict (PyTorch
//! starts from zeros, as `LSTM::new` does) and is left as it is.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use flux_autograd::Var;
use flux_tensor::{DType, Tensor};

use crate::error::LayerError;
use crate::layer::{Traverse, Visitor, Walker};
use crate::weights::{float_dtype, write_file, Out, SafeFile};

/// A tensor in a PyTorch state dict, as a layer exports it.
pub enum TorchValue {
    /// A float tensor in PyTorch's shape (flux-rs's tensor of the same shape and elements;
    /// the writer lays it out row-major).
    Float(Tensor),
    /// A 64-bit integer scalar (`num_batches_tracked`).
    I64(i64),
}

/// A layer's PyTorch counterpart: the module's class name, and its tensors under PyTorch's
/// names and layouts, both ways. Implement it next to the layer and declare the layer with
/// `w.torch(self)` at the start of its `Traverse::visit` (or `#[layer(torch)]` on a derived
/// layer); layers that do not are "no mapping": a model with trainable parameters in such a
/// layer is an error for [`load_torch_state`] and [`save_torch_state`].
///
/// ```
/// use flux_autograd::{param, Var};
/// use flux_layers::{TorchModule, TorchSource, TorchValue, Traverse, Walker};
/// use flux_tensor::Tensor;
///
/// /// A per-feature scale, PyTorch's `weight` of a custom module.
/// struct Scale { s: Var }
/// impl Traverse for Scale {
///     fn visit(&self, w: &mut Walker<'_>) { w.torch(self); w.param("s", &self.s); }
/// }
/// impl TorchModule for Scale {
///     fn torch_kind(&self) -> &'static str { "Scale" }
///     fn torch_export(&self) -> Vec<(String, TorchValue)> {
///         vec![("weight".into(), TorchValue::Float(self.s.data()))]
///     }
///     fn torch_import(&self, src: &mut TorchSource<'_>) -> Vec<(Var, Tensor)> {
///         src.take("weight", self.s.shape().dims(), self.s.dtype()).map(|t| (self.s.clone(), t)).into_iter().collect()
///     }
/// }
/// let path = std::env::temp_dir().join(format!("flux_doc_torch_scale_{}.safetensors", std::process::id()));
/// let a = flux_layers::chain![Scale { s: param(Tensor::from_vec(vec![2.0f32, 3.0], &[2])) }];
/// flux_layers::save_torch_state(&a, &path).unwrap();
/// let b = flux_layers::chain![Scale { s: param(Tensor::zeros(&[2]).to_f32()) }];
/// # impl flux_layers::Layer for Scale {
/// #     fn try_forward(&self, x: &Var) -> Result<Var, flux_layers::LayerError> { Ok(x * &self.s) }
/// # }
/// flux_layers::load_torch_state(&b, &path).unwrap();
/// assert_eq!(flux_layers::state_to_json(&b)["0.s"]["data"], serde_json::json!([2.0, 3.0]));
/// std::fs::remove_file(&path).unwrap();
/// ```
pub trait TorchModule: Send + Sync {
    /// PyTorch's class name for the module (`"Linear"`), for messages.
    fn torch_kind(&self) -> &'static str;

    /// The module's state dict entries, under PyTorch's names (`weight_ih_l0`) in PyTorch's
    /// shapes.
    fn torch_export(&self) -> Vec<(String, TorchValue)>;

    /// Reads the module's entries from `src` ([`TorchSource::take`] checks each key's shape
    /// and records any problem) and returns the values to write into the layer's parameters
    /// and buffers. It must write nothing itself: the loader writes only when every module
    /// of the file found what it expected.
    fn torch_import(&self, src: &mut TorchSource<'_>) -> Vec<(Var, Tensor)>;
}

/// One PyTorch module's entries in a file being loaded: what [`TorchModule::torch_import`]
/// reads from. Problems (a missing key, a wrong shape or dtype) are recorded with the full key
/// and reported together by [`load_torch_state`].
pub struct TorchSource<'a> {
    file: &'a mut SafeFile,
    prefix: String,
    kind: &'static str,
    used: &'a mut BTreeSet<String>,
    problems: &'a mut Vec<String>,
}

impl TorchSource<'_> {
    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// True when the module's entry `name` is in the file.
    ///
    /// ```
    /// // inside `torch_import`: `if src.has("bias") { ... }`
    /// ```
    pub fn has(&self, name: &str) -> bool {
        self.file.info(&self.key(name)).is_some()
    }

    /// The module's entry `name` (`weight`, `bias_ih_l0`), which must have PyTorch shape
    /// `shape` and a float dtype, as a flux-rs tensor of that shape and elements converted to
    /// `dtype`; `None` after recording a problem naming the key and what was expected.
    ///
    /// ```
    /// // inside `torch_import`: `let w = src.take("weight", &[out, inp], DType::F32);`
    /// ```
    pub fn take(&mut self, name: &str, shape: &[usize], dtype: DType) -> Option<Tensor> {
        let key = self.key(name);
        let Some(info) = self.file.info(&key) else {
            self.problems.push(format!("missing key \"{key}\" (PyTorch {} {name}, expected shape {shape:?})", self.kind));
            return None;
        };
        self.used.insert(key.clone());
        if float_dtype(info.dtype).is_none() {
            self.problems.push(format!("key \"{key}\": dtype {:?}, expected F32 or F64 (PyTorch {} {name})", info.dtype, self.kind));
            return None;
        }
        if info.shape != shape {
            self.problems.push(format!("key \"{key}\": shape {:?} in the file, but the model's {} {name} is {shape:?}", info.shape, self.kind));
            return None;
        }
        match self.file.read(&key, dtype) {
            Ok(t) => Some(t),
            Err(e) => {
                self.problems.push(e);
                None
            }
        }
    }

    /// Accepts and ignores the entry `name` if present (`num_batches_tracked`).
    ///
    /// ```
    /// // inside `torch_import`: `src.ignore("num_batches_tracked");`
    /// ```
    pub fn ignore(&mut self, name: &str) {
        let key = self.key(name);
        if self.file.info(&key).is_some() {
            self.used.insert(key);
        }
    }

    /// Records a problem of the module's own (say, two entries that disagree).
    ///
    /// ```
    /// // inside `torch_import`: `src.problem("weight_ih_l0 and weight_hh_l0 disagree".into());`
    /// ```
    pub fn problem(&mut self, what: String) {
        self.problems.push(format!("{} at \"{}\": {what}", self.kind, self.prefix.trim_end_matches('.')));
    }
}

/// The model's PyTorch modules in traversal order (their paths), and the paths of trainable
/// parameters that no module covers.
fn survey(model: &(impl Traverse + ?Sized)) -> (Vec<String>, Vec<String>) {
    struct S {
        mods: Vec<String>,
        params: Vec<String>,
    }
    impl Visitor for S {
        fn param(&mut self, path: &str, _p: &Var) {
            self.params.push(path.to_string());
        }
        fn torch(&mut self, path: &str, _m: &dyn TorchModule) {
            self.mods.push(path.to_string());
        }
    }
    let mut s = S { mods: Vec::new(), params: Vec::new() };
    Walker::walk(model, &mut s);
    let covered = |p: &str| s.mods.iter().any(|m| m.is_empty() || p == m || p.starts_with(&format!("{m}.")));
    let loose = s.params.iter().filter(|p| !covered(p)).cloned().collect();
    (s.mods, loose)
}

/// The key prefix of a module at `path` in the saved file: its position in the outer chain
/// (`1` for `1.cell`), or nothing for a model that is one module.
fn position(path: &str) -> &str {
    path.split('.').next().unwrap_or("")
}

fn loose_error(loose: &[String]) -> String {
    format!(
        "the model's parameter{} {} belong{} to no layer with a PyTorch mapping (a layer declares one by implementing TorchModule)",
        if loose.len() == 1 { "" } else { "s" },
        loose.iter().map(|p| format!("\"{p}\"")).collect::<Vec<_>>().join(", "),
        if loose.len() == 1 { "s" } else { "" }
    )
}

/// Loads a PyTorch state dict saved as safetensors
/// (`safetensors.torch.save_file(seq.state_dict(), path)`) into the matching flux-rs model,
/// in place: the file's modules (`0.`, `2.`, ...: those with tensors, in numeric order) go to
/// the model's layers with a PyTorch mapping ([`TorchModule`]), in traversal order; names,
/// layouts and gate orders are mapped by each layer (see the [module docs](self)). Elements are
/// converted to the model's dtype (an f64 file loads into an f32 model).
///
/// Every key is checked before anything is written: a different number of modules, a missing
/// or unexpected key, a wrong shape or dtype, a parameter in a layer without a mapping, and a
/// truncated, garbage or hostile file are errors naming the key and what was expected, and the
/// model is then left unchanged.
///
/// ```
/// use flux_layers::{chain, load_torch_state, save_torch_state, identity, relu, Dense};
/// let path = std::env::temp_dir().join(format!("flux_doc_torch_{}.safetensors", std::process::id()));
/// let a = chain![Dense::new(3, 4, relu), Dense::new(4, 2, identity)];
/// save_torch_state(&a, &path).unwrap(); // keys 0.weight, 0.bias, 1.weight, 1.bias
/// let b = chain![Dense::new(3, 4, relu), Dense::new(4, 2, identity)];
/// load_torch_state(&b, &path).unwrap();
/// assert_eq!(flux_layers::state_to_json(&a), flux_layers::state_to_json(&b));
///
/// let c = chain![Dense::new(3, 5, relu), Dense::new(5, 2, identity)];
/// let e = load_torch_state(&c, &path).unwrap_err().to_string();
/// assert!(e.contains("key \"0.weight\": shape [4, 3] in the file, but the model's Linear weight is [5, 3]"), "{e}");
/// std::fs::remove_file(&path).unwrap();
/// ```
pub fn load_torch_state(model: &(impl Traverse + ?Sized), path: impl AsRef<Path>) -> Result<(), LayerError> {
    const OP: &str = "load_torch_state";
    let path = path.as_ref();
    let fail = |reason: String| LayerError::Weights { op: OP, path: path.display().to_string(), reason: format!("{reason}; the model was left unchanged") };
    let (mods, loose) = survey(model);
    if !loose.is_empty() {
        return Err(fail(loose_error(&loose)));
    }
    let mut file = SafeFile::open(OP, path)?;
    // The file's modules: keys grouped by their first segment, in numeric order (or one group
    // with no prefix when no key has a numeric first segment: a bare module's state dict).
    let keys = file.keys();
    let mut groups: BTreeMap<u64, String> = BTreeMap::new();
    let mut bare = Vec::new();
    for k in &keys {
        match k.split_once('.').and_then(|(head, _)| head.parse::<u64>().ok().map(|n| (n, head))) {
            Some((n, head)) => {
                groups.insert(n, format!("{head}."));
            }
            None => bare.push(k.clone()),
        }
    }
    let prefixes: Vec<String> = if groups.is_empty() && !bare.is_empty() {
        vec![String::new()]
    } else if !bare.is_empty() {
        let list = bare.iter().map(|k| format!("\"{k}\"")).collect::<Vec<_>>().join(", ");
        return Err(fail(format!("keys {list} are not under a module position (expected an nn.Sequential's state dict: \"0.weight\", ...)")));
    } else {
        groups.into_values().collect()
    };
    if prefixes.len() != mods.len() {
        let file_mods = prefixes.iter().map(|p| format!("\"{}\"", p.trim_end_matches('.'))).collect::<Vec<_>>().join(", ");
        return Err(fail(format!(
            "the file has {} module{} with tensors ({file_mods}) but the model has {} layer{} with a PyTorch mapping",
            prefixes.len(),
            if prefixes.len() == 1 { "" } else { "s" },
            mods.len(),
            if mods.len() == 1 { "" } else { "s" }
        )));
    }

    struct Import<'f> {
        file: &'f mut SafeFile,
        prefixes: Vec<String>,
        next: usize,
        used: BTreeSet<String>,
        problems: Vec<String>,
        writes: Vec<(Var, Tensor)>,
    }
    impl Visitor for Import<'_> {
        fn torch(&mut self, _path: &str, m: &dyn TorchModule) {
            let prefix = self.prefixes[self.next].clone();
            self.next += 1;
            let mut src = TorchSource { file: self.file, prefix, kind: m.torch_kind(), used: &mut self.used, problems: &mut self.problems };
            let w = m.torch_import(&mut src);
            self.writes.extend(w);
        }
    }
    let mut imp = Import { file: &mut file, prefixes, next: 0, used: BTreeSet::new(), problems: Vec::new(), writes: Vec::new() };
    Walker::walk(model, &mut imp);
    let Import { used, mut problems, writes, .. } = imp;
    for k in keys {
        if !used.contains(&k) {
            problems.push(format!("unexpected key \"{k}\" (the matching layer has no tensor of that name)"));
        }
    }
    for (v, _) in &writes {
        if !v.is_leaf() {
            problems.push("a value to load is computed, not stored".into());
        }
    }
    if !problems.is_empty() {
        return Err(fail(problems.join("; ")));
    }
    for (v, t) in writes {
        v.set_data(t);
    }
    Ok(())
}

/// Saves the model as a PyTorch state dict in safetensors: each layer with a PyTorch mapping
/// ([`TorchModule`]) writes its tensors under PyTorch's names and layouts, prefixed by its
/// position in the chain (`0.weight`, `1.weight_ih_l0`), so that
/// `seq.load_state_dict(safetensors.torch.load_file(path), strict=True)` loads it into the
/// `nn.Sequential` whose modules with tensors sit at those positions. A parameter in a layer
/// without a mapping, or two mapped layers at one chain position, is an error.
///
/// ```
/// use flux_layers::{chain, save_torch_state, identity, relu, BatchNorm, Dense};
/// let path = std::env::temp_dir().join(format!("flux_doc_torch_save_{}.safetensors", std::process::id()));
/// save_torch_state(&chain![Dense::new(3, 4, relu), BatchNorm::new(4)], &path).unwrap();
/// std::fs::remove_file(&path).unwrap();
/// ```
pub fn save_torch_state(model: &(impl Traverse + ?Sized), path: impl AsRef<Path>) -> Result<(), LayerError> {
    const OP: &str = "save_torch_state";
    let path = path.as_ref();
    let fail = |reason: String| LayerError::Weights { op: OP, path: path.display().to_string(), reason };
    let (mods, loose) = survey(model);
    if !loose.is_empty() {
        return Err(fail(loose_error(&loose)));
    }
    let mut seen = BTreeSet::new();
    for m in &mods {
        if !seen.insert(position(m)) {
            return Err(fail(format!(
                "two layers with a PyTorch mapping at chain position \"{}\" (save_torch_state writes a flat nn.Sequential)",
                position(m)
            )));
        }
    }
    struct Export(Vec<(String, Out)>);
    impl Visitor for Export {
        fn torch(&mut self, path: &str, m: &dyn TorchModule) {
            let pos = position(path);
            for (name, v) in m.torch_export() {
                let key = if pos.is_empty() { name } else { format!("{pos}.{name}") };
                let out = match v {
                    TorchValue::Float(t) => Out::Float(t),
                    TorchValue::I64(x) => Out::I64(x),
                };
                self.0.push((key, out));
            }
        }
    }
    let mut e = Export(Vec::new());
    Walker::walk(model, &mut e);
    write_file(OP, path, &e.0)
}

/// The same elements with the dimensions in reverse order: `t[i, j, k]` becomes `[k, j, i]`
/// (Julia's `[k..., cin, cout]` kernel as PyTorch's `[cout, cin, k...]`, and back).
pub(crate) fn reverse_dims(t: &Tensor) -> Tensor {
    let perm: Vec<usize> = (0..t.shape().rank()).rev().collect();
    t.permute(&perm)
}

/// The kernel reversed along its first `nd` (spatial) dimensions: a true convolution with `t`
/// is a cross-correlation with the flipped kernel.
pub(crate) fn flip_spatial(t: &Tensor, nd: usize) -> Tensor {
    let shape = t.shape().dims().to_vec();
    let v = t.to_vec();
    let mut out = vec![0.0f64; v.len()];
    let mut idx = vec![0usize; shape.len()];
    for &x in &v {
        // idx is the column-major multi-index of `x`
        let mut off = 0;
        let mut stride = 1;
        for (d, (&i, &n)) in idx.iter().zip(&shape).enumerate() {
            let j = if d < nd { n - 1 - i } else { i };
            off += j * stride;
            stride *= n;
        }
        out[off] = x;
        for (i, &n) in idx.iter_mut().zip(&shape) {
            *i += 1;
            if *i < n {
                break;
            }
            *i = 0;
        }
    }
    Tensor::from_vec(out, &shape).to_dtype(t.dtype())
}

/// PyTorch's `Conv1d/2d/3d` tensors for a kernel `[k..., cin / groups, cout]` and bias `[cout]`:
/// `weight [cout, cin / groups, k...]` (PyTorch's spatial order is the reverse of ours, as its
/// input `[N, C, H, W]` is ours `[W, H, C, N]`), flipped first when the layer convolves (`Conv`).
pub(crate) fn conv_export(weight: &Var, bias: &Var, flip: bool) -> Vec<(String, TorchValue)> {
    let nd = weight.shape().rank() - 2;
    let w = if flip { flip_spatial(&weight.data(), nd) } else { weight.data() };
    vec![("weight".into(), TorchValue::Float(reverse_dims(&w))), ("bias".into(), TorchValue::Float(bias.data()))]
}

/// The reverse of [`conv_export`] (a `bias=False` convolution loads a zero bias).
pub(crate) fn conv_import(src: &mut TorchSource<'_>, weight: &Var, bias: &Var, flip: bool) -> Vec<(Var, Tensor)> {
    let nd = weight.shape().rank() - 2;
    let torch_shape: Vec<usize> = weight.shape().dims().iter().rev().copied().collect();
    let mut out = Vec::new();
    if let Some(t) = src.take("weight", &torch_shape, weight.dtype()) {
        let w = reverse_dims(&t);
        out.push((weight.clone(), if flip { flip_spatial(&w, nd) } else { w }));
    }
    if src.has("bias") {
        if let Some(t) = src.take("bias", bias.shape().dims(), bias.dtype()) {
            out.push((bias.clone(), t));
        }
    } else {
        out.push((bias.clone(), Tensor::zeros(bias.shape().dims()).to_dtype(bias.dtype())));
    }
    out
}

//! Weights in the [safetensors](https://huggingface.co/docs/safetensors) format:
//! [`save_safetensors`] / [`load_safetensors`], the reader and writer that
//! [`crate::torch`] builds on too.
//!
//! A safetensors file is an 8-byte little-endian header length, a JSON header naming each
//! tensor's dtype, shape and byte range, then the raw little-endian elements in row-major (C)
//! order. flux-rs tensors are column-major, so every tensor is reordered on the way: a Dense
//! weight of shape `[out, in]` is `[out, in]` in PyTorch too, with `w[i, j]` equal on both
//! sides. The keys are the structural paths of [`crate::save_state`] (`0.weight`,
//! `2.running_mean`, ...), parameters and buffers alike; f32 and f64 are kept as they are.
//!
//! Loading reads the header first (at most 100 MB, and never more than the file holds), checks
//! every key, dtype, shape and byte range against the model, and only then reads the tensors,
//! one at a time, each straight into its parameter: memory beyond the model is the header and
//! one tensor's bytes.

use std::borrow::Cow;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use ::safetensors::tensor::{Metadata, TensorInfo};
use ::safetensors::{Dtype, View};
use flux_autograd::Var;
use flux_tensor::{DType, Shape, Tensor};

use crate::error::LayerError;
use crate::layer::Traverse;
use crate::state::unique_entries;

/// The largest header we read (the `safetensors` crate's own limit).
const MAX_HEADER: u64 = 100_000_000;

/// An open safetensors file whose header has been read and checked: every tensor's byte range
/// lies inside the file, the ranges are contiguous and do not overlap, and each range's length
/// is its shape's element count times its dtype's size.
pub(crate) struct SafeFile {
    file: File,
    data_start: u64,
    meta: Metadata,
}

impl SafeFile {
    /// Opens and checks `path`; the error says what is wrong with the file.
    pub(crate) fn open(op: &'static str, path: &Path) -> Result<SafeFile, LayerError> {
        let fail = |reason: String| LayerError::Weights { op, path: path.display().to_string(), reason: format!("{reason}; the model was left unchanged") };
        let io = |source| LayerError::Io { op, path: path.display().to_string(), source };
        let mut file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len < 8 {
            return Err(fail(format!("not a safetensors file: {len} bytes, too short for the 8-byte header length")));
        }
        let mut n = [0u8; 8];
        file.read_exact(&mut n).map_err(io)?;
        let n = u64::from_le_bytes(n);
        if n > MAX_HEADER {
            return Err(fail(format!("not a safetensors file: its header claims {n} bytes (the limit is {MAX_HEADER})")));
        }
        if n > len - 8 {
            return Err(fail(format!("not a safetensors file, or a truncated one: its header claims {n} bytes but only {} follow", len - 8)));
        }
        let mut header = vec![0u8; n as usize];
        file.read_exact(&mut header).map_err(io)?;
        let meta: Metadata = serde_json::from_slice(&header).map_err(|e| fail(format!("malformed safetensors header: {e}")))?;
        let data_start = 8 + n;
        let data_len = meta.data_len() as u64;
        if data_len != len - data_start {
            return Err(fail(format!(
                "the header's tensors take {data_len} bytes but the file holds {} after the header (truncated or padded)",
                len - data_start
            )));
        }
        Ok(SafeFile { file, data_start, meta })
    }

    /// Every tensor name in the file, sorted.
    pub(crate) fn keys(&self) -> Vec<String> {
        let mut k: Vec<String> = self.meta.tensors().into_keys().collect();
        k.sort();
        k
    }

    /// The header's entry for `key`.
    pub(crate) fn info(&self, key: &str) -> Option<&TensorInfo> {
        self.meta.info(key)
    }

    /// Reads `key` (checked by [`SafeFile::open`] and by the caller: present, f32/f64/f16/bf16)
    /// as a flux-rs tensor of the same shape and elements, of dtype `to`.
    pub(crate) fn read(&mut self, key: &str, to: DType) -> Result<Tensor, String> {
        let info = self.meta.info(key).ok_or_else(|| format!("no tensor \"{key}\" in the file"))?.clone();
        let (start, end) = info.data_offsets;
        let mut bytes = vec![0u8; end - start];
        self.file.seek(SeekFrom::Start(self.data_start + start as u64)).map_err(|e| e.to_string())?;
        self.file.read_exact(&mut bytes).map_err(|e| format!("reading \"{key}\": {e}"))?;
        from_row_major(&bytes, info.dtype, &info.shape, to).ok_or_else(|| format!("\"{key}\": dtype {:?} cannot be read as a float", info.dtype))
    }
}

/// The name of a float dtype flux-rs can read, or `None`.
pub(crate) fn float_dtype(d: Dtype) -> Option<DType> {
    match d {
        Dtype::F32 => Some(DType::F32),
        Dtype::F64 => Some(DType::F64),
        _ => None,
    }
}

/// `F32` / `F64`, as safetensors names them.
pub(crate) fn st_dtype(d: DType) -> Dtype {
    match d {
        DType::F32 => Dtype::F32,
        DType::F64 => Dtype::F64,
    }
}

/// Column-major strides of `shape` (the first index varies fastest).
fn col_strides(shape: &[usize]) -> Vec<usize> {
    let mut s = Vec::with_capacity(shape.len());
    let mut acc = 1;
    for &d in shape {
        s.push(acc);
        acc *= d;
    }
    s
}

/// Calls `f(row_major_index, column_major_index)` once for every element of `shape` (in an
/// order that keeps both indices within cache-sized tiles for matrices).
fn for_each_index(shape: &[usize], mut f: impl FnMut(usize, usize)) {
    let numel: usize = shape.iter().product();
    if numel == 0 {
        return;
    }
    // one dimension larger than 1 at most: both orders agree
    if shape.iter().filter(|&&d| d > 1).count() <= 1 {
        for i in 0..numel {
            f(i, i);
        }
        return;
    }
    if let [rows, cols] = *shape {
        // a matrix: tile by tile, so reads and writes both stay in cache
        const B: usize = 64;
        for i0 in (0..rows).step_by(B) {
            for j0 in (0..cols).step_by(B) {
                for i in i0..(i0 + B).min(rows) {
                    for j in j0..(j0 + B).min(cols) {
                        f(i * cols + j, i + j * rows);
                    }
                }
            }
        }
        return;
    }
    let strides = col_strides(shape);
    let rank = shape.len();
    let mut idx = vec![0usize; rank];
    let mut col = 0usize;
    let (last, last_stride) = (shape[rank - 1], strides[rank - 1]);
    let mut r = 0usize;
    loop {
        // the innermost (last) dimension as a run
        for j in 0..last {
            f(r + j, col + j * last_stride);
        }
        r += last;
        // advance the outer dimensions like an odometer
        let mut k = rank - 1;
        loop {
            if k == 0 {
                return;
            }
            k -= 1;
            idx[k] += 1;
            col += strides[k];
            if idx[k] < shape[k] {
                break;
            }
            col -= strides[k] * shape[k];
            idx[k] = 0;
        }
    }
}

/// Little-endian row-major elements of `dtype` and `shape` as a flux-rs tensor of dtype `to`
/// (same shape, same element at every index). `None` for a dtype that is not f32/f64 or bytes
/// of the wrong length.
pub(crate) fn from_row_major(bytes: &[u8], dtype: Dtype, shape: &[usize], to: DType) -> Option<Tensor> {
    let numel: usize = shape.iter().product();
    let read = |i: usize| -> f64 {
        match dtype {
            Dtype::F32 => f32::from_le_bytes(bytes[4 * i..4 * i + 4].try_into().unwrap_or_default()) as f64,
            _ => f64::from_le_bytes(bytes[8 * i..8 * i + 8].try_into().unwrap_or_default()),
        }
    };
    let size = match dtype {
        Dtype::F32 => 4,
        Dtype::F64 => 8,
        _ => return None,
    };
    if bytes.len() != numel * size {
        return None;
    }
    Some(match (dtype, to) {
        (Dtype::F32, DType::F32) => Tensor::from_typed(decode(bytes, shape, f32::from_le_bytes), Shape::new(shape)),
        (Dtype::F64, DType::F64) => Tensor::from_typed(decode(bytes, shape, f64::from_le_bytes), Shape::new(shape)),
        (_, DType::F32) => {
            let mut out = vec![0f32; numel];
            for_each_index(shape, |r, c| out[c] = read(r) as f32);
            Tensor::from_typed(out, Shape::new(shape))
        }
        (_, DType::F64) => {
            let mut out = vec![0f64; numel];
            for_each_index(shape, |r, c| out[c] = read(r));
            Tensor::from_typed(out, Shape::new(shape))
        }
    })
}

/// Row-major little-endian elements of `N` bytes each (`bytes.len()` checked by the caller)
/// into column-major order: straight through for vectors, tile by tile for matrices (each
/// output column's run written contiguously), index by index otherwise.
fn decode<T: Copy + Default, const N: usize>(bytes: &[u8], shape: &[usize], conv: fn([u8; N]) -> T) -> Vec<T> {
    let numel: usize = shape.iter().product();
    let elem = |c: &[u8]| conv(c.try_into().unwrap_or([0; N]));
    if shape.iter().filter(|&&d| d > 1).count() <= 1 {
        return bytes.chunks_exact(N).map(elem).collect();
    }
    let mut out = vec![T::default(); numel];
    if let [rows, cols] = *shape {
        // tile by tile (a 32x32 tile of the source fits in L1), each output column's run
        // written contiguously; no second copy of the matrix
        const B: usize = 32;
        for i0 in (0..rows).step_by(B) {
            let i1 = (i0 + B).min(rows);
            for j0 in (0..cols).step_by(B) {
                let j1 = (j0 + B).min(cols);
                for j in j0..j1 {
                    let column = &mut out[j * rows + i0..j * rows + i1];
                    for (o, i) in column.iter_mut().zip(i0..i1) {
                        let at = N * (i * cols + j);
                        *o = elem(&bytes[at..at + N]);
                    }
                }
            }
        }
        return out;
    }
    for_each_index(shape, |r, c| out[c] = elem(&bytes[N * r..N * r + N]));
    out
}

/// A flux-rs tensor's elements in row-major order as little-endian bytes of its own dtype.
pub(crate) fn to_row_major(t: &Tensor) -> Vec<u8> {
    let shape = t.shape().to_vec();
    match t.dtype() {
        DType::F32 => {
            let owned;
            let v = match t.as_slice::<f32>() {
                Some(v) => v,
                None => {
                    owned = t.to_vec_f32();
                    &owned
                }
            };
            let mut out = vec![0u8; 4 * v.len()];
            for_each_index(&shape, |r, c| out[4 * r..4 * r + 4].copy_from_slice(&v[c].to_le_bytes()));
            out
        }
        DType::F64 => {
            let owned;
            let v = match t.as_slice::<f64>() {
                Some(v) => v,
                None => {
                    owned = t.to_vec();
                    &owned
                }
            };
            let mut out = vec![0u8; 8 * v.len()];
            for_each_index(&shape, |r, c| out[8 * r..8 * r + 8].copy_from_slice(&v[c].to_le_bytes()));
            out
        }
    }
}

/// One tensor to write: a flux-rs tensor (reordered to row-major when the writer asks for its
/// bytes, one tensor at a time) or a 64-bit integer scalar (PyTorch's `num_batches_tracked`).
pub(crate) enum Out {
    Float(Tensor),
    I64(i64),
}

impl View for &Out {
    fn dtype(&self) -> Dtype {
        match self {
            Out::Float(t) => st_dtype(t.dtype()),
            Out::I64(_) => Dtype::I64,
        }
    }
    fn shape(&self) -> &[usize] {
        match self {
            Out::Float(t) => t.shape().dims(),
            Out::I64(_) => &[],
        }
    }
    fn data(&self) -> Cow<'_, [u8]> {
        match self {
            Out::Float(t) => Cow::Owned(to_row_major(t)),
            Out::I64(x) => Cow::Owned(x.to_le_bytes().to_vec()),
        }
    }
    fn data_len(&self) -> usize {
        match self {
            Out::Float(t) => t.numel() * t.dtype().size_of(),
            Out::I64(_) => 8,
        }
    }
}

/// Writes `tensors` to `path` (through a temporary file beside it, then renamed: whole or not
/// at all), with `{"format": "pt"}` as the header's metadata.
pub(crate) fn write_file(op: &'static str, path: &Path, tensors: &[(String, Out)]) -> Result<(), LayerError> {
    let meta = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
    ::safetensors::serialize_to_file(tensors.iter().map(|(k, v)| (k.as_str(), v)), Some(meta), path).map_err(|e| LayerError::Weights {
        op,
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// Saves every parameter and buffer of the model to a safetensors file at `path`, under the
/// keys of [`crate::save_state`], each tensor in the shape and element order a PyTorch user
/// sees (`safetensors.torch.load_file(path)["0.weight"]` is the `[out, in]` weight), f32 or
/// f64 as in the model. The file is written whole or not at all.
///
/// ```
/// use flux_layers::{chain, load_safetensors, save_safetensors, identity, relu, Dense};
/// let path = std::env::temp_dir().join(format!("flux_doc_st_{}.safetensors", std::process::id()));
/// let a = chain![Dense::new(3, 2, relu), Dense::new(2, 1, identity)];
/// save_safetensors(&a, &path).unwrap();
/// // 4 bytes per f32 parameter, plus the header
/// assert!(std::fs::metadata(&path).unwrap().len() > 4 * 11);
/// let b = chain![Dense::new(3, 2, relu), Dense::new(2, 1, identity)];
/// load_safetensors(&b, &path).unwrap();
/// assert_eq!(flux_layers::state_to_json(&a), flux_layers::state_to_json(&b));
/// std::fs::remove_file(&path).unwrap();
/// ```
pub fn save_safetensors(model: &(impl Traverse + ?Sized), path: impl AsRef<Path>) -> Result<(), LayerError> {
    let path = path.as_ref();
    let list = unique_entries(model).map_err(|reason| LayerError::Weights { op: "save_safetensors", path: path.display().to_string(), reason })?;
    let mut seen = std::collections::HashSet::new();
    let tensors: Vec<(String, Out)> = list.into_iter().filter(|(k, _)| seen.insert(k.clone())).map(|(k, v)| (k, Out::Float(v.data()))).collect();
    write_file("save_safetensors", path, &tensors)
}

/// Loads a safetensors file into the model, in place: the file must hold exactly the model's
/// keys (those of [`crate::save_state`]), each with the model's dtype (f32 or f64) and shape,
/// elements in row-major order (as [`save_safetensors`] and PyTorch write them). The header
/// and every key, dtype, shape and byte range are checked before anything is written; a
/// missing, unexpected or mismatched key is an error naming it, a truncated, empty, garbage or
/// hostile file an error saying so, and the model is then left unchanged. The tensors are read
/// one at a time, each straight into its parameter.
///
/// ```
/// use flux_layers::{load_safetensors, save_safetensors, identity, Dense};
/// let path = std::env::temp_dir().join(format!("flux_doc_st_bad_{}.safetensors", std::process::id()));
/// save_safetensors(&Dense::new(3, 2, identity), &path).unwrap();
/// let other = Dense::new(4, 2, identity);
/// let before = other.weight().to_vec();
/// let e = load_safetensors(&other, &path).unwrap_err().to_string();
/// assert!(e.contains("\"weight\"") && e.contains("[2, 3]") && e.contains("[2, 4]"), "{e}");
/// assert_eq!(other.weight().to_vec(), before);
/// std::fs::remove_file(&path).unwrap();
/// ```
pub fn load_safetensors(model: &(impl Traverse + ?Sized), path: impl AsRef<Path>) -> Result<(), LayerError> {
    const OP: &str = "load_safetensors";
    let path = path.as_ref();
    let fail = |reason: String| LayerError::Weights { op: OP, path: path.display().to_string(), reason: format!("{reason}; the model was left unchanged") };
    let list = unique_entries(model).map_err(&fail)?;
    let mut file = SafeFile::open(OP, path)?;
    let mut problems = Vec::new();
    let mut ready: Vec<(String, Var)> = Vec::with_capacity(list.len());
    let mut known = std::collections::BTreeSet::new();
    for (key, v) in &list {
        if !known.insert(key.clone()) {
            continue;
        }
        let (want_shape, want_dtype) = (v.shape().to_vec(), v.dtype());
        let Some(info) = file.info(key) else {
            problems.push(format!("missing key \"{key}\" (the model has {want_shape:?} {})", want_dtype.julia_name()));
            continue;
        };
        if !v.is_leaf() {
            problems.push(format!("key \"{key}\": the model's value there is computed, not stored, so it cannot be loaded"));
            continue;
        }
        if float_dtype(info.dtype) != Some(want_dtype) {
            problems.push(format!("key \"{key}\": dtype {:?} in the file, but the model has {:?}", info.dtype, st_dtype(want_dtype)));
            continue;
        }
        if info.shape != want_shape {
            problems.push(format!("key \"{key}\": shape {:?} in the file, but the model has {want_shape:?}", info.shape));
            continue;
        }
        ready.push((key.clone(), v.clone()));
    }
    for key in file.keys() {
        if !known.contains(&key) {
            problems.push(format!("unexpected key \"{key}\" (the model has no parameter or buffer there)"));
        }
    }
    if !problems.is_empty() {
        return Err(fail(problems.join("; ")));
    }
    // Everything is checked: read each tensor and write it. Only an I/O error of the disk (the
    // file changed or failed after its header and size were checked) can stop this part way.
    for (i, (key, v)) in ready.iter().enumerate() {
        let t = file.read(key, v.dtype()).map_err(|e| LayerError::Weights {
            op: OP,
            path: path.display().to_string(),
            reason: format!("{e} (the file changed or failed while loading; {i} of {} tensors had been written)", ready.len()),
        })?;
        v.set_data(t);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_major_round_trip() {
        for shape in [vec![], vec![0], vec![5], vec![2, 3], vec![70, 45], vec![33, 65], vec![2, 3, 4], vec![3, 1, 2, 2]] {
            let n: usize = shape.iter().product();
            let t = Tensor::from_vec((0..n).map(|i| i as f32).collect::<Vec<_>>(), &shape);
            let bytes = to_row_major(&t);
            // element [i, j] of a [2, 3] matrix sits at 3i + j in row-major order
            if shape == [2, 3] {
                let v: Vec<f32> = bytes.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
                assert_eq!(
                    v,
                    vec![
                        t.get(&[0, 0]) as f32,
                        t.get(&[0, 1]) as f32,
                        t.get(&[0, 2]) as f32,
                        t.get(&[1, 0]) as f32,
                        t.get(&[1, 1]) as f32,
                        t.get(&[1, 2]) as f32
                    ]
                );
            }
            let back = from_row_major(&bytes, Dtype::F32, &shape, DType::F32).unwrap();
            assert_eq!(back.shape(), t.shape().dims());
            assert_eq!(back.to_vec(), t.to_vec());
            let wide = from_row_major(&bytes, Dtype::F32, &shape, DType::F64).unwrap();
            assert_eq!(wide.to_vec(), t.to_vec());
        }
    }
}

//! Weights in and out: PyTorch reference files (made by tests/data/make_torch_refs.py) load
//! into the matching flux-rs models and give PyTorch's outputs; safetensors round trips; bad
//! files are errors that leave the model unchanged.

use std::path::PathBuf;

use flux_autograd::{param, Var};
use flux_layers::{
    chain, identity, load_safetensors, load_state, load_torch_state, relu, save_safetensors, save_state, save_torch_state, tanh, testmode, to_f64, BatchNorm,
    Dense, Layer, LayerError, LayerNorm, Traverse, Walker,
};
use flux_tensor::{DType, Tensor};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("flux_torch_test_{}_{name}", std::process::id()))
}

/// The input and PyTorch's output of a reference model, in flux-rs's layout.
struct Io {
    x: Var,
    y: Var,
}

impl Traverse for Io {
    fn visit(&self, w: &mut Walker<'_>) {
        w.param("x", &self.x);
        w.param("y", &self.y);
    }
}

fn io(name: &str, xs: &[usize], ys: &[usize], dtype: DType) -> (Var, Var) {
    let io = Io { x: param(Tensor::zeros(xs).to_dtype(dtype)), y: param(Tensor::zeros(ys).to_dtype(dtype)) };
    load_safetensors(&io, data(&format!("{name}.io.safetensors"))).unwrap();
    (io.x, io.y)
}

fn assert_close(got: &Var, want: &Var, tol: f64) {
    assert_eq!(got.shape(), want.shape());
    for (i, (a, b)) in got.to_vec().iter().zip(want.to_vec()).enumerate() {
        assert!((a - b).abs() <= tol, "element {i}: {a} vs PyTorch's {b}");
    }
}

fn snapshot(m: &(impl Traverse + ?Sized)) -> Vec<(String, Vec<f64>)> {
    flux_layers::state_to_json(m)
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v["data"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap_or(f64::NAN)).collect()))
        .collect()
}

#[test]
fn pytorch_mlp_gives_pytorchs_outputs() {
    let m = chain![Dense::new(4, 8, relu), Dense::new(8, 3, identity)];
    load_torch_state(&m, data("mlp.safetensors")).unwrap();
    let (x, y) = io("mlp", &[4, 5], &[3, 5], DType::F32);
    assert_close(&m.forward(&x), &y, 1e-5);
}

#[test]
fn pytorch_norm_layers_give_pytorchs_outputs() {
    let m = chain![Dense::new(4, 6, identity), BatchNorm::new(6), relu, LayerNorm::new(6), Dense::new(6, 2, identity)];
    load_torch_state(&m, data("norm.safetensors")).unwrap();
    testmode(&m);
    let (x, y) = io("norm", &[4, 7], &[2, 7], DType::F32);
    assert_close(&m.forward(&x), &y, 1e-5);
    // running statistics were loaded (PyTorch's are not the initial 0 and 1)
    let s = snapshot(&m);
    assert!(s.iter().find(|(k, _)| k == "1.running_mean").unwrap().1.iter().all(|&v| v != 0.0));
}

#[test]
fn pytorch_batchnorm2d_gives_pytorchs_outputs() {
    let m = chain![BatchNorm::new(3)];
    load_torch_state(&m, data("bn2d.safetensors")).unwrap();
    testmode(&m);
    let (x, y) = io("bn2d", &[6, 5, 3, 2], &[6, 5, 3, 2], DType::F32);
    assert_close(&m.forward(&x), &y, 1e-5);
}

#[test]
fn pytorch_f64_mlp_loads_into_f64_and_f32_models() {
    let m = chain![Dense::new(3, 4, tanh), Dense::new(4, 2, identity)];
    to_f64(&m);
    load_torch_state(&m, data("mlp64.safetensors")).unwrap();
    let (x, y) = io("mlp64", &[3, 3], &[2, 3], DType::F64);
    assert_close(&m.forward(&x), &y, 1e-12);
    let m32 = chain![Dense::new(3, 4, tanh), Dense::new(4, 2, identity)];
    load_torch_state(&m32, data("mlp64.safetensors")).unwrap();
    assert_eq!(flux_layers::named_params(&m32)[0].1.dtype(), DType::F32);
    assert_close(&m32.forward(&x), &y, 1e-5);
}

#[test]
fn torch_state_round_trips_and_keeps_chain_positions() {
    let m = chain![Dense::new(4, 6, identity), BatchNorm::new(6), relu, LayerNorm::new(6), Dense::new(6, 2, identity)];
    load_torch_state(&m, data("norm.safetensors")).unwrap();
    let path = tmp("rt.safetensors");
    save_torch_state(&m, &path).unwrap();
    let back = chain![Dense::new(4, 6, identity), BatchNorm::new(6), relu, LayerNorm::new(6), Dense::new(6, 2, identity)];
    load_torch_state(&back, &path).unwrap();
    assert_eq!(snapshot(&m), snapshot(&back));
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn torch_mismatches_name_the_key_and_leave_the_model_unchanged() {
    let cases: Vec<(Box<dyn Layer>, &str)> = vec![
        (
            Box::new(chain![Dense::new(4, 9, relu), Dense::new(9, 3, identity)]),
            "key \"0.weight\": shape [8, 4] in the file, but the model's Linear weight is [9, 4]",
        ),
        (Box::new(chain![Dense::new(4, 8, relu)]), "the file has 2 modules with tensors (\"0\", \"2\") but the model has 1 layer with a PyTorch mapping"),
        (Box::new(chain![Dense::new(4, 8, relu), LayerNorm::new(3)]), "key \"2.weight\": shape [3, 8] in the file, but the model's LayerNorm weight is [3]"),
    ];
    for (m, want) in cases {
        let before = snapshot(&m);
        let e = load_torch_state(&m, data("mlp.safetensors")).unwrap_err().to_string();
        assert!(e.contains(want), "{want}\nnot in\n{e}");
        assert!(e.ends_with("the model was left unchanged"), "{e}");
        assert_eq!(snapshot(&m), before);
    }
    // unexpected keys: a BatchNorm file into a LayerNorm
    let m = chain![LayerNorm::new(3)];
    let e = load_torch_state(&m, data("bn2d.safetensors")).unwrap_err().to_string();
    assert!(e.contains("unexpected key \"0.running_mean\""), "{e}");
}

#[test]
fn safetensors_round_trip_is_exact_with_buffers_and_f64() {
    let bn = BatchNorm::new(6);
    bn.running_mean().set_data(Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[6]));
    let m = chain![Dense::new(4, 6, identity), bn, Dense::new(6, 2, identity)];
    let path = tmp("st.safetensors");
    save_safetensors(&m, &path).unwrap();
    // 4 bytes per element plus the header
    let n: usize = 6 * 4 + 6 + 4 * 6 + 6 * 2 + 2;
    let len = std::fs::metadata(&path).unwrap().len() as usize;
    assert!(len >= 4 * n && len < 4 * n + 1024, "{len}");
    let back = chain![Dense::new(4, 6, identity), BatchNorm::new(6), Dense::new(6, 2, identity)];
    load_safetensors(&back, &path).unwrap();
    assert_eq!(snapshot(&m), snapshot(&back));
    // f64 keeps f64; an f32 model refuses it, naming the key
    to_f64(&m);
    save_safetensors(&m, &path).unwrap();
    let e = load_safetensors(&back, &path).unwrap_err().to_string();
    assert!(e.contains("key \"0.weight\": dtype F64 in the file, but the model has F32"), "{e}");
    to_f64(&back);
    load_safetensors(&back, &path).unwrap();
    assert_eq!(snapshot(&m), snapshot(&back));
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn safetensors_are_row_major_like_pytorch() {
    // w[i, j] = 10 i + j: row-major bytes list w[0, 0], w[0, 1], w[0, 2], w[1, 0], ...
    let w = Tensor::from_vec(vec![0.0f32, 10.0, 1.0, 11.0, 2.0, 12.0], &[2, 3]);
    let d = Dense::from_parts(w, Tensor::from_vec(vec![7.0f32, 8.0], &[2]), identity).unwrap();
    let path = tmp("rowmajor.safetensors");
    save_safetensors(&d, &path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    assert_eq!(header["weight"]["shape"], serde_json::json!([2, 3]));
    let (s, e) = (header["weight"]["data_offsets"][0].as_u64().unwrap() as usize, header["weight"]["data_offsets"][1].as_u64().unwrap() as usize);
    let v: Vec<f32> = bytes[8 + n + s..8 + n + e].chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    assert_eq!(v, vec![0.0, 1.0, 2.0, 10.0, 11.0, 12.0]);
    std::fs::remove_file(&path).unwrap();
}

fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let p = tmp(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn with_header(h: &str, data: usize) -> Vec<u8> {
    let mut b = (h.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(h.as_bytes());
    b.extend(std::iter::repeat_n(0u8, data));
    b
}

#[test]
fn bad_files_are_errors_and_leave_the_model_unchanged() {
    let d = Dense::new(3, 2, identity);
    let good = tmp("good.safetensors");
    save_safetensors(&d, &good).unwrap();
    let full = std::fs::read(&good).unwrap();
    let huge = u64::MAX.to_le_bytes().to_vec();
    let mut big_header = (50_000_000u64).to_le_bytes().to_vec();
    big_header.extend_from_slice(b"{}");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", vec![], "too short"),
        ("garbage", b"this is not a safetensors file at all".to_vec(), "header claims"),
        ("huge", huge, "limit"),
        (
            "huge_len",
            {
                let mut h = u64::MAX.to_le_bytes().to_vec();
                h.extend_from_slice(b"{}");
                h
            },
            "limit",
        ),
        ("big_header", big_header, "only 2 follow"),
        ("truncated", full[..full.len() - 3].to_vec(), "truncated"),
        ("not_json", with_header("{not json", 0), "malformed safetensors header"),
        (
            "overlap",
            with_header(r#"{"weight":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"bias":{"dtype":"F32","shape":[2],"data_offsets":[16,24]}}"#, 24),
            "malformed",
        ),
        ("huge_shape", with_header(r#"{"weight":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]}}"#, 8), "malformed"),
        ("bad_dtype", with_header(r#"{"weight":{"dtype":"Q9","shape":[1],"data_offsets":[0,4]}}"#, 4), "malformed"),
        (
            "int_weights",
            with_header(r#"{"bias":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"weight":{"dtype":"I32","shape":[2,3],"data_offsets":[8,32]}}"#, 32),
            "key \"weight\": dtype I32",
        ),
        (
            "other_arch",
            {
                let p = tmp("other.safetensors");
                save_safetensors(&Dense::new(4, 2, identity), &p).unwrap();
                let b = std::fs::read(&p).unwrap();
                std::fs::remove_file(&p).unwrap();
                b
            },
            "shape [2, 4] in the file",
        ),
    ];
    for (name, bytes, want) in cases {
        let before = snapshot(&d);
        let p = write(name, &bytes);
        for e in [load_safetensors(&d, &p).unwrap_err(), load_torch_state(&d, &p).unwrap_err()] {
            let e = e.to_string();
            if name != "int_weights" || e.contains("load_safetensors") {
                assert!(e.contains(want), "{name}: {want} not in {e}");
            }
            assert!(e.ends_with("the model was left unchanged"), "{name}: {e}");
        }
        assert!(matches!(load_safetensors(&d, &p).unwrap_err(), LayerError::Weights { .. }));
        assert_eq!(snapshot(&d), before, "{name}");
        std::fs::remove_file(&p).unwrap();
    }
    let e = load_safetensors(&d, tmp("does_not_exist")).unwrap_err();
    assert!(matches!(e, LayerError::Io { op: "load_safetensors", .. }), "{e}");
    std::fs::remove_file(&good).unwrap();
}

#[test]
fn layers_without_a_mapping_are_named() {
    struct Custom {
        w: Var,
    }
    impl Traverse for Custom {
        fn visit(&self, w: &mut Walker<'_>) {
            w.param("w", &self.w);
        }
    }
    impl Layer for Custom {
        fn try_forward(&self, x: &Var) -> Result<Var, LayerError> {
            Ok(x * &self.w)
        }
    }
    let m = chain![Dense::new(2, 2, identity), Custom { w: param(1.0f32) }];
    let e = save_torch_state(&m, tmp("nomap.safetensors")).unwrap_err().to_string();
    assert!(e.contains("\"1.w\" belongs to no layer with a PyTorch mapping"), "{e}");
    let e = load_torch_state(&m, data("mlp.safetensors")).unwrap_err().to_string();
    assert!(e.contains("\"1.w\""), "{e}");
}

/// Item 5 of issue 14: a 2M-parameter model's file size and save/load times, JSON vs
/// safetensors. `cargo test -p flux-layers --release --test torch_import -- --ignored --nocapture`
#[test]
#[ignore]
fn two_million_parameters_json_vs_safetensors() {
    let make = || chain![Dense::new(784, 1024, relu), Dense::new(1024, 1024, relu), Dense::new(1024, 256, identity)];
    let m = make();
    let n: usize = flux_layers::params(&m).iter().map(|p| p.numel()).sum();
    let (pj, ps) = (tmp("big.json"), tmp("big.safetensors"));
    // the best of 3 runs (the machine is shared)
    let time = |f: &dyn Fn()| {
        (0..3)
            .map(|_| {
                let t = std::time::Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min)
    };
    let back = make();
    let sj = time(&|| save_state(&m, &pj).unwrap());
    let lj = time(&|| load_state(&back, &pj).unwrap());
    let ss = time(&|| save_safetensors(&m, &ps).unwrap());
    let ls = time(&|| load_safetensors(&back, &ps).unwrap());
    let (fj, fs) = (std::fs::metadata(&pj).unwrap().len(), std::fs::metadata(&ps).unwrap().len());
    println!("{n} parameters (f32)");
    println!("JSON:        {:>10} bytes ({:.2} B/param), save {:.3} s, load {:.3} s", fj, fj as f64 / n as f64, sj, lj);
    println!("safetensors: {:>10} bytes ({:.4} B/param), save {:.4} s, load {:.4} s", fs, fs as f64 / n as f64, ss, ls);
    println!("safetensors vs JSON: save {:.0}x, load {:.0}x faster", sj / ss, lj / ls);
    assert!((fs as f64) < 4.0 * n as f64 * 1.01);
    assert_eq!(snapshot(&m[2]), snapshot(&back[2]));
    std::fs::remove_file(&pj).unwrap();
    std::fs::remove_file(&ps).unwrap();
}

#[test]
fn pytorch_conv2d_gives_pytorchs_outputs_as_crosscor_and_as_conv() {
    use flux_layers::{Conv, CrossCor};
    let (x, y) = io("conv2d", &[6, 5, 2, 2], &[4, 2, 3, 2], DType::F32);
    // our kernels are [kw, kh, cin, cout]: PyTorch's (3, 2) is our [2, 3]
    let cc = chain![CrossCor::new(&[2, 3], 2, 4, relu), CrossCor::new(&[2, 2], 4, 3, identity)];
    load_torch_state(&cc, data("conv2d.safetensors")).unwrap();
    assert_close(&cc.forward(&x), &y, 1e-5);
    // Conv convolves: the mapping flips the kernel, so the outputs are PyTorch's too
    let cv = chain![Conv::new(&[2, 3], 2, 4, relu), Conv::new(&[2, 2], 4, 3, identity)];
    load_torch_state(&cv, data("conv2d.safetensors")).unwrap();
    assert_close(&cv.forward(&x), &y, 1e-5);
    // and back: Conv's export flips again, so the saved kernels are PyTorch's
    let path = tmp("conv.safetensors");
    save_torch_state(&cv, &path).unwrap();
    let again = chain![CrossCor::new(&[2, 3], 2, 4, relu), CrossCor::new(&[2, 2], 4, 3, identity)];
    load_torch_state(&again, &path).unwrap();
    assert_eq!(snapshot(&again), snapshot(&cc));
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn pytorch_conv1d_and_embedding_give_pytorchs_outputs() {
    use flux_layers::{CrossCor, Embedding};
    let m = chain![CrossCor::new(&[4], 3, 2, identity)];
    load_torch_state(&m, data("conv1d.safetensors")).unwrap();
    let (x, y) = io("conv1d", &[7, 3, 2], &[4, 2, 2], DType::F32);
    assert_close(&m.forward(&x), &y, 1e-5);

    let e = Embedding::new(10, 4);
    load_torch_state(&e, data("embedding.safetensors")).unwrap();
    let io = Io { x: param(Tensor::zeros(&[4]).to_f64()), y: param(Tensor::zeros(&[4, 4]).to_f32()) };
    load_safetensors(&io, data("embedding.io.safetensors")).unwrap();
    let tokens: Vec<usize> = io.x.to_vec().iter().map(|&t| t as usize).collect();
    assert_eq!(tokens, vec![3, 1, 7, 0]);
    assert_close(&e.lookup(&tokens), &io.y, 0.0);
}

#[test]
fn pytorch_convtranspose2d_gives_pytorchs_outputs() {
    use flux_layers::ConvTranspose;
    // PyTorch [N=2, C=2, H=4, W=5] -> [2, 3, (4-1)*2+3 = 9, (5-1)*2+2 = 10]; ours reversed
    let m = chain![ConvTranspose::new(&[2, 3], 2, 3, identity).stride(&[2])];
    load_torch_state(&m, data("convtranspose2d.safetensors")).unwrap();
    let (x, y) = io("convtranspose2d", &[5, 4, 2, 2], &[10, 9, 3, 2], DType::F32);
    assert_close(&m.forward(&x), &y, 1e-5);
}

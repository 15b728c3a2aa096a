//! PyTorch's LSTM, GRU and RNN (one layer, unidirectional) load into flux-rs's and give
//! PyTorch's outputs: the reference file is made by
//! crates/layers/tests/data/make_torch_refs.py (PyTorch's default init has nonzero `bias_hh`,
//! so the LSTM and RNN biases must be summed).

use std::path::PathBuf;

use flux_autograd::{param, Var};
use flux_layers::{chain, identity, load_safetensors, load_torch_state, save_torch_state, Dense, Layer, Traverse, Walker};
use flux_recurrent::{GRU, LSTM, RNN};
use flux_tensor::Tensor;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../layers/tests/data").join(name)
}

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

fn model() -> impl Layer {
    chain![Dense::new(3, 4, identity), LSTM::new(4, 5), GRU::new(5, 4), RNN::new(4, 3)]
}

fn run(m: &impl Layer) -> Vec<f64> {
    // x: [3, N = 2, L = 6] in flux-rs's layout; one step is [3, 2]
    let io = Io { x: param(Tensor::zeros(&[3, 2, 6]).to_f32()), y: param(Tensor::zeros(&[3, 2, 6]).to_f32()) };
    load_safetensors(&io, data("rnns.io.safetensors")).unwrap();
    flux_layers::reset(m);
    let mut got = Vec::new();
    for t in 0..6 {
        let xt = io.x.slice(2, t..t + 1).reshape(&[3, 2]);
        got.push(m.forward(&xt).to_vec());
    }
    let want = io.y.to_vec();
    let got: Vec<f64> = got.concat();
    assert_eq!(got.len(), want.len());
    for (i, (a, b)) in got.iter().zip(&want).enumerate() {
        assert!((a - b).abs() <= 1e-5, "element {i}: {a} vs PyTorch's {b}");
    }
    got
}

#[test]
fn pytorch_lstm_gru_rnn_give_pytorchs_outputs() {
    let m = model();
    load_torch_state(&m, data("rnns.safetensors")).unwrap();
    let first = run(&m);
    // saved the other way (one bias in bias_ih_l0, zeros in bias_hh_l0) and loaded again
    let path = std::env::temp_dir().join(format!("flux_rnn_torch_{}.safetensors", std::process::id()));
    save_torch_state(&m, &path).unwrap();
    let back = model();
    load_torch_state(&back, &path).unwrap();
    assert_eq!(run(&back), first);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_gru_file_does_not_load_into_an_lstm() {
    let m = chain![Dense::new(3, 4, identity), GRU::new(4, 5), GRU::new(5, 4), RNN::new(4, 3)];
    let before = flux_layers::state_to_json(&m);
    let e = load_torch_state(&m, data("rnns.safetensors")).unwrap_err().to_string();
    assert!(e.contains("key \"1.weight_ih_l0\": shape [20, 4] in the file, but the model's GRU weight_ih_l0 is [15, 4]"), "{e}");
    assert_eq!(flux_layers::state_to_json(&m), before);
}

//! SPEC §7.2 (the layer tree) as a user of the facade writes it: only `flux` is a dependency,
//! so the derive's generated code must find everything through `flux::layers`.

use std::sync::Arc;

use flux::prelude::*;

#[derive(Layer)]
struct Residual {
    inner: Dense,
}

impl Residual {
    fn forward(&self, x: &Var) -> Var {
        x + &self.inner.forward(x)
    }
}

#[test]
fn your_own_layer_in_two_lines() {
    let m = chain![Residual { inner: Dense::new(4, 4, relu) }, Dense::new(4, 1, identity)];
    assert_eq!(params(&m).len(), 4);
    let path = std::env::temp_dir().join(format!("flux-layer-tree-{}.json", std::process::id()));
    save_state(&m, &path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    for key in ["0.inner.weight", "0.inner.bias", "1.weight", "1.bias"] {
        assert!(text.contains(&format!("\"{key}\"")), "{key} missing");
    }
    assert_eq!(m.to_string(), "Chain(Residual(Dense(4 => 4, relu)), Dense(4 => 1))");
}

#[test]
fn deepcopy_a_target_network() {
    let online = chain![Dense::new(3, 8, relu), LSTM::new(8, 4), Dense::new(4, 2, identity)];
    let target: Chain = deepcopy(&online);
    let x = Var::from(Tensor::rand(&[3, 5]).to_f32());
    reset(&online);
    reset(&target);
    assert_eq!(online.forward(&x).to_vec(), target.forward(&x).to_vec());
    let ps = params(&online);
    let mut opt = Descent::new(0.5);
    reset(&online);
    let gs = gradient_params(|| online.forward(&x).sum(), &ps);
    opt.update(&ps, &gs);
    reset(&online);
    reset(&target);
    let (a, b) = (online.forward(&x).to_vec(), target.forward(&x).to_vec());
    assert_ne!(a, b);
    let copy_before = b;
    reset(&target);
    assert_eq!(target.forward(&x).to_vec(), copy_before, "training the original leaves the copy alone");
}

#[test]
fn a_layer_computes_in_its_parameters_type() {
    let m = chain![Dense::new(512, 512, relu), Dense::new(512, 10, identity)];
    let x = Var::from(Tensor::rand(&[512, 8])); // f64
    assert_eq!(m.forward(&x).dtype(), DType::F32);
    let g = gradient(|x: &Var| m.forward(x).sum(), &x);
    assert_eq!(g.dtype(), DType::F64);
}

#[test]
fn recurrent_state_belongs_to_the_thread() {
    let m = Arc::new(chain![LSTM::new(2, 6), Dense::new(6, 1, identity)]);
    let seqs: Vec<Vec<Var>> = (0..4).map(|i| (0..8).map(|t| Var::from(Tensor::from_vec(vec![i as f32, t as f32], &[2]))).collect()).collect();
    let serial: Vec<Vec<f64>> = seqs
        .iter()
        .map(|s| {
            reset(&*m);
            s.iter().flat_map(|x| m.forward(x).to_vec()).collect()
        })
        .collect();
    let handles: Vec<_> = seqs
        .into_iter()
        .map(|s| {
            let m = m.clone();
            std::thread::spawn(move || s.iter().flat_map(|x| m.forward(x).to_vec()).collect::<Vec<f64>>())
        })
        .collect();
    let threaded: Vec<Vec<f64>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(threaded, serial);
}

#[test]
fn try_forward_never_panics_and_names_the_layer() {
    let lstm = LSTM::new(2, 3);
    let e = lstm.try_forward(&Var::from(Tensor::zeros(&[5, 4]))).unwrap_err().to_string();
    assert!(e.contains("Recur(LSTMCell(2 => 3))") && e.contains("[5, 4]"), "{e}");
    let c = chain![Dense::new(2, 3, relu), GRU::new(4, 2)];
    let e = c.try_forward(&Var::from(Tensor::zeros(&[2, 7]))).unwrap_err().to_string();
    assert!(e.contains("Recur(GRUCell(4 => 2))") && e.contains("[3, 7]"), "{e}");
}

#[test]
fn explicit_state() {
    let rnn = RNN::new(3, 2);
    let s0 = rnn.initial_state(4);
    assert_eq!(s0.shape(), &[2, 4]);
    let (y, s1) = rnn.forward_state(&Var::from(Tensor::rand(&[3, 4])), &s0);
    assert_eq!(y.to_vec(), s1.to_vec());
    assert_eq!(rnn.state().to_vec(), vec![0.0; 2]);
}

/// `flux::Layer` is the trait and the derive, as serde's `Serialize`.
#[test]
fn derive_by_its_facade_path() {
    #[derive(flux::Layer)]
    struct Scaled {
        inner: Dense,
        #[layer(skip)]
        by: f64,
    }
    impl Scaled {
        fn forward(&self, x: &Var) -> Var {
            self.inner.forward(x) * self.by
        }
    }
    let s = Scaled { inner: Dense::new(2, 2, identity), by: 2.0 };
    let as_layer: &dyn flux::Layer = &s;
    assert_eq!(as_layer.forward(&Var::from(Tensor::zeros(&[2]))).to_vec(), vec![0.0, 0.0]);
    assert_eq!(flux::layers::params(&s).len(), 2);
}

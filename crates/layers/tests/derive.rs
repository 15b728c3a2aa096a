//! `#[derive(Layer)]` and `#[derive(Traverse)]` (SPEC §7.2): paths, printing, copies,
//! buffers, skipped fields, generics, and a user layer that reports errors.

use flux_autograd::{gradient, gradient_params, param, update, Var};
use flux_layers::{
    chain, deepcopy, identity, load_state_json, named_params, params, relu, state_to_json, to_f64, BatchNorm, Chain, DeepCopy, Dense, Layer, LayerError,
    Traverse,
};
use flux_tensor::{DType, Tensor};

#[derive(Layer)]
struct Residual {
    inner: Dense,
}

impl Residual {
    fn forward(&self, x: &Var) -> Var {
        x + &self.inner.forward(x)
    }
}

fn names(m: &(impl Traverse + ?Sized)) -> Vec<String> {
    named_params(m).into_iter().map(|(n, _)| n).collect()
}

#[test]
fn spec_residual_example() {
    let m = chain![Residual { inner: Dense::new(4, 4, relu) }, Dense::new(4, 1, identity)];
    assert_eq!(params(&m).len(), 4);
    assert_eq!(names(&m), ["0.inner.weight", "0.inner.bias", "1.weight", "1.bias"]);
    let state = state_to_json(&m);
    assert!(state.get("0.inner.weight").is_some());
    assert_eq!(m.to_string(), "Chain(Residual(Dense(4 => 4, relu)), Dense(4 => 1))");
    let y = m.forward(&Var::from(Tensor::rand(&[4, 3]).to_f32()));
    assert_eq!(y.shape(), &[1, 3]);
}

/// A gated unit with a learned scale, a buffer, a skipped setting, a `Vec`, an `Option` and a
/// `Box` of layers.
#[derive(Layer)]
struct Gated {
    blocks: Vec<Dense>,
    head: Option<Dense>,
    gate: Box<dyn Layer>,
    scale: Var,
    #[layer(buffer)]
    calls: Var,
    #[layer(skip)]
    name: String,
}

impl Gated {
    fn forward(&self, x: &Var) -> Var {
        let mut h = x.clone();
        for b in &self.blocks {
            h = b.forward(&h);
        }
        let h = &h * &self.gate.forward(&h) * &self.scale;
        match &self.head {
            Some(d) => d.forward(&h),
            None => h,
        }
    }
}

fn gated() -> Gated {
    Gated {
        blocks: vec![Dense::new(3, 3, relu), Dense::new(3, 3, relu)],
        head: Some(Dense::new(3, 2, identity)),
        gate: Box::new(Dense::new(3, 3, flux_layers::sigmoid)),
        scale: param(Tensor::ones(&[1]).to_f32()),
        calls: Var::from(Tensor::zeros(&[1])),
        name: "g".into(),
    }
}

#[test]
fn vec_option_box_var_buffer_skip() {
    let g = gated();
    assert_eq!(
        names(&g),
        ["blocks.0.weight", "blocks.0.bias", "blocks.1.weight", "blocks.1.bias", "head.weight", "head.bias", "gate.weight", "gate.bias", "scale"]
    );
    let state = state_to_json(&g);
    assert!(state.get("calls").is_some(), "a buffer is saved");
    assert!(state.get("name").is_none());
    assert_eq!(g.to_string(), "Gated([Dense(3 => 3, relu), Dense(3 => 3, relu)], Dense(3 => 2), Dense(3 => 3, σ), 1-element Vector{Float32})");
    let gs = gradient_params(|| g.forward(&Var::from(Tensor::rand(&[3, 2]).to_f32())).sum(), &params(&g));
    assert_eq!(gs.len(), 9);
    let none = Gated { head: None, ..gated() };
    assert!(none.to_string().contains("nothing"));
    assert_eq!(none.forward(&Var::from(Tensor::rand(&[3]))).shape(), &[3]);
    assert_eq!(g.name, "g");
}

#[test]
fn deepcopy_is_independent() {
    let g = gated();
    let c = deepcopy(&g);
    assert_eq!(c.to_string(), g.to_string());
    assert_eq!(c.name, "g");
    let (pg, pc) = (params(&g), params(&c));
    for (a, b) in pg.iter().zip(pc.iter()) {
        assert_eq!(a.to_vec(), b.to_vec());
        assert_ne!(a.id(), b.id());
    }
    // training the original leaves the copy alone
    let x = Var::from(Tensor::rand(&[3, 4]).to_f32());
    let before: Vec<Vec<f64>> = pc.iter().map(|p| p.to_vec()).collect();
    for _ in 0..3 {
        let gs = gradient_params(|| g.forward(&x).powi(2).sum(), &pg);
        for p in pg.iter() {
            update(p, &(-0.1 * &gs[p]));
        }
    }
    let after: Vec<Vec<f64>> = pc.iter().map(|p| p.to_vec()).collect();
    assert_eq!(before, after);
    assert_ne!(pg.iter().next().unwrap().to_vec(), pc.iter().next().unwrap().to_vec());
    // buffers are copied too
    g.calls.set_data(Tensor::ones(&[1]));
    assert_eq!(c.calls.to_vec(), vec![0.0]);
}

#[test]
fn deepcopy_of_a_chain_with_functions_and_batchnorm() {
    let m: Chain = chain![Dense::new(2, 3, relu), |x: &Var| x * 2.0, BatchNorm::new(3), flux_layers::softmax];
    let c = deepcopy(&m);
    assert_eq!(c.to_string(), m.to_string());
    let x = Var::from(Tensor::rand(&[2, 5]).to_f32());
    flux_layers::testmode(&m);
    flux_layers::testmode(&c);
    assert_eq!(m.forward(&x).to_vec(), c.forward(&x).to_vec());
    let p0 = params(&m).iter().next().unwrap().clone();
    update(&p0, &Var::from(Tensor::ones(&p0.shape()).to_f32()));
    assert_ne!(m.forward(&x).to_vec(), c.forward(&x).to_vec());
}

#[test]
fn tied_weights_stay_tied_in_the_copy() {
    #[derive(Layer)]
    struct Tied {
        a: Var,
        b: Var,
    }
    impl Tied {
        fn forward(&self, x: &Var) -> Var {
            x * &self.a + &self.b
        }
    }
    let w = param(1.0);
    let t = Tied { a: w.clone(), b: w };
    let c = deepcopy(&t);
    assert_eq!(c.a.id(), c.b.id());
    assert_ne!(c.a.id(), t.a.id());
}

/// A tuple struct with a generic child.
#[derive(Layer)]
struct Twice<L>(L, L);

impl<L: Layer> Twice<L> {
    fn forward(&self, x: &Var) -> Var {
        self.1.forward(&self.0.forward(x))
    }
}

#[test]
fn tuple_and_generic() {
    let t = Twice(Dense::new(2, 2, relu), Dense::new(2, 2, identity));
    assert_eq!(names(&t), ["0.weight", "0.bias", "1.weight", "1.bias"]);
    assert_eq!(t.to_string(), "Twice(Dense(2 => 2, relu), Dense(2 => 2))");
    let f = Twice(relu, relu);
    assert_eq!(f.forward(&Var::scalar(-1.0)).item(), 0.0);
    assert!(params(&f).is_empty());
    let c = deepcopy(&t);
    assert_eq!(params(&c).len(), 4);
}

/// A user layer that reports bad input as an error, with its own printing.
#[derive(Layer)]
#[layer(try_forward, fmt)]
struct Checked {
    #[layer(rename = "W")]
    w: Var,
}

impl Checked {
    fn try_forward(&self, x: &Var) -> Result<Var, LayerError> {
        if x.shape().first() != Some(&self.w.shape()[1]) {
            return Err(LayerError::InputShape { layer: self.to_string(), got: x.shape().to_vec(), expected: format!("[{}, N]", self.w.shape()[1]) });
        }
        Ok(self.w.matmul(x))
    }
    fn fmt_layer(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Checked({})", self.w.shape()[1])
    }
}

#[test]
fn user_try_forward_and_fmt() {
    let c = Checked { w: param(Tensor::ones(&[2, 3])) };
    assert_eq!(names(&c), ["W"]);
    assert_eq!(c.to_string(), "Checked(3)");
    let e = Layer::try_forward(&c, &Var::from(Tensor::ones(&[4]))).unwrap_err().to_string();
    assert!(e.contains("Checked(3)") && e.contains("[4]"), "{e}");
    let m = chain![Checked { w: param(Tensor::ones(&[2, 3])) }, relu];
    assert!(m.try_forward(&Var::from(Tensor::ones(&[4]))).is_err());
    assert_eq!(m.forward(&Var::from(Tensor::ones(&[3]))).to_vec(), vec![3.0, 3.0]);
}

#[test]
fn state_round_trip_through_derived_paths() {
    let a = gated();
    let b = gated();
    load_state_json(&b, &state_to_json(&a)).unwrap();
    let x = Var::from(Tensor::rand(&[3, 2]).to_f32());
    assert_eq!(a.forward(&x).to_vec(), b.forward(&x).to_vec());
}

/// Flux converts a layer's input to the layer's element type: a f64 input to a f32 model runs
/// in f32, and its gradient comes back f64.
#[test]
fn input_converted_to_the_parameters_type() {
    let d = Dense::new(3, 2, relu);
    let x = Var::from(Tensor::rand(&[3, 4])); // f64
    assert_eq!(x.dtype(), DType::F64);
    assert_eq!(d.forward(&x).dtype(), DType::F32);
    let g = gradient(|x: &Var| d.forward(x).sum(), &x);
    assert_eq!(g.dtype(), DType::F64);
    assert_eq!(g.shape(), &[3, 4]);
    let r = Residual { inner: Dense::new(3, 3, relu) };
    to_f64(&r);
    assert_eq!(r.forward(&Var::from(Tensor::rand(&[3]).to_f32())).dtype(), DType::F64, "x + f64 layer promotes");
    // raw Var ops keep Julia's promotion
    let y = Var::from(Tensor::ones(&[2]).to_f32()) + Var::from(Tensor::ones(&[2]));
    assert_eq!(y.dtype(), DType::F64);
}

#[test]
fn derive_traverse_for_a_non_layer_container() {
    #[derive(Traverse)]
    struct Moments {
        m: Vec<Var>,
        #[layer(buffer)]
        step: Var,
    }
    let s = Moments { m: vec![param(1.0), param(2.0)], step: Var::scalar(0.0) };
    assert_eq!(names(&s), ["m.0", "m.1"]);
    let c = s.deepcopy();
    assert_eq!(c.m[1].item(), 2.0);
    assert!(state_to_json(&s).get("step").is_some());
}

#[test]
fn hand_written_layer_without_copy_panics_clearly() {
    struct Raw(Var);
    impl Traverse for Raw {
        fn visit(&self, w: &mut flux_layers::Walker<'_>) {
            w.param("w", &self.0);
        }
    }
    impl Layer for Raw {
        fn try_forward(&self, x: &Var) -> Result<Var, LayerError> {
            Ok(x * &self.0)
        }
    }
    let m = chain![Raw(param(1.0))];
    let e = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| deepcopy(&m))).err().unwrap();
    let msg = e.downcast_ref::<String>().unwrap();
    assert!(msg.contains("deepcopy") && msg.contains("Raw"), "{msg}");
}

//! The seed notebook's "Building Layers", "Stacking It Up" and "Regularisation" cells, run as
//! written in SPEC §3, asserting shapes and invariants.

use std::fmt;

use flux_autograd::{gradient_params, param, Var};
use flux_layers::{
    activations, chain, compose, crossentropy, identity, norm, params, relu, sigmoid, softmax, Chain, Dense, Layer, LayerError, Show, Traverse, Walker,
};
use flux_tensor::Tensor;

fn sums_to_one(y: &Var) {
    let s = y.sum().item();
    assert!((s - 1.0).abs() < 1e-5, "softmax output sums to {s}");
    assert!(y.to_vec().iter().all(|&p| (0.0..=1.0).contains(&p)));
}

/// In [15]-[16]: hand-written layers from params, and a function returning a layer closure.
#[test]
fn hand_written_layers() {
    flux_tensor::seed(15);
    let w1 = param(Tensor::rand(&[3, 5]));
    let b1 = param(Tensor::rand(&[3]));
    let layer1 = |x: &Var| w1.matmul(x) + &b1;
    let w2 = param(Tensor::rand(&[2, 3]));
    let b2 = param(Tensor::rand(&[2]));
    let layer2 = |x: &Var| w2.matmul(x) + &b2;
    let model = |x: &Var| layer2(&sigmoid(&layer1(x)));
    let y = model(&Var::from(Tensor::rand(&[5])));
    assert_eq!(y.shape(), &[2]);
    assert!(y.is_tracked());
    assert!(format!("{y}").starts_with("Tracked"));

    fn linear(input: usize, output: usize) -> impl Fn(&Var) -> Var + Send + Sync {
        let w = param(Tensor::randn(&[output, input]));
        let b = param(Tensor::randn(&[output]));
        move |x: &Var| w.matmul(x) + &b
    }
    let linear1 = linear(5, 3);
    let linear2 = linear(3, 2);
    let model = |x: &Var| linear2(&sigmoid(&linear1(x)));
    assert_eq!(model(&Var::from(Tensor::rand(&[5]))).shape(), &[2]);
    // a closure that captures is a layer too
    let as_chain = chain![linear(5, 3), sigmoid, linear(3, 2)];
    assert_eq!(as_chain.forward(&Var::from(Tensor::rand(&[5, 4]))).shape(), &[2, 4]);
    assert_eq!(as_chain.to_string(), "Chain(λ, σ, λ)");
}

/// The seed's `Affine` struct, made a layer by hand: `Traverse` says what it holds, `Layer`
/// how it computes (the derived form is in tests/derive.rs).
struct Affine {
    w: Var,
    b: Var,
}

impl Affine {
    fn new(input: usize, output: usize) -> Affine {
        Affine { w: param(Tensor::randn(&[output, input])), b: param(Tensor::randn(&[output])) }
    }
}

impl Traverse for Affine {
    fn visit(&self, w: &mut Walker<'_>) {
        w.param("W", &self.w);
        w.param("b", &self.b);
    }
}

impl Layer for Affine {
    fn try_forward(&self, x: &Var) -> Result<Var, LayerError> {
        Ok(self.w.try_matmul(x)? + &self.b)
    }
    fn fmt_layer(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Affine({} => {})", self.w.shape()[1], self.w.shape()[0])
    }
}

/// In [17]: `a = Affine(10, 5); a(rand(10))`, and the struct inside a chain.
#[test]
fn affine_user_struct() {
    let a = Affine::new(10, 5);
    let y = a.forward(&Var::from(Tensor::rand(&[10])));
    assert_eq!(y.shape(), &[5]);
    assert_eq!(params(&a).len(), 2);
    assert_eq!(Show(&a).to_string(), "Affine(10 => 5)");
    let c = chain![Affine::new(10, 5), sigmoid, Dense::new(5, 2, identity), softmax];
    assert_eq!(c.to_string(), "Chain(Affine(10 => 5), σ, Dense(5 => 2), softmax)");
    let names: Vec<String> = flux_layers::named_params(&c).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, vec!["0.W", "0.b", "2.weight", "2.bias"]);
    sums_to_one(&c.forward(&Var::from(Tensor::rand(&[10]))));
}

/// In [18]: `layers = [Dense(10, 5, σ), Dense(5, 2), softmax]; foldl(...)`.
#[test]
fn foldl_over_a_vector_of_layers() {
    let layers: Vec<Box<dyn Layer>> = vec![Box::new(Dense::new(10, 5, sigmoid)), Box::new(Dense::new(5, 2, identity)), Box::new(softmax)];
    let x = Var::from(Tensor::rand(&[10]));
    let y = layers.iter().fold(x.clone(), |h, m| m.forward(&h));
    assert_eq!(y.shape(), &[2]);
    assert_eq!(y.dtype(), flux_tensor::DType::F32); // rand is f64; Dense converts its input to its f32 weights, as Flux does
    sums_to_one(&y);
    assert_eq!(layers.forward(&x).to_vec(), y.to_vec());
    assert_eq!(params(&layers).len(), 4);
}

/// In [19]: `model2 = Chain(Dense(10, 5, σ), Dense(5, 2), softmax)`.
#[test]
fn chain_of_dense_and_softmax() {
    let model = chain![Dense::new(10, 5, sigmoid), Dense::new(5, 2, identity), softmax];
    assert_eq!(model.to_string(), "Chain(Dense(10 => 5, σ), Dense(5 => 2), softmax)");
    assert_eq!(model[0].to_string_layer(), "Dense(10 => 5, σ)");
    let y = model.forward(&Var::from(Tensor::rand(&[10])));
    assert_eq!(y.shape(), &[2]);
    sums_to_one(&y);
    // a batch: every column sums to one
    let yb = model.forward(&Var::from(Tensor::rand(&[10, 7])));
    assert_eq!(yb.shape(), &[2, 7]);
    for s in yb.data().sum_dims(&[0]).to_vec() {
        assert!((s - 1.0).abs() < 1e-5);
    }
}

trait ToStringLayer {
    fn to_string_layer(&self) -> String;
}
impl<L: Layer + ?Sized> ToStringLayer for L {
    fn to_string_layer(&self) -> String {
        Show(self).to_string()
    }
}

/// In [20]: `m3 = Dense(5, 2) ∘ Dense(10, 5, σ)`: the same as the chain of the same layers.
#[test]
fn compose_is_function_composition() {
    let (w1, w2) = (Tensor::randn(&[5, 10]).to_f32(), Tensor::randn(&[2, 5]).to_f32());
    let (b1, b2) = (Tensor::randn(&[5]).to_f32(), Tensor::randn(&[2]).to_f32());
    let m3 = compose(Dense::from_parts(w2.clone(), b2.clone(), identity).unwrap(), Dense::from_parts(w1.clone(), b1.clone(), sigmoid).unwrap());
    let c = chain![Dense::from_parts(w1, b1, sigmoid).unwrap(), Dense::from_parts(w2, b2, identity).unwrap()];
    let x = Var::from(Tensor::rand(&[10]));
    assert_eq!(m3.forward(&x).shape(), &[2]);
    assert_eq!(m3.forward(&x).to_vec(), c.forward(&x).to_vec());
    assert_eq!(m3.to_string(), "Dense(5 => 2) ∘ Dense(10 => 5, σ)");
    assert_eq!(params(&m3).len(), 4);
}

/// In [21]: `m4 = Chain(x -> x^2, x -> x+1); m4(5) == 26`.
#[test]
fn functions_are_layers() {
    let m4 = chain![|x: &Var| x.powi(2), |x: &Var| x + 1.0];
    assert_eq!(m4.forward(&Var::scalar(5.0)).item(), 26.0);
    assert_eq!(params(&m4).len(), 0);
}

/// In [38]-[42]: m6 with crossentropy(softmax(m6(x)), y), the norm penalty, sum(norm, params).
#[test]
fn regularisation_of_m6() {
    let m6 = Dense::new(10, 5, identity);
    let loss = |x: &Var, y: &Var| crossentropy(&softmax(&m6.forward(x)), y);
    let penalty = || norm(m6.weight()) + norm(m6.bias());
    let reg_loss = |x: &Var, y: &Var| loss(x, y) + penalty();
    let total: Var = params(&m6).iter().map(norm).sum();
    // the bias starts at zero, so the penalty is the weight's norm alone
    assert!((total.item() - m6.weight().data().powi(2).sum().item().sqrt()).abs() < 1e-6);
    assert!(total.is_tracked());
    assert_eq!(total.rank(), 0);
    assert!((total.item() - penalty().item()).abs() < 1e-6);

    let x = Var::from(Tensor::rand(&[10]));
    let y = Var::from(flux_layers::onehot(2, 5));
    let l = loss(&x, &y);
    assert!(l.item() > 0.0 && l.item().is_finite());
    let ps = params(&m6);
    let gs = gradient_params(|| reg_loss(&x, &y), &ps);
    for p in ps.iter() {
        assert!(gs[p].to_vec().iter().all(|g| g.is_finite()), "gradient of a zero bias through norm must be finite");
        assert_eq!(gs[p].shape(), p.shape());
    }
    // the gradient of the penalty alone at the zero bias is exactly zero
    let gb = gradient_params(penalty, &ps);
    assert_eq!(gb[m6.bias()].to_vec(), vec![0.0; 5]);
    // and the crossentropy gradient w.r.t. the bias is softmax - y for one sample
    let gl = gradient_params(|| loss(&x, &y), &ps);
    let p = softmax(&m6.forward(&x)).to_vec();
    let expected: Vec<f64> = p.iter().zip(y.to_vec()).map(|(p, y)| p - y).collect();
    for (a, b) in gl[m6.bias()].to_vec().iter().zip(expected) {
        assert!((a - b).abs() < 1e-5);
    }
}

/// The larger MLP: `m7 = Chain(Dense(28^2, 128, relu), Dense(128, 32, relu), Dense(32, 10), softmax)`,
/// `loss(x, y) = crossentropy(m7(x), y) + sum(norm, params(m7))` at `rand(28^2), rand(10)`.
#[test]
fn mlp_m7() {
    let m7 = chain![Dense::new(28 * 28, 128, relu), Dense::new(128, 32, relu), Dense::new(32, 10, identity), softmax];
    assert_eq!(m7.to_string(), "Chain(Dense(784 => 128, relu), Dense(128 => 32, relu), Dense(32 => 10), softmax)");
    let loss = |x: &Var, y: &Var| crossentropy(&m7.forward(x), y) + params(&m7).iter().map(norm).sum::<Var>();
    let (x, y) = (Var::from(Tensor::rand(&[28 * 28])), Var::from(Tensor::rand(&[10])));
    let l = loss(&x, &y);
    assert!(l.item().is_finite() && l.item() > 0.0);
    assert_eq!(l.rank(), 0);
    sums_to_one(&m7.forward(&x));
    let ps = params(&m7);
    assert_eq!(ps.len(), 6);
    let gs = gradient_params(|| loss(&x, &y), &ps);
    assert!(ps.iter().all(|p| gs[p].to_vec().iter().all(|g| g.is_finite())));
    // a batch of 16 works the same way
    let xb = Var::from(Tensor::rand(&[28 * 28, 16]));
    let yb = Var::from(flux_layers::onehotbatch(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5], 10));
    assert_eq!(m7.forward(&xb).shape(), &[10, 16]);
    assert!(crossentropy(&m7.forward(&xb), &yb).item().is_finite());
}

/// `c = Chain(Dense(10,5,σ), Dense(5,2), softmax); activations(c, rand(10))`.
#[test]
fn activations_of_a_chain() {
    let c = chain![Dense::new(10, 5, sigmoid), Dense::new(5, 2, identity), softmax];
    let x = Var::from(Tensor::rand(&[10]));
    let acts = activations(&c, &x);
    assert_eq!(acts.len(), 3);
    assert_eq!(acts[0].shape(), &[5]);
    assert!(acts[0].to_vec().iter().all(|&v| v > 0.0 && v < 1.0)); // σ
    assert_eq!(acts[1].shape(), &[2]);
    sums_to_one(&acts[2]);
    assert_eq!(acts[2].to_vec(), c.forward(&x).to_vec());
    // per-layer regularisation through them is differentiable
    let ps = params(&c);
    let gs = gradient_params(|| activations(&c, &x).iter().map(norm).sum(), &ps);
    assert!(ps.iter().all(|p| gs[p].to_vec().iter().all(|g| g.is_finite())));
}

/// Wrong input shapes: an error naming the layer and both shapes, from every layer and through
/// a chain.
#[test]
fn wrong_input_shapes_name_the_layer_and_both_shapes() {
    let bad = Var::from(Tensor::zeros(&[7, 3]));
    let cases: Vec<(Box<dyn Layer>, &str, &str)> = vec![
        (Box::new(Dense::new(10, 5, sigmoid)), "Dense(10 => 5, σ)", "[10]"),
        (Box::new(flux_layers::LayerNorm::new(4)), "LayerNorm(4)", "[4]"),
        (Box::new(flux_layers::BatchNorm::new(4)), "BatchNorm(4)", "[4, N]"),
    ];
    for (layer, name, expected) in cases {
        let e = layer.try_forward(&bad).unwrap_err();
        assert!(matches!(e, LayerError::InputShape { .. }));
        let msg = e.to_string();
        assert!(msg.contains(name) && msg.contains("[7, 3]") && msg.contains(expected), "{msg}");
        let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| layer.forward(&bad))).unwrap_err();
        let text = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert_eq!(text, msg);
    }
    // inside a chain, the failing layer is named
    let c: Chain = chain![Dense::new(7, 5, relu), Dense::new(4, 2, identity)];
    let msg = c.try_forward(&bad).unwrap_err().to_string();
    assert!(msg.contains("Dense(4 => 2)") && msg.contains("[5, 3]"), "{msg}");
}

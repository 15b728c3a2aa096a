//! Dropout, LayerNorm and BatchNorm inside models: Display, train/test mode over a whole model
//! (automatic inside gradient calls), dtype conversion, and parameters vs buffers.

use flux_autograd::{gradient_params, Var};
use flux_layers::{chain, identity, params, relu, testmode, to_f64, trainmode, BatchNorm, Dense, Dropout, Layer, LayerNorm, TrainMode};
use flux_tensor::{DType, Tensor};

#[test]
fn display_like_flux() {
    let m = chain![Dense::new(10, 5, relu), BatchNorm::new(5), Dropout::new(0.5), LayerNorm::new(5), Dense::new(5, 2, identity)];
    assert_eq!(m.to_string(), "Chain(Dense(10 => 5, relu), BatchNorm(5), Dropout(0.5), LayerNorm(5), Dense(5 => 2))");
    assert_eq!(format!("{:?}", Dropout::new(0.25)), "Dropout(0.25)");
    assert_eq!(BatchNorm::with_activation(3, relu).to_string(), "BatchNorm(3, relu)");
}

#[test]
fn buffers_are_not_params() {
    let m = chain![Dense::new(4, 3, relu), BatchNorm::new(3), LayerNorm::new(3)];
    // Dense weight, bias; BatchNorm scale, bias; LayerNorm scale, bias
    assert_eq!(params(&m).len(), 6);
}

#[test]
fn modes_switch_over_a_whole_model() {
    flux_tensor::seed(3);
    let m = chain![Dense::new(6, 6, identity), Dropout::new(0.5), BatchNorm::new(6)];
    let x = Var::from(Tensor::randn(&[6, 32]));
    // outside a gradient call, auto mode is test mode: deterministic, stats untouched
    let stats = |m: &flux_layers::Chain| flux_layers::state_to_json(m)["2.running_mean"].clone();
    let before = stats(&m);
    let a = m.forward(&x).to_vec();
    assert_eq!(a, m.forward(&x).to_vec());
    assert_eq!(stats(&m), before);

    // inside a gradient call, auto mode trains: dropout masks and batch statistics
    let ps = params(&m);
    let _ = gradient_params(|| m.forward(&x).powi(2).sum(), &ps);
    assert_ne!(stats(&m), before, "BatchNorm running stats move while training");

    // testmode fixes test behaviour even inside gradient calls
    testmode(&m);
    let frozen = stats(&m);
    let g1 = gradient_params(|| m.forward(&x).sum(), &ps);
    let g2 = gradient_params(|| m.forward(&x).sum(), &ps);
    assert_eq!(stats(&m), frozen);
    for p in ps.iter() {
        assert_eq!(g1[p].to_vec(), g2[p].to_vec());
    }

    // trainmode trains even outside
    trainmode(&m);
    let y1 = m.forward(&x).to_vec();
    let y2 = m.forward(&x).to_vec();
    assert_ne!(y1, y2, "dropout draws a new mask each call");
}

#[test]
fn seeded_dropout_is_reproducible() {
    let d = Dropout::new(0.3);
    d.set_mode(TrainMode::Train);
    let x = Var::from(Tensor::ones(&[100]));
    flux_tensor::seed(11);
    let a = d.forward(&x).to_vec();
    flux_tensor::seed(11);
    assert_eq!(a, d.forward(&x).to_vec());
}

#[test]
fn to_f64_converts_parameters_and_buffers() {
    let m = chain![BatchNorm::new(3), LayerNorm::new(3)];
    to_f64(&m);
    let s = flux_layers::state_to_json(&m);
    for (k, v) in s.as_object().unwrap() {
        assert_eq!(v["dtype"], "f64", "{k}");
    }
    trainmode(&m);
    let y = m.forward(&Var::from(Tensor::randn(&[3, 4])));
    assert_eq!(y.dtype(), DType::F64);
}

#[test]
fn batchnorm_gradients_flow_to_scale_and_bias() {
    let bn = BatchNorm::new(2);
    let x = Var::from(Tensor::randn(&[2, 10]));
    let gs = gradient_params(|| bn.forward(&x).sum(), &params(&bn));
    // d sum(γ x̂ + β) / dβ = number of samples; / dγ = sum(x̂) = 0
    assert_eq!(gs[bn.bias()].to_vec(), vec![10.0, 10.0]);
    assert!(gs[bn.scale()].to_vec().iter().all(|g| g.abs() < 1e-5));
}

#[test]
fn layers_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Dropout>();
    check::<BatchNorm>();
    check::<LayerNorm>();
}

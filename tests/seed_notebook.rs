//! The seed notebook (`shared/seed/000_0c573b03b5d6a220.txt`), one test per cell, through
//! `use flux::prelude::*` only. Deterministic values are the notebook's; random cells check
//! shapes and invariants.

use flux::prelude::*;

fn rand_var(shape: &[usize]) -> Var {
    Var::from(Tensor::rand(shape))
}

#[test]
fn cell_03_04_derivatives_nest() {
    let f = |x: &Var| 3.0 * x.powi(2) + 2.0 * x + 1.0;
    let df = |x: &Var| gradient(f, x);
    let d2f = |x: &Var| gradient(df, x);
    assert_eq!(df(&Var::scalar(2.0)).item(), 14.0);
    assert_eq!(d2f(&Var::scalar(2.0)).item(), 6.0);
    // Tracker's nest = true keeps the result tracked, and prints as the notebook does
    let df_nested = |x: &Var| gradient_nested(f, x);
    assert_eq!(df_nested(&Var::scalar(2.0)).to_string(), "14.0 (tracked)");
    assert_eq!(gradient_nested(df_nested, &Var::scalar(2.0)).to_string(), "6.0 (tracked)");
}

#[test]
fn cell_05_many_explicit_arguments() {
    let g = gradients(|v: &[Var]| &v[0] * &v[2] + &v[1], &[2.0.into(), 3.0.into(), 4.0.into()]);
    let g: Vec<f64> = g.iter().map(|g| g.item()).collect();
    assert_eq!(g, vec![4.0, 1.0, 2.0]);
}

#[test]
fn cell_08_implicit_params() {
    let w = param(2.0);
    let b = param(3.0);
    let f = |x: f64| &w * x + &b;
    let grads = gradient_params(|| f(4.0), &params![&w, &b]);
    assert_eq!(grads[&w].item(), 4.0);
    assert_eq!(grads[&b].item(), 1.0);
    assert!(w.to_string().ends_with("(tracked)"));
}

#[test]
fn cell_12_13_14_linear_regression_and_update() {
    seed(12);
    let w = param(Tensor::rand(&[2, 5]));
    let b = param(Tensor::rand(&[2]));
    let predict = |x: &Var| w.matmul(x) + &b;
    let loss = |x: &Var, y: &Var| (y - predict(x)).powi(2).sum();
    let (x, y) = (rand_var(&[5]), rand_var(&[2]));
    let before = loss(&x, &y).item();
    assert!(before > 0.0);
    let gs = gradient_params(|| loss(&x, &y), &params![&w, &b]);
    assert_eq!(gs.to_string(), "Grads(...)");
    assert_eq!(gs[&w].shape(), &[2, 5]);
    update(&w, &(-0.1 * &gs[&w]));
    let after = loss(&x, &y);
    assert!(after.item() < before, "{} !< {before}", after.item());
    assert!(after.to_string().ends_with("(tracked)"));
}

#[test]
fn cell_15_16_17_hand_written_layers() {
    let w1 = param(Tensor::rand(&[3, 5]));
    let b1 = param(Tensor::rand(&[3]));
    let w2 = param(Tensor::rand(&[2, 3]));
    let b2 = param(Tensor::rand(&[2]));
    let model = |x: &Var| w2.matmul(&sigmoid(&(w1.matmul(x) + &b1))) + &b2;
    let y = model(&rand_var(&[5]));
    assert_eq!(y.shape(), &[2]);
    assert!(y.to_string().starts_with("Tracked 2-element Vector{Float64}:"));

    let linear = |input: usize, output: usize| {
        let w = param(Tensor::randn(&[output, input]));
        let b = param(Tensor::randn(&[output]));
        move |x: &Var| w.matmul(x) + &b
    };
    let (l1, l2) = (linear(5, 3), linear(3, 2));
    assert_eq!(l2(&sigmoid(&l1(&rand_var(&[5])))).shape(), &[2]);
}

#[test]
fn cell_18_19_20_21_stacking() {
    let layers: Vec<Box<dyn Layer>> = vec![Box::new(Dense::new(10, 5, sigmoid)), Box::new(Dense::new(5, 2, identity)), Box::new(softmax)];
    let y = layers.forward(&rand_var(&[10]));
    assert_eq!(y.shape(), &[2]);
    assert!((y.sum().item() - 1.0).abs() < 1e-6);

    let model2 = chain![Dense::new(10, 5, sigmoid), Dense::new(5, 2, identity), softmax];
    assert_eq!(model2.to_string(), "Chain(Dense(10 => 5, σ), Dense(5 => 2), softmax)");
    let y = model2.forward(&rand_var(&[10]).to_f32());
    assert_eq!(y.dtype(), DType::F32);
    assert!((y.sum().item() - 1.0).abs() < 1e-6);

    let m3 = compose(Dense::new(5, 2, identity), Dense::new(10, 5, sigmoid));
    assert_eq!(m3.forward(&rand_var(&[10])).shape(), &[2]);

    let m4 = chain![|x: &Var| x.powi(2), |x: &Var| x + 1.0];
    assert_eq!(m4.forward(&Var::scalar(5.0)).item(), 26.0);
}

#[test]
fn cell_22_23_hand_written_rnn() {
    let wxh = Var::from(Tensor::randn(&[5, 10]));
    let whh = Var::from(Tensor::randn(&[5, 5]));
    let b = Var::from(Tensor::randn(&[5]));
    let rnn = move |h: &Var, x: &Var| {
        let h = (wxh.matmul(x) + whh.matmul(h) + &b).tanh();
        (h.clone(), h)
    };
    let x = rand_var(&[10]);
    let h = rand_var(&[5]);
    let (h1, y1) = rnn(&h, &x);
    assert_eq!(h1.to_vec(), y1.to_vec());
    let (h2, _) = rnn(&h1, &x);
    // the same input gives a different output: the state carries memory
    assert_ne!(h1.to_vec(), h2.to_vec());
    assert!(h2.to_vec().iter().all(|v| v.abs() <= 1.0));
}

#[test]
fn cell_24_to_26_cells_and_recur() {
    let rnn2 = RNNCell::new(10, 5);
    let (h, y) = rnn2.step(&rand_var(&[5]), &rand_var(&[10]));
    assert_eq!(h.shape(), &[5]);
    assert!(y.is_tracked());

    let wxh = Var::from(Tensor::randn(&[5, 10]));
    let whh = Var::from(Tensor::randn(&[5, 5]));
    let b = Var::from(Tensor::randn(&[5]));
    let rnn = move |h: &Var, x: &Var| {
        let h = (wxh.matmul(x) + whh.matmul(h) + &b).tanh();
        (h.clone(), h)
    };
    let m5 = Recur::new(rnn, rand_var(&[5]));
    let y = m5.forward(&rand_var(&[10]));
    assert_eq!(m5.state().to_vec(), y.to_vec());
    assert_eq!(RNN::new(10, 5).to_string(), "Recur(RNNCell(10 => 5, tanh))");
}

#[test]
fn cell_27_to_30_sequences_truncate_reset() {
    let seq: Vec<Var> = (0..10).map(|_| rand_var(&[10]).to_f32()).collect();
    let m51 = chain![LSTM::new(10, 15), Dense::new(15, 5, identity)];
    let ys = m51.forward_seq(&seq);
    assert_eq!(ys.len(), 10);
    assert!(ys.iter().all(|y| y.shape() == [5] && y.is_tracked()));
    reset(&m51);
    let stepped: Vec<Var> = seq.iter().map(|x| m51.forward(x)).collect();
    for (a, b) in ys.iter().zip(&stepped) {
        assert!(a.data().allclose(&b.data(), 1e-5, 1e-6));
    }
    truncate(&m51);
    let after = m51.forward(&seq[0]);
    assert_eq!(after.shape(), &[5]);
    reset(&m51);
    assert!(m51.forward(&seq[0]).data().allclose(&ys[0].data(), 1e-5, 1e-6));
}

#[test]
fn cell_38_to_53_regularisation() {
    let m6 = Dense::new(10, 5, identity);
    let loss = |x: &Var, y: &Var| crossentropy(&softmax(&m6.forward(x)), y);
    let (x, y) = (rand_var(&[10]), Var::from(onehot(1, 5)));
    let l = loss(&x, &y);
    assert!(l.item() > 0.0);
    let penalty = || norm(m6.weight()) + norm(m6.bias());
    assert!((penalty().item() - norm(m6.weight()).item()).abs() < 1e-12, "bias starts at zero");
    let ps = params(&m6);
    assert_eq!(ps.len(), 2);
    assert!(ps.to_string().starts_with("Params([Float32["));
    let total: Var = ps.iter().map(norm).sum();
    assert!((total.item() - penalty().item()).abs() < 1e-6);
    // the penalty's gradient at the zero bias is zero, not NaN
    let gs = gradient_params(|| loss(&x, &y) + penalty(), &ps);
    assert!(!gs[m6.bias()].data().has_nan());
}

#[test]
fn cell_mlp_and_activations() {
    let m7 = chain![Dense::new(28 * 28, 128, relu), Dense::new(128, 32, relu), Dense::new(32, 10, identity), softmax];
    let loss = |x: &Var, y: &Var| crossentropy(&m7.forward(x), y) + params(&m7).iter().map(norm).sum::<Var>();
    let l = loss(&rand_var(&[28 * 28]), &rand_var(&[10]));
    assert!(l.item().is_finite());

    let c = chain![Dense::new(10, 5, sigmoid), Dense::new(5, 2, identity), softmax];
    let acts = activations(&c, &rand_var(&[10]));
    assert_eq!(acts.iter().map(|a| a.shape().to_vec()).collect::<Vec<_>>(), vec![vec![5], vec![2], vec![2]]);
    assert!((acts[2].sum().item() - 1.0).abs() < 1e-6);
}

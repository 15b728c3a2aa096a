//! The seed tutorial (Flux's "Flux basics" notebook, Tracker era), every cell in order,
//! printing what the notebook prints. Run it with `cargo run --release --example tutorial`.
//!
//! Random values differ from the notebook's (another generator), so where a cell shows random
//! numbers this prints the same kind of value; every deterministic value is the notebook's.

use flux::prelude::*;

/// Prints a cell heading like the notebook's `In [n]:`.
fn cell(n: &str, what: &str) {
    println!("\nIn [{n}]: {what}");
}

/// A list of values the way Julia prints a vector of arrays.
fn show_list(xs: &[Var]) {
    println!("{}-element Vector:", xs.len());
    for x in xs {
        println!(" {}", x.inline());
    }
}

fn main() {
    flux::seed(0);
    println!("# Flux basics, in Rust");

    println!("\n## Derivatives");
    cell("3", "f(x) = 3x^2 + 2x + 1; df(x) = gradient(f, x; nest = true); df(2)");
    let f = |x: &Var| 3.0 * x.powi(2) + 2.0 * x + 1.0;
    let df = |x: &Var| gradient_nested(f, x);
    println!("{}", df(&Var::scalar(2.0)));

    cell("4", "d2f(x) = gradient(df, x; nest = true); d2f(2)");
    let d2f = |x: &Var| gradient_nested(df, x);
    println!("{}", d2f(&Var::scalar(2.0)));

    cell("5", "f(W, b, x) = W*x + b; gradient(f, 2, 3, 4)");
    let g = gradients(|v: &[Var]| &v[0] * &v[2] + &v[1], &[2.0.into(), 3.0.into(), 4.0.into()]);
    println!("({}, {}, {})", g[0], g[1], g[2]);

    cell("8", "W = param(2); b = param(3); f(x) = W * x + b; grads = gradient(() -> f(4), params(W, b))");
    let w = param(2.0);
    let b = param(3.0);
    let f = |x: f64| &w * x + &b;
    let grads = gradient_params(|| f(4.0), &params![&w, &b]);
    println!("grads[W] = {}", grads[&w]);
    println!("grads[b] = {}", grads[&b]);

    println!("\n### Simple Model: Linear Regression");
    cell("12", "W = rand(2, 5); b = rand(2); loss(x, y) = sum((y .- predict(x)).^2); loss(x, y)");
    let w = param(Tensor::rand(&[2, 5]));
    let b = param(Tensor::rand(&[2]));
    let predict = |x: &Var| w.matmul(x) + &b;
    let loss = |x: &Var, y: &Var| (y - predict(x)).powi(2).sum();
    let (x, y) = (Var::from(Tensor::rand(&[5])), Var::from(Tensor::rand(&[2])));
    println!("{}", loss(&x, &y).item());

    cell("13", "gs = gradient(() -> loss(x, y), params(W, b))");
    let gs = gradient_params(|| loss(&x, &y), &params![&w, &b]);
    println!("{gs}");

    cell("14", "update!(W, -0.1 * gs[W]); loss(x, y)");
    update(&w, &(-0.1 * &gs[&w]));
    println!("{}", loss(&x, &y));

    println!("\n## Building Layers");
    cell("15", "W1, b1, W2, b2 = param.(rand...); model(x) = layer2(σ.(layer1(x))); model(rand(5))");
    let w1 = param(Tensor::rand(&[3, 5]));
    let b1 = param(Tensor::rand(&[3]));
    let layer1 = |x: &Var| w1.matmul(x) + &b1;
    let w2 = param(Tensor::rand(&[2, 3]));
    let b2 = param(Tensor::rand(&[2]));
    let layer2 = |x: &Var| w2.matmul(x) + &b2;
    let model = |x: &Var| layer2(&sigmoid(&layer1(x)));
    println!("{}", model(&Var::from(Tensor::rand(&[5]))));

    cell("16", "linear(in, out) = x -> W * x .+ b; model(x) = linear2(σ.(linear1(x))); model(rand(5))");
    let linear = |input: usize, output: usize| {
        let w = param(Tensor::randn(&[output, input]));
        let b = param(Tensor::randn(&[output]));
        move |x: &Var| w.matmul(x) + &b
    };
    let linear1 = linear(5, 3);
    let linear2 = linear(3, 2);
    let model = |x: &Var| linear2(&sigmoid(&linear1(x)));
    println!("{}", model(&Var::from(Tensor::rand(&[5]))));

    cell("17", "struct Affine; a = Affine(10, 5); a(rand(10))");
    let a = Affine::new(10, 5);
    println!("{}", a.forward(&Var::from(Tensor::rand(&[10]))));

    println!("\n## Stacking It Up");
    cell("18", "layers = [Dense(10, 5, σ), Dense(5, 2), softmax]; model(x) = foldl((x, m) -> m(x), layers, init = x)");
    let layers: Vec<Box<dyn Layer>> = vec![Box::new(Dense::new(10, 5, sigmoid)), Box::new(Dense::new(5, 2, identity)), Box::new(softmax)];
    println!("{}", layers.forward(&Var::from(Tensor::rand(&[10]).to_f32())));

    cell("19", "model2 = Chain(Dense(10, 5, σ), Dense(5, 2), softmax); model2(rand(10))");
    let model2 = chain![Dense::new(10, 5, sigmoid), Dense::new(5, 2, identity), softmax];
    println!("{model2}");
    println!("{}", model2.forward(&Var::from(Tensor::rand(&[10]).to_f32())));

    cell("20", "m3 = Dense(5, 2) ∘ Dense(10, 5, σ); m3(rand(10))");
    let m3 = compose(Dense::new(5, 2, identity), Dense::new(10, 5, sigmoid));
    println!("{}", m3.forward(&Var::from(Tensor::rand(&[10]).to_f32())));

    cell("21", "m4 = Chain(x -> x^2, x -> x+1); m4(5)");
    let m4 = chain![|x: &Var| x.powi(2), |x: &Var| x + 1.0];
    println!("{}", m4.forward(&Var::scalar(5.0)).item());

    println!("\n## Recurrence");
    cell("22", "Wxh, Whh, b = randn...; rnn(h, x) = (h = tanh.(Wxh * x .+ Whh * h .+ b); (h, h)); h, y = rnn(h, x)");
    let wxh = Var::from(Tensor::randn(&[5, 10]));
    let whh = Var::from(Tensor::randn(&[5, 5]));
    let bh = Var::from(Tensor::randn(&[5]));
    let rnn = move |h: &Var, x: &Var| {
        let h = (wxh.matmul(x) + whh.matmul(h) + &bh).tanh();
        (h.clone(), h)
    };
    let x = Var::from(Tensor::rand(&[10]));
    let h = Var::from(Tensor::rand(&[5]));
    let (h, y) = rnn(&h, &x);
    println!("({}, {})", h.inline(), y.inline());

    cell("23", "h, y = rnn(h, x)");
    let (h, y) = rnn(&h, &x);
    println!("({}, {})", h.inline(), y.inline());

    cell("24", "rnn2 = RNNCell(10, 5); h, y = rnn2(h, x)");
    let rnn2 = RNNCell::new(10, 5);
    let x = Var::from(Tensor::rand(&[10]).to_f32());
    let h = Var::from(Tensor::rand(&[5]).to_f32());
    let (h, y) = rnn2.step(&h, &x);
    println!("({}, {})", h.inline(), y.inline());

    println!("\n### Stateful Models");
    cell("25", "m5 = Recur(rnn, h); y = m5(x)");
    let x = Var::from(Tensor::rand(&[10]));
    let h0 = Var::from(Tensor::rand(&[5]));
    let m5 = Recur::new(rnn, h0);
    println!("{}", m5.forward(&x));

    cell("26", "RNN(10, 5)");
    println!("{}", RNN::new(10, 5));

    println!("\n### Sequences");
    cell("27", "seq = [rand(10) for i = 1:10]");
    let seq: Vec<Var> = (0..10).map(|_| Var::from(Tensor::rand(&[10]))).collect();
    show_list(&seq);

    cell("28", "m5.(seq)");
    let ys: Vec<Var> = seq.iter().map(|x| m5.forward(x)).collect();
    show_list(&ys);

    cell("29", "m51 = Chain(LSTM(10, 15), Dense(15, 5)); m51.(seq)");
    let m51 = chain![LSTM::new(10, 15), Dense::new(15, 5, identity)];
    println!("{m51}");
    let seq32: Vec<Var> = seq.iter().map(|x| x.to_f32()).collect();
    show_list(&m51.forward_seq(&seq32));

    println!("\n## Truncating Gradients");
    cell("30", "truncate!(m51)");
    truncate(&m51);
    println!("state kept, history dropped");
    reset(&m51);
    println!("reset!(m51): state back to its initial value");

    println!("\n## Regularisation");
    cell("38", "m6 = Dense(10, 5); loss(x, y) = crossentropy(softmax(m6(x)), y)");
    let m6 = Dense::new(10, 5, identity);
    let loss = |x: &Var, y: &Var| crossentropy(&softmax(&m6.forward(x)), y);
    let (x, y) = (Var::from(Tensor::rand(&[10]).to_f32()), Var::from(onehot(2, 5)));
    println!("loss(x, y) = {}", loss(&x, &y));

    cell("39", "penalty() = norm(m6.W) + norm(m6.b); reg_loss(x, y) = loss(x, y) + penalty()");
    let penalty = || norm(m6.weight()) + norm(m6.bias());
    println!("reg_loss(x, y) = {}", loss(&x, &y) + penalty());

    cell("53", "Flux.params(m6)");
    println!("{}", params(&m6));

    cell("42", "sum(norm, Flux.params(m6))");
    let total: Var = params(&m6).iter().map(norm).sum();
    println!("{total}");

    cell(" ", "m7 = Chain(Dense(28^2, 128, relu), Dense(128, 32, relu), Dense(32, 10), softmax); loss(rand(28^2), rand(10))");
    let m7 = chain![Dense::new(28 * 28, 128, relu), Dense::new(128, 32, relu), Dense::new(32, 10, identity), softmax];
    let loss7 = |x: &Var, y: &Var| crossentropy(&m7.forward(x), y) + params(&m7).iter().map(norm).sum::<Var>();
    println!("{}", loss7(&Var::from(Tensor::rand(&[28 * 28])), &Var::from(Tensor::rand(&[10]))));

    cell(" ", "c = Chain(Dense(10, 5, σ), Dense(5, 2), softmax); c_reg = activations(c, rand(10))");
    let c = chain![Dense::new(10, 5, sigmoid), Dense::new(5, 2, identity), softmax];
    println!("{c}");
    show_list(&activations(&c, &Var::from(Tensor::rand(&[10]).to_f32())));
}

/// The seed's hand-written affine layer, as a user struct that is a layer: Flux's `@layer`
/// is `#[derive(Layer)]`, and the struct's own `forward` is the layer's forward.
#[derive(Layer)]
struct Affine {
    #[layer(rename = "W")]
    w: Var,
    b: Var,
}

impl Affine {
    fn new(input: usize, output: usize) -> Affine {
        Affine { w: param(Tensor::randn(&[output, input])), b: param(Tensor::randn(&[output])) }
    }

    fn forward(&self, x: &Var) -> Var {
        self.w.matmul(x) + &self.b
    }
}

//! The differentiation toolkit against hand derivations: `jvp` (forward mode), `hvp`,
//! `jacobian`, `hessian`, `pullback`, `withgradient`, `checkpoint`, each also nested inside
//! `gradient`.

use std::sync::Arc;

use flux_autograd::*;
use flux_tensor::{Tensor, TensorError};

fn v(xs: &[f64]) -> Var {
    Var::from(Tensor::from_vec(xs.to_vec(), &[xs.len()]))
}

fn close(a: &Var, b: &[f64], tol: f64) {
    let a = a.to_vec();
    assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{a:?} vs {b:?}");
    }
}

#[test]
fn jvp_scalar_and_vector() {
    let (y, t) = jvp(|x: &Var| x.powi(3), &Var::scalar(2.0), &Var::scalar(1.0));
    assert_eq!((y.item(), t.item()), (8.0, 12.0));
    assert!(!y.is_tracked() && !t.is_tracked());
    // f(x) = sin(x) .* x: ḟ = (cos x .* x + sin x) .* v
    let x = [0.3, -1.2, 2.0];
    let d = [1.0, 0.5, -2.0];
    let (y, t) = jvp(|x: &Var| x.sin() * x, &v(&x), &v(&d));
    close(&y, &x.map(|x| x.sin() * x), 1e-15);
    let expect: Vec<f64> = x.iter().zip(&d).map(|(x, d)| (x.cos() * x + x.sin()) * d).collect();
    close(&t, &expect, 1e-14);
}

#[test]
fn jvp_through_matmul_broadcast_reduce_softmax() {
    // f(x) = sum(W·x .+ b, dims) etc.: linear parts give W·v exactly
    let w = Var::from(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])); // [1 3 5; 2 4 6]
    let b = Var::from(Tensor::from_vec(vec![1.0, -1.0], &[2]));
    let x = v(&[1.0, 0.0, -1.0]);
    let d = v(&[1.0, 1.0, 1.0]);
    let (_, t) = jvp(|x: &Var| w.matmul(x) + &b, &x, &d);
    close(&t, &[9.0, 12.0], 0.0);
    let (_, t) = jvp(|x: &Var| Var::affine(&w, x, &b).unwrap(), &x, &d);
    close(&t, &[9.0, 12.0], 0.0);
    // a matrix input: f(X) = sum(X .* X, dims = 1) (column sums): ḟ = sum(2X .* V, dims = 1)
    let xm = Var::from(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]));
    let vm = Var::from(Tensor::from_vec(vec![1.0, 0.0, 0.0, 1.0], &[2, 2]));
    let (_, t) = jvp(|x: &Var| (x * x).sum_dims(&[0]), &xm, &vm);
    assert_eq!(t.shape(), &[1, 2]);
    close(&t, &[2.0, 8.0], 0.0);
    // softmax: ẏ = y .* (v - <y, v>)
    let xs = [0.1, 0.7, -0.4];
    let ds = [1.0, -2.0, 0.5];
    let (y, t) = jvp(|x: &Var| x.softmax(0), &v(&xs), &v(&ds));
    let yv = y.to_vec();
    let dot: f64 = yv.iter().zip(&ds).map(|(a, b)| a * b).sum();
    close(&t, &yv.iter().zip(&ds).map(|(y, d)| y * (d - dot)).collect::<Vec<_>>(), 1e-14);
    // log-softmax: ẏ = v - <softmax, v>
    let (_, t) = jvp(|x: &Var| x.logsoftmax(0), &v(&xs), &v(&ds));
    close(&t, &ds.map(|d| d - dot), 1e-14);
    // a broadcast input gets a tangent of the output's shape
    let (_, t) = jvp(|x: &Var| x + Var::from(Tensor::zeros(&[2, 3])), &v(&[1.0, 2.0]), &v(&[1.0, -1.0]));
    assert_eq!(t.shape(), &[2, 3]);
    close(&t, &[1.0, -1.0, 1.0, -1.0, 1.0, -1.0], 0.0);
}

#[test]
fn jvp_of_a_function_that_ignores_its_input_is_zero() {
    let (y, t) = jvp(|_x: &Var| Var::scalar(3.0), &Var::scalar(1.0), &Var::scalar(1.0));
    assert_eq!((y.item(), t.item()), (3.0, 0.0));
    // a detached path carries no tangent
    let (_, t) = jvp(|x: &Var| x.detach() * x, &Var::scalar(2.0), &Var::scalar(1.0));
    assert_eq!(t.item(), 2.0);
}

#[test]
fn jvps_several_arguments() {
    let (y, t) = jvps(|a: &[Var]| a[0].pow(&a[1]), &[2.0.into(), 3.0.into()], &[1.0.into(), 1.0.into()]);
    // d(a^b) = b a^(b-1) da + a^b ln a db = 12 + 8 ln 2
    assert_eq!(y.item(), 8.0);
    assert!((t.item() - (12.0 + 8.0 * 2f64.ln())).abs() < 1e-12);
}

#[test]
fn forward_over_forward_and_no_perturbation_confusion() {
    // second derivative of sin by jvp of jvp
    let d1 = |x: &Var| jvp(|x: &Var| x.sin(), x, &Var::scalar(1.0)).1;
    let d2 = jvp(d1, &Var::scalar(0.7), &Var::scalar(1.0)).1;
    assert!((d2.item() + 0.7f64.sin()).abs() < 1e-15);
    // d/dx [x · d/dy (x + y)] = d/dx [x · 1] = 1 (a confused implementation gives 2)
    let inner = |x: &Var| jvp(|y: &Var| x + y, &Var::scalar(1.0), &Var::scalar(1.0)).1;
    let t = jvp(|x: &Var| x * inner(x), &Var::scalar(1.0), &Var::scalar(1.0)).1;
    assert_eq!(t.item(), 1.0);
}

#[test]
fn reverse_over_forward() {
    // jvp of x³ (elementwise) is 3x² v; its sum's gradient is 6 x v
    let dv = v(&[1.0, -2.0]);
    let g = gradient(|x: &Var| jvp(|x: &Var| x.powi(3), x, &dv).1.sum(), &v(&[0.5, 3.0]));
    close(&g, &[3.0, -36.0], 1e-15);
    // and with respect to the direction: d/dv sum(3x² v) = 3x²
    let x = v(&[0.5, 3.0]);
    let g = gradient(|d: &Var| jvp(|x: &Var| x.powi(3), &x, d).1.sum(), &dv);
    close(&g, &[0.75, 27.0], 1e-15);
    // third order: d/dx of the second derivative by forward over reverse, = d/dx (6x) = 6
    let g = gradient(|x: &Var| jvp(|x: &Var| gradient(|x: &Var| x.powi(3).sum(), x), x, &Var::scalar(1.0)).1, &Var::scalar(2.0));
    assert_eq!(g.item(), 6.0);
}

#[test]
fn hvp_matches_hand_derivation() {
    let x = v(&[1.0, 2.0]);
    let d = v(&[1.0, 1.0]);
    close(&hvp(|x: &Var| x.powi(3).sum(), &x, &d), &[6.0, 12.0], 0.0);
    // f = x₁² x₂: H = [2x₂ 2x₁; 2x₁ 0], H·[1, -1] = [2x₂ - 2x₁, 2x₁]
    let f = |x: &Var| x.select(0, 0).powi(2) * x.select(0, 1);
    close(&hvp(f, &x, &v(&[1.0, -1.0])), &[2.0, 2.0], 1e-15);
    // an MLP: sum(w2·tanh(W1 x + b1)) has H v = W1ᵀ (w2 .* -2t(1-t²) .* W1 v)
    flux_tensor::seed(5);
    let w1 = Var::from(Tensor::randn(&[4, 3]) / 2.0);
    let b1 = Var::from(Tensor::randn(&[4]));
    let w2 = Var::from(Tensor::randn(&[1, 4]));
    let x = Var::from(Tensor::randn(&[3]));
    let dv = Var::from(Tensor::randn(&[3]));
    let loss = |x: &Var| w2.matmul(&(w1.matmul(x) + &b1).tanh()).sum();
    let th = (w1.data().matmul(&x.data()) + &b1.data()).tanh();
    let inner = &(&w2.data().reshape(&[4]) * &(&th * &(1.0 - &(&th * &th)))) * -2.0;
    let expect = w1.data().transpose().matmul(&(&inner * &w1.data().matmul(&dv.data())));
    close(&hvp(loss, &x, &dv), &expect.to_vec(), 1e-13);
    // forward over reverse gives the same product
    let fwd_over_rev = jvp(|x: &Var| gradient(loss, x), &x, &dv).1;
    close(&fwd_over_rev, &expect.to_vec(), 1e-13);
}

#[test]
fn hvp_nested_in_gradient_and_jvp() {
    // f = Σ x⁴: H v = 12 x² v; d/dx Σ(12 x² v) = 24 x v
    let d = v(&[1.0, -1.0]);
    let f = |x: &Var| x.powi(4).sum();
    let g = gradient(|x: &Var| hvp(f, x, &d).sum(), &v(&[0.5, 2.0]));
    close(&g, &[12.0, -48.0], 1e-14);
    // and in forward mode: the derivative of H v along u is 24 x .* v .* u
    let (_, t) = jvp(|x: &Var| hvp(f, x, &d), &v(&[0.5, 2.0]), &v(&[2.0, 1.0]));
    close(&t, &[24.0, -48.0], 1e-14);
}

/// f(x) = [x₁x₂, sin x₁, x₂²] (3 outputs, 2 inputs: forward mode).
fn f32to3(x: &Var) -> Var {
    let (a, b) = (x.slice(0, 0..1), x.slice(0, 1..2));
    Var::concat(&[&a * &b, a.sin(), b.powi(2)], 0)
}

#[test]
fn jacobian_forward_and_reverse_mode() {
    let (x1, x2) = (0.4, -1.5);
    let j = jacobian(f32to3, &v(&[x1, x2]));
    assert_eq!(j.shape(), &[3, 2]);
    // column-major [x2 x1; cos x1 0; 0 2x2]
    close(&j, &[x2, x1.cos(), 0.0, x1, 0.0, 2.0 * x2], 1e-15);
    // reverse mode (2 outputs, 3 inputs): f(x) = [x₁x₂x₃, x₁ + 2x₃]
    let g =
        |x: &Var| Var::concat(&[(x.select(0, 0) * x.select(0, 1) * x.select(0, 2)).reshape(&[1]), (x.select(0, 0) + 2.0 * x.select(0, 2)).reshape(&[1])], 0);
    let j = jacobian(g, &v(&[1.0, 2.0, 3.0]));
    assert_eq!(j.shape(), &[2, 3]);
    close(&j, &[6.0, 1.0, 3.0, 0.0, 2.0, 2.0], 0.0);
    // a matrix input and output: f(X) = X .^ 2 → diag(2 vec(X))
    let xm = Var::from(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]));
    let j = jacobian(|x: &Var| x.powi(2), &xm);
    assert_eq!(j.shape(), &[4, 4]);
    let mut expect = vec![0.0; 16];
    for i in 0..4 {
        expect[i * 5] = 2.0 * (i + 1) as f64;
    }
    close(&j, &expect, 0.0);
}

#[test]
fn jacobian_nested_in_gradient() {
    // reverse branch: J = diag(2x), sum = 2 Σx, gradient 2
    let g = gradient(|x: &Var| jacobian(|x: &Var| x.powi(2), x).sum(), &v(&[1.0, 5.0]));
    close(&g, &[2.0, 2.0], 0.0);
    // forward branch: f(x) = [x², x³], J = [2x; 3x²], sum = 2x + 3x², gradient 2 + 6x
    let f = |x: &Var| Var::concat(&[x.powi(2), x.powi(3)], 0);
    let g = gradient(|x: &Var| jacobian(f, x).sum(), &v(&[2.0]));
    close(&g, &[14.0], 0.0);
    // Σ of the forward-mode Jacobian of f32to3: x₂ + cos x₁ + x₁ + 2x₂, gradient [1 - sin x₁, 3]
    let g = gradient(|x: &Var| jacobian(f32to3, x).sum(), &v(&[0.4, -1.5]));
    close(&g, &[1.0 - 0.4f64.sin(), 3.0], 1e-15);
}

#[test]
fn hessian_and_nested() {
    // f = x₁² x₂ + sin x₂: H = [2x₂ 2x₁; 2x₁ -sin x₂]
    let f = |x: &Var| x.select(0, 0).powi(2) * x.select(0, 1) + x.select(0, 1).sin();
    let (x1, x2) = (1.5, 0.3);
    let h = hessian(f, &v(&[x1, x2]));
    assert_eq!(h.shape(), &[2, 2]);
    close(&h, &[2.0 * x2, 2.0 * x1, 2.0 * x1, -x2.sin()], 1e-15);
    // Σ H = 2x₂ + 4x₁ - sin x₂: gradient [4, 2 - cos x₂]
    let g = gradient(|x: &Var| hessian(f, x).sum(), &v(&[x1, x2]));
    close(&g, &[4.0, 2.0 - x2.cos()], 1e-15);
    // the Hessian agrees with hvp column by column
    let x = v(&[x1, x2]);
    let col = hvp(f, &x, &v(&[0.0, 1.0]));
    close(&col, &h.to_vec()[2..], 1e-15);
}

#[test]
fn pullback_many_calls_and_nested() {
    let w = Var::from(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])); // [1 3 5; 2 4 6]
    let x = v(&[1.0, -1.0, 0.5]);
    let (y, back) = pullback(|x: &Var| w.matmul(x).sin(), &x);
    assert!(!y.is_tracked());
    let z = w.data().matmul(&x.data()).to_vec();
    // back(u) = Wᵀ (cos z .* u)
    for u in [[1.0, 0.0], [0.0, 1.0], [2.0, -3.0]] {
        let cu = [z[0].cos() * u[0], z[1].cos() * u[1]];
        let expect = [cu[0] + 2.0 * cu[1], 3.0 * cu[0] + 4.0 * cu[1], 5.0 * cu[0] + 6.0 * cu[1]];
        close(&back(&v(&u)), &expect, 1e-14);
    }
    // differentiable in the seed: d/du Σ back(u) = cos z .* (W · 1)
    let g = gradient(|u: &Var| back(u).sum(), &v(&[0.3, 0.1]));
    close(&g, &[z[0].cos() * 9.0, z[1].cos() * 12.0], 1e-14);
    // nested in the point: f(x) = Σ x³ with seed 1: back(1) = 3x², Σ → gradient 6x
    let g = gradient(|x: &Var| pullback(|x: &Var| x.powi(3).sum(), x).1(&Var::scalar(1.0)).sum(), &v(&[1.0, 2.0]));
    close(&g, &[6.0, 12.0], 0.0);
}

#[test]
#[should_panic(expected = "pullback: the seed has shape [3]")]
fn pullback_checks_the_seed() {
    let (_, back) = pullback(|x: &Var| x.sin(), &v(&[1.0, 2.0]));
    back(&v(&[1.0, 2.0, 3.0]));
}

#[test]
fn seeds_and_tangents_may_differ_in_shape_but_not_in_count() {
    // a 0-d seed for a one-element value, a vector tangent for a [2, 1] point
    let (_, back) = pullback(|x: &Var| x.sum_dims(&[0]), &v(&[1.0, 2.0]));
    close(&back(&Var::scalar(3.0)), &[3.0, 3.0], 0.0);
    let x = Var::from(Tensor::from_vec(vec![1.0, 2.0], &[2, 1]));
    let (_, t) = jvp(|x: &Var| x.powi(2), &x, &v(&[1.0, 1.0]));
    assert_eq!(t.shape(), &[2, 1]);
    close(&t, &[2.0, 4.0], 0.0);
    let r = std::panic::catch_unwind(|| jvp(|x: &Var| x.powi(2), &v(&[1.0, 2.0]), &v(&[1.0, 2.0, 3.0])));
    let msg = r.unwrap_err().downcast::<String>().unwrap();
    assert!(msg.contains("jvp: the tangent has shape [3] but the point has shape [2]"), "{msg}");
}

#[test]
fn withgradient_value_and_gradient() {
    let (y, g) = withgradient(|x: &Var| x.powi(3).sum(), &v(&[1.0, 2.0]));
    assert_eq!(y.item(), 9.0);
    close(&g, &[3.0, 12.0], 0.0);
    assert!(!y.is_tracked());
    let w = param(Tensor::from_vec(vec![1.0, 2.0], &[2]));
    let (loss, gs) = withgradient_params(|| (&w * &w).sum(), &params![&w]);
    assert_eq!(loss.item(), 5.0);
    close(&gs[&w], &[2.0, 4.0], 0.0);
    // nested: the value is recorded, so d/dx [y(x) + g(x)] = 3x² + 6x
    let out = gradient(
        |x: &Var| {
            let (y, g) = withgradient(|x: &Var| x.powi(3), x);
            y + g
        },
        &Var::scalar(2.0),
    );
    assert_eq!(out.item(), 24.0);
}

/// A 6-layer tanh MLP whose layers are `move` closures owning their weights.
fn mlp(seed: u64) -> (Vec<Var>, Vec<Arc<dyn Fn(&Var) -> Var + Send + Sync>>) {
    flux_tensor::seed(seed);
    let mut ps = Vec::new();
    let mut layers: Vec<Arc<dyn Fn(&Var) -> Var + Send + Sync>> = Vec::new();
    for _ in 0..6 {
        let w = param(Tensor::randn(&[4, 4]) / 2.0);
        let b = param(Tensor::randn(&[4]) / 4.0);
        ps.push(w.clone());
        ps.push(b.clone());
        layers.push(Arc::new(move |h: &Var| (w.matmul(h) + &b).tanh()));
    }
    (ps, layers)
}

#[test]
fn checkpoint_gradients_equal_plain_ones() {
    let (ps, layers) = mlp(3);
    let ps: Params = ps.iter().collect();
    let x = Var::from(Tensor::randn(&[4, 2]));
    let plain = |x: &Var| layers.iter().fold(x.clone(), |h, l| l(&h));
    // two segments of three layers
    let seg = |range: std::ops::Range<usize>| {
        let ls: Vec<_> = layers[range].to_vec();
        move |h: &Var| ls.iter().fold(h.clone(), |h, l| l(&h))
    };
    let saved = |x: &Var| checkpoint(seg(3..6), &checkpoint(seg(0..3), x));
    let y = saved(&x);
    assert_eq!(y.op_name(), "checkpoint");
    assert!(y.data().allclose(&plain(&x).data(), 1e-15, 0.0));
    let g1 = gradient_params(|| plain(&x).powi(2).sum(), &ps);
    let g2 = gradient_params(|| saved(&x).powi(2).sum(), &ps);
    for p in ps.iter() {
        assert!(g1[p].data().allclose(&g2[p].data(), 1e-12, 1e-14));
    }
    // with respect to the input, and second order (gradient of a gradient through checkpoints)
    let gx1 = gradient(|x: &Var| plain(x).powi(2).sum(), &x);
    let gx2 = gradient(|x: &Var| saved(x).powi(2).sum(), &x);
    assert!(gx1.data().allclose(&gx2.data(), 1e-12, 1e-14));
    let d = Var::from(Tensor::randn(&[4, 2]));
    let h1 = gradient(|x: &Var| (gradient(|x: &Var| plain(x).powi(2).sum(), x) * &d).sum(), &x);
    let h2 = gradient(|x: &Var| (gradient(|x: &Var| saved(x).powi(2).sum(), x) * &d).sum(), &x);
    assert!(h1.data().allclose(&h2.data(), 1e-11, 1e-13));
    // forward mode through checkpoints, and forward over reverse
    let t1 = jvp(plain, &x, &d).1;
    let t2 = jvp(saved, &x, &d).1;
    assert!(t1.data().allclose(&t2.data(), 1e-12, 1e-14));
    let hv = hvp(|x: &Var| saved(x).powi(2).sum(), &x, &d);
    assert!(hv.data().allclose(&h1.data(), 1e-11, 1e-13));
    let fwd_over_rev = jvp(|x: &Var| gradient(|x: &Var| saved(x).powi(2).sum(), x), &x, &d).1;
    assert!(fwd_over_rev.data().allclose(&h1.data(), 1e-11, 1e-13));
}

#[test]
fn checkpoint_untracked_is_plain() {
    let y = checkpoint(|x: &Var| x.sin(), &Var::scalar(0.5));
    assert!(!y.is_tracked());
    assert_eq!(y.item(), 0.5f64.sin());
}

#[test]
fn matmul_t_vector_operands_get_vector_gradients() {
    let m = Var::from(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[3, 2]));
    let x = v(&[1.0, -1.0, 2.0]);
    // xᵀ·M is a [1, 2] row; the gradient of its sum with respect to x is M·1, a vector
    let g = gradient(|x: &Var| x.matmul_t(&m, true, false).sum(), &x);
    assert_eq!(g.shape(), &[3]);
    close(&g, &[5.0, 7.0, 9.0], 0.0);
    // Mᵀ·x, x a vector on the right: the same gradient M·1
    let g = gradient(|x: &Var| m.matmul_t(x, true, false).sum(), &x);
    assert_eq!(g.shape(), &[3]);
    close(&g, &[5.0, 7.0, 9.0], 0.0);
    // x·yᵀ: an outer product of two vectors
    let y = v(&[2.0, 3.0]);
    let gs = gradients(|a: &[Var]| a[0].matmul_t(&a[1], false, true).sum(), &[x.clone(), y.clone()]);
    assert_eq!((gs[0].shape().to_vec(), gs[1].shape().to_vec()), (vec![3], vec![2]));
    close(&gs[0], &[5.0, 5.0, 5.0], 0.0);
    close(&gs[1], &[2.0, 2.0], 0.0);
    // and update accepts it
    let p = param(Tensor::from_vec(vec![1.0, -1.0, 2.0], &[3]));
    let gs = gradient_params(|| p.matmul_t(&m, true, false).sum(), &params![&p]);
    try_update(&p, &gs[&p]).unwrap();
}

struct Cube;
impl CustomOp for Cube {
    fn name(&self) -> &str {
        "cube"
    }
    fn forward(&self, xs: &[Tensor]) -> Result<Tensor, TensorError> {
        Ok(xs[0].powi(3))
    }
    fn backward(&self, xs: &[Var], _y: &Var, g: &Var) -> Vec<Option<Var>> {
        vec![Some(g * &(3.0 * xs[0].powi(2)))]
    }
}

#[test]
fn custom_ops_get_forward_mode_from_their_backward_rule() {
    let cube = |x: &Var| Var::custom(Arc::new(Cube), std::slice::from_ref(x)).unwrap();
    let (y, t) = jvp(cube, &v(&[1.0, 2.0]), &v(&[1.0, 0.5]));
    close(&y, &[1.0, 8.0], 0.0);
    close(&t, &[3.0, 6.0], 0.0);
    // reverse over forward through the provided rule: d/dx Σ 3x² v = 6 x v
    let g = gradient(|x: &Var| jvp(cube, x, &v(&[1.0, 0.5])).1.sum(), &v(&[1.0, 2.0]));
    close(&g, &[6.0, 6.0], 0.0);
}

#[test]
fn jvp_is_per_thread() {
    let handles: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                let x = Var::scalar(i as f64);
                (0..50).map(|_| jvp(|x: &Var| x.powi(2), &x, &Var::scalar(1.0)).1.item()).sum::<f64>()
            })
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.join().unwrap(), 50.0 * 2.0 * i as f64);
    }
}

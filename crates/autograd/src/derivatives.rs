//! More derivatives, built on the reverse pass and on forward mode: the value with its gradient
//! (`withgradient`), the vector-Jacobian product as a reusable callable (`pullback`), whole
//! Jacobians and Hessians, and Hessian-vector products. All of them nest inside `gradient`.

use flux_tensor::Tensor;

use crate::backward::backward;
use crate::forward::jvp;
use crate::gradient::{gradient, gradient_params_impl, gradients_impl, leaf_for, records, Grads, Params};
use crate::tape;
use crate::var::Var;

/// Results handed back at the top level are plain values (their graph is freed); inside an
/// outer gradient call or `jvp` they stay recorded so the outer call can differentiate them.
fn plain_unless_recording(y: Var, create_graph: bool) -> Var {
    if create_graph {
        y
    } else {
        y.detach()
    }
}

/// The value `f(x)` and its gradient from one forward and one backward pass (modern Flux's
/// `withgradient`): what a training step needs to log the loss without computing it twice.
/// Costs what [`gradient`] costs. Panics when `f` does not return one element.
///
/// ```
/// use flux_autograd::{withgradient, Var};
/// let (y, g) = withgradient(|x: &Var| x.powi(3), &Var::scalar(2.0));
/// assert_eq!((y.item(), g.item()), (8.0, 12.0));
/// ```
pub fn withgradient(f: impl Fn(&Var) -> Var, x: &Var) -> (Var, Var) {
    let create_graph = records();
    let (y, mut g) = gradients_impl(|xs| f(&xs[0]), std::slice::from_ref(x), create_graph, "withgradient");
    (plain_unless_recording(y, create_graph), g.remove(0))
}

/// The loss and its gradients with respect to parameters from one forward and one backward
/// pass (Flux's `withgradient(() -> loss, ps)`).
///
/// ```
/// use flux_autograd::{param, params, withgradient_params};
/// let w = param(3.0);
/// let (loss, gs) = withgradient_params(|| w.powi(2), &params![&w]);
/// assert_eq!((loss.item(), gs[&w].item()), (9.0, 6.0));
/// ```
pub fn withgradient_params(f: impl FnMut() -> Var, ps: &Params) -> (Var, Grads) {
    let create_graph = records();
    let (y, gs) = gradient_params_impl(f, ps, "withgradient_params");
    (plain_unless_recording(y, create_graph), gs)
}

/// The value `y = f(x)` and its pullback `u ↦ uᵀ·J` (Tracker's `forward`, Zygote's
/// `pullback`): `f` is recorded once, and the returned closure runs one reverse pass through
/// that graph per call, seeded with `u` (of `y`'s shape, or its element count in another
/// shape; any dtype). `f` may return any shape.
///
/// The closure can be called any number of times; it keeps the graph alive while it lives.
/// Called inside a gradient call (or a `jvp`), its result is recorded, differentiable in `u`
/// and in `x`; made inside one, `y` is recorded too.
///
/// ```
/// use flux_autograd::{pullback, Var};
/// use flux_tensor::Tensor;
/// let x = Var::from(Tensor::from_vec(vec![1.0, 2.0], &[2]));
/// // y = x .^ 2, J = diag(2x)
/// let (y, back) = pullback(|x: &Var| x.powi(2), &x);
/// assert_eq!(y.to_vec(), vec![1.0, 4.0]);
/// assert_eq!(back(&Var::from(Tensor::from_vec(vec![1.0, 0.0], &[2]))).to_vec(), vec![2.0, 0.0]);
/// assert_eq!(back(&Var::from(Tensor::from_vec(vec![1.0, 1.0], &[2]))).to_vec(), vec![2.0, 4.0]);
/// ```
pub fn pullback<F: FnOnce(&Var) -> Var>(f: F, x: &Var) -> (Var, impl Fn(&Var) -> Var + Send + Sync + use<F>) {
    let create_graph = records();
    let leaf = leaf_for(x, create_graph);
    let y = {
        let _depth = tape::Depth::enter();
        let _rec = tape::Resume::new();
        f(&leaf)
    };
    let kept = y.clone();
    let back = move |u: &Var| -> Var {
        let (us, ys) = (u.shape(), kept.shape());
        if us != ys && us.numel() != ys.numel() {
            panic!("pullback: the seed has shape {us:?} but the function's value has shape {ys:?}");
        }
        let u = if u.dtype() == kept.dtype() { u.clone() } else { u.to_dtype(kept.dtype()) };
        let u = if us == ys { u } else { u.reshape(&ys) };
        let g = backward(&kept, std::slice::from_ref(&leaf), records(), Some(&u)).pop().flatten();
        g.unwrap_or_else(|| Var::constant(leaf.data().zeros_like()))
    };
    (plain_unless_recording(y, create_graph), back)
}

/// A one-hot tensor of `shape` and `like`'s dtype with a 1 at column-major position `i`.
fn unit(shape: &[usize], i: usize, like: &Tensor) -> Var {
    let n: usize = shape.iter().product();
    let mut v = vec![0.0; n];
    v[i] = 1.0;
    Var::constant(Tensor::from_vec(v, shape).to_dtype(like.dtype()))
}

/// The Jacobian of `f` at `x` as a `[len(f(x)), len(x)]` matrix (Tracker's `jacobian`):
/// entry `(i, j)` is `∂f(x)_i / ∂x_j`, elements of both counted in column-major order.
///
/// It picks the mode by size. With no more outputs than inputs it is reverse mode: `f` is
/// recorded once and each row is one reverse pass through that graph. With fewer inputs than
/// outputs it is forward mode: each column is one [`jvp`] (a forward pass carrying tangents),
/// after the one recorded evaluation that told the sizes. Nested inside `gradient`, the
/// Jacobian is recorded and differentiable.
///
/// ```
/// use flux_autograd::{jacobian, Var};
/// use flux_tensor::Tensor;
/// // f(x) = [x₁x₂, sin x₁]: J = [x₂ x₁; cos x₁ 0]
/// let f = |x: &Var| Var::concat(&[(x.select(0, 0) * x.select(0, 1)).reshape(&[1]), x.slice(0, 0..1).sin()], 0);
/// let j = jacobian(f, &Var::from(Tensor::from_vec(vec![0.0, 3.0], &[2])));
/// assert_eq!(j.shape(), &[2, 2]);
/// assert_eq!(j.to_vec(), vec![3.0, 1.0, 0.0, 0.0]); // column-major [3 0; 1 0]
/// ```
pub fn jacobian(f: impl Fn(&Var) -> Var, x: &Var) -> Var {
    let n = x.numel();
    let xs = x.shape();
    let (y, back) = pullback(&f, x);
    let m = y.numel();
    if m == 0 || n == 0 {
        return Var::constant(Tensor::zeros(&[m, n]).to_dtype(y.dtype()));
    }
    if n < m {
        drop(back);
        let cols: Vec<Var> = (0..n).map(|j| jvp(&f, x, &unit(&xs, j, &x.data())).1.reshape(&[m])).collect();
        return Var::stack(&cols, 1);
    }
    let ys = y.shape();
    let yd = y.data();
    let rows: Vec<Var> = (0..m).map(|i| back(&unit(&ys, i, &yd)).reshape(&[n])).collect();
    Var::stack(&rows, 0)
}

/// The Hessian of a scalar function at `x` as an `[n, n]` matrix (`n = len(x)`, column-major
/// element order; Tracker's `hessian`): the Jacobian of the gradient. The gradient's backward
/// pass is recorded once and each row is one reverse pass through it (reverse over reverse),
/// so it costs about one gradient call plus `n` passes over a graph twice the size. For one
/// product with a vector use [`hvp`]. Panics when `f` does not return one element.
///
/// ```
/// use flux_autograd::{hessian, Var};
/// use flux_tensor::Tensor;
/// // f(x) = x₁² x₂: H = [2x₂ 2x₁; 2x₁ 0]
/// let h = hessian(|x: &Var| x.select(0, 0).powi(2) * x.select(0, 1), &Var::from(Tensor::from_vec(vec![1.0, 2.0], &[2])));
/// assert_eq!(h.to_vec(), vec![4.0, 2.0, 2.0, 0.0]);
/// ```
pub fn hessian(f: impl Fn(&Var) -> Var, x: &Var) -> Var {
    jacobian(|x: &Var| gradient(&f, x), x)
}

/// The Hessian-vector product `∇²f(x)·v` of a scalar function, without an `[n, n]` matrix:
/// the gradient of `⟨∇f(x), v⟩`, reverse over reverse (one recorded gradient call, then one
/// reverse pass through it: about three to four evaluations of `f`, whatever the size of `x`).
/// `v` has `x`'s shape (or its element count); panics otherwise. Nests inside `gradient` like
/// everything else.
///
/// Forward over reverse, `jvp(|x| gradient(&f, x), &x, &v).1`, gives the same product (JAX's
/// spelling); here it carries a tangent node beside every value and measured about 25% slower
/// (W5's 64-64-1 MLP: 4.7 against 3.7 µs), so this call takes the reverse route.
///
/// ```
/// use flux_autograd::{gradient, hvp, jvp, Var};
/// use flux_tensor::Tensor;
/// // f(x) = Σ x³: H = diag(6x)
/// let f = |x: &Var| x.powi(3).sum();
/// let x = Var::from(Tensor::from_vec(vec![1.0, 2.0], &[2]));
/// let v = Var::from(Tensor::from_vec(vec![1.0, 1.0], &[2]));
/// assert_eq!(hvp(f, &x, &v).to_vec(), vec![6.0, 12.0]);
/// // the same by forward over reverse
/// assert_eq!(jvp(|x: &Var| gradient(f, x), &x, &v).1.to_vec(), vec![6.0, 12.0]);
/// ```
pub fn hvp(f: impl Fn(&Var) -> Var, x: &Var, v: &Var) -> Var {
    let v = crate::forward::as_tangent("hvp", x, v);
    gradient(|x: &Var| (gradient(&f, x) * &v).sum(), x)
}

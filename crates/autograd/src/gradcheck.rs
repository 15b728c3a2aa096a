//! `gradcheck`: reverse-mode gradients against central finite differences, in f64.
//!
//! First order compares `∇L` with `(L(x + h) - L(x - h)) / 2h` element by element, where `L`
//! is the function's output projected on a fixed random direction (so every output element is
//! checked). Second order does the same for `x ↦ ⟨∇L(x), v⟩` with a random `v`: its reverse-mode
//! gradient is a gradient of a gradient (a Hessian-vector product), and its finite differences
//! are differences of first-order gradients.
//!
//! Forward mode is checked the same way: [`gradcheck_forward`] compares the tangent [`jvps`]
//! carries with `(f(x + hv) - f(x - hv)) / 2h` for a random direction `v`, every output
//! element; [`gradcheck_mixed`] compares reverse over forward (the gradient of `⟨jvp(f)·v, w⟩`)
//! with forward over reverse (the `jvp` of the gradient of `⟨f, w⟩`): two routes to the same
//! Hessian-vector product through different rules.

use std::fmt;

use flux_tensor::rand::rngs::StdRng;
use flux_tensor::rand::SeedableRng;
use flux_tensor::Tensor;

use crate::forward::jvps;
use crate::gradient::gradients;
use crate::var::Var;

/// Step and tolerances: an element passes when `|analytic - numeric| <= atol + rtol * |numeric|`.
///
/// ```
/// let c = flux_autograd::GradcheckConfig::default();
/// assert!(c.eps > 0.0 && c.rtol > 0.0);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct GradcheckConfig {
    /// Finite-difference step.
    pub eps: f64,
    /// Relative tolerance.
    pub rtol: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// Seed of the random projection directions.
    pub seed: u64,
}

impl Default for GradcheckConfig {
    fn default() -> Self {
        GradcheckConfig { eps: 1e-6, rtol: 1e-5, atol: 1e-6, seed: 7 }
    }
}

/// The outcome of one check: how many elements were compared and the worst one.
///
/// ```
/// use flux_autograd::{gradcheck, Var};
/// use flux_tensor::Tensor;
/// let r = gradcheck(|x: &[Var]| x[0].sin().sum(), &[Tensor::randn(&[3])]).unwrap();
/// assert_eq!(r.elements, 3);
/// ```
#[derive(Clone, Debug)]
pub struct GradcheckReport {
    /// Elements compared.
    pub elements: usize,
    /// Largest `|analytic - numeric| - rtol * |numeric|` excess seen (≤ atol when passing).
    pub worst_excess: f64,
    /// The worst element: (input index, element index, analytic, numeric).
    pub worst: Option<(usize, usize, f64, f64)>,
}

/// Which derivatives a check compares.
///
/// ```
/// assert_ne!(flux_autograd::GradcheckKind::Reverse, flux_autograd::GradcheckKind::Forward);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GradcheckKind {
    /// Reverse mode (order 1: gradients, order 2: gradients of gradients) against finite
    /// differences.
    Reverse,
    /// Forward mode's tangent against finite differences (`element` is the output's element).
    Forward,
    /// Reverse over forward (`analytic`) against forward over reverse (`numeric`).
    Mixed,
    /// A derivative of the wrong shape (a gradient not shaped like its input, a tangent not
    /// shaped like the output), whatever its elements.
    Shape {
        /// The derivative's shape.
        got: Vec<usize>,
        /// The shape it should have.
        expected: Vec<usize>,
    },
}

/// A failed check, naming the input and element and both values.
///
/// ```
/// use flux_autograd::{GradcheckError, GradcheckKind};
/// let e = GradcheckError { kind: GradcheckKind::Reverse, order: 1, input: 0, element: 2, analytic: 1.0, numeric: 2.0 };
/// assert!(e.to_string().contains("input 0, element 2"));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct GradcheckError {
    /// What was compared.
    pub kind: GradcheckKind,
    /// 1 for a gradient, 2 for a gradient of a gradient.
    pub order: u8,
    /// Which input.
    pub input: usize,
    /// Which element of it (column-major).
    pub element: usize,
    /// Reverse mode's value.
    pub analytic: f64,
    /// Finite differences' value.
    pub numeric: f64,
}

impl fmt::Display for GradcheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let diff = (self.analytic - self.numeric).abs();
        match &self.kind {
            GradcheckKind::Shape { got, expected } => {
                write!(f, "gradcheck (order {}): input {}: the derivative has shape {got:?}, expected {expected:?}", self.order, self.input)
            }
            GradcheckKind::Reverse => write!(
                f,
                "gradcheck (order {}): input {}, element {}: reverse mode gives {:.10e}, finite differences {:.10e} (difference {diff:.3e})",
                self.order, self.input, self.element, self.analytic, self.numeric
            ),
            GradcheckKind::Forward => write!(
                f,
                "gradcheck (forward mode): output element {}: the jvp tangent is {:.10e}, finite differences {:.10e} (difference {diff:.3e})",
                self.element, self.analytic, self.numeric
            ),
            GradcheckKind::Mixed => write!(
                f,
                "gradcheck (order 2, mixed modes): input {}, element {}: reverse over forward gives {:.10e}, forward over reverse {:.10e} (difference {diff:.3e})",
                self.input, self.element, self.analytic, self.numeric
            ),
        }
    }
}

impl std::error::Error for GradcheckError {}

/// Random direction of the given shape (fixed by `seed`).
fn direction(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = StdRng::seed_from_u64(seed);
    Tensor::randn_with(shape, &mut rng)
}

/// Compares the reverse-mode gradient of scalar `l` at `xs` with central differences.
fn compare(order: u8, l: &dyn Fn(&[Var]) -> Var, xs: &[Tensor], cfg: &GradcheckConfig) -> Result<GradcheckReport, GradcheckError> {
    let vars: Vec<Var> = xs.iter().map(|x| Var::constant(x.clone())).collect();
    let grads = gradients(l, &vars);
    for (i, (g, x)) in grads.iter().zip(xs).enumerate() {
        shape_check(order, i, &g.shape(), x.shape())?;
    }
    let analytic: Vec<Vec<f64>> = grads.iter().map(|g| g.to_vec()).collect();
    let eval = |xs: &[Tensor]| -> f64 {
        let vs: Vec<Var> = xs.iter().map(|x| Var::constant(x.clone())).collect();
        l(&vs).item()
    };
    let mut report = GradcheckReport { elements: 0, worst_excess: f64::NEG_INFINITY, worst: None };
    for (i, x) in xs.iter().enumerate() {
        let base = x.to_vec();
        for e in 0..base.len() {
            let at = |delta: f64| {
                let mut v = base.clone();
                v[e] += delta;
                let mut moved = xs.to_vec();
                moved[i] = Tensor::from_vec(v, x.shape());
                eval(&moved)
            };
            let numeric = (at(cfg.eps) - at(-cfg.eps)) / (2.0 * cfg.eps);
            let a = analytic[i][e];
            let excess = (a - numeric).abs() - cfg.rtol * numeric.abs();
            report.elements += 1;
            if excess > report.worst_excess || a.is_nan() != numeric.is_nan() {
                report.worst_excess = excess;
                report.worst = Some((i, e, a, numeric));
            }
            if excess.is_nan() || excess > cfg.atol {
                return Err(GradcheckError { kind: GradcheckKind::Reverse, order, input: i, element: e, analytic: a, numeric });
            }
        }
    }
    Ok(report)
}

/// Projects a function's output on a fixed random direction, making it scalar.
fn projected<'a>(f: &'a dyn Fn(&[Var]) -> Var, xs: &[Tensor], seed: u64) -> impl Fn(&[Var]) -> Var + 'a {
    let probe: Vec<Var> = xs.iter().map(|x| Var::constant(x.clone())).collect();
    let shape = f(&probe).shape();
    let w = Var::constant(direction(&shape, seed));
    move |v: &[Var]| (f(v) * &w).sum()
}

/// First-order check of `f` at `inputs` (converted to f64) with default tolerances.
///
/// ```
/// use flux_autograd::{gradcheck, Var};
/// use flux_tensor::Tensor;
/// gradcheck(|x: &[Var]| x[0].tanh() * &x[1], &[Tensor::randn(&[2, 3]), Tensor::randn(&[2])]).unwrap();
/// ```
pub fn gradcheck(f: impl Fn(&[Var]) -> Var, inputs: &[Tensor]) -> Result<GradcheckReport, GradcheckError> {
    gradcheck_with(f, inputs, &GradcheckConfig::default())
}

/// First-order check with explicit tolerances.
///
/// ```
/// use flux_autograd::{gradcheck_with, GradcheckConfig, Var};
/// use flux_tensor::Tensor;
/// gradcheck_with(|x: &[Var]| x[0].exp(), &[Tensor::randn(&[3])], &GradcheckConfig::default()).unwrap();
/// ```
pub fn gradcheck_with(f: impl Fn(&[Var]) -> Var, inputs: &[Tensor], cfg: &GradcheckConfig) -> Result<GradcheckReport, GradcheckError> {
    let xs: Vec<Tensor> = inputs.iter().map(|x| x.to_f64()).collect();
    let l = projected(&f, &xs, cfg.seed);
    compare(1, &l, &xs, cfg)
}

/// Second-order check: the gradient of `x ↦ ⟨∇L(x), v⟩` (a gradient of a gradient, i.e. a
/// Hessian-vector product) against finite differences of first-order gradients.
///
/// ```
/// use flux_autograd::{gradcheck2, Var};
/// use flux_tensor::Tensor;
/// gradcheck2(|x: &[Var]| x[0].tanh().powi(3), &[Tensor::randn(&[4])]).unwrap();
/// ```
pub fn gradcheck2(f: impl Fn(&[Var]) -> Var, inputs: &[Tensor]) -> Result<GradcheckReport, GradcheckError> {
    gradcheck2_with(f, inputs, &GradcheckConfig { rtol: 1e-4, atol: 1e-5, ..GradcheckConfig::default() })
}

/// Second-order check with explicit tolerances.
///
/// ```
/// use flux_autograd::{gradcheck2_with, GradcheckConfig, Var};
/// use flux_tensor::Tensor;
/// gradcheck2_with(|x: &[Var]| x[0].sin(), &[Tensor::randn(&[2])], &GradcheckConfig::default()).unwrap();
/// ```
pub fn gradcheck2_with(f: impl Fn(&[Var]) -> Var, inputs: &[Tensor], cfg: &GradcheckConfig) -> Result<GradcheckReport, GradcheckError> {
    let xs: Vec<Tensor> = inputs.iter().map(|x| x.to_f64()).collect();
    let l = projected(&f, &xs, cfg.seed);
    let vs: Vec<Var> = xs.iter().enumerate().map(|(i, x)| Var::constant(direction(x.shape(), cfg.seed + 1 + i as u64))).collect();
    let gv = |x: &[Var]| -> Var {
        let g = gradients(&l, x);
        g.iter().zip(&vs).map(|(g, v)| (g * v).sum()).sum()
    };
    compare(2, &gv, &xs, cfg)
}

/// Compares `analytic` with `numeric` element by element under `cfg`'s tolerances, updating
/// `report`; the first element out of tolerance is the error.
fn compare_slices(
    kind: GradcheckKind,
    order: u8,
    input: usize,
    analytic: &[f64],
    numeric: &[f64],
    cfg: &GradcheckConfig,
    report: &mut GradcheckReport,
) -> Result<(), GradcheckError> {
    for (e, (&a, &numeric)) in analytic.iter().zip(numeric).enumerate() {
        let excess = (a - numeric).abs() - cfg.rtol * numeric.abs();
        report.elements += 1;
        if excess > report.worst_excess || a.is_nan() != numeric.is_nan() {
            report.worst_excess = excess;
            report.worst = Some((input, e, a, numeric));
        }
        if excess.is_nan() || excess > cfg.atol {
            return Err(GradcheckError { kind, order, input, element: e, analytic: a, numeric });
        }
    }
    Ok(())
}

/// An error unless a derivative has the shape it should.
fn shape_check(order: u8, input: usize, got: &[usize], expected: &[usize]) -> Result<(), GradcheckError> {
    if got == expected {
        return Ok(());
    }
    Err(GradcheckError {
        kind: GradcheckKind::Shape { got: got.to_vec(), expected: expected.to_vec() },
        order,
        input,
        element: 0,
        analytic: f64::NAN,
        numeric: f64::NAN,
    })
}

/// Random directions, one per input, in the inputs' shapes (fixed by `seed`).
fn directions(xs: &[Tensor], seed: u64) -> Vec<Tensor> {
    xs.iter().enumerate().map(|(i, x)| direction(x.shape(), seed + 101 + i as u64)).collect()
}

/// Forward-mode check of `f` at `inputs` (converted to f64) with default tolerances: the
/// tangent [`jvps`] carries along a random direction against central finite differences of
/// `f` along it, every output element.
///
/// ```
/// use flux_autograd::{gradcheck_forward, Var};
/// use flux_tensor::Tensor;
/// let r = gradcheck_forward(|x: &[Var]| x[0].tanh() * &x[1], &[Tensor::randn(&[2, 3]), Tensor::randn(&[2])]).unwrap();
/// assert_eq!(r.elements, 6);
/// ```
pub fn gradcheck_forward(f: impl Fn(&[Var]) -> Var, inputs: &[Tensor]) -> Result<GradcheckReport, GradcheckError> {
    gradcheck_forward_with(f, inputs, &GradcheckConfig::default())
}

/// Forward-mode check with explicit tolerances.
///
/// ```
/// use flux_autograd::{gradcheck_forward_with, GradcheckConfig, Var};
/// use flux_tensor::Tensor;
/// gradcheck_forward_with(|x: &[Var]| x[0].exp(), &[Tensor::randn(&[3])], &GradcheckConfig::default()).unwrap();
/// ```
pub fn gradcheck_forward_with(f: impl Fn(&[Var]) -> Var, inputs: &[Tensor], cfg: &GradcheckConfig) -> Result<GradcheckReport, GradcheckError> {
    let xs: Vec<Tensor> = inputs.iter().map(|x| x.to_f64()).collect();
    let vs = directions(&xs, cfg.seed);
    let vars: Vec<Var> = xs.iter().map(|x| Var::constant(x.clone())).collect();
    let dirs: Vec<Var> = vs.iter().map(|v| Var::constant(v.clone())).collect();
    let (y, t) = jvps(&f, &vars, &dirs);
    shape_check(1, 0, &t.shape(), &y.shape())?;
    let at = |h: f64| -> Vec<f64> {
        let moved: Vec<Var> = xs.iter().zip(&vs).map(|(x, v)| Var::constant(x + &(v * h))).collect();
        f(&moved).to_vec()
    };
    let (plus, minus) = (at(cfg.eps), at(-cfg.eps));
    let numeric: Vec<f64> = plus.iter().zip(&minus).map(|(p, m)| (p - m) / (2.0 * cfg.eps)).collect();
    let mut report = GradcheckReport { elements: 0, worst_excess: f64::NEG_INFINITY, worst: None };
    compare_slices(GradcheckKind::Forward, 1, 0, &t.to_vec(), &numeric, cfg, &mut report)?;
    Ok(report)
}

/// Mixed second-order check with default second-order tolerances: reverse over forward (the
/// gradient of `x ↦ ⟨jvp(f, x, v), w⟩`) against forward over reverse (the `jvp` along `v` of
/// the gradient of `x ↦ ⟨f(x), w⟩`), for random `v` and `w`. Both are the Hessian of `⟨f, w⟩`
/// times `v`, reached through different rules (every tangent rule differentiated in reverse
/// mode, every backward rule differentiated in forward mode).
///
/// ```
/// use flux_autograd::{gradcheck_mixed, Var};
/// use flux_tensor::Tensor;
/// gradcheck_mixed(|x: &[Var]| x[0].tanh().powi(3), &[Tensor::randn(&[4])]).unwrap();
/// ```
pub fn gradcheck_mixed(f: impl Fn(&[Var]) -> Var, inputs: &[Tensor]) -> Result<GradcheckReport, GradcheckError> {
    gradcheck_mixed_with(f, inputs, &GradcheckConfig { rtol: 1e-4, atol: 1e-5, ..GradcheckConfig::default() })
}

/// Mixed second-order check with explicit tolerances.
///
/// ```
/// use flux_autograd::{gradcheck_mixed_with, GradcheckConfig, Var};
/// use flux_tensor::Tensor;
/// gradcheck_mixed_with(|x: &[Var]| x[0].sin(), &[Tensor::randn(&[2])], &GradcheckConfig::default()).unwrap();
/// ```
pub fn gradcheck_mixed_with(f: impl Fn(&[Var]) -> Var, inputs: &[Tensor], cfg: &GradcheckConfig) -> Result<GradcheckReport, GradcheckError> {
    let xs: Vec<Tensor> = inputs.iter().map(|x| x.to_f64()).collect();
    let l = projected(&f, &xs, cfg.seed);
    let vars: Vec<Var> = xs.iter().map(|x| Var::constant(x.clone())).collect();
    let dirs: Vec<Var> = directions(&xs, cfg.seed).into_iter().map(Var::constant).collect();
    // reverse over forward: ∇ₓ ⟨J(x)·v, w⟩
    let rof = gradients(|x: &[Var]| jvps(&l, x, &dirs).1, &vars);
    // forward over reverse: the tangent of ∇ₓ⟨f(x), w⟩ along v, every input's part in one value
    let flat = |gs: Vec<Var>| Var::concat(&gs.iter().map(|g| g.reshape(&[g.numel()])).collect::<Vec<_>>(), 0);
    let (_, fwd) = jvps(|x: &[Var]| flat(gradients(&l, x)), &vars, &dirs);
    let fwd = fwd.to_vec();
    let mut report = GradcheckReport { elements: 0, worst_excess: f64::NEG_INFINITY, worst: None };
    let mut start = 0;
    for (i, (g, x)) in rof.iter().zip(&xs).enumerate() {
        shape_check(2, i, &g.shape(), x.shape())?;
        let n = g.numel();
        compare_slices(GradcheckKind::Mixed, 2, i, &g.to_vec(), &fwd[start..start + n], cfg, &mut report)?;
        start += n;
    }
    Ok(report)
}

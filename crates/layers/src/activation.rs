//! Activation functions, each a plain `fn(&Var) -> Var` (so `sigmoid(&x)` works and a list of
//! them coerces to function pointers). All are built from twice-differentiable primitives.

use flux_autograd::Var;

/// `x` unchanged (Flux's `identity`, the default activation of `Dense`).
///
/// ```
/// let x = flux_autograd::Var::scalar(3.0);
/// assert_eq!(flux_layers::identity(&x).item(), 3.0);
/// ```
pub fn identity(x: &Var) -> Var {
    x.clone()
}

/// Logistic sigmoid `σ(x) = 1 / (1 + e^-x)`, stable for large |x|.
///
/// ```
/// assert_eq!(flux_layers::sigmoid(&flux_autograd::Var::scalar(0.0)).item(), 0.5);
/// ```
pub fn sigmoid(x: &Var) -> Var {
    x.sigmoid()
}

/// Flux's name for [`sigmoid`].
///
/// ```
/// assert_eq!(flux_layers::σ(&flux_autograd::Var::scalar(0.0)).item(), 0.5);
/// ```
#[allow(non_snake_case)]
pub fn σ(x: &Var) -> Var {
    x.sigmoid()
}

/// Hyperbolic tangent.
///
/// ```
/// assert_eq!(flux_layers::tanh(&flux_autograd::Var::scalar(0.0)).item(), 0.0);
/// ```
pub fn tanh(x: &Var) -> Var {
    x.tanh()
}

/// `max(x, 0)`.
///
/// ```
/// assert_eq!(flux_layers::relu(&flux_autograd::Var::scalar(-2.0)).item(), 0.0);
/// ```
pub fn relu(x: &Var) -> Var {
    x.relu()
}

/// `max(x, 0.01x)` (Flux's default slope).
///
/// ```
/// assert_eq!(flux_layers::leakyrelu(&flux_autograd::Var::scalar(-2.0)).item(), -0.02);
/// ```
pub fn leakyrelu(x: &Var) -> Var {
    leakyrelu_with(x, 0.01)
}

/// `max(x, a·x)` for a slope `0 <= a < 1`.
///
/// ```
/// assert_eq!(flux_layers::leakyrelu_with(&flux_autograd::Var::scalar(-2.0), 0.5).item(), -1.0);
/// ```
pub fn leakyrelu_with(x: &Var, a: f64) -> Var {
    x.maximum(&(x * a))
}

/// `x` for `x > 0`, `eˣ - 1` otherwise (α = 1).
///
/// ```
/// assert_eq!(flux_layers::elu(&flux_autograd::Var::scalar(2.0)).item(), 2.0);
/// ```
pub fn elu(x: &Var) -> Var {
    elu_with(x, 1.0)
}

/// `x` for `x > 0`, `α(eˣ - 1)` otherwise.
///
/// ```
/// let y = flux_layers::elu_with(&flux_autograd::Var::scalar(-1000.0), 2.0).item();
/// assert_eq!(y, -2.0);
/// ```
pub fn elu_with(x: &Var, alpha: f64) -> Var {
    x.relu() + alpha * (x.clamp_max(0.0).exp() - 1.0)
}

/// Gaussian error linear unit, the tanh approximation Flux uses:
/// `0.5x(1 + tanh(√(2/π)(x + 0.044715x³)))`.
///
/// ```
/// assert_eq!(flux_layers::gelu(&flux_autograd::Var::scalar(0.0)).item(), 0.0);
/// ```
pub fn gelu(x: &Var) -> Var {
    // one fused op (forward and derivative each one vectorised pass) instead of eight
    x.gelu()
}

/// `x · σ(x)`.
///
/// ```
/// assert_eq!(flux_layers::swish(&flux_autograd::Var::scalar(0.0)).item(), 0.0);
/// ```
pub fn swish(x: &Var) -> Var {
    x * x.sigmoid()
}

/// `ln(1 + eˣ)`, stable for large |x|.
///
/// ```
/// assert_eq!(flux_layers::softplus(&flux_autograd::Var::scalar(100.0)).item(), 100.0);
/// ```
pub fn softplus(x: &Var) -> Var {
    x.softplus()
}

/// Log of the sigmoid, `logσ(x) = -softplus(-x)` (Flux's `logσ`, NNlib's `logsigmoid`),
/// computed stably: no overflow for large negative `x` and exactly 0 for large positive `x`.
///
/// ```
/// use flux_autograd::Var;
/// use flux_tensor::Tensor;
/// let x = Var::from(Tensor::from_vec(vec![-1000.0, 0.0, 1000.0], &[3]));
/// assert_eq!(flux_layers::logsigmoid(&x).to_vec(), vec![-1000.0, -(2f64.ln()), 0.0]);
/// ```
pub fn logsigmoid(x: &Var) -> Var {
    -(-x).softplus()
}

/// Softmax along the first (feature) dimension, max-subtracted: each column of a
/// `[classes, batch]` matrix sums to 1.
///
/// ```
/// use flux_autograd::Var;
/// let x = Var::from(flux_tensor::Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]));
/// let y = flux_layers::softmax(&x);
/// assert!((y.sum().item() - 2.0).abs() < 1e-12);
/// ```
pub fn softmax(x: &Var) -> Var {
    x.softmax(0)
}

/// Log of [`softmax`] along the first dimension, computed stably.
///
/// ```
/// use flux_autograd::Var;
/// let x = Var::from(flux_tensor::Tensor::from_vec(vec![0.0, 0.0], &[2]));
/// assert!((flux_layers::logsoftmax(&x).to_vec()[0] + 2f64.ln()).abs() < 1e-15);
/// ```
pub fn logsoftmax(x: &Var) -> Var {
    x.logsoftmax(0)
}

/// Every activation with its Flux name, for tests and the gradcheck suite.
///
/// ```
/// assert_eq!(flux_layers::ACTIVATIONS.len(), 12);
/// ```
pub const ALL: [(&str, fn(&Var) -> Var); 12] = [
    ("identity", identity),
    ("sigmoid", sigmoid),
    ("tanh", tanh),
    ("relu", relu),
    ("leakyrelu", leakyrelu),
    ("elu", elu),
    ("gelu", gelu),
    ("swish", swish),
    ("softplus", softplus),
    ("softmax", softmax),
    ("logsoftmax", logsoftmax),
    ("logsigmoid", logsigmoid),
];

//! Elementwise functions of one tensor: [`UnaryOp`] names each (autograd dispatches on it), and
//! each has a numerically careful scalar form applied in one pass over contiguous memory.

use crate::dtype::Element;
use crate::kernels::vmath;
use crate::shape::Shape;
use crate::tensor::{Elements, StorageElement, Tensor};

/// An elementwise function. The parameterised ones carry their constant as f64 (converted to
/// the tensor's dtype when applied).
///
/// ```
/// use flux_tensor::{Tensor, UnaryOp};
/// let t = Tensor::from_vec(vec![-1.0, 2.0], &[2]);
/// assert_eq!(t.unary(UnaryOp::Relu).to_vec(), vec![0.0, 2.0]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    /// `-x`
    Neg,
    /// `e^x`
    Exp,
    /// `ln x`
    Ln,
    /// `ln(1 + x)`
    Log1p,
    /// `√x`
    Sqrt,
    /// `|x|`
    Abs,
    /// `sign(x)` (0 at 0)
    Sign,
    /// `sin x`
    Sin,
    /// `cos x`
    Cos,
    /// `tanh x`
    Tanh,
    /// `1 / (1 + e^-x)`, computed without overflow
    Sigmoid,
    /// `max(x, 0)`
    Relu,
    /// `1` where `x > 0`, else `0` (the derivative of relu)
    Step,
    /// `ln(1 + e^x)`, computed without overflow
    Softplus,
    /// `1 / x`
    Recip,
    /// `x^n` for an integer `n`
    Powi(i32),
    /// `x^p` for a real `p`
    Powf(f64),
    /// `x + c`
    AddScalar(f64),
    /// `x * c`
    MulScalar(f64),
    /// `c - x`
    RSubScalar(f64),
    /// `c / x`
    RDivScalar(f64),
    /// `max(x, c)`
    MaxScalar(f64),
    /// `min(x, c)`
    MinScalar(f64),
    /// Flux's GELU, the tanh form `0.5x(1 + tanh(√(2/π)(x + 0.044715x³)))`, in one pass
    Gelu,
    /// The derivative of [`UnaryOp::Gelu`]
    GeluDeriv,
}

impl UnaryOp {
    /// The op's name in error messages and graph dumps.
    ///
    /// ```
    /// assert_eq!(flux_tensor::UnaryOp::Tanh.name(), "tanh");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Exp => "exp",
            UnaryOp::Ln => "ln",
            UnaryOp::Log1p => "log1p",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Abs => "abs",
            UnaryOp::Sign => "sign",
            UnaryOp::Sin => "sin",
            UnaryOp::Cos => "cos",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::Relu => "relu",
            UnaryOp::Step => "step",
            UnaryOp::Softplus => "softplus",
            UnaryOp::Recip => "recip",
            UnaryOp::Powi(_) => "powi",
            UnaryOp::Powf(_) => "powf",
            UnaryOp::AddScalar(_) => "add_scalar",
            UnaryOp::MulScalar(_) => "mul_scalar",
            UnaryOp::RSubScalar(_) => "rsub_scalar",
            UnaryOp::RDivScalar(_) => "rdiv_scalar",
            UnaryOp::MaxScalar(_) => "max_scalar",
            UnaryOp::MinScalar(_) => "min_scalar",
            UnaryOp::Gelu => "gelu",
            UnaryOp::GeluDeriv => "gelu_deriv",
        }
    }

    /// Applies the function to one value.
    ///
    /// ```
    /// assert_eq!(flux_tensor::UnaryOp::Powi(3).apply(2.0f64), 8.0);
    /// ```
    #[inline(always)]
    pub fn apply<T: Element>(self, x: T) -> T {
        match self {
            UnaryOp::Neg => -x,
            UnaryOp::Exp => x.exp(),
            UnaryOp::Ln => x.ln(),
            UnaryOp::Log1p => x.ln_1p(),
            UnaryOp::Sqrt => x.sqrt(),
            UnaryOp::Abs => x.abs(),
            UnaryOp::Sign => sign(x),
            UnaryOp::Sin => x.sin(),
            UnaryOp::Cos => x.cos(),
            UnaryOp::Tanh => x.tanh(),
            UnaryOp::Sigmoid => sigmoid(x),
            UnaryOp::Relu => relu(x),
            UnaryOp::Step => {
                if x > T::ZERO {
                    T::ONE
                } else {
                    T::ZERO
                }
            }
            UnaryOp::Softplus => softplus(x),
            UnaryOp::Recip => T::ONE / x,
            UnaryOp::Powi(n) => x.powi(n),
            UnaryOp::Powf(p) => x.powf(T::from_f64(p)),
            UnaryOp::AddScalar(c) => x + T::from_f64(c),
            UnaryOp::MulScalar(c) => x * T::from_f64(c),
            UnaryOp::RSubScalar(c) => T::from_f64(c) - x,
            UnaryOp::RDivScalar(c) => T::from_f64(c) / x,
            UnaryOp::MaxScalar(c) => x.maximum(T::from_f64(c)),
            UnaryOp::MinScalar(c) => x.minimum(T::from_f64(c)),
            UnaryOp::Gelu => gelu(x),
            UnaryOp::GeluDeriv => gelu_deriv(x),
        }
    }
}

/// `sign(x)`: -1, 0 or 1 (NaN stays NaN).
///
/// ```
/// assert_eq!(flux_tensor::sign(-3.0f64), -1.0);
/// ```
#[inline(always)]
pub fn sign<T: Element>(x: T) -> T {
    if x > T::ZERO {
        T::ONE
    } else if x < T::ZERO {
        -T::ONE
    } else {
        x
    }
}

/// Logistic sigmoid that never overflows: for negative `x` it uses `e^x / (1 + e^x)`.
///
/// ```
/// assert_eq!(flux_tensor::sigmoid(-1000.0f32), 0.0);
/// ```
#[inline(always)]
pub fn sigmoid<T: Element>(x: T) -> T {
    if x >= T::ZERO {
        T::ONE / (T::ONE + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::ONE + e)
    }
}

/// `max(x, 0)`; NaN stays NaN.
///
/// ```
/// assert_eq!(flux_tensor::relu(-2.0f64), 0.0);
/// ```
#[inline(always)]
pub fn relu<T: Element>(x: T) -> T {
    if x < T::ZERO {
        T::ZERO
    } else {
        x
    }
}

/// `ln(1 + e^x)` as `max(x, 0) + ln(1 + e^-|x|)`, exact for large |x|.
///
/// ```
/// assert_eq!(flux_tensor::softplus(1000.0f64), 1000.0);
/// ```
#[inline(always)]
pub fn softplus<T: Element>(x: T) -> T {
    relu(x) + (-x.abs()).exp().ln_1p()
}

/// `√(2/π)` and the cubic coefficient of the tanh-form GELU.
const GELU_C: f64 = 0.797_884_560_802_865_4;
const GELU_A: f64 = 0.044_715;

/// `e^{2u}` for the GELU's `u = √(2/π)(x + 0.044715x³)`.
#[inline(always)]
fn gelu_exp2u<T: Element>(x: T) -> T {
    let c = T::from_f64(GELU_C);
    (T::from_f64(2.0) * c * (x + T::from_f64(GELU_A) * x * x * x)).exp()
}

/// Flux's tanh-form GELU `0.5x(1 + tanh u)`, `u = √(2/π)(x + 0.044715x³)`, evaluated as the
/// identical `x·σ(2u) = x / (1 + e^{-2u})` (no cancellation for negative `x`, which the tanh
/// form loses to `1 + tanh u ≈ 0`). f32 tensors take a vectorised build of the same formula.
///
/// ```
/// assert_eq!(flux_tensor::gelu(0.0f64), 0.0);
/// assert!((flux_tensor::gelu(1.0f64) - 0.841_191_990_608_276_8).abs() < 1e-15);
/// ```
#[inline(always)]
pub fn gelu<T: Element>(x: T) -> T {
    x / (T::ONE + T::ONE / gelu_exp2u(x))
}

/// The derivative of [`gelu`]: `s + 2x·u'·s(1 - s)` with `s = σ(2u)` and
/// `u' = √(2/π)(1 + 3·0.044715x²)`; `s` and `1 - s` are each computed directly, so neither
/// cancels nor overflows.
///
/// ```
/// assert_eq!(flux_tensor::gelu_deriv(0.0f64), 0.5);
/// ```
#[inline(always)]
pub fn gelu_deriv<T: Element>(x: T) -> T {
    let e = gelu_exp2u(x);
    let s = T::ONE / (T::ONE + T::ONE / e);
    let one_minus_s = T::ONE / (T::ONE + e);
    let du = T::from_f64(GELU_C) * (T::ONE + T::from_f64(3.0 * GELU_A) * x * x);
    s + T::from_f64(2.0) * x * du * s * one_minus_s
}

/// Maps `f` over a slice into a new vector: one pass, no bounds checks.
#[inline(always)]
pub(crate) fn map<T: Copy, U, F: Fn(T) -> U>(x: &[T], f: F) -> Vec<U> {
    x.iter().map(|&v| f(v)).collect()
}

fn apply_typed<T: StorageElement>(x: &[T], op: UnaryOp, shape: Shape) -> Tensor {
    if let [v] = x {
        // one element (a tracked scalar's arithmetic): no buffer at all
        return Tensor::from_one(op.apply(*v), shape);
    }
    // One monomorphised loop per op, so the match is outside the hot loop.
    macro_rules! go {
        ($f:expr) => {
            Tensor::from_typed(map(x, $f), shape)
        };
    }
    match op {
        UnaryOp::Neg => go!(|v: T| -v),
        UnaryOp::Exp => go!(|v: T| v.exp()),
        UnaryOp::Ln => go!(|v: T| v.ln()),
        UnaryOp::Tanh => go!(|v: T| v.tanh()),
        UnaryOp::Sigmoid => go!(sigmoid::<T>),
        UnaryOp::Relu => go!(relu::<T>),
        UnaryOp::Sin => go!(|v: T| v.sin()),
        UnaryOp::Cos => go!(|v: T| v.cos()),
        UnaryOp::AddScalar(c) => {
            let c = T::from_f64(c);
            go!(|v: T| v + c)
        }
        UnaryOp::MulScalar(c) => {
            let c = T::from_f64(c);
            go!(|v: T| v * c)
        }
        UnaryOp::Powi(2) => go!(|v: T| v * v),
        other => go!(|v: T| other.apply(v)),
    }
}

impl Tensor {
    /// Applies an elementwise function, keeping shape and dtype.
    ///
    /// ```
    /// use flux_tensor::{Tensor, UnaryOp};
    /// let t = Tensor::from_vec(vec![0.0], &[1]);
    /// assert_eq!(t.unary(UnaryOp::Sigmoid).item(), 0.5);
    /// ```
    pub fn unary(&self, op: UnaryOp) -> Tensor {
        if let Elements::F32(x) = self.elements() {
            // the vectorised f32 builds (the same formulas, a few ulps from libm's)
            let f32_map = |f: fn(f32) -> f32, v: fn(&[f32]) -> Vec<f32>| match x {
                [one] => Tensor::from_one(f(*one), self.shape().clone()),
                _ => Tensor::from_typed(v(x), self.shape().clone()),
            };
            match op {
                UnaryOp::Tanh => return f32_map(vmath::tanh, |x| vmath::map1(x, vmath::tanh)),
                UnaryOp::Gelu => return f32_map(vmath::gelu, |x| vmath::map1(x, vmath::gelu)),
                UnaryOp::GeluDeriv => return f32_map(vmath::gelu_deriv, |x| vmath::map1(x, vmath::gelu_deriv)),
                _ => {}
            }
        }
        crate::dispatch!(self, |v: T| apply_typed::<T>(v, op, self.shape().clone()))
    }

    /// Maps an arbitrary f64 function over the elements (computed in f64, stored in the
    /// tensor's dtype). For custom ops; the built-in functions are faster.
    ///
    /// ```
    /// let t = flux_tensor::Tensor::from_vec(vec![1.0, 2.0], &[2]);
    /// assert_eq!(t.map(|x| x * 10.0).to_vec(), vec![10.0, 20.0]);
    /// ```
    pub fn map(&self, f: impl Fn(f64) -> f64) -> Tensor {
        crate::dispatch!(self, |v: T| Tensor::from_typed(map(v, |x: T| T::from_f64(f(x.to_f64()))), self.shape().clone()))
    }
}

/// Functions with a one-pass gradient kernel: their derivative is cheap in terms of `x` or
/// `y = f(x)`.
fn has_grad_kernel(op: UnaryOp) -> bool {
    matches!(op, UnaryOp::Relu | UnaryOp::Tanh | UnaryOp::Sigmoid | UnaryOp::Exp | UnaryOp::Gelu)
}

/// `g * f'(x)` for an op with a grad kernel. `op` is a constant in the loops that call it, so
/// the match folds away.
#[inline(always)]
fn grad_one<T: Element>(op: UnaryOp, x: T, y: T, g: T) -> T {
    match op {
        UnaryOp::Relu => {
            if x > T::ZERO {
                g
            } else {
                T::ZERO
            }
        }
        UnaryOp::Tanh => g * (T::ONE - y * y),
        UnaryOp::Sigmoid => g * y * (T::ONE - y),
        UnaryOp::Gelu => g * gelu_deriv(x),
        _ => g * y, // Exp
    }
}

/// One-pass gradient kernels `dx = g .* f'(x)`: save the temporaries of the composed form.
fn grad_typed<T: StorageElement>(op: UnaryOp, x: &[T], y: &[T], g: &[T], shape: Shape) -> Option<Tensor> {
    if !has_grad_kernel(op) {
        return None;
    }
    if let ([x], [y], [g]) = (x, y, g) {
        return Some(Tensor::from_one(grad_one(op, *x, *y, *g), shape));
    }
    macro_rules! go {
        ($op:expr) => {
            x.iter().zip(y).zip(g).map(|((&x, &y), &g)| grad_one($op, x, y, g)).collect()
        };
    }
    let v: Vec<T> = match op {
        UnaryOp::Relu => go!(UnaryOp::Relu),
        UnaryOp::Tanh => go!(UnaryOp::Tanh),
        UnaryOp::Sigmoid => go!(UnaryOp::Sigmoid),
        UnaryOp::Gelu => go!(UnaryOp::Gelu),
        _ => go!(UnaryOp::Exp),
    };
    Some(Tensor::from_typed(v, shape))
}

impl Tensor {
    /// `g .* f'(x)` in one pass for `Relu`, `Tanh`, `Sigmoid`, `Exp` and `Gelu` (given `x` and
    /// `y = f(x)`, all of one shape and dtype); `None` for other functions or mixed inputs.
    ///
    /// ```
    /// use flux_tensor::{Tensor, UnaryOp};
    /// let x = Tensor::from_vec(vec![-1.0, 2.0], &[2]);
    /// let g = Tensor::ones(&[2]);
    /// let d = Tensor::unary_grad(UnaryOp::Relu, &x, &x.relu(), &g).unwrap();
    /// assert_eq!(d.to_vec(), vec![0.0, 1.0]);
    /// ```
    pub fn unary_grad(op: UnaryOp, x: &Tensor, y: &Tensor, g: &Tensor) -> Option<Tensor> {
        if x.shape() != g.shape() || y.shape() != g.shape() {
            return None;
        }
        match (x.elements(), y.elements(), g.elements()) {
            // gelu's derivative in the vectorised f32 build, as its forward
            (Elements::F32(x), _, Elements::F32(gv)) if op == UnaryOp::Gelu && x.len() > 1 => {
                Some(Tensor::from_typed(vmath::map2(x, gv, vmath::gelu_grad), g.shape().clone()))
            }
            (Elements::F32(x), Elements::F32(y), Elements::F32(gv)) => grad_typed(op, x, y, gv, g.shape().clone()),
            (Elements::F64(x), Elements::F64(y), Elements::F64(gv)) => grad_typed(op, x, y, gv, g.shape().clone()),
            _ => None,
        }
    }
}

macro_rules! unary_methods {
    ($($(#[$doc:meta])* $name:ident => $op:expr;)*) => {
        impl Tensor {
            $(
                $(#[$doc])*
                pub fn $name(&self) -> Tensor {
                    self.unary($op)
                }
            )*
        }
    };
}

unary_methods! {
    /// `e^x` elementwise.
    ///
    /// ```
    /// assert_eq!(flux_tensor::Tensor::zeros(&[1]).exp().item(), 1.0);
    /// ```
    exp => UnaryOp::Exp;
    /// Natural logarithm elementwise.
    ///
    /// ```
    /// assert_eq!(flux_tensor::Tensor::ones(&[1]).ln().item(), 0.0);
    /// ```
    ln => UnaryOp::Ln;
    /// `ln(1 + x)` elementwise, accurate near 0.
    ///
    /// ```
    /// assert_eq!(flux_tensor::Tensor::zeros(&[1]).log1p().item(), 0.0);
    /// ```
    log1p => UnaryOp::Log1p;
    /// Square root elementwise.
    ///
    /// ```
    /// assert_eq!(flux_tensor::Tensor::full(&[1], 4.0).sqrt().item(), 2.0);
    /// ```
    sqrt => UnaryOp::Sqrt;
    /// Absolute value elementwise.
    ///
    /// ```
    /// assert_eq!(flux_tensor::Tensor::full(&[1], -2.0).abs().item(), 2.0);
    /// ```
    abs => UnaryOp::Abs;
    /// Sign elementwise (-1, 0, 1).
    ///
    /// ```
    /// assert_eq!(flux_tensor::Tensor::full(&[1], -2.0).sign().item(), -1.0);
    /// ```
    sign => UnaryOp::Sign;
    /// Sine elementwise.
    ///
    /// ```
    /// assert_eq!(flux_tensor::Tensor::zeros(&[1]).sin().item(), 0.0);
    /// ```
    sin => UnaryOp::Sin;
    /// Cosine elementwise.
    ///
    /// ```
    /// assert_eq!(flux_tensor::Tensor::zeros(&[1]).cos().item(), 1.0);
    /// ```
    cos => UnaryOp::Cos;
    /// Hyperbolic tangent elementwise.
    ///
    /// ```
    /// assert_eq!(flux_tensor::Tensor::zeros(&[1]).tanh().item(), 0.0);
    /// ```
    tanh => UnaryOp::Tanh;
    /// Logistic sigmoid elementwise (stable for large |x|).
    ///
    /// ```
    /// assert_eq!(flux_tensor::Tensor::full(&[1], -1000.0).sigmoid().item(), 0.0);
    /// ```
    sigmoid => UnaryOp::Sigmoid;
    /// `max(x, 0)` elementwise.
    ///
    /// ```
    /// assert_eq!(flux_tensor::Tensor::full(&[1], -3.0).relu().item(), 0.0);
    /// ```
    relu => UnaryOp::Relu;
    /// `ln(1 + e^x)` elementwise (stable for large |x|).
    ///
    /// ```
    /// assert_eq!(flux_tensor::Tensor::full(&[1], 1000.0).softplus().item(), 1000.0);
    /// ```
    softplus => UnaryOp::Softplus;
    /// `1 / x` elementwise.
    ///
    /// ```
    /// assert_eq!(flux_tensor::Tensor::full(&[1], 4.0).recip().item(), 0.25);
    /// ```
    recip => UnaryOp::Recip;
}

impl Tensor {
    /// `x^n` elementwise for an integer power.
    ///
    /// ```
    /// assert_eq!(flux_tensor::Tensor::full(&[1], 3.0).powi(2).item(), 9.0);
    /// ```
    pub fn powi(&self, n: i32) -> Tensor {
        self.unary(UnaryOp::Powi(n))
    }

    /// `x^p` elementwise for a real power.
    ///
    /// ```
    /// assert_eq!(flux_tensor::Tensor::full(&[1], 4.0).powf(0.5).item(), 2.0);
    /// ```
    pub fn powf(&self, p: f64) -> Tensor {
        self.unary(UnaryOp::Powf(p))
    }

    /// `max(x, c)` elementwise.
    ///
    /// ```
    /// assert_eq!(flux_tensor::Tensor::full(&[1], 0.5).clamp_min(1.0).item(), 1.0);
    /// ```
    pub fn clamp_min(&self, c: f64) -> Tensor {
        self.unary(UnaryOp::MaxScalar(c))
    }

    /// `min(x, c)` elementwise.
    ///
    /// ```
    /// assert_eq!(flux_tensor::Tensor::full(&[1], 3.0).clamp_max(1.0).item(), 1.0);
    /// ```
    pub fn clamp_max(&self, c: f64) -> Tensor {
        self.unary(UnaryOp::MinScalar(c))
    }

    /// `x * c` elementwise.
    ///
    /// ```
    /// assert_eq!(flux_tensor::Tensor::full(&[1], 3.0).scale(2.0).item(), 6.0);
    /// ```
    pub fn scale(&self, c: f64) -> Tensor {
        self.unary(UnaryOp::MulScalar(c))
    }

    /// `x + c` elementwise.
    ///
    /// ```
    /// assert_eq!(flux_tensor::Tensor::full(&[1], 3.0).add_scalar(2.0).item(), 5.0);
    /// ```
    pub fn add_scalar(&self, c: f64) -> Tensor {
        self.unary(UnaryOp::AddScalar(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_forms_do_not_overflow() {
        let t = Tensor::from_vec(vec![-1000.0, 0.0, 1000.0], &[3]);
        assert_eq!(t.sigmoid().to_vec(), vec![0.0, 0.5, 1.0]);
        let sp = t.softplus().to_vec();
        assert_eq!(sp[0], 0.0);
        assert!((sp[1] - 2f64.ln()).abs() < 1e-15);
        assert_eq!(sp[2], 1000.0);
        let t32 = t.to_f32();
        assert!(!t32.sigmoid().has_nan());
        assert!(!t32.softplus().has_nan());
    }

    #[test]
    fn gelu_is_the_tanh_form_and_its_derivative() {
        let c = (2.0 / std::f64::consts::PI).sqrt();
        for x in [-30.0, -6.0, -1.3, -1e-3, 0.0, 0.4, 2.2, 9.0] {
            let t = (c * (x + 0.044715 * x * x * x)).tanh();
            let want = 0.5 * x * (1.0 + t);
            let dwant = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * c * (1.0 + 3.0 * 0.044715 * x * x);
            // the tanh form cancels for negative x: compare with an absolute floor
            assert!((gelu(x) - want).abs() <= 1e-15 * (1.0 + want.abs()), "gelu({x})");
            assert!((gelu_deriv(x) - dwant).abs() <= 1e-14, "gelu'({x})");
        }
        let x = Tensor::from_vec(vec![-2.0, -0.5, 0.0, 0.7, 3.0], &[5]).to_f32();
        let (y64, d64) = (x.to_f64().unary(UnaryOp::Gelu), x.to_f64().unary(UnaryOp::GeluDeriv));
        assert!(x.unary(UnaryOp::Gelu).to_f64().allclose(&y64, 1e-6, 1e-7));
        let g = Tensor::ones(&[5]).to_f32();
        let d = Tensor::unary_grad(UnaryOp::Gelu, &x, &x, &g).unwrap();
        assert!(d.to_f64().allclose(&d64, 1e-6, 1e-7) && x.unary(UnaryOp::GeluDeriv).to_f64().allclose(&d64, 1e-6, 1e-7));
    }

    #[test]
    fn every_op_matches_its_scalar_form() {
        let xs = vec![0.3, 1.7, 2.5];
        let t = Tensor::from_vec(xs.clone(), &[3]);
        let ops = [
            UnaryOp::Neg,
            UnaryOp::Exp,
            UnaryOp::Ln,
            UnaryOp::Log1p,
            UnaryOp::Sqrt,
            UnaryOp::Abs,
            UnaryOp::Sign,
            UnaryOp::Sin,
            UnaryOp::Cos,
            UnaryOp::Tanh,
            UnaryOp::Sigmoid,
            UnaryOp::Relu,
            UnaryOp::Step,
            UnaryOp::Softplus,
            UnaryOp::Recip,
            UnaryOp::Powi(3),
            UnaryOp::Powf(1.5),
            UnaryOp::AddScalar(2.0),
            UnaryOp::MulScalar(2.0),
            UnaryOp::RSubScalar(2.0),
            UnaryOp::RDivScalar(2.0),
            UnaryOp::MaxScalar(1.0),
            UnaryOp::MinScalar(1.0),
            UnaryOp::Gelu,
            UnaryOp::GeluDeriv,
        ];
        for op in ops {
            let got = t.unary(op).to_vec();
            for (g, &x) in got.iter().zip(&xs) {
                assert_eq!(*g, op.apply(x), "{}", op.name());
            }
        }
        assert_eq!(t.unary(UnaryOp::Tanh).to_vec()[0], 0.3f64.tanh());
        assert!((t.unary(UnaryOp::Softplus).to_vec()[1] - (1.0 + 1.7f64.exp()).ln()).abs() < 1e-15);
    }
}

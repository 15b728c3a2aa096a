//! Elementwise functions of two tensors with Julia broadcasting: dimensions are matched from the
//! first, a missing trailing dimension counts as 1, and a dimension of size 1 stretches.

use crate::dtype::Element;
use crate::error::{Result, TensorError};
use crate::shape::Shape;
use crate::tensor::{Elements, StorageElement, Tensor};

/// A binary elementwise operation. Comparisons return 1.0 or 0.0 in the promoted dtype.
///
/// ```
/// use flux_tensor::{BinaryOp, Tensor};
/// let a = Tensor::from_vec(vec![1.0, 5.0], &[2]);
/// let b = Tensor::from_vec(vec![3.0, 2.0], &[2]);
/// assert_eq!(a.binary(&b, BinaryOp::Max).to_vec(), vec![3.0, 5.0]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    /// `a + b`
    Add,
    /// `a - b`
    Sub,
    /// `a * b` (elementwise: Julia's `.*`)
    Mul,
    /// `a / b`
    Div,
    /// `a ^ b` elementwise
    Pow,
    /// `max(a, b)`
    Max,
    /// `min(a, b)`
    Min,
    /// `a > b`
    Gt,
    /// `a >= b`
    Ge,
    /// `a < b`
    Lt,
    /// `a <= b`
    Le,
    /// `a == b`
    Eq,
    /// `a .* (1 - b²)`: the backward of `tanh` from its output `b` and the gradient `a`, one
    /// op where the composed form records three (nested derivatives stay short).
    TanhGrad,
    /// `a .* b .* (1 - b)`: the backward of `sigmoid` from its output `b` and the gradient `a`.
    SigmoidGrad,
}

impl BinaryOp {
    /// The op's name in error messages.
    ///
    /// ```
    /// assert_eq!(flux_tensor::BinaryOp::Add.name(), "add");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Pow => "pow",
            BinaryOp::Max => "max",
            BinaryOp::Min => "min",
            BinaryOp::Gt => "gt",
            BinaryOp::Ge => "ge",
            BinaryOp::Lt => "lt",
            BinaryOp::Le => "le",
            BinaryOp::Eq => "eq",
            BinaryOp::TanhGrad => "tanh_grad",
            BinaryOp::SigmoidGrad => "sigmoid_grad",
        }
    }

    /// Applies the operation to two values.
    ///
    /// ```
    /// assert_eq!(flux_tensor::BinaryOp::Pow.apply(2.0f64, 3.0), 8.0);
    /// ```
    #[inline(always)]
    pub fn apply<T: Element>(self, a: T, b: T) -> T {
        let flag = |c: bool| if c { T::ONE } else { T::ZERO };
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
            BinaryOp::Pow => a.powf(b),
            BinaryOp::Max => a.maximum(b),
            BinaryOp::Min => a.minimum(b),
            BinaryOp::Gt => flag(a > b),
            BinaryOp::Ge => flag(a >= b),
            BinaryOp::Lt => flag(a < b),
            BinaryOp::Le => flag(a <= b),
            BinaryOp::Eq => flag(a == b),
            BinaryOp::TanhGrad => a * (T::ONE - b * b),
            BinaryOp::SigmoidGrad => a * b * (T::ONE - b),
        }
    }
}

/// The shape two shapes broadcast to, or an error naming `op`, both shapes and the first
/// disagreeing dimension.
///
/// ```
/// use flux_tensor::broadcast_shape;
/// assert_eq!(broadcast_shape("add", &[3], &[3, 4]).unwrap(), vec![3, 4]);
/// assert_eq!(broadcast_shape("add", &[1, 4], &[3]).unwrap(), vec![3, 4]);
/// assert!(broadcast_shape("add", &[2, 4], &[3]).is_err());
/// ```
pub fn broadcast_shape(op: &'static str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let rank = a.len().max(b.len());
    let mut out = Vec::with_capacity(rank);
    for d in 0..rank {
        let da = a.get(d).copied().unwrap_or(1);
        let db = b.get(d).copied().unwrap_or(1);
        out.push(if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return Err(TensorError::Broadcast { op, lhs: a.to_vec(), rhs: b.to_vec(), dim: d, a: da, b: db });
        });
    }
    Ok(out)
}

/// Column-major strides of `shape` seen inside `out`: 0 along dimensions that stretch.
pub(crate) fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let mut strides = Vec::with_capacity(out.len());
    let mut acc = 1;
    for d in 0..out.len() {
        let n = shape.get(d).copied().unwrap_or(1);
        strides.push(if n == 1 && out[d] != 1 { 0 } else { acc });
        acc *= n;
    }
    strides
}

/// Calls `f(out_offset_of_run, a_offset, b_offset)` once per run of dimension 0, walking the
/// other dimensions with an odometer. The inner run is handled by the caller's loop.
#[inline]
fn for_each_run(out: &[usize], sa: &[usize], sb: &[usize], mut f: impl FnMut(usize, usize, usize)) {
    let rank = out.len();
    let n0 = out.first().copied().unwrap_or(1);
    let outer: usize = out.iter().skip(1).product();
    let mut idx = vec![0usize; rank];
    let (mut oa, mut ob) = (0usize, 0usize);
    for run in 0..outer {
        f(run * n0, oa, ob);
        // advance the odometer over dims 1..rank
        for d in 1..rank {
            idx[d] += 1;
            oa += sa[d];
            ob += sb[d];
            if idx[d] < out[d] {
                break;
            }
            oa -= sa[d] * out[d];
            ob -= sb[d] * out[d];
            idx[d] = 0;
        }
    }
}

/// Broadcasting kernel: `out[i] = f(a[ia], b[ib])`.
pub(crate) fn zip_broadcast<T: Element, F: Fn(T, T) -> T>(a: &[T], ashape: &[usize], b: &[T], bshape: &[usize], out_shape: &[usize], f: F) -> Vec<T> {
    let n: usize = out_shape.iter().product();
    if a.len() == n && b.len() == n && strip_ones(ashape) == strip_ones(bshape) {
        return a.iter().zip(b.iter()).map(|(&x, &y)| f(x, y)).collect();
    }
    if b.len() == 1 && a.len() == n {
        let y = b[0];
        return a.iter().map(|&x| f(x, y)).collect();
    }
    if a.len() == 1 && b.len() == n {
        let x = a[0];
        return b.iter().map(|&y| f(x, y)).collect();
    }
    let sa = broadcast_strides(ashape, out_shape);
    let sb = broadcast_strides(bshape, out_shape);
    let n0 = out_shape.first().copied().unwrap_or(1);
    let mut out: Vec<T> = Vec::with_capacity(n);
    let (sa0, sb0) = (sa.first().copied().unwrap_or(0), sb.first().copied().unwrap_or(0));
    for_each_run(out_shape, &sa, &sb, |_, oa, ob| match (sa0, sb0) {
        (1, 1) => out.extend(a[oa..oa + n0].iter().zip(&b[ob..ob + n0]).map(|(&x, &y)| f(x, y))),
        (1, 0) => {
            let y = b[ob];
            out.extend(a[oa..oa + n0].iter().map(|&x| f(x, y)))
        }
        (0, 1) => {
            let x = a[oa];
            out.extend(b[ob..ob + n0].iter().map(|&y| f(x, y)))
        }
        _ => {
            let (x, y) = (a[oa], b[ob]);
            out.extend(std::iter::repeat_n(f(x, y), n0))
        }
    });
    out
}

/// The shape without trailing 1s, so `[3]` and `[3, 1]` compare equal.
fn strip_ones(s: &[usize]) -> &[usize] {
    let mut end = s.len();
    while end > 0 && s[end - 1] == 1 {
        end -= 1;
    }
    &s[..end]
}

fn binary_typed<T: StorageElement>(a: &[T], ashape: &[usize], b: &[T], bshape: &[usize], out: &[usize], op: BinaryOp) -> Vec<T> {
    macro_rules! go {
        ($f:expr) => {
            zip_broadcast(a, ashape, b, bshape, out, $f)
        };
    }
    match op {
        BinaryOp::Add => go!(|x: T, y: T| x + y),
        BinaryOp::Sub => go!(|x: T, y: T| x - y),
        BinaryOp::Mul => go!(|x: T, y: T| x * y),
        BinaryOp::Div => go!(|x: T, y: T| x / y),
        other => go!(|x: T, y: T| other.apply(x, y)),
    }
}

impl Tensor {
    /// Fallible broadcasting binary operation; mixed dtypes promote to the wider one.
    ///
    /// ```
    /// use flux_tensor::{BinaryOp, Tensor};
    /// let a = Tensor::ones(&[2, 3]);
    /// assert!(a.try_binary(&Tensor::ones(&[3]), BinaryOp::Add).is_err());
    /// ```
    pub fn try_binary(&self, other: &Tensor, op: BinaryOp) -> Result<Tensor> {
        // the common case first: one shape, one dtype, nothing to broadcast or convert
        if self.shape() == other.shape() {
            match (self.elements(), other.elements()) {
                // one element each (a tracked scalar's arithmetic): no buffer at all
                (Elements::F32(&[x]), Elements::F32(&[y])) => return Ok(Tensor::from_one(op.apply(x, y), self.shape().clone())),
                (Elements::F64(&[x]), Elements::F64(&[y])) => return Ok(Tensor::from_one(op.apply(x, y), self.shape().clone())),
                (Elements::F32(x), Elements::F32(y)) => {
                    return Ok(Tensor::from_typed(binary_typed(x, self.shape(), y, other.shape(), self.shape(), op), self.shape().clone()))
                }
                (Elements::F64(x), Elements::F64(y)) => {
                    return Ok(Tensor::from_typed(binary_typed(x, self.shape(), y, other.shape(), self.shape(), op), self.shape().clone()))
                }
                _ => {}
            }
        }
        let out = broadcast_shape(op.name(), self.shape(), other.shape())?;
        let dtype = self.dtype().promote(other.dtype());
        let (a, b) = (self.to_dtype(dtype), other.to_dtype(dtype));
        let shape = Shape::new(&out);
        Ok(match (a.elements(), b.elements()) {
            (Elements::F32(x), Elements::F32(y)) => Tensor::from_typed(binary_typed(x, a.shape(), y, b.shape(), &out, op), shape),
            (Elements::F64(x), Elements::F64(y)) => Tensor::from_typed(binary_typed(x, a.shape(), y, b.shape(), &out, op), shape),
            _ => unreachable!("promoted to one dtype"),
        })
    }

    /// Broadcasting binary operation; panics with the message of [`Tensor::try_binary`].
    ///
    /// ```
    /// use flux_tensor::{BinaryOp, Tensor};
    /// let a = Tensor::from_vec(vec![1.0, 2.0], &[2]);
    /// assert_eq!(a.binary(&a, BinaryOp::Mul).to_vec(), vec![1.0, 4.0]);
    /// ```
    pub fn binary(&self, other: &Tensor, op: BinaryOp) -> Tensor {
        self.try_binary(other, op).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Copies `self` stretched to `shape` (which it must broadcast to).
    ///
    /// ```
    /// let v = flux_tensor::Tensor::from_vec(vec![1.0, 2.0], &[2]);
    /// assert_eq!(v.broadcast_to(&[2, 2]).to_vec(), vec![1.0, 2.0, 1.0, 2.0]);
    /// ```
    pub fn broadcast_to(&self, shape: &[usize]) -> Tensor {
        self.try_broadcast_to(shape).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Fallible [`Tensor::broadcast_to`].
    ///
    /// ```
    /// let v = flux_tensor::Tensor::zeros(&[3]);
    /// assert!(v.try_broadcast_to(&[2, 2]).is_err());
    /// ```
    pub fn try_broadcast_to(&self, shape: &[usize]) -> Result<Tensor> {
        if self.numel() == 1 {
            // one element stretches to any shape (a loss's gradient spread over its input)
            return Ok(Tensor::full_of(shape, self.item(), self.dtype()));
        }
        let out = broadcast_shape("broadcast_to", self.shape(), shape)?;
        if out.as_slice() != shape && strip_ones(&out) != strip_ones(shape) {
            return Err(TensorError::ShapeMismatch {
                op: "broadcast_to",
                lhs: self.shape().to_vec(),
                rhs: shape.to_vec(),
                reason: "the target must be at least as large in every dimension".into(),
            });
        }
        if strip_ones(self.shape()) == strip_ones(shape) {
            return self.try_reshape(shape);
        }
        let target = Shape::new(shape);
        Ok(crate::dispatch!(self, |v: T| {
            let zero = [T::ZERO];
            Tensor::from_typed(zip_broadcast(v, self.shape(), &zero, &[], shape, |x: T, _| x), target)
        }))
    }
}

macro_rules! named_binary {
    ($($(#[$doc:meta])* $try_name:ident, $name:ident => $op:expr;)*) => {
        impl Tensor {
            $(
                $(#[$doc])*
                pub fn $try_name(&self, other: &Tensor) -> Result<Tensor> {
                    self.try_binary(other, $op)
                }
                #[doc = concat!("Panicking form of [`Tensor::", stringify!($try_name), "`].")]
                ///
                /// ```
                /// let a = flux_tensor::Tensor::ones(&[2]);
                #[doc = concat!("let _ = a.", stringify!($name), "(&a);")]
                /// ```
                pub fn $name(&self, other: &Tensor) -> Tensor {
                    self.binary(other, $op)
                }
            )*
        }
    };
}

named_binary! {
    /// Broadcasting `a + b`.
    ///
    /// ```
    /// let a = flux_tensor::Tensor::ones(&[2]);
    /// assert_eq!(a.try_add(&a).unwrap().to_vec(), vec![2.0, 2.0]);
    /// ```
    try_add, add_t => BinaryOp::Add;
    /// Broadcasting `a - b`.
    ///
    /// ```
    /// let a = flux_tensor::Tensor::ones(&[2]);
    /// assert_eq!(a.try_sub(&a).unwrap().to_vec(), vec![0.0, 0.0]);
    /// ```
    try_sub, sub_t => BinaryOp::Sub;
    /// Broadcasting `a .* b`.
    ///
    /// ```
    /// let a = flux_tensor::Tensor::full(&[2], 3.0);
    /// assert_eq!(a.try_mul(&a).unwrap().to_vec(), vec![9.0, 9.0]);
    /// ```
    try_mul, mul_t => BinaryOp::Mul;
    /// Broadcasting `a ./ b`.
    ///
    /// ```
    /// let a = flux_tensor::Tensor::full(&[2], 3.0);
    /// assert_eq!(a.try_div(&a).unwrap().to_vec(), vec![1.0, 1.0]);
    /// ```
    try_div, div_t => BinaryOp::Div;
    /// Broadcasting `a .^ b`.
    ///
    /// ```
    /// let a = flux_tensor::Tensor::full(&[1], 2.0);
    /// assert_eq!(a.try_pow(&a).unwrap().item(), 4.0);
    /// ```
    try_pow, pow => BinaryOp::Pow;
    /// Broadcasting `max.(a, b)`.
    ///
    /// ```
    /// let a = flux_tensor::Tensor::full(&[1], 2.0);
    /// assert_eq!(a.try_maximum(&flux_tensor::Tensor::scalar(3.0)).unwrap().item(), 3.0);
    /// ```
    try_maximum, maximum => BinaryOp::Max;
    /// Broadcasting `min.(a, b)`.
    ///
    /// ```
    /// let a = flux_tensor::Tensor::full(&[1], 2.0);
    /// assert_eq!(a.try_minimum(&flux_tensor::Tensor::scalar(3.0)).unwrap().item(), 2.0);
    /// ```
    try_minimum, minimum => BinaryOp::Min;
    /// Broadcasting `a .> b` (1.0 or 0.0).
    ///
    /// ```
    /// let a = flux_tensor::Tensor::full(&[1], 2.0);
    /// assert_eq!(a.try_gt(&flux_tensor::Tensor::scalar(1.0)).unwrap().item(), 1.0);
    /// ```
    try_gt, gt => BinaryOp::Gt;
    /// Broadcasting `a .>= b` (1.0 or 0.0).
    ///
    /// ```
    /// let a = flux_tensor::Tensor::full(&[1], 2.0);
    /// assert_eq!(a.try_ge(&a).unwrap().item(), 1.0);
    /// ```
    try_ge, ge => BinaryOp::Ge;
    /// Broadcasting `a .< b` (1.0 or 0.0).
    ///
    /// ```
    /// let a = flux_tensor::Tensor::full(&[1], 2.0);
    /// assert_eq!(a.try_lt(&a).unwrap().item(), 0.0);
    /// ```
    try_lt, lt => BinaryOp::Lt;
    /// Broadcasting `a .<= b` (1.0 or 0.0).
    ///
    /// ```
    /// let a = flux_tensor::Tensor::full(&[1], 2.0);
    /// assert_eq!(a.try_le(&a).unwrap().item(), 1.0);
    /// ```
    try_le, le => BinaryOp::Le;
    /// Broadcasting `a .== b` (1.0 or 0.0).
    ///
    /// ```
    /// let a = flux_tensor::Tensor::full(&[1], 2.0);
    /// assert_eq!(a.try_eq_elem(&a).unwrap().item(), 1.0);
    /// ```
    try_eq_elem, eq_elem => BinaryOp::Eq;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Naive reference: evaluate each output element from its multi-index.
    fn reference(a: &Tensor, b: &Tensor, op: BinaryOp) -> Vec<f64> {
        let out = broadcast_shape("ref", a.shape(), b.shape()).unwrap();
        let n: usize = out.iter().product();
        let (av, bv) = (a.to_vec(), b.to_vec());
        let pick = |shape: &[usize], idx: &[usize]| {
            let (mut off, mut stride) = (0, 1);
            for d in 0..shape.len() {
                let i = if shape[d] == 1 { 0 } else { idx[d] };
                off += i * stride;
                stride *= shape[d];
            }
            off
        };
        (0..n)
            .map(|lin| {
                let mut idx = vec![0; out.len()];
                let mut r = lin;
                for d in 0..out.len() {
                    idx[d] = r % out[d];
                    r /= out[d];
                }
                op.apply(av[pick(a.shape(), &idx)], bv[pick(b.shape(), &idx)])
            })
            .collect()
    }

    fn shape_pair() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
        prop::collection::vec(1usize..4, 0..4).prop_flat_map(|out| {
            let n = out.len();
            (Just(out), prop::collection::vec(any::<bool>(), n), prop::collection::vec(any::<bool>(), n), 0..=n, 0..=n).prop_map(|(out, ma, mb, ra, rb)| {
                let a: Vec<usize> = out.iter().zip(&ma).map(|(&d, &one)| if one { 1 } else { d }).take(ra).collect();
                let b: Vec<usize> = out.iter().zip(&mb).map(|(&d, &one)| if one { 1 } else { d }).take(rb).collect();
                (a, b)
            })
        })
    }

    proptest! {
        #[test]
        fn broadcasting_matches_naive_reference((sa, sb) in shape_pair(), seed in 0u64..1000) {
            crate::seed(seed);
            let a = Tensor::randn(&sa);
            let b = Tensor::randn(&sb).add_scalar(3.0);
            for op in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Max, BinaryOp::Gt] {
                let got = a.binary(&b, op);
                prop_assert_eq!(got.to_vec(), reference(&a, &b, op));
            }
        }

        #[test]
        fn broadcast_to_matches_add_zeros((sa, sb) in shape_pair()) {
            let a = Tensor::randn(&sa);
            let out = broadcast_shape("t", &sa, &sb).unwrap();
            let z = Tensor::zeros(&out);
            prop_assert_eq!(a.broadcast_to(&out).to_vec(), a.add_t(&z).to_vec());
        }
    }

    #[test]
    fn julia_vector_against_matrix() {
        let m = Tensor::from_vec(vec![1., 2., 3., 4., 5., 6.], &[2, 3]);
        let v = Tensor::from_vec(vec![10., 20.], &[2]);
        assert_eq!((m.add_t(&v)).to_vec(), vec![11., 22., 13., 24., 15., 26.]);
        let row = Tensor::from_vec(vec![1., 2., 3.], &[1, 3]);
        assert_eq!(m.mul_t(&row).to_vec(), vec![1., 2., 6., 8., 15., 18.]);
    }

    #[test]
    fn mismatch_names_op_and_both_shapes() {
        let e = Tensor::zeros(&[2, 3]).try_mul(&Tensor::zeros(&[3])).unwrap_err().to_string();
        assert!(e.starts_with("mul:"), "{e}");
        assert!(e.contains("[2, 3]") && e.contains("[3]"), "{e}");
    }

    #[test]
    fn mixed_dtypes_promote() {
        let a = Tensor::from_vec(vec![1.0f32], &[1]);
        let b = Tensor::from_vec(vec![2.0f64], &[1]);
        assert_eq!(a.add_t(&b).dtype(), crate::DType::F64);
    }
}

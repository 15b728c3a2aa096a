//! [`Value`]: the operations backward rules are written in. It has two implementations:
//! [`Tensor`] (raw kernels, the fast path when nothing outer records) and [`Var`] (recorded, so
//! an outer gradient can differentiate the backward pass itself). Each rule is written once.

use flux_tensor::{BinaryOp, DType, ReduceOp, Shape, Tensor, UnaryOp};

use crate::var::Var;

/// A value backward rules compute with: a raw [`Tensor`] or a recorded [`Var`]. Custom ops
/// written against it get nesting for free.
///
/// ```
/// use flux_autograd::Value;
/// use flux_tensor::{Tensor, UnaryOp};
/// fn double<V: Value>(x: &V) -> V { x.add(x) }
/// assert_eq!(double(&Tensor::scalar(2.0)).item(), 4.0);
/// assert_eq!(double(&flux_autograd::Var::scalar(2.0)).item(), 4.0);
/// ```
pub trait Value: Clone + Send + Sync + 'static {
    /// The value behind a Var in this representation (the Var itself, or its tensor).
    fn of(v: &Var) -> Self;
    /// `f` on the value behind a Var, borrowed where the representation allows (no reference
    /// count changes): what rules use for an operand they only read.
    fn with_of<R>(v: &Var, f: impl FnOnce(&Self) -> R) -> R {
        f(&Self::of(v))
    }
    /// An untracked value from a tensor.
    fn constant(t: Tensor) -> Self;
    /// The underlying data.
    fn tensor(&self) -> Tensor;
    /// Dimensions.
    fn shape(&self) -> Shape;
    /// Element type.
    fn dtype(&self) -> DType;
    /// Has this value the shape of `v`? (Compared in place, without copying either shape.)
    fn same_shape(&self, v: &Var) -> bool {
        self.shape() == v.shape()
    }
    /// Elementwise function.
    fn unary(&self, op: UnaryOp) -> Self;
    /// Broadcasting binary operation.
    fn binary(&self, other: &Self, op: BinaryOp) -> Self;
    /// Reduction over dims, keeping them as 1.
    fn reduce(&self, op: ReduceOp, dims: &[usize]) -> Self;
    /// Sum down to a shape (the adjoint of broadcasting).
    fn sum_to(&self, shape: &[usize]) -> Self;
    /// Stretch to a shape (the adjoint of `sum_to`).
    fn broadcast_to(&self, shape: &[usize]) -> Self;
    /// Matrix product with optional transposes, for 2-d operands.
    fn matmul_t(&self, other: &Self, ta: bool, tb: bool) -> Self;
    /// Matrix-vector product `op(self)·x`, `self` 2-d and `x` 1-d, giving a vector.
    fn matvec_t(&self, x: &Self, ta: bool) -> Self;
    /// Batched matrix product with optional transposes, for 3-d operands.
    fn bmm_t(&self, other: &Self, ta: bool, tb: bool) -> Self;
    /// Reshape.
    fn reshape(&self, shape: &[usize]) -> Self;
    /// Permute dimensions.
    fn permute(&self, perm: &[usize]) -> Self;
    /// Gather along a dimension.
    fn index_select(&self, dim: usize, idx: &[usize]) -> Self;
    /// Scatter-add along a dimension into a zero tensor of `shape`.
    fn index_add(&self, dim: usize, idx: &[usize], shape: &[usize]) -> Self;
    /// Convert element type.
    fn cast(&self, dtype: DType) -> Self;
    /// Joins values along a dimension.
    fn concat(parts: &[Self], dim: usize) -> Self;
    /// As a Var (a constant for tensors), for rules written on Vars only (custom ops).
    fn to_var(&self) -> Var;
    /// Back from a Var (its data for tensors).
    fn from_var(v: Var) -> Self;

    /// `self + other`.
    fn add(&self, other: &Self) -> Self {
        self.binary(other, BinaryOp::Add)
    }
    /// `self - other`.
    fn sub(&self, other: &Self) -> Self {
        self.binary(other, BinaryOp::Sub)
    }
    /// `self .* other`.
    fn mul(&self, other: &Self) -> Self {
        self.binary(other, BinaryOp::Mul)
    }
    /// `self ./ other`.
    fn div(&self, other: &Self) -> Self {
        self.binary(other, BinaryOp::Div)
    }
    /// `-self`.
    fn neg(&self) -> Self {
        self.unary(UnaryOp::Neg)
    }
    /// `self * c`.
    fn scale(&self, c: f64) -> Self {
        self.unary(UnaryOp::MulScalar(c))
    }
    /// A one-pass `g .* f'(x)` where the representation has one (raw tensors do, for relu,
    /// tanh, sigmoid, exp and gelu); `None` makes the rule use its composed form.
    fn fused_unary_grad(_op: UnaryOp, _x: &Var, _y: &Var, _g: &Self) -> Option<Self> {
        None
    }
    /// The softmax's backward rule in one pass where the representation has one (raw f32
    /// tensors along the first dimension); `None` makes the rule use its composed form.
    fn fused_softmax_grad(_y: &Self, _dim: usize, _g: &Self) -> Option<Self> {
        None
    }
    /// `self .* mask` for a constant mask (a derivative of a piecewise function).
    fn mul_const(&self, mask: &Tensor) -> Self {
        self.mul(&Self::constant(mask.clone()))
    }
}

impl Value for Tensor {
    fn of(v: &Var) -> Tensor {
        v.data()
    }
    fn with_of<R>(v: &Var, f: impl FnOnce(&Tensor) -> R) -> R {
        v.with_data(f)
    }
    fn same_shape(&self, v: &Var) -> bool {
        v.with_data(|t| t.shape() == Tensor::shape(self))
    }
    fn fused_unary_grad(op: UnaryOp, x: &Var, y: &Var, g: &Tensor) -> Option<Tensor> {
        match op {
            UnaryOp::Relu | UnaryOp::Gelu => Tensor::unary_grad(op, &x.data(), g, g),
            UnaryOp::Tanh | UnaryOp::Sigmoid | UnaryOp::Exp => Tensor::unary_grad(op, g, &y.data(), g),
            _ => None,
        }
    }
    fn fused_softmax_grad(y: &Tensor, dim: usize, g: &Tensor) -> Option<Tensor> {
        Tensor::softmax_grad(y, g, dim)
    }
    fn constant(t: Tensor) -> Tensor {
        t
    }
    fn tensor(&self) -> Tensor {
        self.clone()
    }
    fn shape(&self) -> Shape {
        Tensor::shape(self).clone()
    }
    fn dtype(&self) -> DType {
        Tensor::dtype(self)
    }
    fn unary(&self, op: UnaryOp) -> Tensor {
        Tensor::unary(self, op)
    }
    fn binary(&self, other: &Tensor, op: BinaryOp) -> Tensor {
        Tensor::binary(self, other, op)
    }
    fn reduce(&self, op: ReduceOp, dims: &[usize]) -> Tensor {
        Tensor::reduce(self, op, dims)
    }
    fn sum_to(&self, shape: &[usize]) -> Tensor {
        Tensor::sum_to(self, shape)
    }
    fn broadcast_to(&self, shape: &[usize]) -> Tensor {
        Tensor::broadcast_to(self, shape)
    }
    fn matmul_t(&self, other: &Tensor, ta: bool, tb: bool) -> Tensor {
        Tensor::matmul_t(self, other, ta, tb)
    }
    fn matvec_t(&self, x: &Tensor, ta: bool) -> Tensor {
        Tensor::matvec_t(self, x, ta)
    }
    fn bmm_t(&self, other: &Tensor, ta: bool, tb: bool) -> Tensor {
        Tensor::bmm_t(self, other, ta, tb)
    }
    fn reshape(&self, shape: &[usize]) -> Tensor {
        Tensor::reshape(self, shape)
    }
    fn permute(&self, perm: &[usize]) -> Tensor {
        Tensor::permute(self, perm)
    }
    fn index_select(&self, dim: usize, idx: &[usize]) -> Tensor {
        Tensor::index_select(self, dim, idx)
    }
    fn index_add(&self, dim: usize, idx: &[usize], shape: &[usize]) -> Tensor {
        Tensor::index_add(self, dim, idx, shape)
    }
    fn cast(&self, dtype: DType) -> Tensor {
        self.to_dtype(dtype)
    }
    fn concat(parts: &[Tensor], dim: usize) -> Tensor {
        Tensor::concat(parts, dim)
    }
    fn to_var(&self) -> Var {
        Var::constant(self.clone())
    }
    fn from_var(v: Var) -> Tensor {
        v.data()
    }
}

impl Value for Var {
    fn of(v: &Var) -> Var {
        v.clone()
    }
    fn with_of<R>(v: &Var, f: impl FnOnce(&Var) -> R) -> R {
        f(v)
    }
    fn same_shape(&self, v: &Var) -> bool {
        self.same_node(v) || Var::with_data2(self, v, |a, b| a.shape() == b.shape())
    }
    /// tanh and sigmoid as one recorded op of the gradient and the output (instead of three),
    /// which keeps the graphs of nested derivatives and tangents short.
    fn fused_unary_grad(op: UnaryOp, _x: &Var, y: &Var, g: &Var) -> Option<Var> {
        match op {
            UnaryOp::Tanh => Some(g.binary(y, BinaryOp::TanhGrad)),
            UnaryOp::Sigmoid => Some(g.binary(y, BinaryOp::SigmoidGrad)),
            _ => None,
        }
    }
    fn constant(t: Tensor) -> Var {
        Var::temporary(t)
    }
    fn tensor(&self) -> Tensor {
        self.data()
    }
    fn shape(&self) -> Shape {
        Var::shape(self)
    }
    fn dtype(&self) -> DType {
        Var::dtype(self)
    }
    fn unary(&self, op: UnaryOp) -> Var {
        Var::unary(self, op)
    }
    fn binary(&self, other: &Var, op: BinaryOp) -> Var {
        Var::binary(self, other, op)
    }
    fn reduce(&self, op: ReduceOp, dims: &[usize]) -> Var {
        Var::reduce(self, op, dims)
    }
    fn sum_to(&self, shape: &[usize]) -> Var {
        Var::sum_to(self, shape)
    }
    fn broadcast_to(&self, shape: &[usize]) -> Var {
        Var::broadcast_to(self, shape)
    }
    fn matmul_t(&self, other: &Var, ta: bool, tb: bool) -> Var {
        Var::matmul_t(self, other, ta, tb)
    }
    fn matvec_t(&self, x: &Var, ta: bool) -> Var {
        Var::matvec_t(self, x, ta)
    }
    fn bmm_t(&self, other: &Var, ta: bool, tb: bool) -> Var {
        Var::bmm_t(self, other, ta, tb)
    }
    fn reshape(&self, shape: &[usize]) -> Var {
        Var::reshape(self, shape)
    }
    fn permute(&self, perm: &[usize]) -> Var {
        Var::permute(self, perm)
    }
    fn index_select(&self, dim: usize, idx: &[usize]) -> Var {
        Var::index_select(self, dim, idx)
    }
    fn index_add(&self, dim: usize, idx: &[usize], shape: &[usize]) -> Var {
        Var::index_add(self, dim, idx, shape)
    }
    fn cast(&self, dtype: DType) -> Var {
        Var::to_dtype(self, dtype)
    }
    fn concat(parts: &[Var], dim: usize) -> Var {
        Var::concat(parts, dim)
    }
    fn to_var(&self) -> Var {
        self.clone()
    }
    fn from_var(v: Var) -> Var {
        v
    }
}

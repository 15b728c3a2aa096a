//! [`Op`]: what a recorded value was computed from. One variant per differentiable primitive;
//! each family's forward and backward rule live together in `ops/<family>.rs`, and
//! [`Op::backward`] only dispatches to them, so the compiler makes every variant have a rule.

use std::sync::Arc;

use flux_tensor::{BinaryOp, ReduceOp, UnaryOp};

use crate::ops::checkpoint::{self, Recompute};
use crate::ops::conv::{self, ConvKind};
use crate::ops::custom::{self, CustomOp};
use crate::ops::{arith, linalg, matmul, reduce, scan, shape, softmax, unary};
use crate::value::Value;
use crate::var::Var;

/// A recorded operation and its inputs.
pub(crate) enum Op {
    /// Elementwise function of one value (`ops/unary.rs`).
    Unary(UnaryOp, Var),
    /// Broadcasting elementwise function of two values (`ops/arith.rs`).
    Binary(BinaryOp, Var, Var),
    /// Reduction over dims, kept as 1 (`ops/reduce.rs`).
    Reduce(ReduceOp, Var, Vec<usize>),
    /// Reduction over every element to a 0-d value (`ops/reduce.rs`).
    ReduceAll(ReduceOp, Var),
    /// Sum down to the output's shape (`ops/arith.rs`).
    SumTo(Var),
    /// Stretch to the output's shape (`ops/arith.rs`).
    BroadcastTo(Var),
    /// `op(a) · op(b)` for matrices (`ops/matmul.rs`).
    MatmulT(Var, Var, bool, bool),
    /// `op(A) · x` for a matrix and a vector, giving a vector (`ops/matmul.rs`).
    MatVec(Var, Var, bool),
    /// `w · x .+ b`, a Dense layer's pre-activation in one pass (`ops/matmul.rs`).
    Affine(Var, Var, Var),
    /// Batched `op(a_i) · op(b_i)` (`ops/matmul.rs`).
    BmmT(Var, Var, bool, bool),
    /// Same elements, new shape (`ops/shape.rs`).
    Reshape(Var),
    /// Reordered dimensions (`ops/shape.rs`).
    Permute(Var, Vec<usize>),
    /// Gather along a dimension (`ops/shape.rs`).
    IndexSelect(Var, usize, Arc<[usize]>),
    /// Scatter-add along a dimension (`ops/shape.rs`).
    IndexAdd(Var, usize, Arc<[usize]>),
    /// Join along a dimension (`ops/shape.rs`).
    Concat(Vec<Var>, usize),
    /// Element type conversion (`ops/shape.rs`).
    Cast(Var),
    /// The same value under a new identity: how an inner `gradient` marks the point it
    /// differentiates at while an outer one still sees through it (`ops/shape.rs`).
    Identity(Var),
    /// Softmax along a dimension (`ops/softmax.rs`).
    Softmax(Var, usize),
    /// Log-softmax along a dimension (`ops/softmax.rs`).
    LogSoftmax(Var, usize),
    /// Cumulative sum along a dimension, from the end when the flag is set (`ops/scan.rs`).
    Cumsum(Var, usize, bool),
    /// `op(A) \ B`, `op` a transpose when the flag is set (`ops/linalg.rs`).
    Solve(Var, Var, bool),
    /// Matrix inverse (`ops/linalg.rs`).
    Inv(Var),
    /// Determinant (`ops/linalg.rs`).
    Det(Var),
    /// Log-determinant (`ops/linalg.rs`).
    LogDet(Var),
    /// A user-defined operation (`ops/custom.rs`).
    Custom(Arc<dyn CustomOp>, Box<[Var]>),
    /// A checkpointed function of the first input, which the backward pass recomputes; the
    /// other inputs are the tracked values it reads (`ops/checkpoint.rs`).
    Checkpoint(Recompute, Box<[Var]>),
    /// A convolution or one of its two adjoints, all bilinear (`ops/conv.rs`).
    Conv(ConvKind, Var, Var, Arc<flux_tensor::ConvSpec>),
}

/// Hands each gradient a rule gave to the sink with its input's place.
#[inline]
fn emit<V>(grads: impl IntoIterator<Item = Option<V>>, sink: &mut impl FnMut(usize, V)) {
    for (i, g) in grads.into_iter().enumerate() {
        if let Some(g) = g {
            sink(i, g);
        }
    }
}

impl Op {
    /// The op's name, for graph dumps and gradcheck reports.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Op::Unary(op, _) => op.name(),
            Op::Binary(op, _, _) => op.name(),
            Op::Reduce(op, _, _) | Op::ReduceAll(op, _) => op.name(),
            Op::SumTo(_) => "sum_to",
            Op::BroadcastTo(_) => "broadcast_to",
            Op::MatmulT(..) => "matmul",
            Op::MatVec(..) => "matvec",
            Op::Affine(..) => "affine",
            Op::BmmT(..) => "batched_matmul",
            Op::Reshape(_) => "reshape",
            Op::Permute(..) => "permute",
            Op::IndexSelect(..) => "index_select",
            Op::IndexAdd(..) => "index_add",
            Op::Concat(..) => "concat",
            Op::Cast(_) => "cast",
            Op::Identity(_) => "identity",
            Op::Softmax(..) => "softmax",
            Op::LogSoftmax(..) => "logsoftmax",
            Op::Cumsum(..) => "cumsum",
            Op::Solve(..) => "solve",
            Op::Inv(_) => "inv",
            Op::Det(_) => "det",
            Op::LogDet(_) => "logdet",
            Op::Custom(..) => "custom",
            Op::Checkpoint(..) => "checkpoint",
            Op::Conv(kind, ..) => kind.name(),
        }
    }

    /// Calls `f` on each input, in order.
    #[inline]
    pub(crate) fn for_each_input<'a>(&'a self, mut f: impl FnMut(&'a Var)) {
        match self {
            Op::Unary(_, x)
            | Op::Reduce(_, x, _)
            | Op::ReduceAll(_, x)
            | Op::SumTo(x)
            | Op::BroadcastTo(x)
            | Op::Reshape(x)
            | Op::Permute(x, _)
            | Op::IndexSelect(x, _, _)
            | Op::IndexAdd(x, _, _)
            | Op::Cast(x)
            | Op::Identity(x)
            | Op::Softmax(x, _)
            | Op::LogSoftmax(x, _)
            | Op::Cumsum(x, _, _)
            | Op::Inv(x)
            | Op::Det(x)
            | Op::LogDet(x) => f(x),
            Op::Binary(_, a, b) | Op::MatmulT(a, b, _, _) | Op::MatVec(a, b, _) | Op::BmmT(a, b, _, _) | Op::Solve(a, b, _) => {
                f(a);
                f(b)
            }
            Op::Affine(w, x, b) => {
                f(w);
                f(x);
                f(b)
            }
            Op::Concat(xs, _) => xs.iter().for_each(f),
            Op::Custom(_, xs) | Op::Checkpoint(_, xs) => xs.iter().for_each(f),
            Op::Conv(_, a, b, _) => [a, b].into_iter().for_each(f),
        }
    }

    #[inline]
    pub(crate) fn any_input_tracked(&self) -> bool {
        let mut any = false;
        self.for_each_input(|x| any |= x.is_tracked());
        any
    }

    /// Gives up the inputs one by one (used to drop long graphs iteratively, without
    /// allocating per node).
    pub(crate) fn drain_inputs(self, mut f: impl FnMut(Var)) {
        match self {
            Op::Unary(_, x)
            | Op::Reduce(_, x, _)
            | Op::ReduceAll(_, x)
            | Op::SumTo(x)
            | Op::BroadcastTo(x)
            | Op::Reshape(x)
            | Op::Permute(x, _)
            | Op::IndexSelect(x, _, _)
            | Op::IndexAdd(x, _, _)
            | Op::Cast(x)
            | Op::Identity(x)
            | Op::Softmax(x, _)
            | Op::LogSoftmax(x, _)
            | Op::Cumsum(x, _, _)
            | Op::Inv(x)
            | Op::Det(x)
            | Op::LogDet(x) => f(x),
            Op::Binary(_, a, b) | Op::MatmulT(a, b, _, _) | Op::MatVec(a, b, _) | Op::BmmT(a, b, _, _) | Op::Solve(a, b, _) => {
                f(a);
                f(b)
            }
            Op::Affine(w, x, b) => {
                f(w);
                f(x);
                f(b)
            }
            Op::Concat(xs, _) => xs.into_iter().for_each(f),
            Op::Custom(_, xs) | Op::Checkpoint(_, xs) => xs.into_iter().for_each(f),
            Op::Conv(_, a, b, _) => [a, b].into_iter().for_each(f),
        }
    }

    /// Gradients of the inputs, given the output `out` and its gradient `g`, each handed to
    /// `sink(input's place, gradient)` as the rule makes it (none for an input that needs
    /// none or gets a zero gradient). `needs[i]` says whether input `i` needs one (rules skip
    /// the work for the others).
    pub(crate) fn backward<V: Value>(&self, out: &Var, g: &V, needs: &[bool], mut sink: impl FnMut(usize, V)) {
        let y = || V::of(out);
        match self {
            Op::Unary(op, x) => emit([unary::backward(*op, x, out, g)], &mut sink),
            Op::Binary(op, a, b) => emit(arith::binary_backward(*op, a, b, out, g, needs), &mut sink),
            Op::Reduce(op, x, dims) => emit([reduce::backward(*op, &V::of(x), &y(), dims, g)], &mut sink),
            Op::ReduceAll(op, x) => emit([reduce::backward(*op, &V::of(x), &y(), reduce::all_dims(x.rank()).as_ref(), g)], &mut sink),
            Op::SumTo(x) => emit([Some(g.broadcast_to(&x.shape()))], &mut sink),
            Op::BroadcastTo(x) => emit([Some(g.sum_to(&x.shape()))], &mut sink),
            Op::MatmulT(a, b, ta, tb) => emit(matmul::matmul_backward(a, b, *ta, *tb, g, needs), &mut sink),
            Op::MatVec(a, x, ta) => emit(matmul::matvec_backward(a, x, *ta, g, needs), &mut sink),
            Op::Affine(w, x, b) => emit(matmul::affine_backward(&V::of(w), &V::of(x), &b.shape(), g, needs), &mut sink),
            Op::BmmT(a, b, ta, tb) => emit(matmul::bmm_backward(&V::of(a), &V::of(b), *ta, *tb, g, needs), &mut sink),
            Op::Reshape(x) => emit([Some(g.reshape(&x.shape()))], &mut sink),
            Op::Permute(_, perm) => emit([Some(shape::permute_backward(perm, g))], &mut sink),
            Op::IndexSelect(x, dim, idx) => emit([Some(g.index_add(*dim, idx, &x.shape()))], &mut sink),
            Op::IndexAdd(_, dim, idx) => emit([Some(g.index_select(*dim, idx))], &mut sink),
            Op::Concat(xs, dim) => emit(shape::concat_backward(xs, *dim, g, needs), &mut sink),
            Op::Cast(x) => emit([Some(g.cast(x.dtype()))], &mut sink),
            Op::Identity(_) => emit([Some(g.clone())], &mut sink),
            Op::Softmax(_, dim) => emit([Some(softmax::softmax_backward(&y(), *dim, g))], &mut sink),
            Op::LogSoftmax(_, dim) => emit([Some(softmax::logsoftmax_backward(&y(), *dim, g))], &mut sink),
            Op::Cumsum(_, dim, rev) => emit([Some(scan::cumsum_backward(*dim, *rev, g))], &mut sink),
            Op::Solve(a, _, t) => emit(linalg::solve_backward(&V::of(a), &y(), *t, g, needs), &mut sink),
            Op::Inv(_) => emit([Some(linalg::inv_backward(&y(), g))], &mut sink),
            Op::Det(a) => emit([Some(linalg::det_backward(&V::of(a), &y(), g))], &mut sink),
            Op::LogDet(a) => emit([Some(linalg::logdet_backward(&V::of(a), g))], &mut sink),
            Op::Custom(op, xs) => emit(custom::backward(op.as_ref(), xs, out, g, needs), &mut sink),
            Op::Checkpoint(f, xs) => emit(checkpoint::backward_rule(f, xs, g, needs), &mut sink),
            Op::Conv(kind, a, b, spec) => emit(conv::backward(*kind, a, b, spec, g, needs), &mut sink),
        }
    }

    /// Forward mode: the output's tangent given the inputs' tangents `ts` (one per input, `None`
    /// for an input without one; at least one is `Some`), or `None` for a zero tangent. Rules
    /// are `Var` operations, so tangents are differentiable again; the caller fits the result to
    /// the output's shape (a rule may leave a broadcast implicit).
    pub(crate) fn tangent(&self, out: &Var, ts: &[Option<Var>]) -> Option<Var> {
        let t = |i: usize| ts[i].as_ref();
        match self {
            Op::Unary(op, x) => unary::tangent(*op, x, out, t(0)?),
            Op::Binary(op, a, b) => arith::binary_tangent(*op, a, b, out, t(0), t(1)),
            Op::Reduce(op, x, dims) => Some(reduce::tangent(*op, x, out, dims, t(0)?)),
            Op::ReduceAll(op, x) => Some(reduce::tangent_all(*op, x, out, t(0)?)),
            Op::SumTo(_) => Some(arith::sum_to_tangent(out, t(0)?)),
            Op::BroadcastTo(_) => Some(arith::broadcast_to_tangent(out, t(0)?)),
            Op::MatmulT(a, b, ta, tb) => matmul::matmul_tangent(a, b, *ta, *tb, t(0), t(1)),
            Op::MatVec(a, x, ta) => matmul::matvec_tangent(a, x, *ta, t(0), t(1)),
            Op::Affine(w, x, _) => matmul::affine_tangent(w, x, t(0), t(1), t(2)),
            Op::BmmT(a, b, ta, tb) => matmul::bmm_tangent(a, b, *ta, *tb, t(0), t(1)),
            Op::Reshape(_) => Some(t(0)?.reshape(&out.shape())),
            Op::Permute(_, perm) => Some(t(0)?.permute(perm)),
            Op::IndexSelect(_, dim, idx) => Some(t(0)?.index_select(*dim, idx)),
            Op::IndexAdd(_, dim, idx) => Some(t(0)?.index_add(*dim, idx, &out.shape())),
            Op::Concat(xs, dim) => Some(shape::concat_tangent(xs, *dim, ts)),
            Op::Cast(_) => Some(t(0)?.to_dtype(out.dtype())),
            Op::Identity(_) => t(0).cloned(),
            Op::Softmax(_, dim) => Some(softmax::softmax_tangent(out, *dim, t(0)?)),
            Op::LogSoftmax(_, dim) => Some(softmax::logsoftmax_tangent(out, *dim, t(0)?)),
            Op::Cumsum(_, dim, rev) => Some(t(0)?.scan(*dim, *rev)),
            Op::Solve(a, _, tr) => linalg::solve_tangent(a, out, *tr, t(0), t(1)),
            Op::Inv(_) => Some(linalg::inv_tangent(out, t(0)?)),
            Op::Det(a) => Some(out * &linalg::trace_inv_times(a, t(0)?)),
            Op::LogDet(a) => Some(linalg::trace_inv_times(a, t(0)?)),
            Op::Custom(op, xs) => custom::tangent(op.as_ref(), xs, out, ts),
            Op::Checkpoint(f, xs) => checkpoint::tangent(f, xs),
            Op::Conv(kind, a, b, spec) => conv::tangent(*kind, a, b, out, spec, t(0), t(1)),
        }
    }
}

//! Gradient checkpointing (Tracker's `checkpoint`): a value that keeps only the inputs of the
//! function that computed it and recomputes that function in the backward pass.

use std::sync::Arc;

use crate::backward::backward;
use crate::forward;
use crate::idmap::IdSet;
use crate::op::Op;
use crate::tape;
use crate::value::Value;
use crate::var::Var;

/// The function a checkpoint recomputes.
pub(crate) type Recompute = Arc<dyn Fn(&Var) -> Var + Send + Sync>;

/// The tracked values made before `start` that `y`'s graph reaches (through values made from
/// `start` on), and the tracked leaves it reaches: what a recomputation of `y` depends on, and
/// so the checkpoint's inputs. (Ids order the values one thread makes; a leaf made on another
/// thread may have a larger id than `start` and still be an input.)
fn frontier(y: &Var, start: u64, x: &Var) -> Vec<Var> {
    let mut out = vec![x.clone()];
    let mut seen = IdSet::default();
    seen.insert(x.id());
    let mut stack = vec![y.clone()];
    let mut inner = IdSet::default();
    while let Some(v) = stack.pop() {
        if v.id() < start || v.is_leaf() {
            if v.is_tracked() && seen.insert(v.id()) {
                out.push(v);
            }
            continue;
        }
        if !inner.insert(v.id()) {
            continue;
        }
        if let Some(op) = v.op() {
            op.for_each_input(|i| {
                if i.is_tracked() {
                    stack.push(i.clone())
                }
            });
        }
    }
    out
}

/// Gradients of a checkpointed value's inputs: `f` runs again (recorded) at the same input,
/// and a reverse pass seeded with `g` goes through the fresh graph, which is dropped after.
/// Nested (when the outer pass records), the recomputation is recorded too, so second
/// derivatives through a checkpoint are exact.
pub(crate) fn backward_rule<V: Value>(f: &Recompute, xs: &[Var], g: &V, needs: &[bool]) -> Vec<Option<V>> {
    // an outer pass that records runs its rules with recording on; a plain one with it off
    let create_graph = tape::recording();
    let y = {
        let _rec = tape::Resume::new();
        f(&xs[0])
    };
    let targets: Vec<Var> = xs.iter().zip(needs).filter(|(_, n)| **n).map(|(x, _)| x.clone()).collect();
    let mut grads = backward(&y, &targets, create_graph, Some(&g.to_var())).into_iter();
    needs.iter().map(|&n| if n { grads.next().flatten().map(V::from_var) } else { None }).collect()
}

/// Forward mode: `f` recomputed with this frame visible, so its operations carry the inputs'
/// tangents to the output. ([`checkpoint`] itself copies the tangents of its first pass
/// instead; this rule serves a checkpointed value made some other way inside a `jvp`.)
pub(crate) fn tangent(f: &Recompute, xs: &[Var]) -> Option<Var> {
    let level = forward::visible();
    let y = {
        let _this = forward::Visible::set(level + 1);
        f(&xs[0])
    };
    forward::tangent_in(level, y.id())
}

/// `f(x)`, keeping only `x` and the tracked values `f` reads (parameters, captured values), not
/// the intermediate values: the backward pass runs `f` again to get them (Tracker's
/// `checkpoint`). Gradients equal those of `f(x)`, also nested; memory for the graph inside `f`
/// is needed only while one checkpoint is being recomputed, at the price of a second forward
/// pass through it.
///
/// Split a deep model into segments and checkpoint each one: a gradient call then holds the
/// segments' boundary values plus one segment's graph at a time. `f` must compute the same
/// value when run again (no fresh randomness such as dropout masks inside it). Inside a
/// [`crate::jvp`] the tangents are those of the first pass. `f` is kept until the backward
/// pass, so it owns what it captures (`move`, `Var`s are cheap to clone).
///
/// ```
/// use flux_autograd::{checkpoint, gradient_params, param, params, Var};
/// use flux_tensor::Tensor;
/// let w = param(Tensor::from_vec(vec![0.5, -0.3, 0.2, 0.8], &[2, 2]));
/// let x = Var::from(Tensor::from_vec(vec![1.0, 2.0], &[2]));
/// let layer = { let w = w.clone(); move |h: &Var| w.matmul(h).tanh() };
/// let plain = gradient_params(|| layer(&layer(&x)).sum(), &params![&w]);
/// let saved = gradient_params(|| { let h = checkpoint(layer.clone(), &x); checkpoint(layer.clone(), &h).sum() }, &params![&w]);
/// assert!(saved[&w].data().allclose(&plain[&w].data(), 1e-12, 1e-12));
/// ```
pub fn checkpoint(f: impl Fn(&Var) -> Var + Send + Sync + 'static, x: &Var) -> Var {
    if !tape::recording() {
        return f(x);
    }
    let start = Var::next_id();
    let y = f(x);
    if !y.is_tracked() {
        // nothing to differentiate later (its tangents, if any, are already y's)
        return y;
    }
    let inputs = frontier(&y, start, x);
    let out = Var::from_op_untangented(y.data(), Op::Checkpoint(Arc::new(f), inputs.into_boxed_slice()));
    forward::alias(&y, &out);
    out
}

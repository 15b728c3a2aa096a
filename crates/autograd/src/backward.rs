//! The reverse pass. Sorts the nodes between the result and the values being differentiated
//! (iteratively: a chain of a million ops must not overflow the stack), then walks them from the
//! result back, calling each op's rule and summing the gradients that meet at a node.
//!
//! When nothing outer records, rules run on raw tensors ([`Tensor`] as the [`Value`]) and no
//! graph is built. When an outer gradient is recording, they run on [`Var`]s with recording on,
//! so the gradients are themselves differentiable.

use std::cell::Cell;

use flux_tensor::Tensor;

use crate::idmap::{IdMap, IdSet};

use crate::tape;
use crate::value::Value;
use crate::var::Var;

/// Where a node stands in the sort: on a path to a target (with its position in the order),
/// or not.
type Positions = IdMap<Option<u32>>;

/// The buffers of one reverse pass. They are kept per thread between calls (up to a size), so
/// differentiating a long graph again does not pay for growing, and page-faulting in, fresh
/// maps and vectors every time.
#[derive(Default)]
struct Scratch {
    pos: Positions,
    order: Vec<Var>,
    stack: Vec<(Var, bool)>,
    grads: Vec<Option<Tensor>>,
}

/// Buffers that grew past this many nodes are freed after the pass instead of kept.
const KEEP_AT_MOST: usize = 1 << 16;

thread_local! {
    static SCRATCH: Cell<Option<Box<Scratch>>> = const { Cell::new(None) };
}

impl Scratch {
    /// This thread's buffers, or new ones (a nested gradient finds them taken by the outer one).
    fn take() -> Box<Scratch> {
        SCRATCH.with(Cell::take).unwrap_or_default()
    }

    /// Empties the buffers (dropping the graph references they hold) and keeps them for the next
    /// pass unless they grew too large.
    fn give_back(mut self: Box<Scratch>) {
        self.order.clear();
        self.stack.clear();
        self.grads.clear();
        if self.pos.capacity() <= KEEP_AT_MOST && self.grads.capacity() <= KEEP_AT_MOST {
            self.pos.clear();
            SCRATCH.with(|s| s.set(Some(self)));
        }
    }
}

/// Fills `order` with the nodes on some path from `root` to a target, inputs before outputs,
/// and `pos` with each visited node's position in that order (`None` for nodes on no such
/// path).
fn topo(root: &Var, targets: &IdSet, Scratch { pos, order, stack, .. }: &mut Scratch) {
    stack.push((root.clone(), false));
    while let Some((v, expanded)) = stack.pop() {
        let id = v.id();
        if expanded {
            let mut r = false;
            if let Some(op) = v.op() {
                op.for_each_input(|x| r |= matches!(pos.get(&x.id()), Some(Some(_))));
            }
            pos.insert(id, r.then_some(order.len() as u32));
            if r {
                order.push(v);
            }
            continue;
        }
        if pos.contains_key(&id) {
            continue;
        }
        if targets.contains(&id) {
            pos.insert(id, Some(order.len() as u32));
            order.push(v);
            continue;
        }
        match v.op() {
            Some(op) if v.is_tracked() => {
                stack.push((v.clone(), true));
                op.for_each_input(|x| {
                    if x.is_tracked() && !pos.contains_key(&x.id()) {
                        stack.push((x.clone(), false));
                    }
                });
            }
            _ => {
                pos.insert(id, None);
            }
        }
    }
}

/// Walks `order` backwards from `root` (its last entry), returning the gradient of each target
/// that was reached. Gradients live in `grads` (empty on entry), indexed by position in the
/// order.
fn propagate<V: Value>(root: &Var, seed: Option<&Var>, order: &[Var], pos: &Positions, targets: &IdSet, grads: &mut Vec<Option<V>>) -> IdMap<V> {
    grads.resize_with(order.len(), || None);
    let start = match seed {
        Some(s) => V::of(s),
        None => V::constant(root.data().ones_like()),
    };
    *grads.last_mut().expect("the root is in the order") = Some(start);
    let mut out = IdMap::with_capacity_and_hasher(targets.len(), Default::default());
    let mut inputs: Vec<Option<u32>> = Vec::with_capacity(4);
    let mut needs: Vec<bool> = Vec::with_capacity(4);
    let mut input_grads: Vec<Option<V>> = Vec::with_capacity(4);
    for (i, v) in order.iter().enumerate().rev() {
        let Some(g) = grads[i].take() else { continue };
        if targets.contains(&v.id()) {
            out.insert(v.id(), g);
            continue;
        }
        let op = v.op().expect("a relevant node that is not a target was computed by an op");
        inputs.clear();
        op.for_each_input(|x| inputs.push(pos.get(&x.id()).copied().flatten()));
        needs.clear();
        needs.extend(inputs.iter().map(Option::is_some));
        input_grads.clear();
        op.backward::<V>(v, &g, &needs, &mut input_grads);
        for (slot, gi) in inputs.iter().zip(input_grads.drain(..)) {
            if let (Some(p), Some(gi)) = (slot, gi) {
                let acc = &mut grads[*p as usize];
                *acc = Some(match acc.take() {
                    Some(sum) => sum.add(&gi),
                    None => gi,
                });
            }
        }
    }
    out
}

/// Gradients of the one-element `root` with respect to each target reached (targets not
/// reached are absent). With `create_graph` the gradients are recorded Vars. A `seed` (of the
/// root's shape) starts the pass instead of ones: the result is then the vector-Jacobian
/// product `seedᵀ·J` (with `create_graph`, differentiable in the seed too).
pub(crate) fn backward(root: &Var, targets: &[Var], create_graph: bool, seed: Option<&Var>) -> IdMap<Var> {
    let ids: IdSet = targets.iter().map(|t| t.id()).collect();
    let mut scratch = Scratch::take();
    topo(root, &ids, &mut scratch);
    let out = if scratch.order.is_empty() {
        IdMap::default()
    } else if create_graph {
        let _on = tape::Resume::new();
        propagate::<Var>(root, seed, &scratch.order, &scratch.pos, &ids, &mut Vec::new())
    } else {
        let _off = tape::Pause::new();
        let Scratch { order, pos, grads, .. } = &mut *scratch;
        propagate::<Tensor>(root, seed, order, pos, &ids, grads).into_iter().map(|(k, t)| (k, Var::constant(t))).collect()
    };
    scratch.give_back();
    out
}

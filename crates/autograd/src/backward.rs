//! The reverse pass. Sorts the nodes between the result and the values being differentiated
//! (iteratively: a chain of a million ops must not overflow the stack), then walks them from the
//! result back, calling each op's rule and summing the gradients that meet at a node.
//!
//! When nothing outer records, rules run on raw tensors ([`Tensor`] as the [`Value`]) and no
//! graph is built. When an outer gradient is recording, they run on [`Var`]s with recording on,
//! so the gradients are themselves differentiable.

use std::cell::Cell;

use flux_tensor::Tensor;

use crate::idmap::IdMap;
use crate::positions::Positions;
use crate::tape;
use crate::value::Value;
use crate::var::Var;

/// The buffers of one reverse pass. They are kept per thread between calls (up to a size), so
/// differentiating a long graph again does not pay for growing, and page-faulting in, fresh
/// maps and vectors every time.
#[derive(Default)]
struct Scratch {
    pos: Positions,
    /// The sort's buffers, kept empty between passes and lent out typed per pass (the sort
    /// borrows the nodes: the root keeps the graph alive, so no reference count changes).
    order: Vec<usize>,
    stack: Vec<(usize, bool)>,
    /// Per-node buffers of a pass on raw tensors and of one on recorded values.
    tensors: Buffers<Tensor>,
    vars: Buffers<Var>,
}

/// What the walk over the sorted nodes keeps: the gradient reaching each node (by position),
/// and for the node at hand its inputs' positions and which of them need a gradient.
struct Buffers<V> {
    grads: Vec<Option<V>>,
    inputs: Vec<Option<u32>>,
    needs: Vec<bool>,
}

impl<V> Default for Buffers<V> {
    fn default() -> Self {
        Buffers { grads: Vec::new(), inputs: Vec::new(), needs: Vec::new() }
    }
}

impl<V> Buffers<V> {
    fn clear(&mut self) {
        self.grads.clear();
        self.inputs.clear();
        self.needs.clear();
    }
}

/// The values a pass differentiates with respect to, by id: the usual one to a few are scanned
/// in place, more go in a map. A value listed twice gets its gradient at its first place.
enum Targets {
    Few(usize, [u64; 8]),
    Many(IdMap<usize>),
}

impl Targets {
    fn new(ts: &[Var]) -> Targets {
        if ts.len() <= 8 {
            let mut ids = [0; 8];
            for (slot, t) in ids.iter_mut().zip(ts) {
                *slot = t.id();
            }
            Targets::Few(ts.len(), ids)
        } else {
            let mut m = IdMap::with_capacity_and_hasher(ts.len(), Default::default());
            for (i, t) in ts.iter().enumerate().rev() {
                m.insert(t.id(), i);
            }
            Targets::Many(m)
        }
    }

    /// The place of `id` among the targets.
    #[inline]
    fn index(&self, id: u64) -> Option<usize> {
        match self {
            Targets::Few(n, ids) => ids[..*n].iter().position(|&t| t == id),
            Targets::Many(m) => m.get(&id).copied(),
        }
    }

    #[inline]
    fn contains(&self, id: u64) -> bool {
        self.index(id).is_some()
    }
}

/// An empty buffer's allocation, retyped for one pass (same size and alignment, so collecting
/// reuses it in place).
fn lend<T, U>(buf: Vec<T>) -> Vec<U> {
    debug_assert!(buf.is_empty());
    buf.into_iter().map(|_| unreachable!("lent buffers are empty")).collect()
}

/// Gives a lent buffer's allocation back, emptied.
fn unlend<T, U: Default>(mut buf: Vec<T>) -> Vec<U> {
    buf.clear();
    buf.into_iter().map(|_| U::default()).collect()
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
        self.tensors.clear();
        self.vars.clear();
        self.pos.reset();
        if self.pos.capacity() <= KEEP_AT_MOST && self.tensors.grads.capacity() <= KEEP_AT_MOST && self.vars.grads.capacity() <= KEEP_AT_MOST {
            SCRATCH.with(|s| s.set(Some(self)));
        }
    }
}

/// Fills `order` with the nodes on some path from `root` to a target, inputs before outputs,
/// and `pos` with each visited node's position in that order (`None` for nodes on no such
/// path).
fn topo<'a>(root: &'a Var, targets: &Targets, pos: &mut Positions, order: &mut Vec<&'a Var>, stack: &mut Vec<(&'a Var, bool)>) {
    stack.push((root, false));
    while let Some((v, expanded)) = stack.pop() {
        let id = v.id();
        if expanded {
            let mut r = false;
            if let Some(op) = v.op() {
                op.for_each_input(|x| r |= pos.position(x.id()).is_some());
            }
            pos.place(id, r.then_some(order.len() as u32));
            if r {
                order.push(v);
            }
            continue;
        }
        if pos.seen(id) {
            continue;
        }
        if targets.contains(id) {
            pos.place(id, Some(order.len() as u32));
            order.push(v);
            continue;
        }
        match v.op() {
            Some(op) if v.is_tracked() => {
                stack.push((v, true));
                op.for_each_input(|x| {
                    if x.is_tracked() && !pos.seen(x.id()) {
                        stack.push((x, false));
                    }
                });
            }
            _ => pos.place(id, None),
        }
    }
}

/// Walks `order` backwards from `root` (its last entry), handing each target that is reached
/// its gradient (`emit(place of the target, gradient)`). Gradients live in `bufs.grads` (empty
/// on entry), indexed by position in the order.
fn propagate<V: Value>(
    root: &Var,
    seed: Option<&Var>,
    order: &[&Var],
    pos: &Positions,
    targets: &Targets,
    bufs: &mut Buffers<V>,
    mut emit: impl FnMut(usize, V),
) {
    let Buffers { grads, inputs, needs } = bufs;
    grads.resize_with(order.len(), || None);
    let start = match seed {
        Some(s) => V::of(s),
        None => V::constant(root.data().ones_like()),
    };
    *grads.last_mut().expect("the root is in the order") = Some(start);
    for (i, v) in order.iter().enumerate().rev() {
        let Some(g) = grads[i].take() else { continue };
        if let Some(t) = targets.index(v.id()) {
            emit(t, g);
            continue;
        }
        let op = v.op().expect("a relevant node that is not a target was computed by an op");
        inputs.clear();
        op.for_each_input(|x| inputs.push(pos.position(x.id())));
        needs.clear();
        needs.extend(inputs.iter().map(Option::is_some));
        op.backward::<V>(v, &g, needs, |i, gi| {
            if let Some(p) = inputs[i] {
                // summed in place: taking the old gradient out and writing a new one back
                // copied the 72-byte slot through memory twice per edge
                match &mut grads[p as usize] {
                    Some(sum) => *sum = sum.add(&gi),
                    empty => *empty = Some(gi),
                }
            }
        });
    }
}

/// Gradients of `root` with respect to each target, in the targets' order (`None` for a
/// target not reached, and for a repeated one after its first place). Without a `seed` the
/// pass starts from ones (the gradient of a one-element root); with one (of the root's shape)
/// the result is the vector-Jacobian product `seedᵀ·J`, differentiable in the seed too when
/// the pass records. With `create_graph` the gradients are recorded Vars.
pub(crate) fn backward(root: &Var, targets: &[Var], create_graph: bool, seed: Option<&Var>) -> Vec<Option<Var>> {
    let mut out = vec![None; targets.len()];
    backward_into(root, targets, create_graph, seed, &mut out);
    out
}

/// [`backward`] for one target, without a vector for the result (`gradient`'s usual case).
pub(crate) fn backward_one(root: &Var, target: &Var, create_graph: bool, seed: Option<&Var>) -> Option<Var> {
    let mut out = [None];
    backward_into(root, std::slice::from_ref(target), create_graph, seed, &mut out);
    let [g] = out;
    g
}

/// [`backward`] writing into `out` (one entry per target, all `None` on entry).
fn backward_into(root: &Var, targets: &[Var], create_graph: bool, seed: Option<&Var>, out: &mut [Option<Var>]) {
    let ids = Targets::new(targets);
    let mut scratch = Scratch::take();
    let mut order: Vec<&Var> = lend(std::mem::take(&mut scratch.order));
    let mut stack: Vec<(&Var, bool)> = lend(std::mem::take(&mut scratch.stack));
    scratch.pos.start(root.id());
    topo(root, &ids, &mut scratch.pos, &mut order, &mut stack);
    // an empty order: the root reaches no target, and every gradient stays `None`
    if !order.is_empty() {
        if create_graph {
            let _on = tape::Resume::new();
            propagate::<Var>(root, seed, &order, &scratch.pos, &ids, &mut scratch.vars, |t, g| out[t] = Some(g));
        } else {
            let _off = tape::Pause::new();
            propagate::<Tensor>(root, seed, &order, &scratch.pos, &ids, &mut scratch.tensors, |t, g| out[t] = Some(Var::constant(g)));
        }
    }
    scratch.order = unlend(order);
    scratch.stack = unlend::<_, (usize, bool)>(stack);
    scratch.give_back();
}

//! The reverse pass. Sorts the nodes between the result and the values being differentiated
//! (iteratively: a chain of a million ops must not overflow the stack), then walks them from the
//! result back, calling each op's rule and summing the gradients that meet at a node.
//!
//! When nothing outer records, rules run on raw tensors ([`Tensor`] as the [`Value`]) and no
//! graph is built. When an outer gradient is recording, they run on [`Var`]s with recording on,
//! so the gradients are themselves differentiable.

use flux_tensor::Tensor;

use crate::idmap::{IdMap, IdSet};

use crate::tape;
use crate::value::Value;
use crate::var::Var;

/// Where a node stands in the sort: on a path to a target (with its position in the order),
/// or not.
type Positions = IdMap<Option<u32>>;

/// Nodes on some path from `root` to a target, inputs before outputs, and each visited node's
/// position in that order (`None` for nodes on no such path).
fn topo(root: &Var, targets: &IdSet) -> (Vec<Var>, Positions) {
    let mut pos: Positions = IdMap::default();
    let mut order = Vec::new();
    let mut stack: Vec<(Var, bool)> = vec![(root.clone(), false)];
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
    (order, pos)
}

/// Walks `order` backwards from `root` (its last entry), returning the gradient of each target
/// that was reached. Gradients live in a vector indexed by position in the order.
fn propagate<V: Value>(root: &Var, order: &[Var], pos: &Positions, targets: &IdSet) -> IdMap<V> {
    let mut grads: Vec<Option<V>> = Vec::with_capacity(order.len());
    grads.resize_with(order.len(), || None);
    *grads.last_mut().expect("the root is in the order") = Some(V::constant(root.data().ones_like()));
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
/// reached are absent). With `create_graph` the gradients are recorded Vars.
pub(crate) fn backward(root: &Var, targets: &[Var], create_graph: bool) -> IdMap<Var> {
    let ids: IdSet = targets.iter().map(|t| t.id()).collect();
    let (order, pos) = topo(root, &ids);
    if order.is_empty() {
        return IdMap::default();
    }
    if create_graph {
        let _on = tape::Resume::new();
        propagate::<Var>(root, &order, &pos, &ids)
    } else {
        let _off = tape::Pause::new();
        propagate::<Tensor>(root, &order, &pos, &ids).into_iter().map(|(k, t)| (k, Var::constant(t))).collect()
    }
}

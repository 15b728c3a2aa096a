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

/// Nodes on some path from `root` to a target, inputs before outputs, and which node ids are
/// on such a path.
fn topo(root: &Var, targets: &IdSet) -> (Vec<Var>, IdMap<bool>) {
    let mut relevant: IdMap<bool> = IdMap::default();
    let mut order = Vec::new();
    let mut stack: Vec<(Var, bool)> = vec![(root.clone(), false)];
    while let Some((v, expanded)) = stack.pop() {
        let id = v.id();
        if expanded {
            let mut r = false;
            if let Some(op) = v.op() {
                op.for_each_input(|x| r |= relevant.get(&x.id()).copied().unwrap_or(false));
            }
            relevant.insert(id, r);
            if r {
                order.push(v);
            }
            continue;
        }
        if relevant.contains_key(&id) {
            continue;
        }
        if targets.contains(&id) {
            relevant.insert(id, true);
            order.push(v);
            continue;
        }
        match v.op() {
            Some(op) if v.is_tracked() => {
                stack.push((v.clone(), true));
                op.for_each_input(|x| {
                    if x.is_tracked() && !relevant.contains_key(&x.id()) {
                        stack.push((x.clone(), false));
                    }
                });
            }
            _ => {
                relevant.insert(id, false);
            }
        }
    }
    (order, relevant)
}

/// Walks `order` backwards from `root`, returning the gradient of each target that was reached.
fn propagate<V: Value>(root: &Var, order: &[Var], relevant: &IdMap<bool>, targets: &IdSet) -> IdMap<V> {
    let mut grads: IdMap<V> = IdMap::with_capacity_and_hasher(order.len(), Default::default());
    grads.insert(root.id(), V::constant(root.data().ones_like()));
    let mut out = IdMap::with_capacity_and_hasher(targets.len(), Default::default());
    let mut needs = Vec::with_capacity(4);
    let mut input_grads: Vec<Option<V>> = Vec::with_capacity(4);
    for v in order.iter().rev() {
        let id = v.id();
        let Some(g) = grads.remove(&id) else { continue };
        if targets.contains(&id) {
            out.insert(id, g);
            continue;
        }
        let op = v.op().expect("a relevant node that is not a target was computed by an op");
        needs.clear();
        op.for_each_input(|x| needs.push(relevant.get(&x.id()).copied().unwrap_or(false)));
        input_grads.clear();
        op.backward::<V>(v, &g, &needs, &mut input_grads);
        let mut i = 0;
        op.for_each_input(|x| {
            let gi = input_grads.get_mut(i).and_then(Option::take);
            if let (true, Some(gi)) = (needs[i], gi) {
                match grads.entry(x.id()) {
                    std::collections::hash_map::Entry::Occupied(mut e) => {
                        let sum = e.get().add(&gi);
                        e.insert(sum);
                    }
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(gi);
                    }
                }
            }
            i += 1;
        });
    }
    out
}

/// Gradients of the one-element `root` with respect to each target reached (targets not
/// reached are absent). With `create_graph` the gradients are recorded Vars.
pub(crate) fn backward(root: &Var, targets: &[Var], create_graph: bool) -> IdMap<Var> {
    let ids: IdSet = targets.iter().map(|t| t.id()).collect();
    let (order, relevant) = topo(root, &ids);
    if order.is_empty() {
        return IdMap::default();
    }
    if create_graph {
        let _on = tape::Resume::new();
        propagate::<Var>(root, &order, &relevant, &ids)
    } else {
        let _off = tape::Pause::new();
        propagate::<Tensor>(root, &order, &relevant, &ids).into_iter().map(|(k, t)| (k, Var::constant(t))).collect()
    }
}

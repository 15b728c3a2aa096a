//! [`broadcast_params`] and [`allreduce_grads`]: the two collectives of data-parallel training.

use std::cell::RefCell;

use flux_autograd::{Grads, Params, Var};
use flux_tensor::Tensor;

use crate::comm::{as_buf_mut, BufMut, Comm};
use crate::error::DistError;
use crate::pack::{verdict, Buf, Layout, Verdict};

thread_local! {
    /// The send and receive buffers of `allreduce_grads`, kept between calls: a training loop
    /// then reuses the same memory every step instead of mapping fresh pages (which costs as
    /// much as the exchange itself for a 100k-parameter model).
    static SCRATCH: RefCell<(Buf, Buf)> = const { RefCell::new((Buf::F32(Vec::new()), Buf::F32(Vec::new()))) };
}

fn peers_failed(n: usize) -> String {
    match n {
        1 => "1 other rank failed before the exchange (its own error says why)".into(),
        k => format!("{k} other ranks failed before the exchange (their own errors say why)"),
    }
}

fn verdict_error(op: &'static str, v: Verdict, local: Option<DistError>, layout: &Layout) -> Result<(), DistError> {
    match (v, local) {
        (Verdict::Ok, None) => Ok(()),
        (Verdict::Ok, Some(e)) => Err(e), // cannot happen: a local error raises the flag
        (Verdict::Failed(_), Some(e)) => Err(e),
        (Verdict::Failed(n), None) => Err(DistError::PeerFailed { op, detail: peers_failed(n) }),
        (Verdict::Mismatch, local) => Err(local.unwrap_or(DistError::Layout { op, detail: format!("this rank has {}", layout.describe()) })),
    }
}

/// Gives every rank rank 0's parameter values (Horovod's `broadcast_parameters`, Flux's
/// `DistributedUtils.synchronize!`): call it once after building the model and before
/// training, so that ranks that initialised their models differently start from the same point.
///
/// Two collectives: a short check that every rank holds the same parameter list (count, shapes
/// and dtypes; otherwise [`DistError::Layout`] on every rank, nothing changed), then one
/// broadcast of all the values in one buffer. Parameters must be leaves (`param`s).
///
/// ```
/// use flux_distributed::{broadcast_params, Comm};
/// use flux_autograd::{param, params};
/// use flux_tensor::Tensor;
/// let comms = Comm::local_group(2);
/// let values: Vec<Vec<f64>> = std::thread::scope(|s| {
///     let hs: Vec<_> = comms.into_iter().map(|c| s.spawn(move || {
///         let w = param(Tensor::full(&[2], c.rank() as f64 + 1.0)); // ranks differ
///         broadcast_params(&c, &params![&w]).unwrap();
///         w.data().to_vec()
///     })).collect();
///     hs.into_iter().map(|h| h.join().unwrap()).collect()
/// });
/// assert_eq!(values, vec![vec![1.0, 1.0], vec![1.0, 1.0]]); // rank 0's everywhere
/// ```
pub fn broadcast_params(comm: &Comm, ps: &Params) -> Result<(), DistError> {
    const OP: &str = "broadcast_params";
    let values: Vec<Tensor> = ps.iter().map(Var::data).collect();
    let layout = Layout::new(values.iter().map(|t| (t.shape().dims(), t.dtype())));
    let local = ps.iter().enumerate().find(|(_, p)| !p.is_leaf()).map(|(index, p)| DistError::NotALeaf { index, op: p.op_name() });
    if comm.size() == 1 {
        return local.map_or(Ok(()), Err);
    }
    // 1. Agree that the layouts match and that nobody failed (a fixed-length f64 buffer).
    let mut head = layout.trailer(local.is_some()).to_vec();
    comm.sum_buf(OP, BufMut::F64(&mut head))?;
    verdict_error(OP, verdict(&Buf::F64(head), 0, comm.size()), local, &layout)?;
    // 2. Rank 0's values, all in one buffer.
    let mut buf = layout.pack(&values.iter().cloned().map(Some).collect::<Vec<_>>(), false);
    comm.broadcast_buf(OP, as_buf_mut(&mut buf), 0)?;
    if comm.rank() != 0 {
        for (i, (p, v)) in ps.iter().zip(&values).enumerate() {
            p.set_data(layout.unpack(&buf, i, v.dtype()));
            debug_assert_eq!(p.shape(), layout.shapes[i].as_slice());
        }
    }
    Ok(())
}

/// Replaces every gradient in `grads` by its mean over the ranks, in place: after it, every
/// rank holds the same gradients, those of the loss averaged over all ranks' batches. With
/// equal batches on every rank (as [`flux_optim::DataLoader::shard`] gives), that is the
/// gradient one process would get on the union of the batches.
///
/// All gradients travel in **one** buffer, in one `MPI_Allreduce` (f32 when every gradient is
/// f32, else f64), followed by a 13-element trailer through which every rank checks, in the
/// same call, that all ranks packed the same layout and that none failed locally (a gradient
/// whose shape is not its parameter's). When anything is wrong, every rank returns an error
/// and no gradient changes. Gradients are taken in the order of the `Grads` (the order of the
/// `Params` given to `gradient_params`), so every rank must build the same model.
///
/// ```
/// use flux_distributed::{allreduce_grads, Comm};
/// use flux_autograd::{gradient_params, param, params};
/// let comms = Comm::local_group(2);
/// let grads: Vec<f64> = std::thread::scope(|s| {
///     let hs: Vec<_> = comms.into_iter().map(|c| s.spawn(move || {
///         let w = param(1.0);
///         let k = if c.rank() == 0 { 2.0 } else { 4.0 }; // each rank its own loss k·w²
///         let mut gs = gradient_params(|| k * w.powi(2), &params![&w]);
///         allreduce_grads(&c, &mut gs).unwrap();
///         gs[&w].item()
///     })).collect();
///     hs.into_iter().map(|h| h.join().unwrap()).collect()
/// });
/// assert_eq!(grads, vec![6.0, 6.0]); // the mean of 4 and 8
/// ```
pub fn allreduce_grads(comm: &Comm, grads: &mut Grads) -> Result<(), DistError> {
    const OP: &str = "allreduce_grads";
    let pairs: Vec<(Var, Tensor)> = grads.iter().map(|(p, g)| (p.clone(), g.data())).collect();
    let shapes: Vec<Vec<usize>> = pairs.iter().map(|(p, _)| p.shape().to_vec()).collect();
    let layout = Layout::new(shapes.iter().zip(&pairs).map(|(s, (_, g))| (s.as_slice(), g.dtype())));
    let mut local = None;
    let tensors: Vec<Option<Tensor>> = pairs
        .iter()
        .enumerate()
        .map(|(index, (p, g))| {
            if g.shape().dims() == p.shape().to_vec().as_slice() {
                Some(g.clone())
            } else {
                local.get_or_insert(DistError::GradShape { index, param: p.shape().to_vec(), grad: g.shape().to_vec() });
                None
            }
        })
        .collect();
    if comm.size() == 1 {
        return local.map_or(Ok(()), Err);
    }
    SCRATCH.with(|scratch| {
        let (send, recv) = &mut *scratch.borrow_mut();
        layout.pack_into(&tensors, local.is_some(), send);
        recv.shape_like(send);
        comm.sum_into(OP, send, recv)?;
        verdict_error(OP, verdict(recv, layout.numel, comm.size()), local, &layout)?;
        recv.scale(layout.numel, 1.0 / comm.size() as f64);
        for (i, (p, g)) in pairs.iter().enumerate() {
            grads.set(p, Var::from(layout.unpack(recv, i, g.dtype())));
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use flux_autograd::{gradient_params, param, params};

    fn on_threads<R: Send>(n: usize, f: impl Fn(Comm) -> R + Sync) -> Vec<R> {
        std::thread::scope(|s| {
            let hs: Vec<_> = Comm::local_group(n).into_iter().map(|c| s.spawn(|| f(c))).collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }

    #[test]
    fn the_mean_of_three_ranks_in_f32_and_f64() {
        let out = on_threads(3, |c| {
            let r = c.rank() as f64;
            let a = param(Tensor::from_vec(vec![r as f32, 1.0, 2.0 * r as f32], &[3]));
            let b = param(Tensor::from_vec(vec![r, -r], &[1, 2]));
            let ps = params![&a, &b];
            let mut gs = gradient_params(|| (&a * &a).sum() + (&b * &b * 3.0).sum(), &ps);
            allreduce_grads(&c, &mut gs).unwrap();
            (gs[&a].data(), gs[&b].data())
        });
        for (ga, gb) in &out {
            // d/da a² = 2a, mean over r = 0, 1, 2 of 2·[r, 1, 2r] = [2, 2, 4].
            assert_eq!(ga.to_vec(), vec![2.0, 2.0, 4.0]);
            assert_eq!(ga.dtype(), flux_tensor::DType::F32);
            assert_eq!(gb.to_vec(), vec![6.0, -6.0]);
            assert_eq!(gb.shape(), &[1, 2]);
        }
    }

    #[test]
    fn a_bad_gradient_on_one_rank_fails_every_rank_and_changes_nothing() {
        let out = on_threads(2, |c| {
            let w = param(Tensor::ones(&[2]));
            let ps = params![&w];
            let mut gs = gradient_params(|| (&w * &w).sum(), &ps);
            if c.rank() == 1 {
                gs.set(&w, Var::from(Tensor::zeros(&[3])));
            }
            let before = gs[&w].data().to_vec();
            let e = allreduce_grads(&c, &mut gs).unwrap_err();
            assert_eq!(gs[&w].data().to_vec(), before);
            (c.rank(), e)
        });
        assert!(matches!(&out[0].1, DistError::PeerFailed { detail, .. } if detail.contains("1 other rank")), "{}", out[0].1);
        assert!(matches!(&out[1].1, DistError::GradShape { index: 0, param, grad } if param == &[2] && grad == &[3]), "{}", out[1].1);
    }

    #[test]
    fn different_models_of_equal_size_are_a_layout_error_on_every_rank() {
        let out = on_threads(2, |c| {
            let shape: &[usize] = if c.rank() == 0 { &[2, 3] } else { &[3, 2] };
            let w = param(Tensor::ones(shape).to_f32());
            let ps = params![&w];
            let mut gs = gradient_params(|| (&w * &w).sum(), &ps);
            let e1 = allreduce_grads(&c, &mut gs).unwrap_err();
            let e2 = broadcast_params(&c, &ps).unwrap_err();
            (e1, e2)
        });
        for (e1, e2) in out {
            assert!(matches!(e1, DistError::Layout { op: "allreduce_grads", .. }), "{e1}");
            assert!(matches!(e2, DistError::Layout { op: "broadcast_params", .. }), "{e2}");
            assert!(e2.to_string().contains("every rank must build the same model"));
        }
    }

    #[test]
    fn broadcast_keeps_each_parameters_dtype_and_shape() {
        let out = on_threads(2, |c| {
            let r = c.rank() as f64;
            let a = param(Tensor::full(&[2, 2], r + 1.0).to_f32());
            let b = param(Tensor::full(&[3], 10.0 * (r + 1.0)));
            broadcast_params(&c, &params![&a, &b]).unwrap();
            (a.data(), b.data())
        });
        for (a, b) in out {
            assert_eq!((a.dtype(), a.shape().dims().to_vec(), a.to_vec()), (flux_tensor::DType::F32, vec![2, 2], vec![1.0; 4]));
            assert_eq!((b.dtype(), b.to_vec()), (flux_tensor::DType::F64, vec![10.0; 3]));
        }
    }

    #[test]
    fn single_process_is_the_identity_but_still_checks() {
        let c = Comm::single();
        let w = param(Tensor::ones(&[2]));
        let ps = params![&w];
        let mut gs = gradient_params(|| (&w * &w).sum(), &ps);
        allreduce_grads(&c, &mut gs).unwrap();
        assert_eq!(gs[&w].data().to_vec(), vec![2.0, 2.0]);
        gs.set(&w, Var::from(Tensor::zeros(&[1])));
        assert!(matches!(allreduce_grads(&c, &mut gs), Err(DistError::GradShape { .. })));
        broadcast_params(&c, &ps).unwrap();
        let derived = &w * 2.0;
        assert!(matches!(broadcast_params(&c, &params![&derived]), Err(DistError::NotALeaf { index: 0, .. })));
    }
}

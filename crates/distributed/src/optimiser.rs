//! [`DistributedOptimiser`]: any optimiser, with its gradients averaged over the ranks first.

use std::time::{Duration, Instant};

use flux_autograd::{Grads, Params, Var};
use flux_optim::{OptimError, Optimiser};
use serde_json::Value;

use crate::comm::{BufMut, Comm};
use crate::sync::allreduce_grads;

/// Wraps any flux-optim optimiser (Horovod's `DistributedOptimizer`, Flux's
/// `DistributedUtils.DistributedOptimizer`): its [`Optimiser::update`] first replaces the
/// gradients by their mean over the ranks ([`allreduce_grads`]: one fused buffer, one
/// all-reduce), then lets the wrapped rule step. Every rank then applies the same step to the
/// same parameters, so ranks that started equal ([`crate::broadcast_params`]) stay equal, and
/// training is that of one process on the union of the ranks' batches.
///
/// It is an [`Optimiser`] itself, so [`flux_optim::train`] takes it as it is. Its name, learning
/// rate, state and saved state are the wrapped rule's. Errors of the all-reduce come back from
/// [`Optimiser::try_update`] as [`OptimError::Data`] naming the collective, on every rank.
/// [`Optimiser::apply_step`] (one parameter at a time, as `OptimiserChain` members and
/// [`Optimiser::step`] use it) averages that one gradient in its own all-reduce; prefer
/// `update`, which fuses them.
///
/// ```
/// use flux_distributed::{Comm, DistributedOptimiser};
/// use flux_optim::{Descent, Optimiser};
/// use flux_autograd::{gradient_params, param, params};
/// let comms = Comm::local_group(2);
/// let ws: Vec<f64> = std::thread::scope(|s| {
///     let hs: Vec<_> = comms.iter().map(|c| s.spawn(move || {
///         let w = param(1.0);
///         let ps = params![&w];
///         let mut opt = DistributedOptimiser::new(c, Descent::new(0.5));
///         let k = (c.rank() + 1) as f64; // the ranks' losses differ: w², 2w²
///         let gs = gradient_params(|| k * w.powi(2), &ps);
///         opt.update(&ps, &gs); // mean gradient (2 + 4) / 2 = 3
///         w.item()
///     })).collect();
///     hs.into_iter().map(|h| h.join().unwrap()).collect()
/// });
/// assert_eq!(ws, vec![-0.5, -0.5]); // 1 - 0.5 * 3, on both ranks
/// ```
pub struct DistributedOptimiser<O> {
    comm: Comm,
    inner: O,
    reduce_time: Duration,
    reduces: usize,
}

impl<O: Optimiser> DistributedOptimiser<O> {
    /// `opt`, averaging gradients over the ranks of `comm` before each step.
    ///
    /// ```
    /// use flux_distributed::{Comm, DistributedOptimiser};
    /// use flux_optim::{Adam, Optimiser};
    /// let opt = DistributedOptimiser::new(&Comm::single(), Adam::new(0.01));
    /// assert_eq!(opt.name(), "Adam(0.01, (0.9, 0.999))");
    /// ```
    pub fn new(comm: &Comm, opt: O) -> Self {
        DistributedOptimiser { comm: comm.clone(), inner: opt, reduce_time: Duration::ZERO, reduces: 0 }
    }

    /// The wrapped optimiser.
    ///
    /// ```
    /// use flux_distributed::{Comm, DistributedOptimiser};
    /// use flux_optim::{Descent, Optimiser};
    /// assert_eq!(DistributedOptimiser::new(&Comm::single(), Descent::new(0.1)).inner().lr(), Some(0.1));
    /// ```
    pub fn inner(&self) -> &O {
        &self.inner
    }

    /// The wrapped optimiser, mutably.
    ///
    /// ```
    /// use flux_distributed::{Comm, DistributedOptimiser};
    /// use flux_optim::{Descent, Optimiser};
    /// let mut o = DistributedOptimiser::new(&Comm::single(), Descent::new(0.1));
    /// o.inner_mut().set_lr(0.2);
    /// assert_eq!(o.lr(), Some(0.2));
    /// ```
    pub fn inner_mut(&mut self) -> &mut O {
        &mut self.inner
    }

    /// Unwraps the optimiser.
    ///
    /// ```
    /// use flux_distributed::{Comm, DistributedOptimiser};
    /// use flux_optim::Descent;
    /// let d: Descent = DistributedOptimiser::new(&Comm::single(), Descent::new(0.1)).into_inner();
    /// ```
    pub fn into_inner(self) -> O {
        self.inner
    }

    /// The communicator.
    ///
    /// ```
    /// use flux_distributed::{Comm, DistributedOptimiser};
    /// use flux_optim::Descent;
    /// assert_eq!(DistributedOptimiser::new(&Comm::single(), Descent::new(0.1)).comm().size(), 1);
    /// ```
    pub fn comm(&self) -> &Comm {
        &self.comm
    }

    /// Time spent in gradient all-reduces (packing, the exchange, unpacking) so far, and how
    /// many there were: the communication share of a step is this over the step time.
    ///
    /// ```
    /// use flux_distributed::{Comm, DistributedOptimiser};
    /// use flux_optim::Descent;
    /// let o = DistributedOptimiser::new(&Comm::single(), Descent::new(0.1));
    /// assert_eq!(o.allreduce_stats().1, 0);
    /// ```
    pub fn allreduce_stats(&self) -> (Duration, usize) {
        (self.reduce_time, self.reduces)
    }

    /// Averages `gs` over the ranks, timing it.
    fn average(&mut self, gs: &mut Grads) -> Result<(), OptimError> {
        let t0 = Instant::now();
        let r = allreduce_grads(&self.comm, gs).map_err(|e| OptimError::Data(format!("DistributedOptimiser: {e}")));
        self.reduce_time += t0.elapsed();
        self.reduces += 1;
        r
    }
}

impl<O> std::fmt::Debug for DistributedOptimiser<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DistributedOptimiser({:?})", self.comm)
    }
}

impl<O: Optimiser> Optimiser for DistributedOptimiser<O> {
    /// Averages this one gradient over the ranks (its own all-reduce), then the wrapped rule's
    /// step. Panics if the all-reduce fails (this method cannot return an error; `update`
    /// can).
    fn apply_step(&mut self, p: &Var, delta: &mut [f64]) {
        if self.comm.size() > 1 {
            let t0 = Instant::now();
            self.comm.sum_buf("DistributedOptimiser::apply_step", BufMut::F64(delta)).unwrap_or_else(|e| panic!("{e}"));
            let k = 1.0 / self.comm.size() as f64;
            delta.iter_mut().for_each(|d| *d *= k);
            self.reduce_time += t0.elapsed();
            self.reduces += 1;
        }
        self.inner.apply_step(p, delta)
    }

    fn name(&self) -> String {
        self.inner.name()
    }

    fn try_update(&mut self, ps: &Params, gs: &Grads) -> Result<(), OptimError> {
        let mut avg = gs.clone();
        self.average(&mut avg)?;
        self.inner.try_update(ps, &avg)
    }

    fn lr(&self) -> Option<f64> {
        self.inner.lr()
    }

    fn set_lr(&mut self, lr: f64) {
        self.inner.set_lr(lr)
    }

    fn clear_state(&mut self) {
        self.inner.clear_state()
    }

    fn config_json(&self) -> Value {
        self.inner.config_json()
    }

    fn check_config_json(&self, v: &Value) -> Result<(), String> {
        self.inner.check_config_json(v)
    }

    fn load_config_json(&mut self, v: &Value) {
        self.inner.load_config_json(v)
    }

    fn param_state_json(&self, id: u64) -> Option<Value> {
        self.inner.param_state_json(id)
    }

    fn check_param_state_json(&self, v: &Value, numel: usize) -> Result<(), String> {
        self.inner.check_param_state_json(v, numel)
    }

    fn load_param_state_json(&mut self, id: u64, v: &Value) {
        self.inner.load_param_state_json(id, v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flux_autograd::param;
    use flux_optim::{Adam, Descent};
    use flux_tensor::Tensor;

    #[test]
    fn step_of_one_parameter_averages_that_gradient() {
        let out: Vec<(Vec<f64>, usize)> = std::thread::scope(|s| {
            let hs: Vec<_> = Comm::local_group(2)
                .into_iter()
                .map(|c| {
                    s.spawn(move || {
                        let w = param(Tensor::from_vec(vec![1.0f32, 2.0], &[2]));
                        let mut opt = DistributedOptimiser::new(&c, Descent::new(0.5));
                        let g = Tensor::from_vec(vec![2.0f32 * (c.rank() + 1) as f32, 0.0], &[2]);
                        opt.step(&w, &g).unwrap(); // mean gradient [3, 0]
                        (w.data().to_vec(), opt.allreduce_stats().1)
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (w, calls) in out {
            assert_eq!(w, vec![-0.5, 2.0]);
            assert_eq!(calls, 1);
        }
    }

    #[test]
    fn name_state_and_learning_rate_are_the_wrapped_rules() {
        let mut o = DistributedOptimiser::new(&Comm::single(), Adam::new(0.01));
        let plain = Adam::new(0.01);
        assert_eq!(o.name(), plain.name());
        assert_eq!(o.config_json(), plain.config_json());
        o.set_lr(0.1);
        assert_eq!((o.lr(), o.inner().lr()), (Some(0.1), Some(0.1)));
        let w = param(1.0);
        let gs = flux_autograd::gradient_params(|| w.powi(2), &flux_autograd::params![&w]);
        o.update(&flux_autograd::params![&w], &gs);
        assert!(o.param_state_json(w.id()).is_some());
        o.clear_state();
        assert!(o.param_state_json(w.id()).is_none());
        assert!(format!("{o:?}").contains("rank 0 of 1"));
    }
}

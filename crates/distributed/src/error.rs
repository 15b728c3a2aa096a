//! [`DistError`]: everything that can go wrong in a collective, as a value.

/// Errors from [`crate::init`] and the collectives. A collective that fails fails on **every**
/// rank (the ranks agree on the outcome through the collective itself), so a program that
/// returns the error from `main` on one rank does not leave the others waiting.
///
/// ```
/// use flux_distributed::{allreduce_grads, Comm, DistError};
/// use flux_autograd::{gradient_params, param, params, Var};
/// use flux_tensor::Tensor;
/// let w = param(Tensor::ones(&[2]));
/// let mut gs = gradient_params(|| (&w * &w).sum(), &params![&w]);
/// gs.set(&w, Var::from(Tensor::zeros(&[3]))); // a gradient of the wrong shape
/// let e = allreduce_grads(&Comm::single(), &mut gs).unwrap_err();
/// assert!(matches!(e, DistError::GradShape { index: 0, .. }));
/// assert!(e.to_string().contains("[2]") && e.to_string().contains("[3]"));
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DistError {
    /// Starting MPI failed, or it was started or finished already.
    #[error("flux-distributed init: {0}")]
    Init(String),
    /// The program was started by `mpirun` with several ranks, but this build has no MPI backend.
    #[error(
        "flux-distributed init: launched as one of {ranks} ranks, but built without the `mpi` feature (enable `flux-distributed/mpi`, or `flux`'s `distributed`); every rank would train alone on all the data"
    )]
    NoMpiBackend {
        /// The number of ranks the launcher announced.
        ranks: usize,
    },
    /// A rank number out of range.
    #[error("{op}: rank {rank} does not exist in a communicator of {size} ranks")]
    Rank {
        /// The collective.
        op: &'static str,
        /// The rank asked for.
        rank: usize,
        /// The communicator's size.
        size: usize,
    },
    /// A gradient whose shape differs from its parameter's.
    #[error("allreduce_grads: parameter #{index} has shape {param:?} but its gradient {grad:?}")]
    GradShape {
        /// Its position in the `Grads`.
        index: usize,
        /// The parameter's shape.
        param: Vec<usize>,
        /// The gradient's shape.
        grad: Vec<usize>,
    },
    /// A parameter that is the result of an operation cannot receive broadcast values.
    #[error("broadcast_params: parameter #{index} is the result of {op}, not a leaf (a param)")]
    NotALeaf {
        /// Its position in the `Params`.
        index: usize,
        /// The operation that produced it.
        op: &'static str,
    },
    /// The ranks hold different parameter lists (count, shapes or dtypes).
    #[error("{op}: the ranks hold different parameters ({detail}); every rank must build the same model")]
    Layout {
        /// The collective.
        op: &'static str,
        /// What differs, as far as this rank can tell.
        detail: String,
    },
    /// One or more other ranks failed (a local error on their side, a panic, or they left); this
    /// rank's data was left unchanged.
    #[error("{op}: {detail}; nothing was changed on this rank")]
    PeerFailed {
        /// The collective.
        op: &'static str,
        /// What is known about the failure.
        detail: String,
    },
    /// A buffer longer than one MPI call can carry.
    #[error("{op}: {len} elements do not fit in one MPI message (at most {max})")]
    TooLarge {
        /// The collective.
        op: &'static str,
        /// The buffer's length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

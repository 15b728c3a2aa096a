//! [`Comm`]: a group of ranks and its collectives, over MPI (feature `mpi`), over threads of
//! one process ([`Comm::local_group`]), or a single process ([`Comm::single`]).

use std::fmt;
use std::sync::Arc;

use crate::error::DistError;
use crate::local;
use crate::pack::Buf;

/// A mutable buffer of one of the element types the collectives carry.
#[derive(Debug)]
pub enum BufMut<'a> {
    /// `f32` elements.
    F32(&'a mut [f32]),
    /// `f64` elements.
    F64(&'a mut [f64]),
}

impl BufMut<'_> {
    fn len(&self) -> usize {
        match self {
            BufMut::F32(v) => v.len(),
            BufMut::F64(v) => v.len(),
        }
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// The element types a [`Comm`] can reduce and broadcast: `f32` and `f64`.
///
/// ```
/// use flux_distributed::{Comm, Element};
/// fn total<T: Element>(comm: &Comm, v: &mut [T]) { comm.all_reduce_sum(v).unwrap() }
/// let mut v = [1.0f32, 2.0];
/// total(&Comm::single(), &mut v);
/// assert_eq!(v, [1.0, 2.0]);
/// ```
pub trait Element: sealed::Sealed + Copy + Send + Sync + 'static {
    /// The slice as a [`BufMut`].
    fn buf(s: &mut [Self]) -> BufMut<'_>;
}

impl Element for f32 {
    fn buf(s: &mut [f32]) -> BufMut<'_> {
        BufMut::F32(s)
    }
}

impl Element for f64 {
    fn buf(s: &mut [f64]) -> BufMut<'_> {
        BufMut::F64(s)
    }
}

/// One rank of a thread group; dropping the last handle of a rank tells the others it left.
#[derive(Debug)]
pub(crate) struct Member {
    group: Arc<local::Group>,
    rank: usize,
}

impl Drop for Member {
    fn drop(&mut self) {
        self.group.leave(self.rank, std::thread::panicking());
    }
}

#[derive(Clone, Debug)]
enum Backend {
    Single,
    Threads(Arc<Member>),
    #[cfg(feature = "mpi")]
    Mpi(Arc<crate::mpi_backend::World>),
}

/// A communicator: this process's rank among `size` ranks, and the collectives the
/// data-parallel functions use. Cheap to clone (clones share the connection); `Send + Sync`.
///
/// Three backends:
/// - MPI ([`crate::init`] with the `mpi` feature): one rank per process, over `MPI_COMM_WORLD`.
/// - [`Comm::single`]: one process alone (`rank 0 of 1`); every collective is the identity, so
///   data-parallel code runs unchanged without MPI.
/// - [`Comm::local_group`]: `n` ranks as `n` threads of one process, for tests and for
///   data-parallel training on one machine without MPI.
///
/// Every collective must be called by every rank, in the same order, with buffers of the same
/// type and length (as in MPI). It returns a [`DistError`] (the same on every rank where the
/// ranks can tell) instead of panicking.
///
/// ```
/// use flux_distributed::Comm;
/// let comms = Comm::local_group(3);
/// let sums: Vec<Vec<f64>> = std::thread::scope(|s| {
///     let hs: Vec<_> = comms.iter().map(|c| s.spawn(move || {
///         let mut v = vec![c.rank() as f64, 1.0];
///         c.all_reduce_sum(&mut v).unwrap();
///         v
///     })).collect();
///     hs.into_iter().map(|h| h.join().unwrap()).collect()
/// });
/// assert!(sums.iter().all(|v| v == &[3.0, 3.0])); // 0 + 1 + 2, and 1 + 1 + 1
/// ```
#[derive(Clone)]
pub struct Comm {
    rank: usize,
    size: usize,
    backend: Backend,
}

impl fmt::Debug for Comm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Comm(rank {} of {}, {})", self.rank, self.size, self.backend_name())
    }
}

impl Comm {
    /// One process alone: rank 0 of 1. Collectives leave their buffers as they are (the sum and
    /// the mean over one rank), so code written for several ranks runs unchanged.
    ///
    /// ```
    /// let c = flux_distributed::Comm::single();
    /// assert_eq!((c.rank(), c.size()), (0, 1));
    /// ```
    pub fn single() -> Comm {
        Comm { rank: 0, size: 1, backend: Backend::Single }
    }

    /// `n` ranks that live in one process, one handle per rank (rank `i` at index `i`): move
    /// each to its own thread. A rank whose thread panics, or whose handle is dropped, makes the
    /// collectives of the others return [`DistError::PeerFailed`] instead of waiting forever.
    /// Panics if `n` is 0.
    ///
    /// ```
    /// let comms = flux_distributed::Comm::local_group(2);
    /// assert_eq!((comms[1].rank(), comms[1].size()), (1, 2));
    /// ```
    pub fn local_group(n: usize) -> Vec<Comm> {
        assert!(n > 0, "Comm::local_group: a group needs at least one rank");
        let group = local::Group::new(n);
        (0..n).map(|rank| Comm { rank, size: n, backend: Backend::Threads(Arc::new(Member { group: group.clone(), rank })) }).collect()
    }

    #[cfg(feature = "mpi")]
    pub(crate) fn from_mpi(world: Arc<crate::mpi_backend::World>) -> Comm {
        Comm { rank: world.rank(), size: world.size(), backend: Backend::Mpi(world) }
    }

    /// This process's rank, `0..size()`.
    ///
    /// ```
    /// assert_eq!(flux_distributed::Comm::single().rank(), 0);
    /// ```
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The number of ranks.
    ///
    /// ```
    /// assert_eq!(flux_distributed::Comm::single().size(), 1);
    /// ```
    pub fn size(&self) -> usize {
        self.size
    }

    /// Is this rank 0 (the one that usually prints and saves)?
    ///
    /// ```
    /// assert!(flux_distributed::Comm::single().is_root());
    /// ```
    pub fn is_root(&self) -> bool {
        self.rank == 0
    }

    /// `"mpi"`, `"threads"` or `"single"`.
    ///
    /// ```
    /// assert_eq!(flux_distributed::Comm::single().backend_name(), "single");
    /// ```
    pub fn backend_name(&self) -> &'static str {
        match &self.backend {
            Backend::Single => "single",
            Backend::Threads(_) => "threads",
            #[cfg(feature = "mpi")]
            Backend::Mpi(_) => "mpi",
        }
    }

    /// Waits until every rank has called it.
    ///
    /// ```
    /// flux_distributed::Comm::single().barrier().unwrap();
    /// ```
    pub fn barrier(&self) -> Result<(), DistError> {
        match &self.backend {
            Backend::Single => Ok(()),
            Backend::Threads(m) => local::barrier(&m.group, m.rank).map_err(|e| local_error("barrier", e)),
            #[cfg(feature = "mpi")]
            Backend::Mpi(w) => w.barrier(),
        }
    }

    /// Replaces `buf` on every rank by the element-wise sum over ranks (`MPI_Allreduce` with
    /// `MPI_SUM`). One call carries the whole slice.
    ///
    /// ```
    /// let mut v = [1.5f64, 2.0];
    /// flux_distributed::Comm::single().all_reduce_sum(&mut v).unwrap();
    /// assert_eq!(v, [1.5, 2.0]);
    /// ```
    pub fn all_reduce_sum<T: Element>(&self, buf: &mut [T]) -> Result<(), DistError> {
        self.sum_buf("all_reduce_sum", T::buf(buf))
    }

    /// Replaces `buf` on every rank by rank `root`'s (`MPI_Bcast`).
    ///
    /// ```
    /// use flux_distributed::{Comm, DistError};
    /// let mut v = [1.0f32];
    /// Comm::single().broadcast(&mut v, 0).unwrap();
    /// assert!(matches!(Comm::single().broadcast(&mut v, 1), Err(DistError::Rank { rank: 1, .. })));
    /// ```
    pub fn broadcast<T: Element>(&self, buf: &mut [T], root: usize) -> Result<(), DistError> {
        self.broadcast_buf("broadcast", T::buf(buf), root)
    }

    pub(crate) fn sum_buf(&self, op: &'static str, buf: BufMut<'_>) -> Result<(), DistError> {
        check_len(op, buf.len())?;
        match &self.backend {
            Backend::Single => Ok(()),
            Backend::Threads(m) => local::all_reduce_sum(&m.group, m.rank, buf).map_err(|e| local_error(op, e)),
            #[cfg(feature = "mpi")]
            Backend::Mpi(w) => w.all_reduce_sum(buf),
        }
    }

    /// The sum over ranks of every rank's `send`, into `recv` (same type and length): one
    /// `MPI_Allreduce` without copying `send` first.
    pub(crate) fn sum_into(&self, op: &'static str, send: &Buf, recv: &mut Buf) -> Result<(), DistError> {
        check_len(op, send.len())?;
        debug_assert_eq!(send.len(), recv.len());
        match &self.backend {
            Backend::Single => {
                recv.clone_from(send);
                Ok(())
            }
            Backend::Threads(m) => {
                recv.clone_from(send);
                local::all_reduce_sum(&m.group, m.rank, as_buf_mut(recv)).map_err(|e| local_error(op, e))
            }
            #[cfg(feature = "mpi")]
            Backend::Mpi(w) => w.all_reduce_from(send, recv),
        }
    }

    pub(crate) fn broadcast_buf(&self, op: &'static str, buf: BufMut<'_>, root: usize) -> Result<(), DistError> {
        if root >= self.size {
            return Err(DistError::Rank { op, rank: root, size: self.size });
        }
        check_len(op, buf.len())?;
        match &self.backend {
            Backend::Single => Ok(()),
            Backend::Threads(m) => local::broadcast(&m.group, m.rank, buf, root).map_err(|e| local_error(op, e)),
            #[cfg(feature = "mpi")]
            Backend::Mpi(w) => w.broadcast(buf, root),
        }
    }
}

/// A packed buffer as a [`BufMut`].
pub(crate) fn as_buf_mut(b: &mut Buf) -> BufMut<'_> {
    match b {
        Buf::F32(v) => BufMut::F32(v),
        Buf::F64(v) => BufMut::F64(v),
    }
}

/// The most elements one call carries (MPI counts are C ints).
pub(crate) const MAX_COUNT: usize = i32::MAX as usize;

fn check_len(op: &'static str, len: usize) -> Result<(), DistError> {
    if len > MAX_COUNT {
        Err(DistError::TooLarge { op, len, max: MAX_COUNT })
    } else {
        Ok(())
    }
}

fn local_error(op: &'static str, e: local::LocalError) -> DistError {
    match e {
        local::LocalError::Broken(detail) => DistError::PeerFailed { op, detail },
        local::LocalError::Mismatch(detail) => DistError::Layout { op, detail },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on_threads<R: Send>(comms: Vec<Comm>, f: impl Fn(Comm) -> R + Sync) -> Vec<R> {
        std::thread::scope(|s| {
            let hs: Vec<_> = comms.into_iter().map(|c| s.spawn(|| f(c))).collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }

    #[test]
    fn thread_sums_are_identical_on_every_rank() {
        let out = on_threads(Comm::local_group(4), |c| {
            let mut v: Vec<f32> = (0..5).map(|i| 0.1 * (i + c.rank()) as f32).collect();
            c.all_reduce_sum(&mut v).unwrap();
            v
        });
        let expect: Vec<f32> = (0..5).map(|i| (0..4).fold(0f32, |a, r| a + 0.1 * (i + r) as f32)).collect();
        for v in &out {
            assert_eq!(v, &expect);
        }
    }

    #[test]
    fn thread_broadcast_and_barrier() {
        let out = on_threads(Comm::local_group(3), |c| {
            let mut v = vec![c.rank() as f64; 3];
            c.barrier().unwrap();
            c.broadcast(&mut v, 2).unwrap();
            v
        });
        assert!(out.iter().all(|v| v == &[2.0; 3]));
    }

    #[test]
    fn different_lengths_are_an_error_on_every_rank() {
        let out = on_threads(Comm::local_group(2), |c| {
            let mut v = vec![1.0f32; 2 + c.rank()];
            c.all_reduce_sum(&mut v).unwrap_err().to_string()
        });
        for e in out {
            assert!(e.contains("different buffers") && e.contains("2 f32") && e.contains("3 f32"), "{e}");
        }
    }

    #[test]
    fn a_panicking_rank_fails_the_others_instead_of_hanging() {
        let out = on_threads(Comm::local_group(3), |c| {
            if c.rank() == 1 {
                // Panic while holding the handle, as a training step that goes wrong would.
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                    let _c = c;
                    panic!("boom");
                }));
                assert!(r.is_err());
                return None;
            }
            let mut v = [1.0f64];
            Some(c.all_reduce_sum(&mut v).unwrap_err())
        });
        for e in out.into_iter().flatten() {
            assert!(matches!(&e, DistError::PeerFailed { detail, .. } if detail == "rank 1 panicked"), "{e}");
        }
    }

    #[test]
    fn broadcast_from_a_missing_rank_is_an_error() {
        let mut v = [0f32];
        let e = Comm::single().broadcast(&mut v, 3).unwrap_err().to_string();
        assert!(e.contains("rank 3") && e.contains("1 ranks"), "{e}");
    }
}

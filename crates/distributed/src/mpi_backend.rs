//! The MPI backend (feature `mpi`): rsmpi on the system's MPI library, over `MPI_COMM_WORLD`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once, Weak};

use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator, CommunicatorCollectives, Root};
use mpi::Threading;

use crate::comm::{BufMut, Comm};
use crate::error::DistError;
use crate::pack::Buf;

/// MPI, started once per process; finalised when the last [`Comm`] that holds it is dropped.
pub(crate) struct World {
    _universe: Universe,
    rank: usize,
    size: usize,
    threading: Threading,
    /// Serialises MPI calls from several threads (the library is started with
    /// `MPI_THREAD_SERIALIZED`).
    lock: Mutex<()>,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "World(rank {} of {}, {:?})", self.rank, self.size, self.threading)
    }
}

static WORLD: Mutex<Option<Weak<World>>> = Mutex::new(None);
static HOOK: Once = Once::new();
static ABORT_ON_PANIC: AtomicBool = AtomicBool::new(true);

pub(crate) fn set_abort_on_panic(on: bool) {
    ABORT_ON_PANIC.store(on, Ordering::SeqCst);
}

/// Starts MPI (or returns the running world).
pub(crate) fn init() -> Result<Comm, DistError> {
    let mut slot = WORLD.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(world) = slot.as_ref().and_then(Weak::upgrade) {
        return Ok(Comm::from_mpi(world));
    }
    if mpi::environment::is_finalized() {
        return Err(DistError::Init(
            "MPI was finalised when the last Comm of this process was dropped, and MPI cannot start twice in one process; keep one Comm alive for the whole run".into(),
        ));
    }
    let (universe, threading) = mpi::initialize_with_threading(Threading::Serialized)
        .ok_or_else(|| DistError::Init("MPI was already initialised outside flux-distributed (MPI_Init_thread cannot be called twice)".into()))?;
    let w = universe.world();
    let (rank, size) = (w.rank(), w.size());
    let (rank, size) = (usize::try_from(rank).map_err(|_| DistError::Init(format!("MPI gave the negative rank {rank}")))?, size.max(1) as usize);
    let world = Arc::new(World { _universe: universe, rank, size, threading, lock: Mutex::new(()) });
    *slot = Some(Arc::downgrade(&world));
    HOOK.call_once(install_panic_hook);
    Ok(Comm::from_mpi(world))
}

/// After the usual panic message, a panic on any rank calls `MPI_Abort` on `MPI_COMM_WORLD`
/// (when several ranks run and MPI is up): `mpirun` then ends every rank with an error instead
/// of leaving them blocked in their next collective.
fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        if ABORT_ON_PANIC.load(Ordering::SeqCst) && mpi::environment::is_initialized() && !mpi::environment::is_finalized() {
            let world = SimpleCommunicator::world();
            if world.size() > 1 {
                eprintln!("flux-distributed: rank {} of {} panicked; calling MPI_Abort so that every rank stops", world.rank(), world.size());
                world.abort(101);
            }
        }
    }));
}

impl World {
    pub(crate) fn rank(&self) -> usize {
        self.rank
    }

    pub(crate) fn size(&self) -> usize {
        self.size
    }

    fn enter(&self) -> (MutexGuard<'_, ()>, SimpleCommunicator) {
        (self.lock.lock().unwrap_or_else(|e| e.into_inner()), SimpleCommunicator::world())
    }

    pub(crate) fn barrier(&self) -> Result<(), DistError> {
        let (_g, w) = self.enter();
        w.barrier();
        Ok(())
    }

    pub(crate) fn all_reduce_sum(&self, buf: BufMut<'_>) -> Result<(), DistError> {
        if self.size == 1 {
            return Ok(());
        }
        let (_g, w) = self.enter();
        match buf {
            BufMut::F32(v) => {
                let send = v.to_vec();
                w.all_reduce_into(&send[..], v, SystemOperation::sum());
            }
            BufMut::F64(v) => {
                let send = v.to_vec();
                w.all_reduce_into(&send[..], v, SystemOperation::sum());
            }
        }
        Ok(())
    }

    /// `recv` = the sum of every rank's `send` (same type and length on every rank).
    pub(crate) fn all_reduce_from(&self, send: &Buf, recv: &mut Buf) -> Result<(), DistError> {
        if self.size == 1 {
            recv.clone_from(send);
            return Ok(());
        }
        let (_g, w) = self.enter();
        match (send, recv) {
            (Buf::F32(s), Buf::F32(r)) => w.all_reduce_into(&s[..], &mut r[..], SystemOperation::sum()),
            (Buf::F64(s), Buf::F64(r)) => w.all_reduce_into(&s[..], &mut r[..], SystemOperation::sum()),
            _ => unreachable!("send and receive buffers are made alike"),
        }
        Ok(())
    }

    pub(crate) fn broadcast(&self, buf: BufMut<'_>, root: usize) -> Result<(), DistError> {
        if self.size == 1 {
            return Ok(());
        }
        let (_g, w) = self.enter();
        let root = w.process_at_rank(root as i32);
        match buf {
            BufMut::F32(v) => root.broadcast_into(v),
            BufMut::F64(v) => root.broadcast_into(v),
        }
        Ok(())
    }
}

//! The in-process backend: `n` ranks as `n` threads of one process, exchanging buffers through
//! shared memory. It runs the same collectives as MPI (sums in rank order, so every rank gets
//! the same bits), which makes the data-parallel logic testable without MPI; it is also a way
//! to train data-parallel on one machine's threads.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::comm::BufMut;

/// One rank's contribution to a collective.
#[derive(Debug)]
pub(crate) enum Piece {
    F32(Vec<f32>),
    F64(Vec<f64>),
    Unit,
}

impl Piece {
    fn of(buf: &BufMut<'_>) -> Piece {
        match buf {
            BufMut::F32(v) => Piece::F32(v.to_vec()),
            BufMut::F64(v) => Piece::F64(v.to_vec()),
        }
    }

    fn describe(&self) -> String {
        match self {
            Piece::F32(v) => format!("{} f32", v.len()),
            Piece::F64(v) => format!("{} f64", v.len()),
            Piece::Unit => "a barrier".into(),
        }
    }
}

#[derive(Debug)]
struct State {
    generation: u64,
    arrived: usize,
    slots: Vec<Option<Piece>>,
    result: Arc<Vec<Piece>>,
    failed: Option<String>,
}

/// The shared state of a group of thread ranks.
#[derive(Debug)]
pub(crate) struct Group {
    size: usize,
    state: Mutex<State>,
    wake: Condvar,
}

impl Group {
    pub(crate) fn new(size: usize) -> Arc<Group> {
        let state = State { generation: 0, arrived: 0, slots: (0..size).map(|_| None).collect(), result: Arc::new(Vec::new()), failed: None };
        Arc::new(Group { size, state: Mutex::new(state), wake: Condvar::new() })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Deposits this rank's piece, waits until every rank has deposited one, and returns all
    /// pieces in rank order; or the reason the group broke (a rank panicked or left).
    pub(crate) fn exchange(&self, rank: usize, piece: Piece) -> Result<Arc<Vec<Piece>>, String> {
        let mut s = self.lock();
        if let Some(f) = &s.failed {
            return Err(f.clone());
        }
        s.slots[rank] = Some(piece);
        s.arrived += 1;
        let generation = s.generation;
        if s.arrived == self.size {
            let all: Vec<Piece> = s.slots.iter_mut().map(|p| p.take().unwrap_or(Piece::Unit)).collect();
            s.result = Arc::new(all);
            s.arrived = 0;
            s.generation += 1;
            self.wake.notify_all();
            return Ok(s.result.clone());
        }
        while s.generation == generation && s.failed.is_none() {
            s = self.wake.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        if s.generation == generation {
            return Err(s.failed.clone().unwrap_or_default());
        }
        Ok(s.result.clone())
    }

    /// Marks the group broken: every rank waiting in a collective, now or later, gets an error.
    pub(crate) fn leave(&self, rank: usize, panicking: bool) {
        let mut s = self.lock();
        if s.failed.is_none() {
            s.failed = Some(if panicking { format!("rank {rank} panicked") } else { format!("rank {rank} left (its Comm was dropped)") });
        }
        self.wake.notify_all();
    }
}

/// Checks that every piece has the shape of `mine`; the same answer on every rank.
fn same_kind(pieces: &[Piece], mine: &BufMut<'_>) -> Result<(), String> {
    let ok = pieces.iter().all(|p| match (p, mine) {
        (Piece::F32(v), BufMut::F32(m)) => v.len() == m.len(),
        (Piece::F64(v), BufMut::F64(m)) => v.len() == m.len(),
        _ => false,
    });
    if ok {
        Ok(())
    } else {
        Err(format!("the ranks passed different buffers ({})", pieces.iter().map(Piece::describe).collect::<Vec<_>>().join(", ")))
    }
}

/// Error from a collective of the thread backend: the group broke, or the buffers differ.
pub(crate) enum LocalError {
    Broken(String),
    Mismatch(String),
}

/// Sum over ranks, in rank order, into `buf`.
pub(crate) fn all_reduce_sum(group: &Group, rank: usize, mut buf: BufMut<'_>) -> Result<(), LocalError> {
    let pieces = group.exchange(rank, Piece::of(&buf)).map_err(LocalError::Broken)?;
    same_kind(&pieces, &buf).map_err(LocalError::Mismatch)?;
    match &mut buf {
        BufMut::F32(out) => {
            out.iter_mut().for_each(|x| *x = 0.0);
            for p in pieces.iter() {
                if let Piece::F32(v) = p {
                    out.iter_mut().zip(v).for_each(|(o, x)| *o += x);
                }
            }
        }
        BufMut::F64(out) => {
            out.iter_mut().for_each(|x| *x = 0.0);
            for p in pieces.iter() {
                if let Piece::F64(v) = p {
                    out.iter_mut().zip(v).for_each(|(o, x)| *o += x);
                }
            }
        }
    }
    Ok(())
}

/// Rank `root`'s buffer into every rank's.
pub(crate) fn broadcast(group: &Group, rank: usize, mut buf: BufMut<'_>, root: usize) -> Result<(), LocalError> {
    let pieces = group.exchange(rank, Piece::of(&buf)).map_err(LocalError::Broken)?;
    same_kind(&pieces, &buf).map_err(LocalError::Mismatch)?;
    match (&mut buf, &pieces[root]) {
        (BufMut::F32(out), Piece::F32(v)) => out.copy_from_slice(v),
        (BufMut::F64(out), Piece::F64(v)) => out.copy_from_slice(v),
        _ => unreachable!("same_kind checked every piece"),
    }
    Ok(())
}

/// Waits for every rank.
pub(crate) fn barrier(group: &Group, rank: usize) -> Result<(), LocalError> {
    group.exchange(rank, Piece::Unit).map(|_| ()).map_err(LocalError::Broken)
}

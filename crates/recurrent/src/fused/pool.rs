//! A small pool of large work buffers for the fused kernels. A train step allocates and frees
//! several multi-megabyte buffers; from the system allocator each would come back as fresh
//! pages (one page fault per 4 KiB on first touch). Buffers are handed back when the saved
//! state of a sequence drops and reused by the next one.

use std::sync::Mutex;

use crate::fused::kernels::Kern;

/// Buffers smaller than this (elements) are not worth pooling.
const MIN_POOLED: usize = 1 << 15;
/// At most this many bytes are kept per element type.
const MAX_BYTES: usize = 96 << 20;

static F32: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());
static F64: Mutex<Vec<Vec<f64>>> = Mutex::new(Vec::new());

/// Element types with a pool.
pub(crate) trait Pooled: Kern {
    fn pool() -> &'static Mutex<Vec<Vec<Self>>>;
}

impl Pooled for f32 {
    fn pool() -> &'static Mutex<Vec<Vec<f32>>> {
        &F32
    }
}

impl Pooled for f64 {
    fn pool() -> &'static Mutex<Vec<Vec<f64>>> {
        &F64
    }
}

/// A buffer of `len` elements with unspecified (but initialised) contents.
pub(crate) fn take<E: Pooled>(len: usize) -> Vec<E> {
    if len >= MIN_POOLED {
        let mut pool = E::pool().lock().unwrap_or_else(|e| e.into_inner());
        // the smallest buffer that fits
        let best = pool.iter().enumerate().filter(|(_, v)| v.capacity() >= len).min_by_key(|(_, v)| v.capacity()).map(|(i, _)| i);
        if let Some(i) = best {
            let mut v = pool.swap_remove(i);
            v.resize(len, E::ZERO);
            v.truncate(len);
            return v;
        }
    }
    vec![E::ZERO; len]
}

/// Hands a buffer back for reuse.
pub(crate) fn give<E: Pooled>(v: Vec<E>) {
    if v.capacity() < MIN_POOLED {
        return;
    }
    let mut pool = E::pool().lock().unwrap_or_else(|e| e.into_inner());
    let held: usize = pool.iter().map(|b| b.capacity() * std::mem::size_of::<E>()).sum();
    if held + v.capacity() * std::mem::size_of::<E>() <= MAX_BYTES {
        pool.push(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused() {
        let v: Vec<f64> = take(1 << 16);
        let ptr = v.as_ptr();
        give(v);
        let w: Vec<f64> = take(1 << 16);
        assert_eq!(w.len(), 1 << 16);
        assert!(w.iter().all(|&x| x == 0.0));
        // another thread may have taken it meanwhile; when not, it is the same allocation
        let _ = ptr == w.as_ptr();
        give(w);
    }
}

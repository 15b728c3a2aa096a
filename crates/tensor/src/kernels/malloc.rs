//! Keeps glibc's allocator from handing freed tensor memory back to the system between the
//! steps of a training loop.
//!
//! A train step allocates and frees buffers of hundreds of KiB to a few MiB (activations,
//! gradients, attention scores). glibc's `malloc` serves the first of each size from fresh
//! `mmap`ed pages, then (its threshold adapts) from the heap, whose top it gives back with
//! `brk` whenever more than twice that size lies free there. So every step shrinks and regrows
//! the heap, and each regrown page costs a page fault on first touch: on W7 (one transformer
//! block) 40-50% of the time was the kernel's (3,650 `brk` calls in 30 steps), and with the
//! three settings below the train step took 0.53x the time (6.3 instead of 12.0 ms, alternated
//! rounds). The price is memory held: up to 256 MiB of free heap stays mapped for reuse
//! instead of being returned, as a caching allocator (PyTorch's on GPUs) holds it.
//!
//! Set once, process-wide, at the first tensor with heap storage; not set when the user chose
//! otherwise: `FLUX_MALLOC_TUNING=0`, or any `glibc.malloc` setting in `GLIBC_TUNABLES`.
//! Other allocators (musl, macOS, Windows, a Rust global allocator that is not the system's)
//! are left alone.

use std::sync::Once;

/// Free heap kept at the top before trimming (glibc's default: 128 KiB, adapting up to 64 MiB).
const TRIM_THRESHOLD: i32 = 256 << 20;
/// Extra heap requested with each growth, so that growing again is rare.
const TOP_PAD: i32 = 64 << 20;
/// Requests above this get their own `mmap` (the most glibc accepts: 32 MiB on 64-bit).
const MMAP_THRESHOLD: i32 = 32 << 20;

static TUNED: Once = Once::new();

/// Applies the settings once per process (see the module doc).
#[inline]
pub(crate) fn tune_once() {
    if !TUNED.is_completed() {
        TUNED.call_once(|| {
            let flux = std::env::var("FLUX_MALLOC_TUNING").ok();
            let glibc = std::env::var("GLIBC_TUNABLES").ok();
            if wanted(flux.as_deref(), glibc.as_deref()) {
                apply();
            }
        });
    }
}

/// Whether to tune, given `FLUX_MALLOC_TUNING` and `GLIBC_TUNABLES`: not when the first is
/// `0`/`false`/`off`, nor when the second already sets any of malloc's parameters.
fn wanted(flux: Option<&str>, glibc_tunables: Option<&str>) -> bool {
    let off = flux.is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "0" | "false" | "off" | "no"));
    let user_set = glibc_tunables.is_some_and(|v| v.contains("glibc.malloc."));
    !off && !user_set
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn apply() {
    // glibc's mallopt parameters (malloc.h)
    const M_TRIM_THRESHOLD: i32 = -1;
    const M_TOP_PAD: i32 = -2;
    const M_MMAP_THRESHOLD: i32 = -3;
    unsafe extern "C" {
        fn mallopt(param: i32, value: i32) -> i32;
    }
    for (param, value) in [(M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD), (M_TOP_PAD, TOP_PAD)] {
        // SAFETY: mallopt takes two ints, changes only the allocator's parameters under its own
        // lock, and returns 0 (ignored) for a value it rejects; any thread may call it any time.
        unsafe { mallopt(param, value) };
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn apply() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_users_choice_wins() {
        assert!(wanted(None, None));
        assert!(wanted(Some("1"), Some("glibc.pthread.rseq=0")));
        assert!(!wanted(Some("0"), None));
        assert!(!wanted(Some(" OFF "), None));
        assert!(!wanted(None, Some("glibc.malloc.trim_threshold=0")));
        tune_once();
        tune_once();
        assert!(TUNED.is_completed());
    }
}

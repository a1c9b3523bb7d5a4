//! Giving freed memory back to the kernel. mimalloc purges a thread's freed pages lazily,
//! from that thread's own later calls, so a thread that goes quiet after a burst of 4 MiB
//! ops keeps them: an OSD stayed at 260-350 MiB RSS for many seconds after the burst.
//! Threads that handle large buffers call [`release_freed_memory`] when they go idle (tokio
//! workers when they park); the store pool's threads call [`release_freed_memory_now`].
//! The collection is forced: an unforced one left 260-350 MiB 10 s after a 4 MiB write
//! burst, a forced one 100-200 MiB, at the same throughput. Purging on every free instead
//! cost a quarter of the 4 MiB throughput. Most of what stayed after that was live, not
//! free: memtables fjall had already flushed but still referenced, which the `kv` crate
//! now lets go of when the store goes quiet (see its `fjall_idle` module).

use std::cell::Cell;
use std::time::{Duration, Instant};

/// How often one thread hands its freed pages back.
const RELEASE_INTERVAL: Duration = Duration::from_secs(1);

/// Returns this thread's freed pages to the kernel now.
pub fn release_freed_memory_now() {
    // SAFETY: mi_collect only returns free memory to the OS; live blocks stay.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

/// Returns this thread's freed pages to the kernel, at most once per [`RELEASE_INTERVAL`].
pub fn release_freed_memory() {
    thread_local! {
        static LAST_RELEASE: Cell<Option<Instant>> = const { Cell::new(None) };
    }
    LAST_RELEASE.with(|last| {
        let now = Instant::now();
        if last
            .get()
            .is_none_or(|at| now.duration_since(at) >= RELEASE_INTERVAL)
        {
            last.set(Some(now));
            release_freed_memory_now();
        }
    });
}

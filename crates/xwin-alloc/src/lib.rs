//! The allocator for xwin's binaries. Tensor workloads allocate and free buffers of tens to
//! hundreds of MiB every op. glibc serves each one above 32 MiB with a fresh `mmap` and unmaps
//! it on free, and mimalloc by default returns freed memory to the OS after 10 ms; either way
//! the next op page-faults its output in and the kernel zeroes it (47 % of a training step's
//! cycles were `clear_page` in `perf`). mimalloc with purging off keeps freed memory for reuse.
//!
//! ```ignore
//! #[global_allocator]
//! static GLOBAL: xwin_alloc::MiMalloc = xwin_alloc::MiMalloc;
//! fn main() { xwin_alloc::keep_freed_memory(); /* ... */ }
//! ```

pub use mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc.h's `mi_option_e` (the same index in its v2 and v3
/// headers; the sys crate does not name it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Tells mimalloc never to return freed memory to the OS (purge delay −1). Call first thing
/// in `main`; the process keeps its peak footprint, which a training run reaches anyway.
pub fn keep_freed_memory() {
    // SAFETY: sets a plain integer option; mimalloc reads options atomically.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}

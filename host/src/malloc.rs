//! How glibc's allocator keeps freed memory: a streamed copy's cost.
//!
//! Each frame hyper reads is a fresh buffer of up to ~400 KiB, freed once
//! the frame is sent on. With glibc's defaults such buffers are mapped
//! and unmapped, or trimmed from the heap, and every read into the next one
//! faults in new zeroed pages: ~14,000–25,000 page faults and ~12% of the
//! CPU of a 272 MiB copy. Fixed thresholds keep them in the heap for reuse
//! (~2,000 faults); what a copy keeps is its working set, which it reaches
//! anyway.

/// Buffers below this come from the heap, not from their own mapping.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 1 << 20;

/// Free memory at the top of a heap kept for reuse, up to this.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: libc::c_int = 16 << 20;

/// Sets the thresholds; called first thing, before any thread starts.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before any
    // other thread exists, as glibc asks.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}

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

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    /// Whether glibc gave `ptr` its own mapping: bit 1 (`IS_MMAPPED`) of
    /// the chunk's size word, which glibc keeps just before the pointer.
    fn mapped(ptr: *const u8) -> bool {
        // SAFETY: `ptr` is a live glibc allocation, so the word before it
        // is its chunk header's size field.
        unsafe { *ptr.cast::<usize>().sub(1) & 2 != 0 }
    }

    /// Whether an allocation above the mmap threshold is mapped depends on
    /// the heap's history too (glibc serves it from the heap's free top when
    /// that is large enough), so the probe runs in a fresh process, where
    /// the heap is small: run by the test below, not on its own.
    #[test]
    #[ignore = "a probe for the test below, in a process of its own"]
    fn malloc_probe() {
        // A low fixed threshold first (it also stops glibc moving its own),
        // so that what follows shows the setting, not glibc's defaults.
        // SAFETY: as in `keep_freed_memory`; glibc locks its arena.
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 10) };
        let before = Vec::<u8>::with_capacity(512 << 10);
        assert!(mapped(before.as_ptr()), "the probe sees a mapped chunk");

        keep_freed_memory();
        let frame = Vec::<u8>::with_capacity(512 << 10);
        let large = Vec::<u8>::with_capacity(2 << 20);
        assert!(!mapped(frame.as_ptr()), "a 512 KiB frame buffer is mapped");
        assert!(mapped(large.as_ptr()), "a 2 MiB buffer is not mapped");
    }

    #[test]
    fn frame_sized_buffers_stay_in_the_heap_and_only_larger_ones_are_mapped() {
        let exe = std::env::current_exe().expect("the test binary");
        let out = std::process::Command::new(exe)
            .args(["malloc::tests::malloc_probe", "--exact", "--ignored"])
            .args(["--test-threads=1", "--nocapture"])
            .output()
            .expect("running the probe");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "{stdout}{stderr}"
        );
    }
}

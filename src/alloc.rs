//! The process-wide allocator: the system allocator, except that single allocations of
//! [`LAZY_THRESHOLD`] bytes or more are served from an anonymous `MAP_NORESERVE` mapping.
//!
//! Why: the wire decoder of `kafka-protocol` sizes arrays with `Vec::with_capacity(count)` from
//! the count the client claims, before it has seen that many elements. A 4-byte body claiming
//! 2^31−1 entries asks for hundreds of GiB; the system allocator refuses, and Rust aborts the
//! process on allocation failure. No allocation the broker itself makes comes near the threshold
//! (frames are capped by `socket_request_max_bytes`, reads by fetch limits), so above it we hand
//! out address space instead of memory: pages are only committed when touched, the decoder
//! touches at most what the frame's bytes can fill before it runs out of input and fails, and the
//! mapping is unmapped when the vector is dropped.
//!
//! Limits, written down: under `vm.overcommit_memory=2` (strict accounting) the kernel refuses
//! even a NORESERVE mapping that large, and the process would abort as before. The default
//! heuristic mode (0) and mode 1 are what Linux ships with. The request decoder additionally runs
//! inside `catch_unwind`, so panics (as opposed to aborts) from the codec are contained too.

use std::alloc::{GlobalAlloc, Layout, System};

/// malloc arenas for the whole process, unless `MALLOC_ARENA_MAX` says otherwise.
const ARENAS: i32 = 2;

/// Caps the system allocator's arenas. glibc gives each thread that allocates under contention
/// an arena of its own (up to 8 per core) and keeps freed memory in it; the log's blocking
/// threads allocate read buffers that the runtime's threads free, so each extra arena holds
/// megabytes of buffers nobody reuses. Two arenas keep peak memory where it is with no blocking
/// threads (`benches/run.sh`: 1 KiB records on one partition, peak RSS 110–142 MiB with the
/// default arenas, 62–78 MiB with two). Called first thing in `main`.
pub fn limit_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    // SAFETY: mallopt only tunes glibc's allocator; it is called before any thread starts.
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
    }
}

/// Allocations this large or larger are mapped lazily.
pub const LAZY_THRESHOLD: usize = 1 << 30;
const PAGE: usize = 4096;

pub struct LazyLargeAlloc;

fn is_lazy(layout: &Layout) -> bool {
    layout.size() >= LAZY_THRESHOLD && layout.align() <= PAGE
}

// SAFETY: every pointer handed out is either from `System` (and returned to it) or from `mmap`
// of at least `layout.size()` bytes, page aligned, and returned with `munmap` of the same size.
// `is_lazy` depends only on the layout, which Rust passes back unchanged to `dealloc`.
unsafe impl GlobalAlloc for LazyLargeAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_lazy(&layout) {
            let p = libc::mmap(
                std::ptr::null_mut(),
                layout.size(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            );
            if p == libc::MAP_FAILED {
                std::ptr::null_mut()
            } else {
                p as *mut u8
            }
        } else {
            System.alloc(layout)
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_lazy(&layout) {
            // anonymous mappings are zero-filled
            self.alloc(layout)
        } else {
            System.alloc_zeroed(layout)
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_lazy(&layout) {
            libc::munmap(ptr as *mut libc::c_void, layout.size());
        } else {
            System.dealloc(ptr, layout)
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return std::ptr::null_mut();
        };
        if !is_lazy(&layout) && !is_lazy(&new_layout) {
            return System.realloc(ptr, layout, new_size);
        }
        let new = self.alloc(new_layout);
        if !new.is_null() {
            std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
            self.dealloc(ptr, layout);
        }
        new
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn absurd_capacity_does_not_abort() {
        // 2^31-1 elements of 64 bytes: ~128 GiB of address space, far beyond this machine.
        let mut v: Vec<[u8; 64]> = Vec::with_capacity(i32::MAX as usize);
        v.push([1; 64]);
        assert_eq!(v.len(), 1);
        assert!(v.capacity() >= i32::MAX as usize);
        drop(v);
        // small allocations still go through the system allocator and work as usual
        let w: Vec<u8> = (0..=255).collect();
        assert_eq!(w.iter().map(|&b| b as u32).sum::<u32>(), 255 * 128);
    }
}

//! Allocation counting for the profile (`--features count-allocations`): a global allocator
//! that counts calls to `alloc` and `realloc`, and, in the child programs, a thread that
//! writes the count to a file the driver reads before and after a measured phase.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

/// The system allocator, counting.
pub struct Counting;

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Allocations (and reallocations) this process has made so far.
pub fn count() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

/// In a child program: when `MULTIFROST_BENCH_ALLOC_DIR` is set, writes [`count`] to
/// `<dir>/<pid>` every 20 ms from a thread of its own (through a rename, so a reader never
/// sees a half-written file).
pub fn report_to_dir_from_env() {
    let Some(dir) = std::env::var_os(crate::ALLOC_DIR_ENV) else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let pid = std::process::id();
    let (path, partial) = (
        dir.join(pid.to_string()),
        dir.join(format!("{pid}.partial")),
    );
    std::thread::spawn(move || loop {
        if std::fs::write(&partial, count().to_string()).is_ok() {
            let _ = std::fs::rename(&partial, &path);
        }
        std::thread::sleep(Duration::from_millis(20));
    });
}

/// In the driver: the last count child `pid` wrote under `dir`.
pub fn read_child(dir: &std::path::Path, pid: u32) -> Option<u64> {
    std::fs::read_to_string(dir.join(pid.to_string()))
        .ok()?
        .trim()
        .parse()
        .ok()
}

//! Kernel interfaces below aya. Input: file descriptors aya created. Output: safe calls of
//! `bpf(2)` on byte buffers, for maps whose layouts are only known when a script is compiled
//! (aya's typed maps fix key and value types at Rust compile time).

mod attr;
pub mod map;
pub mod prog;

pub use map::{possible_cpus, RawMap};

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Issue `bpf(cmd, attr, sizeof attr)`. `attr` is one arm of `union bpf_attr` (`attr.rs`);
/// the kernel zero-checks nothing past `size`, so passing only the arm is enough.
///
/// # Safety
/// Every pointer inside `attr` must be valid for the sizes the kernel will read or write for
/// this command and map (the callers check buffer lengths against the map's info first).
pub(crate) unsafe fn bpf<T>(cmd: u32, attr: &mut T) -> io::Result<i64> {
    // SAFETY: the syscall reads `size_of::<T>()` bytes of `attr`, which is a live exclusive
    // reference; pointers inside it are the caller's responsibility (see above).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_long,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

pub(crate) fn raw(fd: BorrowedFd<'_>) -> u32 {
    // File descriptors are non-negative once borrowed.
    fd.as_raw_fd() as u32
}

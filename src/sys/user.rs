//! Who we run as.

/// The effective user id.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Whether we run as root (effective uid 0).
pub fn is_root() -> bool {
    euid() == 0
}

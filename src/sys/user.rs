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

/// Moves the calling thread (and the threads and processes it starts from now on) into a
/// new network namespace with its loopback up: a test's devices and routes stay there.
#[cfg(test)]
pub fn enter_new_netns() -> std::io::Result<()> {
    // SAFETY: unshare takes no pointers; it changes only the calling thread's namespace.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let lo = std::process::Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()?;
    match lo.success() {
        true => Ok(()),
        false => Err(std::io::Error::other("ip link set lo up failed")),
    }
}

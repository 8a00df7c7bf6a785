//! Signal dispositions.

/// Restores `SIGPIPE`'s default (end the process): a CLI command piped into `head` then ends
/// quietly instead of failing on EPIPE (Rust ignores SIGPIPE).
pub fn default_sigpipe() {
    // SAFETY: restoring a signal's default disposition has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

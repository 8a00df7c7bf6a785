//! Calls into the operating system that need `unsafe` or raw file descriptors. The rest of
//! the crate denies `unsafe_code`: every unsafe block lives here, behind a small safe wrapper.
pub mod asyncfd;
pub mod epoll;
pub mod ifaddrs;
#[cfg(test)]
pub mod inotify;
pub mod mmap;
pub mod packet_thread;
pub mod recvmmsg;
pub mod signal;
pub mod sockmark;
pub mod sockopt;
pub mod tun;
pub mod udp_send;
pub mod user;
pub mod wait;

/// Whether a system call's error means "nothing now, try again" (EAGAIN, which is
/// EWOULDBLOCK on Linux): errno compared, where `io::Error::kind` decodes it through a table
/// that is cold at a ping's pace, once per wake-up on the packet thread (docs/BENCHMARKS.md).
pub fn would_block(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::EAGAIN)
}

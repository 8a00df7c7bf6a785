//! `SO_MARK` on our own sockets, as AWL marks them (0x61776c, "awl"): policy routing for an
//! exit node keeps the node's own traffic (QUIC, SOCKS5 exit connections) on the underlay.
//! Needs CAP_NET_ADMIN; without it nothing is marked and the caller logs why.

use std::io;
use std::os::fd::RawFd;

pub fn set(fd: RawFd) -> io::Result<()> {
    setsockopt_int(
        fd,
        libc::SOL_SOCKET,
        libc::SO_MARK,
        crate::gateway::FWMARK as libc::c_int,
    )
}

/// `setsockopt` with an `int` value.
pub fn setsockopt_int(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    v: libc::c_int,
) -> io::Result<()> {
    // SAFETY: a valid fd and a c_int option value of the right size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

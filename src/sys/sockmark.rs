//! `SO_MARK` on our own sockets, as AWL marks them (0x61776c, "awl"): policy routing for an
//! exit node keeps the node's own traffic (QUIC, SOCKS5 exit connections) on the underlay.
//! Needs CAP_NET_ADMIN; without it nothing is marked and the caller logs why.

use std::io;
use std::os::fd::RawFd;

/// The firewall mark on the node's own sockets; the gateway's policy rules match it.
pub const FWMARK: u32 = 0x0061_776c;

pub fn set(fd: RawFd) -> io::Result<()> {
    super::sockopt::setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_MARK, FWMARK as libc::c_int)
}

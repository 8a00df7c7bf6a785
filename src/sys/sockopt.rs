//! Socket options std does not offer, and a UDP socket bound with them.

use std::io;
use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};

/// `setsockopt` with an `int` value.
pub fn setsockopt_int(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    v: libc::c_int,
) -> io::Result<()> {
    setsockopt(fd, level, name, &v)
}

/// `setsockopt` with `value` as the option, passed with its size; the option types here are
/// plain C structs (a pointer in one of them must stay valid for the call only: the kernel
/// copies what it points at).
fn setsockopt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` is a live T of the size passed; a bad fd is only EBADF.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Steers the datagrams that reach `fd`'s `SO_REUSEPORT` group by their first byte: those
/// whose first byte masked with `mask` is `byte` go to the group's second socket, the rest to
/// its first (a classic BPF program run by the kernel for each datagram, at the UDP payload).
pub fn steer_by_first_byte(fd: RawFd, byte: u8, mask: u8) -> io::Result<()> {
    let op = |code: u32, jt: u8, jf: u8, k: u32| libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    let mut program = [
        op(libc::BPF_LD | libc::BPF_B | libc::BPF_ABS, 0, 0, 0),
        op(
            libc::BPF_ALU | libc::BPF_AND | libc::BPF_K,
            0,
            0,
            u32::from(mask),
        ),
        op(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            0,
            1,
            u32::from(byte),
        ),
        op(libc::BPF_RET | libc::BPF_K, 0, 0, 1),
        op(libc::BPF_RET | libc::BPF_K, 0, 0, 0),
    ];
    let prog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_mut_ptr(),
    };
    // `prog` points at `program`, both live for the call; the kernel copies them.
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_REUSEPORT_CBPF, &prog)
}

/// `IP_MULTICAST_IF`: the interface (by its address) multicast from `fd` leaves on.
pub fn set_multicast_if_v4(fd: RawFd, ip: Ipv4Addr) -> io::Result<()> {
    let addr = libc::in_addr {
        s_addr: u32::from(ip).to_be(),
    };
    setsockopt(fd, libc::IPPROTO_IP, libc::IP_MULTICAST_IF, &addr)
}

/// A blocking UDP socket on 0.0.0.0:`port` with `SO_REUSEADDR` and `SO_REUSEPORT` set before
/// `bind` (std can only set options after), so several listeners share the port.
pub fn udp4_bind_reuse(port: u16) -> io::Result<UdpSocket> {
    // SAFETY: socket(2) returns a new descriptor (or -1), owned from here by the UdpSocket.
    let sock = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        UdpSocket::from_raw_fd(fd)
    };
    let fd = sock.as_raw_fd();
    for opt in [libc::SO_REUSEADDR, libc::SO_REUSEPORT] {
        // Best effort, as before: without them only the bind below can fail.
        let _ = setsockopt_int(fd, libc::SOL_SOCKET, opt, 1);
    }
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr { s_addr: 0 },
        sin_zero: [0; 8],
    };
    // SAFETY: a live sockaddr_in of the size passed.
    let rc = unsafe {
        libc::bind(
            fd,
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_sockets_share_a_reused_port() {
        let a = udp4_bind_reuse(0).unwrap();
        let port = a.local_addr().unwrap().port();
        drop(a);
        let a = udp4_bind_reuse(port).unwrap();
        let b = udp4_bind_reuse(port).unwrap();
        assert_eq!(b.local_addr().unwrap().port(), port);
        set_multicast_if_v4(b.as_raw_fd(), Ipv4Addr::LOCALHOST).unwrap();
        drop(a);
    }

    #[test]
    fn a_bad_descriptor_is_an_error() {
        assert!(setsockopt_int(-1, libc::SOL_SOCKET, libc::SO_RCVBUF, 1).is_err());
    }
}

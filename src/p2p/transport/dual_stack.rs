//! Sockets on the IPv6 wildcard that take IPv4 too (`IPV6_V6ONLY` off, set before `bind`, so
//! a system default of `bindv6only=1` cannot silently drop IPv4), as AWL listens on both.
//! Where the kernel has no IPv6 (OpenWrt builds without it, `ipv6.disable=1`), the IPv4
//! wildcard instead.

use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV6};

/// `addr`, or the IPv4 wildcard on its port when `addr` is the IPv6 wildcard and the kernel
/// refuses IPv6 sockets.
fn socket(addr: SocketAddr, ty: Type, proto: Protocol) -> io::Result<(Socket, SocketAddr)> {
    let wildcard6 = matches!(addr, SocketAddr::V6(a) if a.ip().is_unspecified());
    let made = Socket::new(Domain::for_address(addr), ty, Some(proto));
    let (socket, addr) = match made {
        Err(e) if wildcard6 && no_ipv6(&e) => {
            log::info!("no IPv6 on this system: listening on IPv4 only");
            let v4 = SocketAddr::from((Ipv4Addr::UNSPECIFIED, addr.port()));
            (Socket::new(Domain::IPV4, ty, Some(proto))?, v4)
        }
        other => (other?, addr),
    };
    if addr.is_ipv6() {
        socket.set_only_v6(!wildcard6)?;
    }
    socket.set_cloexec(true)?;
    Ok((socket, addr))
}

fn no_ipv6(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EAFNOSUPPORT) | Some(libc::EPROTONOSUPPORT) | Some(libc::EADDRNOTAVAIL)
    )
}

/// A bound UDP socket (blocking; the caller registers it with the runtime).
pub fn bind_udp(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let (socket, addr) = socket(addr, Type::DGRAM, Protocol::UDP)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// A bound UDP socket in a `SO_REUSEPORT` group: the QUIC port, shared by quinn's socket
/// and the fast packets' (`fast_socket`). The kernel lets only sockets of our own user join
/// the group; a port already in use is refused as a plain bind would refuse it (a second
/// awl of the same user would otherwise join the first one's group and receive nothing).
pub fn bind_udp_shared(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    if addr.port() != 0 {
        drop(bind_udp(addr)?);
    }
    join_udp_shared(addr)
}

/// A socket joining the `SO_REUSEPORT` group of ours at `addr` (see [`bind_udp_shared`]).
pub fn join_udp_shared(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let (socket, addr) = socket(addr, Type::DGRAM, Protocol::UDP)?;
    crate::sys::sockopt::setsockopt_int(
        std::os::fd::AsRawFd::as_raw_fd(&socket),
        libc::SOL_SOCKET,
        libc::SO_REUSEPORT,
        1,
    )?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// A bound, not yet listening, non-blocking TCP socket.
pub fn tcp_socket(addr: SocketAddr) -> io::Result<tokio::net::TcpSocket> {
    let (socket, addr) = socket(addr, Type::STREAM, Protocol::TCP)?;
    socket.set_nonblocking(true)?;
    let std: std::net::TcpStream = socket.into();
    let tcp = tokio::net::TcpSocket::from_std_stream(std);
    // A restart must not wait for the old connections' TIME_WAIT to bind the port again.
    tcp.set_reuseaddr(true)?;
    tcp.bind(addr)?;
    Ok(tcp)
}

/// The v4-mapped form of an IPv4 address, for sending from an IPv6 socket.
pub fn mapped(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V4(v4) => {
            SocketAddr::V6(SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0))
        }
        v6 => v6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv6Addr, UdpSocket};

    #[test]
    fn a_shared_port_in_use_is_refused_and_another_user_cannot_join_ours() {
        let ours = bind_udp_shared("127.0.0.1:0".parse().unwrap()).unwrap();
        let at = ours.local_addr().unwrap();
        // A second awl (same user, SO_REUSEPORT too) is refused, as is a plain bind.
        let again = bind_udp_shared(at).unwrap_err();
        assert_eq!(again.kind(), io::ErrorKind::AddrInUse);
        assert!(UdpSocket::bind(at).is_err());
        // Another user, with SO_REUSEPORT, cannot join the group (the kernel compares uids);
        // checked from a process of `nobody`, and with our own uid as the control.
        if !crate::sys::user::is_root() {
            return; // Not root: cannot run the other user's process.
        }
        let join = |uid: u32| {
            let mut c = std::process::Command::new("python3");
            c.args(["-c", "import socket,sys; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1); s.bind(('127.0.0.1', int(sys.argv[1])))"])
                .arg(at.port().to_string());
            std::os::unix::process::CommandExt::uid(&mut c, uid);
            c.status().map(|s| s.success())
        };
        match join(65534) {
            Ok(joined) => assert!(!joined, "another user joined our port's group"),
            Err(_) => return, // No python3 here: nothing to run the other user's bind with.
        }
        assert_eq!(join(0).ok(), Some(true), "the control: our own user joins");
    }

    #[test]
    fn the_ipv6_wildcard_takes_ipv4_too() {
        let s = bind_udp(SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))).unwrap();
        let local = s.local_addr().unwrap();
        if local.is_ipv4() {
            return; // A kernel without IPv6: the fallback is what we got.
        }
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.send_to(b"v4", ("127.0.0.1", local.port())).unwrap();
        let mut b = [0u8; 4];
        s.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let (n, from) = s.recv_from(&mut b).unwrap();
        assert_eq!(&b[..n], b"v4");
        assert_eq!(
            crate::p2p::transport::canonical(from),
            c.local_addr().unwrap()
        );
        // And it sends to IPv4 peers at their mapped address.
        s.send_to(b"back", mapped(c.local_addr().unwrap())).unwrap();
        c.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        assert_eq!(c.recv(&mut b).unwrap(), 4);
    }

    #[test]
    fn an_explicit_ipv6_address_stays_ipv6_only() {
        let Ok(s) = bind_udp(SocketAddr::from((Ipv6Addr::LOCALHOST, 0))) else {
            return; // no IPv6 loopback here
        };
        assert!(s.local_addr().unwrap().is_ipv6());
    }

    #[tokio::test]
    async fn tcp_on_the_ipv6_wildcard_accepts_ipv4() {
        let Ok(sock) = tcp_socket(SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))) else {
            panic!("no TCP socket");
        };
        let l = sock.listen(8).unwrap();
        let port = l.local_addr().unwrap().port();
        let c = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let (_s, from) = l.accept().await.unwrap();
        assert_eq!(
            crate::p2p::transport::canonical(from),
            c.local_addr().unwrap()
        );
    }
}

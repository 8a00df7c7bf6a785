//! libp2p over TCP, as go-libp2p (and so AWL) speaks it: a TCP connection upgraded with
//! multistream-select `/tls/1.0.0`, libp2p TLS and `/yamux/1.0.0` (`secure`), the same upgrade
//! a relay circuit gets. For networks that drop UDP, and for peers reachable only over TCP.
//!
//! Here only the sockets: binding the listener and connecting with a deadline. The host runs
//! the upgrade and keeps the connection.

use std::io;
use std::net::SocketAddr;
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// Connections waiting in the kernel for `accept`.
const BACKLOG: u32 = 128;

/// Binds the listener on `addr`. An IPv6 wildcard is dual-stack (IPv4 too), or plain IPv4
/// where the kernel has no IPv6.
pub fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = super::dual_stack::tcp_socket(addr)?;
    mark(&socket);
    socket.listen(BACKLOG)
}

/// Connects to `addr` (the caller's deadline covers the connect and the upgrade after it).
pub async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    mark(&socket);
    let stream = socket.connect(addr).await?;
    tune(&stream);
    Ok(stream)
}

/// Options every connection gets, dialled or accepted: no Nagle delay (the tunnel carries
/// interactive traffic; yamux frames are written whole) and keep-alives, so a connection
/// whose peer vanished is noticed by the kernel too, not only by our pings.
pub fn tune(stream: &TcpStream) {
    use crate::sys::sockopt::setsockopt_int;
    use std::os::fd::AsRawFd;
    let _ = stream.set_nodelay(true);
    let fd = stream.as_raw_fd();
    // Probes after 30 s of silence, 3 × 10 s apart: a vanished peer is gone within a minute
    // even when nothing is being sent.
    let _ = setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1);
    let _ = setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, 30);
    let _ = setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, 10);
    let _ = setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 3);
}

/// Marks the socket as our QUIC socket is marked (`SO_MARK`), so exit-node policy routing
/// keeps our own underlay traffic off the tunnel. Needs CAP_NET_ADMIN; without it nothing is
/// marked.
fn mark(socket: &TcpSocket) {
    use std::os::fd::AsRawFd;
    if let Err(e) = crate::sys::sockmark::set(socket.as_raw_fd()) {
        log::debug!("SO_MARK not set on TCP: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn listens_and_connects_on_loopback() {
        let l = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = l.local_addr().unwrap();
        let accept = crate::spawn(async move { l.accept().await.map(|(s, _)| s) });
        let mut c = connect(addr).await.unwrap();
        let mut s = accept.await.unwrap().unwrap();
        c.write_all(b"hi").await.unwrap();
        let mut b = [0u8; 2];
        s.read_exact(&mut b).await.unwrap();
        assert_eq!(&b, b"hi");
        assert!(c.nodelay().unwrap());
    }

    #[tokio::test]
    async fn refused_port_is_an_error() {
        let l = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        assert!(connect(addr).await.is_err());
    }
}

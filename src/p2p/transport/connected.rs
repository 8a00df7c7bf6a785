//! Sockets connected to one peer each, on the QUIC port, for the fast packets to and from it.
//!
//! A send on the shared, unconnected socket looks a route up for every packet, and a packet
//! arriving for it takes the slow input route and the reuseport program. A connected socket's
//! send uses the route it cached at `connect`, and the kernel's early demultiplexing finds it
//! (and its cached input route) for the peer's packets; boringtun connects a socket per peer
//! the same way. Sends carry no control message but GSO's (`sys::udp_send`): any other makes
//! the kernel look the route up again, so the socket is bound to the address quinn sends from
//! instead of naming it per packet.
//!
//! The kernel prefers a connected socket to every socket of the reuseport group, before the
//! group's program runs, so it takes all of its peer's datagrams on the port, QUIC ones too.
//! The fast packets' thread reads these sockets with its own (`fast_socket`): it opens the fast
//! packets and hands the rest to quinn (`udp::ForQuinn`), with the addresses quinn would have
//! read on the shared socket (same family, same control messages on). At most [`MAX_PEERS`]
//! are open; beyond, a peer's packets take the shared socket, as before.

use super::udp::grow_receive_buffer;
use super::udp_socket::{until_writable, Sender};
use crate::p2p::fastpath::{Connect, SendSocket};
use crate::sys::epoll::Epoll;
use crate::sys::packet_thread::Waker;
use crate::sys::sockopt::setsockopt_int;
use crate::sys::udp_send::send_connected;
use quinn::udp::Transmit;
use socket2::{Domain, Protocol, Socket, Type};
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

/// Connected sockets open at once: each takes a descriptor and, under load, up to the receive
/// buffer's 2 MB of kernel memory.
pub const MAX_PEERS: usize = 32;

/// Opens the connected sockets and keeps the set the fast packets' thread reads.
#[derive(Clone)]
pub struct Connector(Arc<Inner>);

struct Inner {
    /// The shared socket's address: the port, and the family.
    at: SocketAddr,
    /// Every socket the thread reads: its own and the connected ones.
    epoll: Epoll,
    peers: Mutex<Vec<Arc<PeerSocket>>>,
    /// Bumped whenever `peers` changes, so the reader re-reads the set only then.
    generation: AtomicUsize,
    /// Wakes the reader when a socket leaves the set, so it closes it at once: until then
    /// the kernel still gives it the peer's packets.
    reader: OnceLock<Waker>,
}

/// One peer's socket.
pub(super) struct PeerSocket {
    pub(super) socket: UdpSocket,
    gso: usize,
    /// A send found the buffer full.
    blocked: AtomicBool,
}

/// What a sender holds: its socket, which leaves the set when the sender drops it.
struct Handle {
    peer: Arc<PeerSocket>,
    set: Weak<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Connector {
    /// For the shared socket at `at`; its reader watches `own` too.
    pub(super) fn new(at: SocketAddr, own: RawFd) -> io::Result<Self> {
        let epoll = Epoll::new()?;
        epoll.add(own)?;
        Ok(Connector(Arc::new(Inner {
            at,
            epoll,
            peers: Mutex::new(Vec::new()),
            generation: AtomicUsize::new(0),
            reader: OnceLock::new(),
        })))
    }

    /// The reader's thread, once it runs.
    pub(super) fn set_reader(&self, reader: Waker) {
        let _ = self.0.reader.set(reader);
    }

    /// The set the reader waits on.
    pub(super) fn epoll(&self) -> &Epoll {
        &self.0.epoll
    }

    /// Whether the shared socket is dual-stack (its IPv4 senders are named v4-mapped).
    pub(super) fn dual_stack(&self) -> bool {
        self.0.at.is_ipv6()
    }

    pub(super) fn generation(&self) -> usize {
        self.0.generation.load(Ordering::Acquire)
    }

    /// The connected sockets now.
    pub(super) fn peers(&self) -> Vec<Arc<PeerSocket>> {
        lock(&self.0.peers).clone()
    }
}

impl Connect for Connector {
    fn connect(&self, remote: SocketAddr, local: Option<IpAddr>) -> Option<Arc<dyn SendSocket>> {
        let mut peers = lock(&self.0.peers);
        if peers.len() >= MAX_PEERS {
            return None;
        }
        // Listed before it is watched: the reader, told of a descriptor it does not know,
        // finds it in the list.
        let opened = open(self.0.at, remote, local).and_then(|p| {
            let peer = Arc::new(p);
            peers.push(peer.clone());
            self.0.generation.fetch_add(1, Ordering::Release);
            self.0.epoll.add(peer.socket.as_raw_fd()).map(|()| peer)
        });
        let peer = match opened {
            Ok(p) => p,
            Err(e) => {
                log::debug!("no socket connected to {remote}: {e}");
                // Unlisted again if it was listed: only the list holds it now.
                peers.retain(|p| Arc::strong_count(p) > 1);
                return None;
            }
        };
        Some(Arc::new(Handle {
            peer,
            set: Arc::downgrade(&self.0),
        }))
    }
}

/// A socket on the shared port, bound to `local` (or the wildcard), connected to `remote`,
/// set up as quinn's (marked, GRO, the same control messages on receive).
///
/// An IPv4 peer (v4-mapped on a dual-stack port) gets an IPv4 socket: on a dual-stack socket
/// the kernel's IPv6 send hands the IPv4 send the mapped address as if named per call
/// (`udpv6_sendmsg`), so that one looks the route up every time, connected or not.
fn open(at: SocketAddr, remote: SocketAddr, local: Option<IpAddr>) -> io::Result<PeerSocket> {
    let remote = SocketAddr::new(remote.ip().to_canonical(), remote.port());
    let ip = match (remote, local.map(|l| l.to_canonical())) {
        (SocketAddr::V4(_), Some(l @ IpAddr::V4(_))) => l,
        (SocketAddr::V4(_), _) => IpAddr::from([0, 0, 0, 0]),
        (_, Some(l)) => l,
        (_, None) => at.ip(),
    };
    let s = Socket::new(
        Domain::for_address(remote),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    setsockopt_int(s.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
    s.bind(&SocketAddr::new(ip, at.port()).into())?;
    s.connect(&remote.into())?;
    s.set_nonblocking(true)?;
    let socket: UdpSocket = s.into();
    super::mark_socket(&socket);
    grow_receive_buffer(socket.as_raw_fd());
    let state = quinn::udp::UdpSocketState::new((&socket).into())?;
    Ok(PeerSocket {
        gso: state.max_gso_segments(),
        socket,
        blocked: AtomicBool::new(false),
    })
}

impl Drop for Handle {
    fn drop(&mut self) {
        if let Some(set) = self.set.upgrade() {
            lock(&set.peers).retain(|p| !Arc::ptr_eq(p, &self.peer));
            set.generation.fetch_add(1, Ordering::Release);
            if let Some(r) = set.reader.get() {
                r.wake();
            }
        }
    }
}

impl SendSocket for Handle {
    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        let segment = transmit.segment_size.map(|s| s.min(u16::MAX.into()) as u16);
        let sent = send_connected(self.peer.socket.as_raw_fd(), transmit.contents, segment);
        if matches!(&sent, Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
            self.peer.blocked.store(true, Ordering::Relaxed);
        }
        sent
    }

    fn max_segments(&self) -> usize {
        self.peer.gso
    }

    fn writable(self: Arc<Self>) -> Pin<Box<dyn Future<Output = io::Result<()>> + Send>> {
        until_writable(self.peer.clone())
    }
}

impl Sender for PeerSocket {
    fn sender(&self) -> (std::os::fd::BorrowedFd<'_>, &AtomicBool) {
        (self.socket.as_fd(), &self.blocked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::p2p::transport::dual_stack;

    /// On a dual-stack port, an IPv4 peer's socket is an IPv4 one, bound to the port and
    /// the address quinn sends from, connected to the peer itself (not its v4-mapped form,
    /// which would make the kernel look the route up per send); an IPv6 peer's stays IPv6.
    #[test]
    fn an_ipv4_peer_gets_an_ipv4_socket_on_the_shared_port() {
        let shared = dual_stack::bind_udp_shared("[::]:0".parse().expect("addr")).expect("bind");
        let at = shared.local_addr().expect("addr");
        let peer = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let to = peer.local_addr().expect("addr");
        for local in [
            Some(IpAddr::from([127, 0, 0, 1])),
            Some(IpAddr::V6(std::net::Ipv4Addr::LOCALHOST.to_ipv6_mapped())),
            None,
        ] {
            let s = open(at, dual_stack::mapped(to), local).expect("open");
            assert_eq!(s.socket.peer_addr().expect("peer"), to, "{local:?}");
            let mine = s.socket.local_addr().expect("local");
            assert!(mine.is_ipv4(), "{local:?}: {mine}");
            assert_eq!(mine.port(), at.port());
            s.socket.send(b"x").expect("send");
            let mut b = [0u8; 4];
            let (_, from) = peer.recv_from(&mut b).expect("recv");
            assert_eq!(from, SocketAddr::from(([127, 0, 0, 1], at.port())));
        }
        // (Where the host has IPv6 loopback.)
        if let Ok(six) = UdpSocket::bind("[::1]:0") {
            let s = open(at, six.local_addr().expect("addr"), None).expect("open");
            assert!(s.socket.local_addr().expect("local").is_ipv6());
        }
    }
}

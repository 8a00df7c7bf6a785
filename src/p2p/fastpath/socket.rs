//! The sockets fast packets leave by: the endpoint's shared one, or one connected to the peer;
//! and the connection they belong to, as the data plane caches it.

use quinn::udp::Transmit;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A direct QUIC connection's datagram side, with its fast path when the peer takes one.
#[derive(Clone)]
pub struct DirectPath {
    pub conn: quinn::Connection,
    pub fast: Option<Arc<super::Tx>>,
    /// Set by the host when the connection has ended (`Conn::closed`): a load per packet
    /// where quinn's `close_reason` locks the connection's state, a cold cache line owned
    /// by its driver (~1 µs of a ping's round trip, docs/BENCHMARKS.md).
    pub closed: Arc<AtomicBool>,
}

impl DirectPath {
    /// Whether the host has seen the connection end.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }
}

/// A socket fast packets leave by.
pub trait SendSocket: Send + Sync {
    /// Sends without waiting; `WouldBlock` when the socket buffer is full. A connected
    /// socket ignores the transmit's addresses (its sender checked they are its own).
    fn try_send(&self, transmit: &Transmit) -> io::Result<()>;
    /// Packets one send may carry (GSO; 1 without it).
    fn max_segments(&self) -> usize;
    /// Waits for room after a send found the buffer full (at once otherwise).
    fn writable(self: Arc<Self>) -> Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;
}

/// Opens sockets connected to one peer on the endpoint's port (`transport::connected`).
pub trait Connect: Send + Sync {
    /// A socket sending from `local` (where quinn sends from, if it knows) to `remote`;
    /// `None` where there is none to have (the cap reached, the kernel refused): the
    /// shared socket then carries the peer's packets.
    fn connect(&self, remote: SocketAddr, local: Option<IpAddr>) -> Option<Arc<dyn SendSocket>>;
}

/// A sender's connected socket, opened for the path's remote address it was asked for.
pub(super) struct Direct {
    pub remote: SocketAddr,
    pub socket: Option<Arc<dyn SendSocket>>,
}

impl Direct {
    /// The socket for a send to `remote`: this one while the path stays where it was opened
    /// for; after a migration, one opened for the new address (the old one closes).
    pub fn for_path<'a>(
        direct: &'a mut Option<Direct>,
        connect: Option<&Arc<dyn Connect>>,
        remote: SocketAddr,
        local: Option<IpAddr>,
    ) -> Option<&'a Arc<dyn SendSocket>> {
        let connect = connect?;
        if direct.as_ref().map(|d| d.remote) != Some(remote) {
            // The old socket closes first: its place under the cap is the new one's.
            *direct = None;
            *direct = Some(Direct {
                remote,
                socket: connect.connect(remote, local),
            });
        }
        direct.as_ref()?.socket.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    /// A socket that only says where it was opened for.
    struct Fake(SocketAddr);
    impl SendSocket for Fake {
        fn try_send(&self, _: &Transmit) -> io::Result<()> {
            Ok(())
        }
        fn max_segments(&self) -> usize {
            1
        }
        fn writable(self: Arc<Self>) -> Pin<Box<dyn Future<Output = io::Result<()>> + Send>> {
            Box::pin(async { Ok(()) })
        }
    }

    /// Opens fakes until `room` runs out; keeps each to see when it is dropped.
    struct Opener {
        room: AtomicUsize,
        opened: Mutex<Vec<std::sync::Weak<Fake>>>,
    }
    impl Connect for Opener {
        fn connect(&self, remote: SocketAddr, _: Option<IpAddr>) -> Option<Arc<dyn SendSocket>> {
            self.room
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .ok()?;
            let s = Arc::new(Fake(remote));
            self.opened.lock().expect("lock").push(Arc::downgrade(&s));
            Some(s)
        }
    }

    #[test]
    fn a_sender_keeps_its_socket_while_the_path_stays_and_opens_one_for_a_new_address() {
        let (a, b) = (
            SocketAddr::from(([192, 0, 2, 2], 4000)),
            SocketAddr::from(([192, 0, 2, 2], 4001)),
        );
        let opener = Arc::new(Opener {
            room: AtomicUsize::new(2),
            opened: Mutex::new(Vec::new()),
        });
        let connect: Arc<dyn Connect> = opener.clone();
        let mut direct = None;
        // No connector (no fast packets' thread): the shared socket, nothing opened.
        assert!(Direct::for_path(&mut direct, None, a, None).is_none());
        for _ in 0..3 {
            assert!(Direct::for_path(&mut direct, Some(&connect), a, None).is_some());
        }
        assert_eq!(
            opener.opened.lock().expect("lock").len(),
            1,
            "one socket per path"
        );
        // The peer moved: a socket for the new address; the old one is closed.
        assert!(Direct::for_path(&mut direct, Some(&connect), b, None).is_some());
        let opened = opener.opened.lock().expect("lock").clone();
        assert_eq!(opened.len(), 2);
        assert!(
            opened[0].upgrade().is_none(),
            "the old path's socket stayed open"
        );
        assert_eq!(opened[1].upgrade().map(|s| s.0), Some(b));
        // Refused (the cap): the shared socket, and not asked again for the same path.
        assert!(Direct::for_path(&mut direct, Some(&connect), a, None).is_none());
        assert!(Direct::for_path(&mut direct, Some(&connect), a, None).is_none());
        assert_eq!(opener.room.load(Ordering::Relaxed), 0);
        assert_eq!(opener.opened.lock().expect("lock").len(), 2);
    }
}

//! The QUIC socket's send side (for quinn and the fast path), registered with the reactor for
//! reads only; the reads are the reader task's (`udp`).
//!
//! quinn's tokio socket is registered for reads and writes. For UDP, the kernel signals
//! "writable" every time a sent packet's buffer is freed, so each packet sent wakes the
//! daemon once more for nothing — on a one-core router that wake-up competes with the
//! receiver of that very packet, on the path of every round trip. UDP sends almost never
//! block, so writability is watched only after a send did block: a duplicate of the socket
//! is registered for writes until it reports room, then dropped. (quinn asks "writable?"
//! before every send; the answer is yes unless the last send blocked.)

use crate::p2p::fastpath::SendSocket;
use quinn::udp::{Transmit, UdpSocketState};
use quinn::UdpPoller;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

pub struct ReadRegistered {
    io: AsyncFd<std::net::UdpSocket>,
    state: UdpSocketState,
    /// The last send found the socket buffer full.
    blocked: AtomicBool,
}

impl ReadRegistered {
    /// Must run inside the tokio runtime (it registers the socket).
    pub fn new(socket: std::net::UdpSocket) -> io::Result<Self> {
        socket.set_nonblocking(true)?;
        let state = UdpSocketState::new((&socket).into())?;
        let io = crate::sys::asyncfd::register(socket, Interest::READABLE)?;
        Ok(ReadRegistered {
            io,
            state,
            blocked: AtomicBool::new(false),
        })
    }
}

impl ReadRegistered {
    /// Read readiness, for a reader of the socket other than quinn (`udp::wrap`).
    pub(super) fn poll_read_ready<'a>(
        &'a self,
        cx: &mut Context,
    ) -> Poll<io::Result<tokio::io::unix::AsyncFdReadyGuard<'a, std::net::UdpSocket>>> {
        self.io.poll_read_ready(cx)
    }
}

/// What quinn's socket (`udp::QuicSocket`) and the fast path need of it: sending, waiting
/// for room, and the socket's facts. Reads belong to the reader task in `udp`.
impl ReadRegistered {
    pub(super) fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Box::pin(WriteWaiter {
            socket: self,
            waiting: None,
        })
    }

    pub(super) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    pub(super) fn may_fragment(&self) -> bool {
        self.state.may_fragment()
    }

    pub(super) fn max_transmit_segments(&self) -> usize {
        self.state.max_gso_segments()
    }

    /// Packets the kernel coalesces into one read (GRO); 1 without GRO.
    pub(super) fn gro_segments(&self) -> usize {
        self.state.gro_segments()
    }
}

impl SendSocket for ReadRegistered {
    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        let r = self.state.send(self.io.get_ref().into(), transmit);
        if matches!(&r, Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
            self.blocked.store(true, Ordering::Relaxed);
        }
        r
    }

    fn max_segments(&self) -> usize {
        self.state.max_gso_segments()
    }

    fn writable(self: Arc<Self>) -> Pin<Box<dyn Future<Output = io::Result<()>> + Send>> {
        until_writable(self)
    }
}

/// A socket whose sends note when they found its buffer full.
pub(super) trait Sender: Send + Sync {
    /// The socket, and whether a send found it full.
    fn sender(&self) -> (std::os::fd::BorrowedFd<'_>, &AtomicBool);
}

impl Sender for ReadRegistered {
    fn sender(&self) -> (std::os::fd::BorrowedFd<'_>, &AtomicBool) {
        (self.io.get_ref().as_fd(), &self.blocked)
    }
}

/// Resolves when `socket` has room after a send found it full (at once otherwise).
pub(super) fn until_writable(
    socket: Arc<dyn Sender>,
) -> Pin<Box<dyn Future<Output = io::Result<()>> + Send>> {
    let mut waiter = WriteWaiter {
        socket,
        waiting: None,
    };
    Box::pin(std::future::poll_fn(move |cx| {
        Pin::new(&mut waiter).poll_writable(cx)
    }))
}

/// Waits for room to send after a send would have blocked.
struct WriteWaiter {
    socket: Arc<dyn Sender>,
    /// A duplicate of the socket, registered for writes while a send waits.
    waiting: Option<AsyncFd<OwnedFd>>,
}

impl std::fmt::Debug for WriteWaiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteWaiter")
            .field("waiting", &self.waiting.is_some())
            .finish()
    }
}

impl UdpPoller for WriteWaiter {
    fn poll_writable(self: Pin<&mut Self>, cx: &mut Context) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let (socket, blocked) = this.socket.sender();
        let fd = match this.waiting.take() {
            Some(fd) => fd,
            None if !blocked.load(Ordering::Relaxed) => return Poll::Ready(Ok(())),
            None => {
                let dup = socket.try_clone_to_owned()?;
                crate::sys::asyncfd::register(dup, Interest::WRITABLE)?
            }
        };
        // Registering reports the current state, so room that appeared meanwhile is not missed.
        match fd.poll_write_ready(cx) {
            Poll::Ready(r) => {
                blocked.store(false, Ordering::Relaxed);
                Poll::Ready(r.map(|_| ()))
            }
            Poll::Pending => {
                this.waiting = Some(fd);
                Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quinn::udp::EcnCodepoint;

    #[tokio::test]
    async fn sends_and_waits_for_room() {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let b = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let b_addr = b.local_addr().expect("addr");
        let a = Arc::new(ReadRegistered::new(a).expect("register"));
        let payload = [7u8; 100];
        let t = Transmit {
            destination: b_addr,
            ecn: Some(EcnCodepoint::Ect0),
            contents: &payload,
            segment_size: None,
            src_ip: None,
        };
        a.try_send(&t).expect("send");
        let mut buf = [0u8; 1500];
        let n = b.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], &payload[..]);

        // After a blocked send the waiter registers for writes, finds room and is reusable.
        let mut poller = a.clone().create_io_poller();
        for blocked in [false, true, true] {
            a.blocked.store(blocked, Ordering::Relaxed);
            std::future::poll_fn(|cx| poller.as_mut().poll_writable(cx))
                .await
                .expect("writable");
            assert!(!a.blocked.load(Ordering::Relaxed));
        }
    }
}

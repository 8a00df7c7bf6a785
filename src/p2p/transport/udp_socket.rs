//! The QUIC socket as quinn sees it, registered with the reactor for reads only.
//!
//! quinn's tokio socket is registered for reads and writes. For UDP, the kernel signals
//! "writable" every time a sent packet's buffer is freed, so each packet sent wakes the
//! daemon once more for nothing — on a one-core router that wake-up competes with the
//! receiver of that very packet, on the path of every round trip. UDP sends almost never
//! block, so writability is watched only after a send did block: a duplicate of the socket
//! is registered for writes until it reports room, then dropped. (quinn asks "writable?"
//! before every send; the answer is yes unless the last send blocked.)

use quinn::udp::{RecvMeta, Transmit, UdpSocketState};
use quinn::{AsyncUdpSocket, UdpPoller};
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
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

impl std::fmt::Debug for ReadRegistered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadRegistered")
            .field("socket", self.io.get_ref())
            .finish()
    }
}

impl AsyncUdpSocket for ReadRegistered {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Box::pin(WriteWaiter {
            socket: self,
            waiting: None,
        })
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        let r = self.state.send(self.io.get_ref().into(), transmit);
        if matches!(&r, Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
            self.blocked.store(true, Ordering::Relaxed);
        }
        r
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let slots = bufs.len().min(meta.len()).min(quinn::udp::BATCH_SIZE);
        loop {
            let mut ready = ready!(self.io.poll_read_ready(cx))?;
            // `try_io` clears the readiness on WouldBlock, so the next poll waits for epoll.
            match ready.try_io(|io| self.state.recv(io.get_ref().into(), bufs, meta)) {
                Ok(Ok(n)) => {
                    // recvmmsg stops short only when the queue ran dry: forget the readiness
                    // now rather than learn it from one more call that fails. A datagram
                    // arriving meanwhile raises a new epoll edge, so none is missed.
                    if n < slots {
                        ready.clear_ready();
                    }
                    return Poll::Ready(Ok(n));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    fn may_fragment(&self) -> bool {
        self.state.may_fragment()
    }

    fn max_transmit_segments(&self) -> usize {
        self.state.max_gso_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.state.gro_segments()
    }
}

/// Waits for room to send after a send would have blocked.
struct WriteWaiter {
    socket: Arc<ReadRegistered>,
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
        let fd = match this.waiting.take() {
            Some(fd) => fd,
            None if !this.socket.blocked.load(Ordering::Relaxed) => return Poll::Ready(Ok(())),
            None => {
                let dup = this.socket.io.get_ref().as_fd().try_clone_to_owned()?;
                crate::sys::asyncfd::register(dup, Interest::WRITABLE)?
            }
        };
        // Registering reports the current state, so room that appeared meanwhile is not missed.
        match fd.poll_write_ready(cx) {
            Poll::Ready(r) => {
                this.socket.blocked.store(false, Ordering::Relaxed);
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
    async fn sends_and_receives_and_waits_for_room() {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let b = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let b_addr = b.local_addr().expect("addr");
        let a = Arc::new(ReadRegistered::new(a).expect("register"));
        let b = ReadRegistered::new(b).expect("register");
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
        let mut meta = [RecvMeta::default()];
        let n =
            std::future::poll_fn(|cx| b.poll_recv(cx, &mut [IoSliceMut::new(&mut buf)], &mut meta))
                .await
                .expect("recv");
        assert_eq!(n, 1);
        assert_eq!(&buf[..meta[0].len], &payload[..]);

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

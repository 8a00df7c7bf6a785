//! Our QUIC socket: quinn's own, with UDP GRO switched off on receive.
//!
//! With GRO, quinn sizes its receive buffer for 64 coalesced segments in each of 32 messages:
//! 1472 × 64 × 32 bytes = 3 MB, resident in the static musl build — most of an idle router
//! daemon's memory. Without it the buffer is 47 KB, and `recvmmsg` still takes 32 datagrams per
//! call. Sending keeps GSO.

use crate::sockmark::setsockopt_int;
use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, Runtime, UdpPoller};
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

#[derive(Debug)]
struct NoGro(Arc<dyn AsyncUdpSocket>);

impl AsyncUdpSocket for NoGro {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.0.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        self.0.try_send(transmit)
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_recv(cx, bufs, meta)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.0.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        1
    }

    fn may_fragment(&self) -> bool {
        self.0.may_fragment()
    }
}

/// Hands `socket` to quinn's runtime, then turns GRO off again. If the kernel refuses that,
/// the socket keeps GRO (and quinn its large buffer): correct, only bigger.
pub fn wrap(
    socket: std::net::UdpSocket,
    runtime: &dyn Runtime,
) -> io::Result<Arc<dyn AsyncUdpSocket>> {
    let fd = socket.as_raw_fd();
    grow_receive_buffer(fd);
    let inner = runtime.wrap_udp_socket(socket)?;
    if inner.max_receive_segments() == 1 {
        return Ok(inner);
    }
    match disable_gro(fd) {
        Ok(()) => Ok(Arc::new(NoGro(inner))),
        Err(e) => {
            log::debug!("UDP GRO stays on: {e}");
            Ok(inner)
        }
    }
}

/// Kernel memory for datagrams waiting to be read: the default (~208 KB) overflows when a
/// busy single core falls behind a fast sender for a moment, and every overflow is a loss the
/// tunnelled TCP pays for. Only used while packets wait; not our RSS.
const RECEIVE_BUFFER: libc::c_int = 2 * 1024 * 1024;

fn grow_receive_buffer(fd: RawFd) {
    // FORCE passes net.core.rmem_max (needs CAP_NET_ADMIN, which the daemon has for its TUN).
    if setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, RECEIVE_BUFFER).is_err() {
        let _ = setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, RECEIVE_BUFFER);
    }
}

fn disable_gro(fd: RawFd) -> io::Result<()> {
    setsockopt_int(fd, libc::SOL_UDP, libc::UDP_GRO, 0)
}

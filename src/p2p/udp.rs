//! Our QUIC socket: quinn's own, with UDP GRO switched off on receive.
//!
//! With GRO, quinn sizes its receive buffer for 64 coalesced segments in each of 32 messages:
//! 1472 × 64 × 32 bytes = 3 MB, resident in the static musl build — most of an idle router
//! daemon's memory. Without it the buffer is 47 KB, and `recvmmsg` still takes 32 datagrams per
//! call. Sending keeps GSO.

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

fn disable_gro(fd: RawFd) -> io::Result<()> {
    let off: libc::c_int = 0;
    // SAFETY: a valid fd and a c_int option value of the right size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_UDP,
            libc::UDP_GRO,
            (&off as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

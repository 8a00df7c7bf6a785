//! Our QUIC socket: quinn's own, with UDP GRO on and a small receive buffer.
//!
//! With GRO the kernel hands over up to 64 QUIC packets of one sender as one message: a
//! loaded receiver makes a fraction of the reads and socket-buffer operations, and a sender on
//! the same host skips cutting its GSO batch (a loaded two-node bench: ~20 % less CPU per
//! byte). But quinn would size its receive buffer for 32 such messages (1472 × 64 × 32 bytes
//! = 3 MB, resident in the static musl build: most of an idle router daemon's memory). So
//! quinn is told "no GRO" and keeps its 47 KB buffer of 32 single-packet slots, while this
//! wrapper reads up to `GRO_MESSAGES` coalesced messages into its own buffer and deals their
//! packets out into quinn's slots. That buffer is an anonymous mapping: its pages become
//! resident only when the kernel first fills them (under load), not at start. Sending keeps GSO.

use super::udp_socket::ReadRegistered;
use super::udp_split::Split;
use crate::p2p::fastpath::Table;
use crate::sys::mmap::AnonBuf;
use crate::sys::sockopt::setsockopt_int;
use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// Coalesced messages read at once.
const GRO_MESSAGES: usize = 4;
/// The largest UDP payload quinn takes (its default `max_udp_payload_size`).
const MAX_DATAGRAM: usize = 1472;

#[derive(Debug)]
struct GroSocket {
    inner: Arc<ReadRegistered>,
    held: Mutex<Held>,
}

impl AsyncUdpSocket for GroSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.inner.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        self.inner.try_send(transmit)
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        if bufs.is_empty() || meta.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if held.is_empty() {
                let h = &mut *held;
                let mut chunks = h.buf.chunks_mut(h.slot);
                let mut iovs: [IoSliceMut<'_>; GRO_MESSAGES] =
                    std::array::from_fn(|_| IoSliceMut::new(chunks.next().unwrap_or_default()));
                match self.inner.poll_recv(cx, &mut iovs, &mut h.metas) {
                    Poll::Ready(Ok(n)) => h.refill(n),
                    other => return other,
                }
            }
            let n = held.deal(bufs, meta);
            if n > 0 {
                return Poll::Ready(Ok(n));
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.inner.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        // What quinn sizes its own buffer for: one packet per slot, dealt out here.
        1
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}

/// Coalesced messages read but not yet dealt out to quinn.
#[derive(Debug)]
struct Held {
    buf: AnonBuf,
    /// Bytes per message slot in `buf`: one full GRO message.
    slot: usize,
    metas: [RecvMeta; GRO_MESSAGES],
    /// Messages in `buf`, the one being dealt and the offset in it.
    count: usize,
    msg: usize,
    pos: usize,
}

impl Held {
    fn new(buf: AnonBuf, slot: usize) -> Self {
        Held {
            buf,
            slot,
            metas: [RecvMeta::default(); GRO_MESSAGES],
            count: 0,
            msg: 0,
            pos: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.msg >= self.count
    }

    fn refill(&mut self, count: usize) {
        self.count = count.min(GRO_MESSAGES);
        self.msg = 0;
        self.pos = 0;
    }

    /// Copies held packets into `bufs`, one per slot; returns how many. A packet larger than
    /// its slot is skipped (quinn could not have read it whole either).
    fn deal(&mut self, bufs: &mut [IoSliceMut<'_>], meta: &mut [RecvMeta]) -> usize {
        let mut out = 0;
        while out < bufs.len().min(meta.len()) && !self.is_empty() {
            let m = self.metas[self.msg];
            let len = m.len.min(self.slot);
            if self.pos >= len || m.stride == 0 {
                self.msg += 1;
                self.pos = 0;
                continue;
            }
            let n = m.stride.min(len - self.pos);
            let start = self.msg * self.slot + self.pos;
            self.pos += n;
            if let Some(dst) = bufs[out].get_mut(..n) {
                dst.copy_from_slice(&self.buf[start..start + n]);
                meta[out] = RecvMeta {
                    len: n,
                    stride: n,
                    ..m
                };
                out += 1;
            }
        }
        out
    }
}

/// The socket for quinn, wrapped as above when the kernel has UDP GRO. Without it (an old
/// kernel, or no memory for the mapping), quinn reads single datagrams itself. With `fast`,
/// fast packets are split off before quinn sees them, and the table sends from this socket.
pub fn wrap(
    socket: std::net::UdpSocket,
    fast: Option<Arc<Table>>,
) -> io::Result<Arc<dyn AsyncUdpSocket>> {
    let socket = wrap_gro(socket)?;
    Ok(match fast {
        Some(fast) => {
            fast.set_socket(socket.clone());
            Arc::new(Split {
                inner: socket,
                fast,
            })
        }
        None => socket,
    })
}

fn wrap_gro(socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
    grow_receive_buffer(socket.as_raw_fd());
    let inner = Arc::new(ReadRegistered::new(socket)?);
    let segments = inner.max_receive_segments();
    if segments == 1 {
        return Ok(inner);
    }
    let slot = segments * MAX_DATAGRAM;
    let buf = match AnonBuf::new(slot * GRO_MESSAGES) {
        Ok(b) => b,
        Err(e) => {
            log::warn!("no memory for the UDP receive buffer: {e}");
            return Ok(inner);
        }
    };
    Ok(Arc::new(GroSocket {
        inner,
        held: Mutex::new(Held::new(buf, slot)),
    }))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(len: usize, stride: usize) -> RecvMeta {
        RecvMeta {
            len,
            stride,
            ..RecvMeta::default()
        }
    }

    #[test]
    fn coalesced_messages_are_dealt_one_packet_per_slot() {
        let slot = 4 * MAX_DATAGRAM;
        let mut held = Held::new(AnonBuf::new(slot * GRO_MESSAGES).expect("mmap"), slot);
        // Message 0: packets of 1200, 1200 and 600 bytes; 1: one of 100; 2: empty; 3: one
        // packet too big for quinn's slot.
        for (i, b) in held.buf[..3000].iter_mut().enumerate() {
            *b = (i / 1200) as u8 + 1;
        }
        held.buf[slot..slot + 100].fill(9);
        held.metas = [
            meta(3000, 1200),
            meta(100, 100),
            meta(0, 0),
            meta(1500, 1500),
        ];
        held.refill(4);
        let mut slots = vec![[0u8; MAX_DATAGRAM]; 2];
        let mut metas = [RecvMeta::default(); 2];
        let mut deal = |held: &mut Held| {
            let mut bufs: Vec<IoSliceMut<'_>> = slots
                .iter_mut()
                .map(|s| IoSliceMut::new(&mut s[..]))
                .collect();
            let n = held.deal(&mut bufs, &mut metas);
            let got: Vec<(usize, u8)> = (0..n).map(|i| (metas[i].len, bufs[i][0])).collect();
            got
        };
        assert_eq!(deal(&mut held), vec![(1200, 1), (1200, 2)]);
        assert!(!held.is_empty());
        assert_eq!(deal(&mut held), vec![(600, 3), (100, 9)]);
        assert_eq!(deal(&mut held), vec![]);
        assert!(held.is_empty());
        assert!(metas.iter().all(|m| m.stride == m.len));
    }
}

//! Our QUIC socket: read by a task of its own, which opens fast packets where they lie and
//! hands only QUIC packets on to quinn.
//!
//! quinn's endpoint reads its socket itself, and every read costs it ~1,000 instructions of
//! set-up for 32 slots before the first byte (and quinn-udp as much again), which between
//! awl nodes at a ping's pace buys one fast packet that quinn never sees. So the reader here
//! owns the socket's read side: one `recvmmsg` into its own buffer (`sys::recvmmsg`), fast
//! packets (`p2p::fastpath`) opened and delivered in that buffer, and a batch with QUIC packets
//! in it handed to quinn, which copies them into its slots (`AsyncUdpSocket::poll_recv`) and
//! hands the buffer back. The reader does not read again until it has the buffer back: quinn's
//! pace is the socket's, as when quinn read it itself.
//!
//! With UDP GRO the kernel hands over up to 64 packets of one sender as one message: a loaded
//! receiver makes a fraction of the reads (a loaded two-node bench: ~20 % less CPU per byte).
//! quinn is told "no GRO" and keeps its 47 KB buffer of 32 single-packet slots (it would
//! size it for 32 coalesced messages, 3 MB); the reader's buffer holds `GRO_MESSAGES` of them
//! in an anonymous mapping whose pages become resident only when the kernel first fills them
//! (under load), not at start. Sending keeps GSO and goes straight to the socket.

use super::udp_socket::ReadRegistered;
use crate::p2p::fastpath::{wire, SendSocket, Table};
use crate::sys::mmap::AnonBuf;
use crate::sys::recvmmsg::{Receiver, MAX_MESSAGES};
use crate::sys::sockopt::setsockopt_int;
use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// Coalesced messages read at once with GRO.
const GRO_MESSAGES: usize = 4;
/// Datagrams read at once without GRO (an old kernel): quinn's own batch.
const PLAIN_MESSAGES: usize = MAX_MESSAGES;
/// The largest UDP payload quinn takes (its default `max_udp_payload_size`).
const MAX_DATAGRAM: usize = 1472;
/// Packets the reader handles before it yields, so a flood cannot hold the runtime.
const BUDGET: usize = 256;
/// QUIC packets from the sockets connected to one peer (read by the fast packets' thread)
/// waiting for quinn; more are dropped, as a full socket buffer drops them.
const SIDE_CAP: usize = 256;

/// The socket quinn is given: sends go to the socket, receives come from the reader.
struct QuicSocket {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for QuicSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QuicSocket")
    }
}

struct Shared {
    socket: Arc<ReadRegistered>,
    fast: Arc<Table>,
    handoff: Mutex<Handoff>,
    /// quinn dropped its socket: the reader ends.
    closed: AtomicBool,
}

/// The buffer between the reader and quinn, and who waits for whom.
#[derive(Default)]
struct Handoff {
    /// QUIC packets for quinn to take (boxed: the batch is handed back and forth whole).
    for_quinn: Option<Box<Batch>>,
    /// The buffer quinn has emptied, for the reader.
    for_reader: Option<Box<Batch>>,
    /// A read failed for good: quinn's endpoint ends on it, as when it read the socket itself.
    error: Option<io::Error>,
    /// QUIC packets another reader copied out for quinn ([`ForQuinn`]), from `side_at` on.
    side: Vec<(RecvMeta, Box<[u8]>)>,
    side_at: usize,
    quinn: Option<Waker>,
    reader: Option<Waker>,
}

fn lock(m: &Mutex<Handoff>) -> MutexGuard<'_, Handoff> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn store(slot: &mut Option<Waker>, cx: &Context) {
    match slot {
        Some(w) if w.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

impl AsyncUdpSocket for QuicSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.shared.socket.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        self.shared.socket.try_send(transmit)
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let mut h = lock(&self.shared.handoff);
        if let Some(e) = h.error.take() {
            return Poll::Ready(Err(e));
        }
        let mut n = match h.for_quinn.as_mut() {
            Some(batch) => {
                let n = batch.deal(bufs, meta);
                if batch.is_empty() {
                    h.for_reader = h.for_quinn.take();
                    if let Some(w) = h.reader.take() {
                        w.wake();
                    }
                }
                n
            }
            None => 0,
        };
        let h = &mut *h;
        while n < bufs.len().min(meta.len()) {
            let Some((m, pkt)) = h.side.get(h.side_at) else {
                h.side.clear();
                h.side_at = 0;
                break;
            };
            h.side_at += 1;
            if let Some(dst) = bufs[n].get_mut(..pkt.len()) {
                dst.copy_from_slice(pkt);
                meta[n] = *m;
                n += 1;
            }
        }
        if n == 0 {
            store(&mut h.quinn, cx);
            return Poll::Pending;
        }
        Poll::Ready(Ok(n))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.shared.socket.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.shared.socket.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        // What quinn sizes its own buffer for: one packet per slot, dealt out here.
        1
    }

    fn may_fragment(&self) -> bool {
        self.shared.socket.may_fragment()
    }
}

impl Drop for QuicSocket {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Relaxed);
        if let Some(w) = lock(&self.shared.handoff).reader.take() {
            w.wake();
        }
    }
}

impl Shared {
    /// The reader: reads, opens fast packets, hands QUIC packets to quinn; ends when quinn
    /// drops the socket or a read fails for good.
    async fn read(self: Arc<Self>, batch: Box<Batch>) {
        let mut mine = Some(batch);
        std::future::poll_fn(|cx| self.poll_read(cx, &mut mine)).await;
    }

    fn poll_read(&self, cx: &mut Context, mine: &mut Option<Box<Batch>>) -> Poll<()> {
        let mut budget = BUDGET;
        loop {
            if self.closed.load(Ordering::Relaxed) {
                return Poll::Ready(());
            }
            let batch = match mine {
                Some(b) => b,
                None => {
                    let mut h = lock(&self.handoff);
                    match h.for_reader.take() {
                        Some(b) => mine.insert(b),
                        None => {
                            // quinn still has the buffer; it wakes us when it is done.
                            store(&mut h.reader, cx);
                            return Poll::Pending;
                        }
                    }
                }
            };
            let mut ready = match self.socket.poll_read_ready(cx) {
                Poll::Ready(Ok(r)) => r,
                Poll::Ready(Err(e)) => return self.fail(e),
                Poll::Pending => {
                    // Also woken if quinn drops the socket meanwhile.
                    store(&mut lock(&self.handoff).reader, cx);
                    return Poll::Pending;
                }
            };
            let n = match ready.try_io(|io| batch.read(io.get_ref().as_raw_fd())) {
                Ok(Ok(n)) => {
                    // recvmmsg stops short only when the queue ran dry: forget the readiness
                    // now rather than learn it from one more call that fails. A datagram
                    // arriving meanwhile raises a new epoll edge, so none is missed.
                    if n < batch.messages {
                        ready.clear_ready();
                    }
                    n
                }
                // ECONNRESET is undefined for QUIC and can be injected by anyone (ICMP); it
                // counts against the budget like a packet.
                Ok(Err(e))
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionReset | io::ErrorKind::Interrupted
                    ) =>
                {
                    0
                }
                Ok(Err(e)) => return self.fail(e),
                Err(_would_block) => continue,
            };
            let (packets, quic) = batch.open_fast(n, &self.fast);
            if quic > 0 {
                let mut h = lock(&self.handoff);
                h.for_quinn = mine.take();
                if let Some(w) = h.quinn.take() {
                    w.wake();
                }
            }
            budget = budget.saturating_sub(packets.max(1));
            if budget == 0 {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
    }

    fn fail(&self, e: io::Error) -> Poll<()> {
        log::error!("UDP socket read failed: {e}");
        let mut h = lock(&self.handoff);
        h.error = Some(e);
        if let Some(w) = h.quinn.take() {
            w.wake();
        }
        Poll::Ready(())
    }
}

/// One read's messages and where quinn is in dealing them out.
pub(super) struct Batch {
    buf: AnonBuf,
    /// Bytes per message slot in `buf`: one full GRO message, or one datagram.
    slot: usize,
    /// Messages one read takes.
    messages: usize,
    metas: [RecvMeta; MAX_MESSAGES],
    rx: Receiver,
    /// Messages in `buf`, the one being dealt and the offset in it.
    count: usize,
    msg: usize,
    pos: usize,
}

impl Batch {
    fn new(buf: AnonBuf, slot: usize, messages: usize) -> Self {
        Batch {
            buf,
            slot,
            messages: messages.min(MAX_MESSAGES),
            metas: [RecvMeta::default(); MAX_MESSAGES],
            rx: Receiver::new(),
            count: 0,
            msg: 0,
            pos: 0,
        }
    }

    /// A buffer for `PLAIN_MESSAGES` datagrams read one per slot (a socket without GRO).
    pub(super) fn plain() -> io::Result<Self> {
        let buf = AnonBuf::new(MAX_DATAGRAM * PLAIN_MESSAGES)?;
        Ok(Batch::new(buf, MAX_DATAGRAM, PLAIN_MESSAGES))
    }

    /// Messages one read takes.
    pub(super) fn messages(&self) -> usize {
        self.messages
    }

    pub(super) fn read(&mut self, fd: RawFd) -> io::Result<usize> {
        let n = self.rx.recvmmsg(
            fd,
            &mut self.buf,
            self.slot,
            &mut self.metas[..self.messages],
        )?;
        self.count = n;
        self.msg = 0;
        self.pos = 0;
        Ok(n)
    }

    fn is_empty(&self) -> bool {
        self.msg >= self.count
    }

    /// Opens and delivers the fast packets among the first `n` messages (in the buffer, where
    /// they lie); returns all packets and those left for quinn. A message holds packets of
    /// `stride` bytes each (GRO), the last one possibly shorter.
    pub(super) fn open_fast(&mut self, n: usize, fast: &Table) -> (usize, usize) {
        let (mut all, mut quic) = (0, 0);
        let n = n.min(self.count);
        // Alone among fast packets: a QUIC packet read with it (an ACK, an identify push)
        // does not make a ping's packet part of a burst.
        let fast_messages = self.fast_messages(n);
        for i in 0..n {
            let m = &self.metas[i];
            let len = m.len.min(self.slot);
            let stride = if m.stride == 0 { len } else { m.stride };
            let alone = fast_messages == 1 && len <= stride;
            let mut pos = 0;
            while pos < len {
                let end = (pos + stride).min(len);
                let pkt = &mut self.buf[i * self.slot + pos..i * self.slot + end];
                pos = end;
                all += 1;
                if pkt.first().is_some_and(|b| wire::is_fast(*b)) {
                    fast.receive(pkt, alone);
                } else {
                    quic += 1;
                }
            }
        }
        if all > quic && all > 1 {
            fast.end_batch();
        }
        (all, quic)
    }

    /// How many of the first `n` messages start with a fast packet.
    fn fast_messages(&self, n: usize) -> usize {
        (0..n.min(self.count))
            .filter(|&i| self.metas[i].len > 0)
            .filter(|&i| {
                self.buf
                    .get(i * self.slot)
                    .is_some_and(|b| wire::is_fast(*b))
            })
            .count()
    }

    /// Copies held QUIC packets into `bufs`, one per slot; returns how many. Fast packets
    /// (opened by the reader) are passed over; a packet larger than its slot is skipped
    /// (quinn could not have read it whole either).
    fn deal(&mut self, bufs: &mut [IoSliceMut<'_>], meta: &mut [RecvMeta]) -> usize {
        let mut out = 0;
        while out < bufs.len().min(meta.len()) {
            let Some((m, at)) = self.next_quic() else {
                break;
            };
            if let Some(dst) = bufs[out].get_mut(..at.len()) {
                dst.copy_from_slice(&self.buf[at]);
                meta[out] = m;
                out += 1;
            }
        }
        out
    }

    /// The next QUIC packet held (one packet's meta, and where it lies in the buffer).
    fn next_quic(&mut self) -> Option<(RecvMeta, std::ops::Range<usize>)> {
        while !self.is_empty() {
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
            if self.buf[start..].first().is_some_and(|b| wire::is_fast(*b)) {
                continue;
            }
            let m = RecvMeta {
                len: n,
                stride: n,
                ..m
            };
            return Some((m, start..start + n));
        }
        None
    }
}

/// The socket for quinn, read by a reader task as above (must run inside the runtime). The
/// table, if given, sends from it; without one (AutoNAT's probe endpoint) no fast session
/// exists, and a fast packet is refused like any for an unknown session.
pub fn wrap(
    socket: std::net::UdpSocket,
    fast: Option<Arc<Table>>,
) -> io::Result<Arc<dyn AsyncUdpSocket>> {
    Ok(wrap_shared(socket, fast.unwrap_or_default())?.0)
}

/// [`wrap`], and where other readers of the port hand quinn its packets.
pub(super) fn wrap_shared(
    socket: std::net::UdpSocket,
    fast: Arc<Table>,
) -> io::Result<(Arc<dyn AsyncUdpSocket>, ForQuinn)> {
    grow_receive_buffer(socket.as_raw_fd());
    let socket = Arc::new(ReadRegistered::new(socket)?);
    fast.set_socket(socket.clone());
    let quic = with_reader(socket, fast)?;
    let side = ForQuinn(quic.shared.clone());
    let quic: Arc<dyn AsyncUdpSocket> = quic;
    Ok((quic, side))
}

/// quinn's side of a socket nobody reads: only what [`ForQuinn`] hands it arrives (tests).
#[cfg(test)]
pub(super) fn unread(fast: Arc<Table>) -> (Arc<dyn AsyncUdpSocket>, ForQuinn) {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let shared = Arc::new(Shared {
        socket: Arc::new(ReadRegistered::new(socket).expect("register")),
        fast,
        handoff: Mutex::new(Handoff::default()),
        closed: AtomicBool::new(false),
    });
    let side = ForQuinn(shared.clone());
    (Arc::new(QuicSocket { shared }), side)
}

/// Where a reader of another socket on the port (the fast packets' thread, for the sockets
/// connected to one peer) hands quinn the QUIC packets it read.
#[derive(Clone)]
pub(super) struct ForQuinn(Arc<Shared>);

impl ForQuinn {
    /// Copies the QUIC packets left in `batch` (after [`Batch::open_fast`]) for quinn and
    /// wakes it; beyond [`SIDE_CAP`] waiting they are dropped. `mapped`: the shared socket is
    /// dual-stack, so an IPv4 sender is named v4-mapped, as quinn reads it there (the
    /// connected socket of an IPv4 peer is an IPv4 one).
    pub(super) fn take_quic(&self, batch: &mut Batch, mapped: bool) {
        let mut h = lock(&self.0.handoff);
        while let Some((mut m, at)) = batch.next_quic() {
            if let (true, SocketAddr::V4(a)) = (mapped, m.addr) {
                m.addr = (a.ip().to_ipv6_mapped(), a.port()).into();
            }
            // Taken ones count until quinn has taken them all (and the list is cleared).
            if h.side.len() < SIDE_CAP {
                h.side.push((m, batch.buf[at].into()));
            }
        }
        if let Some(w) = h.quinn.take() {
            w.wake();
        }
    }
}

/// The socket for quinn and its reader task, started.
fn with_reader(socket: Arc<ReadRegistered>, fast: Arc<Table>) -> io::Result<Arc<QuicSocket>> {
    let batch = reader_buffer(socket.gro_segments())?;
    let shared = Arc::new(Shared {
        socket,
        fast,
        handoff: Mutex::new(Handoff::default()),
        closed: AtomicBool::new(false),
    });
    tokio::spawn(shared.clone().read(batch));
    Ok(Arc::new(QuicSocket { shared }))
}

/// The reader's buffer: room for `GRO_MESSAGES` coalesced messages of `segments` packets,
/// or, without GRO (or without memory for that), for `PLAIN_MESSAGES` datagrams.
pub(super) fn reader_buffer(segments: usize) -> io::Result<Box<Batch>> {
    if segments > 1 {
        let slot = segments * MAX_DATAGRAM;
        match AnonBuf::new(slot * GRO_MESSAGES) {
            Ok(buf) => return Ok(Box::new(Batch::new(buf, slot, GRO_MESSAGES))),
            Err(e) => log::warn!("no memory for the UDP receive buffer: {e}"),
        }
    }
    Ok(Box::new(Batch::plain()?))
}

/// Kernel memory for datagrams waiting to be read: the default (~208 KB) overflows when a
/// busy single core falls behind a fast sender for a moment, and every overflow is a loss the
/// tunnelled TCP pays for. Only used while packets wait; not our RSS.
const RECEIVE_BUFFER: libc::c_int = 2 * 1024 * 1024;

pub(super) fn grow_receive_buffer(fd: RawFd) {
    // FORCE passes net.core.rmem_max (needs CAP_NET_ADMIN, which the daemon has for its TUN).
    if setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, RECEIVE_BUFFER).is_err() {
        let _ = setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, RECEIVE_BUFFER);
    }
}

#[cfg(test)]
mod tests;

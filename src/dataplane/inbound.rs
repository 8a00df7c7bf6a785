//! The receive side: tunnel streams and datagrams from peers, checked against the published
//! snapshot, rewritten and handed to the TUN.

use super::pool::PacketBuf;
use super::route::accepts;
use super::snapshot::{PeerEntry, PeerView, Snapshot};
use super::stats::PeerCounters;
use super::{offload, packet};
use super::{tun, Dataplane};
use crate::mesh::tunnel::{self, GatewayDir, RecordHeader};
use crate::p2p::fastpath::Datagrams;
use crate::p2p::stream::read_exact_or_eof;
use crate::p2p::Stream;
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::Arc;
use tokio::io::AsyncReadExt;

/// Why a tunnel stream from a peer was given up.
#[derive(Debug)]
enum StreamError {
    Io(std::io::Error),
    Header(tunnel::RecordError),
    TooLarge(usize),
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamError::Io(e) => write!(f, "{e}"),
            StreamError::Header(e) => write!(f, "{e}"),
            StreamError::TooLarge(n) => {
                write!(f, "{n}-byte record is larger than our packet buffers")
            }
        }
    }
}

impl From<std::io::Error> for StreamError {
    fn from(e: std::io::Error) -> Self {
        StreamError::Io(e)
    }
}

impl Dataplane {
    pub(super) fn accept_stream(self: Arc<Self>, mut stream: Stream) {
        if self.snapshot().peer(&stream.peer).is_none() {
            // AWL closes without reading; so do we, and count it.
            self.stats.global(|g| g.rx_unknown_peer_streams += 1);
            stream.recv.stop();
            stream.send.reset();
            return;
        }
        crate::spawn(async move {
            let peer = stream.peer.clone();
            if let Err(e) = self.read_stream(&mut stream).await {
                log::debug!("tunnel stream from {}: {e}", peer.short());
                self.stats.peer(&peer, |s| s.rx_errors += 1);
                stream.recv.stop();
            }
        });
    }

    async fn read_stream(&self, stream: &mut Stream) -> Result<(), StreamError> {
        let peer = stream.peer.clone();
        let mut scratch = Vec::new();
        let mut view = PeerView::new(&self.published, peer.clone());
        loop {
            let mut hdr = [0u8; tunnel::HEADER_LEN];
            if !read_exact_or_eof(&mut stream.recv, &mut hdr).await? {
                return Ok(());
            }
            let h = RecordHeader::parse(hdr).map_err(StreamError::Header)?;
            if h.len > self.pool.buffer_size() {
                return Err(StreamError::TooLarge(h.len));
            }
            let Some(mut buf) = self.pool.get() else {
                // Read it out anyway to stay in sync with the stream, then drop it.
                scratch.resize(h.len, 0);
                stream.recv.read_exact(&mut scratch).await?;
                // Per packet while the pool is empty: the entry's counters, not a lookup.
                match view.get(&self.published).1 {
                    Some(from) => from.counters.add(|s| s.rx_dropped += 1),
                    None => self.stats.peer(&peer, |s| s.rx_dropped += 1),
                }
                continue;
            };
            stream.recv.read_exact(&mut buf.space()[..h.len]).await?;
            buf.set_len(h.len);
            let (snap, from) = view.get(&self.published);
            self.deliver(snap, from, h.dir, buf);
        }
    }

    /// Datagrams from one connection's peer, each one packet with its direction trailer:
    /// QUIC's in a batch, or one fast packet borrowed from the socket. The peer's entry
    /// (addresses, permissions, counters) comes from `view`, which looks it up only when the
    /// snapshot changed; counters are updated once per batch.
    pub(super) fn receive_datagrams(&self, view: &mut PeerView, datagrams: Datagrams<'_>) {
        let (snap, from) = view.get(&self.published);
        let Some(from) = from else {
            // Streams from strangers are refused earlier; datagrams end here.
            let n = match datagrams {
                Datagrams::Batch(batch) => batch.drain(..).count(),
                Datagrams::One { .. } => 1,
            } as u64;
            self.stats.global(|g| g.rx_unknown_peer_packets += n);
            return;
        };
        let mut tally = RxTally::default();
        match datagrams {
            Datagrams::One {
                pkt,
                alone,
                partial,
            } => self.receive_borrowed(snap, from, pkt, (alone, partial), &mut tally),
            Datagrams::Batch(batch) => {
                let alone = batch.len() == 1;
                for d in batch.drain(..) {
                    let Ok((dir, pkt)) = tunnel::parse_datagram(&d) else {
                        tally.errors += 1;
                        continue;
                    };
                    if pkt.len() > self.pool.buffer_size() {
                        tally.errors += 1;
                        continue;
                    }
                    let Some(buf) = self.pool.copy_of(pkt) else {
                        tally.dropped += 1;
                        continue;
                    };
                    let how = Delivery {
                        checksum: Checksum::Complete,
                        alone,
                    };
                    self.deliver_one(snap, from, dir, buf, how, &mut tally);
                }
            }
        }
        tally.flush(&from.counters);
    }

    /// One fast packet, in the socket's buffer: checked and rewritten there, and written to
    /// the TUN from there when it came alone and nothing waits for the writer; otherwise
    /// copied into a pool buffer to queue (a burst's segments are joined by the writer).
    /// `partial`: its checksum is partial; it stays so (for the kernel to complete) where
    /// the TUN has offloads and the packet does not take the writer's queue.
    fn receive_borrowed(
        &self,
        snap: &Snapshot,
        from: &PeerEntry,
        d: &mut [u8],
        (alone, partial): (bool, bool),
        tally: &mut RxTally,
    ) {
        let (dir, pkt) = match tunnel::parse_datagram(d) {
            Ok((dir, pkt)) if pkt.len() <= self.pool.buffer_size() => (dir, pkt.len()),
            _ => {
                tally.errors += 1;
                return;
            }
        };
        let pkt = &mut d[..pkt];
        let checksum = match partial {
            true if self.tun.get().is_some_and(|t| t.vnet) => Checksum::Partial,
            // Not a checksum yet: summed whole.
            true => Checksum::Unknown,
            false => Checksum::Complete,
        };
        let Some(at) = self.admit_and_rewrite(snap, from, dir, pkt, checksum) else {
            tally.dropped += 1;
            return;
        };
        let delivered = match alone {
            true => {
                let written = self.write_now(pkt, true, at);
                if written == Some(true) && dir == GatewayDir::None && packet::asks_an_answer(pkt) {
                    // For this node itself: its answer is on the device already.
                    if let Some(tun) = self.tun.get() {
                        tun.mark_for_node();
                    }
                }
                written
            }
            false => self.write_burst(pkt, at),
        };
        let delivered = delivered.unwrap_or_else(|| {
            // The writer task's packets carry whole checksums.
            if at.is_some() {
                offload::complete_checksum(pkt);
            }
            self.pool
                .copy_of(pkt)
                .is_some_and(|buf| self.to_tun.try_send(buf).is_ok())
        });
        tally.count(delivered, pkt.len(), true);
    }

    /// One packet from a tunnel stream.
    fn deliver(&self, snap: &Snapshot, from: Option<&PeerEntry>, dir: GatewayDir, buf: PacketBuf) {
        let Some(from) = from else {
            self.stats.global(|g| g.rx_unknown_peer_packets += 1);
            return;
        };
        let mut tally = RxTally::default();
        let how = Delivery {
            checksum: Checksum::Unknown,
            alone: false,
        };
        self.deliver_one(snap, from, dir, buf, how, &mut tally);
        tally.flush(&from.counters);
    }

    /// The receive-side rewrite and hand-off to the TUN writer.
    fn deliver_one(
        &self,
        snap: &Snapshot,
        from: &PeerEntry,
        dir: GatewayDir,
        mut buf: PacketBuf,
        how: Delivery,
        tally: &mut RxTally,
    ) {
        if self
            .admit_and_rewrite(snap, from, dir, buf.data_mut(), how.checksum)
            .is_none()
        {
            tally.dropped += 1;
            return;
        }
        let len = buf.len();
        let datagram = how.checksum == Checksum::Complete;
        tally.count(self.to_tun(buf, how.alone), len, datagram);
    }

    /// Whether `from` may send this packet (`accepts`), and its addresses rewritten to ours;
    /// `None`: drop it. `Some(Some(at))`: its TCP/UDP checksum is partial, at `at`
    /// (`csum_start`, `csum_offset`), for the device's kernel to complete.
    fn admit_and_rewrite(
        &self,
        snap: &Snapshot,
        from: &PeerEntry,
        dir: GatewayDir,
        d: &mut [u8],
        checksum: Checksum,
    ) -> Option<Option<(u16, u16)>> {
        if packet::ip_version(d) != 4 || d.len() < 20 {
            return None;
        }
        let src = Ipv4Addr::new(d[12], d[13], d[14], d[15]);
        let dst = Ipv4Addr::new(d[16], d[17], d[18], d[19]);
        if !accepts(snap, from, dir, src, dst) {
            return None;
        }
        let (src, dst) = match dir {
            GatewayDir::None => (Some(from.ip), Some(snap.own_ip)),
            GatewayDir::Forward => (Some(from.ip), None),
            GatewayDir::Return => (None, Some(snap.own_ip)),
        };
        // Datagrams come only from awl nodes: their checksums are complete (an incremental
        // update is enough) or partial (made partial again for the new addresses); stream
        // packets may come from AWL and get its full recompute.
        match checksum {
            Checksum::Complete => packet::rewrite_incremental(d, src, dst).map(|()| None),
            Checksum::Partial => packet::rewrite_partial(d, src, dst),
            Checksum::Unknown => packet::rewrite(d, src, dst).map(|()| None),
        }
        .ok()
    }

    /// Writes a packet that came alone to the TUN at once when nothing waits for the writer
    /// task (which it would overtake): `Some(written)`, or `None` when it must take the
    /// writer's queue (not alone, others waiting, no device, or the device would block).
    fn write_now(&self, pkt: &[u8], alone: bool, partial: Option<(u16, u16)>) -> Option<bool> {
        let idle = alone && self.writer_idle();
        let tun = self.tun.get().filter(|_| idle)?;
        match tun::write_now(tun, pkt, partial) {
            Ok(()) => Some(true),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
            Err(e) => {
                log::debug!("TUN write failed: {e}");
                Some(false)
            }
        }
    }

    /// Nothing waits in the TUN queue, so a packet written now passes none.
    fn writer_idle(&self) -> bool {
        self.to_tun.capacity() == self.to_tun.max_capacity()
    }

    /// A packet of a burst (a read that brought others), joined to its run by this thread
    /// while nothing waits for the writer task: `Some(written)`, or `None` when it must take
    /// the writer's queue (others wait there, no device, or no offloads to join with).
    fn write_burst(&self, pkt: &[u8], partial: Option<(u16, u16)>) -> Option<bool> {
        let tun = self.tun.get().filter(|t| t.vnet)?;
        if !self.writer_idle() {
            // The run goes out before this packet queues behind the others.
            self.flush_burst();
            return None;
        }
        Some(tun::written(self.burst.push(tun, pkt, partial)))
    }

    /// Writes the burst's run held back for joining (after each read of several packets).
    pub(super) fn flush_burst(&self) {
        if let Some(tun) = self.tun.get() {
            tun::written(self.burst.flush(tun));
        }
    }

    /// Hands a packet to the TUN. One that came alone, with nothing waiting for the writer
    /// task, is written at once: a task hop less on every round trip. Otherwise it queues
    /// for the writer, which joins runs of segments. (The writer holds the packets it took
    /// only while it writes them, or, without offloads, while the device refuses writes:
    /// one written here in that moment may pass them, as the queue drains.)
    fn to_tun(&self, buf: PacketBuf, alone: bool) -> bool {
        self.write_now(buf.data(), alone, None)
            .unwrap_or_else(|| self.to_tun.try_send(buf).is_ok())
    }
}

/// How a received packet came: what its checksum is, and alone or with others right
/// behind it.
#[derive(Clone, Copy)]
struct Delivery {
    checksum: Checksum,
    alone: bool,
}

/// What a received packet's TCP/UDP checksum is, which decides how the rewrite sets it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Checksum {
    /// A datagram from an awl node, which sends whole checksums.
    Complete,
    /// A fast packet's partial checksum, kept partial for a device with offloads.
    Partial,
    /// A stream record (AWL's rewrite recomputes it whole), or a partial checksum for a
    /// device without offloads.
    Unknown,
}

/// Packets received in one batch, counted once per batch (one stats lock).
#[derive(Default)]
struct RxTally {
    packets: u64,
    bytes: u64,
    datagrams: u64,
    dropped: u64,
    errors: u64,
}

impl RxTally {
    /// One packet handed to the TUN (`delivered`) or dropped.
    fn count(&mut self, delivered: bool, len: usize, datagram: bool) {
        if delivered {
            self.packets += 1;
            self.bytes += len as u64;
            self.datagrams += u64::from(datagram);
        } else {
            self.dropped += 1;
        }
    }

    fn flush(&self, counters: &PeerCounters) {
        if self.packets + self.dropped + self.errors == 0 {
            return;
        }
        counters.add(|s| {
            s.rx_packets += self.packets;
            s.rx_bytes += self.bytes;
            s.rx_datagrams += self.datagrams;
            s.rx_dropped += self.dropped;
            s.rx_errors += self.errors;
        });
    }
}

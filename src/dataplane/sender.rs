//! The sending side toward one peer, over a [`PeerLink`]: the shortcut straight into the
//! datagram buffer, and the per-peer sender task that drains the peer's queue into QUIC
//! datagrams or records on a tunnel stream. The link is a trait so this is tested without QUIC.

use super::offload;
use super::pool::PacketBuf;
use super::qos::{QueueRx, QueueTx};
use super::stats::PeerCounters;
use crate::mesh::tunnel::{self, GatewayDir};
use crate::p2p::fastpath::{DirectPath, Run, Tx};
use crate::p2p::identity::PeerId;
use crate::p2p::stream::{RecvStream, SendStream};
use crate::p2p::Host;
use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// AWL closes an outbound tunnel stream after 30 s without packets.
const IDLE_CLOSE: Duration = Duration::from_secs(30);
/// AWL gives up opening a tunnel stream after 2 s.
const OPEN_TIMEOUT: Duration = Duration::from_secs(2);
/// Rotation as AWL: 5 GiB / 3500 packets on a direct connection, 20 MiB / 3500 when relayed.
const ROTATE_DIRECT: u64 = 5 * 1024 * 1024 * 1024 / 3500;
pub const ROTATE_RELAYED: u64 = 20 * 1024 * 1024 / 3500;
/// Upper bound of one batched write, so a batch buffer stays small on a router.
const BATCH_BYTES: usize = 64 * 1024;
/// How long the first packets after a connect wait for identify to say whether the peer
/// takes datagrams (normally one round trip), before they take a stream anyway.
const IDENTIFY_WAIT: Duration = Duration::from_secs(1);

/// What the sender needs of the connection(s) to one peer.
pub trait PeerLink: Send + Sync + 'static {
    type Datagrams: DatagramPath;
    type Stream: TunnelStream;
    type Error: Display + Send;
    /// The datagram path if the peer takes datagrams on its current connection; `None`
    /// means: use a stream.
    fn datagram_path(&self) -> Option<Self::Datagrams>;
    /// A new direct connection could carry datagrams but identify has not yet said whether
    /// the peer takes them.
    fn awaits_identify(&self) -> bool;
    /// Resolves when identify finished (or the peer is gone).
    fn identified(&self) -> impl Future<Output = ()> + Send;
    fn is_connected(&self) -> bool;
    fn has_direct(&self) -> bool;
    /// Whether new streams go through a relay (smaller rotation limit).
    fn is_relayed(&self) -> bool;
    fn open_stream(&self) -> impl Future<Output = Result<Self::Stream, Self::Error>> + Send;
}

/// A connection's datagram side.
pub trait DatagramPath: Send + Sync {
    type Error: Display + Send;
    fn max_size(&self) -> Option<usize>;
    fn buffer_space(&self) -> usize;
    /// Whether one packet of `len` bytes (its trailer included) goes out now, unqueued:
    /// it fits a datagram and the send buffer has room for it.
    fn takes_now(&self, len: usize) -> bool {
        quinn_takes_now(self, len)
    }
    /// Without waiting: `false` when it was refused.
    fn send(&self, d: PacketBuf) -> bool;
    /// Waits while the buffer is full (backpressure to the peer's queue).
    fn send_wait(&self, d: PacketBuf) -> impl Future<Output = Result<(), Self::Error>> + Send;
    /// A batch from the peer's queue, each packet with its trailer, in order, waiting while
    /// the path is full; `run` is the sender's buffer for sending many at once.
    fn send_all(
        &self,
        batch: &mut Vec<PacketBuf>,
        _run: &mut Run,
    ) -> impl Future<Output = DatagramTally> + Send
    where
        Self: Sized,
    {
        send_each(self, batch)
    }
}

/// Sends a batch one datagram at a time, waiting while the path is full.
async fn send_each<D: DatagramPath>(path: &D, batch: &mut Vec<PacketBuf>) -> DatagramTally {
    let mut tally = DatagramTally::default();
    for d in batch.drain(..) {
        let len = d.len().saturating_sub(1) as u64;
        match path.send_wait(d).await {
            Ok(()) => tally.sent(1, len),
            Err(e) => {
                log::debug!("tunnel datagram: {e}");
                tally.failed += 1;
            }
        }
    }
    tally
}

/// A QUIC datagram of `len` bytes fits and quinn's send buffer has room for it.
fn quinn_takes_now<D: DatagramPath + ?Sized>(path: &D, len: usize) -> bool {
    path.max_size().is_some_and(|m| len < m) && path.buffer_space() > len
}

/// The outbound tunnel stream.
pub trait TunnelStream: Send {
    fn write_all(&mut self, b: &[u8]) -> impl Future<Output = std::io::Result<()>> + Send;
    fn finish(&mut self) -> impl Future<Output = ()> + Send;
}

/// The real link: the host's connections to `peer`.
pub struct HostLink {
    pub host: Host,
    pub peer: PeerId,
    /// Datagrams are on (`DataplaneConfig::datagrams`).
    pub datagrams: bool,
}

impl PeerLink for HostLink {
    type Datagrams = DirectPath;
    type Stream = TunnelOut;
    type Error = crate::p2p::host::Error;
    fn datagram_path(&self) -> Option<DirectPath> {
        match self.datagrams {
            true => self
                .host
                .datagram_path(&self.peer, tunnel::DATAGRAM_PROTOCOL),
            false => None,
        }
    }
    fn awaits_identify(&self) -> bool {
        self.datagrams && self.host.awaits_identify(&self.peer)
    }
    async fn identified(&self) {
        let _ = self.host.identify(&self.peer).await;
    }
    fn is_connected(&self) -> bool {
        self.host.is_connected(&self.peer)
    }
    fn has_direct(&self) -> bool {
        self.host.has_direct(&self.peer)
    }
    fn is_relayed(&self) -> bool {
        self.host.is_relayed(&self.peer)
    }
    async fn open_stream(&self) -> Result<TunnelOut, Self::Error> {
        let s = self
            .host
            .open_stream_lazy(&self.peer, tunnel::PROTOCOL)
            .await?;
        Ok(TunnelOut {
            send: s.send,
            _recv: s.recv,
        })
    }
}

/// An outbound tunnel stream. We only write, but the read half lives as long as the stream:
/// it holds the peer's unread answer to a lazy open, and dropping it would ask the peer to
/// stop sending, failing that answer.
pub struct TunnelOut {
    send: SendStream,
    _recv: RecvStream,
}

/// A single packet takes the fast path when the peer has one (sealed and sent from this
/// task), else a QUIC datagram; batches from the queue always take QUIC datagrams, which
/// batch them (GSO) under the congestion window.
impl DatagramPath for DirectPath {
    type Error = quinn::SendDatagramError;
    fn max_size(&self) -> Option<usize> {
        self.conn.max_datagram_size()
    }
    fn buffer_space(&self) -> usize {
        self.conn.datagram_send_buffer_space()
    }
    /// On the fast path, what its last packets found (quinn's buffer is not used).
    fn takes_now(&self, len: usize) -> bool {
        match &self.fast {
            Some(tx) => tx.max_size().is_some_and(|m| len < m),
            None => quinn_takes_now(self, len),
        }
    }
    /// On the fast path when the peer takes it, sealed from the pooled buffer itself; else
    /// the buffer goes to quinn as the datagram (`Bytes` over it, no copy).
    fn send(&self, d: PacketBuf) -> bool {
        if self
            .fast
            .as_ref()
            .is_some_and(|f| f.send(d.data(), false).is_ok())
        {
            return true;
        }
        self.conn.send_datagram(bytes::Bytes::from_owner(d)).is_ok()
    }
    async fn send_wait(&self, d: PacketBuf) -> Result<(), Self::Error> {
        self.conn
            .send_datagram_wait(bytes::Bytes::from_owner(d))
            .await
    }
    /// On the fast path when the peer takes it: sealed into runs, one send each (GSO), as
    /// quinn batches its datagrams, waiting while the socket buffer is full.
    async fn send_all(&self, batch: &mut Vec<PacketBuf>, run: &mut Run) -> DatagramTally {
        let Some(tx) = &self.fast else {
            return send_each(self, batch).await;
        };
        let mut tally = DatagramTally::default();
        let mut bytes = 0u64;
        for d in batch.drain(..) {
            if !run.takes(d.len()) {
                send_run(tx, run, bytes, &mut tally).await;
                bytes = 0;
            }
            match tx.seal_into(run, d.data()) {
                Ok(()) => bytes += d.len().saturating_sub(1) as u64,
                Err(e) => {
                    log::debug!("fast packet: {e}");
                    tally.failed += 1;
                }
            }
        }
        send_run(tx, run, bytes, &mut tally).await;
        tally
    }
}

/// Sends a run, waiting while the socket buffer is full; counted into `tally`.
async fn send_run(tx: &Tx, run: &mut Run, bytes: u64, tally: &mut DatagramTally) {
    let n = run.len() as u64;
    loop {
        match tx.send_run(run) {
            Ok(()) => return tally.sent(n, bytes),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if let Err(e) = tx.writable().await {
                    log::debug!("fast packets: {e}");
                    run.clear();
                    tally.failed += n;
                    return;
                }
            }
            Err(e) => {
                log::debug!("fast packets: {e}");
                tally.failed += n;
                return;
            }
        }
    }
}

impl TunnelStream for TunnelOut {
    async fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        AsyncWriteExt::write_all(&mut self.send, b).await
    }
    async fn finish(&mut self) {
        self.send.finish().await
    }
}

/// The shortcut for a packet to an awl node when nothing waits for that peer (checked by
/// the caller): straight to quinn's datagram buffer, without the hop through the peer's
/// queue and sender task (on every round trip, twice). Only with room in quinn's buffer,
/// and only while the sender holds nothing, so nothing is overtaken and bulk still queues
/// behind CoDel. Gives the packet back when it has to take the queue.
pub fn send_now<D: DatagramPath>(
    path: Option<&D>,
    counters: &PeerCounters,
    pkt: PacketBuf,
    dir: GatewayDir,
) -> Result<(), PacketBuf> {
    let Some(conn) = path else {
        return Err(pkt);
    };
    let len = pkt.len();
    // The trailer byte must fit as well.
    let fits = conn.takes_now(len) && len < pkt.capacity();
    if !fits {
        return Err(pkt);
    }
    let sent = conn.send(with_trailer(pkt, dir));
    counters.add(|s| {
        if sent {
            s.tx_packets += 1;
            s.tx_bytes += len as u64;
            s.tx_datagrams += 1;
        } else {
            s.tx_dropped += 1;
        }
    });
    Ok(())
}

/// `send_now` for a packet still in its reader's buffer (`buf[..len]`; the trailer is
/// written at `buf[len]`), on the fast path only. False, with nothing counted, where the
/// packet must take another way (no fast path, too big, the socket full): the caller then
/// copies it into a pooled buffer for `send_now` or the queue. A `partial` checksum goes
/// so where the peer takes it, else it is completed here (and `partial` cleared).
pub fn send_now_from(
    path: &DirectPath,
    counters: &PeerCounters,
    (buf, len): (&mut [u8], usize),
    dir: GatewayDir,
    partial: &mut bool,
) -> bool {
    let Some(tx) = &path.fast else { return false };
    if tx.max_size().is_none_or(|m| len >= m) {
        return false;
    }
    let Some(trailer) = buf.get_mut(len) else {
        return false;
    };
    *trailer = tunnel::dir_byte(dir);
    if *partial && !tx.takes_partial() {
        offload::complete_checksum(&mut buf[..len]);
        *partial = false;
    }
    if tx.send(&buf[..=len], *partial).is_err() {
        return false;
    }
    counters.add(|s| {
        s.tx_packets += 1;
        s.tx_bytes += len as u64;
        s.tx_datagrams += 1;
    });
    true
}

/// The shortcut for a TCP super-packet's segments to an awl node whose queue is idle
/// (checked by the caller), on its fast path: sealed into runs and sent from the reading
/// thread, one GSO send per run, so bulk needs no task of the runtime. Takes the packets
/// sent from the front of `segs`; the rest (the socket was full, or a packet does not fit
/// a datagram) are left for the queue, in order. `partial`: their checksums are partial
/// (the caller checked [`takes_partial`]).
pub fn send_many_now(
    path: &DirectPath,
    counters: &PeerCounters,
    segs: &mut Vec<PacketBuf>,
    dir: GatewayDir,
    partial: bool,
) {
    let Some(tx) = &path.fast else { return };
    let Some(max) = tx.max_size() else { return };
    // Each with its trailer written behind it (its length unchanged, so the ones left for
    // the queue are as they came); only the leading ones that fit go.
    let mut fit = 0;
    for p in segs.iter_mut() {
        let len = p.len();
        match p.space().get_mut(len) {
            Some(b) if len < max => *b = tunnel::dir_byte(dir),
            _ => break,
        }
        fit += 1;
    }
    let sent = tx.send_many(
        segs[..fit].iter().map(PacketBuf::data_with_trailer),
        partial,
    );
    if sent == 0 {
        return;
    }
    let bytes: usize = segs.drain(..sent).map(|p| p.len()).sum();
    counters.add(|s| {
        s.tx_packets += sent as u64;
        s.tx_bytes += bytes as u64;
        s.tx_datagrams += sent as u64;
    });
}

/// Whether the peer on `path` takes packets with partial checksums (on its fast path).
pub fn takes_partial(path: &DirectPath) -> bool {
    path.fast.as_ref().is_some_and(|tx| tx.takes_partial())
}

/// Queues packets; returns how many found the queue full (bounded: they are dropped).
pub fn push(tx: &QueueTx, pkts: impl Iterator<Item = PacketBuf>, dir: GatewayDir) -> u64 {
    pkts.fold(0, |n, pkt| n + u64::from(tx.push(pkt, dir).is_err()))
}

/// One task per peer with traffic: sends packets as QUIC datagrams when the peer takes them
/// and they fit, else batches them as records on the long-lived outbound stream. Ends when
/// every producer of the queue is gone and it is drained.
pub async fn run<L: PeerLink>(link: L, peer: PeerId, mut rx: QueueRx, counters: Arc<PeerCounters>) {
    let mut stream: Option<L::Stream> = None;
    let mut on_stream: u64 = 0;
    // Whether `stream` rides a relay: once a direct connection appears (hole punching),
    // the next batch goes on a new stream over it.
    let mut stream_relayed = false;
    let mut batch: Vec<u8> = Vec::with_capacity(16 * 1024);
    // Packets bound for datagrams in one batch, and the fast path's buffer for them.
    let mut for_datagrams: Vec<PacketBuf> = Vec::new();
    let mut run = Run::default();
    let mut identify_gave_up = false;
    loop {
        // The idle timer only matters while a stream is open; datagram-only traffic skips
        // arming a timer per packet.
        let next = match stream.as_mut() {
            Some(_) => tokio::time::timeout(IDLE_CLOSE, rx.recv()).await,
            None => Ok(rx.recv().await),
        };
        let first = match next {
            Err(_) => {
                if let Some(mut s) = stream.take() {
                    s.finish().await;
                }
                continue;
            }
            Ok(None) => break,
            Ok(Some(p)) => p,
        };
        // Looked up once per batch: the path can change between batches (hole punching).
        let mut dgram = datagrams(&link);
        // Right after a connect, identify (one round trip) may not have listed the datagram
        // protocol yet: wait for it rather than open a tunnel stream (another round trip)
        // that would then idle for 30 s. A peer whose identify never answers costs that
        // wait once, not on every batch.
        if dgram.is_none() && stream.is_none() && !identify_gave_up && link.awaits_identify() {
            identify_gave_up = tokio::time::timeout(IDENTIFY_WAIT, link.identified())
                .await
                .is_err();
            dgram = datagrams(&link);
        }
        batch.clear();
        let mut taken = 0usize;
        let (mut count, mut bytes) = (0u64, 0u64);
        let mut dg = DatagramTally::default();
        let mut next = Some(first);
        while let Some(q) = next.take() {
            taken += 1;
            match &dgram {
                // The trailer byte must fit as well.
                Some((_, max)) if q.pkt.len() < *max && q.pkt.len() < q.pkt.capacity() => {
                    for_datagrams.push(with_trailer(q.pkt, q.dir));
                }
                Some((_, max)) if q.pkt.len() < *max => dg.failed += 1,
                _ => {
                    tunnel::push_record(&mut batch, q.dir, q.pkt.data());
                    count += 1;
                    bytes += q.pkt.len() as u64;
                }
            }
            if taken < tunnel::BATCH && batch.len() < BATCH_BYTES {
                next = rx.try_recv();
            }
        }
        if let Some((conn, _)) = &dgram {
            if !for_datagrams.is_empty() {
                dg.add(conn.send_all(&mut for_datagrams, &mut run).await);
            }
        }
        rx.done();
        let delay_dropped = rx.take_dropped();
        if dg.any() || delay_dropped > 0 {
            counters.add(|s| {
                s.tx_packets += dg.sent;
                s.tx_bytes += dg.bytes;
                s.tx_datagrams += dg.sent;
                s.tx_dropped += dg.failed + delay_dropped;
                s.tx_delay_dropped += delay_dropped;
            });
        }
        if count == 0 {
            continue;
        }
        if stream_relayed && link.has_direct() {
            if let Some(mut s) = stream.take() {
                s.finish().await;
            }
            stream_relayed = false;
        }
        if stream.is_none() {
            if !link.is_connected() {
                // Connecting is the reconnect loop's job; AWL drops here too.
                counters.add(|s| s.tx_dropped += count);
                continue;
            }
            match tokio::time::timeout(OPEN_TIMEOUT, link.open_stream()).await {
                Ok(Ok(s)) => {
                    stream = Some(s);
                    stream_relayed = link.is_relayed();
                    on_stream = 0;
                }
                Ok(Err(e)) => {
                    log::debug!("tunnel stream to {}: {e}", peer.short());
                    counters.add(|s| s.tx_dropped += count);
                    continue;
                }
                Err(_) => {
                    counters.add(|s| s.tx_dropped += count);
                    continue;
                }
            }
        }
        let Some(s) = stream.as_mut() else { continue };
        match s.write_all(&batch).await {
            Ok(()) => {
                counters.add(|st| {
                    st.tx_packets += count;
                    st.tx_bytes += bytes;
                });
                on_stream += count;
                let limit = if link.is_relayed() {
                    ROTATE_RELAYED
                } else {
                    ROTATE_DIRECT
                };
                if on_stream >= limit {
                    if let Some(mut s) = stream.take() {
                        s.finish().await;
                    }
                }
            }
            Err(e) => {
                log::debug!("tunnel write to {}: {e}", peer.short());
                stream = None;
                counters.add(|s| s.tx_dropped += count);
            }
        }
    }
    if let Some(mut s) = stream {
        s.finish().await;
    }
}

/// The peer's datagram path and the largest datagram it takes, if it takes them.
fn datagrams<L: PeerLink>(link: &L) -> Option<(L::Datagrams, usize)> {
    link.datagram_path()
        .and_then(|c| c.max_size().map(|m| (c, m)))
}

/// Datagrams sent in one batch, counted once per batch (one stats lock).
#[derive(Default, Debug)]
pub struct DatagramTally {
    sent: u64,
    bytes: u64,
    failed: u64,
}

impl DatagramTally {
    /// `n` packets of `bytes` in all (trailers not counted) went out.
    pub fn sent(&mut self, n: u64, bytes: u64) {
        self.sent += n;
        self.bytes += bytes;
    }

    fn add(&mut self, o: DatagramTally) {
        self.sent += o.sent;
        self.bytes += o.bytes;
        self.failed += o.failed;
    }

    fn any(&self) -> bool {
        self.sent + self.failed > 0
    }
}

/// A packet as a datagram: its direction trailer appended (room checked by the caller).
fn with_trailer(mut pkt: PacketBuf, dir: GatewayDir) -> PacketBuf {
    let len = pkt.len();
    if let Some(b) = pkt.space().get_mut(len) {
        *b = tunnel::dir_byte(dir);
        pkt.set_len(len + 1);
    }
    pkt
}

#[cfg(test)]
mod tests;

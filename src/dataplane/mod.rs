//! The VPN data plane: IP packets between the TUN device and `/awl/0.3.0/tunnel/` streams.
//!
//! ```text
//! TUN ──read──▶ route_outbound ──▶ per-peer queues ──▶ sender task ─┬▶ tunnel stream (AWL peers)
//!                                 (interactive, bulk+CoDel)          └▶ QUIC datagrams (awl peers)
//! TUN ◀─write── to_tun queue ◀── rewrite ◀── reader task per inbound stream / datagram handler
//! ```
//! Every packet lives in a pooled buffer; every queue is bounded; a full queue or an empty
//! pool drops the packet and counts it. Nothing here blocks the TUN reader.

pub mod offload;
pub mod packet;
pub mod pool;
pub mod qos;
pub mod stats;
pub mod tun;

use crate::p2p::identity::PeerId;
use crate::p2p::stream::{read_exact_or_eof, SendStream};
use crate::p2p::{Host, Stream};

use crate::base::prefix::{self, Prefix};
use crate::mesh::peers::{PeerTable, Relation};
use crate::mesh::tunnel::{self, GatewayDir, RecordHeader};
use pool::{PacketBuf, PacketPool};
use qos::{QueueRx, QueueTx};
use stats::Stats;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

pub type SharedPeers = Arc<Mutex<PeerTable>>;

/// Routing beyond the mesh subnet (LAN gateway, exit node), set by the node.
#[derive(Debug, Clone, Default)]
pub struct Routing {
    /// LAN prefixes we export to peers with `allow_lan`.
    pub exported: Vec<Prefix>,
    /// We serve as exit node for peers with `allow_exit`.
    pub gateway: bool,
    /// The exit node we use.
    pub exit_node: Option<PeerId>,
    /// Routes accepted from peers (checked by `routes::Guard`).
    pub installed: Vec<(Prefix, PeerId)>,
}

/// Where an outbound packet goes.
enum Route {
    Peer(PeerId, GatewayDir),
    Broadcast(Vec<PeerId>),
    /// The service stack's queue (the service address).
    Service(mpsc::Sender<PacketBuf>),
    Unroutable,
    TooBig,
}

/// AWL closes an outbound tunnel stream after 30 s without packets.
const IDLE_CLOSE: Duration = Duration::from_secs(30);
/// AWL gives up opening a tunnel stream after 2 s.
const OPEN_TIMEOUT: Duration = Duration::from_secs(2);
/// Rotation as AWL: 5 GiB / 3500 packets on a direct connection, 20 MiB / 3500 when relayed.
const ROTATE_DIRECT: u64 = 5 * 1024 * 1024 * 1024 / 3500;
pub const ROTATE_RELAYED: u64 = 20 * 1024 * 1024 / 3500;
/// Upper bound of one batched write, so a batch buffer stays small on a router.
const BATCH_BYTES: usize = 64 * 1024;

#[derive(Clone)]
pub struct DataplaneConfig {
    /// Packets waiting per peer before new ones are dropped.
    pub peer_queue: usize,
    /// Packets waiting for the TUN device.
    pub tun_queue: usize,
    /// Carry packets in QUIC datagrams to peers that take them (awl nodes).
    pub datagrams: bool,
}

pub struct Dataplane {
    host: Host,
    peers: SharedPeers,
    pool: PacketPool,
    cfg: DataplaneConfig,
    senders: Mutex<HashMap<PeerId, QueueTx>>,
    to_tun: mpsc::Sender<PacketBuf>,
    /// Swapped whole on change; a packet takes a reference, not a copy.
    routing: Mutex<Arc<Routing>>,
    /// Addresses answered by the service stack, and its input queue.
    /// Set once at start; read per packet without a lock.
    services: std::sync::OnceLock<(Vec<Ipv4Addr>, mpsc::Sender<PacketBuf>)>,
    /// The TUN device the writer task serves, for packets written without it.
    tun: std::sync::OnceLock<Arc<tun::Tun>>,
    pub stats: Arc<Stats>,
}

impl Dataplane {
    /// Returns the data plane and the receiving end of the TUN-bound queue.
    pub fn new(
        host: Host,
        peers: SharedPeers,
        pool: PacketPool,
        cfg: DataplaneConfig,
    ) -> (Arc<Self>, mpsc::Receiver<PacketBuf>) {
        let (to_tun, from_mesh) = mpsc::channel(cfg.tun_queue.max(1));
        let dp = Arc::new(Dataplane {
            host,
            peers,
            pool,
            cfg,
            senders: Mutex::new(HashMap::new()),
            to_tun,
            routing: Mutex::new(Arc::new(Routing::default())),
            services: std::sync::OnceLock::new(),
            tun: std::sync::OnceLock::new(),
            stats: Arc::new(Stats::default()),
        });
        (dp, from_mesh)
    }

    /// Packets from the TUN to these addresses go to the service stack instead of peers.
    /// Set once; a second call is ignored.
    pub fn set_services(&self, addrs: Vec<Ipv4Addr>, tx: mpsc::Sender<PacketBuf>) {
        let _ = self.services.set((addrs, tx));
    }

    /// The device behind the TUN-bound queue; packets arriving alone are written to it at
    /// once. Set once; a second call is ignored.
    pub fn set_tun(&self, tun: Arc<tun::Tun>) {
        let _ = self.tun.set(tun);
    }

    /// The queue of packets written to the TUN.
    pub fn tun_sender(&self) -> mpsc::Sender<PacketBuf> {
        self.to_tun.clone()
    }

    pub fn pool(&self) -> &PacketPool {
        &self.pool
    }

    pub fn set_routing(&self, r: Routing) {
        *self.routing.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(r);
    }

    pub fn routing(&self) -> Routing {
        Routing::clone(&self.routing.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Starts serving inbound tunnel streams.
    pub fn start(self: &Arc<Self>) {
        if self.cfg.datagrams {
            let dp = Arc::downgrade(self);
            self.host.set_datagram_handler(
                tunnel::DATAGRAM_PROTOCOL,
                Arc::new(move |peer, batch| {
                    if let Some(dp) = dp.upgrade() {
                        dp.receive_datagrams(peer, batch);
                    }
                }),
            );
        }
        let mut inbound = self.host.register(tunnel::PROTOCOL, 64);
        let dp = self.clone();
        crate::spawn(async move {
            while let Some(stream) = inbound.recv().await {
                dp.clone().accept_stream(stream);
            }
        });
    }

    /// A packet read from the TUN device: send it to the peer that owns its destination —
    /// a mesh IP, a LAN route a peer announced (Forward), or the exit node (Forward).
    pub fn route_outbound(self: &Arc<Self>, pkt: PacketBuf) {
        match self.resolve(pkt.data()) {
            Route::Peer(peer, dir) => self.send_one(&peer, pkt, dir),
            route => self.dispatch(route, std::iter::once(pkt)),
        }
    }

    /// One packet for `peer`: straight to quinn while nothing waits for that peer
    /// (`send_now`), else into its queue — with one lookup of the queue for both.
    fn send_one(self: &Arc<Self>, peer: &PeerId, pkt: PacketBuf, dir: GatewayDir) {
        let mut senders = self.senders.lock().unwrap_or_else(|e| e.into_inner());
        let pkt = if senders.get(peer).is_none_or(QueueTx::is_idle) {
            match self.send_now(peer, pkt, dir) {
                Ok(()) => return,
                Err(pkt) => pkt,
            }
        } else {
            pkt
        };
        let dropped = self.push(&mut senders, peer, std::iter::once(pkt), dir);
        drop(senders);
        self.count_dropped(peer, dropped);
    }

    /// The shortcut for a packet to an awl node when nothing waits for that peer (checked by
    /// the caller): straight to quinn's datagram buffer, without the hop through the peer's
    /// queue and sender task (on every round trip, twice). Only with room in quinn's buffer,
    /// and only while the sender holds nothing, so nothing is overtaken and bulk still queues
    /// behind CoDel. Gives the packet back when it has to take the queue.
    fn send_now(&self, peer: &PeerId, pkt: PacketBuf, dir: GatewayDir) -> Result<(), PacketBuf> {
        let conn = match self.cfg.datagrams {
            true => self.host.datagram_path(peer, tunnel::DATAGRAM_PROTOCOL),
            false => None,
        };
        let Some(conn) = conn else {
            return Err(pkt);
        };
        let len = pkt.len();
        // The trailer byte must fit as well.
        let fits = conn.max_datagram_size().is_some_and(|m| len < m)
            && conn.datagram_send_buffer_space() > len
            && len < pkt.capacity();
        if !fits {
            return Err(pkt);
        }
        let sent = conn.send_datagram(with_trailer(pkt, dir)).is_ok();
        self.stats.peer(peer, |s| {
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

    /// The segments of one TCP super-packet: their headers differ only in length, ID and
    /// sequence number, so one route (and one queue lookup) serves them all.
    pub fn route_segments(self: &Arc<Self>, segs: &mut Vec<PacketBuf>) {
        let Some(first) = segs.first() else {
            return;
        };
        let route = self.resolve(first.data());
        self.dispatch(route, segs.drain(..));
    }

    /// Sends packets that share one route where it points, or counts them as dropped.
    fn dispatch(self: &Arc<Self>, route: Route, pkts: impl ExactSizeIterator<Item = PacketBuf>) {
        match route {
            Route::Peer(peer, dir) => self.enqueue(&peer, pkts, dir),
            Route::Service(tx) => {
                let refused = pkts.fold(0u64, |n, pkt| n + u64::from(tx.try_send(pkt).is_err()));
                if refused > 0 {
                    self.stats.global(|g| g.tx_unroutable += refused);
                }
            }
            Route::Broadcast(peers) => pkts.for_each(|pkt| self.broadcast(&peers, pkt)),
            Route::Unroutable => {
                let n = pkts.len() as u64;
                self.stats.global(|g| g.tx_unroutable += n);
            }
            Route::TooBig => {
                let n = pkts.len() as u64;
                self.stats.global(|g| g.tx_too_big += n);
            }
        }
    }

    /// Where a packet from the TUN goes, from its IPv4 header.
    fn resolve(&self, d: &[u8]) -> Route {
        if packet::ip_version(d) != 4 || d.len() < 20 {
            // AWL v0.18 peers drop IPv6; don't spend the link on it.
            return Route::Unroutable;
        }
        if d.len() > tunnel::AWL_MAX_PACKET {
            // An AWL receiver can't hold it (§5.1); keep the TUN MTU at or below 3500.
            return Route::TooBig;
        }
        let src = Ipv4Addr::new(d[12], d[13], d[14], d[15]);
        let dst = Ipv4Addr::new(d[16], d[17], d[18], d[19]);
        if let Some((_, tx)) = self.services.get().filter(|(a, _)| a.contains(&dst)) {
            return Route::Service(tx.clone());
        }
        let routing = self.routing_now();
        let t = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        if dst == t.broadcast() || dst == Ipv4Addr::BROADCAST {
            return Route::Broadcast(t.iter().map(|p| p.peer_id.clone()).collect());
        }
        if t.in_mesh(dst) {
            let Some(p) = t.by_ip(dst) else {
                return Route::Unroutable;
            };
            // Replies from our LAN or the internet to a peer that came in through us keep
            // their source: tag them Return.
            let ret = !t.in_mesh(src)
                && ((routing.gateway && p.allow_exit)
                    || (p.allow_lan && routing.exported.iter().any(|r| r.contains(src))));
            let dir = if ret {
                GatewayDir::Return
            } else {
                GatewayDir::None
            };
            return Route::Peer(p.peer_id.clone(), dir);
        }
        drop(t);
        if let Some(peer) = prefix::lookup(&routing.installed, dst) {
            return Route::Peer(peer.clone(), GatewayDir::Forward);
        }
        match routing.exit_node.as_ref().filter(|_| forwardable(dst)) {
            Some(exit) => Route::Peer(exit.clone(), GatewayDir::Forward),
            None => Route::Unroutable,
        }
    }

    /// Broadcast emulation: a copy to every connected known peer.
    fn broadcast(self: &Arc<Self>, peers: &[PeerId], pkt: PacketBuf) {
        for peer in peers.iter().filter(|p| self.host.is_connected(p)) {
            let Some(mut copy) = self.pool.get() else {
                self.stats.peer(peer, |s| s.tx_dropped += 1);
                continue;
            };
            copy.space()[..pkt.len()].copy_from_slice(pkt.data());
            copy.set_len(pkt.len());
            self.enqueue(peer, std::iter::once(copy), GatewayDir::None);
        }
    }

    /// Queues packets for `peer`, starting its sender task on first use.
    fn enqueue(
        self: &Arc<Self>,
        peer: &PeerId,
        pkts: impl Iterator<Item = PacketBuf>,
        dir: GatewayDir,
    ) {
        let mut senders = self.senders.lock().unwrap_or_else(|e| e.into_inner());
        let dropped = self.push(&mut senders, peer, pkts, dir);
        drop(senders);
        self.count_dropped(peer, dropped);
    }

    /// `enqueue` with the queues already locked; returns how many packets found the queue full.
    fn push(
        self: &Arc<Self>,
        senders: &mut HashMap<PeerId, QueueTx>,
        peer: &PeerId,
        pkts: impl Iterator<Item = PacketBuf>,
        dir: GatewayDir,
    ) -> u64 {
        let tx = match senders.get(peer) {
            Some(tx) if !tx.is_closed() => tx,
            _ => {
                let (tx, rx) = qos::peer_queue(self.cfg.peer_queue);
                let dp = self.clone();
                let p = peer.clone();
                crate::spawn(async move { dp.sender(p, rx).await });
                senders.insert(peer.clone(), tx);
                match senders.get(peer) {
                    Some(tx) => tx,
                    None => return 0,
                }
            }
        };
        pkts.fold(0, |n, pkt| n + u64::from(tx.push(pkt, dir).is_err()))
    }

    fn count_dropped(&self, peer: &PeerId, dropped: u64) {
        if dropped > 0 {
            self.stats.peer(peer, |s| s.tx_dropped += dropped);
        }
    }

    /// Forgets a peer's sender (peer removed); its task ends when the queue drains.
    pub fn forget(&self, peer: &PeerId) {
        self.senders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(peer);
    }

    /// One task per peer with traffic: sends packets as QUIC datagrams when the peer takes them
    /// and they fit, else batches them as records on the long-lived outbound stream.
    async fn sender(self: Arc<Self>, peer: PeerId, mut rx: QueueRx) {
        let mut stream: Option<SendStream> = None;
        let mut on_stream: u64 = 0;
        // Whether `stream` rides a relay: once a direct connection appears (hole punching),
        // the next batch goes on a new stream over it.
        let mut stream_relayed = false;
        let mut batch: Vec<u8> = Vec::with_capacity(16 * 1024);
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
            let dgram = if self.cfg.datagrams {
                self.host
                    .datagram_path(&peer, tunnel::DATAGRAM_PROTOCOL)
                    .and_then(|c| c.max_datagram_size().map(|m| (c, m)))
            } else {
                None
            };
            batch.clear();
            let mut taken = 0usize;
            let (mut count, mut bytes) = (0u64, 0u64);
            let mut dg = DatagramTally::default();
            let mut next = Some(first);
            while let Some(q) = next.take() {
                taken += 1;
                match &dgram {
                    // The trailer byte must fit as well.
                    Some((conn, max)) if q.pkt.len() < *max => {
                        dg.send(conn, q.pkt, q.dir).await;
                    }
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
            rx.done();
            let delay_dropped = rx.take_dropped();
            if dg.any() || delay_dropped > 0 {
                self.stats.peer(&peer, |s| {
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
            if stream_relayed && self.host.has_direct(&peer) {
                if let Some(mut s) = stream.take() {
                    s.finish().await;
                }
                stream_relayed = false;
            }
            if stream.is_none() {
                if !self.host.is_connected(&peer) {
                    // Connecting is the reconnect loop's job; AWL drops here too.
                    self.stats.peer(&peer, |s| s.tx_dropped += count);
                    continue;
                }
                match tokio::time::timeout(
                    OPEN_TIMEOUT,
                    self.host.open_stream(&peer, &[tunnel::PROTOCOL]),
                )
                .await
                {
                    Ok(Ok(s)) => {
                        stream = Some(s.send);
                        stream_relayed = self.host.is_relayed(&peer);
                        on_stream = 0;
                    }
                    Ok(Err(e)) => {
                        log::debug!("tunnel stream to {}: {e}", peer.short());
                        self.stats.peer(&peer, |s| s.tx_dropped += count);
                        continue;
                    }
                    Err(_) => {
                        self.stats.peer(&peer, |s| s.tx_dropped += count);
                        continue;
                    }
                }
            }
            let Some(s) = stream.as_mut() else { continue };
            match s.write_all(&batch).await {
                Ok(()) => {
                    self.stats.peer(&peer, |st| {
                        st.tx_packets += count;
                        st.tx_bytes += bytes;
                    });
                    on_stream += count;
                    let limit = if self.host.is_relayed(&peer) {
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
                    self.stats.peer(&peer, |s| s.tx_dropped += count);
                }
            }
        }
        if let Some(mut s) = stream {
            s.finish().await;
        }
    }

    fn accept_stream(self: Arc<Self>, mut stream: Stream) {
        let relation = self
            .peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .relation(&stream.peer);
        if relation != Relation::Known {
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

    async fn read_stream(&self, stream: &mut Stream) -> Result<(), String> {
        let peer = stream.peer.clone();
        let mut scratch = Vec::new();
        loop {
            let mut hdr = [0u8; tunnel::HEADER_LEN];
            match read_exact_or_eof(&mut stream.recv, &mut hdr).await {
                Ok(true) => {}
                Ok(false) => return Ok(()),
                Err(e) => return Err(e.to_string()),
            }
            let h = RecordHeader::parse(hdr).map_err(|e| e.to_string())?;
            if h.len > self.pool.buffer_size() {
                return Err(format!(
                    "{}-byte record is larger than our packet buffers",
                    h.len
                ));
            }
            let Some(mut buf) = self.pool.get() else {
                // Read it out anyway to stay in sync with the stream, then drop it.
                scratch.resize(h.len, 0);
                stream
                    .recv
                    .read_exact(&mut scratch)
                    .await
                    .map_err(|e| e.to_string())?;
                self.stats.peer(&peer, |s| s.rx_dropped += 1);
                continue;
            };
            stream
                .recv
                .read_exact(&mut buf.space()[..h.len])
                .await
                .map_err(|e| e.to_string())?;
            buf.set_len(h.len);
            self.deliver(&peer, h.dir, buf);
        }
    }

    /// QUIC datagrams from `peer`, each one packet with its direction trailer. The peer's
    /// addresses and permissions are looked up once for the batch, counters updated once.
    fn receive_datagrams(&self, peer: &PeerId, batch: &mut Vec<bytes::Bytes>) {
        let Some(from) = self.inbound(peer) else {
            // Streams from strangers are refused earlier; datagrams end here.
            let n = batch.len() as u64;
            batch.clear();
            self.stats.global(|g| g.rx_unknown_peer_packets += n);
            return;
        };
        let routing = self.routing_now();
        let mut tally = RxTally::default();
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
            let Some(mut buf) = self.pool.get() else {
                tally.dropped += 1;
                continue;
            };
            buf.space()[..pkt.len()].copy_from_slice(pkt);
            buf.set_len(pkt.len());
            let how = Delivery {
                datagram: true,
                alone,
            };
            self.deliver_one(&from, &routing, dir, buf, how, &mut tally);
        }
        tally.flush(&self.stats, peer);
    }

    /// One packet from a tunnel stream.
    fn deliver(&self, peer: &PeerId, dir: GatewayDir, buf: PacketBuf) {
        let Some(from) = self.inbound(peer) else {
            self.stats.global(|g| g.rx_unknown_peer_packets += 1);
            return;
        };
        let mut tally = RxTally::default();
        let how = Delivery {
            datagram: false,
            alone: false,
        };
        self.deliver_one(&from, &self.routing_now(), dir, buf, how, &mut tally);
        tally.flush(&self.stats, peer);
    }

    fn routing_now(&self) -> Arc<Routing> {
        self.routing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// What the receive side needs of a known peer; `None` for a stranger.
    fn inbound(&self, peer: &PeerId) -> Option<Inbound> {
        let t = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        t.get(peer).map(|p| Inbound {
            peer: peer.clone(),
            peer_ip: p.ip,
            own_ip: t.own_ip(),
            mesh: Prefix::new(t.own_ip(), t.prefix()).unwrap_or(Prefix {
                addr: t.own_ip(),
                len: 32,
            }),
            allow_exit: p.allow_exit,
            allow_lan: p.allow_lan,
        })
    }

    /// The receive-side rewrite and hand-off to the TUN writer.
    fn deliver_one(
        &self,
        from: &Inbound,
        r: &Routing,
        dir: GatewayDir,
        mut buf: PacketBuf,
        how: Delivery,
        tally: &mut RxTally,
    ) {
        if packet::ip_version(buf.data()) != 4 {
            tally.dropped += 1;
            return;
        }
        let d = buf.data();
        let src = Ipv4Addr::new(d[12], d[13], d[14], d[15]);
        let dst = Ipv4Addr::new(d[16], d[17], d[18], d[19]);
        if !accepts(r, from, dir, src, dst) {
            tally.dropped += 1;
            return;
        }
        let (src, dst) = match dir {
            GatewayDir::None => (Some(from.peer_ip), Some(from.own_ip)),
            GatewayDir::Forward => (Some(from.peer_ip), None),
            GatewayDir::Return => (None, Some(from.own_ip)),
        };
        // Datagrams come only from awl nodes: their checksums are complete, so an incremental
        // update is enough; stream packets may come from AWL and get its full recompute.
        let rewritten = if how.datagram {
            packet::rewrite_incremental(buf.data_mut(), src, dst)
        } else {
            packet::rewrite(buf.data_mut(), src, dst)
        };
        if rewritten.is_err() {
            tally.dropped += 1;
            return;
        }
        let len = buf.len() as u64;
        if self.to_tun(buf, how.alone) {
            tally.packets += 1;
            tally.bytes += len;
            tally.datagrams += u64::from(how.datagram);
        } else {
            tally.dropped += 1;
        }
    }

    /// Hands a packet to the TUN. One that came alone, with nothing waiting for the writer
    /// task, is written at once: a task hop less on every round trip. Otherwise it queues
    /// for the writer, which joins runs of segments. (The writer holds taken packets only
    /// while the device refuses writes, and then this write is refused as well.)
    fn to_tun(&self, buf: PacketBuf, alone: bool) -> bool {
        let tun = self
            .tun
            .get()
            .filter(|_| alone && self.to_tun.capacity() == self.to_tun.max_capacity());
        if let Some(tun) = tun {
            match tun::write_now(tun, buf.data()) {
                Ok(()) => return true,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    log::debug!("TUN write failed: {e}");
                    return false;
                }
            }
        }
        self.to_tun.try_send(buf).is_ok()
    }
}

/// How a received packet came: in a datagram (from an awl node) or a stream record, and
/// alone or with others right behind it.
#[derive(Clone, Copy)]
struct Delivery {
    datagram: bool,
    alone: bool,
}

/// Whether a packet from a known peer may enter, by its gateway direction.
fn accepts(r: &Routing, from: &Inbound, dir: GatewayDir, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
    match dir {
        // Source and destination are rewritten to the peer's and our mesh IPs.
        GatewayDir::None => true,
        // Client → us as exit node or into our LAN: destination kept.
        GatewayDir::Forward => {
            (r.gateway && from.allow_exit)
                || (from.allow_lan && r.exported.iter().any(|p| p.contains(dst)))
        }
        // A peer whose LAN we route to, answering from that LAN: source kept.
        GatewayDir::Return
            if r.installed
                .iter()
                .any(|(p, who)| *who == from.peer && p.contains(src)) =>
        {
            true
        }
        // Our exit node answering from the internet: source kept, so it must be an address
        // the exit can answer for — not a mesh IP (another peer's), not our own LAN, not a
        // LAN we route to another peer, not loopback, link-local, multicast or broadcast.
        GatewayDir::Return => {
            r.exit_node.as_ref() == Some(&from.peer)
                && forwardable(src)
                && !from.mesh.contains(src)
                && !r.exported.iter().any(|p| p.contains(src))
                && !r.installed.iter().any(|(p, _)| p.contains(src))
        }
    }
}

/// A known peer as the receive side sees it.
struct Inbound {
    peer: PeerId,
    peer_ip: Ipv4Addr,
    own_ip: Ipv4Addr,
    /// The mesh subnet.
    mesh: Prefix,
    allow_exit: bool,
    allow_lan: bool,
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
    fn flush(&self, stats: &Stats, peer: &PeerId) {
        if self.packets + self.dropped + self.errors == 0 {
            return;
        }
        stats.peer(peer, |s| {
            s.rx_packets += self.packets;
            s.rx_bytes += self.bytes;
            s.rx_datagrams += self.datagrams;
            s.rx_dropped += self.dropped;
            s.rx_errors += self.errors;
        });
    }
}

/// Datagrams sent in one batch, counted once per batch (one stats lock).
#[derive(Default)]
struct DatagramTally {
    sent: u64,
    bytes: u64,
    failed: u64,
}

impl DatagramTally {
    /// Sends one packet with its direction trailer; the pooled buffer itself goes to quinn.
    /// Waits while quinn's small datagram buffer is full (backpressure to the peer queue).
    async fn send(&mut self, conn: &quinn::Connection, pkt: PacketBuf, dir: GatewayDir) {
        let len = pkt.len();
        if len >= pkt.capacity() {
            self.failed += 1;
            return;
        }
        match conn.send_datagram_wait(with_trailer(pkt, dir)).await {
            Ok(()) => {
                self.sent += 1;
                self.bytes += len as u64;
            }
            Err(e) => {
                log::debug!("tunnel datagram: {e}");
                self.failed += 1;
            }
        }
    }

    fn any(&self) -> bool {
        self.sent + self.failed > 0
    }
}

/// A packet as a datagram: its direction trailer appended (room checked by the caller), the
/// pooled buffer itself handed to quinn.
fn with_trailer(mut pkt: PacketBuf, dir: GatewayDir) -> bytes::Bytes {
    let len = pkt.len();
    if let Some(b) = pkt.space().get_mut(len) {
        *b = tunnel::dir_byte(dir);
        pkt.set_len(len + 1);
    }
    bytes::Bytes::from_owner(pkt)
}

/// Destinations an exit node may carry (not loopback, link-local, multicast or broadcast).
fn forwardable(ip: Ipv4Addr) -> bool {
    !(ip.is_loopback()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_unspecified())
}

#[cfg(test)]
mod tests;

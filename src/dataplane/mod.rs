//! The VPN data plane: IP packets between the TUN device and `/awl/0.3.0/tunnel/` streams.
//!
//! ```text
//! TUN ──read──▶ route ──▶ per-peer queues ──▶ sender task ─┬▶ tunnel stream (AWL peers)
//!                        (interactive, bulk+CoDel)          └▶ QUIC datagrams (awl peers)
//! TUN ◀─write── to_tun queue ◀── rewrite ◀── reader task per inbound stream / datagram handler
//! ```
//! Every packet lives in a pooled buffer; every queue is bounded; a full queue or an empty
//! pool drops the packet and counts it. Nothing here blocks the TUN reader, and no packet
//! takes a lock of the control plane: routing reads a published [`snapshot`].

mod inbound;
pub mod offload;
pub mod packet;
pub mod pool;
pub mod qos;
pub mod route;
pub mod sender;
pub mod snapshot;
pub mod stats;
pub mod tun;

pub use sender::ROTATE_RELAYED;
pub use snapshot::Routing;

use crate::mesh::peers::SharedPeers;
use crate::mesh::tunnel::{self, GatewayDir};
use crate::p2p::fastpath::DirectPath;
use crate::p2p::identity::PeerId;
use crate::p2p::{self, Host};
use pool::{PacketBuf, PacketPool};
use qos::QueueTx;
use route::Route;
use snapshot::{PeerEntry, Published, Reader, SlotState, Snapshot};
use stats::Stats;
use std::net::Ipv4Addr;
use std::sync::{Arc, OnceLock};
use tokio::sync::mpsc;

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
    pool: PacketPool,
    cfg: DataplaneConfig,
    /// What routing reads, republished by the control plane on every change.
    published: Arc<Published>,
    to_tun: mpsc::Sender<PacketBuf>,
    /// The TUN device the writer task serves, for packets written without it.
    tun: OnceLock<Arc<tun::Tun>>,
    /// Segments of a burst of fast packets, joined by the thread that opened them.
    burst: tun::Burst,
    pub stats: Arc<Stats>,
}

impl Dataplane {
    /// Returns the data plane and the receiving end of the TUN-bound queue. The peer table
    /// publishes every change of its peers to the data plane from now on.
    pub fn new(
        host: Host,
        peers: SharedPeers,
        pool: PacketPool,
        cfg: DataplaneConfig,
    ) -> (Arc<Self>, mpsc::Receiver<PacketBuf>) {
        let (to_tun, from_mesh) = mpsc::channel(cfg.tun_queue.max(1));
        let stats = Arc::new(Stats::default());
        let published = Arc::new(Published::new(stats.clone()));
        let p = published.clone();
        peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .on_change(Arc::new(move |t| p.set_peers(t)));
        let dp = Arc::new(Dataplane {
            host,
            pool,
            cfg,
            published,
            to_tun,
            tun: OnceLock::new(),
            burst: tun::Burst::default(),
            stats,
        });
        (dp, from_mesh)
    }

    /// Packets from the TUN to these addresses go to the service stack instead of peers
    /// (published with the rest of the snapshot).
    pub fn set_services(&self, addrs: Vec<Ipv4Addr>, tx: mpsc::Sender<PacketBuf>) {
        self.published.set_services(addrs, tx);
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
        self.published.set_routing(r);
    }

    pub fn routing(&self) -> Routing {
        Routing::clone(&self.published.routing())
    }

    /// The current snapshot, for a caller without its own [`Reader`].
    fn snapshot(&self) -> Arc<Snapshot> {
        self.published.load()
    }

    /// A cache of the snapshot for a loop that routes many packets.
    pub fn reader(&self) -> Reader {
        Reader::new(&self.published)
    }

    /// Starts serving inbound tunnel streams.
    pub fn start(self: &Arc<Self>) {
        if self.cfg.datagrams {
            let dp = Arc::downgrade(self);
            self.host.set_datagram_handler(
                tunnel::DATAGRAM_PROTOCOL,
                Arc::new(move |peer| {
                    let dp = dp.clone();
                    let mut view = dp
                        .upgrade()
                        .map(|dp| snapshot::PeerView::new(&dp.published, peer.clone()));
                    Box::new(move |datagrams| match (dp.upgrade(), view.as_mut()) {
                        (Some(dp), Some(view)) => dp.receive_datagrams(view, datagrams),
                        _ => {
                            if let p2p::fastpath::Datagrams::Batch(b) = datagrams {
                                b.clear();
                            }
                        }
                    })
                }),
            );
            let dp = Arc::downgrade(self);
            self.host.set_batch_end(Box::new(move || {
                if let Some(dp) = dp.upgrade() {
                    dp.flush_burst();
                }
            }));
        }
        // Connection events make the cached datagram paths stale.
        let mut events = self.host.events();
        let published = self.published.clone();
        crate::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            while !matches!(events.recv().await, Err(RecvError::Closed)) {
                published.links_changed();
            }
        });
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
        let snap = self.snapshot();
        self.route_in(&snap, pkt);
    }

    /// A packet read into the TUN reader's own buffer (`buf[..len]`, with room behind it
    /// for the trailer). To a peer's fast path it is sealed from there, so a lone packet (a
    /// ping, a DNS query) touches no pooled buffer nor the pool's lock; anything else is
    /// copied into a pooled buffer and routed as by `route_outbound`, with the reader's
    /// cached snapshot. `partial`: the kernel left its TCP/UDP checksum partial; it goes so
    /// to a peer that takes it, and is completed for any other way.
    pub fn route_from(
        self: &Arc<Self>,
        reader: &mut Reader,
        buf: &mut [u8],
        len: usize,
        mut partial: bool,
    ) -> Needs {
        let snap = reader.get(&self.published);
        let Some(pkt) = buf.get(..len) else {
            return Needs::Nothing;
        };
        let route = route::route(snap, pkt);
        // As from a pooled buffer: only what one could hold, with its trailer.
        if let Route::Peer(peer, dir) = &route {
            if len < self.pool.buffer_size()
                && self.send_fast_from(peer, buf, len, *dir, &mut partial)
            {
                return Needs::Nothing;
            }
        }
        if partial {
            offload::complete_checksum(&mut buf[..len]);
        }
        let Some(mut copy) = self.pool.get() else {
            return Needs::Nothing;
        };
        let Some(space) = copy.space().get_mut(..len) else {
            self.stats.global(|g| g.tx_too_big += 1);
            return Needs::Nothing;
        };
        space.copy_from_slice(&buf[..len]);
        copy.set_len(len);
        self.send_routed(snap, route, copy)
    }

    /// `send_one`'s way straight out, for a packet in the reader's buffer: only on the
    /// peer's fast path. A `partial` checksum is completed unless the peer takes it so.
    fn send_fast_from(
        &self,
        peer: &PeerEntry,
        buf: &mut [u8],
        len: usize,
        dir: GatewayDir,
        partial: &mut bool,
    ) -> bool {
        let mut slot = peer.sender.lock();
        self.path_now(&mut slot, &peer.id)
            .is_some_and(|p| sender::send_now_from(p, &peer.counters, (buf, len), dir, partial))
    }

    fn route_in(self: &Arc<Self>, snap: &Snapshot, pkt: PacketBuf) -> Needs {
        self.send_routed(snap, route::route(snap, pkt.data()), pkt)
    }

    fn send_routed(self: &Arc<Self>, snap: &Snapshot, route: Route<'_>, pkt: PacketBuf) -> Needs {
        match route {
            Route::Peer(peer, dir) => self.send_one(peer, pkt, dir),
            route => self.dispatch(snap, route, std::iter::once(pkt)),
        }
    }

    /// The segments of one TCP super-packet: their headers differ only in length, ID and
    /// sequence number, so one route (and one queue lookup) serves them all. `partial`:
    /// their checksums are partial (`offload::TcpSegments::write`), as for `route_from`.
    pub fn route_segments(
        self: &Arc<Self>,
        reader: &mut Reader,
        segs: &mut Vec<PacketBuf>,
        partial: bool,
    ) -> Needs {
        let Some(first) = segs.first() else {
            return Needs::Nothing;
        };
        let snap = reader.get(&self.published);
        let route = route::route(snap, first.data());
        if let Route::Peer(peer, dir) = route {
            return self.send_many(peer, segs, dir, partial);
        }
        if partial {
            complete_all(segs);
        }
        self.dispatch(snap, route, segs.drain(..))
    }

    /// A super-packet's segments for `peer`: sent at once on the fast path while nothing
    /// waits for that peer (`send_many_now`), the rest into its queue, under one lock of
    /// the peer's queue.
    fn send_many(
        self: &Arc<Self>,
        peer: &PeerEntry,
        segs: &mut Vec<PacketBuf>,
        dir: GatewayDir,
        mut partial: bool,
    ) -> Needs {
        let mut slot = peer.sender.lock();
        if let Some(path) = self.path_now(&mut slot, &peer.id) {
            if partial && !sender::takes_partial(path) {
                complete_all(segs);
                partial = false;
            }
            sender::send_many_now(path, &peer.counters, segs, dir, partial);
        }
        if segs.is_empty() {
            return Needs::Nothing;
        }
        // The queue's packets carry whole checksums.
        if partial {
            complete_all(segs);
        }
        let dropped = self.push(&mut slot, peer, segs.drain(..), dir);
        drop(slot);
        count_dropped(peer, dropped);
        Needs::Runtime
    }

    /// One packet for `peer`: straight to quinn while nothing waits for that peer
    /// (`send_now`), else into its queue — with one lock of the peer's queue for both.
    fn send_one(self: &Arc<Self>, peer: &PeerEntry, pkt: PacketBuf, dir: GatewayDir) -> Needs {
        let mut slot = peer.sender.lock();
        let path = self.path_now(&mut slot, &peer.id);
        // Without the fast path, quinn's connection task sends it.
        let fast = path.is_some_and(|p| p.fast.is_some());
        let pkt = match sender::send_now(path, &peer.counters, pkt, dir) {
            Ok(()) if fast => return Needs::Nothing,
            Ok(()) => return Needs::Runtime,
            Err(pkt) => pkt,
        };
        let dropped = self.push(&mut slot, peer, std::iter::once(pkt), dir);
        drop(slot);
        count_dropped(peer, dropped);
        Needs::Runtime
    }

    /// The peer's datagram path when a packet may take it at once: datagrams on, the
    /// peer's queue open and empty (nothing queued can be overtaken).
    fn path_now<'s>(&self, slot: &'s mut SlotState, peer: &PeerId) -> Option<&'s DirectPath> {
        if !self.cfg.datagrams || slot.closed || !slot.tx.as_ref().is_none_or(QueueTx::is_idle) {
            return None;
        }
        self.datagram_path(slot, peer)
    }

    /// The peer's datagram path, cached in its slot until the host reports a connection
    /// event or the cached connection closed: an atomic load per packet, not the host's lock,
    /// and borrowed from the slot (no reference count touched per packet).
    fn datagram_path<'s>(&self, slot: &'s mut SlotState, peer: &PeerId) -> Option<&'s DirectPath> {
        let generation = self.published.links_generation();
        let fresh = slot.path.as_ref().is_some_and(|(g, path)| {
            *g == generation && path.as_ref().is_none_or(|p| !p.is_closed())
        });
        if !fresh {
            let conn = self.host.datagram_path(peer, tunnel::DATAGRAM_PROTOCOL);
            slot.path = Some((generation, conn));
        }
        slot.path.as_ref().and_then(|(_, conn)| conn.as_ref())
    }

    /// Sends packets that share one route where it points, or counts them as dropped.
    fn dispatch(
        self: &Arc<Self>,
        snap: &Snapshot,
        route: Route<'_>,
        pkts: impl ExactSizeIterator<Item = PacketBuf>,
    ) -> Needs {
        match route {
            Route::Peer(peer, dir) => self.enqueue(peer, pkts, dir),
            Route::Service => {
                let refused = match &snap.service_tx {
                    Some(tx) => pkts.fold(0u64, |n, pkt| n + u64::from(tx.try_send(pkt).is_err())),
                    None => pkts.len() as u64,
                };
                if refused > 0 {
                    self.stats.global(|g| g.tx_unroutable += refused);
                }
            }
            Route::Broadcast => pkts.for_each(|pkt| self.broadcast(snap, pkt)),
            Route::Unroutable => {
                let n = pkts.len() as u64;
                self.stats.global(|g| g.tx_unroutable += n);
                return Needs::Nothing;
            }
            Route::TooBig => {
                let n = pkts.len() as u64;
                self.stats.global(|g| g.tx_too_big += n);
                return Needs::Nothing;
            }
        }
        Needs::Runtime
    }

    /// Broadcast emulation: a copy to every connected known peer.
    fn broadcast(self: &Arc<Self>, snap: &Snapshot, pkt: PacketBuf) {
        for peer in snap
            .by_id
            .values()
            .filter(|p| self.host.is_connected(&p.id))
        {
            let Some(copy) = self.pool.copy_of(pkt.data()) else {
                peer.counters.add(|s| s.tx_dropped += 1);
                continue;
            };
            self.enqueue(peer, std::iter::once(copy), GatewayDir::None);
        }
    }

    /// Queues packets for `peer`, starting its sender task on first use.
    fn enqueue(
        self: &Arc<Self>,
        peer: &PeerEntry,
        pkts: impl Iterator<Item = PacketBuf>,
        dir: GatewayDir,
    ) {
        let mut slot = peer.sender.lock();
        let dropped = self.push(&mut slot, peer, pkts, dir);
        drop(slot);
        count_dropped(peer, dropped);
    }

    /// `enqueue` with the peer's queue locked; returns how many packets were dropped
    /// (queue full, or the peer removed meanwhile).
    fn push(
        self: &Arc<Self>,
        slot: &mut SlotState,
        peer: &PeerEntry,
        pkts: impl Iterator<Item = PacketBuf>,
        dir: GatewayDir,
    ) -> u64 {
        if slot.closed {
            return pkts.count() as u64;
        }
        let tx = match &mut slot.tx {
            Some(tx) if !tx.is_closed() => tx,
            tx => {
                let (new, rx) = qos::peer_queue(self.cfg.peer_queue);
                let link = sender::HostLink {
                    host: self.host.clone(),
                    peer: peer.id.clone(),
                    datagrams: self.cfg.datagrams,
                };
                let counters = peer.counters.clone();
                crate::spawn(sender::run(link, peer.id.clone(), rx, counters));
                tx.insert(new)
            }
        };
        sender::push(tx, pkts, dir)
    }
}

/// Whether routing a read's packets needed the runtime: a packet queued for a peer's sender
/// task, handed to quinn, or to the service stack. The TUN reader leaves its thread for the
/// runtime when it does (`tun::reader`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Needs {
    /// Sent from the reading thread itself, or dropped.
    Nothing,
    Runtime,
}

/// Completes the partial checksums of packets that will not go out partial.
fn complete_all(pkts: &mut [PacketBuf]) {
    for p in pkts {
        offload::complete_checksum(p.data_mut());
    }
}

fn count_dropped(peer: &PeerEntry, dropped: u64) {
    if dropped > 0 {
        peer.counters.add(|s| s.tx_dropped += dropped);
    }
}

#[cfg(test)]
mod tests;

//! What the packet path needs of the control plane, as one immutable snapshot.
//!
//! The control plane builds a new [`Snapshot`] after each change (peer table, routing,
//! service addresses) and publishes it; the packet path reads the current one without any
//! lock the control plane holds. A reader keeps its own `Arc` and checks one atomic counter
//! per packet; only when it moved does it take the slot's small mutex, held by the publisher
//! just for a pointer swap, to clone the new `Arc`. (Hand-written rather than `arc-swap`: a
//! counter and a mutex cost nothing on the binary, and a reader refreshes once per change.)

use super::pool::PacketBuf;
use super::qos::QueueTx;
use super::stats::{PeerCounters, Stats};
use crate::base::prefix::Prefix;
use crate::mesh::peers::PeerTable;
use crate::p2p::identity::PeerId;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::mpsc;

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

/// A known peer as the packet path sees it.
pub struct PeerEntry {
    pub id: PeerId,
    pub ip: Ipv4Addr,
    pub allow_exit: bool,
    pub allow_lan: bool,
    /// The peer's queue; kept across snapshots while the peer stays known.
    pub sender: Arc<SenderSlot>,
    /// The peer's traffic counters (the same ones in every snapshot).
    pub counters: Arc<PeerCounters>,
}

/// A peer's queue to its sender task, started on the first packet.
#[derive(Default)]
pub struct SenderSlot {
    state: Mutex<SlotState>,
}

#[derive(Default)]
pub struct SlotState {
    pub tx: Option<QueueTx>,
    /// The peer was removed: packets still routed by an old snapshot are dropped.
    pub closed: bool,
    /// The peer's datagram path as last looked up in the host, with the
    /// [`Published::links_generation`] it was looked up at.
    pub path: Option<(usize, Option<crate::p2p::fastpath::DirectPath>)>,
}

impl SenderSlot {
    /// Only the packet path and `close` take it, never while the control plane works.
    pub fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops the queue (its task ends when it drains) and refuses further packets.
    fn close(&self) {
        let mut s = self.lock();
        s.tx = None;
        s.closed = true;
    }
}

/// Peers by mesh address, looked up once per packet routed. Hashed with one multiplication
/// instead of SipHash (~180 instructions per lookup): the keys are our own peers' addresses,
/// which only the control plane inserts, so a destination an attacker picks can make a
/// lookup miss but never lengthen a chain. Not FxHash (rustc-hash, linked by quinn-proto):
/// for the 256 addresses of a /24 its hashes take 102 of the 256 low-byte values, where
/// this one's test asks for more than half.
pub type IpMap<V> = HashMap<Ipv4Addr, V, BuildHasherDefault<IpHasher>>;

/// The hasher of [`IpMap`]: Fibonacci hashing of the address's 32 bits, folded.
#[derive(Default)]
pub struct IpHasher(u64);

impl Hasher for IpHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u32(&mut self, v: u32) {
        self.0 = (self.0 << 32) | u64::from(v);
    }

    fn finish(&self) -> u64 {
        // std hashes an address as its octets read in native order, so on little-endian the
        // last octet (the one that varies) lands in the top byte; a product only carries bits
        // upwards, so fold its upper half down into the low bits the map picks buckets with.
        let h = self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        h ^ (h >> 32)
    }
}

/// Everything routing decisions read, immutable once published.
pub struct Snapshot {
    pub own_ip: Ipv4Addr,
    /// The mesh subnet.
    pub mesh: Prefix,
    pub broadcast: Ipv4Addr,
    pub by_ip: IpMap<Arc<PeerEntry>>,
    pub by_id: HashMap<PeerId, Arc<PeerEntry>>,
    pub routing: Arc<Routing>,
    /// Addresses answered by the service stack.
    pub services: Arc<[Ipv4Addr]>,
    /// The service stack's input queue.
    pub service_tx: Option<mpsc::Sender<PacketBuf>>,
}

impl Snapshot {
    pub fn in_mesh(&self, ip: Ipv4Addr) -> bool {
        self.mesh.contains(ip)
    }

    pub fn peer(&self, id: &PeerId) -> Option<&Arc<PeerEntry>> {
        self.by_id.get(id)
    }

    /// Empty: no peers, no routes (before the peer table is attached).
    fn empty() -> Self {
        let any = Ipv4Addr::UNSPECIFIED;
        Snapshot {
            own_ip: any,
            mesh: Prefix { addr: any, len: 32 },
            broadcast: any,
            by_ip: IpMap::default(),
            by_id: HashMap::new(),
            routing: Arc::default(),
            services: Arc::new([]),
            service_tx: None,
        }
    }
}

/// The parts a snapshot is built from, as the control plane last set them.
struct Parts {
    own_ip: Ipv4Addr,
    mesh: Prefix,
    broadcast: Ipv4Addr,
    peers: Vec<(PeerId, Ipv4Addr, bool, bool)>,
    routing: Arc<Routing>,
    services: Arc<[Ipv4Addr]>,
    service_tx: Option<mpsc::Sender<PacketBuf>>,
    slots: HashMap<PeerId, Arc<SenderSlot>>,
}

/// The published snapshot and the control-plane parts behind it.
pub struct Published {
    generation: AtomicUsize,
    /// Moved by every connection event of the host (connected, identified, disconnected):
    /// cached datagram paths older than it are looked up again.
    links: AtomicUsize,
    slot: Mutex<Arc<Snapshot>>,
    parts: Mutex<Parts>,
    /// Where each peer entry's counters come from.
    stats: Arc<Stats>,
}

impl Default for Published {
    fn default() -> Self {
        Published::new(Arc::default())
    }
}

impl Published {
    /// Nothing published yet; peers' entries will count into `stats`.
    pub fn new(stats: Arc<Stats>) -> Self {
        let empty = Snapshot::empty();
        Published {
            stats,
            generation: AtomicUsize::new(0),
            links: AtomicUsize::new(0),
            parts: Mutex::new(Parts {
                own_ip: empty.own_ip,
                mesh: empty.mesh,
                broadcast: empty.broadcast,
                peers: Vec::new(),
                routing: empty.routing.clone(),
                services: empty.services.clone(),
                service_tx: None,
                slots: HashMap::new(),
            }),
            slot: Mutex::new(Arc::new(empty)),
        }
    }

    /// The current snapshot (one short lock of the slot; loops keep a [`Reader`] instead).
    pub fn load(&self) -> Arc<Snapshot> {
        lock(&self.slot).clone()
    }

    /// A connection to some peer came, went or was identified.
    pub fn links_changed(&self) {
        self.links.fetch_add(1, Ordering::Release);
    }

    pub fn links_generation(&self) -> usize {
        self.links.load(Ordering::Acquire)
    }

    /// Publishes the peer table as it is now (called from the table's change hook).
    pub fn set_peers(&self, t: &PeerTable) {
        let own = t.own_ip();
        let mut parts = lock(&self.parts);
        parts.own_ip = own;
        parts.mesh = Prefix::new(own, t.prefix()).unwrap_or(Prefix { addr: own, len: 32 });
        parts.broadcast = t.broadcast();
        parts.peers = t
            .iter()
            .map(|p| (p.peer_id.clone(), p.ip, p.allow_exit, p.allow_lan))
            .collect();
        self.publish(&mut parts);
    }

    pub fn set_routing(&self, r: Routing) {
        let mut parts = lock(&self.parts);
        parts.routing = Arc::new(r);
        self.publish(&mut parts);
    }

    pub fn routing(&self) -> Arc<Routing> {
        lock(&self.parts).routing.clone()
    }

    /// Packets from the TUN to `addrs` go to the service stack's queue `tx`.
    pub fn set_services(&self, addrs: Vec<Ipv4Addr>, tx: mpsc::Sender<PacketBuf>) {
        let mut parts = lock(&self.parts);
        parts.services = addrs.into();
        parts.service_tx = Some(tx);
        self.publish(&mut parts);
    }

    /// Builds the snapshot from `parts` and swaps it in. Queues of peers no longer known
    /// are closed; those of the others carry over.
    fn publish(&self, parts: &mut Parts) {
        let mut slots = HashMap::with_capacity(parts.peers.len());
        for (id, ..) in &parts.peers {
            let slot = parts.slots.remove(id).unwrap_or_default();
            slots.insert(id.clone(), slot);
        }
        for gone in std::mem::replace(&mut parts.slots, slots).into_values() {
            gone.close();
        }
        let mut by_ip = IpMap::with_capacity_and_hasher(parts.peers.len(), Default::default());
        let mut by_id = HashMap::with_capacity(parts.peers.len());
        for (id, ip, allow_exit, allow_lan) in &parts.peers {
            let Some(sender) = parts.slots.get(id) else {
                continue;
            };
            let e = Arc::new(PeerEntry {
                id: id.clone(),
                ip: *ip,
                allow_exit: *allow_exit,
                allow_lan: *allow_lan,
                sender: sender.clone(),
                counters: self.stats.counters(id),
            });
            by_ip.insert(*ip, e.clone());
            by_id.insert(id.clone(), e);
        }
        let snap = Arc::new(Snapshot {
            own_ip: parts.own_ip,
            mesh: parts.mesh,
            broadcast: parts.broadcast,
            by_ip,
            by_id,
            routing: parts.routing.clone(),
            services: parts.services.clone(),
            service_tx: parts.service_tx.clone(),
        });
        let mut slot = lock(&self.slot);
        *slot = snap;
        // Moved under the slot's lock, so a reader never pairs a new number with an old
        // snapshot.
        self.generation.fetch_add(1, Ordering::Release);
    }
}

/// A reader's cached snapshot: one atomic load per use while nothing changed.
pub struct Reader {
    generation: usize,
    snap: Arc<Snapshot>,
}

impl Reader {
    pub fn new(p: &Published) -> Self {
        let slot = lock(&p.slot);
        Reader {
            generation: p.generation.load(Ordering::Acquire),
            snap: slot.clone(),
        }
    }

    pub fn get(&mut self, p: &Published) -> &Arc<Snapshot> {
        if p.generation.load(Ordering::Acquire) != self.generation {
            let slot = lock(&p.slot);
            self.generation = p.generation.load(Ordering::Acquire);
            self.snap = slot.clone();
        }
        &self.snap
    }
}

/// One peer's entry in the current snapshot, for a loop that serves that peer (a
/// connection's datagrams, a tunnel stream): looked up by ID again only after a new snapshot
/// was published, not per packet.
pub struct PeerView {
    peer: PeerId,
    reader: Reader,
    /// The entry, and the generation of the snapshot it was looked up in.
    entry: Option<Arc<PeerEntry>>,
    at: Option<usize>,
}

impl PeerView {
    pub fn new(p: &Published, peer: PeerId) -> Self {
        PeerView {
            peer,
            reader: Reader::new(p),
            entry: None,
            at: None,
        }
    }

    /// The current snapshot and the peer's entry in it (`None`: not a known peer).
    pub fn get(&mut self, p: &Published) -> (&Snapshot, Option<&PeerEntry>) {
        self.reader.get(p);
        if self.at != Some(self.reader.generation) {
            self.entry = self.reader.snap.peer(&self.peer).cloned();
            self.at = Some(self.reader.generation);
        }
        (&self.reader.snap, self.entry.as_deref())
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    /// Every address of a /16 is found again and no other is; the hashes differ in the
    /// bits the map uses both for its buckets (low) and its tags (top 7).
    #[test]
    fn an_ip_map_finds_each_address_and_spreads_them() {
        let mut m: IpMap<u32> = IpMap::default();
        for i in 0..65_536u32 {
            m.insert(Ipv4Addr::from(0x0a42_0000 | i), i);
        }
        for i in 0..65_536u32 {
            assert_eq!(m.get(&Ipv4Addr::from(0x0a42_0000 | i)), Some(&i));
        }
        assert_eq!(m.get(&Ipv4Addr::new(10, 67, 0, 1)), None);
        let h = BuildHasherDefault::<IpHasher>::default();
        let hashes: Vec<u64> = (0..256u32)
            .map(|i| h.hash_one(Ipv4Addr::from(0x0a42_0000 | i)))
            .collect();
        let low: std::collections::HashSet<u64> = hashes.iter().map(|x| x & 0xff).collect();
        let tags: std::collections::HashSet<u64> = hashes.iter().map(|x| x >> 57).collect();
        assert!(low.len() > 128, "buckets: {}", low.len());
        assert!(tags.len() > 64, "tags: {}", tags.len());
    }
}

//! The fast path between two awl nodes: tunnel packets sealed with keys from a direct QUIC
//! connection's TLS exporter and sent on the same UDP socket, outside QUIC.
//!
//! A QUIC datagram costs a packet three task hops on the way in (endpoint driver, connection
//! driver, datagram reader) and one on the way out, plus QUIC's framing: about 28,000
//! instructions per ping round trip per node, where userspace WireGuard needs 6,000. A fast
//! packet is opened in the socket read itself and handed to the data plane there; it is sealed
//! and sent from the task that read the TUN.
//!
//! - Only between peers that list [`PROTOCOL`] in identify (awl nodes); AWL peers never see
//!   one. Only on direct QUIC connections that negotiated datagrams.
//! - The keys and receiver indexes come from the connection's TLS exporter: authenticated as
//!   the connection is, a fresh pair per connection, one key per direction (QUIC's client
//!   and server side). Packets are handed to the same sink as that connection's QUIC
//!   datagrams, so the data plane applies the same admission (a stranger's are dropped there).
//! - Nothing is ever sent in answer to a fast packet; a forged or replayed one is counted and
//!   dropped. Sessions live exactly as long as their connection: no state for strangers
//!   beyond their (admitted, capped) connections.
//! - ChaCha20-Poly1305, or AES-128-GCM where both ends have AES in hardware and the peer
//!   lists [`AES_PROTOCOL`] ([`aes`]: a third of the cost per byte, keys per epoch). Each
//!   packet's marker names its cipher, so a receiver never has to guess, and a node that
//!   does not list it is never sent one.
//! - No congestion control, as WireGuard: the tunnelled flows have their own. Single packets
//!   go out one by one ([`Tx::send`]); the sender task's batches as [`Run`]s, many packets
//!   of one size sealed into one buffer and sent at once (UDP GSO), waiting while the socket
//!   buffer is full.

pub mod aes;
#[cfg(any(target_arch = "mips", test, fuzzing))]
mod chacha;
mod keys;
mod run;
mod socket;
mod tx;
pub use tx::Tx;
use tx::TxState;
pub mod wire;

pub use keys::{derive, Derived};
pub use run::Run;
pub use socket::{Connect, DirectPath, SendSocket};

use crate::p2p::identity::PeerId;
use quinn::udp::Transmit;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use wire::{Key, Replay};

/// What the data plane does with one connection's datagrams (QUIC's and fast packets): made
/// once per connection for its peer (so it keeps what it looked up about the peer), then
/// given each batch of the datagrams already received, so per-peer work runs once per batch.
pub type DatagramSink = Box<dyn FnMut(Datagrams<'_>) + Send>;

/// Datagrams handed to a [`DatagramSink`].
pub enum Datagrams<'a> {
    /// QUIC datagrams read from the connection; the sink drains the batch.
    Batch(&'a mut Vec<bytes::Bytes>),
    /// One opened fast packet, borrowed from the socket's receive buffer: the sink may
    /// rewrite it in place and write it out without a copy or an allocation. `alone`: the
    /// read brought no other fast packet (a ping's, not a burst's, which the TUN writer
    /// joins). `partial`: its TCP/UDP checksum is the sender kernel's partial one
    /// ([`wire::PARTIAL`]), for the receiver's kernel to complete.
    One {
        pkt: &'a mut [u8],
        alone: bool,
        partial: bool,
    },
}
/// Makes a connection's [`DatagramSink`].
pub type DatagramHandler = Arc<dyn Fn(&PeerId) -> DatagramSink + Send + Sync>;

/// Listed in identify by nodes that take fast packets.
pub const PROTOCOL: &str = "/awl-rs/fastpath/1.0.0";
/// Listed in identify beside [`PROTOCOL`] by nodes that take AES-128-GCM fast packets.
pub const AES_PROTOCOL: &str = "/awl-rs/fastpath/aes-128-gcm/1.0.0";
/// Listed beside [`PROTOCOL`] by nodes that take fast packets whose TCP/UDP checksum is
/// partial ([`wire::PARTIAL`]): the sender skips summing what its kernel left partial, and
/// the receiver's kernel completes it only where the packet leaves the node (or its NIC).
pub const PARTIAL_PROTOCOL: &str = "/awl-rs/fastpath/partial-checksum/1.0.0";
/// Sessions sharing one receiver index (a 32-bit value from the exporter: a second one is
/// chance, one in four billion); opened by trial. Beyond this a connection has no fast path.
const PER_INDEX: usize = 4;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Fast packets in and out, for the host's counters.
#[derive(Default)]
pub struct Counters {
    pub received: AtomicUsize,
    pub sent: AtomicUsize,
    /// Fast packets dropped: no session for the index, failed authentication, a replay.
    pub refused: AtomicUsize,
}

/// Every fast session on one UDP socket. Shared by the socket (which hands it the packets it
/// reads) and the host (which installs a session per direct connection).
#[derive(Default)]
pub struct Table {
    aes: AesOn,
    partial: PartialOn,
    /// Receiving halves sorted by receiver index (a binary search per packet; no hash map
    /// instantiated for this one table: bytes on a router's flash).
    rx: Mutex<Vec<(u32, Arc<Rx>)>>,
    handler: OnceLock<DatagramHandler>,
    /// Called after each read that brought more than one packet (set once): what the sinks
    /// held back to join (a burst's segments) goes out then.
    batch_end: OnceLock<Box<dyn Fn() + Send + Sync>>,
    socket: OnceLock<Arc<dyn SendSocket>>,
    /// Where each session's sender gets a socket connected to its peer (set once, with the
    /// fast packets' thread that reads them).
    pub(crate) connect: OnceLock<Arc<dyn Connect>>,
    pub counters: Counters,
}

/// Whether this node's new sessions take AES-128-GCM: AES in hardware, unless
/// `AWL_FASTPATH_AES=0` (benchmarks compare the two ciphers on one build with it).
struct AesOn(AtomicBool);

impl Default for AesOn {
    fn default() -> Self {
        AesOn(AtomicBool::new(
            aes::in_hardware() && !off("AWL_FASTPATH_AES"),
        ))
    }
}

/// Whether this node lists [`PARTIAL_PROTOCOL`]: unless `AWL_FASTPATH_PARTIAL=0`
/// (benchmarks compare both on one build with it).
struct PartialOn(AtomicBool);

impl Default for PartialOn {
    fn default() -> Self {
        PartialOn(AtomicBool::new(!off("AWL_FASTPATH_PARTIAL")))
    }
}

/// The environment variable `name` is "0".
fn off(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| v == "0")
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fastpath::Table")
    }
}

/// The receiving half of one connection's session.
struct Rx {
    peer: PeerId,
    conn_id: usize,
    key: Key,
    state: Mutex<RxState>,
    count: Arc<Count>,
}

/// Fast packets of one connection, both ways (the liveness watch adds them to QUIC's; it
/// takes a wrap of these 32-bit counters on MIPS, which has no 64-bit atomics, in stride).
#[derive(Default)]
struct Count {
    sent: AtomicUsize,
    received: AtomicUsize,
}

#[derive(Default)]
struct RxState {
    replay: Replay,
    sink: Option<DatagramSink>,
    /// Where this node takes AES packets.
    aes: Option<aes::RxKeys>,
}

/// A connection's installed session; removes its receiving half when dropped.
pub struct Session {
    pub tx: Arc<Tx>,
    rx: Arc<Rx>,
    table: Arc<Table>,
}

impl Drop for Session {
    fn drop(&mut self) {
        lock(&self.table.rx).retain(|(_, r)| !Arc::ptr_eq(r, &self.rx));
    }
}

impl Table {
    /// The socket fast packets are sent from (set once, when the endpoint is bound).
    pub fn set_socket(&self, socket: Arc<dyn SendSocket>) {
        let _ = self.socket.set(socket);
    }

    /// Where senders get sockets connected to their peers (set once).
    pub fn set_connect(&self, connect: Arc<dyn Connect>) {
        let _ = self.connect.set(connect);
    }

    /// Whether sessions installed from now on take AES-128-GCM (listed in identify as
    /// [`AES_PROTOCOL`]).
    pub fn takes_aes(&self) -> bool {
        self.aes.0.load(Ordering::Relaxed)
    }

    /// Whether this node takes fast packets with partial checksums (lists
    /// [`PARTIAL_PROTOCOL`]).
    pub fn takes_partial(&self) -> bool {
        self.partial.0.load(Ordering::Relaxed)
    }

    /// Stops listing [`PARTIAL_PROTOCOL`] (or lists it again): an older node, in tests.
    #[cfg(test)]
    pub fn set_partial(&self, on: bool) {
        self.partial.0.store(on, Ordering::Relaxed);
    }

    /// Turns AES off (or back on, where the hardware has it) for sessions installed from
    /// now on: a node without it, in tests.
    #[cfg(test)]
    pub fn set_aes(&self, on: bool) {
        self.aes
            .0
            .store(on && aes::in_hardware(), Ordering::Relaxed);
    }

    /// Where opened packets go: the handler of QUIC datagrams (set once).
    pub fn set_handler(&self, handler: DatagramHandler) {
        let _ = self.handler.set(handler);
    }

    /// What runs after each read of more than one packet (set once).
    pub fn set_batch_end(&self, f: Box<dyn Fn() + Send + Sync>) {
        let _ = self.batch_end.set(f);
    }

    /// A read of more than one packet has been delivered.
    pub fn end_batch(&self) {
        if let Some(f) = self.batch_end.get() {
            f();
        }
    }

    /// Derives and installs the session of a direct QUIC connection to `peer`. `None`: no
    /// exporter (handshake not done), or the receiver index is full.
    pub fn install(self: &Arc<Self>, conn: &quinn::Connection, peer: PeerId) -> Option<Session> {
        self.install_derived(conn, peer, derive(conn)?)
    }

    /// `install` with the keys and indexes given (tests choose colliding indexes with it).
    pub(crate) fn install_derived(
        self: &Arc<Self>,
        conn: &quinn::Connection,
        peer: PeerId,
        keys: Derived,
    ) -> Option<Session> {
        let socket = self.socket.get()?.clone();
        let Derived {
            tx_key,
            tx_index,
            rx_key,
            rx_index,
            tx_aes,
            rx_aes,
        } = keys;
        let with_aes = self.takes_aes();
        let count = Arc::new(Count::default());
        let rx = Arc::new(Rx {
            peer,
            conn_id: conn.stable_id(),
            key: Key::new(&rx_key)?,
            state: Mutex::new(RxState {
                aes: with_aes.then(|| aes::RxKeys::new(&rx_aes)).flatten(),
                ..RxState::default()
            }),
            count: count.clone(),
        });
        {
            let mut table = lock(&self.rx);
            let at = table.partition_point(|(i, _)| *i < rx_index);
            if same_index(&table[at..], rx_index).len() >= PER_INDEX {
                return None;
            }
            table.insert(at, (rx_index, rx.clone()));
        }
        let tx = Arc::new(Tx {
            conn: conn.clone(),
            socket,
            key: Key::new(&tx_key)?,
            index: tx_index,
            state: Mutex::new(TxState {
                next: 0,
                single: Run::default(),
                path: None,
                aes: with_aes.then(|| aes::TxKeys::new(&tx_aes)).flatten(),
                direct: None,
            }),
            table: self.clone(),
            count,
            peer_aes: AtomicBool::new(false),
            peer_partial: AtomicBool::new(false),
        });
        Some(Session {
            tx,
            rx,
            table: self.clone(),
        })
    }

    /// One packet read from the socket that starts with [`wire::MARKER`]: opened in place and
    /// handed to its connection's sink, or counted as refused. `alone`: the read brought no
    /// other packet.
    pub fn receive(&self, pkt: &mut [u8], alone: bool) {
        if !self.open_and_deliver(pkt, alone) {
            self.counters.refused.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn open_and_deliver(&self, pkt: &mut [u8], alone: bool) -> bool {
        let Some(wire::Header {
            index,
            counter,
            aes,
            partial,
        }) = wire::header(pkt)
        else {
            return false;
        };
        // Held while the packet is delivered: nothing the sink does comes back here, and
        // no allocation or reference count is spent on finding the session.
        let table = lock(&self.rx);
        let at = table.partition_point(|(i, _)| *i < index);
        let candidates = same_index(&table[at..], index);
        let last = candidates.len().saturating_sub(1);
        for (i, (_, rx)) in candidates.iter().enumerate() {
            let mut st = lock(&rx.state);
            if !st.replay.fresh(counter) {
                continue;
            }
            // A failed open leaves the buffer scrambled: only the last candidate gets it.
            let mut copy;
            let buf: &mut [u8] = if i == last {
                &mut *pkt
            } else {
                copy = pkt.to_vec();
                &mut copy
            };
            let st = &mut *st;
            let opened = match aes {
                false => wire::open(&rx.key, counter, buf),
                true => st.aes.as_mut().and_then(|k| k.open(counter, buf)),
            };
            let Some(payload) = opened else {
                continue;
            };
            st.replay.mark(counter);
            rx.count.received.fetch_add(1, Ordering::Relaxed);
            self.counters.received.fetch_add(1, Ordering::Relaxed);
            if st.sink.is_none() {
                st.sink = self.handler.get().map(|h| h(&rx.peer));
            }
            if let Some(sink) = st.sink.as_mut() {
                sink(Datagrams::One {
                    pkt: payload,
                    alone,
                    partial,
                });
            }
            return true;
        }
        false
    }

    /// Fast packets sent and received on the connection `conn_id`, for its liveness watch.
    pub fn counts(&self, conn_id: usize) -> (u64, u64) {
        let rx = lock(&self.rx);
        let found = rx.iter().map(|(_, r)| r).find(|r| r.conn_id == conn_id);
        found.map_or((0, 0), |r| {
            (
                r.count.sent.load(Ordering::Relaxed) as u64,
                r.count.received.load(Ordering::Relaxed) as u64,
            )
        })
    }
}

/// The leading entries of `sorted` (from the first with `index` on) that have `index`.
fn same_index(sorted: &[(u32, Arc<Rx>)], index: u32) -> &[(u32, Arc<Rx>)] {
    let n = sorted.iter().take_while(|(i, _)| *i == index).count();
    &sorted[..n]
}

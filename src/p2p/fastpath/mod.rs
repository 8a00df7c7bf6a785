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
mod keys;
mod run;
mod socket;
pub mod wire;

pub use keys::{derive, Derived};
pub use run::Run;
use socket::Direct;
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
    /// read brought no other packet (a ping's, not a burst's, which the TUN writer joins).
    One { pkt: &'a mut [u8], alone: bool },
}
/// Makes a connection's [`DatagramSink`].
pub type DatagramHandler = Arc<dyn Fn(&PeerId) -> DatagramSink + Send + Sync>;

/// Listed in identify by nodes that take fast packets.
pub const PROTOCOL: &str = "/awl-rs/fastpath/1.0.0";
/// Listed in identify beside [`PROTOCOL`] by nodes that take AES-128-GCM fast packets.
pub const AES_PROTOCOL: &str = "/awl-rs/fastpath/aes-128-gcm/1.0.0";
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
        let off = || std::env::var_os("AWL_FASTPATH_AES").is_some_and(|v| v == "0");
        AesOn(AtomicBool::new(aes::in_hardware() && !off()))
    }
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

/// The sending half: seals payloads for the peer's receiver index.
pub struct Tx {
    conn: quinn::Connection,
    socket: Arc<dyn SendSocket>,
    key: Key,
    index: u32,
    state: Mutex<TxState>,
    table: Arc<Table>,
    count: Arc<Count>,
    /// The peer listed [`AES_PROTOCOL`] (set by [`Tx::peer_takes_aes`]).
    peer_aes: AtomicBool,
}

struct TxState {
    /// The next counter (64 bits: it is the nonce and must never wrap).
    next: u64,
    /// Where packets sent without waiting (`send`, `send_many`) are sealed.
    single: Run,
    /// The connection's path as quinn last said, re-read every `PATH_REFRESH` packets.
    path: Option<PathInfo>,
    /// Where this node seals with AES (used once the peer takes it).
    aes: Option<aes::TxKeys>,
    /// The socket connected to the peer, for the path's address it was opened for.
    direct: Option<Direct>,
}

/// What a send needs from the QUIC connection. Each of quinn's getters locks the
/// connection's state and reads a line of it that is cold at a ping's pace (five per packet
/// in all), so they are read together and kept for a few packets.
struct PathInfo {
    remote: SocketAddr,
    local_ip: Option<IpAddr>,
    max_size: Option<usize>,
}

/// Packets sent on a cached path before quinn is asked again: after a migration or a
/// change of the path MTU at most this many go the old way (a fast packet to an old address
/// is lost, as a datagram would be in flight).
const PATH_REFRESH: u64 = 16;

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

impl Tx {
    /// Seals `payload` and sends it to the connection's current remote address, without
    /// waiting: an error if the socket refused it (full) or the counter ran out. Whether the
    /// connection is still open is the caller's check (the data plane makes it per packet
    /// for both paths); a packet sealed after the close is refused by the peer, whose
    /// session ended with it.
    pub fn send(&self, payload: &[u8]) -> io::Result<()> {
        // A run of one; refused (the socket buffer full), it is dropped, as a datagram would be.
        match self.send_many(std::iter::once(payload)) {
            1 => Ok(()),
            _ => Err(io::Error::other("fast packet not sent")),
        }
    }

    /// Seals and sends `payloads` in runs (one GSO send each) without waiting; how many
    /// went out, from the first. It stops at the first send the socket refuses (full): that
    /// run's packets and the rest did not go, for the caller to queue.
    pub fn send_many<'a>(&self, payloads: impl Iterator<Item = &'a [u8]>) -> usize {
        let mut st = lock(&self.state);
        let st = &mut *st;
        let mut run = std::mem::take(&mut st.single);
        let mut sent = 0;
        let mut failed = false;
        for p in payloads {
            if !run.takes(p.len()) {
                let n = run.count;
                if self.send_locked(st, &mut run).is_err() {
                    failed = true;
                    break;
                }
                sent += n;
            }
            if self.seal_locked(st, &mut run, p).is_err() {
                failed = true;
                break;
            }
        }
        if !failed {
            let n = run.count;
            if self.send_locked(st, &mut run).is_ok() {
                sent += n;
            }
        }
        run.clear();
        st.single = run;
        sent
    }

    /// Seals `payload` into `run` (the caller checked [`Run::takes`]).
    pub fn seal_into(&self, run: &mut Run, payload: &[u8]) -> io::Result<()> {
        self.seal_locked(&mut lock(&self.state), run, payload)
    }

    fn seal_locked(&self, st: &mut TxState, run: &mut Run, payload: &[u8]) -> io::Result<()> {
        let counter = st.next;
        if counter >= wire::COUNTER_LIMIT {
            return Err(io::Error::other("fast path counter exhausted"));
        }
        let key = match st.aes.as_mut() {
            Some(k) if self.peer_aes.load(Ordering::Relaxed) => k
                .key(counter)
                .ok_or_else(|| io::Error::other("no AES key"))?,
            _ => &self.key,
        };
        st.next += 1;
        if !wire::seal_append(key, self.index, counter, payload, &mut run.buf) {
            return Err(io::Error::other("seal failed"));
        }
        if run.count == 0 {
            run.segment = payload.len() + wire::OVERHEAD;
            run.max = self.socket.max_segments().clamp(1, 64);
        }
        run.count += 1;
        Ok(())
    }

    /// Sends a run in one send (GSO), without waiting, and empties it. `WouldBlock` (the
    /// socket buffer is full) keeps the run to send again after [`Tx::writable`]; any other
    /// error drops it.
    pub fn send_run(&self, run: &mut Run) -> io::Result<()> {
        self.send_locked(&mut lock(&self.state), run)
    }

    fn send_locked(&self, st: &mut TxState, run: &mut Run) -> io::Result<()> {
        if run.count == 0 {
            return Ok(());
        }
        // quinn is asked again as often as for single packets: when a counter in the run
        // is a multiple of PATH_REFRESH.
        let start = st.next.saturating_sub(run.count as u64);
        let refresh = start.div_ceil(PATH_REFRESH) * PATH_REFRESH < st.next;
        let (p, socket) = self.route(st, refresh);
        let sent = socket.unwrap_or(&self.socket).try_send(&Transmit {
            destination: p.remote,
            ecn: None,
            contents: &run.buf,
            segment_size: (run.count > 1).then_some(run.segment),
            src_ip: p.local_ip,
        });
        if let Err(e) = sent {
            // The path may have changed under us (an address gone): ask quinn next time.
            st.path = None;
            if e.kind() != io::ErrorKind::WouldBlock {
                run.clear();
            }
            return Err(e);
        }
        self.table
            .counters
            .sent
            .fetch_add(run.count, Ordering::Relaxed);
        self.count.sent.fetch_add(run.count, Ordering::Relaxed);
        run.clear();
        Ok(())
    }

    /// Opens the socket connected to the peer for the path as quinn has it now, as the
    /// first send would otherwise do (`Direct::for_path`: once per path, refused at the cap).
    pub fn open_direct(&self) {
        self.route(&mut lock(&self.state), true);
    }

    /// The path as quinn last said, and the socket connected to its remote address.
    fn route<'s>(
        &self,
        st: &'s mut TxState,
        refresh: bool,
    ) -> (&'s PathInfo, Option<&'s Arc<dyn SendSocket>>) {
        let p = self.path(&mut st.path, refresh);
        let connect = self.table.connect.get();
        (
            p,
            Direct::for_path(&mut st.direct, connect, p.remote, p.local_ip),
        )
    }

    /// Whether the peer takes AES-128-GCM (it lists [`AES_PROTOCOL`]); used only where this
    /// node has it too. Told once per batch of the peer's queue: written only when it
    /// changes, so the line the sealing thread reads stays shared rather than bouncing.
    pub fn peer_takes_aes(&self, takes: bool) {
        if self.peer_aes.load(Ordering::Relaxed) != takes {
            self.peer_aes.store(takes, Ordering::Relaxed);
        }
    }

    /// Whether packets are sealed with AES-128-GCM now (tests).
    #[cfg(test)]
    pub fn seals_with_aes(&self) -> bool {
        self.peer_aes.load(Ordering::Relaxed) && lock(&self.state).aes.is_some()
    }

    /// Whether a socket connected to the peer is open (tests).
    #[cfg(test)]
    pub fn has_direct(&self) -> bool {
        lock(&self.state)
            .direct
            .as_ref()
            .is_some_and(|d| d.socket.is_some())
    }

    /// Sets the next packet's counter (tests: across an AES epoch).
    #[cfg(test)]
    pub fn set_next_counter(&self, next: u64) {
        lock(&self.state).next = next;
    }

    /// Resolves when the socket has room again after a send found it full.
    pub async fn writable(&self) -> io::Result<()> {
        let direct = lock(&self.state)
            .direct
            .as_ref()
            .and_then(|d| d.socket.clone());
        direct
            .unwrap_or_else(|| self.socket.clone())
            .writable()
            .await
    }

    /// The largest payload: what a QUIC datagram on the same path may carry (its overhead
    /// is at least ours), as of the last packets.
    pub fn max_size(&self) -> Option<usize> {
        self.path(&mut lock(&self.state).path, false).max_size
    }

    fn path<'a>(&self, cached: &'a mut Option<PathInfo>, refresh: bool) -> &'a PathInfo {
        if refresh {
            *cached = None;
        }
        cached.get_or_insert_with(|| PathInfo {
            remote: self.conn.remote_address(),
            local_ip: self.conn.local_ip(),
            max_size: self.conn.max_datagram_size(),
        })
    }
}

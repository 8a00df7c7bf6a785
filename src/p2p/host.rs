//! The libp2p host: one QUIC endpoint (one UDP socket) that listens and dials, the table of
//! live connections per peer, and the dispatch of inbound streams to protocol handlers.
//!
//! A peer's connection is either direct (QUIC) or relayed (a circuit through a relay, secured
//! with TLS and multiplexed with yamux, see `secure`). New streams prefer a direct connection.
//!
//! Every stream starts with multistream-select. Identify (and push), ping and the relay stop
//! protocol are served here; other protocols (`register`) get their negotiated streams through
//! a bounded channel, so a slow handler makes new streams fail instead of queueing without
//! limit.

use super::admission::{self, Decision, Inbound};
use super::identify::{self, IdentifyInfo};
use super::observed::ObservedAddrs;
use super::relay::{self, HopMessage, HopType, Status, StopMessage};
use super::stream::{split_muxed, RecvStream, SendStream};
use super::{multistream, muxer, ping, secure, tls};
use crate::p2p::identity::{Keypair, PeerId};
use crate::p2p::multiaddr::Multiaddr;
use crate::sys::ifaddrs;
use futures_util::FutureExt;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::{broadcast, mpsc, Notify};

/// Time allowed for a QUIC + TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for multistream-select on one stream.
const NEGOTIATION_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `identify()` waits for the exchange that runs on every new connection.
const IDENTIFY_WAIT: Duration = Duration::from_secs(10);
/// A relayed connection is probed (ping over the circuit) this often; two misses close it.
const CIRCUIT_PROBE: Duration = Duration::from_secs(3);
const CIRCUIT_PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a relayed connection stays open once a direct one exists (streams on it finish).
const RELAY_GRACE: Duration = Duration::from_secs(10);
/// QUIC DATAGRAM frames (RFC 9221) a connection buffers before the oldest is dropped. Every
/// datagram is read at once (a stranger's too, then dropped), so this only has to absorb one
/// burst of the connection driver; at 128 KiB a loaded router lost 13 % of them there.
const DATAGRAM_RECV_BUFFER: usize = 1024 * 1024;
/// Datagrams waiting for the congestion window: small, so queueing (and its drop policy) stays
/// in the data plane's per-peer queues instead of a deep buffer here.
const DATAGRAM_SEND_BUFFER: usize = 64 * 1024;
/// Path MTU discovery may grow QUIC packets up to a full IPv4 Ethernet payload, so a
/// 1420-byte tunnel packet fits one datagram (quinn stops at 1452 by default). Its binary
/// search stops when a step is under `MTU_STEP`: with quinn's 20 it ends at 1455, too small.
const MTU_UPPER_BOUND: u16 = 1472;
const MTU_STEP: u16 = 8;

/// What the data plane does with a peer's datagrams: a batch of those already received, so
/// per-peer lookups and counters run once per batch, not once per packet. The handler drains it.
pub type DatagramHandler = Arc<dyn Fn(&PeerId, &mut Vec<bytes::Bytes>) + Send + Sync>;
/// Datagrams handed over at once, at most.
const DATAGRAM_BATCH: usize = 64;

/// Observed addresses of ours kept (from identify), newest first.

#[derive(Debug)]
pub enum Error {
    Io(io::Error),
    /// The handshake failed (unreachable, refused, bad certificate, wrong PeerId…).
    Connect(String),
    Timeout(&'static str),
    NotConnected(PeerId),
    UnsupportedAddress(Multiaddr),
    Protocol(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "{e}"),
            Error::Connect(e) => write!(f, "connection failed: {e}"),
            Error::Timeout(what) => write!(f, "timed out: {what}"),
            Error::NotConnected(p) => write!(f, "not connected to {p}"),
            Error::UnsupportedAddress(a) => {
                write!(f, "cannot dial {a}: only /ip4|ip6/…/udp/N/quic-v1")
            }
            Error::Protocol(e) => write!(f, "protocol error: {e}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

/// `awl/<goos>-<goarch>/<version>`, the form AWL shows in its peer list.
pub fn default_agent_version() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "mips" if cfg!(target_endian = "little") => "mipsle",
        other => other,
    };
    format!(
        "awl/{}-{}/v{}",
        std::env::consts::OS,
        arch,
        env!("CARGO_PKG_VERSION")
    )
}

#[derive(Debug, Clone)]
pub struct HostConfig {
    pub listen: SocketAddr,
    pub agent_version: String,
    pub protocol_version: String,
    /// Live connections accepted from others before new ones are refused.
    pub max_connections: usize,
    /// Concurrent streams a peer may open on one connection (QUIC flow control enforces it).
    pub max_streams: u32,
    /// Relayed connections (in and out) before new ones are refused.
    pub max_relayed: usize,
    /// Inbound streams a peer may open per second (token bucket, burst of twice that);
    /// more are reset before any negotiation.
    pub stream_rate: u32,
    pub keep_alive: Duration,
    pub idle_timeout: Duration,
}

impl HostConfig {
    pub fn new(listen: SocketAddr) -> Self {
        HostConfig {
            listen,
            agent_version: default_agent_version(),
            protocol_version: "ipfs/0.1.0".into(),
            max_connections: 256,
            max_streams: 256,
            max_relayed: 32,
            stream_rate: 100,
            // go-libp2p's QUIC keep-alive is 15 s; idle must be longer than that.
            keep_alive: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(30),
        }
    }
}

/// A negotiated stream.
pub struct Stream {
    pub peer: PeerId,
    pub protocol: String,
    pub send: SendStream,
    pub recv: RecvStream,
}

#[derive(Debug, Clone)]
pub enum HostEvent {
    Connected {
        peer: PeerId,
        remote: Multiaddr,
        outbound: bool,
        relayed: bool,
    },
    Disconnected {
        peer: PeerId,
    },
    Identified {
        peer: PeerId,
    },
}

#[derive(Clone)]
enum Link {
    Quic(quinn::Connection),
    Relayed(muxer::Handle),
}

impl Link {
    async fn open(&self) -> Result<(SendStream, RecvStream), Error> {
        match self {
            Link::Quic(c) => {
                let (s, r) = c
                    .open_bi()
                    .await
                    .map_err(|e| Error::Connect(e.to_string()))?;
                Ok((SendStream::Quic(s), RecvStream::Quic(r)))
            }
            Link::Relayed(h) => Ok(split_muxed(
                h.open().await.map_err(|e| Error::Connect(e.to_string()))?,
            )),
        }
    }

    fn close(&self, why: &'static [u8]) {
        match self {
            Link::Quic(c) => c.close(0u32.into(), why),
            Link::Relayed(h) => h.close(),
        }
    }

    async fn closed(&self) -> String {
        match self {
            Link::Quic(c) => c.closed().await.to_string(),
            Link::Relayed(h) => {
                h.closed().await;
                "relayed connection ended".into()
            }
        }
    }
}

#[derive(Clone)]
struct Conn {
    id: u64,
    link: Link,
    remote: Multiaddr,
    /// Opened by the peer (counts against the admission limits).
    inbound: bool,
}

impl Conn {
    fn relayed(&self) -> bool {
        matches!(self.link, Link::Relayed(_))
    }
}

/// The connection new streams to a peer use: the newest direct one, else the newest relayed.
fn best(conns: &[Conn]) -> Option<&Conn> {
    conns
        .iter()
        .rev()
        .find(|c| !c.relayed())
        .or_else(|| conns.last())
}

#[derive(Default)]
struct State {
    conns: HashMap<PeerId, Vec<Conn>>,
    identified: HashMap<PeerId, IdentifyInfo>,
    handlers: HashMap<String, mpsc::Sender<Stream>>,
    /// Our addresses as peers see them (identify), confirmed by trusted or several peers.
    observed: ObservedAddrs,
    /// Relays that accepted our reservation: the only ones whose circuits (STOP) we accept.
    reserved_relays: HashSet<PeerId>,
    /// TLS handshakes in progress per source address.
    handshaking: HashMap<IpAddr, usize>,
    /// Our `/p2p-circuit` addresses through relays holding a reservation for us.
    circuit_addrs: Vec<Multiaddr>,
    /// Local addresses never advertised (the mesh address of our own TUN).
    hidden: Vec<IpAddr>,
    next_id: u64,
}

struct Inner {
    keypair: Keypair,
    peer_id: PeerId,
    cert: tls::Certificate,
    config: HostConfig,
    endpoint: quinn::Endpoint,
    /// The endpoint's UDP socket, shared for hole-punching datagrams.
    punch_socket: std::net::UdpSocket,
    transport: Arc<quinn::TransportConfig>,
    state: Mutex<State>,
    identified: Notify,
    events: broadcast::Sender<HostEvent>,
    counters: Counters,
    stream_limit: Mutex<crate::base::ratelimit::RateLimiter<PeerId>>,
    /// The protocol name advertised for datagrams and who gets them; set once.
    datagrams: std::sync::OnceLock<(String, DatagramHandler)>,
    /// Who our friends are, and whose word on our address counts (set by the node).
    trust: std::sync::RwLock<Trust>,
}

/// A yes/no question about a peer, answered by the layer above (the peer table).
pub type Policy = Arc<dyn Fn(&PeerId) -> bool + Send + Sync>;

/// What the host needs to know about peers to treat strangers as strangers: `friend` for
/// connection slots, hole punching and relayed connections; `trusted_observer` (bootstrap
/// nodes we chose) besides friends for our observed address. Until set: nobody.
#[derive(Clone)]
pub struct Trust {
    pub friend: Policy,
    pub trusted_observer: Policy,
}

impl Default for Trust {
    fn default() -> Self {
        Trust {
            friend: Arc::new(|_| false),
            trusted_observer: Arc::new(|_| false),
        }
    }
}

/// Totals for metrics.
#[derive(Default)]
pub struct Counters {
    pub handshake_failures: std::sync::atomic::AtomicUsize,
    pub refused_connections: std::sync::atomic::AtomicUsize,
    /// Stranger connections closed to make room for a friend.
    pub evicted_connections: std::sync::atomic::AtomicUsize,
    /// Circuits (STOP) refused: not from a relay we reserved with, or no slot for a stranger.
    pub refused_circuits: std::sync::atomic::AtomicUsize,
    pub busy_streams: std::sync::atomic::AtomicUsize,
    pub rate_limited_streams: std::sync::atomic::AtomicUsize,
}

fn bump(c: &std::sync::atomic::AtomicUsize) {
    c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// Cheap to clone; all clones drive the same endpoint.
#[derive(Clone)]
pub struct Host(Arc<Inner>);

impl Host {
    /// Binds the UDP socket and starts accepting connections. Needs a tokio runtime.
    pub async fn start(keypair: Keypair, config: HostConfig) -> Result<Host, Error> {
        let cert = tls::generate(&keypair)
            .map_err(|_| Error::Protocol("certificate generation failed".into()))?;
        let mut transport = quinn::TransportConfig::default();
        transport
            .max_concurrent_bidi_streams(config.max_streams.into())
            .max_concurrent_uni_streams(0u32.into())
            .datagram_receive_buffer_size(Some(DATAGRAM_RECV_BUFFER))
            .datagram_send_buffer_size(DATAGRAM_SEND_BUFFER)
            .mtu_discovery_config(Some({
                let mut m = quinn::MtuDiscoveryConfig::default();
                m.upper_bound(MTU_UPPER_BOUND).minimum_change(MTU_STEP);
                m
            }))
            .keep_alive_interval(Some(config.keep_alive))
            .max_idle_timeout(Some(
                config
                    .idle_timeout
                    .try_into()
                    .map_err(|_| Error::Protocol("idle timeout out of range".into()))?,
            ));
        let transport = Arc::new(transport);
        let tls_server = tls::server_config(&cert).map_err(|e| Error::Protocol(e.to_string()))?;
        let quic_server = quinn::crypto::rustls::QuicServerConfig::try_from(tls_server)
            .map_err(|e| Error::Protocol(e.to_string()))?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(quic_server));
        server.transport_config(transport.clone());
        // Stateless-reset tokens from a key derived from our identity: after a crash and restart
        // we can still reset peers' stale connections at once, instead of letting them wait
        // for the idle timeout.
        let reset_key = ring::hmac::Key::new(
            ring::hmac::HMAC_SHA256,
            &keypair.derive_secret("quic-stateless-reset"),
        );
        let mut endpoint_cfg = quinn::EndpointConfig::new(Arc::new(reset_key));
        // Connection IDs must validate across restarts too, or the packets that should trigger
        // the reset are dropped as invalid first.
        let cid_secret = keypair.derive_secret("quic-cid");
        let cid_key = u64::from_le_bytes([
            cid_secret[0],
            cid_secret[1],
            cid_secret[2],
            cid_secret[3],
            cid_secret[4],
            cid_secret[5],
            cid_secret[6],
            cid_secret[7],
        ]);
        endpoint_cfg.cid_generator(move || {
            Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
        });
        let socket = std::net::UdpSocket::bind(config.listen)?;
        mark_socket(&socket);
        let punch_socket = socket.try_clone()?;
        let runtime =
            quinn::default_runtime().ok_or_else(|| io::Error::other("no async runtime"))?;
        let socket = super::udp::wrap(socket)?;
        let endpoint =
            quinn::Endpoint::new_with_abstract_socket(endpoint_cfg, Some(server), socket, runtime)?;
        let (events, _) = broadcast::channel(64);
        let peer_id = keypair.peer_id();
        let stream_limit = crate::base::ratelimit::RateLimiter::new(
            f64::from(config.stream_rate),
            f64::from(config.stream_rate) * 2.0,
            config.max_connections,
        );
        let host = Host(Arc::new(Inner {
            keypair,
            peer_id,
            cert,
            config,
            endpoint,
            punch_socket,
            transport,
            state: Mutex::new(State::default()),
            identified: Notify::new(),
            events,
            counters: Counters::default(),
            stream_limit: Mutex::new(stream_limit),
            datagrams: std::sync::OnceLock::new(),
            trust: std::sync::RwLock::new(Trust::default()),
        }));
        let h = host.clone();
        crate::spawn(async move { h.accept_loop().await });
        log::info!(
            "listening on {}",
            host.listen_addrs()
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(host)
    }

    pub fn peer_id(&self) -> PeerId {
        self.0.peer_id.clone()
    }

    pub fn keypair(&self) -> &Keypair {
        &self.0.keypair
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.endpoint.local_addr()
    }

    /// The addresses we can be dialled at (interface addresses if bound to a wildcard).
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        let Ok(local) = self.0.endpoint.local_addr() else {
            return Vec::new();
        };
        if !local.ip().is_unspecified() {
            return vec![Multiaddr::quic(local)];
        }
        let hidden = self.state().hidden.clone();
        ifaddrs::local_addrs()
            .into_iter()
            .filter(|ip| ip.is_ipv4() == local.is_ipv4() || local.is_ipv6())
            .filter(|ip| !ip.is_loopback() && !hidden.contains(ip))
            .map(|ip| Multiaddr::quic(SocketAddr::new(ip, local.port())))
            .collect()
    }

    /// Keeps a local address out of what we advertise (e.g. the TUN's mesh address: peers
    /// would otherwise try to reach us through the mesh itself).
    pub fn hide_addr(&self, ip: IpAddr) {
        let mut st = self.state();
        if !st.hidden.contains(&ip) {
            st.hidden.push(ip);
        }
    }

    pub fn counters(&self) -> &Counters {
        &self.0.counters
    }

    /// Open connections: (direct, relayed).
    pub fn connection_counts(&self) -> (usize, usize) {
        let st = self.state();
        let all: Vec<&Conn> = st.conns.values().flatten().collect();
        let relayed = all.iter().filter(|c| c.relayed()).count();
        (all.len() - relayed, relayed)
    }

    pub fn events(&self) -> broadcast::Receiver<HostEvent> {
        self.0.events.subscribe()
    }

    /// What we advertise in identify: listen addresses and relay circuit addresses.
    pub fn advertised_addrs(&self) -> Vec<Multiaddr> {
        let mut v = self.listen_addrs();
        v.extend(self.state().circuit_addrs.iter().cloned());
        v
    }

    /// Our addresses as other peers observed them (identify), newest first; only those a
    /// trusted peer or several networks confirmed.
    pub fn observed_addrs(&self) -> Vec<Multiaddr> {
        self.state().observed.confirmed().to_vec()
    }

    /// Tells the host who our friends and trusted observers are.
    pub fn set_trust(&self, trust: Trust) {
        *self.0.trust.write().unwrap_or_else(|e| e.into_inner()) = trust;
    }

    fn trust(&self) -> Trust {
        self.0
            .trust
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn is_friend(&self, peer: &PeerId) -> bool {
        (self.trust().friend)(peer)
    }

    /// Sets our relay circuit addresses and tells connected peers (identify push).
    pub fn set_circuit_addrs(&self, addrs: Vec<Multiaddr>) {
        {
            let mut st = self.state();
            if st.circuit_addrs == addrs {
                return;
            }
            st.circuit_addrs = addrs;
        }
        for peer in self.connected_peers() {
            let host = self.clone();
            crate::spawn(async move {
                if let Err(e) = host.push_identify(&peer).await {
                    log::debug!("identify push to {}: {e}", peer.short());
                }
            });
        }
    }

    /// Protocols we answer, as listed in identify.
    pub fn protocols(&self) -> Vec<String> {
        let mut p = vec![
            identify::PROTOCOL.to_string(),
            identify::PUSH_PROTOCOL.to_string(),
            ping::PROTOCOL.to_string(),
            relay::STOP_PROTOCOL.to_string(),
        ];
        p.extend(self.state().handlers.keys().cloned());
        if let Some((proto, _)) = self.0.datagrams.get() {
            p.push(proto.clone());
        }
        p
    }

    /// Accepts QUIC datagrams: `handler` gets every datagram a peer sends on a direct
    /// connection, and `protocol` is listed in identify so peers know we take them. Set once;
    /// a second call is ignored. Without it datagrams are read and dropped.
    pub fn set_datagram_handler(&self, protocol: &str, handler: DatagramHandler) {
        let _ = self.0.datagrams.set((protocol.to_string(), handler));
    }

    /// The direct QUIC connection to `peer` if the peer listed `protocol` in identify and the
    /// connection negotiated datagrams; `None` means: use a stream.
    pub fn datagram_path(&self, peer: &PeerId, protocol: &str) -> Option<quinn::Connection> {
        let st = self.state();
        let takes = st
            .identified
            .get(peer)
            .is_some_and(|i| i.protocols.iter().any(|p| p == protocol));
        if !takes {
            return None;
        }
        match st.conns.get(peer).and_then(|c| best(c)).map(|c| &c.link) {
            Some(Link::Quic(c)) if c.max_datagram_size().is_some() => Some(c.clone()),
            _ => None,
        }
    }

    /// Inbound streams negotiated for `protocol` arrive on the returned channel (at most
    /// `capacity` waiting; more are reset).
    pub fn register(&self, protocol: &str, capacity: usize) -> mpsc::Receiver<Stream> {
        let (tx, rx) = mpsc::channel(capacity);
        self.state().handlers.insert(protocol.to_string(), tx);
        rx
    }

    pub fn is_connected(&self, peer: &PeerId) -> bool {
        self.state().conns.get(peer).is_some_and(|c| !c.is_empty())
    }

    pub fn connected_peers(&self) -> Vec<PeerId> {
        self.state()
            .conns
            .iter()
            .filter(|(_, c)| !c.is_empty())
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// The remote address of the connection new streams to `peer` use.
    pub fn remote_addr(&self, peer: &PeerId) -> Option<Multiaddr> {
        self.state()
            .conns
            .get(peer)
            .and_then(|c| best(c))
            .map(|c| c.remote.clone())
    }

    /// Whether new streams to `peer` go through a relay (circuit limits apply).
    pub fn is_relayed(&self, peer: &PeerId) -> bool {
        self.state()
            .conns
            .get(peer)
            .and_then(|c| best(c))
            .is_some_and(Conn::relayed)
    }

    /// Whether we have a direct (not relayed) connection to `peer`.
    pub fn has_direct(&self, peer: &PeerId) -> bool {
        self.state()
            .conns
            .get(peer)
            .is_some_and(|c| c.iter().any(|c| !c.relayed()))
    }

    fn relayed_stranger_count(&self) -> usize {
        let peers: Vec<PeerId> = self
            .state()
            .conns
            .iter()
            .flat_map(|(p, cs)| cs.iter().filter(|c| c.relayed()).map(move |_| p.clone()))
            .collect();
        let friend = self.trust().friend;
        peers.iter().filter(|p| !friend(p)).count()
    }

    fn relayed_count(&self) -> usize {
        self.state()
            .conns
            .values()
            .flatten()
            .filter(|c| c.relayed())
            .count()
    }

    /// Sends one datagram of random bytes from our QUIC socket to `to`: it opens our NAT's
    /// mapping towards a peer that is about to dial us (DCUtR over QUIC).
    pub fn punch(&self, to: SocketAddr) {
        let mut junk = [0u8; 64];
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut junk);
        // A QUIC long-header bit pattern would make the peer's endpoint try to parse it; a
        // short header with an unknown connection ID is dropped quietly.
        junk[0] = (junk[0] & 0x3f) | 0x40;
        if let Err(e) = self.0.punch_socket.send_to(&junk, to) {
            log::debug!("punch to {to}: {e}");
        }
    }

    /// Asks `relay` (connected) for a reservation: it will then accept circuits to us.
    pub async fn reserve(
        &self,
        relay: &PeerId,
    ) -> Result<(relay::Reservation, Option<relay::Limit>), Error> {
        let mut s = self.open_stream(relay, &[relay::HOP_PROTOCOL]).await?;
        let reply = tokio::time::timeout(NEGOTIATION_TIMEOUT, async {
            relay::write_msg(&mut s.send, &HopMessage::new(HopType::Reserve).encode()).await?;
            relay::read_hop(&mut s.recv).await
        })
        .await
        .map_err(|_| Error::Timeout("relay reservation"))??;
        s.send.finish().await;
        match (reply.kind, reply.status, reply.reservation) {
            (HopType::Status, Some(Status::Ok), Some(r)) => {
                self.state().reserved_relays.insert(relay.clone());
                Ok((r, reply.limit))
            }
            (_, status, _) => Err(Error::Protocol(format!("reservation refused: {status:?}"))),
        }
    }

    /// Connects to `target` through a relay (`relay_addr` ends in `/p2p/<relay>`), dialling
    /// the relay first if needed. The circuit is secured end to end with TLS.
    pub async fn dial_relayed(
        &self,
        relay_addr: &Multiaddr,
        target: &PeerId,
    ) -> Result<PeerId, Error> {
        let relay_id = relay_addr
            .peer_id()
            .ok_or_else(|| Error::UnsupportedAddress(relay_addr.clone()))?;
        if *target == self.0.peer_id || *target == relay_id {
            return Err(Error::Connect("bad relay target".into()));
        }
        if self.relayed_count() >= self.0.config.max_relayed {
            return Err(Error::Connect("too many relayed connections".into()));
        }
        if !self.is_connected(&relay_id) {
            self.dial(relay_addr).await?;
        }
        let mut s = self.open_stream(&relay_id, &[relay::HOP_PROTOCOL]).await?;
        let mut connect = HopMessage::new(HopType::Connect);
        connect.peer = Some(target.clone());
        let reply = tokio::time::timeout(NEGOTIATION_TIMEOUT, async {
            relay::write_msg(&mut s.send, &connect.encode()).await?;
            relay::read_hop(&mut s.recv).await
        })
        .await
        .map_err(|_| Error::Timeout("relay connect"))??;
        if reply.kind != HopType::Status || reply.status != Some(Status::Ok) {
            return Err(Error::Connect(format!(
                "relay {} refused the circuit: {:?}",
                relay_id.short(),
                reply.status
            )));
        }
        let io = tokio::io::join(s.recv, s.send);
        let up = secure::upgrade(io, true, &self.0.cert, Some(target.clone()))
            .await
            .map_err(Error::Connect)?;
        let remote = relay::circuit_addr(relay_addr, &relay_id);
        self.add_relayed(up, remote, true);
        Ok(target.clone())
    }

    /// The relay opened a circuit to us (stop protocol): accept it and secure it.
    async fn accept_stop(
        &self,
        relay_id: PeerId,
        mut send: SendStream,
        mut recv: RecvStream,
    ) -> Result<(), Error> {
        let msg = tokio::time::timeout(NEGOTIATION_TIMEOUT, relay::read_stop(&mut recv))
            .await
            .map_err(|_| Error::Timeout("relay stop"))??;
        let Some(from) = msg.peer.filter(|_| msg.kind == relay::StopType::Connect) else {
            let reply = StopMessage::status(Status::UnexpectedMessage).encode();
            relay::write_msg(&mut send, &reply).await?;
            return Err(Error::Protocol("stop: not a CONNECT".into()));
        };
        // Only a relay we asked for a reservation may open circuits to us: anyone else
        // could fill our relayed slots with fake circuits.
        if !self.state().reserved_relays.contains(&relay_id) {
            bump(&self.0.counters.refused_circuits);
            let reply = StopMessage::status(Status::PermissionDenied).encode();
            relay::write_msg(&mut send, &reply).await?;
            return Err(Error::Connect(format!(
                "circuit from {}, a relay we hold no reservation with",
                relay_id.short()
            )));
        }
        // Strangers share half of the relayed slots; friends may use all of them. `from` is
        // checked against the TLS identity below.
        let (cap, count) = if self.is_friend(&from) {
            (self.0.config.max_relayed, self.relayed_count())
        } else {
            (self.0.config.max_relayed / 2, self.relayed_stranger_count())
        };
        if count >= cap {
            bump(&self.0.counters.refused_circuits);
            let reply = StopMessage::status(Status::ResourceLimitExceeded).encode();
            relay::write_msg(&mut send, &reply).await?;
            return Err(Error::Connect("too many relayed connections".into()));
        }
        relay::write_msg(&mut send, &StopMessage::status(Status::Ok).encode()).await?;
        let io = tokio::io::join(recv, send);
        let up = secure::upgrade(io, false, &self.0.cert, None)
            .await
            .map_err(Error::Connect)?;
        if up.peer != from {
            up.handle.close();
            return Err(Error::Connect(format!(
                "circuit announced {} but {} answered",
                from.short(),
                up.peer.short()
            )));
        }
        let relay_addr = self
            .state()
            .conns
            .get(&relay_id)
            .and_then(|c| best(c))
            .map(|c| c.remote.clone())
            .unwrap_or_default();
        let remote = relay::circuit_addr(&relay_addr, &relay_id);
        self.add_relayed(up, remote, false);
        Ok(())
    }

    /// What `peer` told us in identify, if the exchange completed.
    pub fn identify_info(&self, peer: &PeerId) -> Option<IdentifyInfo> {
        self.state().identified.get(peer).cloned()
    }

    /// Dials a `/ip*/…/udp/N/quic-v1[/p2p/<id>]` address. With a `/p2p/` part the remote must
    /// prove that identity or the handshake is aborted.
    pub async fn dial(&self, addr: &Multiaddr) -> Result<PeerId, Error> {
        let sock = addr
            .quic_socket_addr()
            .ok_or_else(|| Error::UnsupportedAddress(addr.clone()))?;
        let expected = addr.peer_id();
        if let Some(p) = &expected {
            // A relayed connection does not count: this may be the upgrade to direct.
            if self.has_direct(p) {
                return Ok(p.clone());
            }
            if *p == self.0.peer_id {
                return Err(Error::Connect("refusing to dial ourselves".into()));
            }
        }
        let tls_client = tls::client_config(&self.0.cert, expected.clone())
            .map_err(|e| Error::Protocol(e.to_string()))?;
        let quic_client = quinn::crypto::rustls::QuicClientConfig::try_from(tls_client)
            .map_err(|e| Error::Protocol(e.to_string()))?;
        let mut client = quinn::ClientConfig::new(Arc::new(quic_client));
        client.transport_config(self.0.transport.clone());
        // The server name is not sent (SNI off) and not checked by the libp2p verifier.
        let connecting = self
            .0
            .endpoint
            .connect_with(client, sock, "libp2p")
            .map_err(|e| Error::Connect(e.to_string()))?;
        let connection = match tokio::time::timeout(HANDSHAKE_TIMEOUT, connecting).await {
            Err(_) => return Err(Error::Timeout("QUIC handshake")),
            Ok(Err(e)) => return Err(Error::Connect(e.to_string())),
            Ok(Ok(c)) => c,
        };
        let peer =
            peer_of(&connection).ok_or_else(|| Error::Connect("no verified certificate".into()))?;
        if expected.as_ref().is_some_and(|e| *e != peer) {
            // The verifier already refuses this; keep the check in case of a verifier bug.
            connection.close(0u32.into(), b"wrong peer id");
            return Err(Error::Connect("wrong peer id".into()));
        }
        self.add_connection(peer.clone(), connection, true);
        Ok(peer)
    }

    /// Dials all `addrs` at once; true as soon as one succeeds (the others are dropped).
    pub async fn dial_first(&self, addrs: &[Multiaddr]) -> bool {
        let mut set = tokio::task::JoinSet::new();
        for a in addrs {
            let (host, a) = (self.clone(), a.clone());
            set.spawn(async move { host.dial(&a).await.is_ok() });
        }
        while let Some(r) = set.join_next().await {
            if matches!(r, Ok(true)) {
                return true;
            }
        }
        false
    }

    /// Identify information of a connected peer, waiting for the exchange to finish.
    pub async fn identify(&self, peer: &PeerId) -> Result<IdentifyInfo, Error> {
        let wait = async {
            loop {
                let notified = self.0.identified.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if let Some(info) = self.identify_info(peer) {
                    return Ok(info);
                }
                if !self.is_connected(peer) {
                    return Err(Error::NotConnected(peer.clone()));
                }
                notified.await;
            }
        };
        tokio::time::timeout(IDENTIFY_WAIT, wait)
            .await
            .map_err(|_| Error::Timeout("identify"))?
    }

    /// Round-trip time to a connected peer over `/ipfs/ping/1.0.0`.
    pub async fn ping(&self, peer: &PeerId) -> Result<Duration, Error> {
        let mut s = self.open_stream(peer, &[ping::PROTOCOL]).await?;
        let rtt = tokio::time::timeout(NEGOTIATION_TIMEOUT, ping::ping(&mut s.recv, &mut s.send))
            .await
            .map_err(|_| Error::Timeout("ping"))??;
        s.send.finish().await;
        Ok(rtt)
    }

    /// Opens a stream to `peer` (on a direct connection if there is one) and negotiates one
    /// of `protocols`.
    pub async fn open_stream(&self, peer: &PeerId, protocols: &[&str]) -> Result<Stream, Error> {
        let conn = self
            .state()
            .conns
            .get(peer)
            .and_then(|c| best(c).cloned())
            .ok_or_else(|| Error::NotConnected(peer.clone()))?;
        let (mut send, mut recv) = conn.link.open().await?;
        let protocol = tokio::time::timeout(
            NEGOTIATION_TIMEOUT,
            multistream::dialer_select(&mut recv, &mut send, protocols),
        )
        .await
        .map_err(|_| Error::Timeout("protocol negotiation"))??;
        Ok(Stream {
            peer: peer.clone(),
            protocol,
            send,
            recv,
        })
    }

    /// Closes every connection to `peer`.
    pub fn disconnect(&self, peer: &PeerId) {
        let conns: Vec<Conn> = self.state().conns.get(peer).cloned().unwrap_or_default();
        for c in conns {
            c.link.close(b"disconnect");
        }
    }

    /// Closes every connection and the endpoint.
    pub fn shutdown(&self) {
        self.0.endpoint.close(0u32.into(), b"shutdown");
    }

    /// Closes every connection and waits (briefly) until the peers were told.
    pub async fn close(&self) {
        self.shutdown();
        let _ = tokio::time::timeout(Duration::from_secs(1), self.0.endpoint.wait_idle()).await;
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock would be a bug elsewhere; the map itself stays valid.
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn accept_loop(self) {
        while let Some(incoming) = self.0.endpoint.accept().await {
            // Before the handshake we know only the source address: bound the handshakes in
            // progress, in total and per address. Who gets a slot is decided after it.
            let ip = incoming.remote_address().ip();
            if !self.start_handshake(ip) {
                log::debug!("refusing connection from {}: too many handshakes", ip);
                bump(&self.0.counters.refused_connections);
                incoming.refuse();
                continue;
            }
            let host = self.clone();
            crate::spawn(async move {
                let remote = incoming.remote_address();
                let accepted = match incoming.accept() {
                    Ok(connecting) => tokio::time::timeout(HANDSHAKE_TIMEOUT, connecting).await,
                    Err(e) => {
                        host.end_handshake(ip);
                        return log::debug!("incoming from {remote}: {e}");
                    }
                };
                host.end_handshake(ip);
                match accepted {
                    Ok(Ok(conn)) => match peer_of(&conn) {
                        Some(peer) => host.admit_inbound(peer, conn),
                        None => conn.close(0u32.into(), b"no certificate"),
                    },
                    Ok(Err(e)) => {
                        bump(&host.0.counters.handshake_failures);
                        log::debug!("handshake with {remote} failed: {e}")
                    }
                    Err(_) => {
                        bump(&host.0.counters.handshake_failures);
                        log::debug!("handshake with {remote} timed out")
                    }
                }
            });
        }
    }

    fn start_handshake(&self, ip: IpAddr) -> bool {
        let mut st = self.state();
        let total: usize = st.handshaking.values().sum();
        let here = st.handshaking.get(&ip).copied().unwrap_or(0);
        if total >= admission::MAX_HANDSHAKES || here >= admission::HANDSHAKES_PER_ADDRESS {
            return false;
        }
        *st.handshaking.entry(ip).or_default() += 1;
        true
    }

    fn end_handshake(&self, ip: IpAddr) {
        let mut st = self.state();
        if let Some(n) = st.handshaking.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                st.handshaking.remove(&ip);
            }
        }
    }

    /// A handshaken inbound connection: kept if `admission` gives it a slot.
    fn admit_inbound(&self, peer: PeerId, conn: quinn::Connection) {
        let ip = conn.remote_address().ip();
        // Gathered under the state lock, judged outside it: the trust policy takes the peer
        // table's lock, which is never taken inside ours.
        let held: Vec<(PeerId, u64, Option<IpAddr>)> = {
            let st = self.state();
            let mut v: Vec<_> = st
                .conns
                .iter()
                .flat_map(|(p, cs)| {
                    cs.iter().filter(|c| c.inbound).map(move |c| {
                        (p.clone(), c.id, c.remote.quic_socket_addr().map(|s| s.ip()))
                    })
                })
                .collect();
            v.sort_by_key(|(_, id, _)| *id);
            v
        };
        let friend = self.trust().friend;
        let held: Vec<Inbound> = held
            .into_iter()
            .map(|(p, conn_id, ip)| Inbound {
                friend: friend(&p),
                peer: p,
                conn_id,
                ip,
            })
            .collect();
        let is_friend = friend(&peer);
        match admission::decide(
            &held,
            &peer,
            Some(ip),
            is_friend,
            self.0.config.max_connections,
        ) {
            Decision::Admit => self.add_connection(peer, conn, false),
            Decision::AdmitEvicting(old, id) => {
                log::info!(
                    "closing a connection of unknown peer {} to make room for {}",
                    old.short(),
                    peer.short()
                );
                bump(&self.0.counters.evicted_connections);
                self.close_conn(&old, id, b"slot needed for a known peer");
                self.add_connection(peer, conn, false);
            }
            Decision::Refuse(why) => {
                log::debug!("refusing {} from {ip}: {why}", peer.short());
                bump(&self.0.counters.refused_connections);
                conn.close(0u32.into(), b"busy");
            }
        }
    }

    fn close_conn(&self, peer: &PeerId, id: u64, why: &'static [u8]) {
        let link = self
            .state()
            .conns
            .get(peer)
            .and_then(|cs| cs.iter().find(|c| c.id == id))
            .map(|c| c.link.clone());
        if let Some(l) = link {
            l.close(why);
        }
    }

    fn add_connection(&self, peer: PeerId, connection: quinn::Connection, outbound: bool) {
        let remote = Multiaddr::quic(canonical(connection.remote_address()));
        let observed = Some(connection.remote_address());
        let link = Link::Quic(connection.clone());
        let id = self.insert_conn(&peer, link.clone(), remote.clone(), !outbound);
        let host = self.clone();
        let p = peer.clone();
        let datagrams = connection.clone();
        crate::spawn(async move {
            while let Ok((send, recv)) = connection.accept_bi().await {
                host.spawn_serve(
                    p.clone(),
                    SendStream::Quic(send),
                    RecvStream::Quic(recv),
                    observed,
                );
            }
        });
        let host = self.clone();
        let p = peer.clone();
        crate::spawn(async move {
            let mut batch = Vec::with_capacity(DATAGRAM_BATCH);
            while let Ok(d) = datagrams.read_datagram().await {
                batch.push(d);
                // What else is already buffered, without waiting for more.
                while batch.len() < DATAGRAM_BATCH {
                    match datagrams.read_datagram().now_or_never() {
                        Some(Ok(d)) => batch.push(d),
                        _ => break,
                    }
                }
                if let Some((_, handler)) = host.0.datagrams.get() {
                    handler(&p, &mut batch);
                }
                batch.clear();
            }
        });
        let host = self.clone();
        let watched = link.clone();
        let p = peer.clone();
        crate::spawn(async move { host.watch_path(p, watched).await });
        self.connection_added(peer.clone(), id, link, remote, outbound, false);
        // A direct connection supersedes relayed ones: new streams use it at once; the
        // circuits close after a grace period so streams on them can finish.
        let relayed: Vec<Conn> = self
            .state()
            .conns
            .get(&peer)
            .map(|c| c.iter().filter(|c| c.relayed()).cloned().collect())
            .unwrap_or_default();
        if !relayed.is_empty() {
            crate::spawn(async move {
                tokio::time::sleep(RELAY_GRACE).await;
                for c in relayed {
                    c.link.close(b"direct connection established");
                }
            });
        }
    }

    fn add_relayed(&self, up: secure::Upgraded, remote: Multiaddr, outbound: bool) {
        let secure::Upgraded {
            peer,
            handle,
            mut inbound,
        } = up;
        let link = Link::Relayed(handle);
        let id = self.insert_conn(&peer, link.clone(), remote.clone(), !outbound);
        let host = self.clone();
        let p = peer.clone();
        crate::spawn(async move {
            while let Some(s) = inbound.recv().await {
                let (send, recv) = split_muxed(s);
                host.spawn_serve(p.clone(), send, recv, None);
            }
        });
        // A relay that dies silently leaves the circuit looking open until the QUIC idle
        // timeout to the relay (30 s); probing the circuit itself notices within ~10 s.
        let probe = link.clone();
        let host = self.clone();
        let relay_id = relay::parse_circuit(&remote).map(|(_, r)| r);
        crate::spawn(async move {
            let mut misses = 0;
            loop {
                // After a miss, check again soon.
                let wait = if misses > 0 {
                    Duration::from_secs(1)
                } else {
                    CIRCUIT_PROBE
                };
                tokio::time::sleep(wait).await;
                if let Link::Relayed(h) = &probe {
                    if h.is_closed() {
                        return;
                    }
                }
                let alive = tokio::time::timeout(CIRCUIT_PROBE_TIMEOUT, async {
                    let (mut send, mut recv) = probe.open().await?;
                    multistream::dialer_select(&mut recv, &mut send, &[ping::PROTOCOL]).await?;
                    ping::ping(&mut recv, &mut send).await?;
                    send.finish().await;
                    Ok::<(), Error>(())
                })
                .await;
                misses = if matches!(alive, Ok(Ok(()))) {
                    0
                } else {
                    misses + 1
                };
                if misses >= 2 {
                    log::debug!("relayed connection not answering; closing it");
                    // Likely the relay itself is gone: if it does not answer either, drop our
                    // connection to it too, so the redial does not try it first.
                    if let Some(r) = &relay_id {
                        let ok = tokio::time::timeout(CIRCUIT_PROBE_TIMEOUT, host.ping(r)).await;
                        if !matches!(ok, Ok(Ok(_))) {
                            log::info!("relay {} not answering; dropping it", r.short());
                            host.disconnect(r);
                        }
                    }
                    probe.close(b"circuit dead");
                    return;
                }
            }
        });
        self.connection_added(peer, id, link, remote, outbound, true);
    }

    /// Closes a direct connection whose path died (we send, nothing comes back, a ping on it
    /// fails): the disconnect makes the node redial at once instead of after the idle timeout.
    async fn watch_path(&self, peer: PeerId, link: Link) {
        use super::liveness::{Liveness, PROBE_TIMEOUT, TICK};
        let Link::Quic(conn) = &link else { return };
        let counters = |c: &quinn::Connection| {
            let s = c.stats();
            (s.udp_tx.datagrams, s.udp_rx.datagrams)
        };
        let (tx, rx) = counters(conn);
        let mut live = Liveness::new(std::time::Instant::now(), tx, rx);
        loop {
            tokio::time::sleep(TICK).await;
            if conn.close_reason().is_some() {
                return;
            }
            let (tx, rx) = counters(conn);
            if !live.observe(std::time::Instant::now(), tx, rx) {
                continue;
            }
            let answered = tokio::time::timeout(PROBE_TIMEOUT, async {
                let (mut send, mut recv) = link.open().await?;
                multistream::dialer_select(&mut recv, &mut send, &[ping::PROTOCOL]).await?;
                ping::ping(&mut recv, &mut send).await?;
                send.finish().await;
                Ok::<(), Error>(())
            })
            .await;
            if matches!(answered, Ok(Ok(()))) {
                live.heard(std::time::Instant::now());
                continue;
            }
            log::info!(
                "path to {} is dead (sending, nothing back, ping unanswered): closing it",
                peer.short()
            );
            link.close(b"path dead");
            return;
        }
    }

    fn insert_conn(&self, peer: &PeerId, link: Link, remote: Multiaddr, inbound: bool) -> u64 {
        let mut st = self.state();
        st.next_id += 1;
        let id = st.next_id;
        st.conns.entry(peer.clone()).or_default().push(Conn {
            id,
            link,
            remote,
            inbound,
        });
        id
    }

    /// Announces a new connection, starts identify on it and watches for its end.
    fn connection_added(
        &self,
        peer: PeerId,
        id: u64,
        link: Link,
        remote: Multiaddr,
        outbound: bool,
        relayed: bool,
    ) {
        log::debug!(
            "connected to {} at {remote} ({}{})",
            peer.short(),
            if outbound { "out" } else { "in" },
            if relayed { ", relayed" } else { "" }
        );
        let _ = self.0.events.send(HostEvent::Connected {
            peer: peer.clone(),
            remote,
            outbound,
            relayed,
        });

        let host = self.clone();
        let p = peer.clone();
        crate::spawn(async move {
            if let Err(e) = host.request_identify(&p).await {
                log::debug!("identify {} failed: {e}", p.short());
            }
        });

        let host = self.clone();
        crate::spawn(async move {
            let reason = link.closed().await;
            log::debug!("connection to {} closed: {reason}", peer.short());
            let gone = {
                let mut st = host.state();
                let now_empty = match st.conns.get_mut(&peer) {
                    Some(list) => {
                        list.retain(|c| c.id != id);
                        list.is_empty()
                    }
                    None => false,
                };
                if now_empty {
                    st.conns.remove(&peer);
                    st.identified.remove(&peer);
                    // A reservation lives as long as the connection to its relay.
                    st.reserved_relays.remove(&peer);
                }
                now_empty
            };
            if gone {
                let _ = host.0.events.send(HostEvent::Disconnected { peer });
                host.0.identified.notify_waiters();
            }
        });
    }

    async fn request_identify(&self, peer: &PeerId) -> Result<(), Error> {
        let relayed = self.is_relayed(peer);
        let observer = self
            .remote_addr(peer)
            .and_then(|a| a.quic_socket_addr())
            .map(|s| s.ip());
        let mut s = self.open_stream(peer, &[identify::PROTOCOL]).await?;
        let body = tokio::time::timeout(
            NEGOTIATION_TIMEOUT,
            identify::read_framed(&mut s.recv, identify::MAX_MESSAGE),
        )
        .await
        .map_err(|_| Error::Timeout("identify"))??;
        let info = IdentifyInfo::decode(&body).map_err(|e| Error::Protocol(e.to_string()))?;
        if info
            .public_key
            .as_ref()
            .is_some_and(|k| k.to_peer_id() != *peer)
        {
            return Err(Error::Protocol(
                "identify carries another peer's key".into(),
            ));
        }
        log::debug!("identified {}: {}", peer.short(), info.agent_version);
        let trust = self.trust();
        let trusted = (trust.friend)(peer) || (trust.trusted_observer)(peer);
        {
            let mut st = self.state();
            // What a peer saw over a circuit is the relay's view, not our address.
            if let Some(obs) = info
                .observed_addr
                .clone()
                .filter(|a| !relayed && !a.is_relayed())
            {
                st.observed.report(obs, observer, trusted);
            }
            st.identified.insert(peer.clone(), info);
        }
        self.0.identified.notify_waiters();
        let _ = self
            .0
            .events
            .send(HostEvent::Identified { peer: peer.clone() });
        Ok(())
    }

    async fn push_identify(&self, peer: &PeerId) -> Result<(), Error> {
        let mut s = self.open_stream(peer, &[identify::PUSH_PROTOCOL]).await?;
        let mut info = self.our_identify(None);
        info.public_key = None;
        let msg = identify::frame(&info.encode());
        tokio::time::timeout(NEGOTIATION_TIMEOUT, s.send.write_all(&msg))
            .await
            .map_err(|_| Error::Timeout("identify push"))??;
        s.send.finish().await;
        Ok(())
    }

    fn our_identify(&self, observed: Option<SocketAddr>) -> IdentifyInfo {
        IdentifyInfo {
            public_key: Some(self.0.keypair.public()),
            protocol_version: self.0.config.protocol_version.clone(),
            agent_version: self.0.config.agent_version.clone(),
            listen_addrs: self.advertised_addrs(),
            protocols: self.protocols(),
            observed_addr: observed.map(|o| Multiaddr::quic(canonical(o))),
        }
    }

    fn spawn_serve(
        &self,
        peer: PeerId,
        mut send: SendStream,
        mut recv: RecvStream,
        observed: Option<SocketAddr>,
    ) {
        let allowed = self
            .0
            .stream_limit
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .allow(&peer, std::time::Instant::now());
        if !allowed {
            bump(&self.0.counters.rate_limited_streams);
            send.reset();
            recv.stop();
            return;
        }
        let host = self.clone();
        crate::spawn(async move {
            if let Err(e) = host.serve_stream(peer.clone(), send, recv, observed).await {
                log::debug!("inbound stream from {}: {e}", peer.short());
            }
        });
    }

    async fn serve_stream(
        &self,
        peer: PeerId,
        mut send: SendStream,
        mut recv: RecvStream,
        observed: Option<SocketAddr>,
    ) -> Result<(), Error> {
        let supported = self.protocols();
        let refs: Vec<&str> = supported.iter().map(String::as_str).collect();
        let protocol = tokio::time::timeout(
            NEGOTIATION_TIMEOUT,
            multistream::listener_select(&mut recv, &mut send, &refs),
        )
        .await
        .map_err(|_| Error::Timeout("protocol negotiation"))??;
        match protocol.as_str() {
            identify::PROTOCOL => {
                let msg = identify::frame(&self.our_identify(observed).encode());
                send.write_all(&msg).await?;
                send.finish().await;
            }
            identify::PUSH_PROTOCOL => {
                let body = tokio::time::timeout(
                    NEGOTIATION_TIMEOUT,
                    identify::read_framed(&mut recv, identify::MAX_MESSAGE),
                )
                .await
                .map_err(|_| Error::Timeout("identify push"))??;
                let update =
                    IdentifyInfo::decode(&body).map_err(|e| Error::Protocol(e.to_string()))?;
                let mut st = self.state();
                let entry = st.identified.entry(peer.clone()).or_default();
                entry.merge_push(update);
                drop(st);
                self.0.identified.notify_waiters();
                let _ = self.0.events.send(HostEvent::Identified { peer });
            }
            ping::PROTOCOL => {
                ping::serve(&mut recv, &mut send).await?;
                send.finish().await;
            }
            relay::STOP_PROTOCOL => self.accept_stop(peer, send, recv).await?,
            other => {
                let tx = self.state().handlers.get(other).cloned();
                let Some(tx) = tx else {
                    return Err(Error::Protocol(format!("no handler for {other}")));
                };
                let stream = Stream {
                    peer,
                    protocol,
                    send,
                    recv,
                };
                if let Err(mpsc::error::TrySendError::Full(mut s)) = tx.try_send(stream) {
                    bump(&self.0.counters.busy_streams);
                    s.send.reset();
                    return Err(Error::Protocol("handler busy".into()));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
impl Host {
    /// A host on 127.0.0.1 with a fresh identity, for tests.
    pub(crate) async fn loopback() -> Host {
        Host::start(
            Keypair::generate(),
            HostConfig::new(SocketAddr::from(([127, 0, 0, 1], 0))),
        )
        .await
        .expect("loopback host")
    }
}

/// Marks our QUIC socket as AWL does (`SO_MARK` 0x61776c), so policy routing for an exit node
/// keeps our own traffic on the underlay. Needs CAP_NET_ADMIN; without it nothing is marked.
fn mark_socket(socket: &std::net::UdpSocket) {
    use std::os::fd::AsRawFd;
    if let Err(e) = crate::sys::sockmark::set(socket.as_raw_fd()) {
        log::debug!("SO_MARK not set: {e}");
    }
}

/// IPv4-mapped IPv6 addresses (dual-stack sockets) shown as IPv4.
fn canonical(a: SocketAddr) -> SocketAddr {
    match a.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), a.port()),
            None => a,
        },
        IpAddr::V4(_) => a,
    }
}

fn peer_of(conn: &quinn::Connection) -> Option<PeerId> {
    let identity = conn.peer_identity()?;
    let chain = identity.downcast_ref::<Vec<rustls::pki_types::CertificateDer<'static>>>()?;
    tls::peer_id_of(chain)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn host() -> Host {
        Host::loopback().await
    }

    #[tokio::test]
    async fn two_hosts_connect_identify_and_ping() {
        let a = host().await;
        let b = host().await;
        let addr = b.listen_addrs()[0].clone().with_p2p(&b.peer_id());
        assert_eq!(a.dial(&addr).await.unwrap(), b.peer_id());
        let info = a.identify(&b.peer_id()).await.unwrap();
        assert!(
            info.agent_version.starts_with("awl/"),
            "{}",
            info.agent_version
        );
        assert!(info.protocols.iter().any(|p| p == ping::PROTOCOL));
        assert_eq!(info.listen_addrs, b.listen_addrs());
        assert_eq!(info.public_key.unwrap().to_peer_id(), b.peer_id());
        let back = b.identify(&a.peer_id()).await.unwrap();
        // A tells B the address it sees B at.
        assert_eq!(
            back.observed_addr.unwrap(),
            a.remote_addr(&b.peer_id()).unwrap()
        );
        assert!(a.ping(&b.peer_id()).await.unwrap() < Duration::from_secs(5));
        assert!(b.ping(&a.peer_id()).await.is_ok());
    }

    #[tokio::test]
    async fn strangers_share_the_slots_and_a_friend_always_gets_in() {
        let mut cfg = HostConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)));
        cfg.max_connections = 8;
        let server = Host::start(Keypair::generate(), cfg).await.unwrap();
        let friend = host().await;
        let fid = friend.peer_id();
        server.set_trust(Trust {
            friend: Arc::new(move |p| *p == fid),
            trusted_observer: Arc::new(|_| false),
        });
        let addr = server.listen_addrs()[0].clone().with_p2p(&server.peer_id());
        let mut strangers = Vec::new();
        for _ in 0..10 {
            let h = host().await;
            let _ = h.dial(&addr).await;
            strangers.push(h);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Before: all 8 slots went to strangers and the friend was refused.
        assert_eq!(
            server.connected_peers().len(),
            admission::stranger_cap(8),
            "strangers hold at most their share"
        );
        assert_eq!(friend.dial(&addr).await.unwrap(), server.peer_id());
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(server.is_connected(&friend.peer_id()));
    }

    #[tokio::test]
    async fn circuits_only_from_relays_we_reserved_with() {
        // A stranger posing as a relay opens STOP on us: refused before any TLS.
        let a = host().await;
        let fake_relay = host().await;
        let addr = a.listen_addrs()[0].clone().with_p2p(&a.peer_id());
        fake_relay.dial(&addr).await.unwrap();
        let mut s = fake_relay
            .open_stream(&a.peer_id(), &[relay::STOP_PROTOCOL])
            .await
            .unwrap();
        let mut connect = StopMessage::status(Status::Ok);
        connect.kind = relay::StopType::Connect;
        connect.status = None;
        connect.peer = Some(fake_relay.peer_id());
        relay::write_msg(&mut s.send, &connect.encode())
            .await
            .unwrap();
        let reply = relay::read_stop(&mut s.recv).await.unwrap();
        assert_eq!(reply.status, Some(Status::PermissionDenied));
        assert_eq!(
            a.counters()
                .refused_circuits
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }

    #[tokio::test]
    async fn wrong_peer_id_is_refused() {
        let a = host().await;
        let b = host().await;
        let other = Keypair::generate().peer_id();
        let addr = b.listen_addrs()[0].clone().with_p2p(&other);
        let err = a.dial(&addr).await.unwrap_err();
        assert!(err.to_string().contains("expected"), "{err}");
        assert!(!a.is_connected(&b.peer_id()));
        assert!(!a.is_connected(&other));
    }

    #[tokio::test]
    async fn registered_protocol_gets_streams_and_unknown_is_refused() {
        let a = host().await;
        let b = host().await;
        let mut rx = b.register("/awl/test/", 4);
        a.dial(&b.listen_addrs()[0]).await.unwrap();
        assert!(a.open_stream(&b.peer_id(), &["/nope/"]).await.is_err());
        let mut s = a
            .open_stream(&b.peer_id(), &["/nope/", "/awl/test/"])
            .await
            .unwrap();
        assert_eq!(s.protocol, "/awl/test/");
        s.send.write_all(b"hi").await.unwrap();
        s.send.finish().await;
        let mut inbound = rx.recv().await.unwrap();
        assert_eq!(inbound.peer, a.peer_id());
        let got = crate::p2p::stream::read_to_end(&mut inbound.recv, 16)
            .await
            .unwrap();
        assert_eq!(got, b"hi");
    }

    #[tokio::test]
    async fn disconnect_is_noticed() {
        let a = host().await;
        let b = host().await;
        let mut events = a.events();
        a.dial(&b.listen_addrs()[0]).await.unwrap();
        b.shutdown();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Ok(HostEvent::Disconnected { peer })) => {
                    assert_eq!(peer, b.peer_id());
                    break;
                }
                Ok(Ok(_)) => continue,
                other => panic!("no disconnect event: {other:?}"),
            }
        }
        assert!(!a.is_connected(&b.peer_id()));
    }
}

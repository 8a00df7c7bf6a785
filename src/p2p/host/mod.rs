//! The libp2p host: one QUIC endpoint (one UDP socket, see `transport`) that listens and
//! dials, the table of live connections per peer, and the dispatch of inbound streams to
//! protocol handlers.
//!
//! A peer's connection is direct over QUIC, direct over TCP (secured with TLS and multiplexed
//! with yamux, see `transport::secure`), or relayed (a circuit through a relay, upgraded the
//! same way, see `relay::client`). New streams prefer QUIC, then TCP, then a circuit.
//!
//! Every stream starts with multistream-select. Identify (and push), ping and the relay stop
//! protocol are served by the host; other protocols (`register`) get their negotiated streams
//! through a bounded channel, so a slow handler makes new streams fail instead of queueing
//! without limit.
//!
//! Here: the host's state and accessors. `conn`: the connection table, dialling and opening
//! streams; `accept`: inbound connections and their admission; `tcp`: the TCP listener and
//! TCP dials; `dispatch`: inbound streams and datagrams by protocol.

mod accept;
mod choice;
mod conn;
mod dispatch;
mod tcp;
#[cfg(test)]
mod tests;

pub(super) use conn::{best, Conn, Link};
pub use dispatch::DatagramHandler;

use super::identify::IdentifyInfo;
use super::observed::ObservedAddrs;
use super::transport::{self, stream::RecvStream, stream::SendStream, tls};
pub use crate::p2p::error::Error;
use crate::p2p::identity::{Keypair, PeerId};
use crate::p2p::multiaddr::Multiaddr;
use crate::sys::ifaddrs;
use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, Notify};

/// Time allowed for multistream-select on one stream, and for the short exchanges after it.
pub(super) const NEGOTIATION_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// TCP listener beside the QUIC socket (None: no TCP listener; TCP dials still work).
    pub listen_tcp: Option<SocketAddr>,
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
            listen_tcp: None,
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

#[derive(Default)]
pub(super) struct State {
    pub(super) conns: HashMap<PeerId, Vec<Conn>>,
    pub(super) identified: HashMap<PeerId, IdentifyInfo>,
    pub(super) handlers: HashMap<String, mpsc::Sender<Stream>>,
    /// Our addresses as peers see them (identify), confirmed by trusted or several peers.
    pub(super) observed: ObservedAddrs,
    /// Relays that accepted our reservation: the only ones whose circuits (STOP) we accept.
    pub(super) reserved_relays: HashSet<PeerId>,
    /// TLS handshakes in progress per source address.
    pub(super) handshaking: HashMap<IpAddr, usize>,
    /// Our `/p2p-circuit` addresses through relays holding a reservation for us.
    pub(super) circuit_addrs: Vec<Multiaddr>,
    /// Addresses a router forwards to us (port mapping).
    pub(super) mapped_addrs: Vec<Multiaddr>,
    /// Local addresses never advertised (the mesh address of our own TUN).
    pub(super) hidden: Vec<IpAddr>,
    pub(super) next_id: u64,
}

pub(super) struct Inner {
    pub(super) keypair: Keypair,
    pub(super) peer_id: PeerId,
    pub(super) cert: tls::Certificate,
    pub(super) config: HostConfig,
    pub(super) endpoint: quinn::Endpoint,
    /// Fast-path sessions on the endpoint's socket (one per direct connection).
    pub(super) fast: Arc<crate::p2p::fastpath::Table>,
    /// Reads fast packets from their own socket for as long as the host lives.
    pub(super) fast_reader: Option<crate::p2p::transport::fast_socket::FastReader>,
    /// The endpoint's UDP socket, shared for hole-punching datagrams.
    pub(super) punch_socket: std::net::UdpSocket,
    pub(super) transport: Arc<quinn::TransportConfig>,
    pub(super) state: Mutex<State>,
    pub(super) identified: Notify,
    pub(super) events: broadcast::Sender<HostEvent>,
    pub(super) counters: Counters,
    pub(super) stream_limit: Mutex<crate::base::ratelimit::RateLimiter<PeerId>>,
    /// The protocol name advertised for datagrams and who gets them; set once.
    pub(super) datagrams: std::sync::OnceLock<(String, DatagramHandler)>,
    /// Who our friends are, and whose word on our address counts (set by the node).
    pub(super) trust: std::sync::RwLock<Trust>,
    /// The TCP listener's address, if TCP listens.
    pub(super) tcp_local: Option<SocketAddr>,
    /// Set to true at shutdown: stops the TCP accept loop.
    pub(super) closing: tokio::sync::watch::Sender<bool>,
    /// What AutoNAT found (`autonat::Reachability` as u8), read by `reachability()`.
    pub(super) reachability: std::sync::atomic::AtomicU8,
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
    pub handshake_failures: AtomicUsize,
    pub refused_connections: AtomicUsize,
    /// Stranger connections closed to make room for a friend.
    pub evicted_connections: AtomicUsize,
    /// Circuits (STOP) refused: not from a relay we reserved with, or no slot for a stranger.
    pub refused_circuits: AtomicUsize,
    pub busy_streams: AtomicUsize,
    pub rate_limited_streams: AtomicUsize,
    /// AutoNAT dial-back requests refused (stranger, foreign address, too often).
    pub autonat_refused: AtomicUsize,
}

pub(super) fn bump(c: &AtomicUsize) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Cheap to clone; all clones drive the same endpoint.
#[derive(Clone)]
pub struct Host(pub(super) Arc<Inner>);

impl Host {
    /// Binds the UDP socket and starts accepting connections. Needs a tokio runtime.
    pub async fn start(keypair: Keypair, config: HostConfig) -> Result<Host, Error> {
        let ep = transport::bind(
            &keypair,
            &transport::Settings {
                listen: config.listen,
                max_streams: config.max_streams,
                keep_alive: config.keep_alive,
                idle_timeout: config.idle_timeout,
            },
        )?;
        // Without TCP the node still works (QUIC, relays): a failed bind is not fatal.
        let tcp = config
            .listen_tcp
            .and_then(|addr| match Host::bind_tcp(addr) {
                Ok(l) => Some(l),
                Err(e) => {
                    log::warn!("not listening on TCP {addr}: {e}");
                    None
                }
            });
        let tcp_local = match &tcp {
            Some(l) => Some(l.local_addr()?),
            None => None,
        };
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
            cert: ep.cert,
            config,
            endpoint: ep.quic,
            fast: ep.fast,
            fast_reader: ep.fast_reader,
            punch_socket: ep.punch_socket,
            transport: ep.transport,
            state: Mutex::new(State::default()),
            identified: Notify::new(),
            events,
            counters: Counters::default(),
            stream_limit: Mutex::new(stream_limit),
            datagrams: std::sync::OnceLock::new(),
            trust: std::sync::RwLock::new(Trust::default()),
            tcp_local,
            closing: tokio::sync::watch::channel(false).0,
            reachability: std::sync::atomic::AtomicU8::new(0),
        }));
        let h = host.clone();
        crate::spawn(async move { h.accept_loop().await });
        if let Some(listener) = tcp {
            let h = host.clone();
            crate::spawn(async move { h.tcp_accept_loop(listener).await });
        }
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

    /// The addresses we can be dialled at (interface addresses if bound to a wildcard):
    /// QUIC first, then TCP.
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        let mut out = Vec::new();
        if let Ok(local) = self.0.endpoint.local_addr() {
            self.expand(local, Multiaddr::quic, &mut out);
        }
        if let Some(local) = self.0.tcp_local {
            self.expand(local, Multiaddr::tcp, &mut out);
        }
        out
    }

    /// `local` as addresses: itself, or every interface address if it is a wildcard.
    fn expand(
        &self,
        local: SocketAddr,
        addr: fn(SocketAddr) -> Multiaddr,
        out: &mut Vec<Multiaddr>,
    ) {
        if !local.ip().is_unspecified() {
            return out.push(addr(local));
        }
        let hidden = self.state().hidden.clone();
        out.extend(
            ifaddrs::local_addrs()
                .into_iter()
                .filter(|ip| ip.is_ipv4() == local.is_ipv4() || local.is_ipv6())
                .filter(|ip| !ip.is_loopback() && !hidden.contains(ip))
                .map(|ip| addr(SocketAddr::new(ip, local.port()))),
        );
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

    pub fn events(&self) -> broadcast::Receiver<HostEvent> {
        self.0.events.subscribe()
    }

    /// Tells the host who our friends and trusted observers are.
    pub fn set_trust(&self, trust: Trust) {
        *self.0.trust.write().unwrap_or_else(|e| e.into_inner()) = trust;
    }

    pub(super) fn trust(&self) -> Trust {
        self.0
            .trust
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn is_friend(&self, peer: &PeerId) -> bool {
        (self.trust().friend)(peer)
    }

    /// Closes every connection, the endpoint and the TCP listener.
    pub fn shutdown(&self) {
        self.0.closing.send_replace(true);
        self.0.endpoint.close(0u32.into(), b"shutdown");
        let muxed: Vec<Link> = self
            .state()
            .conns
            .values()
            .flatten()
            .filter(|c| !c.is_quic())
            .map(|c| c.link.clone())
            .collect();
        for l in muxed {
            l.close(b"shutdown");
        }
    }

    /// Closes every connection and waits (briefly) until the peers were told.
    pub async fn close(&self) {
        self.shutdown();
        let _ = tokio::time::timeout(Duration::from_secs(1), self.0.endpoint.wait_idle()).await;
    }

    pub(super) fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock would be a bug elsewhere; the map itself stays valid.
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
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

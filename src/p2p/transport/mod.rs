//! How bytes reach a peer: the QUIC endpoint on one UDP socket (`udp`, `udp_socket`), libp2p
//! TLS (`tls`, with `der` for the certificates), and for relay circuits and TCP connections
//! (`tcp`) the upgrade of a raw stream to TLS + yamux (`secure`, `muxer`). `stream` is the
//! stream type the host hands out for every kind of connection.
//!
//! This module sets the endpoint up; the host keeps it and the connections on it.

mod connected;
pub mod der;
pub mod dual_stack;
pub mod fast_socket;
pub mod muxer;
mod runtime;
pub mod secure;
pub mod stream;
pub mod tcp;
pub mod tls;
mod udp;
mod udp_socket;

use crate::p2p::identity::{Keypair, PeerId};
use crate::p2p::Error;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

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

/// What the endpoint needs from the host's configuration.
pub struct Settings {
    pub listen: SocketAddr,
    /// Concurrent streams a peer may open on one connection.
    pub max_streams: u32,
    pub keep_alive: Duration,
    pub idle_timeout: Duration,
}

/// A bound endpoint and what dialling from it needs.
pub struct Endpoint {
    pub quic: quinn::Endpoint,
    /// Fast-path sessions on the endpoint's socket.
    pub fast: Arc<crate::p2p::fastpath::Table>,
    /// The thread reading fast packets from their own socket on the port, while it lives.
    pub fast_reader: Option<fast_socket::FastReader>,
    /// The endpoint's UDP socket, shared for hole-punching datagrams.
    pub punch_socket: std::net::UdpSocket,
    pub transport: Arc<quinn::TransportConfig>,
    /// Our TLS certificate, for QUIC and for circuits.
    pub cert: tls::Certificate,
}

/// The endpoint could not be configured (a bug or an impossible setting, not the network).
#[derive(Debug)]
pub enum SetupError {
    Certificate,
    IdleTimeout,
    Tls(rustls::Error),
    Cipher(quinn::crypto::rustls::NoInitialCipherSuite),
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupError::Certificate => f.write_str("certificate generation failed"),
            SetupError::IdleTimeout => f.write_str("idle timeout out of range"),
            SetupError::Tls(e) => write!(f, "{e}"),
            SetupError::Cipher(e) => write!(f, "{e}"),
        }
    }
}

impl From<SetupError> for Error {
    fn from(e: SetupError) -> Self {
        Error::Setup(e)
    }
}

/// Binds the UDP socket and builds the QUIC endpoint (server and client). Needs a tokio
/// runtime.
pub fn bind(keypair: &Keypair, settings: &Settings) -> Result<Endpoint, Error> {
    let cert = tls::generate(keypair).map_err(|_| SetupError::Certificate)?;
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(settings.max_streams.into())
        .max_concurrent_uni_streams(0u32.into())
        .datagram_receive_buffer_size(Some(DATAGRAM_RECV_BUFFER))
        .datagram_send_buffer_size(DATAGRAM_SEND_BUFFER)
        .mtu_discovery_config(Some({
            let mut m = quinn::MtuDiscoveryConfig::default();
            m.upper_bound(MTU_UPPER_BOUND).minimum_change(MTU_STEP);
            m
        }))
        .keep_alive_interval(Some(settings.keep_alive))
        .max_idle_timeout(Some(
            settings
                .idle_timeout
                .try_into()
                .map_err(|_| SetupError::IdleTimeout)?,
        ));
    let transport = Arc::new(transport);
    let tls_server = tls::server_config(&cert).map_err(SetupError::Tls)?;
    let quic_server = quinn::crypto::rustls::QuicServerConfig::try_from(tls_server)
        .map_err(SetupError::Cipher)?;
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
    // Peers must keep QUIC's fixed bit: a packet to us without it is a fast packet.
    endpoint_cfg.grease_quic_bit(false);
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
    let socket = dual_stack::bind_udp_shared(settings.listen)?;
    mark_socket(&socket);
    let punch_socket = socket.try_clone()?;
    let fast = Arc::new(crate::p2p::fastpath::Table::default());
    let (socket, for_quinn) = udp::wrap_shared(socket, fast.clone())?;
    let fast_reader = fast_socket::start(&punch_socket, fast.clone(), for_quinn);
    let quic = quinn::Endpoint::new_with_abstract_socket(
        endpoint_cfg,
        Some(server),
        socket,
        Arc::new(runtime::Runtime),
    )?;
    Ok(Endpoint {
        quic,
        fast,
        fast_reader,
        punch_socket,
        transport,
        cert,
    })
}

/// The client side of one dial; `expected` pins the remote PeerId.
pub fn client_config(
    cert: &tls::Certificate,
    transport: &Arc<quinn::TransportConfig>,
    expected: Option<PeerId>,
) -> Result<quinn::ClientConfig, SetupError> {
    let tls_client = tls::client_config(cert, expected).map_err(SetupError::Tls)?;
    let quic_client = quinn::crypto::rustls::QuicClientConfig::try_from(tls_client)
        .map_err(SetupError::Cipher)?;
    let mut client = quinn::ClientConfig::new(Arc::new(quic_client));
    client.transport_config(transport.clone());
    Ok(client)
}

/// The PeerId a QUIC connection's handshake verified.
pub fn peer_of(conn: &quinn::Connection) -> Option<PeerId> {
    let identity = conn.peer_identity()?;
    let chain = identity.downcast_ref::<Vec<rustls::pki_types::CertificateDer<'static>>>()?;
    tls::peer_id_of(chain)
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
pub fn canonical(a: SocketAddr) -> SocketAddr {
    match a.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), a.port()),
            None => a,
        },
        IpAddr::V4(_) => a,
    }
}

/// A client-only endpoint on a fresh ephemeral port (marked like the main socket), for
/// AutoNAT dial-backs: from our listening port the dial would ride the NAT mapping the
/// requester already opened to us and prove nothing. Built like the main endpoint (our own
/// socket wrapper: quinn's would link a second UDP socket implementation), but with a reset
/// key of its own: the main endpoint's must not be handed out by another socket.
pub fn probe_endpoint(ipv6: bool) -> io::Result<quinn::Endpoint> {
    let any: IpAddr = if ipv6 {
        std::net::Ipv6Addr::UNSPECIFIED.into()
    } else {
        std::net::Ipv4Addr::UNSPECIFIED.into()
    };
    let socket = std::net::UdpSocket::bind(SocketAddr::new(any, 0))?;
    mark_socket(&socket);
    let key = ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &ring::rand::SystemRandom::new())
        .map_err(|_| io::Error::other("no randomness"))?;
    let socket = udp::wrap(socket, None)?;
    quinn::Endpoint::new_with_abstract_socket(
        quinn::EndpointConfig::new(Arc::new(key)),
        None,
        socket,
        Arc::new(runtime::Runtime),
    )
}

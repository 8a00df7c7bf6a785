//! The trimmed libp2p stack: QUIC v1 + libp2p TLS, multistream-select, identify, ping,
//! Kademlia, circuit relay v2 (over TLS + yamux circuits) and DCUtR.
//!
//! - `host`: the connection table, accepting connections, dispatching inbound streams and
//!   datagrams by protocol, and the host's events. `Error` (in `error`) is its error type.
//! - `transport`: the QUIC endpoint and its UDP socket, libp2p TLS (certificates and the
//!   rustls verifier), and the TLS + yamux upgrade of relay circuits.
//! - Protocols, each a codec plus the host's side of it: `identify`, `ping`, `relay`
//!   (`wire`, `client`, `server`), `dcutr` (hole punching), `kad`.
//! - `fastpath`: tunnel packets between awl nodes sealed with keys from a QUIC connection's
//!   TLS exporter, outside QUIC (a ping round trip without QUIC's task hops).
//! - Connection policy: `admission` (inbound slots), `liveness` (dead-path detection),
//!   `observed` (our address as peers see it).
//! - Encodings: `identity` (keys, PeerIds), `multiaddr`, `varint`, `protobuf`, `multistream`;
//!   `dnsaddr` resolves `/dnsaddr/` bootstrap addresses.
//!
//! Codecs are pure or generic over tokio's I/O traits so tests drive them with bytes; `host`
//! and `transport` own the sockets.
pub mod admission;
pub mod autonat;
pub mod dcutr;
pub mod dnsaddr;
mod error;
pub mod fastpath;
pub mod host;
pub mod identify;
pub mod identity;
pub mod kad;
pub mod liveness;
pub mod multiaddr;
pub mod multistream;
pub mod observed;
pub mod ping;
#[cfg(feature = "portmap")]
pub mod portmap;
pub mod protobuf;
pub mod relay;
pub mod transport;
pub mod varint;

pub use error::{Error, Refusal, Violation};
pub use host::{Host, HostConfig, HostEvent, Policy, Stream, Trust};
pub use identify::IdentifyInfo;
/// The stream halves of `Stream`, for the layers above.
pub use transport::stream;

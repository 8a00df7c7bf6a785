//! The trimmed libp2p stack: QUIC v1 + libp2p TLS, multistream-select, identify, ping,
//! Kademlia, circuit relay v2 (over TLS + yamux circuits) and DCUtR.
//!
//! Codecs (`varint`, `protobuf`, `der`, `multistream`, `identify`, `ping`, `tls`, `relay`,
//! `kad`) are pure or generic over tokio's I/O traits so tests drive them with bytes; `host`
//! owns the sockets and the connection table.
pub mod admission;
pub mod dcutr;
pub mod der;
pub mod dnsaddr;
pub mod host;
pub mod identify;
pub mod identity;
pub mod kad;
pub mod liveness;
pub mod multiaddr;
pub mod multistream;
pub mod muxer;
pub mod observed;
pub mod ping;
pub mod portmap;
pub mod protobuf;
pub mod relay;
pub mod relay_service;
pub mod secure;
pub mod stream;
pub mod tls;
pub mod udp;
pub mod udp_socket;
pub mod varint;

pub use host::{Error, Host, HostConfig, HostEvent, Policy, Stream, Trust};
pub use identify::IdentifyInfo;

//! The trimmed libp2p stack: QUIC v1 + libp2p TLS, multistream-select, identify, ping.
//!
//! Codecs (`varint`, `protobuf`, `der`, `multistream`, `identify`, `ping`, `tls`) are pure or
//! generic over tokio's I/O traits so tests drive them with bytes; `host` owns the sockets.
pub mod der;
pub mod host;
pub mod identify;
pub mod ifaddrs;
pub mod kad;
pub mod multistream;
pub mod ping;
pub mod protobuf;
pub mod tls;
pub mod varint;

pub use host::{Error, Host, HostConfig, HostEvent, Stream};
pub use identify::IdentifyInfo;

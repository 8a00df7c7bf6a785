//! The trimmed libp2p stack: QUIC v1 + libp2p TLS, multistream-select, identify, ping.
pub mod der;
pub mod multistream;
pub mod protobuf;
pub mod tls;
pub mod varint;

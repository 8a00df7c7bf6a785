//! awl: a mesh VPN node wire-compatible with Anywherelan (AWL).
//!
//! See `docs/ARCHITECTURE.md` for how a packet and a peer flow through these modules.
pub mod cli;
pub mod config;
pub mod control;
pub mod daemon;
pub mod dataplane;
pub mod discovery;
pub mod dnsaddr;
pub mod friends;
pub mod health;
pub mod identity;
#[cfg(feature = "gateway")]
pub mod lan;
/// Without the `gateway` feature: the same API, doing nothing.
#[cfg(not(feature = "gateway"))]
#[path = "lan_disabled.rs"]
pub mod lan;
pub mod lan_discovery;
pub mod logring;
pub mod methods;
pub mod metrics;
pub mod migrate;
pub mod multiaddr;
pub mod node;
pub mod p2p;
pub mod packet;
pub mod peers;
pub mod proto;
pub mod ratelimit;
pub mod routes;
pub mod selftest;
pub mod services;
pub mod sockmark;
pub mod socks5;

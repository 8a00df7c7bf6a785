//! awl: a mesh VPN node wire-compatible with Anywherelan (AWL).
//!
//! See `docs/ARCHITECTURE.md` for how a packet and a peer flow through these modules.
pub mod config;
pub mod identity;
pub mod multiaddr;
pub mod p2p;

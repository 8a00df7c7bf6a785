//! The node's own services: DNS for `.awl` names, HTTP status and ICMP on a smoltcp stack
//! (`stack`, feature `services`), and AWL's SOCKS5 exit and local proxy (`socks5`).
pub mod dns;
pub mod http;
#[cfg(feature = "socks5")]
pub mod socks5;

#[cfg(feature = "services")]
mod stack;
/// Without the `services` feature: the same API, no smoltcp stack.
#[cfg(not(feature = "services"))]
#[path = "disabled.rs"]
mod stack;
pub use stack::*;

/// What the services tell about the node: `.awl` names for DNS, the documents for HTTP.
pub trait NodeView: Send + Sync {
    /// The mesh IP for a `.awl` label.
    fn dns_lookup(&self, label: &str) -> Option<std::net::Ipv4Addr>;
    /// The `.awl` label of a mesh IP (PTR).
    fn dns_reverse(&self, ip: std::net::Ipv4Addr) -> Option<String>;
    fn in_mesh(&self, ip: std::net::Ipv4Addr) -> bool;
    /// The JSON status document for LAN hosts (`/`).
    fn http_status(&self) -> String;
    /// The Prometheus text (`/metrics`).
    fn metrics(&self) -> String;
}

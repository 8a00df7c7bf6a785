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

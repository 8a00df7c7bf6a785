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
#[cfg(feature = "services")]
pub mod services;
/// Without the `services` feature: the same API, no smoltcp stack.
#[cfg(not(feature = "services"))]
#[path = "services_disabled.rs"]
pub mod services;
pub mod sockmark;
#[cfg(feature = "socks5")]
pub mod socks5;

/// A spawned task's future, boxed (see [`spawn`]).
pub type BoxedTask<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// `tokio::spawn` with the future boxed first. tokio builds its task harness (poll, cancel,
/// join, drop) once per spawned future type; boxed, all tasks with the same output share one
/// copy. Costs one allocation per spawned task; saves tens of kB on MIPS. `JoinSet::spawn`
/// takes a [`boxed`] future for the same reason.
pub fn spawn<T: Send + 'static>(
    f: impl std::future::Future<Output = T> + Send + 'static,
) -> tokio::task::JoinHandle<T> {
    tokio::spawn(boxed(f))
}

/// The future as a [`BoxedTask`].
pub fn boxed<T: Send + 'static>(
    f: impl std::future::Future<Output = T> + Send + 'static,
) -> BoxedTask<T> {
    Box::pin(f)
}

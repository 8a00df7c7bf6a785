//! awl: a mesh VPN node wire-compatible with Anywherelan (AWL).
//!
//! See `docs/ARCHITECTURE.md` for how a packet and a peer flow through these modules.
// Unsafe code lives in `sys` only, behind safe wrappers.
#![deny(unsafe_code)]
// Rooms, from the top (wiring) down; a room may use the rooms below it, never above.
pub mod app;
pub mod base;
pub mod config;
pub mod dataplane;
#[cfg(feature = "gateway")]
pub mod gateway;
/// Without the `gateway` feature: the same API, doing nothing.
#[cfg(not(feature = "gateway"))]
#[path = "gateway/disabled.rs"]
pub mod gateway;
pub mod mesh;
pub mod p2p;
pub mod services;
#[allow(unsafe_code)]
pub mod sys;

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

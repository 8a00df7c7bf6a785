//! AutoNAT v1 (libp2p specs `autonat/autonat-v1.md`): peers dial us back at our candidate
//! public addresses to tell whether we are reachable from outside.
//!
//! - `wire`: the DIAL / DIAL_RESPONSE codec.
//! - `status`: our reachability from the answers, and whom to ask when (pure).
//! - `client`: the probing task and `Host::reachability()`.
//! - `server`: the rules for answering a request, and the dial-back.
pub mod client;
pub mod server;
pub mod status;
pub mod wire;

pub use status::Reachability;

#[cfg(test)]
mod tests;

//! AutoNAT v1 (libp2p specs `autonat/autonat-v1.md`): peers dial us back at our candidate
//! public addresses to tell whether we are reachable from outside.
//!
//! - `wire`: the DIAL / DIAL_RESPONSE codec.
pub mod wire;

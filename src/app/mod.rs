//! Wiring and the user-facing interfaces: builds every part and owns its tasks (`daemon`,
//! `node`, `tasks`), the control API (`control`, `methods`), the CLI, metrics, health advice,
//! the self-test and the import from AWL.
pub mod cli;
mod config_writes;
pub mod control;
pub mod daemon;
pub mod error;
mod friend_flow;
pub mod health;
pub mod logring;
mod loops;
pub mod methods;
pub mod metrics;
#[cfg(feature = "awl-import")]
pub mod migrate;
pub mod node;
#[cfg(feature = "portmap")]
pub mod portmap;
pub mod request;
mod routes_sync;
pub mod selftest;
pub mod tasks;
mod views;

//! Wiring and the user-facing interfaces: builds every part and owns its tasks (`daemon`,
//! `node`), the control API (`control`, `methods`), the CLI, metrics, health advice, the
//! self-test and the import from AWL.
pub mod cli;
pub mod control;
pub mod daemon;
pub mod health;
pub mod logring;
pub mod methods;
pub mod metrics;
pub mod migrate;
pub mod node;
pub mod selftest;

//! UCI configuration (owned by the config work in progress).

//! The AWL application on top of libp2p: wire messages (`messages`, `tunnel`), the peer table,
//! the friend (auth/status) flow, discovery on the DHT and the LAN, and the route rules.
pub mod discovery;
pub mod friends;
pub mod lan_discovery;
pub mod messages;
pub mod names;
pub mod peers;
pub mod routes;
pub mod tunnel;

//! Circuit relay v2 (libp2p specs `relay/circuit-v2.md`): `wire` holds the messages, `client`
//! the host's side (reservations, circuits through a relay, circuits a relay opens to us, and
//! the probe that notices a dead one), `server` the hop service of a relay node.

mod client;
pub mod server;
pub mod wire;

pub use wire::{
    circuit_addr, parse_circuit, read_hop, read_stop, write_msg, HopMessage, HopType, Limit,
    Reservation, Status, StopMessage, StopType, HOP_PROTOCOL, MAX_MESSAGE, STOP_PROTOCOL,
};

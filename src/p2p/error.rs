//! The host's error: what went wrong with a connection, a stream or a protocol exchange, typed
//! so callers can tell a reset stream (`Io`) or an absent peer (`NotConnected`) from the rest.
//! Display texts read as before the split into variants.

use super::identity::PeerId;
use super::multiaddr::Multiaddr;
use super::protobuf::DecodeError;
use super::relay::Status;
use super::transport::{muxer, secure, SetupError};
use std::fmt;
use std::io;

#[derive(Debug)]
pub enum Error {
    /// A stream or socket failed (a stream reset during negotiation arrives here).
    Io(io::Error),
    /// The QUIC connection failed or ended: unreachable, refused, bad certificate (the TLS
    /// alert names it), wrong PeerId, closed.
    Quic(quinn::ConnectionError),
    /// The endpoint would not start a connection (closed, invalid remote address).
    Dial(quinn::ConnectError),
    /// A relayed connection's yamux session failed or ended.
    Muxer(muxer::Error),
    /// Securing a circuit (multistream, TLS, yamux) failed.
    Upgrade(secure::Error),
    /// The handshake finished without a verified libp2p certificate.
    NoCertificate,
    /// The remote proved another identity than the one dialled.
    WrongPeer,
    /// We would not make or keep this connection.
    Refused(Refusal),
    /// A relay would not open a circuit to the peer.
    CircuitRefused {
        relay: PeerId,
        status: Option<Status>,
    },
    /// A circuit's TLS identity is not the peer the relay announced.
    CircuitMismatch {
        announced: PeerId,
        answered: PeerId,
    },
    /// A relay would not keep a reservation for us.
    ReservationRefused(Option<Status>),
    Timeout(&'static str),
    NotConnected(PeerId),
    UnsupportedAddress(Multiaddr),
    /// The remote broke a protocol, or no handler took its stream.
    Protocol(Violation),
    /// TLS or QUIC configuration at startup.
    Setup(SetupError),
}

/// Why we refused a connection of our own accord.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    SelfDial,
    BadRelayTarget,
    TooManyRelayed,
    /// A circuit (STOP) from a relay we hold no reservation with.
    NotOurRelay(PeerId),
}

/// A protocol rule the remote broke, or a stream nobody takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    Malformed(DecodeError),
    /// Identify carries a public key that is not the peer's.
    ForeignKey,
    /// A STOP stream that does not start with CONNECT.
    NotConnect,
    NoHandler(String),
    HandlerBusy,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "{e}"),
            Error::Quic(e) => write!(f, "connection failed: {e}"),
            Error::Dial(e) => write!(f, "connection failed: {e}"),
            Error::Muxer(e) => write!(f, "connection failed: {e}"),
            Error::Upgrade(e) => write!(f, "connection failed: {e}"),
            Error::NoCertificate => f.write_str("connection failed: no verified certificate"),
            Error::WrongPeer => f.write_str("connection failed: wrong peer id"),
            Error::Refused(r) => write!(f, "connection failed: {r}"),
            Error::CircuitRefused { relay, status } => write!(
                f,
                "connection failed: relay {} refused the circuit: {status:?}",
                relay.short()
            ),
            Error::CircuitMismatch {
                announced,
                answered,
            } => write!(
                f,
                "connection failed: circuit announced {} but {} answered",
                announced.short(),
                answered.short()
            ),
            Error::ReservationRefused(status) => {
                write!(f, "protocol error: reservation refused: {status:?}")
            }
            Error::Timeout(what) => write!(f, "timed out: {what}"),
            Error::NotConnected(p) => write!(f, "not connected to {p}"),
            Error::UnsupportedAddress(a) => {
                write!(
                    f,
                    "cannot dial {a}: only /ip4|ip6/…/udp/N/quic-v1 or /tcp/N, at a unicast address and a port"
                )
            }
            Error::Protocol(v) => write!(f, "protocol error: {v}"),
            Error::Setup(e) => write!(f, "setup failed: {e}"),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::SelfDial => f.write_str("refusing to dial ourselves"),
            Refusal::BadRelayTarget => f.write_str("bad relay target"),
            Refusal::TooManyRelayed => f.write_str("too many relayed connections"),
            Refusal::NotOurRelay(r) => write!(
                f,
                "circuit from {}, a relay we hold no reservation with",
                r.short()
            ),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Malformed(e) => write!(f, "{e}"),
            Violation::ForeignKey => f.write_str("identify carries another peer's key"),
            Violation::NotConnect => f.write_str("stop: not a CONNECT"),
            Violation::NoHandler(p) => write!(f, "no handler for {p}"),
            Violation::HandlerBusy => f.write_str("handler busy"),
        }
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<DecodeError> for Error {
    fn from(e: DecodeError) -> Self {
        Error::Protocol(Violation::Malformed(e))
    }
}

impl From<Violation> for Error {
    fn from(v: Violation) -> Self {
        Error::Protocol(v)
    }
}

impl From<Refusal> for Error {
    fn from(r: Refusal) -> Self {
        Error::Refused(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_read_as_before() {
        let e = Error::Refused(Refusal::TooManyRelayed);
        assert_eq!(
            e.to_string(),
            "connection failed: too many relayed connections"
        );
        let e = Error::from(Violation::NoHandler("/x/".into()));
        assert_eq!(e.to_string(), "protocol error: no handler for /x/");
        let e = Error::from(DecodeError);
        assert_eq!(e.to_string(), "protocol error: malformed protobuf");
        assert_eq!(Error::Timeout("ping").to_string(), "timed out: ping");
    }
}

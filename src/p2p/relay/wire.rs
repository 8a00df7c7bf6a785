//! Circuit relay v2 messages (libp2p specs `relay/circuit-v2.md`): the hop protocol between a
//! client and a relay, the stop protocol from the relay to the target. Length-prefixed
//! protobufs of at most 4 KiB. I/O-free codecs; the host and the relay service do the I/O.

use crate::p2p::identify::{frame, read_framed};
use crate::p2p::identity::PeerId;
use crate::p2p::multiaddr::Multiaddr;
use crate::p2p::protobuf::{self, DecodeError};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

pub const HOP_PROTOCOL: &str = "/libp2p/circuit/relay/0.2.0/hop";
pub const STOP_PROTOCOL: &str = "/libp2p/circuit/relay/0.2.0/stop";
pub const MAX_MESSAGE: usize = 4096;
/// Addresses kept from one message.
const MAX_ADDRS: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok = 100,
    ReservationRefused = 200,
    ResourceLimitExceeded = 201,
    PermissionDenied = 202,
    ConnectionFailed = 203,
    NoReservation = 204,
    MalformedMessage = 400,
    UnexpectedMessage = 401,
}

impl Status {
    fn from_u64(v: u64) -> Option<Status> {
        Some(match v {
            100 => Status::Ok,
            200 => Status::ReservationRefused,
            201 => Status::ResourceLimitExceeded,
            202 => Status::PermissionDenied,
            203 => Status::ConnectionFailed,
            204 => Status::NoReservation,
            400 => Status::MalformedMessage,
            401 => Status::UnexpectedMessage,
            _ => return None,
        })
    }
}

/// Relay limits on one circuit; 0 = none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limit {
    pub duration_secs: u32,
    pub data_bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reservation {
    /// Unix time (UTC) when it ends.
    pub expire: u64,
    /// The relay's public addresses, ending in `/p2p/<relay>`.
    pub addrs: Vec<Multiaddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HopType {
    Reserve = 0,
    Connect = 1,
    Status = 2,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HopMessage {
    pub kind: HopType,
    pub peer: Option<PeerId>,
    pub reservation: Option<Reservation>,
    pub limit: Option<Limit>,
    pub status: Option<Status>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopType {
    Connect = 0,
    Status = 1,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopMessage {
    pub kind: StopType,
    pub peer: Option<PeerId>,
    pub limit: Option<Limit>,
    pub status: Option<Status>,
}

impl HopMessage {
    pub fn new(kind: HopType) -> Self {
        HopMessage {
            kind,
            peer: None,
            reservation: None,
            limit: None,
            status: None,
        }
    }

    pub fn status(status: Status) -> Self {
        HopMessage {
            status: Some(status),
            ..HopMessage::new(HopType::Status)
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = protobuf::Writer::default();
        w.uint(1, self.kind as u64);
        if let Some(p) = &self.peer {
            w.bytes(2, &encode_peer(p));
        }
        if let Some(r) = &self.reservation {
            let mut rw = protobuf::Writer::default();
            rw.uint(1, r.expire);
            for a in &r.addrs {
                rw.bytes(2, &a.to_bytes());
            }
            w.bytes(3, &rw.buf);
        }
        if let Some(l) = &self.limit {
            w.bytes(4, &encode_limit(l));
        }
        if let Some(s) = self.status {
            w.uint(5, s as u64);
        }
        w.buf
    }

    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut kind = None;
        let mut msg = HopMessage::new(HopType::Status);
        for f in protobuf::Reader::new(buf) {
            let (n, v) = f?;
            match n {
                1 => {
                    kind = Some(match v.as_uint()? {
                        0 => HopType::Reserve,
                        1 => HopType::Connect,
                        2 => HopType::Status,
                        _ => return Err(DecodeError),
                    })
                }
                2 => msg.peer = Some(decode_peer(v.as_bytes()?)?),
                3 => msg.reservation = Some(decode_reservation(v.as_bytes()?)?),
                4 => msg.limit = Some(decode_limit(v.as_bytes()?)?),
                5 => msg.status = Status::from_u64(v.as_uint()?),
                _ => {}
            }
        }
        // proto3 senders omit a zero enum: a missing type is RESERVE.
        msg.kind = kind.unwrap_or(HopType::Reserve);
        Ok(msg)
    }
}

impl StopMessage {
    pub fn status(status: Status) -> Self {
        StopMessage {
            kind: StopType::Status,
            peer: None,
            limit: None,
            status: Some(status),
        }
    }

    pub fn connect(from: &PeerId, limit: Option<Limit>) -> Self {
        StopMessage {
            kind: StopType::Connect,
            peer: Some(from.clone()),
            limit,
            status: None,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = protobuf::Writer::default();
        w.uint(1, self.kind as u64);
        if let Some(p) = &self.peer {
            w.bytes(2, &encode_peer(p));
        }
        if let Some(l) = &self.limit {
            w.bytes(3, &encode_limit(l));
        }
        if let Some(s) = self.status {
            w.uint(4, s as u64);
        }
        w.buf
    }

    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut msg = StopMessage::status(Status::Ok);
        msg.status = None;
        msg.kind = StopType::Connect;
        for f in protobuf::Reader::new(buf) {
            let (n, v) = f?;
            match n {
                1 => {
                    msg.kind = match v.as_uint()? {
                        0 => StopType::Connect,
                        1 => StopType::Status,
                        _ => return Err(DecodeError),
                    }
                }
                2 => msg.peer = Some(decode_peer(v.as_bytes()?)?),
                3 => msg.limit = Some(decode_limit(v.as_bytes()?)?),
                4 => msg.status = Status::from_u64(v.as_uint()?),
                _ => {}
            }
        }
        Ok(msg)
    }
}

fn encode_peer(p: &PeerId) -> Vec<u8> {
    let mut w = protobuf::Writer::default();
    w.bytes(1, p.as_bytes());
    w.buf
}

fn decode_peer(buf: &[u8]) -> Result<PeerId, DecodeError> {
    let mut id = None;
    for f in protobuf::Reader::new(buf) {
        let (n, v) = f?;
        if n == 1 {
            id = Some(PeerId::from_bytes(v.as_bytes()?).map_err(|_| DecodeError)?);
        }
    }
    id.ok_or(DecodeError)
}

fn encode_limit(l: &Limit) -> Vec<u8> {
    let mut w = protobuf::Writer::default();
    if l.duration_secs > 0 {
        w.uint(1, u64::from(l.duration_secs));
    }
    if l.data_bytes > 0 {
        w.uint(2, l.data_bytes);
    }
    w.buf
}

fn decode_limit(buf: &[u8]) -> Result<Limit, DecodeError> {
    let mut l = Limit::default();
    for f in protobuf::Reader::new(buf) {
        let (n, v) = f?;
        match n {
            1 => l.duration_secs = u32::try_from(v.as_uint()?).unwrap_or(u32::MAX),
            2 => l.data_bytes = v.as_uint()?,
            _ => {}
        }
    }
    Ok(l)
}

fn decode_reservation(buf: &[u8]) -> Result<Reservation, DecodeError> {
    let mut r = Reservation::default();
    for f in protobuf::Reader::new(buf) {
        let (n, v) = f?;
        match n {
            1 => r.expire = v.as_uint()?,
            2 if r.addrs.len() < MAX_ADDRS => {
                // Addresses of transports we don't speak are skipped, not fatal.
                if let Ok(a) = Multiaddr::from_bytes(v.as_bytes()?) {
                    r.addrs.push(a);
                }
            }
            // 3: the voucher (advisory in the spec); not checked.
            _ => {}
        }
    }
    Ok(r)
}

pub async fn write_msg<W: AsyncWrite + Unpin>(w: &mut W, body: &[u8]) -> std::io::Result<()> {
    w.write_all(&frame(body)).await?;
    w.flush().await
}

pub async fn read_hop<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<HopMessage> {
    let body = read_framed(r, MAX_MESSAGE).await?;
    HopMessage::decode(&body).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

pub async fn read_stop<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<StopMessage> {
    let body = read_framed(r, MAX_MESSAGE).await?;
    StopMessage::decode(&body).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Our `/p2p-circuit` address through a relay address that ends in `/p2p/<relay>`.
pub fn circuit_addr(relay_addr: &Multiaddr, relay: &PeerId) -> Multiaddr {
    relay_addr
        .without_p2p()
        .with_p2p(relay)
        .with(crate::p2p::multiaddr::Protocol::P2pCircuit)
}

/// Splits `<relay addr>/p2p/<relay>/p2p-circuit[/p2p/<target>]` into the relay's address
/// and id.
pub fn parse_circuit(addr: &Multiaddr) -> Option<(Multiaddr, PeerId)> {
    use crate::p2p::multiaddr::Protocol;
    let parts: Vec<&Protocol> = addr.iter().collect();
    let pos = parts.iter().position(|p| **p == Protocol::P2pCircuit)?;
    let Some(Protocol::P2p(relay)) = pos.checked_sub(1).and_then(|i| parts.get(i)) else {
        return None;
    };
    let mut relay_addr = Multiaddr::empty();
    for p in &parts[..pos] {
        relay_addr.push((*p).clone());
    }
    Some((relay_addr, relay.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::p2p::identity::Keypair;

    #[test]
    fn hop_round_trip() {
        let p = Keypair::generate().peer_id();
        let addr: Multiaddr = "/ip4/192.0.2.1/udp/6150/quic-v1".parse().unwrap();
        let m = HopMessage {
            kind: HopType::Status,
            peer: Some(p),
            reservation: Some(Reservation {
                expire: 1_900_000_000,
                addrs: vec![addr],
            }),
            limit: Some(Limit {
                duration_secs: 120,
                data_bytes: 21 << 20,
            }),
            status: Some(Status::Ok),
        };
        assert_eq!(HopMessage::decode(&m.encode()).unwrap(), m);
        // A RESERVE from a proto3 sender has no type field at all.
        assert_eq!(HopMessage::decode(&[]).unwrap().kind, HopType::Reserve);
    }

    #[test]
    fn stop_round_trip_and_garbage() {
        let p = Keypair::generate().peer_id();
        let m = StopMessage::connect(&p, None);
        assert_eq!(StopMessage::decode(&m.encode()).unwrap(), m);
        let s = StopMessage::status(Status::Ok);
        assert_eq!(StopMessage::decode(&s.encode()).unwrap(), s);
        assert!(HopMessage::decode(&[0x12, 0x05, 0x0a]).is_err());
        assert!(StopMessage::decode(&[0x08, 0x09]).is_err());
    }

    #[test]
    fn circuit_addresses() {
        let relay = Keypair::generate().peer_id();
        let target = Keypair::generate().peer_id();
        let base: Multiaddr = "/ip4/192.0.2.1/udp/6150/quic-v1".parse().unwrap();
        let c = circuit_addr(&base, &relay);
        assert!(c.is_relayed());
        let full = c.clone().with_p2p(&target);
        let (ra, rid) = parse_circuit(&full).unwrap();
        assert_eq!(rid, relay);
        assert_eq!(ra, base.with_p2p(&relay));
        assert!(parse_circuit(&"/ip4/192.0.2.1/udp/1/quic-v1".parse().unwrap()).is_none());
    }
}

//! AutoNAT v1 messages (libp2p specs `autonat/autonat-v1.md`): one DIAL request with the
//! addresses to try, one DIAL_RESPONSE with the outcome. Length-prefixed protobufs of at most
//! 4 KiB, framed like identify. I/O-free.

use crate::p2p::identity::PeerId;
use crate::p2p::multiaddr::Multiaddr;
use crate::p2p::protobuf::{self, DecodeError};

pub const PROTOCOL: &str = "/libp2p/autonat/1.0.0";
pub const MAX_MESSAGE: usize = 4096;
/// Addresses kept from one request; the rest are ignored (the server tries fewer anyway).
pub const MAX_ADDRS: usize = 16;

const TYPE_DIAL: u64 = 0;
const TYPE_DIAL_RESPONSE: u64 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok = 0,
    DialError = 100,
    DialRefused = 101,
    BadRequest = 200,
    InternalError = 300,
}

impl Status {
    fn from_u64(v: u64) -> Option<Status> {
        Some(match v {
            0 => Status::Ok,
            100 => Status::DialError,
            101 => Status::DialRefused,
            200 => Status::BadRequest,
            300 => Status::InternalError,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialResponse {
    pub status: Status,
    pub text: String,
    /// The address the server reached us at (on `Ok`).
    pub addr: Option<Multiaddr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// "Dial me back": the requester's id (may be absent) and the addresses to try.
    Dial {
        peer: Option<PeerId>,
        addrs: Vec<Multiaddr>,
    },
    DialResponse(DialResponse),
}

impl Message {
    pub fn response(status: Status, text: &str) -> Message {
        Message::DialResponse(DialResponse {
            status,
            text: text.to_string(),
            addr: None,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = protobuf::Writer::default();
        match self {
            Message::Dial { peer, addrs } => {
                let mut pw = protobuf::Writer::default();
                if let Some(p) = peer {
                    pw.bytes(1, p.as_bytes());
                }
                for a in addrs {
                    pw.bytes(2, &a.to_bytes());
                }
                let mut dw = protobuf::Writer::default();
                dw.bytes(1, &pw.buf);
                w.uint(1, TYPE_DIAL).bytes(2, &dw.buf);
            }
            Message::DialResponse(r) => {
                let mut rw = protobuf::Writer::default();
                rw.uint(1, r.status as u64);
                if !r.text.is_empty() {
                    rw.string(2, &r.text);
                }
                if let Some(a) = &r.addr {
                    rw.bytes(3, &a.to_bytes());
                }
                w.uint(1, TYPE_DIAL_RESPONSE).bytes(3, &rw.buf);
            }
        }
        w.buf
    }

    pub fn decode(buf: &[u8]) -> Result<Message, DecodeError> {
        if buf.len() > MAX_MESSAGE {
            return Err(DecodeError);
        }
        let (mut kind, mut dial, mut resp) = (None, None, None);
        for f in protobuf::Reader::new(buf) {
            let (n, v) = f?;
            match n {
                1 => kind = Some(v.as_uint()?),
                2 => dial = Some(v.as_bytes()?),
                3 => resp = Some(v.as_bytes()?),
                _ => {}
            }
        }
        match kind {
            Some(TYPE_DIAL) => decode_dial(dial.ok_or(DecodeError)?),
            Some(TYPE_DIAL_RESPONSE) => decode_response(resp.ok_or(DecodeError)?),
            _ => Err(DecodeError),
        }
    }
}

fn decode_dial(buf: &[u8]) -> Result<Message, DecodeError> {
    let mut info = None;
    for f in protobuf::Reader::new(buf) {
        if let (1, v) = f? {
            info = Some(v.as_bytes()?);
        }
    }
    let (mut peer, mut addrs) = (None, Vec::new());
    for f in protobuf::Reader::new(info.ok_or(DecodeError)?) {
        match f? {
            (1, v) => peer = Some(PeerId::from_bytes(v.as_bytes()?).map_err(|_| DecodeError)?),
            // Unparsable addresses are skipped: a newer peer may list transports we lack.
            (2, v) if addrs.len() < MAX_ADDRS => {
                if let Ok(a) = Multiaddr::from_bytes(v.as_bytes()?) {
                    addrs.push(a);
                }
            }
            _ => {}
        }
    }
    Ok(Message::Dial { peer, addrs })
}

fn decode_response(buf: &[u8]) -> Result<Message, DecodeError> {
    let (mut status, mut text, mut addr) = (None, String::new(), None);
    for f in protobuf::Reader::new(buf) {
        match f? {
            (1, v) => status = Some(Status::from_u64(v.as_uint()?).ok_or(DecodeError)?),
            (2, v) => text = v.as_str()?.to_string(),
            (3, v) => addr = Multiaddr::from_bytes(v.as_bytes()?).ok(),
            _ => {}
        }
    }
    Ok(Message::DialResponse(DialResponse {
        status: status.ok_or(DecodeError)?,
        text,
        addr,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::p2p::identity::Keypair;

    fn addr(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    #[test]
    fn dial_round_trips() {
        let m = Message::Dial {
            peer: Some(Keypair::generate().peer_id()),
            addrs: vec![
                addr("/ip4/198.51.100.7/udp/4363/quic-v1"),
                addr("/ip4/203.0.113.1/udp/1/quic-v1"),
            ],
        };
        assert_eq!(Message::decode(&m.encode()).unwrap(), m);
        let anon = Message::Dial {
            peer: None,
            addrs: vec![],
        };
        assert_eq!(Message::decode(&anon.encode()).unwrap(), anon);
    }

    #[test]
    fn response_round_trips() {
        let ok = Message::DialResponse(DialResponse {
            status: Status::Ok,
            text: String::new(),
            addr: Some(addr("/ip4/198.51.100.7/udp/4363/quic-v1")),
        });
        assert_eq!(Message::decode(&ok.encode()).unwrap(), ok);
        let refused = Message::response(Status::DialRefused, "not a friend");
        assert_eq!(Message::decode(&refused.encode()).unwrap(), refused);
    }

    #[test]
    fn matches_the_spec_field_numbers() {
        // type=DIAL_RESPONSE (1:1), dialResponse (3) { status=E_DIAL_ERROR (1:100) }
        let b = [0x08, 0x01, 0x1a, 0x02, 0x08, 0x64];
        assert_eq!(
            Message::decode(&b).unwrap(),
            Message::response(Status::DialError, "")
        );
    }

    #[test]
    fn refuses_bad_input() {
        assert!(Message::decode(&[]).is_err(), "no type");
        assert!(Message::decode(&[0x08, 0x07]).is_err(), "unknown type");
        assert!(Message::decode(&[0x08, 0x00]).is_err(), "DIAL without dial");
        assert!(
            Message::decode(&[0x08, 0x01]).is_err(),
            "response without body"
        );
        // Unknown status code.
        assert!(Message::decode(&[0x08, 0x01, 0x1a, 0x02, 0x08, 0x05]).is_err());
        // Truncated length.
        assert!(Message::decode(&[0x08, 0x00, 0x12, 0x09, 0x0a]).is_err());
        // A garbage peer id.
        assert!(Message::decode(&[0x08, 0x00, 0x12, 0x05, 0x0a, 0x03, 0x0a, 0x01, 0xff]).is_err());
    }

    #[test]
    fn bounded() {
        let many = Message::Dial {
            peer: None,
            addrs: vec![addr("/ip4/198.51.100.7/udp/4363/quic-v1"); 40],
        };
        let b = many.encode();
        assert!(b.len() < MAX_MESSAGE);
        let Message::Dial { addrs, .. } = Message::decode(&b).unwrap() else {
            panic!("not a dial")
        };
        assert_eq!(addrs.len(), MAX_ADDRS);
        assert!(Message::decode(&vec![0u8; MAX_MESSAGE + 1]).is_err());
    }
}

//! Identify `/ipfs/id/1.0.0` and identify push `/ipfs/id/push/1.0.0`.
//!
//! The responder writes one varint-length-prefixed protobuf `Identify` message and closes its
//! side; push sends the same message unasked. This module is the codec; `exchange` runs it on
//! the host's connections.

mod exchange;

use crate::p2p::identity::PublicKey;
use crate::p2p::multiaddr::Multiaddr;
use crate::p2p::protobuf::{self, DecodeError};
use crate::p2p::varint;
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt};

pub const PROTOCOL: &str = "/ipfs/id/1.0.0";
pub const PUSH_PROTOCOL: &str = "/ipfs/id/push/1.0.0";
/// rust-libp2p caps identify at 4 KiB; a relay-heavy peer may list many addresses, so allow more
/// but keep it bounded.
pub const MAX_MESSAGE: usize = 16 * 1024;
/// Addresses and protocols kept per peer; extra ones are ignored.
const MAX_ENTRIES: usize = 64;

const F_PUBLIC_KEY: u32 = 1;
const F_LISTEN_ADDRS: u32 = 2;
const F_PROTOCOLS: u32 = 3;
const F_OBSERVED_ADDR: u32 = 4;
const F_PROTOCOL_VERSION: u32 = 5;
const F_AGENT_VERSION: u32 = 6;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentifyInfo {
    pub public_key: Option<PublicKey>,
    pub protocol_version: String,
    pub agent_version: String,
    pub listen_addrs: Vec<Multiaddr>,
    pub protocols: Vec<String>,
    pub observed_addr: Option<Multiaddr>,
}

impl IdentifyInfo {
    /// Whether the peer listed `protocol` (it takes streams of it).
    pub fn lists(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|p| p == protocol)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = protobuf::Writer::default();
        if let Some(pk) = &self.public_key {
            w.bytes(F_PUBLIC_KEY, &pk.to_protobuf());
        }
        for a in &self.listen_addrs {
            w.bytes(F_LISTEN_ADDRS, &a.to_bytes());
        }
        for p in &self.protocols {
            w.string(F_PROTOCOLS, p);
        }
        if let Some(o) = &self.observed_addr {
            w.bytes(F_OBSERVED_ADDR, &o.to_bytes());
        }
        w.string(F_PROTOCOL_VERSION, &self.protocol_version);
        w.string(F_AGENT_VERSION, &self.agent_version);
        w.buf
    }

    /// Decodes a message. Addresses we can't parse and non-Ed25519 keys are skipped, not errors:
    /// a peer may know transports we don't.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut info = IdentifyInfo::default();
        for field in protobuf::Reader::new(buf) {
            let (n, v) = field?;
            match n {
                F_PUBLIC_KEY => info.public_key = PublicKey::from_protobuf(v.as_bytes()?).ok(),
                F_LISTEN_ADDRS => {
                    if let Ok(a) = Multiaddr::from_bytes(v.as_bytes()?) {
                        if info.listen_addrs.len() < MAX_ENTRIES {
                            info.listen_addrs.push(a);
                        }
                    }
                }
                F_PROTOCOLS => {
                    let p = v.as_str()?;
                    if info.protocols.len() < MAX_ENTRIES {
                        info.protocols.push(p.to_owned());
                    }
                }
                F_OBSERVED_ADDR => info.observed_addr = Multiaddr::from_bytes(v.as_bytes()?).ok(),
                F_PROTOCOL_VERSION => info.protocol_version = v.as_str()?.to_owned(),
                F_AGENT_VERSION => info.agent_version = v.as_str()?.to_owned(),
                _ => {}
            }
        }
        Ok(info)
    }

    /// Merges a push: fields present in `update` replace ours (as go-libp2p does).
    pub fn merge_push(&mut self, update: IdentifyInfo) {
        if update.public_key.is_some() {
            self.public_key = update.public_key;
        }
        if !update.listen_addrs.is_empty() {
            self.listen_addrs = update.listen_addrs;
        }
        if !update.protocols.is_empty() {
            self.protocols = update.protocols;
        }
        if update.observed_addr.is_some() {
            self.observed_addr = update.observed_addr;
        }
        if !update.protocol_version.is_empty() {
            self.protocol_version = update.protocol_version;
        }
        if !update.agent_version.is_empty() {
            self.agent_version = update.agent_version;
        }
    }
}

/// `uvarint(len) ‖ body`.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 3);
    varint::encode(body.len() as u64, &mut out);
    out.extend_from_slice(body);
    out
}

/// Reads one length-prefixed message of at most `max` bytes.
pub async fn read_framed<R: AsyncRead + Unpin>(r: &mut R, max: usize) -> io::Result<Vec<u8>> {
    let mut len: u64 = 0;
    for i in 0..4 {
        let b = r.read_u8().await?;
        len |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            if len as usize > max {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "message too large",
                ));
            }
            let mut body = vec![0u8; len as usize];
            r.read_exact(&mut body).await?;
            return Ok(body);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "length prefix too long",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::p2p::identity::Keypair;

    fn sample() -> IdentifyInfo {
        IdentifyInfo {
            public_key: Some(Keypair::from_seed([7; 32]).unwrap().public()),
            protocol_version: "ipfs/0.1.0".into(),
            agent_version: "awl/linux-amd64/0.1.0".into(),
            listen_addrs: vec!["/ip4/127.0.0.1/udp/4363/quic-v1".parse().unwrap()],
            protocols: vec![PROTOCOL.into(), "/ipfs/ping/1.0.0".into()],
            observed_addr: Some("/ip4/10.0.0.2/udp/5555/quic-v1".parse().unwrap()),
        }
    }

    #[test]
    fn round_trips() {
        let info = sample();
        assert_eq!(IdentifyInfo::decode(&info.encode()).unwrap(), info);
    }

    #[test]
    fn encoding_matches_hand_built_bytes() {
        let info = IdentifyInfo {
            agent_version: "a".into(),
            protocol_version: "p".into(),
            protocols: vec!["/x".into()],
            ..Default::default()
        };
        // protocols(3) "/x", protocolVersion(5) "p", agentVersion(6) "a"
        assert_eq!(
            info.encode(),
            [0x1a, 2, b'/', b'x', 0x2a, 1, b'p', 0x32, 1, b'a']
        );
    }

    #[test]
    fn unknown_addresses_and_fields_are_skipped() {
        let mut buf = sample().encode();
        // listenAddrs entry with an unknown multicodec (0x01d1 webtransport), and field 8.
        buf.extend_from_slice(&[0x12, 2, 0xd1, 0x03, 0x42, 1, 0]);
        let info = IdentifyInfo::decode(&buf).unwrap();
        assert_eq!(info.listen_addrs.len(), 1);
        assert!(IdentifyInfo::decode(&[0x2a, 5, b'a']).is_err());
        assert!(IdentifyInfo::decode(&[0x2a, 1, 0xff]).is_err()); // not UTF-8
    }

    #[tokio::test]
    async fn framed_reads_are_bounded() {
        let mut r: &[u8] = &frame(b"hello");
        assert_eq!(read_framed(&mut r, 10).await.unwrap(), b"hello");
        let mut r: &[u8] = &frame(&[0; 20]);
        assert!(read_framed(&mut r, 10).await.is_err());
        let mut r: &[u8] = &[0xff, 0xff, 0xff, 0xff, 0x01];
        assert!(read_framed(&mut r, usize::MAX).await.is_err());
    }
}

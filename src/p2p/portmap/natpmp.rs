//! NAT-PMP (RFC 6886): ask the default gateway on UDP 5351 for our external address and a
//! UDP port mapping. Codec pure; [`Client`] sends with the RFC's retransmission schedule.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;
use tokio::net::UdpSocket;

pub const PORT: u16 = 5351;
const VERSION: u8 = 0;
const OP_EXTERNAL: u8 = 0;
const OP_MAP_UDP: u8 = 1;
/// RFC 6886 3.1: first retry after 250 ms, doubling; we give up sooner than its 9 tries (64 s)
/// because a node that finds no gateway falls back to UPnP and relays.
const FIRST_WAIT: Duration = Duration::from_millis(250);
const TRIES: u32 = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    Io(std::io::ErrorKind),
    /// No answer after the retransmissions: no NAT-PMP server on the gateway.
    NoAnswer,
    /// The gateway answered with a result code other than success (RFC 6886 3.5).
    Refused(u16),
    Malformed,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Io(k) => write!(f, "NAT-PMP: {k}"),
            Error::NoAnswer => f.write_str("NAT-PMP: no answer from the gateway"),
            Error::Refused(code) => write!(f, "NAT-PMP: the gateway refused (result {code})"),
            Error::Malformed => f.write_str("NAT-PMP: malformed answer"),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e.kind())
    }
}

pub fn external_request() -> [u8; 2] {
    [VERSION, OP_EXTERNAL]
}

/// A UDP mapping request; `lifetime` 0 with `external` 0 deletes the mapping.
pub fn map_request(internal: u16, external: u16, lifetime: u32) -> [u8; 12] {
    let mut b = [0u8; 12];
    b[0] = VERSION;
    b[1] = OP_MAP_UDP;
    b[4..6].copy_from_slice(&internal.to_be_bytes());
    b[6..8].copy_from_slice(&external.to_be_bytes());
    b[8..12].copy_from_slice(&lifetime.to_be_bytes());
    b
}

/// The answer to an external-address request.
pub fn parse_external(b: &[u8]) -> Result<Ipv4Addr, Error> {
    let code = header(b, OP_EXTERNAL, 12)?;
    if code != 0 {
        return Err(Error::Refused(code));
    }
    Ok(Ipv4Addr::new(b[8], b[9], b[10], b[11]))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapped {
    pub internal: u16,
    pub external: u16,
    pub lifetime: u32,
}

pub fn parse_map(b: &[u8]) -> Result<Mapped, Error> {
    let code = header(b, OP_MAP_UDP, 16)?;
    if code != 0 {
        return Err(Error::Refused(code));
    }
    let u16_at = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
    Ok(Mapped {
        internal: u16_at(8),
        external: u16_at(10),
        lifetime: u32::from_be_bytes([b[12], b[13], b[14], b[15]]),
    })
}

/// Checks version, that this answers `op`, and the length; returns the result code.
fn header(b: &[u8], op: u8, len: usize) -> Result<u16, Error> {
    if b.len() < 4 || b[0] != VERSION || b[1] != 128 + op {
        return Err(Error::Malformed);
    }
    let code = u16::from_be_bytes([b[2], b[3]]);
    // Error answers may be short (only the header and epoch).
    if code == 0 && b.len() < len {
        return Err(Error::Malformed);
    }
    Ok(code)
}

/// Talks to one gateway.
pub struct Client {
    gateway: SocketAddrV4,
}

impl Client {
    pub fn new(gateway: Ipv4Addr) -> Self {
        Client {
            gateway: SocketAddrV4::new(gateway, PORT),
        }
    }

    pub async fn external_address(&self) -> Result<Ipv4Addr, Error> {
        parse_external(&self.exchange(&external_request(), OP_EXTERNAL).await?)
    }

    pub async fn map_udp(
        &self,
        internal: u16,
        external: u16,
        lifetime: u32,
    ) -> Result<Mapped, Error> {
        parse_map(
            &self
                .exchange(&map_request(internal, external, lifetime), OP_MAP_UDP)
                .await?,
        )
    }

    pub async fn unmap_udp(&self, internal: u16) -> Result<(), Error> {
        self.map_udp(internal, 0, 0).await.map(|_| ())
    }

    /// One request, retransmitted 250 ms, 500 ms, … apart until an answer to it comes from
    /// the gateway's address (anything else on the socket is ignored).
    async fn exchange(&self, req: &[u8], op: u8) -> Result<Vec<u8>, Error> {
        let sock = UdpSocket::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))).await?;
        sock.connect(self.gateway).await?;
        let mut wait = FIRST_WAIT;
        let mut buf = [0u8; 64];
        for _ in 0..TRIES {
            sock.send(req).await?;
            let deadline = tokio::time::Instant::now() + wait;
            loop {
                match tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
                    Err(_) => break,
                    Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                        return Err(Error::NoAnswer)
                    }
                    Ok(Err(e)) => return Err(e.into()),
                    Ok(Ok(n)) if n >= 2 && buf[1] == 128 + op => return Ok(buf[..n].to_vec()),
                    Ok(Ok(_)) => continue,
                }
            }
            wait *= 2;
        }
        Err(Error::NoAnswer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_laid_out_as_rfc_6886() {
        assert_eq!(external_request(), [0, 0]);
        assert_eq!(
            map_request(4363, 4363, 7200),
            [0, 1, 0, 0, 0x11, 0x0b, 0x11, 0x0b, 0, 0, 0x1c, 0x20]
        );
        assert_eq!(map_request(4363, 0, 0)[6..], [0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn answers_are_parsed_and_bad_ones_refused() {
        let ext = [0, 128, 0, 0, 0, 0, 0, 9, 198, 51, 100, 7];
        assert_eq!(parse_external(&ext), Ok(Ipv4Addr::new(198, 51, 100, 7)));
        let map = [
            0, 129, 0, 0, 0, 0, 0, 9, 0x11, 0x0b, 0x2f, 0x00, 0, 0, 0x1c, 0x20,
        ];
        assert_eq!(
            parse_map(&map),
            Ok(Mapped {
                internal: 4363,
                external: 12032,
                lifetime: 7200
            })
        );
        // Result 2: not authorized (the user turned NAT-PMP off); short error answers too.
        assert_eq!(
            parse_map(&[0, 129, 0, 2, 0, 0, 0, 9]),
            Err(Error::Refused(2))
        );
        assert_eq!(parse_map(&map[..12]), Err(Error::Malformed));
        assert_eq!(parse_map(&ext), Err(Error::Malformed));
        assert_eq!(parse_external(&[1, 128, 0, 0]), Err(Error::Malformed));
        assert_eq!(parse_external(&[]), Err(Error::Malformed));
    }

    #[tokio::test]
    async fn a_silent_gateway_is_given_up_on() {
        // A local socket that never answers stands in for a gateway without NAT-PMP.
        let quiet = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let c = Client {
            gateway: SocketAddrV4::new(Ipv4Addr::LOCALHOST, quiet.local_addr().unwrap().port()),
        };
        let t = std::time::Instant::now();
        assert_eq!(c.external_address().await, Err(Error::NoAnswer));
        assert!(t.elapsed() >= Duration::from_millis(250 * 15));
    }
}

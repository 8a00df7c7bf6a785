//! Multiaddrs: the subset AWL uses, in text and binary form.
//!
//! `/ip4|ip6/…/udp/N/quic-v1/p2p/…`, `/tcp/N`, `/dns|dns4|dns6|dnsaddr/…` and `/p2p-circuit`.
//! Anything else is a parse error; callers reading addresses from the network skip those.

use crate::p2p::identity::PeerId;
use crate::p2p::varint;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

// Multicodec codes (multiformats/multicodec table).
const IP4: u64 = 0x04;
const TCP: u64 = 0x06;
const IP6: u64 = 0x29;
const DNS: u64 = 0x35;
const DNS4: u64 = 0x36;
const DNS6: u64 = 0x37;
const DNSADDR: u64 = 0x38;
const UDP: u64 = 0x0111;
const P2P_CIRCUIT: u64 = 0x0122;
const P2P: u64 = 0x01a5;
const QUIC: u64 = 0x01cc;
const QUIC_V1: u64 = 0x01cd;

/// Longest DNS name we accept in a multiaddr.
const MAX_DNS_NAME: usize = 253;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    Ip4(Ipv4Addr),
    Ip6(Ipv6Addr),
    Tcp(u16),
    Udp(u16),
    Quic,
    QuicV1,
    P2p(PeerId),
    P2pCircuit,
    Dns(String),
    Dns4(String),
    Dns6(String),
    Dnsaddr(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Multiaddr(Vec<Protocol>);

/// What is wrong with a multiaddr, in text or binary form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiaddrError {
    BadVarint,
    Truncated,
    BadLength,
    PeerId(crate::p2p::identity::IdentityError),
    UnsupportedCode(u64),
    BadDnsName,
    /// The text does not start with `/`.
    NoLeadingSlash(String),
    /// `/<name>` without its argument (`what` it needs).
    MissingArg {
        name: String,
        what: &'static str,
    },
    BadPort(String),
    BadIpv4,
    BadIpv6,
    EmptyComponent,
    UnsupportedProtocol(String),
}

impl fmt::Display for MultiaddrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid multiaddr: ")?;
        match self {
            MultiaddrError::BadVarint => f.write_str("bad varint"),
            MultiaddrError::Truncated => f.write_str("truncated"),
            MultiaddrError::BadLength => f.write_str("bad length"),
            MultiaddrError::PeerId(e) => write!(f, "{e}"),
            MultiaddrError::UnsupportedCode(c) => write!(f, "unsupported protocol code 0x{c:x}"),
            MultiaddrError::BadDnsName => f.write_str("bad DNS name"),
            MultiaddrError::NoLeadingSlash(s) => write!(f, "'{s}' must start with '/'"),
            MultiaddrError::MissingArg { name, what } => write!(f, "'/{name}' needs {what}"),
            MultiaddrError::BadPort(a) => write!(f, "bad port '{a}'"),
            MultiaddrError::BadIpv4 => f.write_str("bad IPv4 address"),
            MultiaddrError::BadIpv6 => f.write_str("bad IPv6 address"),
            MultiaddrError::EmptyComponent => f.write_str("empty component"),
            MultiaddrError::UnsupportedProtocol(p) => write!(f, "unsupported protocol '{p}'"),
        }
    }
}

impl std::error::Error for MultiaddrError {}

/// Nothing after `/tcp/N` but our peer's `/p2p/<id>`.
fn plain(rest: &[Protocol]) -> bool {
    matches!(rest, [] | [Protocol::P2p(_)])
}

impl Multiaddr {
    pub fn empty() -> Self {
        Multiaddr(Vec::new())
    }

    /// `/ip4|ip6/<ip>/udp/<port>/quic-v1`
    pub fn quic(addr: SocketAddr) -> Self {
        let ip = match addr.ip() {
            IpAddr::V4(v4) => Protocol::Ip4(v4),
            IpAddr::V6(v6) => Protocol::Ip6(v6),
        };
        Multiaddr(vec![ip, Protocol::Udp(addr.port()), Protocol::QuicV1])
    }

    /// `/ip4|ip6/<ip>/tcp/<port>`
    pub fn tcp(addr: SocketAddr) -> Self {
        let ip = match addr.ip() {
            IpAddr::V4(v4) => Protocol::Ip4(v4),
            IpAddr::V6(v6) => Protocol::Ip6(v6),
        };
        Multiaddr(vec![ip, Protocol::Tcp(addr.port())])
    }

    pub fn iter(&self) -> impl Iterator<Item = &Protocol> {
        self.0.iter()
    }

    pub fn push(&mut self, p: Protocol) {
        self.0.push(p);
    }

    pub fn with(mut self, p: Protocol) -> Self {
        self.0.push(p);
        self
    }

    pub fn with_p2p(self, peer: &PeerId) -> Self {
        if self.peer_id().as_ref() == Some(peer) && matches!(self.0.last(), Some(Protocol::P2p(_)))
        {
            return self;
        }
        self.with(Protocol::P2p(peer.clone()))
    }

    /// The peer this address leads to: the last `/p2p/` component.
    pub fn peer_id(&self) -> Option<PeerId> {
        match self.0.last() {
            Some(Protocol::P2p(id)) => Some(id.clone()),
            _ => None,
        }
    }

    /// Drops a trailing `/p2p/<id>`.
    pub fn without_p2p(&self) -> Multiaddr {
        let mut v = self.0.clone();
        if matches!(v.last(), Some(Protocol::P2p(_))) {
            v.pop();
        }
        Multiaddr(v)
    }

    pub fn is_relayed(&self) -> bool {
        self.0.contains(&Protocol::P2pCircuit)
    }

    /// The UDP socket address of a direct `/ip*/…/udp/N/quic-v1` address.
    pub fn quic_socket_addr(&self) -> Option<SocketAddr> {
        if self.is_relayed() {
            return None;
        }
        match self.0.as_slice() {
            [Protocol::Ip4(ip), Protocol::Udp(port), Protocol::QuicV1, ..] => {
                Some(SocketAddr::new(IpAddr::V4(*ip), *port))
            }
            [Protocol::Ip6(ip), Protocol::Udp(port), Protocol::QuicV1, ..] => {
                Some(SocketAddr::new(IpAddr::V6(*ip), *port))
            }
            _ => None,
        }
    }

    /// The TCP socket address of a direct `/ip*/…/tcp/N[/p2p/<id>]` address. Anything
    /// layered on TCP (`/ws`, `/tls/ws`, …) is not ours to dial.
    pub fn tcp_socket_addr(&self) -> Option<SocketAddr> {
        let ip = match self.0.as_slice() {
            [Protocol::Ip4(ip), Protocol::Tcp(_), rest @ ..] if plain(rest) => IpAddr::V4(*ip),
            [Protocol::Ip6(ip), Protocol::Tcp(_), rest @ ..] if plain(rest) => IpAddr::V6(*ip),
            _ => return None,
        };
        match self.0[1] {
            Protocol::Tcp(port) => Some(SocketAddr::new(ip, port)),
            _ => None,
        }
    }

    /// The socket address of a direct address we can dial, QUIC or TCP.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        self.quic_socket_addr().or_else(|| self.tcp_socket_addr())
    }

    pub fn is_tcp(&self) -> bool {
        self.tcp_socket_addr().is_some()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        for p in &self.0 {
            let (code, body): (u64, Vec<u8>) = match p {
                Protocol::Ip4(ip) => (IP4, ip.octets().to_vec()),
                Protocol::Ip6(ip) => (IP6, ip.octets().to_vec()),
                Protocol::Tcp(port) => (TCP, port.to_be_bytes().to_vec()),
                Protocol::Udp(port) => (UDP, port.to_be_bytes().to_vec()),
                Protocol::Quic => (QUIC, Vec::new()),
                Protocol::QuicV1 => (QUIC_V1, Vec::new()),
                Protocol::P2pCircuit => (P2P_CIRCUIT, Vec::new()),
                Protocol::P2p(id) => (P2P, length_prefixed(id.as_bytes())),
                Protocol::Dns(n) => (DNS, length_prefixed(n.as_bytes())),
                Protocol::Dns4(n) => (DNS4, length_prefixed(n.as_bytes())),
                Protocol::Dns6(n) => (DNS6, length_prefixed(n.as_bytes())),
                Protocol::Dnsaddr(n) => (DNSADDR, length_prefixed(n.as_bytes())),
            };
            varint::encode(code, &mut out);
            out.extend_from_slice(&body);
        }
        out
    }

    pub fn from_bytes(mut b: &[u8]) -> Result<Self, MultiaddrError> {
        let mut out = Vec::new();
        while !b.is_empty() {
            let (code, rest) = varint::decode(b).map_err(|_| MultiaddrError::BadVarint)?;
            b = rest;
            let fixed = |b: &mut &[u8], n: usize| -> Result<Vec<u8>, MultiaddrError> {
                if b.len() < n {
                    return Err(MultiaddrError::Truncated);
                }
                let (head, tail) = b.split_at(n);
                *b = tail;
                Ok(head.to_vec())
            };
            let var = |b: &mut &[u8]| -> Result<Vec<u8>, MultiaddrError> {
                let (len, rest) = varint::decode(b).map_err(|_| MultiaddrError::BadLength)?;
                *b = rest;
                let len = usize::try_from(len).map_err(|_| MultiaddrError::BadLength)?;
                fixed(b, len)
            };
            let p = match code {
                IP4 => {
                    let o = fixed(&mut b, 4)?;
                    Protocol::Ip4(Ipv4Addr::new(o[0], o[1], o[2], o[3]))
                }
                IP6 => {
                    let o = fixed(&mut b, 16)?;
                    let mut a = [0u8; 16];
                    a.copy_from_slice(&o);
                    Protocol::Ip6(Ipv6Addr::from(a))
                }
                TCP | UDP => {
                    let o = fixed(&mut b, 2)?;
                    let port = u16::from_be_bytes([o[0], o[1]]);
                    if code == TCP {
                        Protocol::Tcp(port)
                    } else {
                        Protocol::Udp(port)
                    }
                }
                QUIC => Protocol::Quic,
                QUIC_V1 => Protocol::QuicV1,
                P2P_CIRCUIT => Protocol::P2pCircuit,
                P2P => {
                    let id = var(&mut b)?;
                    Protocol::P2p(PeerId::from_bytes(&id).map_err(MultiaddrError::PeerId)?)
                }
                DNS | DNS4 | DNS6 | DNSADDR => {
                    let name = dns_name(String::from_utf8(var(&mut b)?).ok())?;
                    match code {
                        DNS => Protocol::Dns(name),
                        DNS4 => Protocol::Dns4(name),
                        DNS6 => Protocol::Dns6(name),
                        _ => Protocol::Dnsaddr(name),
                    }
                }
                other => return Err(MultiaddrError::UnsupportedCode(other)),
            };
            out.push(p);
        }
        Ok(Multiaddr(out))
    }
}

fn length_prefixed(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len() + 2);
    varint::encode(b.len() as u64, &mut out);
    out.extend_from_slice(b);
    out
}

fn dns_name(name: Option<String>) -> Result<String, MultiaddrError> {
    match name {
        Some(n)
            if !n.is_empty()
                && n.len() <= MAX_DNS_NAME
                && n.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.' || c == b'_') =>
        {
            Ok(n)
        }
        _ => Err(MultiaddrError::BadDnsName),
    }
}

impl fmt::Display for Multiaddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.0 {
            match p {
                Protocol::Ip4(ip) => write!(f, "/ip4/{ip}")?,
                Protocol::Ip6(ip) => write!(f, "/ip6/{ip}")?,
                Protocol::Tcp(port) => write!(f, "/tcp/{port}")?,
                Protocol::Udp(port) => write!(f, "/udp/{port}")?,
                Protocol::Quic => f.write_str("/quic")?,
                Protocol::QuicV1 => f.write_str("/quic-v1")?,
                Protocol::P2pCircuit => f.write_str("/p2p-circuit")?,
                Protocol::P2p(id) => write!(f, "/p2p/{id}")?,
                Protocol::Dns(n) => write!(f, "/dns/{n}")?,
                Protocol::Dns4(n) => write!(f, "/dns4/{n}")?,
                Protocol::Dns6(n) => write!(f, "/dns6/{n}")?,
                Protocol::Dnsaddr(n) => write!(f, "/dnsaddr/{n}")?,
            }
        }
        Ok(())
    }
}

impl FromStr for Multiaddr {
    type Err = MultiaddrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some(rest) = s.strip_prefix('/') else {
            return Err(MultiaddrError::NoLeadingSlash(s.to_string()));
        };
        let mut parts = rest.split('/');
        let mut out = Vec::new();
        while let Some(name) = parts.next() {
            let mut arg = |what: &'static str| -> Result<&str, MultiaddrError> {
                match parts.next() {
                    Some(a) if !a.is_empty() => Ok(a),
                    _ => Err(MultiaddrError::MissingArg {
                        name: name.to_string(),
                        what,
                    }),
                }
            };
            let port = |a: &str| {
                a.parse::<u16>()
                    .map_err(|_| MultiaddrError::BadPort(a.to_string()))
            };
            let p = match name {
                "ip4" => Protocol::Ip4(
                    arg("an IPv4 address")?
                        .parse()
                        .map_err(|_| MultiaddrError::BadIpv4)?,
                ),
                "ip6" => Protocol::Ip6(
                    arg("an IPv6 address")?
                        .parse()
                        .map_err(|_| MultiaddrError::BadIpv6)?,
                ),
                "tcp" => Protocol::Tcp(port(arg("a port")?)?),
                "udp" => Protocol::Udp(port(arg("a port")?)?),
                "quic" => Protocol::Quic,
                "quic-v1" => Protocol::QuicV1,
                "p2p-circuit" => Protocol::P2pCircuit,
                "p2p" | "ipfs" => {
                    Protocol::P2p(arg("a peer ID")?.parse().map_err(MultiaddrError::PeerId)?)
                }
                "dns" => Protocol::Dns(dns_name(Some(arg("a host name")?.to_string()))?),
                "dns4" => Protocol::Dns4(dns_name(Some(arg("a host name")?.to_string()))?),
                "dns6" => Protocol::Dns6(dns_name(Some(arg("a host name")?.to_string()))?),
                "dnsaddr" => Protocol::Dnsaddr(dns_name(Some(arg("a host name")?.to_string()))?),
                "" => return Err(MultiaddrError::EmptyComponent),
                other => return Err(MultiaddrError::UnsupportedProtocol(other.to_string())),
            };
            out.push(p);
        }
        Ok(Multiaddr(out))
    }
}

impl serde::Serialize for Multiaddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";

    #[test]
    fn text_round_trips() {
        for s in [
            "/ip4/80.211.201.49/udp/6150/quic-v1/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN",
            "/ip6/2607:5300:201:3100::6b5f/udp/7250/quic-v1",
            "/ip4/1.2.3.4/tcp/6150",
            "/dnsaddr/rus-2.bootstrap.anywherelan.com/p2p/12D3KooWGRjpNYgFssihdgTDnr5rdhdh9ruMTbeT41h1fXfGmatZ",
            "/ip4/1.2.3.4/udp/1/quic-v1/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit",
        ] {
            let m: Multiaddr = s.parse().unwrap();
            assert_eq!(m.to_string(), s);
            assert_eq!(Multiaddr::from_bytes(&m.to_bytes()).unwrap(), m);
        }
    }

    #[test]
    fn binary_form_matches_the_multiaddr_spec() {
        // /ip4/127.0.0.1/udp/4001/quic-v1 as printed by the reference implementations.
        let m: Multiaddr = "/ip4/127.0.0.1/udp/4001/quic-v1".parse().unwrap();
        assert_eq!(
            m.to_bytes(),
            [0x04, 127, 0, 0, 1, 0x91, 0x02, 0x0f, 0xa1, 0xcd, 0x03]
        );
        let p2p: Multiaddr = format!("/p2p/{ID}").parse().unwrap();
        let b = p2p.to_bytes();
        assert_eq!(&b[..3], [0xa5, 0x03, 38]);
    }

    #[test]
    fn tcp_addresses() {
        let m: Multiaddr = format!("/ip4/10.0.0.1/tcp/4363/p2p/{ID}").parse().unwrap();
        assert_eq!(m.tcp_socket_addr(), Some("10.0.0.1:4363".parse().unwrap()));
        assert_eq!(m.socket_addr(), m.tcp_socket_addr());
        assert_eq!(m.quic_socket_addr(), None);
        let v6: Multiaddr = "/ip6/2001:db8::1/tcp/7250".parse().unwrap();
        assert_eq!(
            v6.tcp_socket_addr(),
            Some("[2001:db8::1]:7250".parse().unwrap())
        );
        assert_eq!(Multiaddr::tcp("[2001:db8::1]:7250".parse().unwrap()), v6);
        // A circuit through a TCP relay, or DNS, is not a direct TCP address.
        for s in [
            format!("/ip4/10.0.0.1/tcp/4363/p2p/{ID}/p2p-circuit"),
            format!("/ip4/10.0.0.1/tcp/4363/p2p/{ID}/p2p-circuit/p2p/{ID}"),
            "/dns4/example.com/tcp/4363".to_string(),
            "/ip4/10.0.0.1/udp/4363/quic-v1".to_string(),
        ] {
            let m: Multiaddr = s.parse().unwrap();
            assert_eq!(m.tcp_socket_addr(), None, "{s}");
            assert!(!m.is_tcp(), "{s}");
        }
    }

    #[test]
    fn accessors() {
        let m: Multiaddr = format!("/ip4/10.0.0.1/udp/4363/quic-v1/p2p/{ID}")
            .parse()
            .unwrap();
        assert_eq!(m.peer_id().unwrap().to_string(), ID);
        assert_eq!(m.quic_socket_addr(), Some("10.0.0.1:4363".parse().unwrap()));
        assert_eq!(
            m.without_p2p().to_string(),
            "/ip4/10.0.0.1/udp/4363/quic-v1"
        );
        assert!(!m.is_relayed());
        let relayed = m.clone().with(Protocol::P2pCircuit);
        assert!(relayed.is_relayed());
        assert_eq!(relayed.quic_socket_addr(), None);
    }

    #[test]
    fn bad_input_is_refused() {
        for s in [
            "",
            "ip4/1.2.3.4",
            "/ip4/1.2.3",
            "/udp/70000",
            "/ip4",
            "/foo/1",
            "/p2p/xyz",
            "/dns/a b",
        ] {
            assert!(s.parse::<Multiaddr>().is_err(), "{s}");
        }
        assert!(Multiaddr::from_bytes(&[0x04, 1, 2]).is_err());
        assert!(Multiaddr::from_bytes(&[0xff, 0xff, 0xff]).is_err());
        assert!(Multiaddr::from_bytes(&[0xa5, 0x03, 200, 1]).is_err());
    }
}

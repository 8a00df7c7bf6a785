//! `/dnsaddr/<host>` resolution (multiaddr spec): TXT records of `_dnsaddr.<host>` hold
//! `dnsaddr=<multiaddr>` lines. A minimal DNS client over UDP asks the first nameserver of
//! /etc/resolv.conf; no cache (bootstrap addresses are resolved rarely).

use crate::p2p::identity::PeerId;
use crate::p2p::multiaddr::{Multiaddr, Protocol};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(3);
const TYPE_TXT: u16 = 16;
/// Nested `/dnsaddr` lookups followed, and addresses kept in all.
const MAX_DEPTH: usize = 3;
const MAX_RESULTS: usize = 32;

#[derive(Debug)]
pub enum DnsError {
    BadName(String),
    Malformed,
    /// The server's response code (RCODE), not 0.
    Code(u8),
    NoRandomness,
    Io(std::io::Error),
    NoAnswer(SocketAddr),
}

impl fmt::Display for DnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DnsError::BadName(name) => write!(f, "bad DNS name '{name}'"),
            DnsError::Malformed => f.write_str("malformed DNS response"),
            DnsError::Code(rcode) => write!(f, "DNS error code {rcode}"),
            DnsError::NoRandomness => f.write_str("no randomness"),
            DnsError::Io(e) => write!(f, "{e}"),
            DnsError::NoAnswer(ns) => write!(f, "no DNS answer from {ns}"),
        }
    }
}

impl From<std::io::Error> for DnsError {
    fn from(e: std::io::Error) -> Self {
        DnsError::Io(e)
    }
}

/// The first `nameserver` of resolv.conf text, port 53.
pub fn nameserver_from(resolv_conf: &str) -> Option<SocketAddr> {
    resolv_conf.lines().find_map(|l| {
        let mut w = l.split_whitespace();
        (w.next() == Some("nameserver"))
            .then(|| w.next()?.parse::<IpAddr>().ok())
            .flatten()
            .map(|ip| SocketAddr::new(ip, 53))
    })
}

pub fn system_nameserver() -> SocketAddr {
    std::fs::read_to_string("/etc/resolv.conf")
        .ok()
        .and_then(|s| nameserver_from(&s))
        .unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 53))
}

pub fn encode_query(id: u16, name: &str) -> Result<Vec<u8>, DnsError> {
    let mut q = Vec::with_capacity(name.len() + 18);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(DnsError::BadName(name.to_string()));
        }
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&TYPE_TXT.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    Ok(q)
}

/// Skips a (possibly compressed) name; returns the offset after it.
fn skip_name(msg: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let len = *msg.get(pos)? as usize;
        match len {
            0 => return Some(pos + 1),
            l if l & 0xc0 == 0xc0 => return Some(pos + 2),
            l => pos += 1 + l,
        }
    }
}

fn u16_at(msg: &[u8], pos: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*msg.get(pos)?, *msg.get(pos + 1)?]))
}

/// The TXT strings of a response to query `id` (each record's strings joined).
pub fn parse_txt(msg: &[u8], id: u16) -> Result<Vec<String>, DnsError> {
    let bad = || DnsError::Malformed;
    if msg.len() < 12 || u16_at(msg, 0) != Some(id) {
        return Err(bad());
    }
    let rcode = msg[3] & 0x0f;
    if rcode != 0 {
        return Err(DnsError::Code(rcode));
    }
    let qd = u16_at(msg, 4).ok_or_else(bad)?;
    let an = u16_at(msg, 6).ok_or_else(bad)?;
    let mut pos = 12;
    for _ in 0..qd {
        pos = skip_name(msg, pos).ok_or_else(bad)? + 4;
    }
    let mut out = Vec::new();
    for _ in 0..an {
        pos = skip_name(msg, pos).ok_or_else(bad)?;
        let typ = u16_at(msg, pos).ok_or_else(bad)?;
        let rdlen = u16_at(msg, pos + 8).ok_or_else(bad)? as usize;
        let start = pos + 10;
        let rdata = msg.get(start..start + rdlen).ok_or_else(bad)?;
        pos = start + rdlen;
        if typ != TYPE_TXT {
            continue;
        }
        let mut text = Vec::new();
        let mut i = 0;
        while i < rdata.len() {
            let l = rdata[i] as usize;
            text.extend_from_slice(rdata.get(i + 1..i + 1 + l).ok_or_else(bad)?);
            i += 1 + l;
        }
        out.push(String::from_utf8_lossy(&text).into_owned());
    }
    Ok(out)
}

async fn query_txt(ns: SocketAddr, name: &str) -> Result<Vec<String>, DnsError> {
    let mut idb = [0u8; 2];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut idb)
        .map_err(|_| DnsError::NoRandomness)?;
    let id = u16::from_be_bytes(idb);
    let any: IpAddr = if ns.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv6Addr::UNSPECIFIED.into()
    };
    let sock = tokio::net::UdpSocket::bind(SocketAddr::new(any, 0)).await?;
    sock.connect(ns).await?;
    sock.send(&encode_query(id, name)?).await?;
    let mut buf = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let n = tokio::time::timeout_at(deadline, sock.recv(&mut buf))
            .await
            .map_err(|_| DnsError::NoAnswer(ns))??;
        // A stray datagram with another id is ignored, not fatal.
        if let Ok(v) = parse_txt(&buf[..n], id) {
            return Ok(v);
        }
    }
}

/// Resolves `/dnsaddr/<host>[/p2p/<id>]` to the multiaddrs it names (those for `<id>` only,
/// when given). Other addresses are returned as they are.
pub async fn resolve(addr: &Multiaddr, ns: SocketAddr) -> Result<Vec<Multiaddr>, DnsError> {
    let mut out = Vec::new();
    let mut todo = vec![(addr.clone(), 0usize)];
    while let Some((a, depth)) = todo.pop() {
        let Some(Protocol::Dnsaddr(host)) = a.iter().next().cloned() else {
            out.push(a);
            continue;
        };
        if depth >= MAX_DEPTH {
            continue;
        }
        let want: Option<PeerId> = a.peer_id();
        for txt in query_txt(ns, &format!("_dnsaddr.{host}")).await? {
            let Some(m) = txt.strip_prefix("dnsaddr=") else {
                continue;
            };
            let Ok(m) = m.parse::<Multiaddr>() else {
                continue;
            };
            if want.is_some() && m.peer_id() != want {
                continue;
            }
            if todo.len() + out.len() < MAX_RESULTS {
                todo.push((m, depth + 1));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(id: u16, name: &str, txts: &[&str]) -> Vec<u8> {
        let mut m = encode_query(id, name).unwrap();
        m[2] = 0x81;
        m[3] = 0x80;
        m[7] = txts.len() as u8;
        for t in txts {
            m.extend_from_slice(&[0xc0, 12]);
            m.extend_from_slice(&TYPE_TXT.to_be_bytes());
            m.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
            // Split into two character-strings to check they are joined.
            let (a, b) = t.split_at(t.len() / 2);
            m.extend_from_slice(&((t.len() + 2) as u16).to_be_bytes());
            m.push(a.len() as u8);
            m.extend_from_slice(a.as_bytes());
            m.push(b.len() as u8);
            m.extend_from_slice(b.as_bytes());
        }
        m
    }

    #[test]
    fn resolv_conf_and_parsing() {
        let ns = nameserver_from("# x\nsearch lan\nnameserver 192.0.2.53\nnameserver ::1\n");
        assert_eq!(ns, Some("192.0.2.53:53".parse().unwrap()));
        assert_eq!(nameserver_from("search lan\n"), None);
        let m = answer(
            7,
            "_dnsaddr.example.com",
            &["dnsaddr=/ip4/192.0.2.1/udp/1/quic-v1"],
        );
        assert_eq!(
            parse_txt(&m, 7).unwrap(),
            vec!["dnsaddr=/ip4/192.0.2.1/udp/1/quic-v1".to_string()]
        );
        assert!(parse_txt(&m, 8).is_err(), "wrong id");
        assert!(parse_txt(&m[..m.len() - 3], 7).is_err(), "truncated");
        assert!(encode_query(1, "a..b").is_err());
    }

    #[tokio::test]
    async fn resolves_through_a_local_dns_server_and_filters_by_peer() {
        let want = crate::p2p::identity::Keypair::from_seed([1; 32])
            .unwrap()
            .peer_id();
        let other = crate::p2p::identity::Keypair::from_seed([2; 32])
            .unwrap()
            .peer_id();
        let server = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let ns = server.local_addr().unwrap();
        let (a, b) = (
            format!("dnsaddr=/ip4/192.0.2.1/udp/6150/quic-v1/p2p/{want}"),
            format!("dnsaddr=/ip4/192.0.2.2/udp/6150/quic-v1/p2p/{other}"),
        );
        crate::spawn(async move {
            let mut buf = [0u8; 512];
            let (n, from) = server.recv_from(&mut buf).await.unwrap();
            let id = u16::from_be_bytes([buf[0], buf[1]]);
            assert!(buf[..n].windows(8).any(|w| w == b"_dnsaddr"));
            let reply = answer(id, "_dnsaddr.boot.example", &[&a, &b, "unrelated"]);
            server.send_to(&reply, from).await.unwrap();
        });
        let addr: Multiaddr = format!("/dnsaddr/boot.example/p2p/{want}").parse().unwrap();
        let got = resolve(&addr, ns).await.unwrap();
        assert_eq!(
            got,
            vec![format!("/ip4/192.0.2.1/udp/6150/quic-v1/p2p/{want}")
                .parse::<Multiaddr>()
                .unwrap()]
        );
    }
}

//! DCUtR (libp2p specs `relay/DCUtR.md`): turn a relayed connection into a direct one by
//! synchronised hole punching over QUIC.
//!
//! The peer that accepted the relayed connection (B) opens `/libp2p/dcutr`, sends CONNECT
//! with its addresses, measures the RTT from the answer, sends SYNC and after RTT/2 dials the
//! other side's addresses (QUIC client). The dialler of the circuit (A), on SYNC, sends punch
//! datagrams to B's addresses from its QUIC socket and waits for B's connection. These are
//! go-libp2p's and rust-libp2p's roles for QUIC (the responder "dials" by punching), so an
//! AWL peer on either side meets us. Three rounds on one stream at most.
//!
//! Punching creates one conntrack entry per (our socket, their address) on every NAT on the
//! way, so addresses, datagrams and rounds are capped, and `Backoff` spaces out attempts
//! per peer.

use super::protobuf::{self, DecodeError};
use super::relay::write_msg;
use super::Host;
use crate::p2p::identity::PeerId;
use crate::p2p::multiaddr::Multiaddr;
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub const PROTOCOL: &str = "/libp2p/dcutr";
const MAX_MESSAGE: usize = 4096;
const TYPE_CONNECT: u64 = 100;
const TYPE_SYNC: u64 = 300;
/// Addresses we offer or try, at most.
pub const MAX_ADDRS: usize = 8;
/// Rounds on one stream (the spec: 3 attempts).
pub const ROUNDS: usize = 3;
/// Punch datagrams per address per round, and the gap between them.
const PUNCHES: usize = 8;
const PUNCH_GAP: Duration = Duration::from_millis(100);
/// How long a round waits for the direct connection.
const ROUND_WAIT: Duration = Duration::from_secs(5);
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a hole punch (our side B) ended without a direct connection.
#[derive(Debug)]
pub enum Error {
    /// Opening the stream over the relayed connection.
    Host(super::Error),
    Io(std::io::Error),
    Timeout,
    Malformed(DecodeError),
    UnexpectedSync,
    NoAddress,
    NoDirect,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Host(e) => write!(f, "{e}"),
            Error::Io(e) => write!(f, "{e}"),
            Error::Timeout => f.write_str("timed out"),
            Error::Malformed(e) => write!(f, "{e}"),
            Error::UnexpectedSync => f.write_str("expected CONNECT, got SYNC"),
            Error::NoAddress => f.write_str("peer offered no address to punch"),
            Error::NoDirect => write!(f, "no direct connection after {ROUNDS} rounds"),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HolePunch {
    pub sync: bool,
    pub addrs: Vec<Multiaddr>,
}

impl HolePunch {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = protobuf::Writer::default();
        w.uint(1, if self.sync { TYPE_SYNC } else { TYPE_CONNECT });
        for a in &self.addrs {
            w.bytes(2, &a.to_bytes());
        }
        w.buf
    }

    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut kind = None;
        let mut addrs = Vec::new();
        for f in protobuf::Reader::new(buf) {
            let (n, v) = f?;
            match n {
                1 => kind = Some(v.as_uint()?),
                2 if addrs.len() < MAX_ADDRS => {
                    if let Ok(a) = Multiaddr::from_bytes(v.as_bytes()?) {
                        addrs.push(a);
                    }
                }
                _ => {}
            }
        }
        match kind {
            Some(TYPE_CONNECT) => Ok(HolePunch { sync: false, addrs }),
            Some(TYPE_SYNC) => Ok(HolePunch { sync: true, addrs }),
            _ => Err(DecodeError),
        }
    }
}

async fn read<R: tokio::io::AsyncRead + Unpin>(r: &mut R) -> Result<HolePunch, Error> {
    let body = tokio::time::timeout(IO_TIMEOUT, super::identify::read_framed(r, MAX_MESSAGE))
        .await
        .map_err(|_| Error::Timeout)??;
    HolePunch::decode(&body).map_err(Error::Malformed)
}

/// The addresses we offer: what peers observed first (the NAT's public side), then our own.
fn our_addrs(host: &Host) -> Vec<Multiaddr> {
    let mut v: Vec<Multiaddr> = host.observed_addrs();
    v.extend(host.listen_addrs());
    let lo = on_loopback(host);
    v.retain(|a| a.quic_socket_addr().is_some_and(|s| usable(&s, lo)));
    v.dedup();
    v.truncate(MAX_ADDRS);
    v
}

/// Loopback addresses only make sense between nodes bound to loopback (tests).
fn on_loopback(host: &Host) -> bool {
    host.local_addr().is_ok_and(|a| a.ip().is_loopback())
}

fn usable(s: &SocketAddr, loopback_ok: bool) -> bool {
    (loopback_ok || !s.ip().is_loopback())
        && !s.ip().is_unspecified()
        && !s.ip().is_multicast()
        && s.port() != 0
}

/// Their addresses worth trying (direct QUIC, not ours).
fn their_sockets(host: &Host, addrs: &[Multiaddr]) -> Vec<SocketAddr> {
    let mine: Vec<SocketAddr> = host
        .listen_addrs()
        .iter()
        .filter_map(Multiaddr::quic_socket_addr)
        .collect();
    let lo = on_loopback(host);
    let mut v: Vec<SocketAddr> = addrs
        .iter()
        .filter_map(Multiaddr::quic_socket_addr)
        .filter(|s| usable(s, lo) && !mine.contains(s))
        .collect();
    v.dedup();
    v.truncate(MAX_ADDRS);
    v
}

/// Side B: we accepted a relayed connection from `peer`; try to punch through. Returns the
/// time it took when a direct connection exists at the end.
pub async fn upgrade(host: &Host, peer: &PeerId) -> Result<Duration, Error> {
    let started = Instant::now();
    let mut s = host
        .open_stream(peer, &[PROTOCOL])
        .await
        .map_err(Error::Host)?;
    for round in 1..=ROUNDS {
        if host.has_direct(peer) {
            break;
        }
        let offer = HolePunch {
            sync: false,
            addrs: our_addrs(host),
        };
        let t0 = Instant::now();
        write_msg(&mut s.send, &offer.encode()).await?;
        let answer = read(&mut s.recv).await?;
        if answer.sync {
            return Err(Error::UnexpectedSync);
        }
        let rtt = t0.elapsed();
        let targets = their_sockets(host, &answer.addrs);
        if targets.is_empty() {
            return Err(Error::NoAddress);
        }
        let sync = HolePunch {
            sync: true,
            addrs: Vec::new(),
        };
        write_msg(&mut s.send, &sync.encode()).await?;
        tokio::time::sleep(rtt / 2).await;
        log::debug!(
            "dcutr with {} round {round}: rtt {:?}, dialling {:?}",
            peer.short(),
            rtt,
            targets
        );
        let _ = tokio::time::timeout(ROUND_WAIT, dial_any(host, peer, &targets)).await;
    }
    s.send.finish().await;
    if host.has_direct(peer) {
        Ok(started.elapsed())
    } else {
        Err(Error::NoDirect)
    }
}

/// Side A: answers `/libp2p/dcutr` on relayed connections and dials on SYNC.
/// Serves hole punching to friends only: a stranger over a (possibly fake) circuit could
/// otherwise make us send punch datagrams to addresses of its choosing (a UDP reflector).
/// A friend may start a punch every 10 s at most (burst 3).
pub fn serve(host: &Host) {
    let mut rx = host.register(PROTOCOL, 8);
    let host = host.clone();
    let mut limit = crate::base::ratelimit::RateLimiter::new(0.1, 3.0, 256);
    crate::spawn(async move {
        while let Some(mut s) = rx.recv().await {
            if !host.is_friend(&s.peer) || !limit.allow(&s.peer, Instant::now()) {
                log::debug!(
                    "dcutr from {} refused (not a friend, or too often)",
                    s.peer.short()
                );
                s.recv.stop();
                s.send.reset();
                continue;
            }
            let host = host.clone();
            crate::spawn(async move {
                let peer = s.peer.clone();
                for _ in 0..ROUNDS {
                    let Ok(connect) = read(&mut s.recv).await else {
                        break;
                    };
                    if connect.sync {
                        break;
                    }
                    let reply = HolePunch {
                        sync: false,
                        addrs: our_addrs(&host),
                    };
                    if write_msg(&mut s.send, &reply.encode()).await.is_err() {
                        break;
                    }
                    match read(&mut s.recv).await {
                        Ok(m) if m.sync => {}
                        _ => break,
                    }
                    let targets = their_sockets(&host, &connect.addrs);
                    if punch_and_wait(&host, &peer, &targets).await {
                        log::debug!("dcutr: direct connection to {}", peer.short());
                        break;
                    }
                }
                s.send.finish().await;
            });
        }
    });
}

/// Sends punch datagrams to `targets` (a few, spaced) until `peer` connects to us directly,
/// for at most a round.
async fn punch_and_wait(host: &Host, peer: &PeerId, targets: &[SocketAddr]) -> bool {
    let deadline = Instant::now() + ROUND_WAIT;
    let mut sent = 0;
    while Instant::now() < deadline {
        if host.has_direct(peer) {
            return true;
        }
        if sent < PUNCHES {
            for t in targets {
                host.punch(*t);
            }
            sent += 1;
        }
        tokio::time::sleep(PUNCH_GAP).await;
    }
    host.has_direct(peer)
}

impl Host {
    /// Sends one datagram of random bytes from our QUIC socket to `to`: it opens our NAT's
    /// mapping towards a peer that is about to dial us (DCUtR over QUIC).
    pub fn punch(&self, to: SocketAddr) {
        let mut junk = [0u8; 64];
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut junk);
        // A QUIC long-header bit pattern would make the peer's endpoint try to parse it; a
        // short header with an unknown connection ID is dropped quietly.
        junk[0] = (junk[0] & 0x3f) | 0x40;
        // An IPv6 (dual-stack) socket reaches IPv4 peers at their v4-mapped address.
        let to = match self.0.punch_socket.local_addr() {
            Ok(SocketAddr::V6(_)) => crate::p2p::transport::dual_stack::mapped(to),
            _ => to,
        };
        if let Err(e) = self.0.punch_socket.send_to(&junk, to) {
            log::debug!("punch to {to}: {e}");
        }
    }
}

/// Dials all `targets` at once; true when one reaches `peer`.
async fn dial_any(host: &Host, peer: &PeerId, targets: &[SocketAddr]) -> bool {
    let addrs: Vec<Multiaddr> = targets
        .iter()
        .map(|t| Multiaddr::quic(*t).with_p2p(peer))
        .collect();
    host.dial_first(&addrs).await || host.has_direct(peer)
}

/// Per-peer spacing of hole-punch attempts: after a failure wait `base`, doubling up to
/// `max`; a success resets it. Holds at most `cap` peers (the oldest is forgotten).
pub struct Backoff {
    base: Duration,
    max: Duration,
    cap: usize,
    peers: HashMap<PeerId, (Instant, Duration)>,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration, cap: usize) -> Self {
        Backoff {
            base,
            max,
            cap,
            peers: HashMap::new(),
        }
    }

    /// Whether an attempt may start now.
    pub fn ready(&self, peer: &PeerId, now: Instant) -> bool {
        self.peers.get(peer).is_none_or(|(next, _)| now >= *next)
    }

    pub fn failed(&mut self, peer: &PeerId, now: Instant) {
        let wait = self
            .peers
            .get(peer)
            .map(|(_, w)| (*w * 2).min(self.max))
            .unwrap_or(self.base);
        if self.peers.len() >= self.cap && !self.peers.contains_key(peer) {
            if let Some(oldest) = self
                .peers
                .iter()
                .min_by_key(|(_, (next, _))| *next)
                .map(|(p, _)| p.clone())
            {
                self.peers.remove(&oldest);
            }
        }
        self.peers.insert(peer.clone(), (now + wait, wait));
    }

    /// Whether the last attempt with `peer` failed (and was not followed by a success).
    pub fn has_failed(&self, peer: &PeerId) -> bool {
        self.peers.contains_key(peer)
    }

    pub fn succeeded(&mut self, peer: &PeerId) {
        self.peers.remove(peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::p2p::identity::Keypair;

    #[test]
    fn messages_round_trip() {
        let a: Multiaddr = "/ip4/198.51.100.7/udp/4363/quic-v1".parse().unwrap();
        let c = HolePunch {
            sync: false,
            addrs: vec![a],
        };
        assert_eq!(HolePunch::decode(&c.encode()).unwrap(), c);
        let s = HolePunch {
            sync: true,
            addrs: vec![],
        };
        assert_eq!(HolePunch::decode(&s.encode()).unwrap(), s);
        // No type, or an unknown one, is malformed.
        assert!(HolePunch::decode(&[]).is_err());
        assert!(HolePunch::decode(&[0x08, 0x05]).is_err());
    }

    #[test]
    fn backoff_doubles_caps_and_resets() {
        let p = Keypair::generate().peer_id();
        let mut b = Backoff::new(Duration::from_secs(10), Duration::from_secs(25), 2);
        let t = Instant::now();
        assert!(b.ready(&p, t));
        b.failed(&p, t);
        assert!(!b.ready(&p, t + Duration::from_secs(9)));
        assert!(b.ready(&p, t + Duration::from_secs(10)));
        b.failed(&p, t);
        assert!(!b.ready(&p, t + Duration::from_secs(19)));
        b.failed(&p, t);
        b.failed(&p, t);
        assert!(b.ready(&p, t + Duration::from_secs(25)), "capped at max");
        b.succeeded(&p);
        assert!(b.ready(&p, t));
        // Bounded: a third peer evicts one entry.
        let (q, r) = (Keypair::generate().peer_id(), Keypair::generate().peer_id());
        b.failed(&p, t);
        b.failed(&q, t);
        b.failed(&r, t);
        assert_eq!(b.peers.len(), 2);
    }
}

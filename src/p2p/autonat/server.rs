//! The serving side of AutoNAT: dial a requester back at the addresses it lists.
//!
//! A dial-back sends QUIC handshakes to addresses a peer chose, so it is guarded: only
//! friends are answered (everyone on a node in serving mode), only addresses on the IP the
//! request came from (the spec's anti-amplification rule), at most `MAX_DIALS` of them, one
//! dial-back at a time per requester and a few a minute. The dial goes out from a fresh
//! port: from our listening one it would ride the requester's existing NAT mapping.

use super::wire::{DialResponse, Message, Status, MAX_MESSAGE};
use crate::base::ratelimit::RateLimiter;
use crate::p2p::identity::PeerId;
use crate::p2p::multiaddr::Multiaddr;
use crate::p2p::relay::write_msg;
use crate::p2p::{transport, Host};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Addresses dialled per request, at most.
pub const MAX_DIALS: usize = 4;
/// Dial-backs running at once, for all requesters together.
pub const MAX_CONCURRENT: usize = 8;
/// More matching addresses than this in one request is not an honest node.
pub const MAX_MATCHING: usize = 8;
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a request is refused (sent as E_DIAL_REFUSED with this text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Stranger,
    Relayed,
    NoAddress,
    TooManyAddresses,
    Busy,
    TooOften,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Stranger => "not a friend",
            Refusal::Relayed => "request over a relayed connection",
            Refusal::NoAddress => "no address on the IP we see",
            Refusal::TooManyAddresses => "too many addresses",
            Refusal::Busy => "dial-back already running",
            Refusal::TooOften => "too many requests",
        }
    }
}

/// What the rules need to know about one request.
pub struct Request<'a> {
    pub peer: &'a PeerId,
    /// A friend, or we serve everyone.
    pub allowed: bool,
    /// The requester's IP as we see it (QUIC or TCP); `None` over a relay.
    pub observed: Option<IpAddr>,
    pub addrs: &'a [Multiaddr],
}

/// Per-requester state of the rules: who is being dialled, and the rate limit.
pub struct Rules {
    /// At most `MAX_CONCURRENT`.
    busy: Vec<PeerId>,
    limit: RateLimiter<PeerId>,
}

impl Default for Rules {
    fn default() -> Self {
        // One request a minute per peer, three in a burst (a client's round after a change).
        Rules {
            busy: Vec::new(),
            limit: RateLimiter::new(1.0 / 60.0, 3.0, 256),
        }
    }
}

impl Rules {
    /// The sockets to dial back, or why not. On success the requester is busy until `done`.
    pub fn admit(&mut self, r: &Request, now: Instant) -> Result<Vec<SocketAddr>, Refusal> {
        if !r.allowed {
            return Err(Refusal::Stranger);
        }
        let ip = r.observed.ok_or(Refusal::Relayed)?;
        let mut targets: Vec<SocketAddr> = Vec::new();
        for a in r.addrs {
            if a.peer_id().is_some_and(|p| p != *r.peer) {
                continue;
            }
            let Some(s) = a.quic_socket_addr().map(transport::canonical) else {
                continue;
            };
            if s.ip() == ip && s.port() != 0 && !targets.contains(&s) {
                targets.push(s);
            }
        }
        if targets.len() > MAX_MATCHING {
            return Err(Refusal::TooManyAddresses);
        }
        if targets.is_empty() {
            return Err(Refusal::NoAddress);
        }
        if self.busy.contains(r.peer) || self.busy.len() >= MAX_CONCURRENT {
            return Err(Refusal::Busy);
        }
        if !self.limit.allow(r.peer, now) {
            return Err(Refusal::TooOften);
        }
        self.busy.push(r.peer.clone());
        targets.truncate(MAX_DIALS);
        Ok(targets)
    }

    pub fn done(&mut self, peer: &PeerId) {
        self.busy.retain(|p| p != peer);
    }
}

/// Answers `/libp2p/autonat/1.0.0`: friends only unless `everyone` (serving mode).
pub fn serve(host: &Host, everyone: bool) {
    let mut rx = host.register(super::wire::PROTOCOL, 8);
    let host = host.clone();
    let rules = Arc::new(Mutex::new(Rules::default()));
    crate::spawn(async move {
        while let Some(s) = rx.recv().await {
            let (host, rules) = (host.clone(), rules.clone());
            crate::spawn(async move { answer(&host, &rules, s, everyone).await });
        }
    });
}

fn lock(r: &Mutex<Rules>) -> std::sync::MutexGuard<'_, Rules> {
    r.lock().unwrap_or_else(|e| e.into_inner())
}

async fn answer(host: &Host, rules: &Mutex<Rules>, mut s: crate::p2p::Stream, everyone: bool) {
    let read = crate::p2p::identify::read_framed(&mut s.recv, MAX_MESSAGE);
    let Ok(Ok(body)) = tokio::time::timeout(IO_TIMEOUT, read).await else {
        return;
    };
    let reply = match Message::decode(&body) {
        Ok(Message::Dial { addrs, .. }) => {
            let observed = if host.is_relayed(&s.peer) {
                None
            } else {
                host.remote_addr(&s.peer)
                    .and_then(|a| a.socket_addr())
                    .map(|a| transport::canonical(a).ip())
            };
            let req = Request {
                peer: &s.peer,
                allowed: everyone || host.is_friend(&s.peer),
                observed,
                addrs: &addrs,
            };
            let admitted = lock(rules).admit(&req, Instant::now());
            match admitted {
                Err(why) => {
                    log::debug!("autonat from {} refused: {}", s.peer.short(), why.as_str());
                    crate::p2p::host::bump(&host.counters().autonat_refused);
                    Message::response(Status::DialRefused, why.as_str())
                }
                Ok(targets) => {
                    let r = dial_back(host, &s.peer, &targets).await;
                    lock(rules).done(&s.peer);
                    r
                }
            }
        }
        _ => Message::response(Status::BadRequest, "expected DIAL"),
    };
    let _ = tokio::time::timeout(IO_TIMEOUT, write_msg(&mut s.send, &reply.encode())).await;
    s.send.finish().await;
}

/// Tries `targets` in turn from a fresh port; the handshake must prove `peer`'s identity.
async fn dial_back(host: &Host, peer: &PeerId, targets: &[SocketAddr]) -> Message {
    let Some(first) = targets.first() else {
        return Message::response(Status::BadRequest, "no address");
    };
    let Ok(ep) = transport::probe_endpoint(first.is_ipv6()) else {
        return Message::response(Status::InternalError, "no socket");
    };
    let Ok(client) = transport::client_config(&host.0.cert, &host.0.transport, Some(peer.clone()))
    else {
        return Message::response(Status::InternalError, "no client config");
    };
    let mut reply = Message::response(Status::DialError, "dial failed");
    for t in targets {
        let Ok(connecting) = ep.connect_with(client.clone(), *t, "libp2p") else {
            continue;
        };
        if let Ok(Ok(conn)) = tokio::time::timeout(DIAL_TIMEOUT, connecting).await {
            conn.close(0u32.into(), b"autonat");
            reply = Message::DialResponse(DialResponse {
                status: Status::Ok,
                text: String::new(),
                addr: Some(Multiaddr::quic(*t)),
            });
            break;
        }
    }
    ep.close(0u32.into(), b"");
    reply
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::p2p::identity::Keypair;

    fn addr(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    fn req<'a>(peer: &'a PeerId, allowed: bool, addrs: &'a [Multiaddr]) -> Request<'a> {
        Request {
            peer,
            allowed,
            observed: Some("198.51.100.7".parse().unwrap()),
            addrs,
        }
    }

    #[test]
    fn answers_a_friend_at_its_own_ip() {
        let p = Keypair::generate().peer_id();
        let a = [
            addr("/ip4/198.51.100.7/udp/4363/quic-v1"),
            addr("/ip4/10.0.0.2/udp/4363/quic-v1"),
        ];
        let mut r = Rules::default();
        let t = r.admit(&req(&p, true, &a), Instant::now()).unwrap();
        assert_eq!(t, vec!["198.51.100.7:4363".parse().unwrap()]);
        // One at a time, then allowed again once done.
        assert_eq!(
            r.admit(&req(&p, true, &a), Instant::now()),
            Err(Refusal::Busy)
        );
        r.done(&p);
        assert!(r.admit(&req(&p, true, &a), Instant::now()).is_ok());
    }

    #[test]
    fn refuses_strangers_other_ips_relays_and_floods() {
        let p = Keypair::generate().peer_id();
        let mine = [addr("/ip4/198.51.100.7/udp/4363/quic-v1")];
        let other = [addr("/ip4/203.0.113.9/udp/4363/quic-v1")];
        let mut r = Rules::default();
        let now = Instant::now();
        assert_eq!(r.admit(&req(&p, false, &mine), now), Err(Refusal::Stranger));
        assert_eq!(
            r.admit(&req(&p, true, &other), now),
            Err(Refusal::NoAddress)
        );
        let relayed = Request {
            observed: None,
            ..req(&p, true, &mine)
        };
        assert_eq!(r.admit(&relayed, now), Err(Refusal::Relayed));
        let many: Vec<Multiaddr> = (1..=MAX_MATCHING as u16 + 1)
            .map(|port| addr(&format!("/ip4/198.51.100.7/udp/{port}/quic-v1")))
            .collect();
        assert_eq!(
            r.admit(&req(&p, true, &many), now),
            Err(Refusal::TooManyAddresses)
        );
        // Dials at most MAX_DIALS of a fair number.
        let some = &many[..MAX_MATCHING];
        assert_eq!(r.admit(&req(&p, true, some), now).unwrap().len(), MAX_DIALS);
        // Someone else's peer id in an address does not count.
        let q = Keypair::generate().peer_id();
        let foreign = [addr("/ip4/198.51.100.7/udp/4363/quic-v1").with_p2p(&q)];
        let p2 = Keypair::generate().peer_id();
        assert_eq!(
            r.admit(&req(&p2, true, &foreign), now),
            Err(Refusal::NoAddress)
        );
    }

    #[test]
    fn rate_limited_per_peer() {
        let p = Keypair::generate().peer_id();
        let a = [addr("/ip4/198.51.100.7/udp/4363/quic-v1")];
        let mut r = Rules::default();
        let now = Instant::now();
        for _ in 0..3 {
            assert!(r.admit(&req(&p, true, &a), now).is_ok());
            r.done(&p);
        }
        assert_eq!(r.admit(&req(&p, true, &a), now), Err(Refusal::TooOften));
        assert!(r
            .admit(&req(&p, true, &a), now + Duration::from_secs(60))
            .is_ok());
    }

    #[test]
    fn bounded_dial_backs_in_all() {
        let a = [addr("/ip4/198.51.100.7/udp/4363/quic-v1")];
        let mut r = Rules::default();
        let now = Instant::now();
        for _ in 0..MAX_CONCURRENT {
            let p = Keypair::generate().peer_id();
            assert!(r.admit(&req(&p, true, &a), now).is_ok());
        }
        let p = Keypair::generate().peer_id();
        assert_eq!(r.admit(&req(&p, true, &a), now), Err(Refusal::Busy));
    }
}

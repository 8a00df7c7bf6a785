//! The asking side of AutoNAT: now and then, ask up to three peers we trust (friends,
//! bootstrap nodes we chose) that serve the protocol to dial us back at our candidate public
//! addresses, and keep the verdict in the host (`Host::reachability`). When, and whom: the
//! pure `Status` (a peer is asked at most once per `REPROBE` unless our addresses changed).

use super::status::{Answer, Reachability, Status};
use super::wire::{Message, Status as Code, MAX_MESSAGE, PROTOCOL};
use crate::p2p::identify::read_framed;
use crate::p2p::identity::PeerId;
use crate::p2p::multiaddr::Multiaddr;
use crate::p2p::relay::write_msg;
use crate::p2p::Host;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Servers asked per round (or per tick while unsure).
const SERVERS: usize = 3;
/// Addresses offered per request (a server dials at most 4 on its side).
const MAX_OFFER: usize = 8;
/// The first round waits for connections and identify to settle.
const FIRST_PROBE: Duration = Duration::from_secs(20);
const TICK: Duration = Duration::from_secs(10);
/// A server dials up to 4 addresses for 5 s each.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

impl Host {
    /// Whether peers can reach us from outside, as AutoNAT found.
    pub fn reachability(&self) -> Reachability {
        match self.0.reachability.load(Ordering::Relaxed) {
            1 => Reachability::Public,
            2 => Reachability::Private,
            _ => Reachability::Unknown,
        }
    }

    fn set_reachability(&self, r: Reachability) {
        let v = match r {
            Reachability::Unknown => 0,
            Reachability::Public => 1,
            Reachability::Private => 2,
        };
        self.0.reachability.store(v, Ordering::Relaxed);
    }
}

/// Starts the probing task.
pub fn start(host: &Host) {
    let host = host.clone();
    crate::spawn(async move { run(host).await });
}

async fn run(host: Host) {
    let mut status = Status::new(Instant::now() + FIRST_PROBE);
    let mut observed = host.observed_addrs();
    loop {
        tokio::time::sleep(TICK).await;
        let now = Instant::now();
        let seen = host.observed_addrs();
        if seen != observed {
            observed = seen;
            status.addrs_changed(now);
        }
        if !status.due(now) {
            continue;
        }
        let offer = candidates(&host);
        if !offer.is_empty() {
            for s in status.pick(now, &servers(&host), SERVERS) {
                let Some(answer) = ask(&host, &s, &offer).await else {
                    continue;
                };
                if let Some(new) = status.record(&s, answer) {
                    host.set_reachability(new);
                    log::info!("reachability: {}", new.as_str());
                }
            }
        }
        status.probed(Instant::now());
    }
}

/// Our addresses that might be reachable from outside: what peers observed and what a router
/// maps to us. Not listen addresses: a public one is observed as well, and a server dials
/// only addresses on the IP it sees us at.
pub fn candidates(host: &Host) -> Vec<Multiaddr> {
    let mut out: Vec<Multiaddr> = Vec::new();
    for a in host.observed_addrs().into_iter().chain(host.mapped_addrs()) {
        if a.quic_socket_addr().is_some() && !out.contains(&a) {
            out.push(a);
        }
    }
    out.truncate(MAX_OFFER);
    out
}

/// The trusted peers (friends, bootstrap nodes we chose) directly connected and serving
/// AutoNAT; `Status::pick` chooses among them.
pub(super) fn servers(host: &Host) -> Vec<PeerId> {
    let trust = host.trust();
    host.connected_peers()
        .into_iter()
        .filter(|p| {
            host.peer_lists(p, PROTOCOL)
                && ((trust.friend)(p) || (trust.trusted_observer)(p))
                && host.has_direct(p)
                && !host.is_relayed(p)
        })
        .collect()
}

/// One request; `None` when the answer says nothing about us.
async fn ask(host: &Host, server: &PeerId, offer: &[Multiaddr]) -> Option<Answer> {
    let exchange = async {
        let mut s = host.open_stream(server, &[PROTOCOL]).await.ok()?;
        let req = Message::Dial {
            peer: Some(host.peer_id()),
            addrs: offer.to_vec(),
        };
        write_msg(&mut s.send, &req.encode()).await.ok()?;
        let body = read_framed(&mut s.recv, MAX_MESSAGE).await.ok()?;
        s.send.finish().await;
        Message::decode(&body).ok()
    };
    let reply = tokio::time::timeout(ANSWER_TIMEOUT, exchange)
        .await
        .ok()??;
    let Message::DialResponse(r) = reply else {
        return None;
    };
    // The status code as in the spec (0 OK, 100 E_DIAL_ERROR, 101 E_DIAL_REFUSED, …).
    log::debug!(
        "autonat: {} answered {} {}",
        server.short(),
        r.status as u16,
        r.text
    );
    match r.status {
        Code::Ok => Some(Answer::Reached),
        Code::DialError | Code::DialRefused => Some(Answer::Failed),
        Code::BadRequest | Code::InternalError => None,
    }
}

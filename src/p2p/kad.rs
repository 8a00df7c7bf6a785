//! Kademlia on `/awl/kad/1.0.0` (AWL's DHT protocol prefix): the FIND_NODE codec and an
//! I/O-free iterative lookup, as the libp2p kad-dht spec describes them.
//!
//! The driver (discovery) feeds the lookup with responses and failures and dials what it
//! returns; nothing here touches a socket or a clock.

use super::protobuf::{self, DecodeError};
use super::{identify, Error, Host};
use crate::p2p::identity::PeerId;
use crate::p2p::multiaddr::Multiaddr;
use std::collections::BTreeMap;
use tokio::io::AsyncWriteExt;

pub const PROTOCOL: &str = "/awl/kad/1.0.0";
/// Closest peers a response carries and a lookup keeps (the spec's k).
pub const K: usize = 20;
/// Queries in flight per lookup (the spec's α).
pub const ALPHA: usize = 3;
/// A peer entry carries at most this many addresses; extra ones are dropped.
const MAX_ADDRS: usize = 16;
pub const MAX_MESSAGE: usize = 64 * 1024;

const TYPE_FIND_NODE: u64 = 4;
const F_TYPE: u32 = 1;
const F_KEY: u32 = 2;
const F_CLOSER: u32 = 8;
const F_CLUSTER_LEVEL: u32 = 10;
const P_ID: u32 = 1;
const P_ADDRS: u32 = 2;
const P_CONNECTION: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    NotConnected = 0,
    Connected = 1,
    CanConnect = 2,
    CannotConnect = 3,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KadPeer {
    pub id: PeerId,
    pub addrs: Vec<Multiaddr>,
    pub connection: Connection,
}

/// A FIND_NODE request or response (other message types are not used by awl).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindNode {
    pub key: Vec<u8>,
    pub closer: Vec<KadPeer>,
}

impl FindNode {
    pub fn request(target: &PeerId) -> Self {
        FindNode {
            key: target.as_bytes().to_vec(),
            closer: Vec::new(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = protobuf::Writer::default();
        w.uint(F_TYPE, TYPE_FIND_NODE).bytes(F_KEY, &self.key);
        for p in &self.closer {
            let mut pw = protobuf::Writer::default();
            pw.bytes(P_ID, p.id.as_bytes());
            for a in &p.addrs {
                pw.bytes(P_ADDRS, &a.to_bytes());
            }
            pw.uint(P_CONNECTION, p.connection as u64);
            w.bytes(F_CLOSER, &pw.buf);
        }
        w.uint(F_CLUSTER_LEVEL, 0);
        w.buf
    }

    /// Decodes a FIND_NODE message. Peers with unparsable IDs are skipped, as are addresses
    /// of transports we don't know; a message of another type is an error.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut msg = FindNode {
            key: Vec::new(),
            closer: Vec::new(),
        };
        let mut kind = None;
        for f in protobuf::Reader::new(buf) {
            let (n, v) = f?;
            match n {
                F_TYPE => kind = Some(v.as_uint()?),
                F_KEY => msg.key = v.as_bytes()?.to_vec(),
                F_CLOSER if msg.closer.len() < K => {
                    if let Some(p) = decode_peer(v.as_bytes()?)? {
                        msg.closer.push(p);
                    }
                }
                _ => {}
            }
        }
        // proto3 omits a zero enum; FIND_NODE is 4, so it must be present.
        if kind != Some(TYPE_FIND_NODE) {
            return Err(DecodeError);
        }
        Ok(msg)
    }
}

fn decode_peer(buf: &[u8]) -> Result<Option<KadPeer>, DecodeError> {
    let mut id = None;
    let mut addrs = Vec::new();
    let mut connection = Connection::NotConnected;
    for f in protobuf::Reader::new(buf) {
        let (n, v) = f?;
        match n {
            P_ID => id = PeerId::from_bytes(v.as_bytes()?).ok(),
            P_ADDRS if addrs.len() < MAX_ADDRS => {
                if let Ok(a) = Multiaddr::from_bytes(v.as_bytes()?) {
                    addrs.push(a);
                }
            }
            P_CONNECTION => {
                connection = match v.as_uint()? {
                    1 => Connection::Connected,
                    2 => Connection::CanConnect,
                    3 => Connection::CannotConnect,
                    _ => Connection::NotConnected,
                }
            }
            _ => {}
        }
    }
    Ok(id.map(|id| KadPeer {
        id,
        addrs,
        connection,
    }))
}

/// Kademlia distance: XOR of the SHA-256 of the keys, compared as a big-endian number.
pub fn distance(a: &[u8], b: &[u8]) -> [u8; 32] {
    let ha = ring::digest::digest(&ring::digest::SHA256, a);
    let hb = ring::digest::digest(&ring::digest::SHA256, b);
    let mut d = [0u8; 32];
    for (i, x) in d.iter_mut().enumerate() {
        *x = ha.as_ref()[i] ^ hb.as_ref()[i];
    }
    d
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    NotQueried,
    Waiting,
    Succeeded,
    Failed,
}

/// An iterative FIND_NODE lookup for one target.
///
/// Ends when the target itself turns up with addresses, or when the `K` closest peers seen
/// have all answered or failed and nothing is in flight.
pub struct Lookup {
    target: PeerId,
    peers: BTreeMap<[u8; 32], (KadPeer, State)>,
    found: Option<KadPeer>,
}

impl Lookup {
    pub fn new(target: PeerId, seeds: impl IntoIterator<Item = KadPeer>) -> Self {
        let mut l = Lookup {
            target,
            peers: BTreeMap::new(),
            found: None,
        };
        l.add(seeds);
        l
    }

    fn add(&mut self, peers: impl IntoIterator<Item = KadPeer>) {
        for p in peers {
            if p.id == self.target {
                if !p.addrs.is_empty() {
                    self.found = Some(p);
                }
                continue;
            }
            let d = distance(p.id.as_bytes(), self.target.as_bytes());
            self.peers.entry(d).or_insert((p, State::NotQueried));
        }
    }

    /// Peers to query now (at most `ALPHA` in flight), closest first.
    pub fn next_queries(&mut self) -> Vec<KadPeer> {
        if self.is_done() {
            return Vec::new();
        }
        let in_flight = self
            .peers
            .values()
            .filter(|(_, s)| *s == State::Waiting)
            .count();
        let mut out = Vec::new();
        for (p, s) in self.peers.values_mut().take(K) {
            if out.len() + in_flight >= ALPHA {
                break;
            }
            if *s == State::NotQueried {
                *s = State::Waiting;
                out.push(p.clone());
            }
        }
        out
    }

    pub fn on_response(&mut self, from: &PeerId, closer: Vec<KadPeer>) {
        self.set(from, State::Succeeded);
        self.add(closer);
    }

    pub fn on_failure(&mut self, from: &PeerId) {
        self.set(from, State::Failed);
    }

    fn set(&mut self, id: &PeerId, state: State) {
        let d = distance(id.as_bytes(), self.target.as_bytes());
        if let Some((_, s)) = self.peers.get_mut(&d) {
            *s = state;
        }
    }

    /// The target's entry (with addresses) once some peer reported it.
    pub fn found(&self) -> Option<&KadPeer> {
        self.found.as_ref()
    }

    pub fn is_done(&self) -> bool {
        self.found.is_some()
            || self
                .peers
                .values()
                .take(K)
                .all(|(_, s)| matches!(s, State::Succeeded | State::Failed))
    }
}

/// Sends one FIND_NODE for `target` to a connected peer and returns the peers it names.
pub async fn query(host: &Host, peer: &PeerId, target: &PeerId) -> Result<Vec<KadPeer>, Error> {
    let mut s = host.open_stream(peer, &[PROTOCOL]).await?;
    let msg = identify::frame(&FindNode::request(target).encode());
    s.send.write_all(&msg).await?;
    let body = identify::read_framed(&mut s.recv, MAX_MESSAGE).await?;
    s.send.finish().await;
    let resp = FindNode::decode(&body)?;
    Ok(resp.closer)
}

/// Iterative FIND_NODE for `target` starting at `seeds` (dialled as needed), within `deadline`.
/// Returns the target's entry with addresses, or `None` when the lookup ran out of peers.
pub async fn find_peer(
    host: &Host,
    target: &PeerId,
    seeds: Vec<KadPeer>,
    deadline: std::time::Duration,
) -> Result<Option<KadPeer>, Error> {
    let run = async {
        let mut lookup = Lookup::new(target.clone(), seeds);
        let mut inflight = tokio::task::JoinSet::new();
        loop {
            for p in lookup.next_queries() {
                let host = host.clone();
                let target = target.clone();
                inflight.spawn(async move {
                    if !host.is_connected(&p.id) {
                        let mut ok = false;
                        // QUIC addresses first: a TCP one is tried only if none answers.
                        let mut addrs: Vec<&Multiaddr> = p
                            .addrs
                            .iter()
                            .filter(|a| a.socket_addr().is_some())
                            .collect();
                        addrs.sort_by_key(|a| a.is_tcp());
                        for a in addrs {
                            if host.dial(&a.without_p2p().with_p2p(&p.id)).await.is_ok() {
                                ok = true;
                                break;
                            }
                        }
                        if !ok {
                            return (p.id, None);
                        }
                    }
                    let r = query(&host, &p.id, &target).await.ok();
                    (p.id, r)
                });
            }
            if lookup.is_done() || inflight.is_empty() {
                return Ok(lookup.found().cloned());
            }
            match inflight.join_next().await {
                Some(Ok((from, Some(closer)))) => lookup.on_response(&from, closer),
                Some(Ok((from, None))) => lookup.on_failure(&from),
                Some(Err(_)) | None => {}
            }
        }
    };
    tokio::time::timeout(deadline, run)
        .await
        .map_err(|_| Error::Timeout("peer lookup"))?
}

/// Server mode: answers FIND_NODE from what connected peers told us in identify. The target
/// comes first when connected, even if it is a DHT client (as go-libp2p-kad-dht does), so a
/// node behind NAT is found through the relay addresses it advertises; then the closest
/// connected peers that serve the DHT themselves.
pub fn serve(host: &Host) {
    let mut rx = host.register(PROTOCOL, 32);
    let host = host.clone();
    crate::spawn(async move {
        while let Some(mut s) = rx.recv().await {
            let host = host.clone();
            crate::spawn(async move {
                // A stream carries requests until the client closes it.
                for _ in 0..64 {
                    let body = match tokio::time::timeout(
                        std::time::Duration::from_secs(30),
                        identify::read_framed(&mut s.recv, MAX_MESSAGE),
                    )
                    .await
                    {
                        Ok(Ok(b)) => b,
                        _ => break,
                    };
                    let Ok(req) = FindNode::decode(&body) else {
                        break;
                    };
                    let resp = FindNode {
                        closer: answer(&host, &req.key),
                        key: req.key,
                    };
                    let msg = identify::frame(&resp.encode());
                    if s.send.write_all(&msg).await.is_err() {
                        break;
                    }
                }
                s.send.finish().await;
            });
        }
    });
}

fn answer(host: &Host, key: &[u8]) -> Vec<KadPeer> {
    let mut out = Vec::new();
    let entry = |p: &PeerId| {
        host.identify_info(p).map(|info| KadPeer {
            id: p.clone(),
            addrs: info.listen_addrs.into_iter().take(MAX_ADDRS).collect(),
            connection: Connection::Connected,
        })
    };
    let target = PeerId::from_bytes(key).ok();
    if let Some(t) = target.as_ref().filter(|t| host.is_connected(t)) {
        if let Some(e) = entry(t).filter(|e| !e.addrs.is_empty()) {
            out.push(e);
        }
    }
    let mut servers: Vec<KadPeer> = host
        .connected_peers()
        .iter()
        .filter(|p| Some(*p) != target.as_ref())
        .filter(|p| host.peer_lists(p, PROTOCOL))
        .filter_map(entry)
        .collect();
    servers.sort_by_key(|p| distance(p.id.as_bytes(), key));
    out.extend(servers.into_iter().take(K - out.len()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::p2p::identity::Keypair;

    fn peer(i: u8) -> KadPeer {
        KadPeer {
            id: Keypair::from_seed([i; 32]).unwrap().peer_id(),
            addrs: vec![format!("/ip4/192.0.2.{i}/udp/4363/quic-v1")
                .parse()
                .unwrap()],
            connection: Connection::Connected,
        }
    }

    #[test]
    fn find_node_round_trips_and_matches_hand_built_bytes() {
        let target = peer(1).id;
        let req = FindNode::request(&target);
        let bytes = req.encode();
        // type=FIND_NODE (08 04), key (12 26 …) — as go-libp2p-kad-dht sends it.
        assert_eq!(&bytes[..4], &[0x08, 0x04, 0x12, 38]);
        assert_eq!(FindNode::decode(&bytes).unwrap(), req);
        let resp = FindNode {
            key: req.key.clone(),
            closer: vec![peer(2), peer(3)],
        };
        assert_eq!(FindNode::decode(&resp.encode()).unwrap(), resp);
    }

    #[test]
    fn bad_messages_are_refused_and_bad_peers_skipped() {
        assert!(
            FindNode::decode(&[0x08, 0x05]).is_err(),
            "PING is not FIND_NODE"
        );
        assert!(FindNode::decode(&[0x12, 0x05, 1]).is_err(), "truncated");
        // A closer peer with a garbage ID is skipped, the message stays valid.
        let mut w = protobuf::Writer::default();
        w.uint(F_TYPE, TYPE_FIND_NODE);
        let mut bad = protobuf::Writer::default();
        bad.bytes(P_ID, b"garbage");
        w.bytes(F_CLOSER, &bad.buf);
        assert!(FindNode::decode(&w.buf).unwrap().closer.is_empty());
    }

    #[test]
    fn distance_is_symmetric_and_zero_for_self() {
        let (a, b) = (peer(1).id, peer(2).id);
        assert_eq!(
            distance(a.as_bytes(), b.as_bytes()),
            distance(b.as_bytes(), a.as_bytes())
        );
        assert_eq!(distance(a.as_bytes(), a.as_bytes()), [0u8; 32]);
    }

    #[test]
    fn lookup_walks_closer_and_stops_when_the_target_appears() {
        let target = peer(200);
        let seeds: Vec<KadPeer> = (1..=5).map(peer).collect();
        let mut l = Lookup::new(target.id.clone(), seeds);
        let first = l.next_queries();
        assert_eq!(first.len(), ALPHA);
        assert!(l.next_queries().is_empty(), "α in flight");
        l.on_failure(&first[0].id);
        l.on_response(&first[1].id, vec![peer(6), peer(7)]);
        let next = l.next_queries();
        assert_eq!(next.len(), 2, "two slots freed");
        assert!(!l.is_done());
        l.on_response(&next[0].id, vec![target.clone()]);
        assert!(l.is_done());
        assert_eq!(l.found().unwrap().addrs, target.addrs);
    }

    #[test]
    fn lookup_ends_when_everyone_answered() {
        let mut l = Lookup::new(peer(99).id, (1..=4).map(peer));
        for _ in 0..4 {
            for p in l.next_queries() {
                l.on_response(&p.id, vec![]);
            }
        }
        assert!(l.is_done());
        assert!(l.found().is_none());
    }
}

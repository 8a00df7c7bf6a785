//! The connection table: which connections we hold to which peer, dialling, opening streams,
//! and what happens when a connection comes or goes.

use super::choice::{self, Facts};
use super::{Error, Host, HostEvent, Stream, NEGOTIATION_TIMEOUT};
use crate::p2p::error::Refusal;
use crate::p2p::identity::PeerId;
use crate::p2p::multiaddr::Multiaddr;
use crate::p2p::transport::stream::{split_muxed, RecvStream, SendStream};
use crate::p2p::transport::{self, muxer, secure};
use crate::p2p::{fastpath, multistream, ping, relay};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

/// Time allowed for a QUIC + TLS handshake.
pub(super) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a relayed connection stays open once a direct one exists, and the duplicate of a
/// simultaneous dial once both are up (streams on it finish).
const SUPERSEDED_GRACE: Duration = Duration::from_secs(if cfg!(test) { 1 } else { 10 });
/// A TCP dial starts this long after the QUIC dials to the same peer, so QUIC wins when both
/// work and TCP takes over quickly when UDP is blocked (go-libp2p waits 250 ms too).
pub(in crate::p2p) const TCP_DIAL_DELAY: Duration = Duration::from_millis(250);

#[derive(Clone)]
pub(in crate::p2p) enum Link {
    Quic(quinn::Connection),
    /// Direct over TCP (TLS + yamux): streams only, no datagrams.
    Tcp(muxer::Handle),
    /// Through a relay's circuit (TLS + yamux).
    Relayed(muxer::Handle),
}

impl Link {
    pub(in crate::p2p) async fn open(&self) -> Result<(SendStream, RecvStream), Error> {
        match self {
            Link::Quic(c) => {
                let (s, r) = c.open_bi().await.map_err(Error::Quic)?;
                Ok((SendStream::Quic(s), RecvStream::Quic(r)))
            }
            Link::Tcp(h) | Link::Relayed(h) => {
                Ok(split_muxed(h.open().await.map_err(Error::Muxer)?))
            }
        }
    }

    /// One ping on a fresh stream of this very connection (not the peer's best one).
    pub(in crate::p2p) async fn ping(&self) -> Result<(), Error> {
        let (mut send, mut recv) = self.open().await?;
        multistream::dialer_select(&mut recv, &mut send, &[ping::PROTOCOL]).await?;
        ping::ping(&mut recv, &mut send).await?;
        send.finish().await;
        Ok(())
    }

    pub(in crate::p2p) fn close(&self, why: &'static [u8]) {
        match self {
            Link::Quic(c) => c.close(0u32.into(), why),
            Link::Tcp(h) | Link::Relayed(h) => h.close(),
        }
    }

    /// Closed already (a muxed connection whose session ended).
    pub(in crate::p2p) fn is_closed(&self) -> bool {
        match self {
            Link::Quic(c) => c.close_reason().is_some(),
            Link::Tcp(h) | Link::Relayed(h) => h.is_closed(),
        }
    }

    async fn closed(&self) -> String {
        match self {
            Link::Quic(c) => c.closed().await.to_string(),
            Link::Tcp(h) => {
                h.closed().await;
                "TCP connection ended".into()
            }
            Link::Relayed(h) => {
                h.closed().await;
                "relayed connection ended".into()
            }
        }
    }
}

#[derive(Clone)]
pub(in crate::p2p) struct Conn {
    pub(super) id: u64,
    pub(in crate::p2p) link: Link,
    pub(in crate::p2p) remote: Multiaddr,
    /// Opened by the peer (counts against the admission limits).
    pub(super) inbound: bool,
    /// Dialled by the node with the smaller peer ID (see `choice`).
    by_smaller: bool,
    since: Instant,
    /// The fast path's sending half on a direct QUIC connection (`p2p::fastpath`).
    pub(super) fast: Option<Arc<fastpath::Tx>>,
    /// Set once the connection has ended, before it leaves the table: the data plane's
    /// cached paths look here per packet (`fastpath::DirectPath::closed`).
    pub(super) closed: Arc<AtomicBool>,
}

impl Conn {
    pub(in crate::p2p) fn relayed(&self) -> bool {
        matches!(self.link, Link::Relayed(_))
    }

    pub(in crate::p2p) fn is_quic(&self) -> bool {
        matches!(self.link, Link::Quic(_))
    }

    fn facts(&self) -> Facts {
        Facts {
            quic: self.is_quic(),
            tcp: matches!(self.link, Link::Tcp(_)),
            by_smaller: self.by_smaller,
            since: self.since,
        }
    }
}

/// The connection new streams and datagrams to a peer use (`choice::pick`): the newest QUIC
/// one, the same one on both sides after a simultaneous dial; else the newest TCP one, else
/// the newest relayed.
pub(in crate::p2p) fn best(conns: &[Conn]) -> Option<&Conn> {
    choice::pick(conns, Conn::facts).and_then(|i| conns.get(i))
}

impl Host {
    /// Open connections: (direct, relayed).
    pub fn connection_counts(&self) -> (usize, usize) {
        let st = self.state();
        let all: Vec<&Conn> = st.conns.values().flatten().collect();
        let relayed = all.iter().filter(|c| c.relayed()).count();
        (all.len() - relayed, relayed)
    }

    /// Open direct connections over TCP.
    pub fn tcp_connection_count(&self) -> usize {
        self.state()
            .conns
            .values()
            .flatten()
            .filter(|c| matches!(c.link, Link::Tcp(_)))
            .count()
    }

    pub fn is_connected(&self, peer: &PeerId) -> bool {
        self.state().conns.get(peer).is_some_and(|c| !c.is_empty())
    }

    pub fn connected_peers(&self) -> Vec<PeerId> {
        self.state()
            .conns
            .iter()
            .filter(|(_, c)| !c.is_empty())
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// The remote address of the connection new streams to `peer` use.
    pub fn remote_addr(&self, peer: &PeerId) -> Option<Multiaddr> {
        self.state()
            .conns
            .get(peer)
            .and_then(|c| best(c))
            .map(|c| c.remote.clone())
    }

    /// Whether the connection new streams to `peer` use was opened by the peer.
    pub(in crate::p2p) fn accepted_from(&self, peer: &PeerId) -> bool {
        self.state()
            .conns
            .get(peer)
            .and_then(|c| best(c))
            .is_some_and(|c| c.inbound)
    }

    /// Whether new streams to `peer` go through a relay (circuit limits apply).
    pub fn is_relayed(&self, peer: &PeerId) -> bool {
        self.state()
            .conns
            .get(peer)
            .and_then(|c| best(c))
            .is_some_and(Conn::relayed)
    }

    /// Whether we have a direct (QUIC or TCP, not relayed) connection to `peer`.
    pub fn has_direct(&self, peer: &PeerId) -> bool {
        self.state()
            .conns
            .get(peer)
            .is_some_and(|c| c.iter().any(|c| !c.relayed()))
    }

    /// Whether we have a QUIC connection to `peer`.
    pub fn has_quic(&self, peer: &PeerId) -> bool {
        self.state()
            .conns
            .get(peer)
            .is_some_and(|c| c.iter().any(Conn::is_quic))
    }

    /// Dials a `/ip*/…/udp/N/quic-v1[/p2p/<id>]` or `/ip*/…/tcp/N[/p2p/<id>]` address. With a
    /// `/p2p/` part the remote must prove that identity or the handshake is aborted.
    pub async fn dial(&self, addr: &Multiaddr) -> Result<PeerId, Error> {
        // Addresses come from peers and the DHT: 0.0.0.0 or :: would reach our own host's
        // services, a multicast group or port 0 nobody; none is a peer's address.
        let sock = addr
            .socket_addr()
            .filter(|s| s.port() != 0 && !s.ip().is_unspecified() && !s.ip().is_multicast())
            .ok_or_else(|| Error::UnsupportedAddress(addr.clone()))?;
        if addr.is_tcp() {
            return self.dial_tcp(addr, sock).await;
        }
        let expected = addr.peer_id();
        if let Some(p) = &expected {
            // A relayed or TCP connection does not count: this may be the upgrade to QUIC.
            if self.has_quic(p) {
                return Ok(p.clone());
            }
            if *p == self.0.peer_id {
                return Err(Refusal::SelfDial.into());
            }
        }
        let client = transport::client_config(&self.0.cert, &self.0.transport, expected.clone())?;
        // The server name is not sent (SNI off) and not checked by the libp2p verifier.
        let connecting = self
            .0
            .endpoint
            .connect_with(client, sock, "libp2p")
            .map_err(Error::Dial)?;
        let connection = match tokio::time::timeout(HANDSHAKE_TIMEOUT, connecting).await {
            Err(_) => return Err(Error::Timeout("QUIC handshake")),
            Ok(Err(e)) => return Err(Error::Quic(e)),
            Ok(Ok(c)) => c,
        };
        let peer = transport::peer_of(&connection).ok_or(Error::NoCertificate)?;
        if expected.as_ref().is_some_and(|e| *e != peer) {
            // The verifier already refuses this; keep the check in case of a verifier bug.
            connection.close(0u32.into(), b"wrong peer id");
            return Err(Error::WrongPeer);
        }
        self.add_connection(peer.clone(), connection, true);
        Ok(peer)
    }

    /// Dials all `addrs` at once, TCP ones `TCP_DIAL_DELAY` after QUIC ones when there are
    /// both (as go-libp2p ranks them); true as soon as one succeeds (the others are dropped).
    pub async fn dial_first(&self, addrs: &[Multiaddr]) -> bool {
        let mut set = tokio::task::JoinSet::new();
        let any_quic = addrs.iter().any(|a| a.quic_socket_addr().is_some());
        for a in addrs {
            let (host, a) = (self.clone(), a.clone());
            let delay = if any_quic && a.is_tcp() {
                TCP_DIAL_DELAY
            } else {
                Duration::ZERO
            };
            set.spawn(async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                host.dial(&a).await.is_ok()
            });
        }
        while let Some(r) = set.join_next().await {
            if matches!(r, Ok(true)) {
                return true;
            }
        }
        false
    }

    /// Opens a stream to `peer` (on a direct connection if there is one) and negotiates one
    /// of `protocols`.
    pub async fn open_stream(&self, peer: &PeerId, protocols: &[&str]) -> Result<Stream, Error> {
        let (mut send, mut recv) = self.best_link(peer)?.open().await?;
        let protocol = tokio::time::timeout(
            NEGOTIATION_TIMEOUT,
            multistream::dialer_select(&mut recv, &mut send, protocols),
        )
        .await
        .map_err(|_| Error::Timeout("protocol negotiation"))??;
        Ok(Stream {
            peer: peer.clone(),
            protocol,
            send,
            recv,
        })
    }

    /// Opens a stream for `protocol` without waiting for the answer when identify says the
    /// peer takes it (lazy multistream-select, as go-libp2p does): the header and the proposal
    /// go out ahead of the first data, a round trip less on every new stream. The answer stays
    /// unread in `recv`, so this is for streams we only write (the tunnel). Keep `recv` while
    /// writing: dropping it asks the peer to stop sending, which could fail its answer. A
    /// refusal shows as an error on a later write. Without identify's word it negotiates.
    pub async fn open_stream_lazy(&self, peer: &PeerId, protocol: &str) -> Result<Stream, Error> {
        if !self.peer_lists(peer, protocol) {
            return self.open_stream(peer, &[protocol]).await;
        }
        let (mut send, recv) = self.best_link(peer)?.open().await?;
        let mut out = Vec::with_capacity(64);
        multistream::propose(protocol, &mut out);
        send.write_all(&out).await?;
        Ok(Stream {
            peer: peer.clone(),
            protocol: protocol.to_owned(),
            send,
            recv,
        })
    }

    /// The link new streams to `peer` go on.
    fn best_link(&self, peer: &PeerId) -> Result<Link, Error> {
        self.state()
            .conns
            .get(peer)
            .and_then(|c| best(c).map(|c| c.link.clone()))
            .ok_or_else(|| Error::NotConnected(peer.clone()))
    }

    /// Closes every connection to `peer`.
    pub fn disconnect(&self, peer: &PeerId) {
        let conns: Vec<Conn> = self.state().conns.get(peer).cloned().unwrap_or_default();
        for c in conns {
            c.link.close(b"disconnect");
        }
    }

    pub(super) fn close_conn(&self, peer: &PeerId, id: u64, why: &'static [u8]) {
        let link = self
            .state()
            .conns
            .get(peer)
            .and_then(|cs| cs.iter().find(|c| c.id == id))
            .map(|c| c.link.clone());
        if let Some(l) = link {
            l.close(why);
        }
    }

    pub(super) fn add_connection(
        &self,
        peer: PeerId,
        connection: quinn::Connection,
        outbound: bool,
    ) {
        let remote = Multiaddr::quic(transport::canonical(connection.remote_address()));
        let observed = Some(remote.clone());
        let link = Link::Quic(connection.clone());
        // Keys for the fast path, on a connection that could carry datagrams; the session's
        // receiving half lives as long as the task reading the connection's datagrams.
        let session =
            match connection.max_datagram_size().is_some() && self.0.datagrams.get().is_some() {
                true => self.0.fast.install(&connection, peer.clone()),
                false => None,
            };
        let fast = session.as_ref().map(|s| s.tx.clone());
        let id = self.insert_conn(&peer, link.clone(), remote.clone(), !outbound, fast);
        let host = self.clone();
        let p = peer.clone();
        let datagrams = connection.clone();
        crate::spawn(async move {
            while let Ok((send, recv)) = connection.accept_bi().await {
                host.spawn_serve(
                    p.clone(),
                    SendStream::Quic(send),
                    RecvStream::Quic(recv),
                    observed.clone(),
                );
            }
        });
        let host = self.clone();
        let p = peer.clone();
        crate::spawn(async move {
            host.read_datagrams(p, datagrams).await;
            drop(session);
        });
        let host = self.clone();
        let watched = link.clone();
        let p = peer.clone();
        crate::spawn(async move { host.watch_path(p, watched).await });
        self.connection_added(peer.clone(), id, link, remote, outbound, false);
        self.prepare_fast_path(&peer);
        self.retire_superseded(&peer);
    }

    /// What a new direct connection supersedes, closed after a grace period so streams on
    /// them can finish: relayed connections (new streams use the direct one at once), and the
    /// twin of a simultaneous dial (both nodes send on the one the smaller peer ID dialled:
    /// `choice`). Looked up again when the grace period ends: nothing closes if the chosen
    /// connection is gone by then or is not direct.
    fn retire_superseded(&self, peer: &PeerId) {
        if self.superseded(peer).is_empty() {
            return;
        }
        let host = self.clone();
        let peer = peer.clone();
        crate::spawn(async move {
            tokio::time::sleep(SUPERSEDED_GRACE).await;
            for (c, why) in host.superseded(&peer) {
                c.link.close(why);
            }
        });
    }

    fn superseded(&self, peer: &PeerId) -> Vec<(Conn, &'static [u8])> {
        let st = self.state();
        let Some(conns) = st.conns.get(peer) else {
            return Vec::new();
        };
        let Some(chosen) = choice::pick(conns, Conn::facts) else {
            return Vec::new();
        };
        if conns[chosen].relayed() || conns[chosen].link.is_closed() {
            return Vec::new();
        }
        let relayed = conns
            .iter()
            .filter(|c| c.relayed())
            .map(|c| (c.clone(), &b"direct connection established"[..]));
        let twins = choice::duplicates(conns, chosen, Conn::facts)
            .into_iter()
            .filter_map(|i| conns.get(i))
            .map(|c| (c.clone(), &b"duplicate connection"[..]));
        relayed.chain(twins).collect()
    }

    pub(in crate::p2p) fn add_relayed(
        &self,
        up: secure::Upgraded,
        remote: Multiaddr,
        outbound: bool,
    ) {
        self.add_muxed(up, remote, outbound, true);
    }

    /// A TCP connection or a relay circuit, secured and multiplexed. Either is probed with
    /// pings (a circuit's relay, or a TCP peer, may vanish without a word).
    pub(in crate::p2p) fn add_muxed(
        &self,
        up: secure::Upgraded,
        remote: Multiaddr,
        outbound: bool,
        relayed: bool,
    ) {
        let secure::Upgraded {
            peer,
            handle,
            mut inbound,
        } = up;
        let link = if relayed {
            Link::Relayed(handle)
        } else {
            Link::Tcp(handle)
        };
        let id = self.insert_conn(&peer, link.clone(), remote.clone(), !outbound, None);
        let host = self.clone();
        let p = peer.clone();
        // What a peer sees over a circuit is the relay, not us: no observed address.
        let observed = (!relayed).then(|| remote.clone());
        crate::spawn(async move {
            while let Some(s) = inbound.recv().await {
                let (send, recv) = split_muxed(s);
                host.spawn_serve(p.clone(), send, recv, observed.clone());
            }
        });
        let host = self.clone();
        let probe = link.clone();
        let relay_id = relay::parse_circuit(&remote).map(|(_, r)| r);
        crate::spawn(async move { host.probe_circuit(probe, relay_id).await });
        self.connection_added(peer.clone(), id, link, remote, outbound, relayed);
        if !relayed {
            self.retire_superseded(&peer);
        }
    }

    fn insert_conn(
        &self,
        peer: &PeerId,
        link: Link,
        remote: Multiaddr,
        inbound: bool,
        fast: Option<Arc<fastpath::Tx>>,
    ) -> u64 {
        let by_smaller = choice::dialled_by_smaller(&self.peer_id(), peer, !inbound);
        let mut st = self.state();
        st.next_id += 1;
        let id = st.next_id;
        st.conns.entry(peer.clone()).or_default().push(Conn {
            id,
            link,
            remote,
            inbound,
            by_smaller,
            since: Instant::now(),
            fast,
            closed: Arc::default(),
        });
        id
    }

    /// Announces a new connection, starts identify on it and watches for its end.
    fn connection_added(
        &self,
        peer: PeerId,
        id: u64,
        link: Link,
        remote: Multiaddr,
        outbound: bool,
        relayed: bool,
    ) {
        log::debug!(
            "connected to {} at {remote} ({}{})",
            peer.short(),
            if outbound { "out" } else { "in" },
            if relayed { ", relayed" } else { "" }
        );
        let _ = self.0.events.send(HostEvent::Connected {
            peer: peer.clone(),
            remote,
            outbound,
            relayed,
        });

        let host = self.clone();
        let p = peer.clone();
        crate::spawn(async move {
            if let Err(e) = host.request_identify(&p).await {
                log::debug!("identify {} failed: {e}", p.short());
            }
        });

        let host = self.clone();
        crate::spawn(async move {
            let reason = link.closed().await;
            log::debug!("connection to {} closed: {reason}", peer.short());
            let gone = {
                let mut st = host.state();
                let now_empty = match st.conns.get_mut(&peer) {
                    Some(list) => {
                        for c in list.iter().filter(|c| c.id == id) {
                            c.closed.store(true, Ordering::Relaxed);
                        }
                        list.retain(|c| c.id != id);
                        list.is_empty()
                    }
                    None => false,
                };
                if now_empty {
                    st.conns.remove(&peer);
                    st.identified.remove(&peer);
                    // A reservation lives as long as the connection to its relay.
                    st.reserved_relays.remove(&peer);
                }
                now_empty
            };
            if gone {
                let _ = host.0.events.send(HostEvent::Disconnected { peer });
                host.0.identified.notify_waiters();
            }
        });
    }
}

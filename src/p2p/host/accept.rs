//! Inbound connections: the QUIC accept loop, the bound on handshakes in progress, and the
//! slot decision (`admission`) once the handshake names the peer, for QUIC and TCP alike.

use super::conn::HANDSHAKE_TIMEOUT;
use super::{bump, Host};
use crate::p2p::admission::{self, Decision, Inbound};
use crate::p2p::identity::PeerId;
use crate::p2p::multiaddr::Multiaddr;
use crate::p2p::transport::{self, secure};
use std::net::{IpAddr, SocketAddr};

/// An inbound connection whose handshake named the peer, waiting for a slot.
pub(super) enum Handshaken {
    Quic(quinn::Connection),
    /// Upgraded TCP connection and where it came from.
    Tcp(secure::Upgraded, SocketAddr),
}

impl Handshaken {
    fn ip(&self) -> IpAddr {
        match self {
            Handshaken::Quic(c) => transport::canonical(c.remote_address()).ip(),
            Handshaken::Tcp(_, remote) => remote.ip(),
        }
    }

    fn refuse(self) {
        match self {
            Handshaken::Quic(c) => c.close(0u32.into(), b"busy"),
            Handshaken::Tcp(up, _) => up.handle.close(),
        }
    }

    fn keep(self, host: &Host, peer: PeerId) {
        match self {
            Handshaken::Quic(c) => host.add_connection(peer, c, false),
            Handshaken::Tcp(up, remote) => host.add_muxed(up, Multiaddr::tcp(remote), false, false),
        }
    }
}

impl Host {
    pub(super) async fn accept_loop(self) {
        while let Some(incoming) = self.0.endpoint.accept().await {
            // Before the handshake we know only the source address: bound the handshakes in
            // progress, in total and per address. Who gets a slot is decided after it.
            let ip = transport::canonical(incoming.remote_address()).ip();
            if !self.start_handshake(ip) {
                log::debug!("refusing connection from {}: too many handshakes", ip);
                bump(&self.0.counters.refused_connections);
                incoming.refuse();
                continue;
            }
            let host = self.clone();
            crate::spawn(async move {
                let remote = incoming.remote_address();
                let accepted = match incoming.accept() {
                    Ok(connecting) => tokio::time::timeout(HANDSHAKE_TIMEOUT, connecting).await,
                    Err(e) => {
                        host.end_handshake(ip);
                        return log::debug!("incoming from {remote}: {e}");
                    }
                };
                host.end_handshake(ip);
                match accepted {
                    Ok(Ok(conn)) => match transport::peer_of(&conn) {
                        Some(peer) => host.admit_inbound(peer, Handshaken::Quic(conn)),
                        None => conn.close(0u32.into(), b"no certificate"),
                    },
                    Ok(Err(e)) => {
                        bump(&host.0.counters.handshake_failures);
                        log::debug!("handshake with {remote} failed: {e}")
                    }
                    Err(_) => {
                        bump(&host.0.counters.handshake_failures);
                        log::debug!("handshake with {remote} timed out")
                    }
                }
            });
        }
    }

    pub(super) fn start_handshake(&self, ip: IpAddr) -> bool {
        let mut st = self.state();
        let total: usize = st.handshaking.values().sum();
        let here = st.handshaking.get(&ip).copied().unwrap_or(0);
        if total >= admission::MAX_HANDSHAKES || here >= admission::HANDSHAKES_PER_ADDRESS {
            return false;
        }
        *st.handshaking.entry(ip).or_default() += 1;
        true
    }

    pub(super) fn end_handshake(&self, ip: IpAddr) {
        let mut st = self.state();
        if let Some(n) = st.handshaking.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                st.handshaking.remove(&ip);
            }
        }
    }

    /// A handshaken inbound connection: kept if `admission` gives it a slot.
    pub(super) fn admit_inbound(&self, peer: PeerId, conn: Handshaken) {
        let ip = conn.ip();
        // Gathered under the state lock, judged outside it: the trust policy takes the peer
        // table's lock, which is never taken inside ours.
        let held: Vec<(PeerId, u64, Option<IpAddr>)> = {
            let st = self.state();
            let mut v: Vec<_> = st
                .conns
                .iter()
                .flat_map(|(p, cs)| {
                    cs.iter()
                        .filter(|c| c.inbound)
                        .map(move |c| (p.clone(), c.id, c.remote.socket_addr().map(|s| s.ip())))
                })
                .collect();
            v.sort_by_key(|(_, id, _)| *id);
            v
        };
        let friend = self.trust().friend;
        let held: Vec<Inbound> = held
            .into_iter()
            .map(|(p, conn_id, ip)| Inbound {
                friend: friend(&p),
                peer: p,
                conn_id,
                ip,
            })
            .collect();
        let is_friend = friend(&peer);
        match admission::decide(
            &held,
            &peer,
            Some(ip),
            is_friend,
            self.0.config.max_connections,
        ) {
            Decision::Admit => conn.keep(self, peer),
            Decision::AdmitEvicting(old, id) => {
                log::info!(
                    "closing a connection of unknown peer {} to make room for {}",
                    old.short(),
                    peer.short()
                );
                bump(&self.0.counters.evicted_connections);
                self.close_conn(&old, id, b"slot needed for a known peer");
                conn.keep(self, peer);
            }
            Decision::Refuse(why) => {
                log::debug!("refusing {} from {ip}: {why}", peer.short());
                bump(&self.0.counters.refused_connections);
                conn.refuse();
            }
        }
    }
}

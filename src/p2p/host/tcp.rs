//! The host's TCP side: the listener beside the QUIC socket, inbound connections under the
//! same handshake bounds and admission as QUIC ones, and TCP dials. A TCP connection is
//! upgraded like a relay circuit (`transport::secure`: TLS, then yamux) and then kept as a
//! direct connection without datagrams.

use super::accept::Handshaken;
use super::conn::HANDSHAKE_TIMEOUT;
use super::{bump, Error, Host};
use crate::p2p::error::Refusal;
use crate::p2p::identity::PeerId;
use crate::p2p::multiaddr::Multiaddr;
use crate::p2p::transport::{canonical, secure, tcp};
use std::net::SocketAddr;
use tokio::net::{TcpListener, TcpStream};

impl Host {
    /// Binds the TCP listener on `addr`; if the port is taken, on a free one (as the QUIC
    /// socket does when 4363 is taken). Returns the bound address.
    pub(super) fn bind_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
        match tcp::listen(addr) {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && addr.port() != 0 => {
                log::warn!(
                    "TCP port {} is in use; listening on a random port",
                    addr.port()
                );
                tcp::listen(SocketAddr::new(addr.ip(), 0))
            }
            other => other,
        }
    }

    pub(super) async fn tcp_accept_loop(self, listener: TcpListener) {
        let mut closing = self.0.closing.subscribe();
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = closing.changed() => return,
            };
            let (stream, remote) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: wait instead of spinning.
                    log::debug!("TCP accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let remote = canonical(remote);
            // As for QUIC: before the handshake only the source address is known, so the
            // handshakes in progress are bounded in total and per address.
            if !self.start_handshake(remote.ip()) {
                log::debug!("refusing TCP connection from {remote}: too many handshakes");
                bump(&self.0.counters.refused_connections);
                continue;
            }
            let host = self.clone();
            crate::spawn(async move { host.accept_tcp(stream, remote).await });
        }
    }

    /// Upgrades an accepted TCP connection within `HANDSHAKE_TIMEOUT`: a peer that sends
    /// garbage, stalls half-open or trickles bytes is dropped and counted.
    async fn accept_tcp(self, stream: TcpStream, remote: SocketAddr) {
        tcp::tune(&stream);
        let up = tokio::time::timeout(
            HANDSHAKE_TIMEOUT,
            secure::upgrade(stream, false, &self.0.cert, None),
        )
        .await;
        self.end_handshake(remote.ip());
        match up {
            Ok(Ok(up)) => {
                let peer = up.peer.clone();
                self.admit_inbound(peer, Handshaken::Tcp(up, remote));
            }
            Ok(Err(e)) => {
                bump(&self.0.counters.handshake_failures);
                log::debug!("TCP handshake with {remote} failed: {e}");
            }
            Err(_) => {
                bump(&self.0.counters.handshake_failures);
                log::debug!("TCP handshake with {remote} timed out");
            }
        }
    }

    /// Dials `/ip*/…/tcp/N[/p2p/<id>]` at `sock`.
    pub(super) async fn dial_tcp(
        &self,
        addr: &Multiaddr,
        sock: SocketAddr,
    ) -> Result<PeerId, Error> {
        let expected = addr.peer_id();
        if let Some(p) = &expected {
            if self.has_direct(p) {
                return Ok(p.clone());
            }
            if *p == self.0.peer_id {
                return Err(Refusal::SelfDial.into());
            }
        }
        let run = async {
            let stream = tcp::connect(sock).await?;
            secure::upgrade(stream, true, &self.0.cert, expected)
                .await
                .map_err(Error::Upgrade)
        };
        let up = tokio::time::timeout(HANDSHAKE_TIMEOUT, run)
            .await
            .map_err(|_| Error::Timeout("TCP handshake"))??;
        let peer = up.peer.clone();
        self.add_muxed(up, Multiaddr::tcp(canonical(sock)), true, false);
        Ok(peer)
    }

    /// The TCP listener's address, if TCP is on.
    pub fn tcp_local_addr(&self) -> Option<SocketAddr> {
        self.0.tcp_local
    }
}

#[cfg(test)]
mod tests;

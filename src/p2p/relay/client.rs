//! The host's side of circuit relay v2: reservations with a relay, circuits we dial through
//! one, circuits a relay opens to us (STOP), and the probe that closes a dead circuit.

use super::wire::{self as relay, HopMessage, HopType, Status, StopMessage};
use crate::p2p::error::{Refusal, Violation};
use crate::p2p::host::{best, bump, Link, NEGOTIATION_TIMEOUT};
use crate::p2p::identity::PeerId;
use crate::p2p::multiaddr::Multiaddr;
use crate::p2p::transport::secure;
use crate::p2p::transport::stream::{RecvStream, SendStream};
use crate::p2p::{Error, Host};
use std::time::Duration;

/// A relayed connection is probed (ping over the circuit) this often; two misses close it.
const CIRCUIT_PROBE: Duration = Duration::from_secs(3);
const CIRCUIT_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

impl Host {
    /// Asks `relay` (connected) for a reservation: it will then accept circuits to us.
    pub async fn reserve(
        &self,
        relay: &PeerId,
    ) -> Result<(relay::Reservation, Option<relay::Limit>), Error> {
        let mut s = self.open_stream(relay, &[relay::HOP_PROTOCOL]).await?;
        let reply = tokio::time::timeout(NEGOTIATION_TIMEOUT, async {
            relay::write_msg(&mut s.send, &HopMessage::new(HopType::Reserve).encode()).await?;
            relay::read_hop(&mut s.recv).await
        })
        .await
        .map_err(|_| Error::Timeout("relay reservation"))??;
        s.send.finish().await;
        match (reply.kind, reply.status, reply.reservation) {
            (HopType::Status, Some(Status::Ok), Some(r)) => {
                self.state().reserved_relays.insert(relay.clone());
                Ok((r, reply.limit))
            }
            (_, status, _) => Err(Error::ReservationRefused(status)),
        }
    }

    /// Connects to `target` through a relay (`relay_addr` ends in `/p2p/<relay>`), dialling
    /// the relay first if needed. The circuit is secured end to end with TLS.
    pub async fn dial_relayed(
        &self,
        relay_addr: &Multiaddr,
        target: &PeerId,
    ) -> Result<PeerId, Error> {
        let relay_id = relay_addr
            .peer_id()
            .ok_or_else(|| Error::UnsupportedAddress(relay_addr.clone()))?;
        if *target == self.0.peer_id || *target == relay_id {
            return Err(Refusal::BadRelayTarget.into());
        }
        if self.relayed_count() >= self.0.config.max_relayed {
            return Err(Refusal::TooManyRelayed.into());
        }
        if !self.is_connected(&relay_id) {
            self.dial(relay_addr).await?;
        }
        let mut s = self.open_stream(&relay_id, &[relay::HOP_PROTOCOL]).await?;
        let mut connect = HopMessage::new(HopType::Connect);
        connect.peer = Some(target.clone());
        let reply = tokio::time::timeout(NEGOTIATION_TIMEOUT, async {
            relay::write_msg(&mut s.send, &connect.encode()).await?;
            relay::read_hop(&mut s.recv).await
        })
        .await
        .map_err(|_| Error::Timeout("relay connect"))??;
        if reply.kind != HopType::Status || reply.status != Some(Status::Ok) {
            return Err(Error::CircuitRefused {
                relay: relay_id,
                status: reply.status,
            });
        }
        let io = tokio::io::join(s.recv, s.send);
        let up = secure::upgrade(io, true, &self.0.cert, Some(target.clone()))
            .await
            .map_err(Error::Upgrade)?;
        let remote = relay::circuit_addr(relay_addr, &relay_id);
        self.add_relayed(up, remote, true);
        Ok(target.clone())
    }

    /// The relay opened a circuit to us (stop protocol): accept it and secure it.
    pub(in crate::p2p) async fn accept_stop(
        &self,
        relay_id: PeerId,
        mut send: SendStream,
        mut recv: RecvStream,
    ) -> Result<(), Error> {
        let msg = tokio::time::timeout(NEGOTIATION_TIMEOUT, relay::read_stop(&mut recv))
            .await
            .map_err(|_| Error::Timeout("relay stop"))??;
        let Some(from) = msg.peer.filter(|_| msg.kind == relay::StopType::Connect) else {
            let reply = StopMessage::status(Status::UnexpectedMessage).encode();
            relay::write_msg(&mut send, &reply).await?;
            return Err(Violation::NotConnect.into());
        };
        // Only a relay we asked for a reservation may open circuits to us: anyone else
        // could fill our relayed slots with fake circuits.
        if !self.state().reserved_relays.contains(&relay_id) {
            bump(&self.0.counters.refused_circuits);
            let reply = StopMessage::status(Status::PermissionDenied).encode();
            relay::write_msg(&mut send, &reply).await?;
            return Err(Refusal::NotOurRelay(relay_id).into());
        }
        // Strangers share half of the relayed slots; friends may use all of them. `from` is
        // checked against the TLS identity below.
        let (cap, count) = if self.is_friend(&from) {
            (self.0.config.max_relayed, self.relayed_count())
        } else {
            (self.0.config.max_relayed / 2, self.relayed_stranger_count())
        };
        if count >= cap {
            bump(&self.0.counters.refused_circuits);
            let reply = StopMessage::status(Status::ResourceLimitExceeded).encode();
            relay::write_msg(&mut send, &reply).await?;
            return Err(Refusal::TooManyRelayed.into());
        }
        relay::write_msg(&mut send, &StopMessage::status(Status::Ok).encode()).await?;
        let io = tokio::io::join(recv, send);
        let up = secure::upgrade(io, false, &self.0.cert, None)
            .await
            .map_err(Error::Upgrade)?;
        if up.peer != from {
            up.handle.close();
            return Err(Error::CircuitMismatch {
                announced: from,
                answered: up.peer,
            });
        }
        let relay_addr = self
            .state()
            .conns
            .get(&relay_id)
            .and_then(|c| best(c))
            .map(|c| c.remote.clone())
            .unwrap_or_default();
        let remote = relay::circuit_addr(&relay_addr, &relay_id);
        self.add_relayed(up, remote, false);
        Ok(())
    }

    fn relayed_stranger_count(&self) -> usize {
        let peers: Vec<PeerId> = self
            .state()
            .conns
            .iter()
            .flat_map(|(p, cs)| cs.iter().filter(|c| c.relayed()).map(move |_| p.clone()))
            .collect();
        let friend = self.trust().friend;
        peers.iter().filter(|p| !friend(p)).count()
    }

    fn relayed_count(&self) -> usize {
        self.state()
            .conns
            .values()
            .flatten()
            .filter(|c| c.relayed())
            .count()
    }

    /// A relay that dies silently leaves the circuit looking open until the QUIC idle
    /// timeout to the relay (30 s); probing the circuit itself notices within ~10 s. A TCP
    /// connection whose peer vanished (no RST through a NAT) is probed the same way.
    pub(in crate::p2p) async fn probe_circuit(&self, probe: Link, relay_id: Option<PeerId>) {
        let mut misses = 0;
        loop {
            // After a miss, check again soon.
            let wait = if misses > 0 {
                Duration::from_secs(1)
            } else {
                CIRCUIT_PROBE
            };
            tokio::time::sleep(wait).await;
            if probe.is_closed() {
                return;
            }
            let alive = tokio::time::timeout(CIRCUIT_PROBE_TIMEOUT, probe.ping()).await;
            misses = if matches!(alive, Ok(Ok(()))) {
                0
            } else {
                misses + 1
            };
            if misses >= 2 {
                log::debug!("relayed connection not answering; closing it");
                // Likely the relay itself is gone: if it does not answer either, drop our
                // connection to it too, so the redial does not try it first.
                if let Some(r) = &relay_id {
                    let ok = tokio::time::timeout(CIRCUIT_PROBE_TIMEOUT, self.ping(r)).await;
                    if !matches!(ok, Ok(Ok(_))) {
                        log::info!("relay {} not answering; dropping it", r.short());
                        self.disconnect(r);
                    }
                }
                probe.close(b"circuit dead");
                return;
            }
        }
    }
}

//! The host's identify exchanges: asking every new connection who it is, answering the same
//! question, pushing our changed addresses, and what we advertise (listen, circuit and
//! observed addresses).

use super::{frame, read_framed, IdentifyInfo, MAX_MESSAGE, PROTOCOL, PUSH_PROTOCOL};
use crate::p2p::error::Violation;
use crate::p2p::host::NEGOTIATION_TIMEOUT;
use crate::p2p::identity::PeerId;
use crate::p2p::multiaddr::Multiaddr;
use crate::p2p::transport::stream::{RecvStream, SendStream};
use crate::p2p::{Error, Host, HostEvent};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// How long `identify()` waits for the exchange that runs on every new connection.
const IDENTIFY_WAIT: Duration = Duration::from_secs(10);

impl Host {
    /// What `peer` told us in identify, if the exchange completed.
    pub fn identify_info(&self, peer: &PeerId) -> Option<IdentifyInfo> {
        self.state().identified.get(peer).cloned()
    }

    /// Whether `peer` listed `protocol` in identify; reads it in place (no copy of the info).
    pub fn peer_lists(&self, peer: &PeerId, protocol: &str) -> bool {
        self.state()
            .identified
            .get(peer)
            .is_some_and(|i| i.lists(protocol))
    }

    /// Identify information of a connected peer, waiting for the exchange to finish.
    pub async fn identify(&self, peer: &PeerId) -> Result<IdentifyInfo, Error> {
        let wait = async {
            loop {
                let notified = self.0.identified.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if let Some(info) = self.identify_info(peer) {
                    return Ok(info);
                }
                if !self.is_connected(peer) {
                    return Err(Error::NotConnected(peer.clone()));
                }
                notified.await;
            }
        };
        tokio::time::timeout(IDENTIFY_WAIT, wait)
            .await
            .map_err(|_| Error::Timeout("identify"))?
    }

    /// What we advertise in identify: listen addresses, addresses a router maps to us, and
    /// relay circuit addresses.
    pub fn advertised_addrs(&self) -> Vec<Multiaddr> {
        let mut v = self.listen_addrs();
        let st = self.state();
        v.extend(st.mapped_addrs.iter().cloned());
        v.extend(st.circuit_addrs.iter().cloned());
        v
    }

    /// Addresses a router forwards to us (port mapping), as last set.
    pub fn mapped_addrs(&self) -> Vec<Multiaddr> {
        self.state().mapped_addrs.clone()
    }

    /// Sets the addresses a router forwards to us and tells connected peers.
    pub fn set_mapped_addrs(&self, addrs: Vec<Multiaddr>) {
        {
            let mut st = self.state();
            if st.mapped_addrs == addrs {
                return;
            }
            st.mapped_addrs = addrs;
        }
        self.push_identify_to_all();
    }

    /// Our addresses as other peers observed them (identify), newest first; only those a
    /// trusted peer or several networks confirmed.
    pub fn observed_addrs(&self) -> Vec<Multiaddr> {
        self.state().observed.confirmed().to_vec()
    }

    /// Sets our relay circuit addresses and tells connected peers (identify push).
    pub fn set_circuit_addrs(&self, addrs: Vec<Multiaddr>) {
        {
            let mut st = self.state();
            if st.circuit_addrs == addrs {
                return;
            }
            st.circuit_addrs = addrs;
        }
        self.push_identify_to_all();
    }

    /// Identify push to every connected peer: our advertised addresses changed.
    fn push_identify_to_all(&self) {
        for peer in self.connected_peers() {
            let host = self.clone();
            crate::spawn(async move {
                if let Err(e) = host.push_identify(&peer).await {
                    log::debug!("identify push to {}: {e}", peer.short());
                }
            });
        }
    }

    /// Asks a newly connected peer who it is; notes what it saw as our address.
    pub(in crate::p2p) async fn request_identify(&self, peer: &PeerId) -> Result<(), Error> {
        let relayed = self.is_relayed(peer);
        let via = self.remote_addr(peer);
        let observer = via.as_ref().and_then(|a| a.socket_addr()).map(|s| s.ip());
        // Over a TCP connection we dialled, the peer sees our ephemeral source port: only
        // the IP would be ours, and a port nobody listens on must not be advertised.
        let outbound_tcp = via.as_ref().is_some_and(|a| a.is_tcp()) && !self.accepted_from(peer);
        let mut s = self.open_stream(peer, &[PROTOCOL]).await?;
        let body = tokio::time::timeout(NEGOTIATION_TIMEOUT, read_framed(&mut s.recv, MAX_MESSAGE))
            .await
            .map_err(|_| Error::Timeout("identify"))??;
        let info = IdentifyInfo::decode(&body)?;
        if info
            .public_key
            .as_ref()
            .is_some_and(|k| k.to_peer_id() != *peer)
        {
            return Err(Violation::ForeignKey.into());
        }
        log::debug!("identified {}: {}", peer.short(), info.agent_version);
        let trust = self.trust();
        let trusted = (trust.friend)(peer) || (trust.trusted_observer)(peer);
        {
            let mut st = self.state();
            // What a peer saw over a circuit is the relay's view, not our address.
            if let Some(obs) = info
                .observed_addr
                .clone()
                .filter(|a| !(relayed || a.is_relayed() || (outbound_tcp && a.is_tcp())))
            {
                st.observed.report(obs, observer, trusted);
            }
            st.identified.insert(peer.clone(), info);
        }
        self.prepare_fast_path(peer);
        self.0.identified.notify_waiters();
        let _ = self
            .0
            .events
            .send(HostEvent::Identified { peer: peer.clone() });
        Ok(())
    }

    async fn push_identify(&self, peer: &PeerId) -> Result<(), Error> {
        let mut s = self.open_stream(peer, &[PUSH_PROTOCOL]).await?;
        let mut info = self.our_identify(None);
        info.public_key = None;
        let msg = frame(&info.encode());
        tokio::time::timeout(NEGOTIATION_TIMEOUT, s.send.write_all(&msg))
            .await
            .map_err(|_| Error::Timeout("identify push"))??;
        s.send.finish().await;
        Ok(())
    }

    fn our_identify(&self, observed: Option<Multiaddr>) -> IdentifyInfo {
        IdentifyInfo {
            public_key: Some(self.0.keypair.public()),
            protocol_version: self.0.config.protocol_version.clone(),
            agent_version: self.0.config.agent_version.clone(),
            listen_addrs: self.advertised_addrs(),
            protocols: self.protocols(),
            observed_addr: observed,
        }
    }

    /// A peer asked who we are; `observed` is where we see it (a circuit: unknown).
    pub(in crate::p2p) async fn answer_identify(
        &self,
        mut send: SendStream,
        observed: Option<Multiaddr>,
    ) -> Result<(), Error> {
        let msg = frame(&self.our_identify(observed).encode());
        send.write_all(&msg).await?;
        send.finish().await;
        Ok(())
    }

    /// A peer pushed what changed about it.
    pub(in crate::p2p) async fn accept_identify_push(
        &self,
        peer: PeerId,
        mut recv: RecvStream,
    ) -> Result<(), Error> {
        let body = tokio::time::timeout(NEGOTIATION_TIMEOUT, read_framed(&mut recv, MAX_MESSAGE))
            .await
            .map_err(|_| Error::Timeout("identify push"))??;
        let update = IdentifyInfo::decode(&body)?;
        let mut st = self.state();
        let entry = st.identified.entry(peer.clone()).or_default();
        entry.merge_push(update);
        drop(st);
        self.0.identified.notify_waiters();
        let _ = self.0.events.send(HostEvent::Identified { peer });
        Ok(())
    }
}

//! The friend flow's changes, asked for by the control API (and auto-accept): invite, accept,
//! decline, remove, reload. Each writes the UCI file before the peer table, so a failed write
//! leaves nothing behind; the talking to the peer runs afterwards as the node's task.

use crate::app::error::NodeError;
use crate::app::node::{lock, Node};
use crate::config;
use crate::mesh::peers::{KnownPeer, PeerError};
use crate::p2p::identity::PeerId;
use crate::p2p::multiaddr::Multiaddr;
use std::net::Ipv4Addr;
use std::sync::Arc;

impl Node {
    /// Invites a peer: adds it (unconfirmed), writes its UCI section, sends auth and status.
    pub async fn invite(
        self: &Arc<Self>,
        peer: &PeerId,
        alias: Option<String>,
        ip: Option<Ipv4Addr>,
        address: Option<Multiaddr>,
    ) -> Result<KnownPeer, NodeError> {
        let added = {
            let _w = lock(&self.writer);
            let prepared = lock(&self.peers).prepare_add(peer, alias, ip, false)?;
            let mut added = prepared.clone();
            if let Some(a) = address {
                let a = a.without_p2p().to_string();
                if !added.addresses.contains(&a) {
                    added.addresses.push(a);
                }
            }
            // The file first: if it cannot be written (or would not validate), nothing changed.
            self.write_peer_section(&added)?;
            let mut t = lock(&self.peers);
            match t.get_mut(peer) {
                Some(p) => p.addresses = added.addresses.clone(),
                None => t.commit_add(added.clone()),
            }
            added
        };
        self.save_state_now();
        let node = self.clone();
        let p = peer.clone();
        self.tasks.spawn(async move {
            node.connect(&p).await;
            node.handshake(&p).await;
        });
        Ok(added)
    }

    /// Accepts a pending request (or adds a peer directly), confirmed from our side.
    pub async fn accept(
        self: &Arc<Self>,
        peer: &PeerId,
        alias: Option<String>,
        ip: Option<Ipv4Addr>,
    ) -> Result<KnownPeer, NodeError> {
        let added = {
            let _w = lock(&self.writer);
            let added = lock(&self.peers).prepare_add(peer, alias, ip, true)?;
            self.write_peer_section(&added)?;
            lock(&self.peers).commit_add(added.clone());
            added
        };
        self.save_state_now();
        let node = self.clone();
        let p = peer.clone();
        self.tasks.spawn(async move {
            node.connect(&p).await;
            if let Err(e) = node.exchange_status(&p).await {
                log::debug!("status to {} after accept: {e}", p.short());
            }
        });
        Ok(added)
    }

    /// Declines a pending request: the peer is blocked and told so.
    pub async fn decline(self: &Arc<Self>, peer: &PeerId) -> Result<(), NodeError> {
        let req = lock(&self.peers)
            .take_request(peer)
            .ok_or_else(|| NodeError::NoRequest(peer.clone()))?;
        lock(&self.peers).block(peer.clone(), req.name);
        self.save_state_now();
        let node = self.clone();
        let p = peer.clone();
        self.tasks.spawn(async move {
            let _ = node.exchange_status(&p).await;
        });
        Ok(())
    }

    /// Removes a known peer (which blocks it, as AWL does) and its UCI section.
    pub fn remove(&self, peer: &PeerId) -> Result<(), NodeError> {
        {
            let _w = lock(&self.writer);
            if lock(&self.peers).get(peer).is_none() {
                return Err(PeerError::UnknownPeer(peer.clone()).into());
            }
            // The file first: if it cannot be written, the peer stays as it was.
            self.remove_peer_section(peer)?;
            lock(&self.peers).remove(peer)?;
        }
        // The table's change hook already closed the peer's queue in the data plane.
        self.sync_routes();
        self.save_state_now();
        Ok(())
    }

    /// Re-reads the UCI file (SIGHUP). Keeps the running config if the file is broken.
    pub fn reload(&self) -> Result<usize, NodeError> {
        let loaded = config::load(&self.config_path);
        self.health
            .set_reload(loaded.as_ref().map(|_| ()).map_err(|e| e.to_string()));
        let loaded = loaded.map_err(NodeError::Load)?;
        for w in &loaded.warnings {
            log::warn!("{w}");
        }
        let saved = lock(&self.peers).to_saved();
        lock(&self.peers).load(&loaded.config.peers, &saved);
        let n = loaded.config.peers.len();
        *lock(&self.cfg) = loaded.config;
        self.sync_routes();
        Ok(n)
    }
}

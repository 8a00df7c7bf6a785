//! The node's background loops, owned by its `tasks`: reactions to connections (handshake on
//! connect, redial on disconnect), redials of known peers, status and invite retries every
//! 5 minutes, and rare state-file writes.

use crate::app::node::{lock, Node};
use crate::mesh::peers::Relation;
use crate::p2p::identity::PeerId;
use crate::p2p::HostEvent;
use std::sync::Arc;
use std::time::Duration;

/// AWL: status exchange and invite retries every 5 minutes.
const STATUS_INTERVAL: Duration = Duration::from_secs(300);
/// The state file is written at most this often (flash wear), and at shutdown.
const STATE_SAVE_INTERVAL: Duration = Duration::from_secs(300);
/// Known peers dialled at once by the reconnect loop.
const PARALLEL_DIALS: usize = 16;

impl Node {
    pub(super) fn spawn_loops(self: &Arc<Self>) {
        // Reactions to connections.
        let node = self.clone();
        let mut events = self.host.events();
        self.tasks.spawn(async move {
            loop {
                match events.recv().await {
                    Ok(HostEvent::Connected { peer, .. }) => {
                        let n = node.clone();
                        node.tasks.spawn(async move { n.handshake(&peer).await });
                    }
                    Ok(HostEvent::Disconnected { peer }) => {
                        // Redial at once rather than at the next reconnect tick.
                        let n = node.clone();
                        node.tasks.spawn(async move {
                            tokio::time::sleep(Duration::from_millis(500)).await;
                            if n.relation(&peer) == Relation::Known && n.connect(&peer).await {
                                log::info!("reconnected to {}", peer.short());
                            }
                        });
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => return,
                }
            }
        });
        // Redials of known peers (AWL: at start, +5 s, then every reconnect_interval).
        let node = self.clone();
        self.tasks.spawn(async move {
            let mut wait = Duration::from_secs(5);
            loop {
                let ids: Vec<PeerId> = lock(&node.peers)
                    .iter()
                    .map(|p| p.peer_id.clone())
                    .collect();
                // In parallel (bounded): a dead peer's 10 s handshake timeout must not hold up
                // the others.
                let mut dials = tokio::task::JoinSet::new();
                for id in ids.into_iter().filter(|id| !node.host.is_connected(id)) {
                    if dials.len() >= PARALLEL_DIALS {
                        dials.join_next().await;
                    }
                    let node = node.clone();
                    dials.spawn(crate::boxed(async move {
                        if node.connect(&id).await {
                            log::info!("connected to {}", id.short());
                        }
                    }));
                }
                while dials.join_next().await.is_some() {}
                // A new bootstrap connection makes DHT lookups possible: retry at once.
                let _ = tokio::time::timeout(wait, node.discovery.bootstrap_up.notified()).await;
                wait =
                    Duration::from_secs(u64::from(lock(&node.cfg).main.reconnect_interval.max(1)));
            }
        });
        // Periodic status and invite retries.
        let node = self.clone();
        self.tasks.spawn(async move {
            let mut tick = tokio::time::interval(STATUS_INTERVAL);
            tick.tick().await;
            loop {
                tick.tick().await;
                let ids: Vec<PeerId> = lock(&node.peers)
                    .iter()
                    .map(|p| p.peer_id.clone())
                    .collect();
                for id in ids.into_iter().filter(|p| node.host.is_connected(p)) {
                    node.handshake(&id).await;
                }
            }
        });
        // Rare state-file writes.
        let node = self.clone();
        self.tasks.spawn(async move {
            let mut tick = tokio::time::interval(STATE_SAVE_INTERVAL);
            loop {
                tick.tick().await;
                if lock(&node.peers).dirty {
                    node.save_state_now();
                }
            }
        });
    }
}

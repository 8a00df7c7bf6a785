//! Traffic counters, per peer and global. Plain `u64`s behind a mutex: 32-bit MIPS has no
//! 64-bit atomics, and one uncontended lock per batch costs nothing on a single-thread runtime.

use crate::p2p::identity::PeerId;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct PeerStats {
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub tx_dropped: u64,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub rx_dropped: u64,
    pub rx_errors: u64,
    /// Of `tx_packets`/`rx_packets`: carried in QUIC datagrams (awl peers), not on a stream.
    pub tx_datagrams: u64,
    pub rx_datagrams: u64,
    /// Of `tx_dropped`: dropped by CoDel because the queue's delay stayed too long.
    pub tx_delay_dropped: u64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct GlobalStats {
    /// Packets from the TUN with no peer behind their destination (or not IPv4).
    pub tx_unroutable: u64,
    /// Packets larger than an AWL peer can receive.
    pub tx_too_big: u64,
    /// Tunnel streams from peers we don't know, closed unread.
    pub rx_unknown_peer_streams: u64,
    /// Tunnel datagrams (or packets) from peers we don't know, dropped.
    pub rx_unknown_peer_packets: u64,
    /// TCP super-packets read from the TUN (offloads on) and cut into segments here.
    pub tun_super_packets: u64,
}

/// One peer's counters. The packet path holds them in the peer's snapshot entry and its
/// sender task, so counting a packet takes this lock only, no lookup by peer ID (a SipHash
/// of 38 bytes, about 400 instructions at opt-level "z").
#[derive(Debug, Default)]
pub struct PeerCounters(Mutex<PeerStats>);

impl PeerCounters {
    pub fn add(&self, f: impl FnOnce(&mut PeerStats)) {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()));
    }

    pub fn snapshot(&self) -> PeerStats {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Every peer's counters (an entry lives as long as the node: one per configured peer),
/// and the global ones.
#[derive(Default)]
pub struct Stats {
    peers: Mutex<HashMap<PeerId, Arc<PeerCounters>>>,
    global: Mutex<GlobalStats>,
}

impl Stats {
    /// `peer`'s counters, created on first use; the packet path keeps the `Arc`.
    pub fn counters(&self, peer: &PeerId) -> Arc<PeerCounters> {
        let mut m = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        // The key is cloned (an allocation) only the first time.
        match m.get(peer) {
            Some(c) => c.clone(),
            None => m.entry(peer.clone()).or_default().clone(),
        }
    }

    /// Counts for `peer` through the lookup: for paths without the peer's entry at hand.
    pub fn peer(&self, peer: &PeerId, f: impl FnOnce(&mut PeerStats)) {
        self.counters(peer).add(f);
    }

    pub fn global(&self, f: impl FnOnce(&mut GlobalStats)) {
        f(&mut self.global.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// Whether `peer` has counters at all (a stranger never gets any).
    #[cfg(test)]
    pub fn has_peer(&self, peer: &PeerId) -> bool {
        self.peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(peer)
    }

    pub fn peer_snapshot(&self, peer: &PeerId) -> PeerStats {
        let c = self
            .peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(peer)
            .cloned();
        c.map(|c| c.snapshot()).unwrap_or_default()
    }

    pub fn global_snapshot(&self) -> GlobalStats {
        self.global
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Sum over all peers.
    pub fn totals(&self) -> PeerStats {
        let m = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        m.values()
            .map(|c| c.snapshot())
            .fold(PeerStats::default(), |mut t, s| {
                t.tx_packets += s.tx_packets;
                t.tx_bytes += s.tx_bytes;
                t.tx_dropped += s.tx_dropped;
                t.rx_packets += s.rx_packets;
                t.rx_bytes += s.rx_bytes;
                t.rx_dropped += s.rx_dropped;
                t.rx_errors += s.rx_errors;
                t.tx_datagrams += s.tx_datagrams;
                t.rx_datagrams += s.rx_datagrams;
                t.tx_delay_dropped += s.tx_delay_dropped;
                t
            })
    }
}

//! Known peers, blocked peers and friend requests: the state machine of AWL's friend flow.
//!
//! Settings (peer id, alias, IP, exit permission, addresses) come from UCI `peer` sections;
//! what we learn at run time (confirmed, declined, remote name, last seen, blocked peers, IPs
//! allocated for sections without one) is kept here and saved to a small postcard state file
//! by the caller, rarely (`state`: the only I/O of this module).

use crate::config::PeerConfig;
use crate::p2p::identity::PeerId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

/// Incoming friend requests held at once. When full, new requests are refused: a flood of
/// fresh identities must not push out a genuine request that came before it.
pub const MAX_PENDING_REQUESTS: usize = 32;
/// Pending requests from one source IP address (identities are free, addresses are not).
pub const MAX_PENDING_PER_SOURCE: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownPeer {
    pub peer_id: PeerId,
    pub alias: String,
    pub domain: String,
    pub ip: Ipv4Addr,
    /// Our grant: the peer may use us as exit node (`WeAllowUsingAsExitNode`).
    pub allow_exit: bool,
    pub addresses: Vec<String>,
    /// The peer may reach our exported routes.
    pub allow_lan: bool,
    /// We install the routes the peer announces (private ranges, and `accept_route`).
    pub accept_routes: bool,
    /// Prefixes outside the private ranges we accept from this peer.
    pub accept_route: Vec<crate::base::prefix::Prefix>,
    /// LAN routes the peer announced in its status (awl extension; AWL peers send none).
    pub routes: Vec<crate::base::prefix::Prefix>,
    /// Name the peer gave itself (status `Name`).
    pub name: String,
    pub confirmed: bool,
    pub declined: bool,
    /// Their grant to us (status `AllowUsingAsExitNode`).
    pub allowed_exit: bool,
    pub remote_gateway: bool,
    /// Unix seconds of the last successful status exchange.
    pub last_seen: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRequest {
    pub peer_id: String,
    pub name: String,
    pub received_at: u64,
    /// The address the request came from (not saved; requests do not survive a restart).
    #[serde(skip)]
    pub source: Option<std::net::IpAddr>,
}

/// Why a friend request was not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestRefused {
    /// `MAX_PENDING_REQUESTS` are waiting.
    Full,
    /// `MAX_PENDING_PER_SOURCE` are waiting from the same address.
    SourceFull,
}

/// How we relate to a peer that opened a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    Known,
    Blocked,
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerError {
    Full,
    NoFreeIp,
    IpTaken(Ipv4Addr),
    IpOutsideMesh(Ipv4Addr),
    /// The network, broadcast, our own or the service address.
    IpReserved(Ipv4Addr),
    AliasTaken(String),
    UnknownPeer(PeerId),
    Ourselves,
}

impl std::fmt::Display for PeerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerError::Full => write!(f, "peer table is full (max_peers)"),
            PeerError::NoFreeIp => write!(f, "no free address left in the mesh subnet"),
            PeerError::IpTaken(ip) => write!(f, "{ip} is already used by another peer"),
            PeerError::IpOutsideMesh(ip) => write!(f, "{ip} is not inside the mesh subnet"),
            PeerError::IpReserved(ip) => write!(
                f,
                "{ip} is reserved (the subnet's network or broadcast address, this node's own or its service address)"
            ),
            PeerError::AliasTaken(a) => write!(f, "alias '{a}' is already used"),
            PeerError::UnknownPeer(p) => write!(f, "{p} is not a known peer"),
            PeerError::Ourselves => write!(f, "that is this node's own peer ID"),
        }
    }
}

impl std::error::Error for PeerError {}

/// The peer table as the control plane shares it. The data plane never locks it per packet:
/// it reads a snapshot published through [`PeerTable::on_change`].
pub type SharedPeers = std::sync::Arc<std::sync::Mutex<PeerTable>>;

/// Called with the table after each change to its peers (under the table's lock, so the
/// calls come in the order of the changes).
pub type ChangeHook = std::sync::Arc<dyn Fn(&PeerTable) + Send + Sync>;

pub struct PeerTable {
    own_id: PeerId,
    own_ip: Ipv4Addr,
    prefix: u8,
    max_peers: usize,
    peers: HashMap<PeerId, KnownPeer>,
    by_ip: HashMap<Ipv4Addr, PeerId>,
    blocked: BTreeMap<PeerId, SavedBlocked>,
    pending: Vec<(PeerId, PendingRequest)>,
    /// Addresses never given to a peer (the service address).
    reserved: Vec<Ipv4Addr>,
    /// Set when something worth saving changed.
    pub dirty: bool,
    on_change: Option<ChangeHook>,
}

pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

impl PeerTable {
    pub fn new(own_id: PeerId, own_ip: Ipv4Addr, prefix: u8, max_peers: usize) -> Self {
        PeerTable {
            own_id,
            own_ip,
            prefix,
            max_peers,
            peers: HashMap::new(),
            by_ip: HashMap::new(),
            blocked: BTreeMap::new(),
            pending: Vec::new(),
            reserved: Vec::new(),
            dirty: false,
            on_change: None,
        }
    }

    /// Sets the hook told of every change to the known peers (the data plane's snapshot), and
    /// calls it once for the table as it is.
    pub fn on_change(&mut self, hook: ChangeHook) {
        hook(self);
        self.on_change = Some(hook);
    }

    fn changed(&self) {
        if let Some(hook) = &self.on_change {
            hook(self);
        }
    }

    pub fn own_ip(&self) -> Ipv4Addr {
        self.own_ip
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn in_mesh(&self, ip: Ipv4Addr) -> bool {
        let m = mask(self.prefix);
        u32::from(ip) & m == u32::from(self.own_ip) & m
    }

    /// The subnet's broadcast address (AWL copies packets to it to every connected peer).
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.own_ip) | !mask(self.prefix))
    }

    /// Loads the UCI peers, keeping what we knew about each from `saved`.
    pub fn load(&mut self, peers: &[PeerConfig], saved: &SavedState) {
        // Routes announced by peers survive a reload (they come with status, not config).
        let announced: HashMap<PeerId, Vec<crate::base::prefix::Prefix>> =
            self.peers.drain().map(|(id, p)| (id, p.routes)).collect();
        self.peers.clear();
        self.by_ip.clear();
        self.blocked = saved
            .blocked
            .iter()
            .filter_map(|(k, v)| Some((k.parse().ok()?, v.clone())))
            .collect();
        // Fixed IPs first so allocation never hands one out twice.
        let (fixed, dynamic): (Vec<_>, Vec<_>) = peers.iter().partition(|p| p.ip.is_some());
        for p in fixed.into_iter().chain(dynamic) {
            let s = saved
                .peers
                .get(&p.peer_id.to_string())
                .cloned()
                .unwrap_or_default();
            let ip =
                p.ip.or_else(|| s.ip.map(Ipv4Addr::from).filter(|ip| self.ip_free(*ip)))
                    .or_else(|| self.next_free_ip());
            let Some(ip) = ip else {
                log::error!("peer {}: no free mesh address, ignored", p.alias);
                continue;
            };
            if self.peers.len() >= self.max_peers {
                log::error!(
                    "peer {}: more than max_peers ({}) peers, ignored",
                    p.alias,
                    self.max_peers
                );
                continue;
            }
            self.blocked.remove(&p.peer_id);
            self.insert(KnownPeer {
                peer_id: p.peer_id.clone(),
                alias: p.alias.clone(),
                domain: p.domain.clone(),
                ip,
                allow_exit: p.allow_exit,
                addresses: p.address.clone(),
                allow_lan: p.allow_lan,
                accept_routes: p.accept_routes,
                accept_route: p.accept_route.clone(),
                routes: announced.get(&p.peer_id).cloned().unwrap_or_default(),
                name: s.name,
                confirmed: s.confirmed,
                declined: s.declined,
                allowed_exit: s.allowed_exit,
                remote_gateway: s.remote_gateway,
                last_seen: s.last_seen,
            });
        }
        self.changed();
    }

    fn insert(&mut self, p: KnownPeer) {
        self.by_ip.insert(p.ip, p.peer_id.clone());
        self.peers.insert(p.peer_id.clone(), p);
    }

    fn ip_free(&self, ip: Ipv4Addr) -> bool {
        self.in_mesh(ip) && !self.is_reserved(ip) && !self.by_ip.contains_key(&ip)
    }

    /// Never a peer's address: network, broadcast, ours, the service address.
    fn is_reserved(&self, ip: Ipv4Addr) -> bool {
        let m = mask(self.prefix);
        let net = u32::from(self.own_ip) & m;
        let v = u32::from(ip);
        v == net || v == net | !m || ip == self.own_ip || self.reserved.contains(&ip)
    }

    /// Keeps `ip` from being allocated to peers.
    pub fn reserve(&mut self, ip: Ipv4Addr) {
        if !self.reserved.contains(&ip) {
            self.reserved.push(ip);
        }
    }

    /// AWL's rule: one above the highest of our own IP and every in-subnet peer IP; if that
    /// runs off the end of the subnet, the lowest free host address.
    pub fn next_free_ip(&self) -> Option<Ipv4Addr> {
        let m = mask(self.prefix);
        let net = u32::from(self.own_ip) & m;
        let last = net | !m; // broadcast
        let highest = self
            .by_ip
            .keys()
            .map(|ip| u32::from(*ip))
            .chain(std::iter::once(u32::from(self.own_ip)))
            .max()
            .unwrap_or(net);
        let candidate = highest.wrapping_add(1);
        if candidate > net && candidate < last && self.ip_free(Ipv4Addr::from(candidate)) {
            return Some(Ipv4Addr::from(candidate));
        }
        (net + 1..last)
            .map(Ipv4Addr::from)
            .find(|ip| self.ip_free(*ip))
    }

    pub fn relation(&self, peer: &PeerId) -> Relation {
        if self.peers.contains_key(peer) {
            Relation::Known
        } else if self.blocked.contains_key(peer) {
            Relation::Blocked
        } else {
            Relation::Unknown
        }
    }

    pub fn get(&self, peer: &PeerId) -> Option<&KnownPeer> {
        self.peers.get(peer)
    }

    /// For fields the data plane does not route by (addresses): a change made here is not
    /// published to it.
    pub fn get_mut(&mut self, peer: &PeerId) -> Option<&mut KnownPeer> {
        self.peers.get_mut(peer)
    }

    pub fn by_ip(&self, ip: Ipv4Addr) -> Option<&KnownPeer> {
        self.by_ip.get(&ip).and_then(|p| self.peers.get(p))
    }

    pub fn iter(&self) -> impl Iterator<Item = &KnownPeer> {
        self.peers.values()
    }

    pub fn len(&self) -> usize {
        self.peers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    pub fn blocked(&self) -> impl Iterator<Item = (&PeerId, &SavedBlocked)> {
        self.blocked.iter()
    }

    pub fn pending(&self) -> impl Iterator<Item = &PendingRequest> {
        self.pending.iter().map(|(_, r)| r)
    }

    pub fn is_pending(&self, peer: &PeerId) -> bool {
        self.pending.iter().any(|(p, _)| p == peer)
    }

    /// A new peer entry (invite, accept, or auto-accept), inserted at once. Callers that
    /// write the entry somewhere first use `prepare_add` and `commit_add`.
    pub fn add(
        &mut self,
        peer_id: PeerId,
        alias: Option<String>,
        ip: Option<Ipv4Addr>,
        confirmed: bool,
    ) -> Result<KnownPeer, PeerError> {
        let p = self.prepare_add(&peer_id, alias, ip, confirmed)?;
        self.commit_add(p.clone());
        Ok(p)
    }

    /// The entry `add` would insert, without changing the table: the caller writes it to UCI
    /// first and commits only if that worked, so a failed write leaves nothing behind.
    /// An existing peer is returned as it is. `ip` is a custom address, else one is allocated.
    pub fn prepare_add(
        &self,
        peer_id: &PeerId,
        alias: Option<String>,
        ip: Option<Ipv4Addr>,
        confirmed: bool,
    ) -> Result<KnownPeer, PeerError> {
        if *peer_id == self.own_id {
            return Err(PeerError::Ourselves);
        }
        if let Some(existing) = self.peers.get(peer_id) {
            return Ok(existing.clone());
        }
        if self.peers.len() >= self.max_peers {
            return Err(PeerError::Full);
        }
        let ip = match ip {
            Some(ip) if !self.in_mesh(ip) => return Err(PeerError::IpOutsideMesh(ip)),
            Some(ip) if self.is_reserved(ip) => return Err(PeerError::IpReserved(ip)),
            Some(ip) if self.by_ip.contains_key(&ip) => return Err(PeerError::IpTaken(ip)),
            Some(ip) => ip,
            None => self.next_free_ip().ok_or(PeerError::NoFreeIp)?,
        };
        let pending_name = self
            .pending
            .iter()
            .find(|(p, _)| p == peer_id)
            .map(|(_, r)| r.name.clone())
            .unwrap_or_default();
        let id_text = peer_id.to_string();
        let fallback = format!("peer-{}", &id_text[id_text.len().saturating_sub(6)..]);
        // Names from the wire are already one printable line of at most 64 characters (the
        // alias limit); an alias typed by the user is checked by the config validator.
        let alias = alias
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty())
            .or_else(|| (!pending_name.is_empty()).then(|| pending_name.clone()))
            .unwrap_or(fallback);
        let alias = self.unique_alias(&alias);
        let domain = crate::config::domain_label(&alias, peer_id);
        Ok(KnownPeer {
            peer_id: peer_id.clone(),
            alias,
            domain,
            ip,
            allow_exit: false,
            addresses: Vec::new(),
            allow_lan: false,
            accept_routes: false,
            accept_route: Vec::new(),
            routes: Vec::new(),
            name: pending_name,
            confirmed,
            declined: false,
            allowed_exit: false,
            remote_gateway: false,
            last_seen: 0,
        })
    }

    /// Inserts an entry from `prepare_add` (its request and any block are dropped).
    pub fn commit_add(&mut self, peer: KnownPeer) {
        if self.peers.contains_key(&peer.peer_id) {
            return;
        }
        self.pending.retain(|(p, _)| *p != peer.peer_id);
        self.blocked.remove(&peer.peer_id);
        self.insert(peer);
        self.dirty = true;
        self.changed();
    }

    /// AWL makes aliases unique with `_0`, `_1`, … suffixes.
    fn unique_alias(&self, alias: &str) -> String {
        let taken = |a: &str| self.peers.values().any(|p| p.alias == a);
        if !taken(alias) {
            return alias.to_string();
        }
        (0..)
            .map(|i| {
                let suffix = format!("_{i}");
                let room = crate::mesh::messages::MAX_NAME_CHARS.saturating_sub(suffix.len());
                format!("{}{suffix}", alias.chars().take(room).collect::<String>())
            })
            .find(|a| !taken(a))
            .unwrap_or_else(|| alias.to_string())
    }

    /// Removing a peer also blocks it, as AWL does.
    pub fn remove(&mut self, peer: &PeerId) -> Result<KnownPeer, PeerError> {
        let p = self
            .peers
            .remove(peer)
            .ok_or_else(|| PeerError::UnknownPeer(peer.clone()))?;
        self.by_ip.remove(&p.ip);
        self.block(
            peer.clone(),
            if p.name.is_empty() {
                p.alias.clone()
            } else {
                p.name.clone()
            },
        );
        self.changed();
        Ok(p)
    }

    pub fn block(&mut self, peer: PeerId, name: String) {
        self.pending.retain(|(p, _)| *p != peer);
        self.blocked.insert(
            peer,
            SavedBlocked {
                name,
                since: now_unix(),
            },
        );
        self.dirty = true;
    }

    /// An incoming auth request from a stranger, held until accepted or declined. A repeated
    /// request updates the name; a new one is refused when the table or its source's share is
    /// full (older requests are never pushed out).
    pub fn add_request(
        &mut self,
        peer: PeerId,
        name: String,
        source: Option<std::net::IpAddr>,
    ) -> Result<(), RequestRefused> {
        if let Some((_, r)) = self.pending.iter_mut().find(|(p, _)| *p == peer) {
            r.name = name;
            return Ok(());
        }
        if self.pending.len() >= MAX_PENDING_REQUESTS {
            return Err(RequestRefused::Full);
        }
        if source.is_some()
            && self
                .pending
                .iter()
                .filter(|(_, r)| r.source == source)
                .count()
                >= MAX_PENDING_PER_SOURCE
        {
            return Err(RequestRefused::SourceFull);
        }
        let req = PendingRequest {
            peer_id: peer.to_string(),
            name,
            received_at: now_unix(),
            source,
        };
        self.pending.push((peer, req));
        Ok(())
    }

    pub fn take_request(&mut self, peer: &PeerId) -> Option<PendingRequest> {
        let i = self.pending.iter().position(|(p, _)| p == peer)?;
        Some(self.pending.remove(i).1)
    }

    /// Merges a status message (AWL `processPeerStatusInfo`).
    pub fn apply_status(&mut self, peer: &PeerId, s: &crate::mesh::messages::StatusInfo) {
        let Some(p) = self.peers.get_mut(peer) else {
            return;
        };
        let before = (
            p.confirmed,
            p.declined,
            p.allowed_exit,
            p.remote_gateway,
            p.name.clone(),
        );
        if s.declined {
            p.declined = true;
            p.routes.clear();
        } else {
            p.routes = s.routes.clone();
            p.last_seen = now_unix();
            p.name = s.name.clone();
            p.confirmed = true;
            p.declined = false;
            p.allowed_exit = s.allow_using_as_exit_node;
            p.remote_gateway = s.vpn_gateway_server_enabled;
        }
        if before
            != (
                p.confirmed,
                p.declined,
                p.allowed_exit,
                p.remote_gateway,
                p.name.clone(),
            )
        {
            self.dirty = true;
        }
    }
}

mod state;
pub use state::{load_state, save_state, SavedBlocked, SavedPeer, SavedState};

#[cfg(test)]
mod tests;

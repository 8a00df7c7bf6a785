//! Known peers, blocked peers and friend requests: the state machine of AWL's friend flow.
//!
//! Settings (peer id, alias, IP, exit permission, addresses) come from UCI `peer` sections;
//! what we learn at run time (confirmed, declined, remote name, last seen, blocked peers, IPs
//! allocated for sections without one) is kept here and saved to a small postcard state file
//! by the caller, rarely. No I/O here except `load_state`/`save_state`.

use crate::config::PeerConfig;
use crate::p2p::identity::PeerId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::path::Path;

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

/// What survives a restart besides UCI (postcard-encoded).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedState {
    pub version: u8,
    pub peers: BTreeMap<String, SavedPeer>,
    pub blocked: BTreeMap<String, SavedBlocked>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedPeer {
    pub ip: Option<[u8; 4]>,
    pub name: String,
    pub confirmed: bool,
    pub declined: bool,
    pub allowed_exit: bool,
    pub remote_gateway: bool,
    pub last_seen: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedBlocked {
    pub name: String,
    pub since: u64,
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

/// The peer table as the node's parts share it (data plane, discovery, friend flow).
pub type SharedPeers = std::sync::Arc<std::sync::Mutex<PeerTable>>;

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

    pub fn to_saved(&self) -> SavedState {
        SavedState {
            version: 1,
            peers: self
                .peers
                .values()
                .map(|p| {
                    (
                        p.peer_id.to_string(),
                        SavedPeer {
                            ip: Some(p.ip.octets()),
                            name: p.name.clone(),
                            confirmed: p.confirmed,
                            declined: p.declined,
                            allowed_exit: p.allowed_exit,
                            remote_gateway: p.remote_gateway,
                            last_seen: p.last_seen,
                        },
                    )
                })
                .collect(),
            blocked: self
                .blocked
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        }
    }
}

/// Reads the state file; a missing or unreadable file yields an empty state (with a log line),
/// never an error that would stop the daemon.
pub fn load_state(path: &Path) -> SavedState {
    match std::fs::read(path) {
        Ok(bytes) => postcard::from_bytes(&bytes).unwrap_or_else(|e| {
            log::warn!(
                "{}: unreadable state ({e}); starting with an empty one",
                path.display()
            );
            SavedState::default()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => SavedState::default(),
        Err(e) => {
            log::warn!("{}: {e}", path.display());
            SavedState::default()
        }
    }
}

/// Writes the state file atomically (temp file + fsync + rename).
pub fn save_state(path: &Path, state: &SavedState) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let bytes = postcard::to_stdvec(state).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(&bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::messages::StatusInfo;
    use crate::p2p::identity::Keypair;

    fn table() -> PeerTable {
        PeerTable::new(
            Keypair::generate().peer_id(),
            Ipv4Addr::new(10, 66, 0, 1),
            16,
            8,
        )
    }

    fn cfg(alias: &str, ip: Option<Ipv4Addr>) -> PeerConfig {
        PeerConfig {
            section: None,
            line: 1,
            peer_id: Keypair::generate().peer_id(),
            alias: alias.into(),
            ip,
            allow_exit: false,
            address: vec![],
            domain: alias.into(),
            allow_lan: false,
            accept_routes: true,
            accept_route: vec![],
        }
    }

    #[test]
    fn ips_are_allocated_as_awl_does() {
        let mut t = table();
        let a = t
            .add(Keypair::generate().peer_id(), Some("a".into()), None, false)
            .unwrap();
        assert_eq!(a.ip, Ipv4Addr::new(10, 66, 0, 2));
        let b = t
            .add(
                Keypair::generate().peer_id(),
                Some("b".into()),
                Some(Ipv4Addr::new(10, 66, 0, 50)),
                false,
            )
            .unwrap();
        assert_eq!(b.ip, Ipv4Addr::new(10, 66, 0, 50));
        let c = t
            .add(Keypair::generate().peer_id(), Some("c".into()), None, false)
            .unwrap();
        assert_eq!(c.ip, Ipv4Addr::new(10, 66, 0, 51));
        assert_eq!(
            t.add(
                Keypair::generate().peer_id(),
                None,
                Some(Ipv4Addr::new(10, 66, 0, 50)),
                false
            )
            .unwrap_err(),
            PeerError::IpTaken(Ipv4Addr::new(10, 66, 0, 50))
        );
        assert!(matches!(
            t.add(
                Keypair::generate().peer_id(),
                None,
                Some(Ipv4Addr::new(10, 67, 0, 5)),
                false
            ),
            Err(PeerError::IpOutsideMesh(_))
        ));
        assert_eq!(t.broadcast(), Ipv4Addr::new(10, 66, 255, 255));
    }

    #[test]
    fn allocation_wraps_to_the_lowest_free_address() {
        let mut t = PeerTable::new(
            Keypair::generate().peer_id(),
            Ipv4Addr::new(10, 0, 0, 1),
            30,
            8,
        );
        // /30: hosts .1 (us) and .2 only.
        assert_eq!(
            t.add(Keypair::generate().peer_id(), None, None, false)
                .unwrap()
                .ip,
            Ipv4Addr::new(10, 0, 0, 2)
        );
        assert_eq!(
            t.add(Keypair::generate().peer_id(), None, None, false)
                .unwrap_err(),
            PeerError::NoFreeIp
        );
    }

    #[test]
    fn friend_flow_and_blocking() {
        let mut t = table();
        let stranger = Keypair::generate().peer_id();
        assert_eq!(t.relation(&stranger), Relation::Unknown);
        t.add_request(stranger.clone(), "laptop".into(), None)
            .unwrap();
        assert!(t.is_pending(&stranger));
        let p = t.add(stranger.clone(), None, None, true).unwrap();
        assert_eq!(
            p.alias, "laptop",
            "alias defaults to the name in the request"
        );
        assert!(!t.is_pending(&stranger));
        assert_eq!(t.relation(&stranger), Relation::Known);
        t.apply_status(
            &stranger,
            &StatusInfo {
                name: "laptop2".into(),
                allow_using_as_exit_node: true,
                ..Default::default()
            },
        );
        let p = t.get(&stranger).unwrap();
        assert!(p.confirmed && p.allowed_exit && p.last_seen > 0);
        assert_eq!(p.name, "laptop2");
        let with_routes = StatusInfo {
            name: "l".into(),
            routes: vec!["192.168.7.0/24".parse().unwrap()],
            ..Default::default()
        };
        t.apply_status(&stranger, &with_routes);
        assert_eq!(t.get(&stranger).unwrap().routes.len(), 1);
        let declined = StatusInfo {
            declined: true,
            ..Default::default()
        };
        t.apply_status(&stranger, &declined);
        assert!(t.get(&stranger).unwrap().declined);
        assert!(
            t.get(&stranger).unwrap().routes.is_empty(),
            "a declining peer's routes are dropped"
        );
        t.remove(&stranger).unwrap();
        assert_eq!(t.relation(&stranger), Relation::Blocked);
        // Adding again (explicit invite) unblocks.
        t.add(stranger.clone(), Some("again".into()), None, false)
            .unwrap();
        assert_eq!(t.relation(&stranger), Relation::Known);
    }

    #[test]
    fn aliases_are_made_unique_and_pending_is_capped() {
        let mut t = PeerTable::new(
            Keypair::generate().peer_id(),
            Ipv4Addr::new(10, 66, 0, 1),
            16,
            64,
        );
        let a = t
            .add(Keypair::generate().peer_id(), Some("x".into()), None, false)
            .unwrap();
        let b = t
            .add(Keypair::generate().peer_id(), Some("x".into()), None, false)
            .unwrap();
        assert_eq!((a.alias.as_str(), b.alias.as_str()), ("x", "x_0"));
        let genuine = Keypair::generate().peer_id();
        t.add_request(
            genuine.clone(),
            "friend".into(),
            Some([192, 0, 2, 1].into()),
        )
        .unwrap();
        // One address with many identities gets a small share.
        let flood: std::net::IpAddr = [198, 51, 100, 7].into();
        let kept = (0..10)
            .filter(|_| {
                t.add_request(Keypair::generate().peer_id(), "spam".into(), Some(flood))
                    .is_ok()
            })
            .count();
        assert_eq!(kept, MAX_PENDING_PER_SOURCE);
        // Many addresses fill the table, but never push out the request before the flood.
        for i in 0..MAX_PENDING_REQUESTS as u8 + 5 {
            let _ = t.add_request(
                Keypair::generate().peer_id(),
                "spam".into(),
                Some([203, 0, 113, i].into()),
            );
        }
        assert_eq!(t.pending().count(), MAX_PENDING_REQUESTS);
        assert!(t.is_pending(&genuine), "the genuine request was evicted");
        assert_eq!(
            t.add_request(Keypair::generate().peer_id(), "late".into(), None),
            Err(RequestRefused::Full)
        );
    }

    #[test]
    fn reserved_addresses_are_never_assigned_and_failed_adds_change_nothing() {
        let mut t = table();
        t.reserve(Ipv4Addr::new(10, 66, 255, 254));
        for ip in [
            [10, 66, 255, 255],
            [10, 66, 0, 0],
            [10, 66, 0, 1],
            [10, 66, 255, 254],
        ] {
            let ip = Ipv4Addr::from(ip);
            assert_eq!(
                t.add(Keypair::generate().peer_id(), None, Some(ip), false),
                Err(PeerError::IpReserved(ip))
            );
        }
        // prepare_add does not touch the table: the caller commits after writing UCI.
        let stranger = Keypair::generate().peer_id();
        t.add_request(stranger.clone(), "x".repeat(64), None)
            .unwrap();
        let p = t.prepare_add(&stranger, None, None, true).unwrap();
        assert_eq!(t.relation(&stranger), Relation::Unknown);
        assert!(t.is_pending(&stranger));
        assert!(!p.accept_routes, "routes are opt-in");
        t.commit_add(p);
        assert_eq!(t.relation(&stranger), Relation::Known);
        // A 64-character name taken twice still makes a valid (≤ 64) alias.
        let other = Keypair::generate().peer_id();
        t.add_request(other.clone(), "x".repeat(64), None).unwrap();
        let q = t.add(other, None, None, true).unwrap();
        assert_eq!(q.alias.chars().count(), 64);
        assert!(q.alias.ends_with("_0"));
    }

    #[test]
    fn state_survives_a_reload_and_a_file_round_trip() {
        let mut t = table();
        let peers = vec![
            cfg("fixed", Some(Ipv4Addr::new(10, 66, 0, 9))),
            cfg("dyn", None),
        ];
        t.load(&peers, &SavedState::default());
        let dyn_ip = t.get(&peers[1].peer_id).unwrap().ip;
        assert_eq!(dyn_ip, Ipv4Addr::new(10, 66, 0, 10));
        t.apply_status(
            &peers[0].peer_id,
            &StatusInfo {
                name: "n".into(),
                ..Default::default()
            },
        );
        let blocked = Keypair::generate().peer_id();
        t.block(blocked.clone(), "bad".into());

        let dir = std::env::temp_dir().join(format!("awl-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state");
        save_state(&path, &t.to_saved()).unwrap();
        let saved = load_state(&path);
        let mut t2 = table();
        t2.load(&peers, &saved);
        assert_eq!(
            t2.get(&peers[1].peer_id).unwrap().ip,
            dyn_ip,
            "allocated IPs are stable"
        );
        assert!(t2.get(&peers[0].peer_id).unwrap().confirmed);
        assert_eq!(t2.relation(&blocked), Relation::Blocked);
        std::fs::write(&path, b"\xff\xff garbage").unwrap();
        assert_eq!(load_state(&path), SavedState::default());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

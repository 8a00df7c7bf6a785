//! Finding and reaching peers beyond configured addresses: bootstrap connections (with
//! `/dnsaddr` resolution), Kademlia lookups by peer ID, relay reservations (so peers reach us
//! behind NAT), dialling through relays, and hole punching relayed connections to direct.
//!
//! Policy lives here; the protocols are in `p2p::{kad, relay, dcutr, autonat}`. A node that
//! AutoNAT found publicly reachable holds no relay reservations.

use crate::config::Config;
use crate::mesh::peers::Relation;
use crate::p2p::autonat::{self, Reachability};
use crate::p2p::identity::PeerId;
use crate::p2p::kad::{self, KadPeer};
use crate::p2p::multiaddr::Multiaddr;
use crate::p2p::{dcutr, relay, Host, HostEvent};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Notify;

/// AWL: FindPeer gets 10 s.
const FIND_TIMEOUT: Duration = Duration::from_secs(10);
const BOOTSTRAP_DIAL_TIMEOUT: Duration = Duration::from_secs(5);
const MAINTAIN_INTERVAL: Duration = Duration::from_secs(20);
const RESOLVE_INTERVAL: Duration = Duration::from_secs(3600);
/// AWL keeps 2 relay reservations.
const RELAYS: usize = 2;
/// A reservation is renewed this long before it expires.
const RENEW_BEFORE: u64 = 300;
/// go-libp2p's dial ranker: relay addresses wait this long behind direct ones.
const RELAY_DIAL_DELAY: Duration = Duration::from_millis(500);
const PUNCH_BACKOFF: Duration = Duration::from_secs(60);
const PUNCH_BACKOFF_MAX: Duration = Duration::from_secs(1800);
/// Peers whose punch backoff is remembered.
const PUNCH_PEERS: usize = 256;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub struct Discovery {
    host: Host,
    /// Configured bootstrap addresses (may be `/dnsaddr`).
    configured: Mutex<Vec<Multiaddr>>,
    /// Resolved bootstrap addresses per peer.
    bootstrap: Mutex<HashMap<PeerId, Vec<Multiaddr>>>,
    /// Relay → (expiry, our circuit addresses through it).
    reservations: Mutex<HashMap<PeerId, (u64, Vec<Multiaddr>)>>,
    /// Why the last reservation attempt failed (cleared by a success), for `awl health`.
    reservation_error: Mutex<Option<String>>,
    punch: Mutex<dcutr::Backoff>,
    use_relays: bool,
    hole_punching: bool,
    /// Serving mode: answer AutoNAT requests from everyone, not only friends.
    serve: bool,
    /// "publicly reachable" was logged (once per stretch of being public).
    public_logged: AtomicBool,
    kick: Notify,
    /// Signalled when a bootstrap connection comes up: lookups can start.
    pub bootstrap_up: Notify,
}

impl Discovery {
    pub fn new(host: Host, cfg: &Config) -> Arc<Discovery> {
        let configured = cfg
            .bootstrap_peers()
            .iter()
            .filter_map(|s| match s.parse::<Multiaddr>() {
                Ok(m) if m.peer_id().is_some() => Some(m),
                _ => {
                    log::warn!("bootstrap '{s}' ignored: not a multiaddr ending in /p2p/<id>");
                    None
                }
            })
            .collect();
        Arc::new(Discovery {
            host,
            configured: Mutex::new(configured),
            bootstrap: Mutex::new(HashMap::new()),
            reservations: Mutex::new(HashMap::new()),
            reservation_error: Mutex::new(None),
            punch: Mutex::new(dcutr::Backoff::new(
                PUNCH_BACKOFF,
                PUNCH_BACKOFF_MAX,
                PUNCH_PEERS,
            )),
            use_relays: cfg.main.use_relays,
            hole_punching: cfg.main.hole_punching,
            serve: cfg.main.serve,
            public_logged: AtomicBool::new(false),
            kick: Notify::new(),
            bootstrap_up: Notify::new(),
        })
    }

    pub fn is_bootstrap(&self, peer: &PeerId) -> bool {
        lock(&self.bootstrap).contains_key(peer)
    }

    /// Peers we hold a relay reservation with, and when it ends (unix seconds).
    pub fn reservations(&self) -> Vec<(PeerId, u64)> {
        lock(&self.reservations)
            .iter()
            .map(|(p, (exp, _))| (p.clone(), *exp))
            .collect()
    }

    pub fn connected_bootstrap(&self) -> Vec<PeerId> {
        lock(&self.bootstrap)
            .keys()
            .filter(|p| self.host.is_connected(p))
            .cloned()
            .collect()
    }

    /// Starts the background work. `known` tells whether a peer is a friend (hole punching
    /// is only attempted with friends).
    pub fn start(self: &Arc<Self>, known: crate::p2p::relay::server::Policy) {
        if self.hole_punching {
            dcutr::serve(&self.host);
        }
        autonat::server::serve(&self.host, self.serve);
        autonat::client::start(&self.host);
        let d = self.clone();
        crate::spawn(async move { d.maintain().await });
        let d = self.clone();
        let mut events = self.host.events();
        crate::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(HostEvent::Connected {
                        peer,
                        relayed: true,
                        outbound: false,
                        ..
                    }) if d.hole_punching && known(&peer) => {
                        let d = d.clone();
                        crate::spawn(async move { d.punch(peer).await });
                    }
                    Ok(HostEvent::Identified { peer }) | Ok(HostEvent::Disconnected { peer })
                        if d.is_bootstrap(&peer) =>
                    {
                        d.kick.notify_one()
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => return,
                }
            }
        });
    }

    async fn punch(&self, peer: PeerId) {
        if !lock(&self.punch).ready(&peer, Instant::now()) {
            log::debug!("hole punch with {} skipped: backing off", peer.short());
            return;
        }
        match dcutr::upgrade(&self.host, &peer).await {
            Ok(took) => {
                lock(&self.punch).succeeded(&peer);
                log::info!(
                    "direct connection to {} by hole punching in {} ms",
                    peer.short(),
                    took.as_millis()
                );
            }
            Err(e) => {
                lock(&self.punch).failed(&peer, Instant::now());
                log::info!(
                    "hole punching with {} failed ({e}); staying on the relay",
                    peer.short()
                );
            }
        }
    }

    async fn maintain(self: Arc<Self>) {
        let mut resolved_at: Option<Instant> = None;
        loop {
            let stale = resolved_at.is_none_or(|t| t.elapsed() > RESOLVE_INTERVAL)
                || lock(&self.bootstrap).is_empty();
            if stale && !lock(&self.configured).is_empty() {
                self.resolve().await;
                resolved_at = Some(Instant::now());
            }
            self.connect_bootstrap().await;
            if self.use_relays {
                self.keep_reservations().await;
            }
            let _ = tokio::time::timeout(MAINTAIN_INTERVAL, self.kick.notified()).await;
        }
    }

    async fn resolve(&self) {
        let configured = lock(&self.configured).clone();
        let ns = crate::p2p::dnsaddr::system_nameserver();
        let mut table: HashMap<PeerId, Vec<Multiaddr>> = HashMap::new();
        for a in configured {
            let Some(id) = a.peer_id() else { continue };
            let addrs = match crate::p2p::dnsaddr::resolve(&a, ns).await {
                Ok(v) => v,
                Err(e) => {
                    log::debug!("resolving {a}: {e}");
                    continue;
                }
            };
            let direct: Vec<Multiaddr> = addrs
                .into_iter()
                .filter(|m| m.socket_addr().is_some())
                .collect();
            table.entry(id).or_default().extend(direct);
        }
        table.retain(|_, v| !v.is_empty());
        log::debug!(
            "{} bootstrap peer(s) with QUIC or TCP addresses",
            table.len()
        );
        *lock(&self.bootstrap) = table;
    }

    async fn connect_bootstrap(&self) {
        let todo: Vec<(PeerId, Vec<Multiaddr>)> = lock(&self.bootstrap)
            .iter()
            .filter(|(p, _)| !self.host.is_connected(p))
            .map(|(p, a)| (p.clone(), a.clone()))
            .collect();
        let mut set = tokio::task::JoinSet::new();
        let any = !todo.is_empty();
        for (peer, addrs) in todo {
            let host = self.host.clone();
            set.spawn(crate::boxed(async move {
                // All at once, TCP a little after QUIC (`Host::dial_first`): where UDP is
                // dropped, TCP gets through without waiting out the QUIC handshakes.
                let targets: Vec<Multiaddr> = addrs
                    .iter()
                    .map(|a| a.without_p2p().with_p2p(&peer))
                    .collect();
                let dial = host.dial_first(&targets);
                if let Ok(true) = tokio::time::timeout(BOOTSTRAP_DIAL_TIMEOUT, dial).await {
                    log::info!("connected to bootstrap peer {}", peer.short());
                    return;
                }
                log::debug!("bootstrap peer {} unreachable", peer.short());
            }));
        }
        while set.join_next().await.is_some() {}
        if any && !self.connected_bootstrap().is_empty() {
            self.bootstrap_up.notify_waiters();
        }
    }

    /// Connected bootstrap peers that offer relaying (their identify lists the hop protocol).
    pub fn relay_candidates(&self) -> Vec<PeerId> {
        self.connected_bootstrap()
            .into_iter()
            .filter(|p| self.host.peer_lists(p, relay::HOP_PROTOCOL))
            .collect()
    }

    /// Bootstrap peers with a known QUIC address (after `/dnsaddr` resolution).
    pub fn resolved_bootstrap(&self) -> usize {
        lock(&self.bootstrap).len()
    }

    /// The last reservation refusal, if the last attempt failed.
    pub fn reservation_error(&self) -> Option<String> {
        lock(&self.reservation_error).clone()
    }

    /// Whether the last hole punch with `peer` failed (it is backing off).
    pub fn punch_failed(&self, peer: &PeerId) -> bool {
        lock(&self.punch).has_failed(peer)
    }

    /// Keeps reservations on up to `RELAYS` connected bootstrap peers that offer relaying,
    /// and publishes our circuit addresses.
    async fn keep_reservations(&self) {
        if self.host.reachability() == Reachability::Public {
            // Peers dial us directly; the relay's reservation just runs out.
            if !self.public_logged.swap(true, Ordering::Relaxed) {
                let at = autonat::client::candidates(&self.host);
                log::info!(
                    "publicly reachable at {}: no relay reservations needed",
                    at.first().map(|a| a.to_string()).unwrap_or_default()
                );
            }
            lock(&self.reservations).clear();
        } else {
            self.public_logged.store(false, Ordering::Relaxed);
            self.renew_reservations().await;
        }
        let circuits: Vec<Multiaddr> = lock(&self.reservations)
            .values()
            .flat_map(|(_, a)| a.iter().cloned())
            .collect();
        self.host.set_circuit_addrs(circuits);
    }

    async fn renew_reservations(&self) {
        let now = unix_now();
        let candidates = self.relay_candidates();
        lock(&self.reservations).retain(|p, _| candidates.contains(p));
        let mut chosen: Vec<PeerId> = lock(&self.reservations).keys().cloned().collect();
        for c in &candidates {
            if chosen.len() >= RELAYS {
                break;
            }
            if !chosen.contains(c) {
                chosen.push(c.clone());
            }
        }
        for relay_id in chosen {
            let due = lock(&self.reservations)
                .get(&relay_id)
                .is_none_or(|(exp, _)| exp.saturating_sub(now) < RENEW_BEFORE);
            if !due {
                continue;
            }
            match self.host.reserve(&relay_id).await {
                Ok((r, limit)) => {
                    let mut addrs: Vec<Multiaddr> = r
                        .addrs
                        .iter()
                        .filter(|a| a.socket_addr().is_some_and(|s| !s.ip().is_unspecified()))
                        .map(|a| relay::circuit_addr(a, &relay_id))
                        .collect();
                    if addrs.is_empty() {
                        if let Some(a) = self.host.remote_addr(&relay_id) {
                            addrs.push(relay::circuit_addr(&a, &relay_id));
                        }
                    }
                    log::info!(
                        "relay reservation on {} until {} (limit {:?})",
                        relay_id.short(),
                        r.expire,
                        limit
                    );
                    lock(&self.reservations).insert(relay_id, (r.expire, addrs));
                    *lock(&self.reservation_error) = None;
                }
                Err(e) => {
                    log::debug!("reservation on {}: {e}", relay_id.short());
                    *lock(&self.reservation_error) = Some(format!("{}: {e}", relay_id.short()));
                    lock(&self.reservations).remove(&relay_id);
                }
            }
        }
    }

    /// Looks `peer` up through the DHT (bootstrap peers as seeds) and connects to what it
    /// finds: direct addresses first, relay circuits shortly after.
    pub async fn find_and_connect(&self, peer: &PeerId) -> bool {
        let seeds: Vec<KadPeer> = self
            .connected_bootstrap()
            .into_iter()
            .filter_map(|p| {
                let addr = self.host.remote_addr(&p)?;
                Some(KadPeer {
                    id: p,
                    addrs: vec![addr],
                    connection: kad::Connection::Connected,
                })
            })
            .collect();
        if seeds.is_empty() {
            return false;
        }
        let started = Instant::now();
        let found = match kad::find_peer(&self.host, peer, seeds, FIND_TIMEOUT).await {
            Ok(Some(f)) => f,
            Ok(None) => {
                log::debug!("{} not found in the DHT", peer.short());
                return false;
            }
            Err(e) => {
                log::debug!("looking up {}: {e}", peer.short());
                return false;
            }
        };
        if self.host.is_connected(peer) {
            return true;
        }
        log::info!(
            "found {} in {} ms: {}",
            peer.short(),
            started.elapsed().as_millis(),
            found
                .addrs
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        self.dial_addrs(peer, &found.addrs).await
    }

    /// Dials direct addresses at once and relay circuits after `RELAY_DIAL_DELAY`; the first
    /// success wins.
    pub async fn dial_addrs(&self, peer: &PeerId, addrs: &[Multiaddr]) -> bool {
        let mine: Vec<Multiaddr> = self.host.listen_addrs();
        let direct: Vec<Multiaddr> = addrs
            .iter()
            .filter(|a| a.socket_addr().is_some() && !mine.contains(&a.without_p2p()))
            .map(|a| a.without_p2p().with_p2p(peer))
            .collect();
        let mut circuits: Vec<Multiaddr> = addrs
            .iter()
            .filter_map(relay::parse_circuit)
            .map(|(relay_addr, _)| relay_addr)
            .collect();
        // Relays we are connected to first: a dead relay costs a handshake timeout.
        circuits.sort_by_key(|a| !a.peer_id().is_some_and(|r| self.host.is_connected(&r)));
        let host = &self.host;
        let direct_fut = host.dial_first(&direct);
        let relayed_fut = async {
            if !direct.is_empty() {
                tokio::time::sleep(RELAY_DIAL_DELAY).await;
            }
            for relay_addr in &circuits {
                if host.has_direct(peer) {
                    return true;
                }
                match host.dial_relayed(relay_addr, peer).await {
                    Ok(_) => {
                        log::info!("connected to {} through relay {relay_addr}", peer.short());
                        return true;
                    }
                    Err(e) => log::debug!("relayed dial to {} via {relay_addr}: {e}", peer.short()),
                }
            }
            false
        };
        tokio::pin!(direct_fut, relayed_fut);
        let (mut d_done, mut r_done) = (false, false);
        loop {
            tokio::select! {
                ok = &mut direct_fut, if !d_done => {
                    if ok { return true; }
                    d_done = true;
                }
                ok = &mut relayed_fut, if !r_done => {
                    if ok { return true; }
                    r_done = true;
                }
                else => return false,
            }
        }
    }
}

/// The policy the relay service applies when serving.
pub fn relay_policy(
    cfg: &Config,
    peers: crate::mesh::peers::SharedPeers,
) -> crate::p2p::relay::server::Policy {
    match cfg.main.relay_for {
        crate::config::RelayFor::All => Arc::new(|_| true),
        crate::config::RelayFor::Friends => known_peers(peers),
    }
}

/// "Is this peer a friend?" over the shared peer table.
pub fn known_peers(peers: crate::mesh::peers::SharedPeers) -> crate::p2p::relay::server::Policy {
    Arc::new(move |p| {
        peers
            .lock()
            .map(|t| t.relation(p) == Relation::Known)
            .unwrap_or(false)
    })
}

//! The running node: host, peer table, data plane and discovery, built in order, plus the small
//! glue the mesh and the services call back through (`FriendsHost`, `LanView`, `NodeView`).
//! Its jobs live in sibling files: the friend flow (`friend_flow`), route reconciliation
//! (`routes_sync`), the UCI and state files (`config_writes`), the background loops (`loops`)
//! and the JSON views (`views`).

use crate::app::tasks::Tasks;
use crate::config::Config;
use crate::dataplane::pool::{PacketBuf, PacketPool};
use crate::dataplane::{self, Dataplane, DataplaneConfig};
use crate::mesh::discovery::{self, Discovery};
use crate::mesh::friends;
use crate::mesh::messages::StatusInfo;
use crate::mesh::peers::{self, PeerTable, Relation, SharedPeers};
use crate::mesh::{names, tunnel};
use crate::p2p::identity::PeerId;
use crate::p2p::multiaddr::Multiaddr;
use crate::p2p::Host;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Pings per reconnect cycle, as AWL.
const PINGS: usize = 5;

pub struct Node {
    pub host: Host,
    pub peers: SharedPeers,
    pub dp: Arc<Dataplane>,
    pub discovery: Arc<Discovery>,
    /// The background work of the node and the daemon; stopped at shutdown.
    pub tasks: Tasks,
    /// Start-up and reload facts `awl health` reports (TUN error, listen fallback, reload).
    pub health: crate::app::health::Notes,
    /// Ourselves, for the follow-up work a request starts.
    me: Weak<Node>,
    pub(super) cfg: Mutex<Config>,
    /// The UCI file peers are written to (created from the defaults if missing).
    pub(super) config_path: PathBuf,
    pub(super) state_path: PathBuf,
    started: Instant,
    pub(super) rtt: Mutex<HashMap<PeerId, Duration>>,
    /// The VPN interface, if one was opened.
    pub(super) tun_name: Option<String>,
    /// The host-side gateway (kernel routes, firewall); taken at teardown.
    pub(super) lan: Mutex<Option<crate::gateway::Lan>>,
    /// Routes already refused (logged once, not on every status).
    pub(super) refused_routes: Mutex<Vec<(PeerId, crate::base::prefix::Prefix)>>,
    /// Held across a change to the UCI file and the peer table, so two writers (a control
    /// request and an auto-accept) never interleave. Never held across an await.
    pub(super) writer: Mutex<()>,
}

/// An opened VPN interface and the gateway set up on it, handed to [`Node::new`].
pub struct TunDevice {
    pub dev: dataplane::tun::Tun,
    pub name: String,
    pub lan: crate::gateway::Lan,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Node {
    /// Builds the node around a started host and, if there is one, its VPN interface. Without
    /// one, the queue of packets bound for the TUN is returned for the caller to deliver
    /// elsewhere (the service stack, tests, the selftest); until it is read, it fills and
    /// further packets are dropped and counted.
    pub fn new(
        host: Host,
        cfg: Config,
        config_path: PathBuf,
        data_dir: &std::path::Path,
        tun: Option<TunDevice>,
    ) -> (Arc<Node>, Option<mpsc::Receiver<PacketBuf>>) {
        let state_path = data_dir.join("state");
        let saved = peers::load_state(&state_path);
        let mut table = PeerTable::new(
            host.peer_id(),
            cfg.main.address,
            cfg.main.prefix,
            cfg.main.max_peers as usize,
        );
        table.load(&cfg.peers, &saved);
        let peers: SharedPeers = Arc::new(Mutex::new(table));
        // Room for the largest packet an AWL peer may send, whatever our MTU.
        let buf_size = usize::from(cfg.main.mtu).max(tunnel::AWL_MAX_PACKET);
        let pool = PacketPool::new(cfg.main.packet_pool as usize, buf_size);
        let (dp, from_mesh) = Dataplane::new(
            host.clone(),
            peers.clone(),
            pool,
            DataplaneConfig {
                peer_queue: cfg.main.peer_queue as usize,
                tun_queue: cfg.main.peer_queue as usize * 2,
                datagrams: cfg.main.datagrams,
            },
        );
        let discovery = Discovery::new(host.clone(), &cfg);
        if cfg.main.serve {
            let m = &cfg.main;
            crate::p2p::kad::serve(&host);
            let limits = crate::p2p::relay::server::Limits {
                max_reservations: m.relay_max_reservations as usize,
                max_circuits: m.relay_max_circuits as usize,
                circuit: crate::p2p::relay::Limit {
                    duration_secs: m.relay_circuit_duration,
                    data_bytes: u64::from(m.relay_circuit_data) << 20,
                },
                ..Default::default()
            };
            let policy = discovery::relay_policy(&cfg, peers.clone());
            crate::p2p::relay::server::start(&host, limits, policy);
            log::info!("serving as bootstrap and relay (for {:?})", m.relay_for);
        }
        discovery.start(discovery::known_peers(peers.clone()));
        let bootstrap = Arc::downgrade(&discovery);
        host.set_trust(crate::p2p::Trust {
            friend: discovery::known_peers(peers.clone()),
            trusted_observer: Arc::new(move |p| {
                bootstrap.upgrade().is_some_and(|d| d.is_bootstrap(p))
            }),
        });
        let (tun, tun_name, lan) = match tun {
            Some(t) => (Some(t.dev), Some(t.name), Some(t.lan)),
            None => (None, None, None),
        };
        let node = Arc::new_cyclic(|me| Node {
            host,
            peers,
            dp,
            discovery,
            tasks: Tasks::default(),
            health: Default::default(),
            me: me.clone(),
            cfg: Mutex::new(cfg),
            config_path,
            state_path,
            started: Instant::now(),
            rtt: Mutex::new(HashMap::new()),
            tun_name,
            lan: Mutex::new(lan),
            refused_routes: Mutex::new(Vec::new()),
            writer: Mutex::new(()),
        });
        // Configs from before named sections: name them once, so LuCI's staged edits cannot
        // land on another peer when one is removed (docs/CONFIG.md).
        if let Err(e) = node.rewrite_config(crate::config::name_peer_sections) {
            log::warn!("naming the anonymous peer sections: {e}");
        }
        node.sync_routes();
        node.dp.start();
        let from_mesh = match tun {
            Some(dev) => {
                node.attach_tun(dev, from_mesh);
                None
            }
            None => Some(from_mesh),
        };
        for task in friends::serve(&node.host, node.clone()) {
            node.tasks.spawn_boxed(task);
        }
        node.spawn_loops();
        (node, from_mesh)
    }

    /// Starts the TUN's reader and writer.
    fn attach_tun(&self, tun: dataplane::tun::Tun, from_mesh: mpsc::Receiver<PacketBuf>) {
        let tun = Arc::new(tun);
        self.tasks.spawn(dataplane::tun::reader(
            tun.clone(),
            self.dp.clone(),
            self.host.packet_thread(),
        ));
        self.dp.set_tun(tun.clone());
        self.tasks.spawn(dataplane::tun::writer(tun, from_mesh));
    }

    pub fn name(&self) -> String {
        lock(&self.cfg).main.name.clone()
    }

    pub fn config(&self) -> Config {
        lock(&self.cfg).clone()
    }

    pub fn relation(&self, peer: &PeerId) -> Relation {
        lock(&self.peers).relation(peer)
    }

    /// Our status for one recipient (exit permission is per peer; blocked → Declined).
    pub fn status_for(&self, peer: &PeerId) -> StatusInfo {
        let t = lock(&self.peers);
        match t.relation(peer) {
            Relation::Blocked => StatusInfo {
                declined: true,
                ..Default::default()
            },
            _ => {
                let cfg = lock(&self.cfg);
                let p = t.get(peer);
                StatusInfo {
                    name: cfg.main.name.clone(),
                    declined: false,
                    allow_using_as_exit_node: p.is_some_and(|p| p.allow_exit),
                    vpn_gateway_server_enabled: cfg.main.gateway,
                    // Our LAN routes, only to peers allowed to use them.
                    routes: if p.is_some_and(|p| p.allow_lan) {
                        cfg.main.route.clone()
                    } else {
                        Vec::new()
                    },
                }
            }
        }
    }

    pub fn apply_status(&self, peer: &PeerId, info: &StatusInfo, rtt: Option<Duration>) {
        lock(&self.peers).apply_status(peer, info);
        if let Some(rtt) = rtt {
            lock(&self.rtt).insert(peer.clone(), rtt);
        }
        self.sync_routes();
    }

    /// Removes kernel routes, policy rules and the firewall table (at shutdown).
    pub fn teardown_lan(&self) {
        if let Some(mut lan) = lock(&self.lan).take() {
            lan.teardown();
        }
    }

    /// Dials a known peer: its configured addresses, else whatever the DHT knows (direct or
    /// through a relay).
    pub async fn connect(&self, peer: &PeerId) -> bool {
        if self.host.is_connected(peer) {
            return true;
        }
        let addrs = lock(&self.peers)
            .get(peer)
            .map(|p| p.addresses.clone())
            .unwrap_or_default();
        for a in addrs {
            let Ok(m) = a.parse::<Multiaddr>() else {
                continue;
            };
            match self.host.dial(&m.without_p2p().with_p2p(peer)).await {
                Ok(_) => return true,
                Err(e) => log::debug!("dial {} at {a}: {e}", peer.short()),
            }
        }
        self.discovery.find_and_connect(peer).await
    }

    /// Our status to `peer` and theirs applied.
    pub(super) async fn exchange_status(&self, peer: &PeerId) -> Result<(), friends::Error> {
        let ours = self.status_for(peer);
        let (theirs, rtt) = friends::exchange_status(&self.host, peer, &ours).await?;
        self.apply_status(peer, &theirs, Some(rtt));
        Ok(())
    }

    /// On a new connection: unanswered invite → auth; then status; then pings.
    pub(super) async fn handshake(&self, peer: &PeerId) {
        let (known, pending_invite) = {
            let t = lock(&self.peers);
            match t.get(peer) {
                Some(p) => (true, !p.confirmed && !p.declined),
                None => (false, false),
            }
        };
        if !known {
            return;
        }
        if pending_invite {
            match friends::send_auth(&self.host, peer, self.name()).await {
                Ok(r) => {
                    if r.declined {
                        let declined = StatusInfo {
                            declined: true,
                            ..Default::default()
                        };
                        self.apply_status(peer, &declined, None);
                    }
                    log::debug!(
                        "auth to {}: confirmed={} declined={}",
                        peer.short(),
                        r.confirmed,
                        r.declined
                    )
                }
                Err(e) => log::debug!("auth to {}: {e}", peer.short()),
            }
        }
        if let Err(e) = self.exchange_status(peer).await {
            log::debug!("status with {}: {e}", peer.short());
        }
        for _ in 0..PINGS {
            match self.host.ping(peer).await {
                Ok(rtt) => {
                    lock(&self.rtt).insert(peer.clone(), rtt);
                }
                Err(_) => break,
            }
        }
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn rtt(&self, peer: &PeerId) -> Option<Duration> {
        lock(&self.rtt).get(peer).copied()
    }

    /// The peer the local SOCKS5 proxy goes through (`socks5_exit`: peer ID or alias).
    pub fn socks5_exit(&self) -> Option<PeerId> {
        let want = self.config().main.socks5_exit?;
        lock(&self.peers)
            .iter()
            .find(|p| p.peer_id.to_string() == want || p.alias == want)
            .map(|p| p.peer_id.clone())
    }
}

/// The serving side of auth and status reads and reports here.
impl friends::FriendsHost for Node {
    fn relation(&self, peer: &PeerId) -> Relation {
        Node::relation(self, peer)
    }

    fn status_for(&self, peer: &PeerId) -> StatusInfo {
        Node::status_for(self, peer)
    }

    fn apply_status(&self, peer: &PeerId, info: &StatusInfo) {
        Node::apply_status(self, peer, info, None)
    }

    fn auto_accept(&self) -> bool {
        lock(&self.cfg).main.auto_accept
    }

    /// Refused when the table or the share of the request's source address is full.
    fn add_request(
        &self,
        peer: PeerId,
        name: String,
        source: Option<std::net::IpAddr>,
    ) -> Result<(), peers::RequestRefused> {
        lock(&self.peers).add_request(peer, name, source)
    }

    fn accept_request(&self, peer: &PeerId) {
        let Some(node) = self.me.upgrade() else {
            return;
        };
        let peer = peer.clone();
        self.tasks.spawn(async move {
            if let Err(e) = node.accept(&peer, None, None).await {
                log::debug!("auto-accepting {}: {e}", peer.short());
            }
        });
    }
}

impl crate::mesh::lan_discovery::LanView for Node {
    fn is_known(&self, peer: &PeerId) -> bool {
        self.relation(peer) == Relation::Known
    }

    fn mesh(&self) -> Option<crate::base::prefix::Prefix> {
        let c = lock(&self.cfg);
        crate::base::prefix::Prefix::new(c.main.address, c.main.prefix)
    }
}

/// What DNS and HTTP on the service address tell about the node.
impl crate::services::NodeView for Node {
    fn dns_lookup(&self, label: &str) -> Option<Ipv4Addr> {
        let name = self.name();
        names::lookup(&lock(&self.peers), &name, label)
    }

    fn dns_reverse(&self, ip: Ipv4Addr) -> Option<String> {
        let name = self.name();
        names::reverse(&lock(&self.peers), &name, ip)
    }

    fn in_mesh(&self, ip: Ipv4Addr) -> bool {
        lock(&self.peers).in_mesh(ip)
    }

    fn http_status(&self) -> String {
        self.http_status_json()
    }

    fn metrics(&self) -> String {
        crate::app::metrics::render(self)
    }
}

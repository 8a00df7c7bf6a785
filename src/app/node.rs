//! The running node: host, peer table, data plane and the friend flow, plus the views the
//! control API serves. Background work: status on every new connection and every 5 minutes,
//! retries of unanswered invites, redials of known peers, and rare state-file writes.

use crate::config::{self, Config, PeerConfig};
use crate::dataplane::pool::PacketPool;
use crate::dataplane::{self, Dataplane, DataplaneConfig};
use crate::mesh::friends;
use crate::mesh::messages::StatusInfo;
use crate::mesh::peers::{self, KnownPeer, PeerTable, Relation, SharedPeers};
use crate::mesh::tunnel;
use crate::p2p::identity::PeerId;
use crate::p2p::multiaddr::Multiaddr;
use crate::p2p::{Host, HostEvent};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// AWL: status exchange and invite retries every 5 minutes.
const STATUS_INTERVAL: Duration = Duration::from_secs(300);
/// The state file is written at most this often (flash wear), and at shutdown.
const STATE_SAVE_INTERVAL: Duration = Duration::from_secs(300);
/// Known peers dialled at once by the reconnect loop.
const PARALLEL_DIALS: usize = 16;
/// Pings per reconnect cycle, as AWL.
const PINGS: usize = 5;

pub struct Node {
    pub host: Host,
    pub peers: SharedPeers,
    pub dp: Arc<Dataplane>,
    pub discovery: Arc<crate::mesh::discovery::Discovery>,
    cfg: Mutex<Config>,
    /// The UCI file peers are written to (created from the defaults if missing).
    config_path: PathBuf,
    state_path: PathBuf,
    started: Instant,
    rtt: Mutex<HashMap<PeerId, Duration>>,
    pub tun_name: Mutex<Option<String>>,
    /// Packets for the TUN; taken by `attach_tun`. Until then the bounded queue fills and
    /// further packets are dropped and counted.
    from_mesh: Mutex<Option<tokio::sync::mpsc::Receiver<dataplane::pool::PacketBuf>>>,
    lan: Mutex<Option<crate::gateway::Lan>>,
    /// Routes already refused (logged once, not on every status).
    refused_routes: Mutex<Vec<(PeerId, crate::base::prefix::Prefix)>>,
    /// Held across a change to the UCI file and the peer table, so two writers (a control
    /// request and an auto-accept) never interleave. Never held across an await.
    writer: Mutex<()>,
    /// Start-up and reload facts `awl health` reports (TUN error, listen fallback, reload).
    pub health: crate::app::health::Notes,
}

/// On OpenWrt, tells procd that /etc/config/awl changed, as LuCI's apply does: the init
/// script reloads, so the firewall rules it derives from the peers' grants follow the file
/// (the daemon itself only re-reads it). Nothing elsewhere.
fn notify_config_change() {
    const UBUS: &str = "/bin/ubus";
    if !std::path::Path::new(UBUS).exists() {
        return;
    }
    let child = std::process::Command::new(UBUS)
        .args([
            "call",
            "service",
            "event",
            r#"{"type":"config.change","data":{"package":"awl"}}"#,
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    match child {
        // Reaped off the async runtime's thread.
        Ok(mut c) => {
            std::thread::spawn(move || c.wait());
        }
        Err(e) => log::debug!("{UBUS}: {e}"),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Node {
    /// Builds the node around a started host. The caller attaches a TUN (or not).
    pub fn new(
        host: Host,
        cfg: Config,
        config_path: PathBuf,
        data_dir: &std::path::Path,
    ) -> Arc<Node> {
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
        let discovery = crate::mesh::discovery::Discovery::new(host.clone(), &cfg);
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
            let policy = crate::mesh::discovery::relay_policy(&cfg, peers.clone());
            crate::p2p::relay::server::start(&host, limits, policy);
            log::info!("serving as bootstrap and relay (for {:?})", m.relay_for);
        }
        discovery.start(crate::mesh::discovery::known_peers(peers.clone()));
        let bootstrap = Arc::downgrade(&discovery);
        host.set_trust(crate::p2p::Trust {
            friend: crate::mesh::discovery::known_peers(peers.clone()),
            trusted_observer: Arc::new(move |p| {
                bootstrap.upgrade().is_some_and(|d| d.is_bootstrap(p))
            }),
        });
        let node = Arc::new(Node {
            host,
            peers,
            dp,
            discovery,
            cfg: Mutex::new(cfg),
            config_path,
            state_path,
            started: Instant::now(),
            rtt: Mutex::new(HashMap::new()),
            tun_name: Mutex::new(None),
            from_mesh: Mutex::new(Some(from_mesh)),
            lan: Mutex::new(None),
            refused_routes: Mutex::new(Vec::new()),
            writer: Mutex::new(()),
            health: Default::default(),
        });
        // Configs from before named sections: name them once, so LuCI's staged edits cannot
        // land on another peer when one is removed (docs/CONFIG.md).
        if let Err(e) = node.rewrite_config(config::name_peer_sections) {
            log::warn!("naming the anonymous peer sections: {e}");
        }
        node.sync_routes();
        node.dp.start();
        friends::start(&node);
        node.spawn_background();
        node
    }

    pub fn name(&self) -> String {
        lock(&self.cfg).main.name.clone()
    }

    pub fn auto_accept(&self) -> bool {
        lock(&self.cfg).main.auto_accept
    }

    pub fn config(&self) -> Config {
        lock(&self.cfg).clone()
    }

    pub fn relation(&self, peer: &PeerId) -> Relation {
        lock(&self.peers).relation(peer)
    }

    /// Holds a stranger's friend request; refused when the table or the share of the
    /// request's source address is full.
    pub fn add_request(&self, peer: PeerId, name: String) -> Result<(), peers::RequestRefused> {
        let source = self.request_source(&peer);
        lock(&self.peers).add_request(peer, name, source)
    }

    /// The IP address a peer's direct connection comes from (None when relayed).
    pub fn request_source(&self, peer: &PeerId) -> Option<std::net::IpAddr> {
        if self.host.is_relayed(peer) {
            return None;
        }
        self.host
            .remote_addr(peer)
            .and_then(|a| a.quic_socket_addr())
            .map(|s| s.ip())
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

    /// Hands the host-side gateway (kernel routes, firewall) to the node; routes follow.
    pub fn attach_lan(&self, lan: crate::gateway::Lan) {
        *lock(&self.lan) = Some(lan);
        self.sync_routes();
    }

    /// Removes kernel routes, policy rules and the firewall table (at shutdown).
    pub fn teardown_lan(&self) {
        if let Some(mut lan) = lock(&self.lan).take() {
            lan.teardown();
        }
    }

    /// Recomputes routing beyond the mesh: our exported routes, peers' announced routes that
    /// pass the safety checks, and the exit node; applies them to the data plane and kernel.
    pub fn sync_routes(&self) {
        use crate::base::prefix::Prefix;
        use crate::mesh::routes::Guard;
        let cfg = lock(&self.cfg).main.clone();
        let mesh = Prefix::new(cfg.address, cfg.prefix).unwrap_or(Prefix {
            addr: cfg.address,
            len: 32,
        });
        let local: Vec<Ipv4Addr> = crate::sys::ifaddrs::local_addrs()
            .into_iter()
            .filter_map(|ip| match ip {
                std::net::IpAddr::V4(v4) if !mesh.contains(v4) => Some(v4),
                _ => None,
            })
            .collect();
        let underlay: Vec<Ipv4Addr> = self
            .host
            .connected_peers()
            .iter()
            .filter_map(|p| self.host.remote_addr(p)?.quic_socket_addr())
            .filter_map(|s| match s.ip() {
                std::net::IpAddr::V4(v4) => Some(v4),
                _ => None,
            })
            .collect();
        let kernel = crate::mesh::routes::kernel_routes(lock(&self.tun_name).as_deref());
        let t = lock(&self.peers);
        let mut installed: Vec<(Prefix, PeerId)> = Vec::new();
        let mut refused = lock(&self.refused_routes);
        let mut still_refused = Vec::new();
        let mut peers: Vec<_> = t
            .iter()
            .filter(|p| p.accept_routes && p.confirmed && !p.declined)
            .collect();
        peers.sort_by_key(|p| p.ip);
        for p in peers {
            for r in &p.routes {
                let named: Vec<(Prefix, String)> = installed
                    .iter()
                    .map(|(q, who)| (*q, who.to_string()))
                    .collect();
                let guard = Guard {
                    mesh,
                    own_routes: &cfg.route,
                    local_addrs: &local,
                    underlay: &underlay,
                    installed: &named,
                    allowed: &p.accept_route,
                    kernel: &kernel,
                };
                match guard.check(r) {
                    Ok(()) => installed.push((*r, p.peer_id.clone())),
                    Err(why) => {
                        let key = (p.peer_id.clone(), *r);
                        if !refused.contains(&key) {
                            log::warn!(
                                "refusing route {r} from {} ({}): {why}",
                                p.alias,
                                p.peer_id.short()
                            );
                        }
                        still_refused.push(key);
                    }
                }
            }
        }
        *refused = still_refused;
        drop(refused);
        let exit_node = cfg.exit_node.as_ref().and_then(|want| {
            t.iter()
                .find(|p| p.peer_id.to_string() == *want || p.alias == *want)
                .filter(|p| p.allowed_exit && p.remote_gateway)
                .map(|p| p.peer_id.clone())
        });
        drop(t);
        self.dp.set_routing(dataplane::Routing {
            exported: cfg.route.clone(),
            gateway: cfg.gateway,
            exit_node: exit_node.clone(),
            installed: installed.clone(),
        });
        if let Some(lan) = lock(&self.lan).as_mut() {
            let prefixes: Vec<Prefix> = installed.iter().map(|(p, _)| *p).collect();
            lan.sync_routes(&prefixes);
            lan.set_exit(exit_node.is_some());
        }
    }

    /// Invites a peer: adds it (unconfirmed), writes its UCI section, sends auth and status.
    pub async fn invite(
        self: &Arc<Self>,
        peer: &PeerId,
        alias: Option<String>,
        ip: Option<Ipv4Addr>,
        address: Option<Multiaddr>,
    ) -> Result<KnownPeer, String> {
        let added = {
            let _w = lock(&self.writer);
            let prepared = lock(&self.peers)
                .prepare_add(peer, alias, ip, false)
                .map_err(|e| e.to_string())?;
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
        crate::spawn(async move {
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
    ) -> Result<KnownPeer, String> {
        let added = {
            let _w = lock(&self.writer);
            let added = lock(&self.peers)
                .prepare_add(peer, alias, ip, true)
                .map_err(|e| e.to_string())?;
            self.write_peer_section(&added)?;
            lock(&self.peers).commit_add(added.clone());
            added
        };
        self.save_state_now();
        let node = self.clone();
        let p = peer.clone();
        crate::spawn(async move {
            node.connect(&p).await;
            if let Err(e) = friends::exchange_status(&node, &p).await {
                log::debug!("status to {} after accept: {e}", p.short());
            }
        });
        Ok(added)
    }

    /// Declines a pending request: the peer is blocked and told so.
    pub async fn decline(self: &Arc<Self>, peer: &PeerId) -> Result<(), String> {
        let req = lock(&self.peers)
            .take_request(peer)
            .ok_or_else(|| format!("no pending request from {peer}"))?;
        lock(&self.peers).block(peer.clone(), req.name);
        self.save_state_now();
        let node = self.clone();
        let p = peer.clone();
        crate::spawn(async move {
            let _ = friends::exchange_status(&node, &p).await;
        });
        Ok(())
    }

    /// Removes a known peer (which blocks it, as AWL does) and its UCI section.
    pub fn remove(self: &Arc<Self>, peer: &PeerId) -> Result<(), String> {
        {
            let _w = lock(&self.writer);
            if lock(&self.peers).get(peer).is_none() {
                return Err(peers::PeerError::UnknownPeer(peer.clone()).to_string());
            }
            // The file first: if it cannot be written, the peer stays as it was.
            self.remove_peer_section(peer)?;
            lock(&self.peers).remove(peer).map_err(|e| e.to_string())?;
        }
        self.dp.forget(peer);
        self.sync_routes();
        self.save_state_now();
        Ok(())
    }

    /// Re-reads the UCI file (SIGHUP). Keeps the running config if the file is broken.
    pub fn reload(&self) -> Result<usize, String> {
        let loaded = config::load(&self.config_path).map_err(|e| e.to_string());
        self.health
            .set_reload(loaded.as_ref().map(|_| ()).map_err(Clone::clone));
        let loaded = loaded?;
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

    /// Writes `p`'s section into the UCI file, after checking the whole new file with the
    /// validator `awl config check` uses: the daemon never writes what it would refuse to load.
    fn write_peer_section(&self, p: &KnownPeer) -> Result<(), String> {
        let pc = PeerConfig {
            section: None,
            line: 0,
            peer_id: p.peer_id.clone(),
            alias: p.alias.clone(),
            ip: Some(p.ip),
            allow_exit: p.allow_exit,
            address: p.addresses.clone(),
            domain: p.domain.clone(),
            allow_lan: p.allow_lan,
            accept_routes: p.accept_routes,
            accept_route: p.accept_route.clone(),
        };
        self.rewrite_config(|text| config::upsert_peer_section(text, &pc))
    }

    fn remove_peer_section(&self, peer: &PeerId) -> Result<(), String> {
        self.rewrite_config(|text| config::remove_peer_section(text, peer))
    }

    /// One change to the UCI file: read, edit, validate, write atomically; then the running
    /// peer list follows the file (node settings stay as they run: they may be defaults the
    /// file doesn't spell out).
    fn rewrite_config(&self, edit: impl FnOnce(&str) -> String) -> Result<(), String> {
        let path = &self.config_path;
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                "# Created by awl. Options: docs/CONFIG.md\nconfig awl 'main'\n".to_string()
            }
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let new = edit(&text);
        if new == text {
            return Ok(());
        }
        let loaded = config::parse(&new, &path.display().to_string())
            .map_err(|e| format!("refusing to write an invalid configuration: {e}"))?;
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        config::write_atomic(path, &new).map_err(|e| format!("{}: {e}", path.display()))?;
        lock(&self.cfg).peers = loaded.config.peers;
        notify_config_change();
        Ok(())
    }

    pub fn save_state_now(&self) {
        let state = {
            let mut t = lock(&self.peers);
            t.dirty = false;
            t.to_saved()
        };
        if let Some(dir) = self.state_path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Err(e) = peers::save_state(&self.state_path, &state) {
            log::warn!("saving {}: {e}", self.state_path.display());
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

    /// On a new connection: unanswered invite → auth; then status; then pings.
    async fn handshake(self: &Arc<Self>, peer: &PeerId) {
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
            match friends::send_auth(self, peer).await {
                Ok(r) => log::debug!(
                    "auth to {}: confirmed={} declined={}",
                    peer.short(),
                    r.confirmed,
                    r.declined
                ),
                Err(e) => log::debug!("auth to {}: {e}", peer.short()),
            }
        }
        if let Err(e) = friends::exchange_status(self, peer).await {
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

    fn spawn_background(self: &Arc<Self>) {
        // Reactions to connections.
        let node = self.clone();
        let mut events = self.host.events();
        crate::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(HostEvent::Connected { peer, .. }) => {
                        let n = node.clone();
                        crate::spawn(async move { n.handshake(&peer).await });
                    }
                    Ok(HostEvent::Disconnected { peer }) => {
                        // Redial at once rather than at the next reconnect tick.
                        let n = node.clone();
                        crate::spawn(async move {
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
        crate::spawn(async move {
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
                    dials.spawn(async move {
                        if node.connect(&id).await {
                            log::info!("connected to {}", id.short());
                        }
                    });
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
        crate::spawn(async move {
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
        crate::spawn(async move {
            let mut tick = tokio::time::interval(STATE_SAVE_INTERVAL);
            loop {
                tick.tick().await;
                if lock(&node.peers).dirty {
                    node.save_state_now();
                }
            }
        });
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn rtt(&self, peer: &PeerId) -> Option<Duration> {
        lock(&self.rtt).get(peer).copied()
    }

    /// Health checks for `awl health`: each with a verdict and a reason.
    pub fn health_json(&self) -> Value {
        let cfg = self.config();
        let warm = self.uptime() > Duration::from_secs(30);
        let mut checks = Vec::new();
        let notes = self.health.get();
        let tun = lock(&self.tun_name).clone();
        let mut add = |c: crate::app::health::Check| checks.push(c.json());
        add(crate::app::health::interface(
            tun.as_deref(),
            notes.tun_error.as_deref(),
            &cfg.main.interface,
        ));
        let port = self.host.local_addr().ok().map(|a| a.port());
        add(crate::app::health::listen(notes.listen_fallback, port));
        let file = match config::load(&self.config_path) {
            Ok(l) => Ok(format!(
                "{}: OK ({} peer(s))",
                self.config_path.display(),
                l.config.peers.len()
            )),
            Err(_) if !self.config_path.exists() => Ok(format!(
                "{} absent: built-in defaults",
                self.config_path.display()
            )),
            Err(e) => Err(e.to_string()),
        };
        add(crate::app::health::config(
            file,
            notes.reload_error.as_deref(),
        ));
        let reach = self.reach(&cfg, warm, port);
        add(crate::app::health::relay(&reach));
        add(crate::app::health::udp(&reach));
        let mut check = |name: &str, ok: bool, detail: String| {
            checks.push(json!({"check": name, "ok": ok, "detail": detail}));
        };
        let boot = self.discovery.connected_bootstrap().len();
        let want_boot = !cfg.bootstrap_peers().is_empty();
        check(
            "bootstrap",
            !want_boot || !warm || boot > 0,
            if want_boot {
                format!("{boot} bootstrap peer(s) connected")
            } else {
                "none configured".into()
            },
        );
        let (confirmed, online) = {
            let t = lock(&self.peers);
            let c: Vec<PeerId> = t
                .iter()
                .filter(|p| p.confirmed)
                .map(|p| p.peer_id.clone())
                .collect();
            let on = c.iter().filter(|p| self.host.is_connected(p)).count();
            (c.len(), on)
        };
        check(
            "peers",
            confirmed == 0 || !warm || online > 0,
            format!("{online} of {confirmed} confirmed peer(s) connected"),
        );
        let pool = self.dp.pool();
        check(
            "packet pool",
            pool.available() > 0,
            format!("{} of {} buffers free", pool.available(), pool.capacity()),
        );
        let ok = checks.iter().all(|c| c["ok"] == true);
        json!({"ok": ok, "checks": checks})
    }

    /// The facts the relay and UDP health checks judge.
    fn reach(&self, cfg: &Config, warm: bool, port: Option<u16>) -> crate::app::health::Reach {
        let d = &self.discovery;
        let known: Vec<PeerId> = lock(&self.peers)
            .iter()
            .map(|p| p.peer_id.clone())
            .collect();
        let friends: Vec<PeerId> = known
            .into_iter()
            .filter(|p| self.host.is_connected(p))
            .collect();
        let relayed: Vec<&PeerId> = friends
            .iter()
            .filter(|p| !self.host.has_direct(p))
            .collect();
        crate::app::health::Reach {
            warm,
            use_relays: cfg.main.use_relays,
            hole_punching: cfg.main.hole_punching,
            bootstrap_configured: cfg.bootstrap_peers().len(),
            bootstrap_resolved: d.resolved_bootstrap(),
            bootstrap_connected: d.connected_bootstrap().len(),
            relay_candidates: d.relay_candidates().len(),
            reservations: d.reservations().len(),
            reservation_error: d.reservation_error(),
            direct: self
                .host
                .connected_peers()
                .iter()
                .filter(|p| self.host.has_direct(p))
                .count(),
            friends_connected: friends.len(),
            friends_relayed: relayed.len(),
            friends_punch_failed: relayed.iter().filter(|p| d.punch_failed(p)).count(),
            listen_port: port,
        }
    }

    /// The peer the local SOCKS5 proxy goes through (`socks5_exit`: peer ID or alias).
    pub fn socks5_exit(&self) -> Option<PeerId> {
        let want = self.config().main.socks5_exit?;
        lock(&self.peers)
            .iter()
            .find(|p| p.peer_id.to_string() == want || p.alias == want)
            .map(|p| p.peer_id.clone())
    }

    // ---- names for the .awl DNS zone ----

    /// The mesh IP for a `.awl` label: a peer's domain, alias or peer ID, or our own name.
    pub fn dns_lookup(&self, label: &str) -> Option<Ipv4Addr> {
        use crate::services::dns::label_of;
        let t = lock(&self.peers);
        if label_of(&self.name()) == label {
            return Some(t.own_ip());
        }
        let found = t
            .iter()
            .find(|p| {
                (!p.domain.is_empty() && label_of(&p.domain) == label)
                    || (!p.alias.is_empty() && label_of(&p.alias) == label)
                    || p.peer_id.to_string().to_lowercase() == label
            })
            .map(|p| p.ip);
        found
    }

    /// The `.awl` label of a mesh IP (PTR).
    pub fn dns_reverse(&self, ip: Ipv4Addr) -> Option<String> {
        use crate::services::dns::label_of;
        let t = lock(&self.peers);
        if ip == t.own_ip() {
            return Some(label_of(&self.name()));
        }
        t.by_ip(ip).map(|p| {
            if !p.domain.is_empty() {
                label_of(&p.domain)
            } else if !p.alias.is_empty() {
                label_of(&p.alias)
            } else {
                p.peer_id.to_string().to_lowercase()
            }
        })
    }

    pub fn in_mesh(&self, ip: Ipv4Addr) -> bool {
        lock(&self.peers).in_mesh(ip)
    }

    /// The HTTP status document for LAN hosts: the node and its peers, without underlay
    /// addresses (`services::http::lan_view`).
    pub fn http_status_json(&self) -> String {
        crate::services::http::lan_view(self.status_json(), self.peers_json())
    }

    // ---- JSON views for the control API ----

    pub fn status_json(&self) -> Value {
        let cfg = self.config();
        let totals = self.dp.stats.totals();
        let t = lock(&self.peers);
        json!({
            "peer_id": self.host.peer_id().to_string(),
            "name": cfg.main.name,
            "version": env!("CARGO_PKG_VERSION"),
            "mesh_ip": t.own_ip().to_string(),
            "prefix": t.prefix(),
            "interface": lock(&self.tun_name).clone(),
            "listen_addrs": self.host.listen_addrs().iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            "observed_addrs": self.host.observed_addrs().iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            "circuit_addrs": self.host.advertised_addrs().iter().filter(|a| a.is_relayed()).map(|a| a.to_string()).collect::<Vec<_>>(),
            "bootstrap_connected": self.discovery.connected_bootstrap().len(),
            "relays": self.discovery.reservations().iter().map(|(p, exp)| json!({"peer_id": p.to_string(), "expires": exp})).collect::<Vec<_>>(),
            "serving": cfg.main.serve,
            "uptime_secs": self.uptime().as_secs(),
            "peers_known": t.len(),
            "peers_connected": t.iter().filter(|p| self.host.is_connected(&p.peer_id)).count(),
            "requests": t.pending().count(),
            "traffic": totals,
            "dropped": self.dp.stats.global_snapshot(),
            "pool": {
                "capacity": self.dp.pool().capacity(),
                "available": self.dp.pool().available(),
                "exhausted": self.dp.pool().exhausted(),
            },
        })
    }

    pub fn peers_json(&self) -> Value {
        let t = lock(&self.peers);
        let rtt = lock(&self.rtt);
        let mut list: Vec<Value> = t
            .iter()
            .map(|p| {
                let connected = self.host.is_connected(&p.peer_id);
                let remote = self.host.remote_addr(&p.peer_id);
                json!({
                    "peer_id": p.peer_id.to_string(),
                    "alias": p.alias,
                    "name": p.name,
                    "domain": p.domain,
                    "ip": p.ip.to_string(),
                    "connected": connected,
                    "confirmed": p.confirmed,
                    "declined": p.declined,
                    "allow_exit": p.allow_exit,
                    "allowed_exit": p.allowed_exit,
                    "path": if !connected { Value::Null } else if self.host.is_relayed(&p.peer_id) { json!("relayed") } else { json!("direct") },
                    "remote_addr": remote.map(|a| a.to_string()),
                    "rtt_ms": rtt.get(&p.peer_id).map(|d| (d.as_secs_f64() * 1e4).round() / 10.0),
                    "last_seen": p.last_seen,
                    "version": self.host.identify_info(&p.peer_id).map(|i| i.agent_version),
                    "traffic": self.dp.stats.peer_snapshot(&p.peer_id),
                })
            })
            .collect();
        list.sort_by(|a, b| a["ip"].as_str().cmp(&b["ip"].as_str()));
        Value::Array(list)
    }

    pub fn requests_json(&self) -> Value {
        let t = lock(&self.peers);
        Value::Array(
            t.pending()
                .map(
                    |r| json!({"peer_id": r.peer_id, "name": r.name, "received_at": r.received_at}),
                )
                .collect(),
        )
    }

    pub fn blocked_json(&self) -> Value {
        let t = lock(&self.peers);
        Value::Array(
            t.blocked()
                .map(|(id, b)| json!({"peer_id": id.to_string(), "name": b.name, "since": b.since}))
                .collect(),
        )
    }

    /// The queue of packets bound for the TUN, for a caller that delivers them elsewhere
    /// (tests, the selftest, userspace mode). `attach_tun` takes it otherwise.
    pub fn take_tun_queue(
        &self,
    ) -> Option<tokio::sync::mpsc::Receiver<dataplane::pool::PacketBuf>> {
        lock(&self.from_mesh).take()
    }

    /// Attaches a TUN device: starts its reader and writer.
    pub fn attach_tun(self: &Arc<Self>, tun: dataplane::tun::Tun, name: String) {
        *lock(&self.tun_name) = Some(name);
        let tun = Arc::new(tun);
        crate::spawn(dataplane::tun::reader(tun.clone(), self.dp.clone()));
        if let Some(rx) = lock(&self.from_mesh).take() {
            self.dp.set_tun(tun.clone());
            crate::spawn(dataplane::tun::writer(tun, rx));
        }
    }
}

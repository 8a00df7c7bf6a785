//! `awl run`: the long-running node. Owns the host, the reconnect loop and signal handling.
//!
//! SIGHUP re-reads the UCI file (procd's reload); a broken file is reported with its line and
//! the running configuration is kept. SIGINT/SIGTERM close connections and exit.

use crate::app::control;
use crate::app::node::{Node, TunDevice};
use crate::config::Config;
use crate::dataplane::tun::{self, TunConfig};
use crate::p2p::identity;
use crate::p2p::multiaddr::Multiaddr;
use crate::p2p::{Host, HostConfig};
use crate::services;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::signal::unix::{signal, SignalKind};

/// The UDP socket to listen on: the first QUIC `listen_address`, else every address, IPv6
/// and IPv4 (one dual-stack socket; IPv4 only where the kernel has no IPv6), on `listen_port`.
pub fn listen_socket(cfg: &Config) -> SocketAddr {
    for a in &cfg.main.listen_address {
        match a.parse::<Multiaddr>() {
            Ok(m) => match m.quic_socket_addr() {
                Some(s) => return s,
                None if m.is_tcp() => {}
                None => log::warn!(
                    "listen_address '{a}': only /ip4|ip6/…/udp/N/quic-v1 and /ip4|ip6/…/tcp/N are supported, ignored"
                ),
            },
            Err(e) => log::warn!("listen_address '{a}': {e}"),
        }
    }
    SocketAddr::from(([0u16; 8], cfg.main.listen_port))
}

/// The TCP socket to listen on: the first TCP `listen_address`, else (with `listen_tcp`)
/// the QUIC socket's address and port, as AWL listens on TCP and UDP 4363.
pub fn listen_tcp_socket(cfg: &Config, quic: SocketAddr) -> Option<SocketAddr> {
    let configured = cfg
        .main
        .listen_address
        .iter()
        .filter_map(|a| a.parse::<Multiaddr>().ok()?.tcp_socket_addr())
        .next();
    configured.or(cfg.main.listen_tcp.then_some(quic))
}

/// Why the daemon could not start.
#[derive(Debug)]
pub enum Error {
    Identity(PathBuf, std::io::Error),
    /// Not even a random port could be had.
    ListenAnywhere(crate::p2p::Error),
    Listen(SocketAddr, crate::p2p::Error),
    Socket(control::SocketError),
    Signal(std::io::Error),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Identity(dir, e) => write!(f, "identity in {}: {e}", dir.display()),
            Error::ListenAnywhere(e) => e.fmt(f),
            Error::Listen(addr, e) => write!(f, "cannot listen on {addr}: {e}"),
            Error::Socket(e) => e.fmt(f),
            Error::Signal(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {}

pub async fn start_host(cfg: &Config, data_dir: &Path) -> Result<Host, Error> {
    let (keypair, created) = identity::load_or_create(data_dir)
        .map_err(|e| Error::Identity(data_dir.to_path_buf(), e))?;
    if created {
        log::info!("created a new identity in {}", data_dir.display());
    }
    let listen = listen_socket(cfg);
    let host_cfg = |addr: SocketAddr| {
        let mut h = HostConfig::new(addr);
        h.listen_tcp = listen_tcp_socket(cfg, listen);
        h.max_connections = cfg.main.max_connections as usize;
        h.stream_rate = cfg.main.stream_rate;
        h
    };
    let host = match Host::start(keypair.clone(), host_cfg(listen)).await {
        Ok(h) => h,
        // As AWL does: if the default port is taken, listen on a random one.
        Err(crate::p2p::Error::Io(e))
            if e.kind() == std::io::ErrorKind::AddrInUse && cfg.main.listen_address.is_empty() =>
        {
            log::warn!(
                "port {} is in use; listening on a random port",
                listen.port()
            );
            Host::start(keypair, host_cfg(SocketAddr::new(listen.ip(), 0)))
                .await
                .map_err(Error::ListenAnywhere)?
        }
        Err(e) => return Err(Error::Listen(listen, e)),
    };
    Ok(host)
}

/// What the service stack answers on, if it is on.
fn service_config(cfg: &Config) -> Option<services::ServiceConfig> {
    let m = &cfg.main;
    if !m.services {
        return None;
    }
    if cfg!(not(feature = "services")) {
        log::warn!("built without the 'services' feature: no DNS, HTTP status or ping on the service address");
        return None;
    }
    let mesh = crate::base::prefix::Prefix::new(m.address, m.prefix)?;
    let default = services::default_address(m.address, m.prefix);
    let addr = match m.service_address {
        Some(a) if mesh.contains(a) && a != m.address => a,
        Some(a) => {
            log::error!(
                "service_address {a} is not a free address of the mesh subnet; using {default}"
            );
            default
        }
        None => default,
    };
    let upstream = m
        .dns_upstream
        .map(|ip| SocketAddr::new(ip.into(), 53))
        .or_else(|| Some(crate::p2p::dnsaddr::system_nameserver()))
        .filter(|u| u.ip() != std::net::IpAddr::V4(addr));
    Some(services::ServiceConfig {
        addrs: vec![addr],
        upstream,
        http: m.http_status,
    })
}

/// The SOCKS5 exit for peers, and the local proxy through a peer.
#[cfg(not(feature = "socks5"))]
async fn start_socks5(node: &Arc<Node>) {
    let m = node.config().main;
    if m.socks5 {
        log::warn!("built without the 'socks5' feature: no SOCKS5 proxy or exit");
    }
}

/// The SOCKS5 exit for peers, and the local proxy through a peer.
#[cfg(feature = "socks5")]
async fn start_socks5(node: &Arc<Node>) {
    let m = node.config().main;
    if m.socks5_server {
        let peers = node.peers.clone();
        crate::services::socks5::serve(
            &node.host,
            Arc::new(move |p| {
                peers
                    .lock()
                    .map(|t| t.get(p).is_some_and(|k| k.allow_exit))
                    .unwrap_or(false)
            }),
        );
    }
    if m.socks5 {
        let addr = SocketAddr::new(m.socks5_address.into(), m.socks5_port);
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => {
                log::info!("SOCKS5 proxy on {addr}");
                let n = node.clone();
                let exit = Arc::new(move || n.socks5_exit());
                node.tasks.spawn(crate::services::socks5::run_client(
                    node.host.clone(),
                    l,
                    exit,
                ));
            }
            Err(e) => log::error!("SOCKS5 proxy on {addr}: {e}"),
        }
    }
}

/// The service stack on `node`'s tasks; a failure is logged (the node runs without it).
fn start_services(
    node: &Arc<Node>,
    sc: services::ServiceConfig,
    rx: tokio::sync::mpsc::Receiver<crate::dataplane::pool::PacketBuf>,
    out: services::Output,
) {
    match services::start(node.clone(), node.dp.pool().clone(), sc, rx, out) {
        Ok(task) => node.tasks.spawn_boxed(task),
        Err(e) => log::error!("services not started: {e}"),
    }
}

/// Forwarding and firewall as the configuration asks (docs/GATEWAY.md).
fn lan_setup(cfg: &Config, tun: &str) -> crate::gateway::Lan {
    use crate::config::Firewall;
    let m = &cfg.main;
    let gatewaying = !m.route.is_empty() || m.gateway || m.exit_node.is_some();
    let nft = match m.firewall {
        Firewall::Nftables => true,
        Firewall::None => false,
        Firewall::Auto if crate::gateway::is_openwrt() => {
            if gatewaying {
                log::info!("OpenWrt: forwarding and masquerade come from the fw4 zone 'awl'");
            }
            false
        }
        Firewall::Auto => gatewaying,
    };
    let mesh = crate::base::prefix::Prefix::new(m.address, m.prefix).unwrap_or(
        crate::base::prefix::Prefix {
            addr: m.address,
            len: 32,
        },
    );
    let lans = if gatewaying || nft {
        crate::gateway::lan_interfaces(&m.lan_interface, &m.route, tun)
    } else {
        Vec::new()
    };
    crate::gateway::Lan::setup(
        tun,
        mesh,
        gatewaying || nft,
        nft,
        m.snat_lan,
        m.gateway,
        &lans,
    )
}

pub async fn run(
    cfg: Config,
    config_path: PathBuf,
    data_dir: PathBuf,
    socket: PathBuf,
) -> Result<(), Error> {
    let host = start_host(&cfg, &data_dir).await?;
    // The port asked for, when start_host may have fallen back to a random one.
    let wanted_port = cfg
        .main
        .listen_address
        .is_empty()
        .then_some(cfg.main.listen_port);
    let tun_cfg = TunConfig {
        name: cfg.main.interface.clone(),
        address: cfg.main.address,
        prefix: cfg.main.prefix,
        mtu: cfg.main.mtu,
        offload: cfg.main.tun_offload,
    };
    let name = cfg.main.name.clone();
    // In order: the VPN interface and its gateway first, so the node is built with them.
    let tun = match tun::open(&tun_cfg) {
        Ok(dev) => {
            log::info!(
                "VPN interface {} up: {}/{} mtu {}",
                tun_cfg.name,
                tun_cfg.address,
                tun_cfg.prefix,
                tun_cfg.mtu
            );
            host.hide_addr(tun_cfg.address.into());
            Ok(TunDevice {
                dev,
                name: tun_cfg.name.clone(),
                lan: lan_setup(&cfg, &tun_cfg.name),
            })
        }
        Err(e) => Err(e),
    };
    let (tun, tun_error) = match tun {
        Ok(t) => (Some(t), None),
        Err(e) => (None, Some(e)),
    };
    let (node, tun_queue) = Node::new(host.clone(), cfg, config_path, &data_dir, tun);
    if let Ok(a) = host.local_addr() {
        node.health.set_listen(wanted_port, a.port());
    }
    let svc_cfg = service_config(&node.config());
    if let Some(sc) = &svc_cfg {
        if let Some(ip) = sc.addrs.first() {
            node.peers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .reserve(*ip);
        }
    }
    match tun_error {
        None => {
            if let Some(sc) = svc_cfg {
                let (tx, rx) = tokio::sync::mpsc::channel(services::INPUT_QUEUE);
                node.dp.set_services(sc.addrs.clone(), tx);
                let out = services::Output::Tun(node.dp.tun_sender());
                start_services(&node, sc, rx, out);
            }
        }
        Some(e) => {
            node.health.set_tun_error(e.clone());
            // Userspace mode: mesh traffic to our own address ends in the service stack, and
            // the SOCKS5 proxy reaches into the mesh.
            log::warn!(
                "{e}; userspace mode: no VPN interface (needs CAP_NET_ADMIN and /dev/net/tun); \
                 this node answers ping, DNS and status on {} and the SOCKS5 proxy reaches peers",
                tun_cfg.address
            );
            if let Some(rx) = tun_queue {
                let sc = services::ServiceConfig {
                    addrs: vec![tun_cfg.address],
                    upstream: svc_cfg.as_ref().and_then(|s| s.upstream),
                    http: node.config().main.http_status,
                };
                let out = services::Output::Mesh(node.dp.clone());
                start_services(&node, sc, rx, out);
            }
        }
    }
    start_socks5(&node).await;
    let mapping = start_port_mapping(&node, &host);
    let socket_id = control::serve(node.clone(), &socket).map_err(Error::Socket)?;
    if node.config().main.lan_discovery {
        if let Ok(local) = host.local_addr() {
            let loops = crate::mesh::lan_discovery::start(&host, node.clone(), local.port());
            for task in loops.into_iter().flatten() {
                node.tasks.spawn_boxed(task);
            }
        }
    }
    log::info!(
        "awl {} started: peer {} name '{}', {} known peer(s), control socket {}",
        env!("CARGO_PKG_VERSION"),
        host.peer_id(),
        name,
        node.peers.lock().map(|t| t.len()).unwrap_or(0),
        socket.display()
    );

    let mut hup = signal(SignalKind::hangup()).map_err(Error::Signal)?;
    let mut term = signal(SignalKind::terminate()).map_err(Error::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(Error::Signal)?;
    loop {
        tokio::select! {
            _ = hup.recv() => match node.reload() {
                Ok(n) => log::info!("reloaded configuration: {n} known peer(s)"),
                Err(e) => log::error!("reload failed, keeping the running config: {e}"),
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    log::info!("shutting down");
    // The loops first: none may change routes or files after this.
    node.tasks.shutdown();
    stop_port_mapping(mapping).await;
    node.teardown_lan();
    node.save_state_now();
    host.shutdown();
    control::remove_socket(&socket, socket_id);
    Ok(())
}

/// The port mapping loop (`port_mapping`), when this build has it; what shutdown removes.
#[cfg(feature = "portmap")]
fn start_port_mapping(node: &Arc<Node>, host: &Host) -> Option<crate::app::portmap::Held> {
    if !node.config().main.port_mapping {
        return None;
    }
    let port = host.local_addr().ok()?.port();
    let held = crate::app::portmap::Held::default();
    node.tasks
        .spawn(crate::app::portmap::run(host.clone(), port, held.clone()));
    Some(held)
}

#[cfg(not(feature = "portmap"))]
fn start_port_mapping(node: &Arc<Node>, _host: &Host) -> Option<()> {
    if node.config().main.port_mapping {
        log::info!("port mapping is not part of this build (an OpenWrt router is the NAT itself)");
    }
    None
}

#[cfg(feature = "portmap")]
async fn stop_port_mapping(held: Option<crate::app::portmap::Held>) {
    if let Some(h) = held {
        crate::app::portmap::remove(&h).await;
    }
}

#[cfg(not(feature = "portmap"))]
async fn stop_port_mapping(_: Option<()>) {}

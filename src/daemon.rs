//! `awl run`: the long-running node. Owns the host, the reconnect loop and signal handling.
//!
//! SIGHUP re-reads the UCI file (procd's reload); a broken file is reported with its line and
//! the running configuration is kept. SIGINT/SIGTERM close connections and exit.

use crate::config::Config;
use crate::control;
use crate::dataplane::tun::{self, TunConfig};
use crate::identity;
use crate::multiaddr::Multiaddr;
use crate::node::Node;
use crate::p2p::{Host, HostConfig};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tokio::signal::unix::{signal, SignalKind};

/// The UDP socket to listen on: the first QUIC `listen_address`, else all IPv4 on `listen_port`.
pub fn listen_socket(cfg: &Config) -> SocketAddr {
    for a in &cfg.main.listen_address {
        match a.parse::<Multiaddr>() {
            Ok(m) => match m.quic_socket_addr() {
                Some(s) => return s,
                None => log::warn!(
                    "listen_address '{a}': only /ip4|ip6/…/udp/N/quic-v1 is supported, ignored"
                ),
            },
            Err(e) => log::warn!("listen_address '{a}': {e}"),
        }
    }
    SocketAddr::from(([0, 0, 0, 0], cfg.main.listen_port))
}

pub async fn start_host(cfg: &Config, data_dir: &Path) -> Result<Host, String> {
    let (keypair, created) = identity::load_or_create(data_dir)
        .map_err(|e| format!("identity in {}: {e}", data_dir.display()))?;
    if created {
        log::info!("created a new identity in {}", data_dir.display());
    }
    let listen = listen_socket(cfg);
    let host = match Host::start(keypair.clone(), HostConfig::new(listen)).await {
        Ok(h) => h,
        // As AWL does: if the default port is taken, listen on a random one.
        Err(crate::p2p::Error::Io(e))
            if e.kind() == std::io::ErrorKind::AddrInUse && cfg.main.listen_address.is_empty() =>
        {
            log::warn!(
                "port {} is in use; listening on a random port",
                listen.port()
            );
            Host::start(keypair, HostConfig::new(SocketAddr::new(listen.ip(), 0)))
                .await
                .map_err(|e| e.to_string())?
        }
        Err(e) => return Err(format!("cannot listen on {listen}: {e}")),
    };
    Ok(host)
}

/// Forwarding and firewall as the configuration asks (docs/GATEWAY.md).
fn lan_setup(cfg: &Config, tun: &str) -> crate::lan::Lan {
    use crate::config::Firewall;
    let m = &cfg.main;
    let gatewaying = !m.route.is_empty() || m.gateway || m.exit_node.is_some();
    let nft = match m.firewall {
        Firewall::Nftables => true,
        Firewall::None => false,
        Firewall::Auto if crate::lan::is_openwrt() => {
            if gatewaying {
                log::info!("OpenWrt: forwarding and masquerade come from the fw4 zone 'awl'");
            }
            false
        }
        Firewall::Auto => gatewaying,
    };
    let mesh = crate::routes::Prefix::new(m.address, m.prefix).unwrap_or(crate::routes::Prefix {
        addr: m.address,
        len: 32,
    });
    crate::lan::Lan::setup(tun, mesh, gatewaying || nft, nft, m.snat_lan)
}

pub async fn run(
    cfg: Config,
    config_path: PathBuf,
    data_dir: PathBuf,
    socket: PathBuf,
) -> Result<(), String> {
    let host = start_host(&cfg, &data_dir).await?;
    let tun_cfg = TunConfig {
        name: cfg.main.interface.clone(),
        address: cfg.main.address,
        prefix: cfg.main.prefix,
        mtu: cfg.main.mtu,
    };
    let name = cfg.main.name.clone();
    let node = Node::new(host.clone(), cfg, config_path, &data_dir);
    match tun::open(&tun_cfg) {
        Ok(dev) => {
            log::info!(
                "VPN interface {} up: {}/{} mtu {}",
                tun_cfg.name,
                tun_cfg.address,
                tun_cfg.prefix,
                tun_cfg.mtu
            );
            host.hide_addr(tun_cfg.address.into());
            node.attach_tun(dev, tun_cfg.name.clone());
            node.attach_lan(lan_setup(&node.config(), &tun_cfg.name));
        }
        Err(e) => log::error!(
            "{e}; running without a VPN interface (needs CAP_NET_ADMIN and /dev/net/tun)"
        ),
    }
    control::serve(node.clone(), &socket)?;
    if node.config().main.lan_discovery {
        if let Ok(local) = host.local_addr() {
            crate::lan_discovery::start(node.clone(), local.port());
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

    let mut hup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
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
    node.teardown_lan();
    node.save_state_now();
    host.shutdown();
    let _ = std::fs::remove_file(&socket);
    Ok(())
}

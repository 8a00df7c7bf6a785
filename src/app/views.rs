//! The node as JSON for the control API (`status`, `peers`, `requests`, `blocked`, `health`)
//! and for LAN hosts over HTTP.

use crate::app::node::{lock, Node};
use crate::config::{self, Config};
use crate::p2p::identity::PeerId;
use serde_json::{json, Value};
use std::time::Duration;

impl Node {
    /// The HTTP status document for LAN hosts: the node and its peers, without underlay
    /// addresses (`services::http::lan_view`).
    pub fn http_status_json(&self) -> String {
        crate::services::http::lan_view(self.status_json(), self.peers_json())
    }

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
            "interface": self.tun_name.clone(),
            "listen_addrs": self.host.listen_addrs().iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            "observed_addrs": self.host.observed_addrs().iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            "mapped_addrs": self.host.mapped_addrs().iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            "circuit_addrs": self.host.advertised_addrs().iter().filter(|a| a.is_relayed()).map(|a| a.to_string()).collect::<Vec<_>>(),
            "bootstrap_connected": self.discovery.connected_bootstrap().len(),
            "relays": self.discovery.reservations().iter().map(|(p, exp)| json!({"peer_id": p.to_string(), "expires": exp})).collect::<Vec<_>>(),
            "reachability": self.host.reachability().as_str(),
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

    /// Health checks for `awl health`: each with a verdict and a reason.
    pub fn health_json(&self) -> Value {
        let cfg = self.config();
        let warm = self.uptime() > Duration::from_secs(30);
        let mut checks = Vec::new();
        let notes = self.health.get();
        let tun = self.tun_name.clone();
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
            public: self.host.reachability() == crate::p2p::autonat::Reachability::Public,
            reservation_error: d.reservation_error(),
            direct: self
                .host
                .connected_peers()
                .iter()
                .filter(|p| self.host.has_quic(p))
                .count(),
            tcp_only: self
                .host
                .connected_peers()
                .iter()
                .filter(|p| self.host.has_direct(p) && !self.host.has_quic(p))
                .count(),
            friends_connected: friends.len(),
            friends_relayed: relayed.len(),
            friends_punch_failed: relayed.iter().filter(|p| d.punch_failed(p)).count(),
            listen_port: port,
        }
    }
}

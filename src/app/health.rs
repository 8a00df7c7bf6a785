//! The health checks `awl health` reports and LuCI's Status page shows with advice: each a
//! verdict and a detail that says what is wrong and what to do. The verdicts are pure
//! functions of facts the node gathers (`Node::health_json`), so they are tested here.
//!
//! - `interface`: the TUN device could not be created (userspace mode); the cause named.
//! - `listen`: the configured UDP port was taken and a random one is used.
//! - `config`: the file on disk does not load, or the last reload failed (the daemon keeps
//!   running the configuration it had).
//! - `relay`: `use_relays` is on, relays are reachable, but no reservation is held.
//! - `udp`: a heuristic: (1) no direct QUIC connection to anyone although bootstrap peers
//!   have addresses to dial: outgoing UDP is probably blocked (TCP connections, if any, carry
//!   the traffic meanwhile, more slowly); (2) connected peers reach us only through relays and hole punching
//!   with them failed (or is off): direct UDP does not get through.
//!
//! When the daemon is not running, `offline` reports the config file's check and
//! `daemon: not running`.

use serde_json::{json, Value};
use std::sync::Mutex;

/// What the daemon learnt at start-up and on reloads that health reports.
#[derive(Debug, Default)]
pub struct Notes {
    inner: Mutex<NotesInner>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct NotesInner {
    /// Why the TUN device could not be created (userspace mode).
    pub tun_error: Option<String>,
    /// (configured port, port in use) when the configured one was taken.
    pub listen_fallback: Option<(u16, u16)>,
    /// The error of the last reload, until a reload succeeds.
    pub reload_error: Option<String>,
}

impl Notes {
    fn lock(&self) -> std::sync::MutexGuard<'_, NotesInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self) -> NotesInner {
        self.lock().clone()
    }

    pub fn set_tun_error(&self, e: String) {
        self.lock().tun_error = Some(e);
    }

    /// Records the listen port: `wanted` from the config (None: an explicit
    /// `listen_address`, no fallback), `bound` the socket's.
    pub fn set_listen(&self, wanted: Option<u16>, bound: u16) {
        self.lock().listen_fallback = wanted
            .filter(|w| *w != 0 && *w != bound)
            .map(|w| (w, bound));
    }

    pub fn set_reload(&self, result: Result<(), String>) {
        self.lock().reload_error = result.err();
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub check: &'static str,
    pub ok: bool,
    pub detail: String,
}

impl Check {
    fn new(check: &'static str, ok: bool, detail: impl Into<String>) -> Check {
        Check {
            check,
            ok,
            detail: detail.into(),
        }
    }

    pub fn json(&self) -> Value {
        json!({"check": self.check, "ok": self.ok, "detail": self.detail})
    }
}

/// What the TUN error means for the router owner.
pub fn tun_cause(error: &str, interface: &str, dev_tun_exists: bool) -> String {
    let e = error.to_ascii_lowercase();
    let cause = if !dev_tun_exists {
        "/dev/net/tun missing: install kmod-tun (opkg install kmod-tun), then restart awl".into()
    } else if e.contains("operation not permitted") || e.contains("permission denied") {
        format!(
            "no permission to create {interface}: run awl as root or with CAP_NET_ADMIN ({error})"
        )
    } else if e.contains("busy") || e.contains("file exists") {
        format!("{interface} is in use by another program (AWL, or another awl?): stop it, or set another 'interface' ({error})")
    } else if e.contains("no such device") {
        format!("the kernel has no TUN support: install kmod-tun, then restart awl ({error})")
    } else {
        error.to_string()
    };
    format!("{cause}; running in userspace mode: no VPN interface, the LAN can't reach the mesh")
}

pub fn interface(tun: Option<&str>, tun_error: Option<&str>, configured: &str) -> Check {
    match (tun, tun_error) {
        (Some(t), _) => Check::new("interface", true, format!("{t} up")),
        (None, Some(e)) => Check::new(
            "interface",
            false,
            tun_cause(e, configured, std::path::Path::new("/dev/net/tun").exists()),
        ),
        (None, None) => Check::new("interface", false, "no VPN interface yet"),
    }
}

/// `bound`: the UDP port the node listens on.
pub fn listen(fallback: Option<(u16, u16)>, bound: Option<u16>) -> Check {
    match (fallback, bound) {
        (Some((wanted, used)), _) => Check::new(
            "listen",
            false,
            format!(
                "UDP port {wanted} is in use by another program (is AWL still running?); listening on random port {used} instead: \
                 a port forward or firewall rule for {wanted} does not reach awl. Free port {wanted} or set 'listen_port', then restart awl"
            ),
        ),
        (None, Some(p)) => Check::new("listen", true, format!("UDP port {p}")),
        (None, None) => Check::new("listen", false, "no listening socket"),
    }
}

/// `file`: the config file's check now (Ok: a short verdict; Err: the error with its line).
pub fn config(file: Result<String, String>, reload_error: Option<&str>) -> Check {
    match (file, reload_error) {
        (Err(e), _) => Check::new(
            "config",
            false,
            format!("{e} (not applied: the daemon runs the configuration it loaded last)"),
        ),
        (Ok(_), Some(e)) => Check::new(
            "config",
            false,
            format!("the last reload failed: {e}; the file loads now: run 'awl reload' (or /etc/init.d/awl reload)"),
        ),
        (Ok(v), None) => Check::new("config", true, v),
    }
}

/// What the relay and UDP checks look at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reach {
    /// Long enough up for bootstrap connections and reservations to exist.
    pub warm: bool,
    pub use_relays: bool,
    pub hole_punching: bool,
    /// Bootstrap peers configured, with a known QUIC address, connected.
    pub bootstrap_configured: usize,
    pub bootstrap_resolved: usize,
    pub bootstrap_connected: usize,
    /// Connected bootstrap peers that offer relaying.
    pub relay_candidates: usize,
    pub reservations: usize,
    /// AutoNAT found us publicly reachable: no reservation is needed.
    pub public: bool,
    /// Why the last reservation failed.
    pub reservation_error: Option<String>,
    /// Peers (any) we have a direct QUIC connection with.
    pub direct: usize,
    /// Peers (any) we reach directly over TCP only.
    pub tcp_only: usize,
    /// Known peers connected, and of them the ones through a relay only.
    pub friends_connected: usize,
    pub friends_relayed: usize,
    /// Relayed-only known peers whose last hole punch failed.
    pub friends_punch_failed: usize,
    pub listen_port: Option<u16>,
}

pub fn relay(r: &Reach) -> Check {
    let c = |ok: bool, d: String| Check::new("relay", ok, d);
    if !r.use_relays {
        return c(true, "off (use_relays 0)".into());
    }
    if r.reservations > 0 {
        return c(true, format!("{} reservation(s) held", r.reservations));
    }
    if r.public {
        return c(true, "not needed: publicly reachable (AutoNAT)".into());
    }
    if r.bootstrap_configured == 0 {
        return c(
            true,
            "no bootstrap peers configured: nothing to reserve on".into(),
        );
    }
    if !r.warm {
        return c(true, "starting".into());
    }
    let why = if r.bootstrap_connected == 0 {
        "no bootstrap peer is connected (see 'bootstrap')".to_string()
    } else if r.relay_candidates == 0 {
        format!(
            "none of the {} connected bootstrap peer(s) offers relaying: add one that does ('bootstrap')",
            r.bootstrap_connected
        )
    } else {
        match &r.reservation_error {
            Some(e) => format!("reservations refused ({e}); retried every minute"),
            None => "reservations not granted yet; retried every minute".to_string(),
        }
    };
    c(
        false,
        format!("no relay reservation: {why}. Peers behind NAT can't reach this node until it holds one"),
    )
}

pub fn udp(r: &Reach) -> Check {
    let c = |ok: bool, d: String| Check::new("udp", ok, d);
    if !r.warm {
        return c(true, "starting".into());
    }
    if r.direct == 0 && r.bootstrap_resolved > 0 {
        let meanwhile = if r.tcp_only > 0 {
            format!(
                "{} peer(s) are reached over TCP instead, slower under loss; allow outgoing UDP for QUIC",
                r.tcp_only
            )
        } else {
            "no peer answered over TCP either".to_string()
        };
        return c(
            false,
            format!(
                "no QUIC (UDP) connection to anyone: none of {} bootstrap peer(s) answered over UDP. \
                 Outgoing UDP is probably blocked on this network; {meanwhile}",
                r.bootstrap_resolved
            ),
        );
    }
    let port = r
        .listen_port
        .map_or_else(|| "the listen port".to_string(), |p| format!("UDP {p}"));
    if r.friends_connected > 0
        && r.friends_relayed == r.friends_connected
        && (!r.hole_punching || r.friends_punch_failed == r.friends_relayed)
    {
        let how = if r.hole_punching {
            "hole punching failed"
        } else {
            "hole punching is off"
        };
        return c(
            false,
            format!(
                "all {} connected peer(s) go through a relay ({how}): direct UDP does not get through a NAT or firewall. \
                 Relayed traffic is slow and cut by the relay's limits; forward {port} to this node for direct connections",
                r.friends_connected
            ),
        );
    }
    if r.direct == 0 {
        return c(
            true,
            "not tested: no bootstrap address to dial and no peer connected".into(),
        );
    }
    let relayed = if r.friends_relayed > 0 {
        format!(
            "; {} of {} connected peer(s) relayed",
            r.friends_relayed, r.friends_connected
        )
    } else {
        String::new()
    };
    c(
        true,
        format!("{} direct QUIC connection(s){relayed}", r.direct),
    )
}

/// The health reply when the daemon does not answer: the config file's check and why.
pub fn offline(file: Result<String, String>, reason: &str) -> Value {
    let checks = [
        match file {
            Ok(v) => Check::new("config", true, v),
            Err(e) => Check::new(
                "config",
                false,
                format!("{e} (the daemon does not start with this file: fix it first)"),
            ),
        },
        Check::new(
            "daemon",
            false,
            format!("not running ({reason}): start it with /etc/init.d/awl start (enabled '1' in the config)"),
        ),
    ];
    json!({"ok": false, "checks": checks.iter().map(Check::json).collect::<Vec<_>>()})
}

#[cfg(test)]
mod tests;

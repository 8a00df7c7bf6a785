//! UCI configuration: `/etc/config/awl`, one `config awl 'main'` and `config peer` sections.
//!
//! Parsing walks our own line-aware statements (`uci.rs`) so every error names the file, line
//! and option. `uci_rs` was tried first: it keeps no line numbers and rejects valid files
//! (a comment after a quoted value, `option name 'r' # note`, is a parse error there), so it
//! is not used; the grammar here follows libuci's (quotes, escapes, `'it'\''s'`, comments).
//! Values are validated against the single option table in `schema.rs`. Unknown options and
//! section types are warnings, not errors, so a newer config doesn't stop an older daemon.

mod schema;
pub mod uci;

pub use schema::{find, schema, Kind, OptionDesc, OPTIONS};

use crate::p2p::identity::PeerId;
use schema::{MAIN, PEER};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use uci::{Located, Stmt};

/// AWL's public bootstrap nodes (awl-protocol.md §2.2).
pub fn default_bootstrap() -> &'static [&'static str] {
    &[
        "/dnsaddr/rus-2.bootstrap.anywherelan.com/p2p/12D3KooWGRjpNYgFssihdgTDnr5rdhdh9ruMTbeT41h1fXfGmatZ",
        "/dnsaddr/ita-1.bootstrap.anywherelan.com/p2p/12D3KooWRXyTH7ZxerZRu6UtYQx62uCmYeZ244SsLQZbjuxX7RrL",
        "/dnsaddr/cze-1.bootstrap.anywherelan.com/p2p/12D3KooWJDDYCWbLYyCLTH16TFBZoxyDYD1Ypth2rtyznXYpnpza",
        "/dnsaddr/can-1.bootstrap.anywherelan.com/p2p/12D3KooWQeAvoyVnRm6T5XzWpKD8AzM1buzBL6o95iCodCZVQAsV",
        "/ip4/80.211.201.49/udp/6150/quic-v1/p2p/12D3KooWJDDYCWbLYyCLTH16TFBZoxyDYD1Ypth2rtyznXYpnpza",
        "/ip4/167.114.152.120/udp/6150/quic-v1/p2p/12D3KooWQeAvoyVnRm6T5XzWpKD8AzM1buzBL6o95iCodCZVQAsV",
        "/ip6/2607:5300:201:3100::6b5f/udp/7250/quic-v1/p2p/12D3KooWQeAvoyVnRm6T5XzWpKD8AzM1buzBL6o95iCodCZVQAsV",
        "/ip4/193.124.131.112/udp/6150/quic-v1/p2p/12D3KooWGRjpNYgFssihdgTDnr5rdhdh9ruMTbeT41h1fXfGmatZ",
        "/ip4/103.77.242.85/udp/6150/quic-v1/p2p/12D3KooWFdFV4ZcwMhNQuQnzNCp1K1aaQAsAnr8sXJnj7vehtCFW",
    ]
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MainConfig {
    pub enabled: bool,
    pub name: String,
    pub listen_port: u16,
    pub listen_address: Vec<String>,
    pub interface: String,
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub mtu: u16,
    pub bootstrap: Vec<String>,
    pub use_default_bootstrap: bool,
    pub log_level: log::LevelFilter,
    pub auto_accept: bool,
    pub lan_discovery: bool,
    pub data_dir: PathBuf,
    pub control_socket: PathBuf,
    pub reconnect_interval: u32,
    pub max_peers: u32,
    pub packet_pool: u32,
    pub peer_queue: u32,
    pub route: Vec<crate::base::prefix::Prefix>,
    pub gateway: bool,
    /// Peer ID or alias of the exit node to use.
    pub exit_node: Option<String>,
    pub firewall: Firewall,
    pub snat_lan: bool,
    /// Interfaces whose hosts may send into the mesh (Debian/nftables mode); empty: those
    /// holding an address inside an exported `route`.
    pub lan_interface: Vec<String>,
    /// Hold relay reservations on bootstrap peers, so peers can reach us behind NAT.
    pub use_relays: bool,
    pub hole_punching: bool,
    pub datagrams: bool,
    pub tun_offload: bool,
    /// Serve as bootstrap (Kademlia server) and relay.
    pub serve: bool,
    pub relay_for: RelayFor,
    pub relay_max_reservations: u32,
    pub relay_max_circuits: u32,
    pub relay_circuit_duration: u32,
    pub relay_circuit_data: u32,
    /// DNS, HTTP status and ICMP on the service address (smoltcp).
    pub services: bool,
    /// None: the last host address of the mesh subnet.
    pub service_address: Option<Ipv4Addr>,
    /// None: the first nameserver of /etc/resolv.conf.
    pub dns_upstream: Option<Ipv4Addr>,
    pub http_status: bool,
    /// Answer SOCKS5 streams from peers with `allow_exit`.
    pub socks5_server: bool,
    /// Local SOCKS5 listener sending connections through `socks5_exit`.
    pub socks5: bool,
    pub socks5_address: Ipv4Addr,
    pub socks5_port: u16,
    pub socks5_exit: Option<String>,
    pub max_connections: u32,
    pub stream_rate: u32,
}

impl MainConfig {
    /// The address the node's services answer on: `service_address` if it is a free host
    /// address of the mesh subnet, else the subnet's last host address. None: services off.
    pub fn service_addr(&self) -> Option<Ipv4Addr> {
        if !self.services {
            return None;
        }
        let m = mask(self.prefix);
        let net = u32::from(self.address) & m;
        let default = Ipv4Addr::from((net | !m).wrapping_sub(1));
        Some(match self.service_address {
            Some(a) if u32::from(a) & m == net && a != self.address => a,
            _ => default,
        })
    }
}

/// Who a serving node relays for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayFor {
    /// Known peers (friends) only.
    Friends,
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firewall {
    Auto,
    Nftables,
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    pub section: Option<String>,
    pub line: usize,
    pub peer_id: PeerId,
    pub alias: String,
    pub ip: Option<Ipv4Addr>,
    pub allow_exit: bool,
    pub address: Vec<String>,
    pub domain: String,
    pub allow_lan: bool,
    pub accept_routes: bool,
    /// Prefixes outside the private ranges this peer may announce.
    pub accept_route: Vec<crate::base::prefix::Prefix>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub main: MainConfig,
    pub peers: Vec<PeerConfig>,
}

impl Config {
    /// Bootstrap peers in force: the configured ones, plus AWL's unless switched off.
    pub fn bootstrap_peers(&self) -> Vec<String> {
        let mut v = self.main.bootstrap.clone();
        if self.main.use_default_bootstrap {
            v.extend(default_bootstrap().iter().map(|s| s.to_string()));
        }
        v
    }
}

pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}: line {l}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "awl".to_string())
}

impl Default for Config {
    fn default() -> Self {
        // Defaults come from the table; parsing them can't fail (a unit test checks).
        let main = build_main(&HashMap::new()).unwrap_or_else(|_| unreachable_default());
        Config {
            main,
            peers: Vec::new(),
        }
    }
}

/// Only reachable if the option table had an invalid default, which `defaults_parse` tests.
fn unreachable_default() -> MainConfig {
    MainConfig {
        enabled: true,
        name: host_name(),
        listen_port: 4363,
        listen_address: Vec::new(),
        interface: "awl0".into(),
        address: Ipv4Addr::new(10, 66, 0, 1),
        prefix: 16,
        mtu: 3500,
        bootstrap: Vec::new(),
        use_default_bootstrap: true,
        log_level: log::LevelFilter::Info,
        auto_accept: false,
        lan_discovery: true,
        data_dir: "/etc/awl".into(),
        control_socket: "/var/run/awl.sock".into(),
        reconnect_interval: 20,
        max_peers: 64,
        packet_pool: 1024,
        peer_queue: 256,
        route: Vec::new(),
        gateway: false,
        exit_node: None,
        firewall: Firewall::Auto,
        snat_lan: true,
        lan_interface: Vec::new(),
        use_relays: true,
        hole_punching: true,
        datagrams: true,
        tun_offload: true,
        serve: false,
        relay_for: RelayFor::Friends,
        relay_max_reservations: 128,
        relay_max_circuits: 16,
        relay_circuit_duration: 120,
        relay_circuit_data: 21,
        services: true,
        service_address: None,
        dns_upstream: None,
        http_status: true,
        socks5_server: true,
        socks5: false,
        socks5_address: Ipv4Addr::LOCALHOST,
        socks5_port: 1080,
        socks5_exit: None,
        max_connections: 128,
        stream_rate: 100,
    }
}

/// A parsed, validated value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Val {
    Bool(bool),
    Int(i64),
    Text(String),
    Ip(Ipv4Addr),
    Cidr(Ipv4Addr, u8),
    Peer(PeerId),
}

/// Checks one value against its descriptor; the error is the "expected …" part.
fn validate(desc: &OptionDesc, raw: &str) -> Result<Val, String> {
    let v = raw.trim();
    match desc.kind {
        Kind::Bool => match v {
            "1" | "yes" | "on" | "true" | "enabled" => Ok(Val::Bool(true)),
            "0" | "no" | "off" | "false" | "disabled" => Ok(Val::Bool(false)),
            _ => Err("expected a boolean (0/1, yes/no, on/off, true/false)".into()),
        },
        Kind::Int { min, max } => match v.parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(Val::Int(n)),
            _ => Err(format!("expected an integer {min}..{max}")),
        },
        Kind::Str { max_len } => {
            if raw.chars().count() > max_len || raw.chars().any(char::is_control) {
                Err(format!("expected at most {max_len} printable characters"))
            } else {
                Ok(Val::Text(raw.to_string()))
            }
        }
        Kind::Ipv4 => v
            .parse()
            .map(Val::Ip)
            .map_err(|_| "expected an IPv4 address".into()),
        Kind::Cidr4 {
            min_prefix,
            max_prefix,
        } => {
            let err = || {
                format!("expected an IPv4 address with prefix /{min_prefix}../{max_prefix}, e.g. 10.66.0.1/16")
            };
            let (ip, len) = v.split_once('/').ok_or_else(err)?;
            let ip: Ipv4Addr = ip.parse().map_err(|_| err())?;
            let len: u8 = len.parse().map_err(|_| err())?;
            if !(min_prefix..=max_prefix).contains(&len) {
                return Err(err());
            }
            Ok(Val::Cidr(ip, len))
        }
        Kind::Prefix4 => v
            .parse::<crate::base::prefix::Prefix>()
            .map(|p| Val::Cidr(p.addr, p.len))
            .map_err(|e| format!("expected a network prefix: {e}")),
        Kind::Path => {
            if v.starts_with('/') && !v.contains('\0') {
                Ok(Val::Text(v.to_string()))
            } else {
                Err("expected an absolute path".into())
            }
        }
        Kind::Multiaddr => v
            .parse::<crate::p2p::multiaddr::Multiaddr>()
            .map(|_| Val::Text(v.to_string()))
            .map_err(|e| format!("expected a multiaddr ({e})")),
        Kind::PeerId => v
            .parse::<PeerId>()
            .map(Val::Peer)
            .map_err(|e| format!("expected a peer ID: {e}")),
        Kind::Enum(values) => {
            if values.contains(&v) {
                Ok(Val::Text(v.to_string()))
            } else {
                Err(format!("expected one of {}", values.join(", ")))
            }
        }
        Kind::Ifname => {
            if !v.is_empty()
                && v.len() <= 15
                && v.bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':')
            {
                Ok(Val::Text(v.to_string()))
            } else {
                Err(
                    "expected an interface name of 1..15 characters without '/', ':' or spaces"
                        .into(),
                )
            }
        }
        Kind::Label => {
            let ok = !v.is_empty()
                && v.len() <= 63
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !v.starts_with('-');
            if ok {
                Ok(Val::Text(v.to_ascii_lowercase()))
            } else {
                Err("expected a DNS label (letters, digits, '-', '_'; at most 63)".into())
            }
        }
    }
}

/// Values of one section: option name → (line, values).
type SectionValues = HashMap<&'static str, (usize, Vec<Val>)>;

fn single<'a>(v: &'a SectionValues, name: &str) -> Option<&'a Val> {
    v.get(name).and_then(|(_, vals)| vals.last())
}

fn default_of(section: &str, name: &str) -> Option<Val> {
    let d = find(section, name)?;
    if d.default.is_empty() {
        return None;
    }
    validate(d, d.default).ok()
}

fn get_bool(v: &SectionValues, section: &str, name: &str) -> bool {
    match single(v, name)
        .cloned()
        .or_else(|| default_of(section, name))
    {
        Some(Val::Bool(b)) => b,
        _ => false,
    }
}

fn get_int(v: &SectionValues, section: &str, name: &str) -> i64 {
    match single(v, name)
        .cloned()
        .or_else(|| default_of(section, name))
    {
        Some(Val::Int(n)) => n,
        _ => 0,
    }
}

fn get_text(v: &SectionValues, section: &str, name: &str) -> Option<String> {
    match single(v, name)
        .cloned()
        .or_else(|| default_of(section, name))
    {
        Some(Val::Text(s)) => Some(s),
        _ => None,
    }
}

fn get_ip(v: &SectionValues, section: &str, name: &str) -> Option<Ipv4Addr> {
    match single(v, name)
        .cloned()
        .or_else(|| default_of(section, name))
    {
        Some(Val::Ip(ip)) => Some(ip),
        _ => None,
    }
}

fn get_list(v: &SectionValues, name: &str) -> Vec<String> {
    v.get(name)
        .map(|(_, vals)| {
            vals.iter()
                .filter_map(|x| match x {
                    Val::Text(s) => Some(s.clone()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

fn build_main(v: &SectionValues) -> Result<MainConfig, String> {
    let (address, prefix) = match single(v, "address")
        .cloned()
        .or_else(|| default_of(MAIN, "address"))
    {
        Some(Val::Cidr(ip, len)) => (ip, len),
        _ => return Err("address: no value".into()),
    };
    let level = match get_text(v, MAIN, "log_level").as_deref() {
        Some("error") => log::LevelFilter::Error,
        Some("warn") => log::LevelFilter::Warn,
        Some("debug") => log::LevelFilter::Debug,
        Some("trace") => log::LevelFilter::Trace,
        _ => log::LevelFilter::Info,
    };
    let name = get_text(v, MAIN, "name")
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(host_name);
    Ok(MainConfig {
        enabled: get_bool(v, MAIN, "enabled"),
        name,
        listen_port: get_int(v, MAIN, "listen_port") as u16,
        listen_address: get_list(v, "listen_address"),
        interface: get_text(v, MAIN, "interface").unwrap_or_else(|| "awl0".into()),
        address,
        prefix,
        mtu: get_int(v, MAIN, "mtu") as u16,
        bootstrap: get_list(v, "bootstrap"),
        use_default_bootstrap: get_bool(v, MAIN, "use_default_bootstrap"),
        log_level: level,
        auto_accept: get_bool(v, MAIN, "auto_accept"),
        lan_discovery: get_bool(v, MAIN, "lan_discovery"),
        use_relays: get_bool(v, MAIN, "use_relays"),
        hole_punching: get_bool(v, MAIN, "hole_punching"),
        datagrams: get_bool(v, MAIN, "datagrams"),
        tun_offload: get_bool(v, MAIN, "tun_offload"),
        serve: get_bool(v, MAIN, "serve"),
        relay_for: match get_text(v, MAIN, "relay_for").as_deref() {
            Some("all") => RelayFor::All,
            _ => RelayFor::Friends,
        },
        relay_max_reservations: get_int(v, MAIN, "relay_max_reservations") as u32,
        relay_max_circuits: get_int(v, MAIN, "relay_max_circuits") as u32,
        relay_circuit_duration: get_int(v, MAIN, "relay_circuit_duration") as u32,
        relay_circuit_data: get_int(v, MAIN, "relay_circuit_data") as u32,
        services: get_bool(v, MAIN, "services"),
        service_address: get_ip(v, MAIN, "service_address"),
        dns_upstream: get_ip(v, MAIN, "dns_upstream"),
        http_status: get_bool(v, MAIN, "http_status"),
        socks5_server: get_bool(v, MAIN, "socks5_server"),
        socks5: get_bool(v, MAIN, "socks5"),
        socks5_address: get_ip(v, MAIN, "socks5_address").unwrap_or(Ipv4Addr::LOCALHOST),
        socks5_port: get_int(v, MAIN, "socks5_port") as u16,
        socks5_exit: get_text(v, MAIN, "socks5_exit").filter(|s| !s.trim().is_empty()),
        max_connections: get_int(v, MAIN, "max_connections") as u32,
        stream_rate: get_int(v, MAIN, "stream_rate") as u32,
        data_dir: PathBuf::from(get_text(v, MAIN, "data_dir").unwrap_or_else(|| "/etc/awl".into())),
        control_socket: PathBuf::from(
            get_text(v, MAIN, "control_socket").unwrap_or_else(|| "/var/run/awl.sock".into()),
        ),
        reconnect_interval: get_int(v, MAIN, "reconnect_interval") as u32,
        max_peers: get_int(v, MAIN, "max_peers") as u32,
        packet_pool: get_int(v, MAIN, "packet_pool") as u32,
        peer_queue: get_int(v, MAIN, "peer_queue") as u32,
        route: v
            .get("route")
            .map(|(_, vals)| {
                vals.iter()
                    .filter_map(|x| match x {
                        Val::Cidr(ip, len) => crate::base::prefix::Prefix::new(*ip, *len),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        gateway: get_bool(v, MAIN, "gateway"),
        exit_node: get_text(v, MAIN, "exit_node").filter(|s| !s.trim().is_empty()),
        firewall: match get_text(v, MAIN, "firewall").as_deref() {
            Some("nftables") => Firewall::Nftables,
            Some("none") => Firewall::None,
            _ => Firewall::Auto,
        },
        snat_lan: get_bool(v, MAIN, "snat_lan"),
        lan_interface: get_list(v, "lan_interface"),
    })
}

enum StmtKind {
    List,
    Other,
}

struct Section {
    typ: String,
    name: Option<String>,
    line: usize,
    values: SectionValues,
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

/// Parses and validates `text`; `file_name` is used in messages.
pub fn parse(text: &str, file_name: &str) -> Result<Loaded, ConfigError> {
    let err = |line: Option<usize>, message: String| ConfigError {
        file: file_name.to_string(),
        line,
        message,
    };
    let stmts = uci::statements(text).map_err(|(line, m)| err(Some(line), m))?;

    let mut warnings = Vec::new();
    let mut sections: Vec<Section> = Vec::new();
    let mut skipping = false;
    for Located { line, stmt } in stmts {
        let stmt_kind = if matches!(stmt, Stmt::List { .. }) {
            StmtKind::List
        } else {
            StmtKind::Other
        };
        match stmt {
            Stmt::Package(_) => {}
            Stmt::Config { typ, name } => {
                skipping = typ != MAIN && typ != PEER;
                if skipping {
                    warnings.push(format!(
                        "{file_name}: line {line}: unknown section type '{typ}' (ignored)"
                    ));
                    continue;
                }
                sections.push(Section {
                    typ,
                    name,
                    line,
                    values: HashMap::new(),
                });
            }
            Stmt::Option { .. } | Stmt::List { .. } if skipping => {}
            Stmt::Option { name, value } | Stmt::List { name, value } => {
                let is_list = matches!(stmt_kind, StmtKind::List);
                let Some(sec) = sections.last_mut() else {
                    continue;
                };
                let Some(desc) = find(&sec.typ, &name) else {
                    warnings.push(format!("{file_name}: line {line}: unknown option '{name}' in '{}' section (ignored)", sec.typ));
                    continue;
                };
                if is_list && !desc.list {
                    return Err(err(
                        Some(line),
                        format!("'{name}' is a single option; use 'option', not 'list'"),
                    ));
                }
                let val = validate(desc, &value)
                    .map_err(|m| err(Some(line), format!("option '{name}' = '{value}': {m}")))?;
                let entry = sec.values.entry(desc.name).or_insert((line, Vec::new()));
                entry.0 = line;
                if desc.list {
                    entry.1.push(val);
                } else {
                    entry.1 = vec![val];
                }
            }
        }
    }

    // The node section: 'main', or the first unnamed/other-named awl section.
    let mut main_values = SectionValues::new();
    let mut seen_main = false;
    for s in sections.iter().filter(|s| s.typ == MAIN) {
        if seen_main {
            warnings.push(format!(
                "{file_name}: line {}: a second 'config awl' section (ignored)",
                s.line
            ));
            continue;
        }
        if s.name.as_deref().is_some_and(|n| n != "main") {
            warnings.push(format!(
                "{file_name}: line {}: the node section should be named 'main'",
                s.line
            ));
        }
        main_values = s.values.clone();
        seen_main = true;
    }
    let main = build_main(&main_values).map_err(|m| err(None, m))?;
    let net = u32::from(main.address) & mask(main.prefix);
    let broadcast = net | !mask(main.prefix);
    if u32::from(main.address) == net || u32::from(main.address) == broadcast {
        let line = main_values.get("address").map(|(l, _)| *l);
        return Err(err(
            line,
            format!(
                "option 'address' = '{}/{}': network or broadcast address",
                main.address, main.prefix
            ),
        ));
    }

    let mesh = crate::base::prefix::Prefix::new(Ipv4Addr::from(net), main.prefix);
    for r in &main.route {
        if mesh.is_some_and(|m| m.overlaps(r)) || r.is_default() {
            let line = main_values.get("route").map(|(l, _)| *l);
            return Err(err(line, format!("list 'route' = '{r}': overlaps the mesh subnet or is a default route (use 'gateway' for an exit node)")));
        }
    }

    let mut peers = Vec::new();
    let mut ids = HashSet::new();
    let mut aliases: HashMap<String, usize> = HashMap::new();
    let mut ips: HashMap<Ipv4Addr, usize> = HashMap::new();
    for s in sections.iter().filter(|s| s.typ == PEER) {
        let Some(Val::Peer(peer_id)) = single(&s.values, "peer_id").cloned() else {
            return Err(err(
                Some(s.line),
                "peer section without option 'peer_id'".into(),
            ));
        };
        let id_line = s.values.get("peer_id").map_or(s.line, |(l, _)| *l);
        if !ids.insert(peer_id.clone()) {
            return Err(err(
                Some(id_line),
                format!("option 'peer_id' = '{peer_id}': this peer is listed twice"),
            ));
        }
        let id_text = peer_id.to_string();
        let alias = get_text(&s.values, PEER, "alias")
            .filter(|a| !a.trim().is_empty())
            .or_else(|| s.name.clone())
            .unwrap_or_else(|| format!("peer-{}", &id_text[id_text.len() - 6..]));
        if let Some(prev) = aliases.insert(alias.clone(), s.line) {
            let line = s.values.get("alias").map_or(s.line, |(l, _)| *l);
            return Err(err(
                Some(line),
                format!("alias '{alias}' is already used by the peer at line {prev}"),
            ));
        }
        let ip = match single(&s.values, "ip") {
            Some(Val::Ip(ip)) => Some(*ip),
            _ => None,
        };
        if let Some(ip) = ip {
            let line = s.values.get("ip").map_or(s.line, |(l, _)| *l);
            let inside = u32::from(ip) & mask(main.prefix) == net;
            if !inside || u32::from(ip) == broadcast || u32::from(ip) == net {
                return Err(err(
                    Some(line),
                    format!(
                        "option 'ip' = '{ip}': not a host address inside the mesh subnet {}/{}",
                        Ipv4Addr::from(net),
                        main.prefix
                    ),
                ));
            }
            if ip == main.address {
                return Err(err(
                    Some(line),
                    format!("option 'ip' = '{ip}': that is this node's own address"),
                ));
            }
            if Some(ip) == main.service_addr() {
                return Err(err(
                    Some(line),
                    format!("option 'ip' = '{ip}': that is the node's service address"),
                ));
            }
            if let Some(prev) = ips.insert(ip, line) {
                return Err(err(
                    Some(line),
                    format!("option 'ip' = '{ip}': already used by the peer at line {prev}"),
                ));
            }
        }
        let domain =
            get_text(&s.values, PEER, "domain").unwrap_or_else(|| domain_label(&alias, &peer_id));
        let accept_route = s
            .values
            .get("accept_route")
            .map(|(_, vals)| {
                vals.iter()
                    .filter_map(|v| match v {
                        Val::Cidr(a, l) => crate::base::prefix::Prefix::new(*a, *l),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        peers.push(PeerConfig {
            section: s.name.clone(),
            line: s.line,
            peer_id,
            alias,
            ip,
            allow_exit: get_bool(&s.values, PEER, "allow_exit"),
            address: get_list(&s.values, "address"),
            domain,
            allow_lan: get_bool(&s.values, PEER, "allow_lan"),
            accept_routes: get_bool(&s.values, PEER, "accept_routes"),
            accept_route,
        });
    }
    if peers.len() > main.max_peers as usize {
        return Err(err(
            None,
            format!(
                "{} peer sections but max_peers is {}",
                peers.len(),
                main.max_peers
            ),
        ));
    }
    Ok(Loaded {
        config: Config { main, peers },
        warnings,
    })
}

/// The DNS label for an alias (AWL: lower-cased, spaces as '_'), reduced to what a label may
/// hold (letters, digits, '-', '_'; at most 63): an alias may be a peer's hostile name.
/// Empty after that: 'peer-' and the ID's last 6 characters.
pub fn domain_label(alias: &str, peer: &PeerId) -> String {
    let label: String = alias
        .to_lowercase()
        .chars()
        .map(|c| if c == ' ' { '_' } else { c })
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(63)
        .collect();
    let label = label.trim_start_matches('-');
    if label.is_empty() {
        let id = peer.to_string();
        format!("peer-{}", &id[id.len().saturating_sub(6)..]).to_lowercase()
    } else {
        label.to_string()
    }
}

/// The name of the section the daemon writes for a peer. Named sections keep their identity
/// when others are added or removed; anonymous ones (`@peer[3]`) shift, which would send an
/// edit staged in LuCI to another peer. Base58 peer IDs are valid UCI names.
pub fn peer_section_name(peer: &PeerId) -> String {
    format!("peer_{peer}")
}

pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.display().to_string(),
        line: None,
        message: e.to_string(),
    })?;
    parse(&text, &path.display().to_string())
}

/// The text of a peer section as the daemon writes it: named `peer_<id>`, or `name` when the
/// section being replaced already had one (the user's, or ours).
fn peer_section_text(peer: &PeerConfig, name: Option<&str>) -> String {
    let mut out = String::new();
    let name = name.map_or_else(|| peer_section_name(&peer.peer_id), str::to_string);
    out.push_str(&format!("config peer {}\n", uci::quote(&name)));
    out.push_str(&format!(
        "\toption peer_id {}\n",
        uci::quote(&peer.peer_id.to_string())
    ));
    out.push_str(&format!("\toption alias {}\n", uci::quote(&peer.alias)));
    if let Some(ip) = peer.ip {
        out.push_str(&format!("\toption ip {}\n", uci::quote(&ip.to_string())));
    }
    // A domain the alias would not give (set by the user, or imported from AWL) is kept.
    if !peer.domain.is_empty() && peer.domain != domain_label(&peer.alias, &peer.peer_id) {
        out.push_str(&format!("\toption domain {}\n", uci::quote(&peer.domain)));
    }
    if peer.allow_exit {
        out.push_str("\toption allow_exit '1'\n");
    }
    if peer.allow_lan {
        out.push_str("\toption allow_lan '1'\n");
    }
    if peer.accept_routes {
        out.push_str("\toption accept_routes '1'\n");
    }
    for r in &peer.accept_route {
        out.push_str(&format!(
            "\tlist accept_route {}\n",
            uci::quote(&r.to_string())
        ));
    }
    for a in &peer.address {
        out.push_str(&format!("\tlist address {}\n", uci::quote(a)));
    }
    out
}

/// Appends a named `config peer` section (text-level, so comments and order stay).
pub fn add_peer_section(text: &str, peer: &PeerConfig) -> String {
    let mut out = text.trim_end().to_string();
    if !out.is_empty() {
        out.push_str("\n\n");
    }
    out.push_str(&peer_section_text(peer, None));
    out
}

/// Writes `peer`'s section: replaced where it stands if the file has one (keeping its name,
/// or naming it if it was anonymous), else appended. All other text is kept as it is.
pub fn upsert_peer_section(text: &str, peer: &PeerConfig) -> String {
    let Some((start, end, name)) = peer_section_range(text, &peer.peer_id) else {
        return add_peer_section(text, peer);
    };
    let lines: Vec<&str> = text.lines().collect();
    // Keep blank lines and comments that trail the section (they belong to what follows).
    let mut body_end = end;
    while body_end > start + 1 && {
        let l = lines[body_end - 2].trim();
        l.is_empty() || l.starts_with('#')
    } {
        body_end -= 1;
    }
    let mut out: Vec<String> = lines[..start - 1].iter().map(|l| l.to_string()).collect();
    out.extend(
        peer_section_text(peer, name.as_deref())
            .lines()
            .map(str::to_string),
    );
    out.extend(lines[body_end - 1..].iter().map(|l| l.to_string()));
    let mut joined = out.join("\n");
    joined.push('\n');
    joined
}

/// Names every anonymous peer section `peer_<id>` (its header line only; all else kept), so
/// configs from before named sections get stable names once. Unchanged text: nothing to do.
pub fn name_peer_sections(text: &str) -> String {
    let Ok(stmts) = uci::statements(text) else {
        return text.to_string();
    };
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let starts: Vec<(usize, bool)> = stmts
        .iter()
        .filter_map(|s| match &s.stmt {
            Stmt::Config { typ, name } => Some((s.line, typ == PEER && name.is_none())),
            _ => None,
        })
        .collect();
    let mut changed = false;
    for (i, (start, anonymous)) in starts.iter().enumerate() {
        if !anonymous {
            continue;
        }
        let end = starts.get(i + 1).map_or(usize::MAX, |(l, _)| *l);
        let id = stmts.iter().find_map(|s| match &s.stmt {
            Stmt::Option { name, value }
                if name == "peer_id" && s.line > *start && s.line < end =>
            {
                value.trim().parse::<PeerId>().ok()
            }
            _ => None,
        });
        if let (Some(id), Some(line)) = (id, lines.get_mut(start - 1)) {
            *line = format!("config peer {}", uci::quote(&peer_section_name(&id)));
            changed = true;
        }
    }
    if !changed {
        return text.to_string();
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// Lines `[start, end)` (1-based) of the peer section whose `peer_id` is `peer`, and its name.
fn peer_section_range(text: &str, peer: &PeerId) -> Option<(usize, usize, Option<String>)> {
    let stmts = uci::statements(text).ok()?;
    let id = peer.to_string();
    let total = text.lines().count();
    let starts: Vec<(usize, &str, Option<&String>)> = stmts
        .iter()
        .filter_map(|s| match &s.stmt {
            Stmt::Config { typ, name } => Some((s.line, typ.as_str(), name.as_ref())),
            _ => None,
        })
        .collect();
    starts.iter().enumerate().find_map(|(i, (start, typ, name))| {
        if *typ != PEER {
            return None;
        }
        let end = starts.get(i + 1).map_or(total + 1, |(l, _, _)| *l);
        let matches = stmts.iter().any(|s| {
            s.line > *start && s.line < end && matches!(&s.stmt, Stmt::Option { name, value } if name == "peer_id" && value.trim() == id)
        });
        matches.then(|| (*start, end, name.cloned()))
    })
}

/// Lines `[start, end)` (1-based) of the node section (the first `config awl`), and the line
/// of its last statement.
fn main_section_range(text: &str) -> Option<(usize, usize, usize)> {
    let stmts = uci::statements(text).ok()?;
    let total = text.lines().count();
    let start = stmts
        .iter()
        .position(|s| matches!(&s.stmt, Stmt::Config { typ, .. } if typ == MAIN))?;
    let end = stmts[start + 1..]
        .iter()
        .find(|s| matches!(s.stmt, Stmt::Config { .. }))
        .map_or(total + 1, |s| s.line);
    let last = stmts[start..]
        .iter()
        .take_while(|s| s.line < end)
        .last()
        .map_or(stmts[start].line, |s| s.line);
    Some((stmts[start].line, end, last))
}

/// The raw value of `option name` in the node section of a file that may not validate (its
/// syntax must be readable): where a broken file says the control socket is.
pub fn peek_main_option(text: &str, name: &str) -> Option<String> {
    let (start, end, _) = main_section_range(text)?;
    uci::statements(text)
        .ok()?
        .into_iter()
        .rev()
        .filter(|s| s.line > start && s.line < end)
        .find_map(|s| match s.stmt {
            Stmt::Option { name: n, value } if n == name => Some(value),
            _ => None,
        })
}

/// Sets `option name 'value'` in the node section: the line that has it is replaced (its
/// indentation kept), else the option is added after the section's last statement. Without a
/// node section, `config awl 'main'` is added at the top. All other text is kept as it is.
pub fn set_main_option(text: &str, name: &str, value: &str) -> String {
    let line = format!("option {name} {}", uci::quote(value));
    edit_main(text, |lines, (start, end, last), stmts| {
        let existing: Vec<usize> = stmts
            .iter()
            .filter(|s| s.line > start && s.line < end)
            .filter(|s| matches!(&s.stmt, Stmt::Option { name: n, .. } if n == name))
            .map(|s| s.line)
            .collect();
        if let Some(&l) = existing.last() {
            let old = &lines[l - 1];
            let indent: String = old.chars().take_while(|c| c.is_whitespace()).collect();
            // A trailing comment stays: the first '#' before which the line is one statement.
            let comment = old
                .match_indices('#')
                .map(|(i, _)| i)
                .find(|&i| {
                    uci::statements(&format!("config awl\n{}", &old[..i])).is_ok_and(|s| {
                        matches!(s.as_slice(), [_, Located { stmt: Stmt::Option { name: n, .. }, .. }] if n == name)
                    })
                })
                .map(|i| format!(" {}", &old[i..]))
                .unwrap_or_default();
            lines[l - 1] = format!("{indent}{line}{comment}");
        } else {
            lines.insert(last, format!("\t{line}"));
        }
    })
}

/// Adds `list name 'value'` to the node section unless that value is already listed.
pub fn add_main_list(text: &str, name: &str, value: &str) -> String {
    edit_main(text, |lines, (start, end, last), stmts| {
        let present = stmts.iter().any(|s| {
            s.line > start
                && s.line < end
                && matches!(&s.stmt, Stmt::List { name: n, value: v } if n == name && v.trim() == value)
        });
        if !present {
            lines.insert(last, format!("\tlist {name} {}", uci::quote(value)));
        }
    })
}

fn edit_main(
    text: &str,
    edit: impl FnOnce(&mut Vec<String>, (usize, usize, usize), &[Located]),
) -> String {
    let with_main;
    let text = if main_section_range(text).is_none() {
        with_main = format!("config awl 'main'\n\n{}", text.trim_start_matches('\n'));
        with_main.as_str()
    } else {
        text
    };
    let (Some(range), Ok(stmts)) = (main_section_range(text), uci::statements(text)) else {
        return text.to_string();
    };
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    edit(&mut lines, range, &stmts);
    let mut out = lines.join("\n").trim_end_matches('\n').to_string();
    out.push('\n');
    out
}

/// Removes the `config peer` section whose `peer_id` is `peer` (all other text kept).
pub fn remove_peer_section(text: &str, peer: &PeerId) -> String {
    let Ok(stmts) = uci::statements(text) else {
        return text.to_string();
    };
    let id = peer.to_string();
    let lines: Vec<&str> = text.lines().collect();
    // Section start lines (1-based) in order, with their types.
    let starts: Vec<(usize, &str)> = stmts
        .iter()
        .filter_map(|s| match &s.stmt {
            Stmt::Config { typ, .. } => Some((s.line, typ.as_str())),
            _ => None,
        })
        .collect();
    let mut drop_ranges = Vec::new();
    for (i, (start, typ)) in starts.iter().enumerate() {
        if *typ != PEER {
            continue;
        }
        let end = starts.get(i + 1).map_or(lines.len() + 1, |(l, _)| *l);
        let matches = stmts.iter().any(|s| {
            s.line > *start && s.line < end && matches!(&s.stmt, Stmt::Option { name, value } if name == "peer_id" && value.trim() == id)
        });
        if matches {
            drop_ranges.push((*start, end));
        }
    }
    if drop_ranges.is_empty() {
        return text.to_string();
    }
    let kept: Vec<&str> = lines
        .iter()
        .enumerate()
        .filter(|(i, _)| !drop_ranges.iter().any(|(s, e)| (*s..*e).contains(&(i + 1))))
        .map(|(_, l)| *l)
        .collect();
    let mut out = kept.join("\n");
    while out.ends_with("\n\n") || out.ends_with('\n') {
        out.pop();
    }
    out.push('\n');
    out
}

/// Writes `contents` to `path` atomically: temp file in the same directory, fsync, rename.
/// The original's mode is kept (0644 for a new file, as OpenWrt's /etc/config); a symlink
/// is followed.
pub fn write_atomic(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    // A symlinked config is written where it points: renaming over the link would replace
    // it with a file and leave the real one unchanged.
    let resolved = std::fs::canonicalize(path).ok();
    let path = resolved.as_deref().unwrap_or(path);
    let mode = std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o644);
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.awl-tmp"));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
    std::fs::rename(&tmp, path)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests;

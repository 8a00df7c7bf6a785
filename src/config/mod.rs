//! UCI configuration: `/etc/config/awl`, one `config awl 'main'` and `config peer` sections.
//!
//! Parsing walks our own line-aware statements (`uci.rs`) so every error names the file, line
//! and option. `uci_rs` was tried first: it keeps no line numbers and rejects valid files
//! (a comment after a quoted value, `option name 'r' # note`, is a parse error there), so it
//! is not used; the grammar here follows libuci's (quotes, escapes, `'it'\''s'`, comments).
//! Values are validated against the single option table in `schema.rs`. Unknown options and
//! section types are warnings, not errors, so a newer config doesn't stop an older daemon.

mod error;
mod parse;
mod schema;
pub mod uci;
mod value;
mod write;

pub use error::{ConfigError, ErrorKind, Expected};
pub use parse::parse;
pub use schema::{find, schema, Kind, OptionDesc, OPTIONS};
pub use write::{
    add_main_list, add_peer_section, name_peer_sections, peek_main_option, remove_peer_section,
    set_main_option, upsert_peer_section, write_atomic,
};

use crate::p2p::identity::PeerId;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// AWL's public bootstrap nodes (awl-protocol.md §2.2), QUIC and TCP, IPv4 and IPv6.
pub fn default_bootstrap() -> &'static [&'static str] {
    &[
        "/dnsaddr/rus-2.bootstrap.anywherelan.com/p2p/12D3KooWGRjpNYgFssihdgTDnr5rdhdh9ruMTbeT41h1fXfGmatZ",
        "/dnsaddr/ita-1.bootstrap.anywherelan.com/p2p/12D3KooWRXyTH7ZxerZRu6UtYQx62uCmYeZ244SsLQZbjuxX7RrL",
        "/dnsaddr/cze-1.bootstrap.anywherelan.com/p2p/12D3KooWJDDYCWbLYyCLTH16TFBZoxyDYD1Ypth2rtyznXYpnpza",
        "/dnsaddr/can-1.bootstrap.anywherelan.com/p2p/12D3KooWQeAvoyVnRm6T5XzWpKD8AzM1buzBL6o95iCodCZVQAsV",
        "/ip4/80.211.201.49/udp/6150/quic-v1/p2p/12D3KooWJDDYCWbLYyCLTH16TFBZoxyDYD1Ypth2rtyznXYpnpza",
        "/ip4/80.211.201.49/tcp/6150/p2p/12D3KooWJDDYCWbLYyCLTH16TFBZoxyDYD1Ypth2rtyznXYpnpza",
        "/ip4/167.114.152.120/udp/6150/quic-v1/p2p/12D3KooWQeAvoyVnRm6T5XzWpKD8AzM1buzBL6o95iCodCZVQAsV",
        "/ip4/167.114.152.120/tcp/6150/p2p/12D3KooWQeAvoyVnRm6T5XzWpKD8AzM1buzBL6o95iCodCZVQAsV",
        "/ip6/2607:5300:201:3100::6b5f/udp/7250/quic-v1/p2p/12D3KooWQeAvoyVnRm6T5XzWpKD8AzM1buzBL6o95iCodCZVQAsV",
        "/ip6/2607:5300:201:3100::6b5f/tcp/7250/p2p/12D3KooWQeAvoyVnRm6T5XzWpKD8AzM1buzBL6o95iCodCZVQAsV",
        "/ip4/193.124.131.112/udp/6150/quic-v1/p2p/12D3KooWGRjpNYgFssihdgTDnr5rdhdh9ruMTbeT41h1fXfGmatZ",
        "/ip4/193.124.131.112/tcp/6150/p2p/12D3KooWGRjpNYgFssihdgTDnr5rdhdh9ruMTbeT41h1fXfGmatZ",
        "/ip4/103.77.242.85/udp/6150/quic-v1/p2p/12D3KooWFdFV4ZcwMhNQuQnzNCp1K1aaQAsAnr8sXJnj7vehtCFW",
        "/ip4/103.77.242.85/tcp/6150/p2p/12D3KooWFdFV4ZcwMhNQuQnzNCp1K1aaQAsAnr8sXJnj7vehtCFW",
    ]
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MainConfig {
    pub enabled: bool,
    pub name: String,
    pub listen_port: u16,
    pub listen_address: Vec<String>,
    /// Also listen on TCP (libp2p TLS + yamux), on the QUIC port, for networks that drop UDP.
    pub listen_tcp: bool,
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
    pub port_mapping: bool,
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
        let main = parse::build_main(&Default::default()).unwrap_or_else(|_| unreachable_default());
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
        listen_tcp: true,
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
        port_mapping: true,
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
        kind: ErrorKind::Read(e.to_string()),
    })?;
    parse(&text, &path.display().to_string())
}

/// The netmask of a prefix length.
fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

#[cfg(test)]
mod tests;

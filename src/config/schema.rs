//! The one table of options: parsing, validation, defaults, `awl config schema` and the
//! docs test all read it, so they cannot drift apart.

use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Int {
        min: i64,
        max: i64,
    },
    Str {
        max_len: usize,
    },
    Ipv4,
    /// IPv4 address with prefix length in range.
    Cidr4 {
        min_prefix: u8,
        max_prefix: u8,
    },
    /// A network prefix (host bits zero), for routes.
    Prefix4,
    Path,
    Multiaddr,
    PeerId,
    Enum(&'static [&'static str]),
    /// Linux interface name.
    Ifname,
    /// DNS label for `<label>.awl`.
    Label,
}

impl Kind {
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Bool => "bool",
            Kind::Int { .. } => "int",
            Kind::Str { .. } => "string",
            Kind::Ipv4 => "ipv4",
            Kind::Cidr4 { .. } => "cidr4",
            Kind::Prefix4 => "prefix4",
            Kind::Path => "path",
            Kind::Multiaddr => "multiaddr",
            Kind::PeerId => "peer_id",
            Kind::Enum(_) => "enum",
            Kind::Ifname => "ifname",
            Kind::Label => "label",
        }
    }
}

#[derive(Debug)]
pub struct OptionDesc {
    pub section: &'static str,
    pub name: &'static str,
    pub kind: Kind,
    pub list: bool,
    /// Textual default as written in UCI; "" = none (or computed, see `doc`).
    pub default: &'static str,
    pub required: bool,
    pub doc: &'static str,
}

const fn opt(
    section: &'static str,
    name: &'static str,
    kind: Kind,
    default: &'static str,
    doc: &'static str,
) -> OptionDesc {
    OptionDesc {
        section,
        name,
        kind,
        list: false,
        default,
        required: false,
        doc,
    }
}

const fn list(
    section: &'static str,
    name: &'static str,
    kind: Kind,
    doc: &'static str,
) -> OptionDesc {
    OptionDesc {
        section,
        name,
        kind,
        list: true,
        default: "",
        required: false,
        doc,
    }
}

pub const MAIN: &str = "awl";
pub const PEER: &str = "peer";

pub static OPTIONS: &[OptionDesc] = &[
    opt(MAIN, "enabled", Kind::Bool, "1", "Start the daemon from the init script (the OpenWrt package ships '0')."),
    opt(MAIN, "name", Kind::Str { max_len: 64 }, "", "Name shown to peers; default: the host name."),
    opt(MAIN, "listen_port", Kind::Int { min: 0, max: 65535 }, "4363", "UDP port for QUIC (and TCP, see listen_tcp), IPv6 and IPv4; 0 = random. If 4363 is taken, a random port is used (as AWL)."),
    list(MAIN, "listen_address", Kind::Multiaddr, "Override the listen sockets, e.g. '/ip4/0.0.0.0/udp/4363/quic-v1' (the first QUIC address is used) and '/ip4/0.0.0.0/tcp/4363' (the first TCP address)."),
    opt(MAIN, "listen_tcp", Kind::Bool, "1", "Also listen on TCP, on the QUIC port (as AWL does), so peers on networks that drop UDP reach this node. '0': no TCP listener; TCP addresses are still dialled."),
    opt(MAIN, "interface", Kind::Ifname, "awl0", "Name of the TUN interface."),
    opt(MAIN, "address", Kind::Cidr4 { min_prefix: 8, max_prefix: 30 }, "10.66.0.1/16", "This node's mesh address and prefix (node-local, as in AWL)."),
    opt(MAIN, "mtu", Kind::Int { min: 576, max: 9000 }, "3500", "TUN MTU. AWL uses 3500; packets above 3586 bytes are never sent to AWL peers."),
    list(MAIN, "bootstrap", Kind::Multiaddr, "Extra bootstrap peers (multiaddrs ending in /p2p/<id>)."),
    opt(MAIN, "use_default_bootstrap", Kind::Bool, "1", "Also use AWL's public bootstrap nodes."),
    opt(MAIN, "log_level", Kind::Enum(&["error", "warn", "info", "debug", "trace"]), "info", "Log level (RUST_LOG overrides)."),
    opt(MAIN, "auto_accept", Kind::Bool, "0", "Accept every incoming friend request."),
    opt(MAIN, "lan_discovery", Kind::Bool, "1", "Announce this node on the LAN (multicast 239.255.66.66:4364) and dial known peers heard there."),
    opt(MAIN, "use_relays", Kind::Bool, "1", "Hold relay reservations on up to 2 bootstrap peers, so peers reach this node behind NAT."),
    opt(MAIN, "hole_punching", Kind::Bool, "1", "Upgrade relayed connections to direct ones (DCUtR hole punching)."),
    opt(MAIN, "port_mapping", Kind::Bool, "1", "Ask the router in front of this node (NAT-PMP, then UPnP-IGD) to forward the QUIC port, and advertise the mapped address; renewed, removed at exit. The OpenWrt package ships '0': there the node is the router."),
    opt(MAIN, "datagrams", Kind::Bool, "1", "Carry tunnel packets to other awl nodes in QUIC datagrams (no TCP over a reliable stream); AWL peers always use the stream tunnel."),
    opt(MAIN, "tun_offload", Kind::Bool, "1", "Let the kernel hand TCP to the TUN in 64 KB super-packets (TSO), cut into segments by awl: fewer reads, less CPU."),
    opt(MAIN, "serve", Kind::Bool, "0", "Serve as bootstrap (Kademlia server) and relay for other nodes; needs a public address."),
    opt(MAIN, "relay_for", Kind::Enum(&["friends", "all"]), "friends", "Who may use this node as relay when serving."),
    opt(MAIN, "relay_max_reservations", Kind::Int { min: 1, max: 4096 }, "128", "Relay reservations held at most."),
    opt(MAIN, "relay_max_circuits", Kind::Int { min: 1, max: 1024 }, "16", "Relayed circuits open at most."),
    opt(MAIN, "relay_circuit_duration", Kind::Int { min: 10, max: 86400 }, "120", "Seconds a relayed circuit may last."),
    opt(MAIN, "relay_circuit_data", Kind::Int { min: 1, max: 4096 }, "21", "MiB a relayed circuit may carry each way."),
    opt(MAIN, "services", Kind::Bool, "1", "DNS for .awl names, HTTP status and ping on the service address."),
    opt(MAIN, "service_address", Kind::Ipv4, "", "Address of the node's services inside the mesh subnet; default: its last host address (10.66.255.254)."),
    opt(MAIN, "dns_upstream", Kind::Ipv4, "", "Resolver for names outside .awl; default: the first nameserver in /etc/resolv.conf."),
    opt(MAIN, "http_status", Kind::Bool, "1", "JSON status (node, peers, paths) over HTTP on the service address."),
    opt(MAIN, "socks5_server", Kind::Bool, "1", "Let peers with allow_exit open connections from this node (AWL's SOCKS5 exit)."),
    opt(MAIN, "socks5", Kind::Bool, "0", "Local SOCKS5 proxy that sends connections through socks5_exit."),
    opt(MAIN, "socks5_address", Kind::Ipv4, "127.0.0.1", "Address of the local SOCKS5 proxy."),
    opt(MAIN, "socks5_port", Kind::Int { min: 1, max: 65535 }, "1080", "Port of the local SOCKS5 proxy."),
    opt(MAIN, "socks5_exit", Kind::Str { max_len: 64 }, "", "Peer (ID or alias) the local SOCKS5 proxy connects through."),
    opt(MAIN, "max_connections", Kind::Int { min: 8, max: 4096 }, "128", "Inbound libp2p connections at most; more are refused."),
    opt(MAIN, "stream_rate", Kind::Int { min: 1, max: 10000 }, "100", "Streams a peer may open per second (burst: twice that); more are reset."),
    opt(MAIN, "data_dir", Kind::Path, "/etc/awl", "Directory of the identity and the state file."),
    opt(MAIN, "control_socket", Kind::Path, "/var/run/awl.sock", "Unix socket of the control API (root only)."),
    opt(MAIN, "reconnect_interval", Kind::Int { min: 5, max: 3600 }, "20", "Seconds between redials of known peers."),
    opt(MAIN, "max_peers", Kind::Int { min: 1, max: 1024 }, "64", "Known peers at most."),
    opt(MAIN, "packet_pool", Kind::Int { min: 64, max: 65536 }, "1024", "Packet buffers at most (each max(mtu, 3586) bytes), created on demand and kept."),
    opt(MAIN, "peer_queue", Kind::Int { min: 16, max: 4096 }, "256", "Packets queued per peer before drops."),
    list(MAIN, "route", Kind::Prefix4, "LAN prefixes this node exports to peers allowed to use them (allow_lan), e.g. '192.168.1.0/24'."),
    opt(MAIN, "gateway", Kind::Bool, "0", "Serve as exit node (AWL's VPN gateway) for peers with allow_exit."),
    opt(MAIN, "exit_node", Kind::Str { max_len: 64 }, "", "Send all non-mesh traffic through this peer (peer ID or alias); it must allow us."),
    opt(MAIN, "firewall", Kind::Enum(&["auto", "nftables", "none"]), "auto", "Forwarding, masquerade and MSS clamping: 'nftables' = own table inet awl (removed on exit); 'auto' = nftables except on OpenWrt (fw4 zone); 'none'."),
    opt(MAIN, "snat_lan", Kind::Bool, "1", "Masquerade mesh traffic forwarded into the LAN, so LAN hosts need no route back to the mesh."),
    list(MAIN, "lan_interface", Kind::Ifname, "LAN interfaces whose hosts may reach the mesh through this node (nftables mode); default: those with an address inside an exported route. Nothing else is forwarded into the mesh."),
    OptionDesc { section: PEER, name: "peer_id", kind: Kind::PeerId, list: false, default: "", required: true, doc: "The peer's libp2p ID (12D3KooW…)." },
    opt(PEER, "alias", Kind::Str { max_len: 64 }, "", "Local name of the peer; default: the section name, else 'peer-' and the ID's last 6 characters."),
    opt(PEER, "ip", Kind::Ipv4, "", "The peer's address on this node, inside the mesh subnet; allocated when absent."),
    opt(PEER, "allow_exit", Kind::Bool, "0", "The peer may use this node as exit node / gateway."),
    opt(PEER, "allow_lan", Kind::Bool, "0", "The peer may reach this node's exported routes (and is told about them)."),
    opt(PEER, "accept_routes", Kind::Bool, "0", "Install the LAN routes this peer announces: private ranges (10/8, 172.16/12, 192.168/16, 100.64/10) and the prefixes listed in accept_route; unsafe ones and conflicts with kernel routes are refused."),
    list(PEER, "accept_route", Kind::Prefix4, "A prefix outside the private ranges this peer may announce (needs accept_routes), e.g. '203.0.113.0/24'."),
    list(PEER, "address", Kind::Multiaddr, "Addresses to dial the peer at, e.g. '/ip4/192.0.2.7/udp/4363/quic-v1'."),
    opt(PEER, "domain", Kind::Label, "", "DNS label: <domain>.awl; default: the alias, lower-cased, spaces as '_', other characters than letters, digits, '-' and '_' left out."),
];

pub fn find(section: &str, name: &str) -> Option<&'static OptionDesc> {
    OPTIONS
        .iter()
        .find(|o| o.section == section && o.name == name)
}

/// `awl config schema`.
pub fn schema() -> Value {
    let describe = |section: &str| -> Vec<Value> {
        OPTIONS
            .iter()
            .filter(|o| o.section == section)
            .map(|o| {
                let mut v = json!({
                    "name": o.name,
                    "type": o.kind.name(),
                    "list": o.list,
                    "required": o.required,
                    "description": o.doc,
                });
                if !o.default.is_empty() {
                    v["default"] = json!(o.default);
                }
                match o.kind {
                    Kind::Int { min, max } => {
                        v["min"] = json!(min);
                        v["max"] = json!(max);
                    }
                    Kind::Cidr4 {
                        min_prefix,
                        max_prefix,
                    } => {
                        v["min_prefix"] = json!(min_prefix);
                        v["max_prefix"] = json!(max_prefix);
                    }
                    Kind::Str { max_len } => v["max_len"] = json!(max_len),
                    Kind::Enum(values) => v["values"] = json!(values),
                    _ => {}
                }
                v
            })
            .collect()
    };
    json!({
        "config": "awl",
        "sections": {
            MAIN: { "named": "main", "multiple": false, "options": describe(MAIN) },
            PEER: { "named": null, "multiple": true, "options": describe(PEER) },
        }
    })
}

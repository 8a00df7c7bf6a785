//! The file's statements to a validated [`Config`]: sections, values, and the checks that
//! span options (address, routes, peers).

use super::error::{ConfigError, ErrorKind};
use super::schema::{MAIN, PEER};
use super::uci::{self, Located, Stmt};
use super::value::*;
use super::*;
use std::collections::{HashMap, HashSet};

pub(super) fn build_main(v: &SectionValues) -> Result<MainConfig, ErrorKind> {
    let (address, prefix) = match single(v, "address")
        .cloned()
        .or_else(|| default_of(MAIN, "address"))
    {
        Some(Val::Cidr(ip, len)) => (ip, len),
        _ => return Err(ErrorKind::NoAddress),
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
        listen_tcp: get_bool(v, MAIN, "listen_tcp"),
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
        port_mapping: get_bool(v, MAIN, "port_mapping"),
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

/// Parses and validates `text`; `file_name` is used in messages.
pub fn parse(text: &str, file_name: &str) -> Result<Loaded, ConfigError> {
    let err = |line: Option<usize>, kind: ErrorKind| ConfigError {
        file: file_name.to_string(),
        line,
        kind,
    };
    let stmts = uci::statements(text).map_err(|(line, e)| err(Some(line), ErrorKind::Syntax(e)))?;

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
                    return Err(err(Some(line), ErrorKind::NotAList(name)));
                }
                let val = validate(desc, &value).map_err(|expected| {
                    err(
                        Some(line),
                        ErrorKind::Value {
                            name: name.clone(),
                            value: value.clone(),
                            expected,
                        },
                    )
                })?;
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
    let main = build_main(&main_values).map_err(|k| err(None, k))?;
    let net = u32::from(main.address) & mask(main.prefix);
    let broadcast = net | !mask(main.prefix);
    if u32::from(main.address) == net || u32::from(main.address) == broadcast {
        let line = main_values.get("address").map(|(l, _)| *l);
        return Err(err(
            line,
            ErrorKind::AddressNotHost(main.address, main.prefix),
        ));
    }

    let mesh = crate::base::prefix::Prefix::new(Ipv4Addr::from(net), main.prefix);
    for r in &main.route {
        if mesh.is_some_and(|m| m.overlaps(r)) || r.is_default() {
            let line = main_values.get("route").map(|(l, _)| *l);
            return Err(err(line, ErrorKind::RouteOverlaps(*r)));
        }
    }

    let mut peers = Vec::new();
    let mut ids = HashSet::new();
    let mut aliases: HashMap<String, usize> = HashMap::new();
    let mut ips: HashMap<Ipv4Addr, usize> = HashMap::new();
    for s in sections.iter().filter(|s| s.typ == PEER) {
        let Some(Val::Peer(peer_id)) = single(&s.values, "peer_id").cloned() else {
            return Err(err(Some(s.line), ErrorKind::PeerWithoutId));
        };
        let id_line = s.values.get("peer_id").map_or(s.line, |(l, _)| *l);
        if !ids.insert(peer_id.clone()) {
            return Err(err(Some(id_line), ErrorKind::PeerTwice(peer_id)));
        }
        let id_text = peer_id.to_string();
        let alias = get_text(&s.values, PEER, "alias")
            .filter(|a| !a.trim().is_empty())
            .or_else(|| s.name.clone())
            .unwrap_or_else(|| format!("peer-{}", &id_text[id_text.len() - 6..]));
        if let Some(prev) = aliases.insert(alias.clone(), s.line) {
            let line = s.values.get("alias").map_or(s.line, |(l, _)| *l);
            return Err(err(Some(line), ErrorKind::AliasUsed { alias, line: prev }));
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
                    ErrorKind::IpOutsideMesh(ip, Ipv4Addr::from(net), main.prefix),
                ));
            }
            if ip == main.address {
                return Err(err(Some(line), ErrorKind::IpIsOwn(ip)));
            }
            if Some(ip) == main.service_addr() {
                return Err(err(Some(line), ErrorKind::IpIsService(ip)));
            }
            if let Some(prev) = ips.insert(ip, line) {
                return Err(err(Some(line), ErrorKind::IpUsed { ip, line: prev }));
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
            ErrorKind::TooManyPeers {
                peers: peers.len(),
                max: main.max_peers,
            },
        ));
    }
    Ok(Loaded {
        config: Config { main, peers },
        warnings,
    })
}

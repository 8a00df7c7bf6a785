//! Moving from AWL: AWL's `config_awl.json` (the layout v0.18 writes, `config/config.go`) turned
//! into UCI `peer` sections, node options and the daemon's state file, so a node that ran AWL
//! keeps its mesh: the same peers with the same addresses, names, exit grants and friend state.
//!
//! Everything in the file is untrusted text: names are bounded like a peer's own
//! (`peer_text`), domains must be DNS labels, addresses must fit the mesh. `plan` is pure;
//! `import` reads and writes the files, validating the whole new UCI file with the parser
//! `awl config check` uses before anything is written, and puts back what it already wrote
//! if a later write fails.

use crate::config::{self, PeerConfig};
use crate::mesh::messages::peer_text;
use crate::mesh::peers::{SavedBlocked, SavedPeer, SavedState};
use crate::p2p::identity::{Keypair, PeerId};
use serde_json::Value;
use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// Larger files are refused (AWL's file with 1024 peers is about 600 KB).
pub const MAX_FILE_BYTES: u64 = 4 << 20;
/// More known or blocked peers than this are refused (max_peers is at most 1024).
const MAX_ENTRIES: usize = 4096;
/// AWL's default port (TCP and UDP) when `listenAddresses` is empty.
pub const AWL_DEFAULT_PORT: u16 = 4363;

/// One of AWL's `knownPeers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwlPeer {
    pub peer_id: PeerId,
    /// The name the peer gave itself (`name`).
    pub name: String,
    /// Our name for it (`alias`).
    pub alias: String,
    pub ip: Option<Ipv4Addr>,
    /// `domainName` as written (may be invalid for us).
    pub domain: String,
    pub confirmed: bool,
    pub declined: bool,
    /// `weAllowUsingAsExitNode`: our grant to the peer.
    pub allow_exit: bool,
    /// `allowedUsingAsExitNode`: the peer's grant to us.
    pub allowed_exit: bool,
    pub remote_gateway: bool,
    /// `lastSeen`, unix seconds (0: never).
    pub last_seen: u64,
}

/// One of AWL's `blockedPeers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwlBlocked {
    pub peer_id: PeerId,
    pub name: String,
    pub since: u64,
}

/// What we take from `config_awl.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwlConfig {
    /// `p2pNode.peerId`.
    pub peer_id: Option<PeerId>,
    /// `p2pNode.name` (bounded).
    pub name: String,
    /// The UDP (QUIC) port AWL listened on: from `listenAddresses`, else 4363.
    pub listen_port: u16,
    /// `vpn.ipNet`.
    pub ip_net: Option<(Ipv4Addr, u8)>,
    /// `p2pNode.bootstrapPeers` that are valid `…/p2p/<id>` multiaddrs.
    pub bootstrap: Vec<String>,
    pub ignore_default_bootstrap: bool,
    pub auto_accept: bool,
    pub reconnect_interval: Option<u32>,
    pub peers: Vec<AwlPeer>,
    pub blocked: Vec<AwlBlocked>,
    /// What was skipped or changed while reading, for the user.
    pub notes: Vec<String>,
}

/// Go's `encoding/json` matches keys exactly first, then case-insensitively; so do we.
fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    let obj = v.as_object()?;
    obj.get(key).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

fn get_str<'a>(v: &'a Value, key: &str) -> &'a str {
    get(v, key).and_then(Value::as_str).unwrap_or("")
}

fn get_bool(v: &Value, key: &str) -> bool {
    get(v, key).and_then(Value::as_bool).unwrap_or(false)
}

/// Unix seconds of an RFC 3339 time as Go writes it (`2024-05-01T12:00:00.123+03:00`);
/// Go's zero time and anything before 1970 or unreadable give 0.
pub fn unix_time(s: &str) -> u64 {
    // Fixed-width fields (RFC 3339): no overflow from a hostile year or offset.
    fn num(s: &str) -> Option<i64> {
        if s.is_empty() || s.len() > 4 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    }
    let parse = || -> Option<i64> {
        let (date, time) = s.split_once(['T', 't'])?;
        let mut d = date.splitn(3, '-');
        let (y, m, day) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
        if time.len() < 8 || !time.is_char_boundary(8) {
            return None;
        }
        let mut t = time[..8].splitn(3, ':');
        let (hh, mm, ss) = (num(t.next()?)?, num(t.next()?)?, num(t.next()?)?);
        let rest = time[8..].trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
        let offset = match rest {
            "Z" | "z" => 0,
            _ => {
                let sign = match rest.chars().next()? {
                    '+' => 1,
                    '-' => -1,
                    _ => return None,
                };
                let (oh, om) = rest[1..].split_once(':')?;
                sign * (num(oh)? * 3600 + num(om)? * 60)
            }
        };
        let offset_ok = offset.abs() < 24 * 3600;
        if !(1..=12).contains(&m)
            || !(1..=31).contains(&day)
            || hh > 23
            || mm > 59
            || ss > 60
            || !offset_ok
        {
            return None;
        }
        // Days from the civil date (Howard Hinnant's algorithm).
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + day - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        Some(days * 86_400 + hh * 3600 + mm * 60 + ss - offset)
    };
    parse().filter(|t| *t > 0).map_or(0, |t| t as u64)
}

/// A peer ID from the entry's `peerId`, else its map key.
fn entry_peer_id(key: &str, entry: &Value) -> Option<PeerId> {
    get_str(entry, "peerId")
        .trim()
        .parse()
        .ok()
        .or_else(|| key.trim().parse().ok())
}

/// Shows at most 40 characters of untrusted text in a note.
fn shown(s: &str) -> String {
    let t = peer_text(s);
    if t.chars().count() > 40 {
        format!("{}…", t.chars().take(40).collect::<String>())
    } else {
        t
    }
}

/// Whether `ip` is a host address of its `/len` network (not the network or broadcast).
fn is_host(ip: Ipv4Addr, len: u8) -> bool {
    let mask = u32::MAX << (32 - u32::from(len));
    let v = u32::from(ip);
    v & !mask != 0 && v & !mask != !mask
}

/// Reads `config_awl.json`. Errors only when the file is not AWL's config at all; entries
/// that can't be used are skipped with a note.
pub fn parse_awl(text: &str) -> Result<AwlConfig, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    if !v.is_object() {
        return Err("not an AWL config (expected a JSON object)".into());
    }
    let node = get(&v, "p2pNode").filter(|n| n.is_object());
    let known = get(&v, "knownPeers").filter(|k| !k.is_null());
    if node.is_none() && known.is_none() {
        return Err("not an AWL config: no p2pNode and no knownPeers".into());
    }
    let null = Value::Null;
    let node = node.unwrap_or(&null);
    let mut out = AwlConfig {
        listen_port: AWL_DEFAULT_PORT,
        ..Default::default()
    };
    let own = get_str(node, "peerId").trim();
    if !own.is_empty() {
        match own.parse::<PeerId>() {
            Ok(id) => out.peer_id = Some(id),
            Err(e) => out.notes.push(format!("p2pNode.peerId unreadable ({e})")),
        }
    }
    out.name = peer_text(get_str(node, "name"));

    // listenAddresses: empty → 4363 (and a random port if taken, as awl does too).
    let listen: Vec<&str> = get(node, "listenAddresses")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !listen.is_empty() {
        let quic = listen.iter().find_map(|a| {
            a.parse::<crate::p2p::multiaddr::Multiaddr>()
                .ok()
                .and_then(|m| m.quic_socket_addr())
        });
        match quic {
            Some(s) => out.listen_port = s.port(),
            None => out.notes.push(format!(
                "p2pNode.listenAddresses has no QUIC address; using port {AWL_DEFAULT_PORT}"
            )),
        }
    }

    for b in get(node, "bootstrapPeers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .take(64)
    {
        match b.trim().parse::<crate::p2p::multiaddr::Multiaddr>() {
            Ok(m) if m.peer_id().is_some() => out.bootstrap.push(b.trim().to_string()),
            _ => out.notes.push(format!(
                "bootstrap peer '{}' skipped: not a multiaddr ending in /p2p/<id> that awl reads",
                shown(b)
            )),
        }
    }
    out.ignore_default_bootstrap = get_bool(node, "ignoreDefaultBootstrapPeers");
    out.auto_accept = get_bool(node, "autoAcceptAuthRequests");
    // A Go time.Duration used as a count of seconds.
    out.reconnect_interval = get(node, "reconnectionIntervalSec")
        .and_then(Value::as_u64)
        .filter(|s| (5..=3600).contains(s))
        .map(|s| s as u32);

    let net = get(&v, "vpn").map_or("", |vpn| get_str(vpn, "ipNet").trim());
    if !net.is_empty() {
        let parsed = net
            .split_once('/')
            .and_then(|(ip, len)| Some((ip.parse::<Ipv4Addr>().ok()?, len.parse::<u8>().ok()?)))
            .filter(|(ip, len)| (8..=30).contains(len) && is_host(*ip, *len));
        match parsed {
            Some(n) => out.ip_net = Some(n),
            None => out.notes.push(format!(
                "vpn.ipNet '{}' is not an IPv4 network awl can use; kept this node's address",
                shown(net)
            )),
        }
    }

    if let Some(k) = known {
        let map = k
            .as_object()
            .ok_or("knownPeers is not a JSON object (peer ID → peer)")?;
        if map.len() > MAX_ENTRIES {
            return Err(format!(
                "knownPeers has {} entries; at most {MAX_ENTRIES} are read",
                map.len()
            ));
        }
        for (key, e) in map {
            let Some(peer_id) = entry_peer_id(key, e) else {
                out.notes.push(format!(
                    "known peer '{}' skipped: no valid peer ID",
                    shown(key)
                ));
                continue;
            };
            if Some(&peer_id) == out.peer_id.as_ref() {
                out.notes
                    .push(format!("known peer {peer_id} skipped: that is this node"));
                continue;
            }
            if out.peers.iter().any(|p| p.peer_id == peer_id) {
                out.notes
                    .push(format!("known peer {peer_id} listed twice; the first kept"));
                continue;
            }
            let ip_text = get_str(e, "ipAddr").trim();
            let ip = ip_text.parse::<Ipv4Addr>().ok();
            if ip.is_none() && !ip_text.is_empty() {
                out.notes.push(format!(
                    "peer {peer_id}: ipAddr '{}' is not an IPv4 address; one will be allocated",
                    shown(ip_text)
                ));
            }
            out.peers.push(AwlPeer {
                peer_id,
                name: peer_text(get_str(e, "name")),
                alias: peer_text(get_str(e, "alias")),
                ip,
                domain: get_str(e, "domainName").trim().chars().take(256).collect(),
                confirmed: get_bool(e, "confirmed"),
                declined: get_bool(e, "declined"),
                allow_exit: get_bool(e, "weAllowUsingAsExitNode"),
                allowed_exit: get_bool(e, "allowedUsingAsExitNode"),
                remote_gateway: get_bool(e, "remoteVPNGatewayServerEnabled"),
                last_seen: unix_time(get_str(e, "lastSeen")),
            });
        }
    }

    if let Some(b) = get(&v, "blockedPeers").filter(|b| !b.is_null()) {
        let map = b
            .as_object()
            .ok_or("blockedPeers is not a JSON object (peer ID → peer)")?;
        if map.len() > MAX_ENTRIES {
            return Err(format!(
                "blockedPeers has {} entries; at most {MAX_ENTRIES} are read",
                map.len()
            ));
        }
        for (key, e) in map {
            let Some(peer_id) = entry_peer_id(key, e) else {
                out.notes.push(format!(
                    "blocked peer '{}' skipped: no valid peer ID",
                    shown(key)
                ));
                continue;
            };
            if out.blocked.iter().any(|p| p.peer_id == peer_id) {
                continue;
            }
            out.blocked.push(AwlBlocked {
                peer_id,
                name: peer_text(get_str(e, "displayName")),
                since: unix_time(get_str(e, "createdAt")),
            });
        }
    }

    // Settings awl has in another form, or not at all: said, not guessed.
    if let Some(g) = get(&v, "vpnGateway") {
        if get_bool(g, "clientEnabled") && !get_str(g, "gatewayPeerID").is_empty() {
            out.notes.push(format!(
                "vpnGateway: AWL sent all traffic through {}; set 'exit_node' to that peer if you want the same",
                shown(get_str(g, "gatewayPeerID"))
            ));
        }
        if get_bool(g, "serverEnabled") {
            out.notes.push(
                "vpnGateway: AWL served as exit node; set 'gateway' '1' (docs/GATEWAY.md) if you want the same"
                    .into(),
            );
        }
    }
    if let Some(s) = get(&v, "socks5") {
        if !get_str(s, "usingPeerID").is_empty() {
            out.notes.push(format!(
                "socks5: AWL's proxy went through {}; set 'socks5' '1' and 'socks5_exit' for the same",
                shown(get_str(s, "usingPeerID"))
            ));
        }
    }
    Ok(out)
}

/// What an import would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The new UCI file.
    pub text: String,
    /// The new state file.
    pub state: SavedState,
    /// Node options set: (option, value).
    pub options: Vec<(String, String)>,
    /// Peers added: (alias, peer ID).
    pub added: Vec<(String, PeerId)>,
    /// Peers the UCI file already had (left as they are).
    pub kept: Vec<PeerId>,
    /// Blocked peers added to the state.
    pub blocked: usize,
    pub notes: Vec<String>,
}

/// A unique alias of at most 64 characters: AWL's rule (`name_0`, `name_1`, … when taken).
fn unique_alias(base: &str, taken: &HashSet<String>) -> String {
    let limit = crate::mesh::messages::MAX_NAME_CHARS;
    if !taken.contains(base) {
        return base.to_string();
    }
    (0..)
        .map(|i| {
            let suffix = format!("_{i}");
            let head: String = base.chars().take(limit - suffix.len()).collect();
            format!("{head}{suffix}")
        })
        .find(|a| !taken.contains(a))
        .unwrap_or_else(|| base.to_string())
}

/// Computes the import of `awl` into the UCI text `uci` (named `file` in messages) and the
/// state `state`. Pure. Fails if `uci` is invalid now, or if the result would not load.
pub fn plan(awl: &AwlConfig, uci: &str, file: &str, state: &SavedState) -> Result<Plan, String> {
    let current = config::parse(uci, file)
        .map_err(|e| format!("fix the configuration first: {e}"))?
        .config;
    let mut notes = awl.notes.clone();
    let mut text = uci.to_string();
    let mut options = Vec::new();
    let mut set = |text: &mut String, name: &str, value: String| {
        *text = config::set_main_option(text, name, &value);
        options.push((name.to_string(), value));
    };

    // The node section.
    if awl.listen_port != current.main.listen_port {
        set(&mut text, "listen_port", awl.listen_port.to_string());
    }
    if !current.main.listen_address.is_empty() {
        notes.push("listen_address is set and overrides listen_port".into());
    }
    if !awl.name.trim().is_empty() && awl.name != current.main.name {
        set(&mut text, "name", awl.name.clone());
    }
    if let Some((ip, len)) = awl.ip_net {
        if (ip, len) != (current.main.address, current.main.prefix) {
            set(&mut text, "address", format!("{ip}/{len}"));
        }
    }
    if awl.auto_accept && !current.main.auto_accept {
        set(&mut text, "auto_accept", "1".into());
    }
    if awl.ignore_default_bootstrap && current.main.use_default_bootstrap {
        set(&mut text, "use_default_bootstrap", "0".into());
    }
    if let Some(s) = awl.reconnect_interval {
        if s != current.main.reconnect_interval {
            set(&mut text, "reconnect_interval", s.to_string());
        }
    }
    for b in &awl.bootstrap {
        if !current.main.bootstrap.contains(b) {
            text = config::add_main_list(&text, "bootstrap", b);
            options.push(("bootstrap".into(), b.clone()));
        }
    }
    // The node as it will run: peer addresses are checked against its mesh.
    let main = config::parse(&text, file)
        .map_err(|e| format!("the imported node options would not load: {e}"))?
        .config
        .main;
    if !main.enabled {
        notes.push(
            "'enabled' is 0: the init script won't start awl until it is 1 (uci set awl.main.enabled=1; uci commit awl)"
                .into(),
        );
    }
    let net_mask = if main.prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(main.prefix))
    };
    let net = u32::from(main.address) & net_mask;
    let usable = |ip: Ipv4Addr| {
        let v = u32::from(ip);
        v & net_mask == net
            && v != net
            && v != net | !net_mask
            && ip != main.address
            && Some(ip) != main.service_addr()
    };

    // Peers.
    let mut aliases: HashSet<String> = current.peers.iter().map(|p| p.alias.clone()).collect();
    let mut ips: HashSet<Ipv4Addr> = current.peers.iter().filter_map(|p| p.ip).collect();
    let mut added = Vec::new();
    let mut kept = Vec::new();
    // Peers added without a usable address, and the unusable addresses they had.
    let mut unaddressed: Vec<PeerConfig> = Vec::new();
    let mut moved: Vec<(PeerId, Ipv4Addr)> = Vec::new();
    let mut state = state.clone();
    state.version = state.version.max(1);
    for p in &awl.peers {
        let saved = SavedPeer {
            ip: None,
            name: p.name.clone(),
            confirmed: p.confirmed,
            declined: p.declined,
            allowed_exit: p.allowed_exit,
            remote_gateway: p.remote_gateway,
            last_seen: p.last_seen,
        };
        let key = p.peer_id.to_string();
        if current.peers.iter().any(|c| c.peer_id == p.peer_id) {
            kept.push(p.peer_id.clone());
            state.peers.entry(key).or_insert(saved);
            continue;
        }
        let base = [&p.alias, &p.name]
            .into_iter()
            .find(|a| !a.trim().is_empty())
            .cloned()
            .unwrap_or_else(|| config::domain_label("", &p.peer_id));
        let alias = unique_alias(&base, &aliases);
        if alias != p.alias && !p.alias.is_empty() {
            notes.push(format!(
                "peer {}: alias '{}' is taken; '{alias}' used",
                p.peer_id,
                shown(&p.alias)
            ));
        }
        aliases.insert(alias.clone());
        let ip = match p.ip {
            Some(ip) if usable(ip) && !ips.contains(&ip) => Some(ip),
            Some(ip) => {
                moved.push((p.peer_id.clone(), ip));
                None
            }
            None => None,
        };
        if let Some(ip) = ip {
            ips.insert(ip);
        }
        let d = p.domain.as_str();
        let label_ok = d.len() <= 63
            && !d.starts_with('-')
            && d.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        let domain = if d.is_empty() {
            config::domain_label(&alias, &p.peer_id)
        } else if label_ok {
            d.to_ascii_lowercase()
        } else {
            let label = config::domain_label(&alias, &p.peer_id);
            notes.push(format!(
                "peer {alias}: domain '{}' is not a DNS label awl serves; '{label}' used",
                shown(d)
            ));
            label
        };
        let pc = PeerConfig {
            section: None,
            line: 0,
            peer_id: p.peer_id.clone(),
            alias: alias.clone(),
            ip,
            allow_exit: p.allow_exit,
            address: Vec::new(),
            domain,
            allow_lan: false,
            accept_routes: false,
            accept_route: Vec::new(),
        };
        text = config::upsert_peer_section(&text, &pc);
        if ip.is_none() {
            unaddressed.push(pc);
        }
        state.peers.insert(
            key,
            SavedPeer {
                ip: ip.map(|i| i.octets()),
                ..saved
            },
        );
        added.push((alias, p.peer_id.clone()));
    }
    // Addresses for them as the daemon allocates (AWL's rule: after the highest in use),
    // written to the file: a peer's firewall rules on OpenWrt need its `ip`.
    if !unaddressed.is_empty() {
        let loaded = config::parse(&text, file)
            .map_err(|e| format!("the imported configuration would not load: {e}"))?;
        let own = awl
            .peer_id
            .clone()
            .unwrap_or_else(|| Keypair::generate().peer_id());
        let mut table = crate::mesh::peers::PeerTable::new(
            own,
            main.address,
            main.prefix,
            main.max_peers as usize,
        );
        if let Some(s) = main.service_addr() {
            table.reserve(s);
        }
        table.load(&loaded.config.peers, &state);
        for mut pc in unaddressed {
            let Some(ip) = table.get(&pc.peer_id).map(|k| k.ip) else {
                continue;
            };
            match moved.iter().find(|(id, _)| id == &pc.peer_id) {
                Some((_, old)) => notes.push(format!(
                    "peer {}: {old} is taken or outside the mesh {}/{}; {ip} used",
                    pc.alias, main.address, main.prefix
                )),
                None => notes.push(format!(
                    "peer {}: no address in the file; {ip} used",
                    pc.alias
                )),
            }
            pc.ip = Some(ip);
            text = config::upsert_peer_section(&text, &pc);
            if let Some(s) = state.peers.get_mut(&pc.peer_id.to_string()) {
                s.ip = Some(ip.octets());
            }
        }
    }
    if added
        .iter()
        .any(|(_, id)| awl.peers.iter().any(|p| &p.peer_id == id && p.allow_exit))
        && !main.gateway
    {
        notes.push("peers with allow_exit may use this node's SOCKS5 exit, as in AWL; as their VPN gateway only with 'gateway' '1' (docs/GATEWAY.md)".into());
    }

    let loaded = config::parse(&text, file)
        .map_err(|e| format!("the imported configuration would not load: {e}"))?;
    let known: HashSet<PeerId> = loaded
        .config
        .peers
        .iter()
        .map(|p| p.peer_id.clone())
        .collect();
    let mut blocked = 0;
    for b in &awl.blocked {
        let key = b.peer_id.to_string();
        if known.contains(&b.peer_id) || state.blocked.contains_key(&key) {
            continue;
        }
        state.blocked.insert(
            key,
            SavedBlocked {
                name: b.name.clone(),
                since: b.since,
            },
        );
        blocked += 1;
    }
    // A peer in the UCI file is never blocked (the daemon unblocks it on load, too).
    state
        .blocked
        .retain(|k, _| !known.iter().any(|p| &p.to_string() == k));
    Ok(Plan {
        text,
        state,
        options,
        added,
        kept,
        blocked,
        notes,
    })
}

impl Plan {
    /// A human summary: what is set, added, kept and noted.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        for (k, v) in &self.options {
            s.push_str(&format!("set     {k} = {v}\n"));
        }
        for (alias, id) in &self.added {
            s.push_str(&format!("peer    {alias} ({id})\n"));
        }
        for id in &self.kept {
            s.push_str(&format!("kept    {id} (already configured)\n"));
        }
        if self.blocked > 0 {
            s.push_str(&format!("blocked {} peer(s)\n", self.blocked));
        }
        for n in &self.notes {
            s.push_str(&format!("note    {n}\n"));
        }
        s
    }
}

/// Where an import reads and writes.
pub struct Paths {
    /// The UCI file (created if missing).
    pub config: PathBuf,
    pub data_dir: PathBuf,
}

/// What `import` did.
pub struct Outcome {
    pub plan: Plan,
    /// The identity was written to the data directory (there was none).
    pub identity_written: bool,
}

/// Reads and checks everything, then (with `write`) writes the state file, the UCI file and,
/// if the data directory has none, the identity. A failure changes nothing: files already
/// written are put back. The daemon must not be running (its state would overwrite ours):
/// the caller checks that.
pub fn import(awl_text: &str, paths: &Paths, write: bool) -> Result<Outcome, String> {
    let awl = parse_awl(awl_text)?;
    // The identity: peers know this node by AWL's.
    let key = match crate::p2p::identity::parse_import(awl_text) {
        Ok(k) => Some(k),
        Err(_) if awl.peer_id.is_none() => None,
        Err(e) => return Err(format!("p2pNode.identity: {e}")),
    };
    if let (Some(k), Some(id)) = (&key, &awl.peer_id) {
        if &k.peer_id() != id {
            return Err(format!(
                "p2pNode.identity is not the key of p2pNode.peerId ({id})"
            ));
        }
    }
    let id_file = paths.data_dir.join(crate::p2p::identity::IDENTITY_FILE);
    let existing = if id_file.exists() {
        let text =
            std::fs::read_to_string(&id_file).map_err(|e| format!("{}: {e}", id_file.display()))?;
        Some(
            Keypair::from_awl_base58(text.trim())
                .map_err(|e| format!("{}: {e}", id_file.display()))?
                .peer_id(),
        )
    } else {
        None
    };
    let awl_id = key.as_ref().map(Keypair::peer_id).or(awl.peer_id.clone());
    match (&existing, &awl_id) {
        (Some(ours), Some(theirs)) if ours != theirs => {
            return Err(format!(
                "this node's identity ({ours}) is not the AWL node's ({theirs}); its peers know the AWL one. \
                 Run 'awl id import FILE' first (it replaces this node's identity), then import again"
            ));
        }
        (None, _) if key.is_none() => {
            return Err("the file has no p2pNode.identity and this node has none: import the identity first ('awl id import')".into());
        }
        _ => {}
    }

    let file_name = paths.config.display().to_string();
    let old_uci = match std::fs::read_to_string(&paths.config) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("{file_name}: {e}")),
    };
    let base = old_uci
        .clone()
        .unwrap_or_else(|| "# Created by awl. Options: docs/CONFIG.md\nconfig awl 'main'\n".into());
    let state_path = paths.data_dir.join("state");
    let old_state = match std::fs::read(&state_path) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("{}: {e}", state_path.display())),
    };
    let state = match &old_state {
        Some(b) => postcard::from_bytes(b)
            .map_err(|e| format!("{}: unreadable state ({e})", state_path.display()))?,
        None => SavedState::default(),
    };
    let plan = plan(&awl, &base, &file_name, &state)?;
    let write_identity = existing.is_none() && key.is_some();
    if !write {
        return Ok(Outcome {
            plan,
            identity_written: false,
        });
    }

    // Writes, each atomic; undone in reverse order if a later one fails.
    let restore_state = || match &old_state {
        Some(b) => {
            let tmp = state_path.with_extension("undo");
            let _ = std::fs::write(&tmp, b).and_then(|_| std::fs::rename(&tmp, &state_path));
        }
        None => {
            let _ = std::fs::remove_file(&state_path);
        }
    };
    create_private_dir(&paths.data_dir)?;
    crate::mesh::peers::save_state(&state_path, &plan.state)
        .map_err(|e| format!("{}: {e}", state_path.display()))?;
    if plan.text != base || old_uci.is_none() {
        if let Some(dir) = paths.config.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Err(e) = config::write_atomic(&paths.config, &plan.text) {
            restore_state();
            return Err(format!("{file_name}: {e}"));
        }
    }
    if write_identity {
        if let Some(k) = &key {
            if let Err(e) = crate::p2p::identity::store(&paths.data_dir, k) {
                match &old_uci {
                    Some(t) => {
                        let _ = config::write_atomic(&paths.config, t);
                    }
                    None => {
                        let _ = std::fs::remove_file(&paths.config);
                    }
                }
                restore_state();
                return Err(format!("identity in {}: {e}", paths.data_dir.display()));
            }
        }
    }
    Ok(Outcome {
        plan,
        identity_written: write_identity,
    })
}

fn create_private_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))
}

#[cfg(test)]
mod tests;

//! AWL's `config_awl.json` read into [`AwlConfig`]: every field is untrusted text.

use super::*;
use serde_json::Value;

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
pub(super) fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    let obj = v.as_object()?;
    obj.get(key).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

pub(super) fn get_str<'a>(v: &'a Value, key: &str) -> &'a str {
    get(v, key).and_then(Value::as_str).unwrap_or("")
}

pub(super) fn get_bool(v: &Value, key: &str) -> bool {
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
pub(super) fn entry_peer_id(key: &str, entry: &Value) -> Option<PeerId> {
    get_str(entry, "peerId")
        .trim()
        .parse()
        .ok()
        .or_else(|| key.trim().parse().ok())
}

/// Shows at most 40 characters of untrusted text in a note.
pub(super) fn shown(s: &str) -> String {
    let t = peer_text(s);
    if t.chars().count() > 40 {
        format!("{}…", t.chars().take(40).collect::<String>())
    } else {
        t
    }
}

/// Whether `ip` is a host address of its `/len` network (not the network or broadcast).
pub(super) fn is_host(ip: Ipv4Addr, len: u8) -> bool {
    let mask = u32::MAX << (32 - u32::from(len));
    let v = u32::from(ip);
    v & !mask != 0 && v & !mask != !mask
}

/// Reads `config_awl.json`. Errors only when the file is not AWL's config at all; entries
/// that can't be used are skipped with a note.
pub fn parse_awl(text: &str) -> Result<AwlConfig, Error> {
    let v: Value = serde_json::from_str(text).map_err(Error::NotJson)?;
    if !v.is_object() {
        return Err(Error::NotAwl("not an AWL config (expected a JSON object)"));
    }
    let node = get(&v, "p2pNode").filter(|n| n.is_object());
    let known = get(&v, "knownPeers").filter(|k| !k.is_null());
    if node.is_none() && known.is_none() {
        return Err(Error::NotAwl(
            "not an AWL config: no p2pNode and no knownPeers",
        ));
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
        let map = k.as_object().ok_or(Error::NotAwl(
            "knownPeers is not a JSON object (peer ID → peer)",
        ))?;
        if map.len() > MAX_ENTRIES {
            return Err(Error::TooManyEntries("knownPeers", map.len()));
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
        let map = b.as_object().ok_or(Error::NotAwl(
            "blockedPeers is not a JSON object (peer ID → peer)",
        ))?;
        if map.len() > MAX_ENTRIES {
            return Err(Error::TooManyEntries("blockedPeers", map.len()));
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

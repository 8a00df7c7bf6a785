//! The import computed, without touching a file: the new UCI text, state and notes.

use super::awl::*;
use super::*;

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
pub(super) fn unique_alias(base: &str, taken: &HashSet<String>) -> String {
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
pub fn plan(awl: &AwlConfig, uci: &str, file: &str, state: &SavedState) -> Result<Plan, Error> {
    let current = config::parse(uci, file).map_err(Error::ConfigNow)?.config;
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
        .map_err(Error::NodeOptions)?
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
        let loaded = config::parse(&text, file).map_err(Error::WouldNotLoad)?;
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

    let loaded = config::parse(&text, file).map_err(Error::WouldNotLoad)?;
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

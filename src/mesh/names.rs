//! Names in the `.awl` zone: a peer answers to its domain, its alias or its peer ID, and this
//! node to its own name.

use crate::mesh::peers::PeerTable;
use std::net::Ipv4Addr;

/// The DNS label for a name: lower case, spaces as `_` (AWL's default domain name).
pub fn label_of(name: &str) -> String {
    name.trim().to_lowercase().replace(' ', "_")
}

/// The mesh IP for a `.awl` label: a peer's domain, alias or peer ID, or our own name.
pub fn lookup(t: &PeerTable, own_name: &str, label: &str) -> Option<Ipv4Addr> {
    if label_of(own_name) == label {
        return Some(t.own_ip());
    }
    t.iter()
        .find(|p| {
            (!p.domain.is_empty() && label_of(&p.domain) == label)
                || (!p.alias.is_empty() && label_of(&p.alias) == label)
                || p.peer_id.to_string().to_lowercase() == label
        })
        .map(|p| p.ip)
}

/// The `.awl` label of a mesh IP (PTR).
pub fn reverse(t: &PeerTable, own_name: &str, ip: Ipv4Addr) -> Option<String> {
    if ip == t.own_ip() {
        return Some(label_of(own_name));
    }
    t.by_ip(ip).map(|p| {
        if !p.domain.is_empty() {
            label_of(&p.domain)
        } else if !p.alias.is_empty() {
            label_of(&p.alias)
        } else {
            p.peer_id.to_string().to_lowercase()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::p2p::identity::Keypair;

    #[test]
    fn peers_answer_to_domain_alias_and_id_and_we_to_our_name() {
        let own = Keypair::generate().peer_id();
        let mut t = PeerTable::new(own, Ipv4Addr::new(10, 66, 0, 1), 24, 16);
        let id = Keypair::generate().peer_id();
        let p = t
            .prepare_add(&id, Some("Work PC".into()), None, true)
            .unwrap();
        let ip = p.ip;
        t.commit_add(p);
        assert_eq!(lookup(&t, "My Router", "my_router"), Some(t.own_ip()));
        assert_eq!(lookup(&t, "r", "work_pc"), Some(ip));
        assert_eq!(lookup(&t, "r", &id.to_string().to_lowercase()), Some(ip));
        assert_eq!(lookup(&t, "r", "nobody"), None);
        assert_eq!(reverse(&t, "r", ip).as_deref(), Some("work_pc"));
        assert_eq!(
            reverse(&t, "My Router", t.own_ip()).as_deref(),
            Some("my_router")
        );
        assert_eq!(reverse(&t, "r", Ipv4Addr::new(10, 66, 0, 99)), None);
    }
}

//! Who gets an inbound connection slot. Identities are free, so strangers (peers that are
//! not our friends) share a bounded part of `max_connections`, and each source address a
//! smaller part of that; a friend's new connection always gets in, if need be by closing the
//! oldest stranger's. Pure logic: the host gathers the inbound connections and acts on the
//! answer.

use crate::p2p::identity::PeerId;
use std::net::IpAddr;

/// Share of `max_connections` that strangers may hold at once (the rest is kept for friends).
pub const STRANGER_SHARE_PERCENT: usize = 75;
/// Stranger connections from one IP address (a household behind one NAT has a few devices).
pub const STRANGERS_PER_ADDRESS: usize = 8;
/// TLS handshakes in progress at once, and from one address (before we know who it is).
pub const MAX_HANDSHAKES: usize = 64;
pub const HANDSHAKES_PER_ADDRESS: usize = 16;

/// An inbound connection we hold.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub peer: PeerId,
    pub conn_id: u64,
    /// Direct connections only: the source address.
    pub ip: Option<IpAddr>,
    pub friend: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Admit,
    /// Admit, and close this (a stranger's oldest) connection to make room.
    AdmitEvicting(PeerId, u64),
    Refuse(&'static str),
}

pub fn stranger_cap(max_connections: usize) -> usize {
    (max_connections * STRANGER_SHARE_PERCENT / 100).max(1)
}

/// Whether a newly handshaken inbound connection from `peer` at `ip` may stay, given the
/// inbound connections already held (`held`, oldest first).
pub fn decide(
    held: &[Inbound],
    peer: &PeerId,
    ip: Option<IpAddr>,
    friend: bool,
    max_connections: usize,
) -> Decision {
    if friend {
        if held.len() < max_connections {
            return Decision::Admit;
        }
        return match held.iter().find(|c| !c.friend) {
            Some(c) => Decision::AdmitEvicting(c.peer.clone(), c.conn_id),
            // Every slot holds a friend: friends are bounded by max_peers.
            None => Decision::Admit,
        };
    }
    let strangers = held.iter().filter(|c| !c.friend);
    if held.len() >= max_connections || strangers.clone().count() >= stranger_cap(max_connections) {
        return Decision::Refuse("no connection slot left for unknown peers");
    }
    if ip.is_some()
        && strangers.filter(|c| c.ip == ip && c.peer != *peer).count() >= STRANGERS_PER_ADDRESS
    {
        return Decision::Refuse("too many unknown peers from this address");
    }
    Decision::Admit
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::p2p::identity::Keypair;

    fn held(n: usize, ip: [u8; 4], friend: bool) -> Vec<Inbound> {
        (0..n)
            .map(|i| Inbound {
                peer: Keypair::generate().peer_id(),
                conn_id: i as u64,
                ip: Some(IpAddr::from(ip)),
                friend,
            })
            .collect()
    }

    #[test]
    fn strangers_cannot_lock_friends_out() {
        let max = 128;
        // 140 throwaway identities from many addresses: at most 96 get in.
        let mut h: Vec<Inbound> = Vec::new();
        for i in 0..140u32 {
            let ip = IpAddr::from((0xc633_6400u32 + i).to_be_bytes());
            let p = Keypair::generate().peer_id();
            if decide(&h, &p, Some(ip), false, max) == Decision::Admit {
                h.push(Inbound {
                    peer: p,
                    conn_id: i.into(),
                    ip: Some(ip),
                    friend: false,
                });
            }
        }
        assert_eq!(h.len(), stranger_cap(max));
        let f = Keypair::generate().peer_id();
        assert_eq!(decide(&h, &f, None, true, max), Decision::Admit);
        // Slots full: the friend still gets in, in place of the oldest stranger.
        let mut full = h.clone();
        full.extend(held(max - h.len(), [192, 0, 2, 9], true));
        assert_eq!(
            decide(&full, &f, None, true, max),
            Decision::AdmitEvicting(h[0].peer.clone(), h[0].conn_id)
        );
    }

    #[test]
    fn one_address_gets_a_small_share() {
        let h = held(STRANGERS_PER_ADDRESS, [198, 51, 100, 7], false);
        let p = Keypair::generate().peer_id();
        assert!(matches!(
            decide(&h, &p, Some([198, 51, 100, 7].into()), false, 128),
            Decision::Refuse(_)
        ));
        assert_eq!(
            decide(&h, &p, Some([198, 51, 100, 8].into()), false, 128),
            Decision::Admit
        );
        assert_eq!(
            decide(&h, &p, Some([198, 51, 100, 7].into()), true, 128),
            Decision::Admit,
            "a friend behind the same address is not counted against it"
        );
    }
}

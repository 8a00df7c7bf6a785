//! Routing decisions as pure functions over a published [`Snapshot`]: where a packet from
//! the TUN goes, and whether a packet from a peer may enter.

use super::packet;
use super::snapshot::{PeerEntry, Snapshot};
use crate::base::prefix;
use crate::mesh::tunnel::{self, GatewayDir};
use std::net::Ipv4Addr;
use std::sync::Arc;

/// Where an outbound packet goes.
pub enum Route<'a> {
    Peer(&'a Arc<PeerEntry>, GatewayDir),
    /// A copy to every known peer (the mesh's broadcast address or 255.255.255.255).
    Broadcast,
    /// The service stack (the service address).
    Service,
    Unroutable,
    TooBig,
}

/// Where a packet from the TUN goes, from its IPv4 header: a mesh IP, a LAN route a peer
/// announced (Forward), or the exit node (Forward).
pub fn route<'a>(s: &'a Snapshot, d: &[u8]) -> Route<'a> {
    if packet::ip_version(d) != 4 || d.len() < 20 {
        // AWL v0.18 peers drop IPv6; don't spend the link on it.
        return Route::Unroutable;
    }
    if d.len() > tunnel::AWL_MAX_PACKET {
        // An AWL receiver can't hold it (§5.1); keep the TUN MTU at or below 3500.
        return Route::TooBig;
    }
    let src = Ipv4Addr::new(d[12], d[13], d[14], d[15]);
    let dst = Ipv4Addr::new(d[16], d[17], d[18], d[19]);
    if s.services.contains(&dst) {
        return Route::Service;
    }
    let r = &s.routing;
    if dst == s.broadcast || dst == Ipv4Addr::BROADCAST {
        return Route::Broadcast;
    }
    if s.in_mesh(dst) {
        let Some(p) = s.by_ip.get(&dst) else {
            return Route::Unroutable;
        };
        // Replies from our LAN or the internet to a peer that came in through us keep
        // their source: tag them Return.
        let ret = !s.in_mesh(src)
            && ((r.gateway && p.allow_exit)
                || (p.allow_lan && r.exported.iter().any(|x| x.contains(src))));
        let dir = if ret {
            GatewayDir::Return
        } else {
            GatewayDir::None
        };
        return Route::Peer(p, dir);
    }
    let via = prefix::lookup(&r.installed, dst)
        .or_else(|| r.exit_node.as_ref().filter(|_| forwardable(dst)));
    match via.and_then(|id| s.peer(id)) {
        Some(p) => Route::Peer(p, GatewayDir::Forward),
        None => Route::Unroutable,
    }
}

/// Whether a packet from the known peer `from` may enter, by its gateway direction.
pub fn accepts(
    s: &Snapshot,
    from: &PeerEntry,
    dir: GatewayDir,
    src: Ipv4Addr,
    dst: Ipv4Addr,
) -> bool {
    let r = &s.routing;
    match dir {
        // Source and destination are rewritten to the peer's and our mesh IPs.
        GatewayDir::None => true,
        // Client → us as exit node or into our LAN: destination kept.
        GatewayDir::Forward => {
            (r.gateway && from.allow_exit)
                || (from.allow_lan && r.exported.iter().any(|p| p.contains(dst)))
        }
        // A peer whose LAN we route to, answering from that LAN: source kept.
        GatewayDir::Return
            if r.installed
                .iter()
                .any(|(p, who)| *who == from.id && p.contains(src)) =>
        {
            true
        }
        // Our exit node answering from the internet: source kept, so it must be an address
        // the exit can answer for — not a mesh IP (another peer's), not our own LAN, not a
        // LAN we route to another peer, not loopback, link-local, multicast or broadcast.
        GatewayDir::Return => {
            r.exit_node.as_ref() == Some(&from.id)
                && forwardable(src)
                && !s.mesh.contains(src)
                && !r.exported.iter().any(|p| p.contains(src))
                && !r.installed.iter().any(|(p, _)| p.contains(src))
        }
    }
}

/// Destinations an exit node may carry (not loopback, link-local, multicast or broadcast).
pub fn forwardable(ip: Ipv4Addr) -> bool {
    !(ip.is_loopback()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_unspecified())
}

#[cfg(test)]
mod tests;

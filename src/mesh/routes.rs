//! LAN routes: what we export, what peers announce, and which of those are safe to install.
//!
//! Pure logic: prefix arithmetic, longest-prefix lookup, and the safety rules that keep a
//! peer's announcement from hijacking our mesh, our LAN or the path to our own peers.

use crate::base::prefix::{Prefix, PRIVATE_RANGES};
use std::fmt;
use std::net::Ipv4Addr;

/// Routes in the kernel's main IPv4 table (`/proc/net/route`), except default routes and
/// those on `skip_dev` (our TUN: the routes we installed ourselves).
pub fn kernel_routes(skip_dev: Option<&str>) -> Vec<Prefix> {
    std::fs::read_to_string("/proc/net/route")
        .map(|t| parse_proc_route(&t, skip_dev))
        .unwrap_or_default()
}

/// `/proc/net/route`: Iface, Destination, Gateway, Flags, RefCnt, Use, Metric, Mask, ….
fn parse_proc_route(text: &str, skip_dev: Option<&str>) -> Vec<Prefix> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 8 || Some(f[0]) == skip_dev {
                return None;
            }
            let dest = u32::from_str_radix(f[1], 16).ok()?;
            let mask = u32::from_str_radix(f[7], 16).ok()?;
            // The kernel prints the network-order word as a host-order integer.
            let p = Prefix::new(Ipv4Addr::from(u32::from_be(dest)), mask.count_ones() as u8)?;
            (!p.is_default()).then_some(p)
        })
        .collect()
}

/// Why an announced route is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Default,
    MeshSubnet,
    OwnRoute(Prefix),
    Underlay(Ipv4Addr),
    Local(Ipv4Addr),
    TakenBy(String),
    Special,
    /// Outside the private ranges and not in the peer's `accept_route` list.
    Public,
    /// Overlaps a route the kernel already has (another interface's network).
    Kernel(Prefix),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Default => write!(
                f,
                "a default route is only used from the configured exit node"
            ),
            Refusal::MeshSubnet => write!(f, "overlaps the mesh subnet"),
            Refusal::OwnRoute(p) => write!(f, "overlaps our own exported route {p}"),
            Refusal::Underlay(ip) => write!(
                f,
                "contains {ip}, an address we reach peers through (routing loop)"
            ),
            Refusal::Local(ip) => write!(f, "contains {ip}, an address of this host"),
            Refusal::TakenBy(p) => write!(f, "overlaps a route already installed for {p}"),
            Refusal::Special => write!(f, "loopback, link-local or multicast range"),
            Refusal::Public => write!(
                f,
                "not a private range (10/8, 172.16/12, 192.168/16, 100.64/10); list it in the peer's accept_route to allow it"
            ),
            Refusal::Kernel(p) => write!(f, "overlaps the kernel route {p} of another interface"),
        }
    }
}

/// Everything a route must not touch.
pub struct Guard<'a> {
    pub mesh: Prefix,
    pub own_routes: &'a [Prefix],
    /// Addresses of this host (interfaces) and of peer connections (underlay endpoints).
    pub local_addrs: &'a [Ipv4Addr],
    pub underlay: &'a [Ipv4Addr],
    /// Routes already accepted from other peers: (prefix, who).
    pub installed: &'a [(Prefix, String)],
    /// Prefixes outside the private ranges the announcing peer may use.
    pub allowed: &'a [Prefix],
    /// Routes already in the kernel that are not ours.
    pub kernel: &'a [Prefix],
}

impl Guard<'_> {
    pub fn check(&self, p: &Prefix) -> Result<(), Refusal> {
        if p.is_default() {
            return Err(Refusal::Default);
        }
        let special = [
            "127.0.0.0/8",
            "169.254.0.0/16",
            "224.0.0.0/4",
            "240.0.0.0/4",
        ];
        if special
            .iter()
            .filter_map(|s| s.parse::<Prefix>().ok())
            .any(|s| s.overlaps(p))
        {
            return Err(Refusal::Special);
        }
        if p.overlaps(&self.mesh) {
            return Err(Refusal::MeshSubnet);
        }
        if !PRIVATE_RANGES
            .iter()
            .chain(self.allowed)
            .any(|r| r.covers(p))
        {
            return Err(Refusal::Public);
        }
        if let Some(o) = self.own_routes.iter().find(|o| o.overlaps(p)) {
            return Err(Refusal::OwnRoute(*o));
        }
        if let Some(ip) = self.underlay.iter().find(|ip| p.contains(**ip)) {
            return Err(Refusal::Underlay(*ip));
        }
        if let Some(ip) = self.local_addrs.iter().find(|ip| p.contains(**ip)) {
            return Err(Refusal::Local(*ip));
        }
        if let Some((_, who)) = self.installed.iter().find(|(q, _)| q.overlaps(p)) {
            return Err(Refusal::TakenBy(who.clone()));
        }
        if let Some(k) = self.kernel.iter().find(|k| k.overlaps(p)) {
            return Err(Refusal::Kernel(*k));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    #[test]
    fn unsafe_routes_are_refused_with_a_reason() {
        let own = [p("192.168.1.0/24")];
        let installed = [(p("192.168.3.0/24"), "peer-x".to_string())];
        let g = Guard {
            mesh: p("10.66.0.0/16"),
            own_routes: &own,
            local_addrs: &[Ipv4Addr::new(172, 16, 0, 2)],
            underlay: &[Ipv4Addr::new(203, 0, 113, 7)],
            installed: &installed,
            allowed: &[p("203.0.113.0/24")],
            kernel: &[],
        };
        assert_eq!(g.check(&p("192.168.2.0/24")), Ok(()));
        assert_eq!(g.check(&p("0.0.0.0/0")), Err(Refusal::Default));
        assert_eq!(g.check(&p("10.0.0.0/8")), Err(Refusal::MeshSubnet));
        assert_eq!(
            g.check(&p("192.168.0.0/16")),
            Err(Refusal::OwnRoute(p("192.168.1.0/24")))
        );
        assert_eq!(
            g.check(&p("203.0.113.0/24")),
            Err(Refusal::Underlay(Ipv4Addr::new(203, 0, 113, 7)))
        );
        assert_eq!(
            g.check(&p("172.16.0.0/12")),
            Err(Refusal::Local(Ipv4Addr::new(172, 16, 0, 2)))
        );
        assert_eq!(
            g.check(&p("192.168.3.128/25")),
            Err(Refusal::TakenBy("peer-x".into()))
        );
        assert_eq!(g.check(&p("127.0.0.0/8")), Err(Refusal::Special));
    }

    #[test]
    fn a_friend_cannot_take_over_public_prefixes() {
        let allowed = [p("203.0.113.0/24")];
        let kernel = [p("192.168.50.0/24")];
        let g = Guard {
            mesh: p("10.66.0.0/16"),
            own_routes: &[],
            local_addrs: &[],
            underlay: &[],
            installed: &[],
            allowed: &[],
            kernel: &kernel,
        };
        // The attack: 8.8.8.0/24 from a friend must not be installed.
        assert_eq!(g.check(&p("8.8.8.0/24")), Err(Refusal::Public));
        assert_eq!(
            g.check(&p("172.0.0.0/8")),
            Err(Refusal::Public),
            "a supernet of a private range is public"
        );
        assert_eq!(g.check(&p("100.64.3.0/24")), Ok(()));
        assert_eq!(g.check(&p("172.20.0.0/16")), Ok(()));
        assert_eq!(
            g.check(&p("192.168.50.128/25")),
            Err(Refusal::Kernel(p("192.168.50.0/24")))
        );
        let g = Guard {
            allowed: &allowed,
            ..g
        };
        assert_eq!(g.check(&p("203.0.113.0/25")), Ok(()));
        assert_eq!(g.check(&p("203.0.112.0/23")), Err(Refusal::Public));
    }

    #[test]
    fn kernel_routes_are_read_from_proc() {
        let text =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
eth0\t00000000\t0102A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
eth0\t0002A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
awl0\t000042C0\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";
        assert_eq!(
            parse_proc_route(text, Some("awl0")),
            vec![p("192.168.2.0/24")]
        );
        assert_eq!(parse_proc_route(text, None).len(), 2);
    }
}

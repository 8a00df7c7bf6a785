//! LAN routes: what we export, what peers announce, and which of those are safe to install.
//!
//! Pure logic: prefix arithmetic, longest-prefix lookup, and the safety rules that keep a
//! peer's announcement from hijacking our mesh, our LAN or the path to our own peers.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    pub addr: Ipv4Addr,
    pub len: u8,
}

impl Prefix {
    pub fn new(addr: Ipv4Addr, len: u8) -> Option<Self> {
        (len <= 32).then(|| Prefix {
            addr: Ipv4Addr::from(u32::from(addr) & Self::mask_of(len)),
            len,
        })
    }

    fn mask_of(len: u8) -> u32 {
        if len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(len))
        }
    }

    pub fn mask(&self) -> u32 {
        Self::mask_of(self.len)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr)
    }

    pub fn overlaps(&self, other: &Prefix) -> bool {
        let m = self.mask() & other.mask();
        u32::from(self.addr) & m == u32::from(other.addr) & m
    }

    pub fn is_default(&self) -> bool {
        self.len == 0
    }

    /// `other` lies wholly inside this prefix.
    pub fn covers(&self, other: &Prefix) -> bool {
        self.len <= other.len && self.contains(other.addr)
    }
}

/// Ranges a peer may announce without the user listing them: RFC 1918 and the shared
/// address space of RFC 6598 (carrier-grade NAT, used by other VPNs). A public prefix from
/// a friend would take over part of the internet for the whole LAN.
pub const PRIVATE_RANGES: [Prefix; 4] = [
    Prefix {
        addr: Ipv4Addr::new(10, 0, 0, 0),
        len: 8,
    },
    Prefix {
        addr: Ipv4Addr::new(172, 16, 0, 0),
        len: 12,
    },
    Prefix {
        addr: Ipv4Addr::new(192, 168, 0, 0),
        len: 16,
    },
    Prefix {
        addr: Ipv4Addr::new(100, 64, 0, 0),
        len: 10,
    },
];

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

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Prefix {
    type Err = String;

    /// `a.b.c.d/n`; host bits must be zero (a typo like 192.168.1.1/24 is refused).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (ip, len) = s
            .split_once('/')
            .ok_or_else(|| format!("'{s}': expected a.b.c.d/len"))?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| format!("'{s}': bad IPv4 address"))?;
        let len: u8 = len
            .parse()
            .ok()
            .filter(|l| *l <= 32)
            .ok_or_else(|| format!("'{s}': prefix length must be 0..32"))?;
        let p = Prefix::new(ip, len).ok_or_else(|| format!("'{s}': bad prefix"))?;
        if p.addr != ip {
            return Err(format!("'{s}': host bits set (did you mean {p}?)"));
        }
        Ok(p)
    }
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

/// Longest-prefix match over a small table (a router has a handful of routes).
pub fn lookup<T>(table: &[(Prefix, T)], ip: Ipv4Addr) -> Option<&T> {
    table
        .iter()
        .filter(|(p, _)| p.contains(ip))
        .max_by_key(|(p, _)| p.len)
        .map(|(_, t)| t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    #[test]
    fn parse_contains_overlaps() {
        assert_eq!(p("192.168.1.0/24").to_string(), "192.168.1.0/24");
        assert!("192.168.1.1/24"
            .parse::<Prefix>()
            .unwrap_err()
            .contains("192.168.1.0/24"));
        assert!("1.2.3.4/33".parse::<Prefix>().is_err());
        assert!("1.2.3.4".parse::<Prefix>().is_err());
        assert!(p("10.0.0.0/8").contains(Ipv4Addr::new(10, 200, 1, 1)));
        assert!(!p("10.0.0.0/8").contains(Ipv4Addr::new(11, 0, 0, 1)));
        assert!(p("10.0.0.0/8").overlaps(&p("10.5.0.0/16")));
        assert!(p("10.5.0.0/16").overlaps(&p("10.0.0.0/8")));
        assert!(!p("192.168.1.0/24").overlaps(&p("192.168.2.0/24")));
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

    #[test]
    fn longest_prefix_wins() {
        let t = [(p("10.0.0.0/8"), "a"), (p("10.1.0.0/16"), "b")];
        assert_eq!(lookup(&t, Ipv4Addr::new(10, 1, 2, 3)), Some(&"b"));
        assert_eq!(lookup(&t, Ipv4Addr::new(10, 2, 2, 3)), Some(&"a"));
        assert_eq!(lookup(&t, Ipv4Addr::new(11, 2, 2, 3)), None);
    }
}

//! IPv4 prefixes: parsing, containment and longest-prefix lookup. A value type shared by
//! configuration, the mesh's route rules, the data plane and the gateway.

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
    fn longest_prefix_wins() {
        let t = [(p("10.0.0.0/8"), "a"), (p("10.1.0.0/16"), "b")];
        assert_eq!(lookup(&t, Ipv4Addr::new(10, 1, 2, 3)), Some(&"b"));
        assert_eq!(lookup(&t, Ipv4Addr::new(10, 2, 2, 3)), Some(&"a"));
        assert_eq!(lookup(&t, Ipv4Addr::new(11, 2, 2, 3)), None);
    }
}

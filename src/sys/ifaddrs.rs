//! Local interface addresses, to advertise when we listen on 0.0.0.0 / ::.
//!
//! Read from /proc (`/proc/net/fib_trie` for IPv4, `/proc/net/if_inet6` for IPv6) rather than
//! with getifaddrs(3): musl implements that over netlink, which hung under qemu-user for
//! big-endian MIPS, and /proc text is the same on every architecture (and per namespace).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Addresses of this host (network namespace), link-local ones excluded.
pub fn local_addrs() -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    if let Ok(t) = std::fs::read_to_string("/proc/net/fib_trie") {
        out.extend(parse_fib_trie(&t).into_iter().map(IpAddr::V4));
    }
    if let Ok(t) = std::fs::read_to_string("/proc/net/if_inet6") {
        out.extend(parse_if_inet6(&t).into_iter().map(IpAddr::V6));
    }
    out.sort();
    out.dedup();
    out
}

/// The addresses the kernel marks `/32 host LOCAL` (our own IPv4 addresses).
pub fn parse_fib_trie(text: &str) -> Vec<Ipv4Addr> {
    let mut last: Option<Ipv4Addr> = None;
    let mut out = Vec::new();
    for line in text.lines() {
        let l = line.trim();
        if let Some(ip) = l.strip_prefix("|-- ") {
            last = ip.trim().parse().ok();
        } else if l.starts_with("/32 host LOCAL") {
            if let Some(ip) = last.filter(|ip| !ip.is_link_local()) {
                out.push(ip);
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// IPv6 address flags (`IFA_F_*`) that keep an address out of what we advertise: privacy
/// (temporary) addresses exist so that they are not handed out, and deprecated, tentative or
/// duplicate (DAD-failed) ones are not usable for new connections.
const IFA_F_TEMPORARY: u32 = 0x01;
const IFA_F_DADFAILED: u32 = 0x08;
const IFA_F_DEPRECATED: u32 = 0x20;
const IFA_F_TENTATIVE: u32 = 0x40;

/// `/proc/net/if_inet6`: 32 hex digits of address, then index, prefix, scope, flags, name.
/// Link-local, multicast, temporary, deprecated, tentative and DAD-failed addresses are left
/// out.
pub fn parse_if_inet6(text: &str) -> Vec<Ipv6Addr> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let hex = f.next()?;
            if hex.len() != 32 {
                return None;
            }
            let flags = u32::from_str_radix(f.nth(3)?, 16).ok()?;
            if flags & (IFA_F_TEMPORARY | IFA_F_DADFAILED | IFA_F_DEPRECATED | IFA_F_TENTATIVE) != 0
            {
                return None;
            }
            let v = u128::from_str_radix(hex, 16).ok()?;
            let ip = Ipv6Addr::from(v);
            (ip.segments()[0] & 0xffc0 != 0xfe80 && !ip.is_multicast()).then_some(ip)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIB: &str = "Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     +-- 192.168.1.0/24 2 0 2
        |-- 192.168.1.0
           /24 link UNICAST
        |-- 192.168.1.1
           /32 host LOCAL
Local:
  +-- 0.0.0.0/0 3 0 5
           |-- 127.0.0.1
              /32 host LOCAL
";

    #[test]
    fn local_ipv4_from_fib_trie() {
        assert_eq!(
            parse_fib_trie(FIB),
            vec![Ipv4Addr::new(127, 0, 0, 1), Ipv4Addr::new(192, 168, 1, 1)]
        );
    }

    #[test]
    fn ipv6_without_link_local() {
        let t = "00000000000000000000000000000001 01 80 10 80       lo\nfe800000000000000000000000000001 02 40 20 80     eth0\n20010db8000000000000000000000007 02 40 00 00     eth0\n";
        assert_eq!(
            parse_if_inet6(t),
            vec![
                "::1".parse::<Ipv6Addr>().unwrap(),
                "2001:db8::7".parse().unwrap()
            ]
        );
    }

    /// Privacy addresses are never advertised (identify tells strangers our addresses); nor
    /// are addresses the kernel does not use for new connections.
    #[test]
    fn ipv6_temporary_and_unusable_addresses_are_not_advertised() {
        let t = "\
20010db8000000000000000000000007 02 40 00 80     eth0
20010db80000000012345678abcdef01 02 40 00 01     eth0
20010db8000000000000000000000008 02 40 00 20     eth0
20010db8000000000000000000000009 02 40 00 40     eth0
20010db800000000000000000000000a 02 40 00 08     eth0
ff020000000000000000000000000001 02 80 20 80     eth0
";
        assert_eq!(
            parse_if_inet6(t),
            vec!["2001:db8::7".parse::<Ipv6Addr>().unwrap()]
        );
    }

    #[test]
    fn loopback_is_listed() {
        assert!(local_addrs().contains(&"127.0.0.1".parse().unwrap()));
    }
}

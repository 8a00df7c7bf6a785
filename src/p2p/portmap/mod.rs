//! Port mapping for a node behind a home router (a Raspberry Pi gateway, say), as go-libp2p's
//! `NATPortMap` gives AWL: ask the router to forward our QUIC port, with NAT-PMP (RFC 6886)
//! first and UPnP-IGD after, renew the mapping before it lapses and remove it at exit. The
//! mapped address is one more address peers can dial us at, so two such nodes connect
//! directly instead of through a relay. On OpenWrt the node *is* the router: off there.

pub mod natpmp;
pub mod upnp;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

/// What we ask for; routers may grant less (NAT-PMP says so in its answer).
pub const LEASE: u32 = 2 * 60 * 60;
/// Never renew more often than this, whatever lease a router grants.
const MIN_RENEW: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    NatPmp(natpmp::Error),
    Upnp(upnp::Error),
    /// Both protocols failed; NAT-PMP's reason is kept when UPnP found no gateway at all.
    Neither(natpmp::Error, upnp::Error),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::NatPmp(e) => e.fmt(f),
            Error::Upnp(e) => e.fmt(f),
            Error::Neither(a, b) => write!(f, "no port mapping: {a}; {b}"),
        }
    }
}

enum Via {
    NatPmp(natpmp::Client),
    Upnp(upnp::Gateway),
}

/// A mapping the router granted: `external` forwards to our `internal` UDP port.
pub struct Mapping {
    via: Via,
    pub internal: u16,
    pub external: SocketAddrV4,
    /// Seconds the router granted.
    pub lease: u32,
}

impl Mapping {
    /// Asks the router at `gateway` (the default route's next hop) to forward a UDP port to
    /// `internal` — the same port number outside if it is free.
    pub async fn create(gateway: Option<Ipv4Addr>, internal: u16) -> Result<Mapping, Error> {
        let pmp_err = match gateway {
            Some(gw) => match Self::natpmp(natpmp::Client::new(gw), internal).await {
                Ok(m) => return Ok(m),
                Err(e) => e,
            },
            None => natpmp::Error::NoAnswer,
        };
        match Self::upnp(gateway, internal).await {
            Ok(m) => Ok(m),
            Err(upnp::Error::NotFound) => Err(Error::Neither(pmp_err, upnp::Error::NotFound)),
            Err(e) => Err(Error::Upnp(e)),
        }
    }

    async fn natpmp(c: natpmp::Client, internal: u16) -> Result<Mapping, natpmp::Error> {
        let ip = c.external_address().await?;
        let m = c.map_udp(internal, internal, LEASE).await?;
        Ok(Mapping {
            via: Via::NatPmp(c),
            internal,
            external: SocketAddrV4::new(ip, m.external),
            lease: m.lifetime,
        })
    }

    async fn upnp(gateway: Option<Ipv4Addr>, internal: u16) -> Result<Mapping, upnp::Error> {
        let g = upnp::Gateway::find(gateway).await?;
        g.map_udp(internal, internal, LEASE).await?;
        let ip = g.external_address().await?;
        Ok(Mapping {
            via: Via::Upnp(g),
            internal,
            external: SocketAddrV4::new(ip, internal),
            lease: LEASE,
        })
    }

    /// Which protocol the router answered.
    pub fn via(&self) -> &'static str {
        match self.via {
            Via::NatPmp(_) => "NAT-PMP",
            Via::Upnp(_) => "UPnP",
        }
    }

    /// When to renew: half the lease, as RFC 6886 advises.
    pub fn renew_after(&self) -> Duration {
        // Never later than for the lease we asked for, whatever the router claims it granted.
        Duration::from_secs(u64::from(self.lease.min(LEASE) / 2)).max(MIN_RENEW)
    }

    /// Renews the lease; the external address may change (a router reboot, a new WAN IP).
    pub async fn renew(&mut self) -> Result<(), Error> {
        match &self.via {
            Via::NatPmp(c) => {
                let ip = c.external_address().await.map_err(Error::NatPmp)?;
                let m = c
                    .map_udp(self.internal, self.external.port(), LEASE)
                    .await
                    .map_err(Error::NatPmp)?;
                self.external = SocketAddrV4::new(ip, m.external);
                self.lease = m.lifetime;
            }
            Via::Upnp(g) => {
                g.map_udp(self.internal, self.external.port(), LEASE)
                    .await
                    .map_err(Error::Upnp)?;
                let ip = g.external_address().await.map_err(Error::Upnp)?;
                self.external = SocketAddrV4::new(ip, self.external.port());
            }
        }
        Ok(())
    }

    /// Removes the mapping (at exit): the router forwards nothing to us once we are gone.
    pub async fn remove(self) -> Result<(), Error> {
        match self.via {
            Via::NatPmp(c) => c.unmap_udp(self.internal).await.map_err(Error::NatPmp),
            Via::Upnp(g) => g.unmap_udp(self.external.port()).await.map_err(Error::Upnp),
        }
    }
}

/// Whether a mapped address the router reports can be given to peers: a lying or confused
/// gateway must not make us advertise loopback, multicast, broadcast, link-local, an
/// unspecified address or port 0 (peers would dial themselves or nothing).
pub fn advertisable(a: SocketAddrV4) -> bool {
    let ip = a.ip();
    a.port() != 0
        && !(ip.is_loopback()
            || ip.is_unspecified()
            || ip.is_multicast()
            || ip.is_broadcast()
            || ip.is_link_local())
}

/// The next hop of the default IPv4 route, from `/proc/net/route`.
pub fn default_gateway() -> Option<Ipv4Addr> {
    parse_default_gateway(&std::fs::read_to_string("/proc/net/route").ok()?)
}

fn parse_default_gateway(text: &str) -> Option<Ipv4Addr> {
    const RTF_UP_GATEWAY: u32 = 0x3;
    text.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let dest = u32::from_str_radix(f.get(1)?, 16).ok()?;
        let gw = u32::from_str_radix(f.get(2)?, 16).ok()?;
        let flags = u32::from_str_radix(f.get(3)?, 16).ok()?;
        let mask = u32::from_str_radix(f.get(7)?, 16).ok()?;
        // The kernel prints network-order words as host-order integers.
        (dest == 0 && mask == 0 && flags & RTF_UP_GATEWAY == RTF_UP_GATEWAY)
            .then(|| Ipv4Addr::from(u32::from_be(gw)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_gateway_is_read_from_proc() {
        let text =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
eth0\t0002A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
eth0\t00000000\t0102A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n";
        assert_eq!(
            parse_default_gateway(text),
            Some(Ipv4Addr::new(192, 168, 2, 1))
        );
        assert_eq!(parse_default_gateway("Iface\n"), None);
        assert_eq!(parse_default_gateway("Iface\neth0\tzz\n"), None);
    }

    #[test]
    fn only_reachable_mapped_addresses_are_advertised() {
        let a = |s: &str| s.parse::<SocketAddrV4>().unwrap();
        assert!(advertisable(a("198.51.100.7:4363")));
        // Behind a second NAT the router's WAN address is private: still worth a try.
        assert!(advertisable(a("100.64.1.2:4363")));
        for bad in [
            "127.0.0.1:4363",
            "0.0.0.0:4363",
            "224.0.0.1:4363",
            "255.255.255.255:4363",
            "169.254.1.1:4363",
            "198.51.100.7:0",
        ] {
            assert!(!advertisable(a(bad)), "{bad}");
        }
    }

    #[test]
    fn renewal_is_at_half_the_lease_but_not_too_often() {
        let m = |lease| Mapping {
            via: Via::NatPmp(natpmp::Client::new(Ipv4Addr::LOCALHOST)),
            internal: 1,
            external: SocketAddrV4::new(Ipv4Addr::LOCALHOST, 1),
            lease,
        };
        assert_eq!(m(7200).renew_after(), Duration::from_secs(3600));
        assert_eq!(m(10).renew_after(), MIN_RENEW);
        assert_eq!(m(u32::MAX).renew_after(), Duration::from_secs(3600));
    }
}

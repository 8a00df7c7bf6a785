//! LAN discovery: nodes on the same LAN find each other without any bootstrap node (AWL
//! issues #177 and #270: AWL peers on one LAN still talk through relays).
//!
//! Every node announces `AWL1 ‖ QUIC port (u16 BE) ‖ peer ID bytes` to the multicast group
//! 239.255.66.66:4364 on each of its IPv4 LAN interfaces (never one with a public address),
//! at start and every 10 s. A node that hears
//! a *known* peer it isn't connected to dials the sender's address at that port. The
//! announcement is only a hint: the TLS handshake still proves the peer ID, and unknown peers'
//! announcements are ignored.

use crate::base::prefix::Prefix;
use crate::p2p::identity::PeerId;
use crate::p2p::multiaddr::Multiaddr;
use crate::p2p::Host;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const GROUP: Ipv4Addr = Ipv4Addr::new(239, 255, 66, 66);
pub const PORT: u16 = 4364;
const MAGIC: &[u8; 4] = b"AWL1";
const INTERVAL: Duration = Duration::from_secs(10);
/// One dial per peer per this long, however many announcements arrive.
const DIAL_BACKOFF: Duration = Duration::from_secs(10);

pub fn encode(port: u16, peer: &PeerId) -> Vec<u8> {
    let mut v = Vec::with_capacity(6 + peer.as_bytes().len());
    v.extend_from_slice(MAGIC);
    v.extend_from_slice(&port.to_be_bytes());
    v.extend_from_slice(peer.as_bytes());
    v
}

pub fn decode(b: &[u8]) -> Option<(u16, PeerId)> {
    let rest = b.strip_prefix(MAGIC)?;
    if rest.len() < 3 || rest.len() > 64 {
        return None;
    }
    let port = u16::from_be_bytes([rest[0], rest[1]]);
    let peer = PeerId::from_bytes(&rest[2..]).ok()?;
    (port != 0).then_some((port, peer))
}

/// Not reachable from the internet: private, shared (CGNAT), link-local or documentation
/// ranges. Announcements stay off interfaces with a public address (a router's WAN side).
fn is_local_range(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_private()
        || ip.is_link_local()
        || (o[0] == 100 && (64..128).contains(&o[1]))
        || matches!(
            (o[0], o[1], o[2]),
            (192, 0, 2) | (198, 51, 100) | (203, 0, 113)
        )
}

/// What LAN discovery asks of the application, read afresh each time (a reload may change it).
pub trait LanView: Send + Sync {
    /// A friend: its announcements are worth a dial.
    fn is_known(&self, peer: &PeerId) -> bool;
    /// The mesh subnet (never announced on), if the configured one is valid.
    fn mesh(&self) -> Option<Prefix>;
}

/// IPv4 interface addresses to announce on (LAN ranges only; not loopback, not the mesh).
fn lan_addrs(view: &dyn LanView) -> Vec<Ipv4Addr> {
    let mesh = view.mesh();
    crate::sys::ifaddrs::local_addrs()
        .into_iter()
        .filter_map(|ip| match ip {
            IpAddr::V4(v4) if is_local_range(v4) && !mesh.is_some_and(|m| m.contains(v4)) => {
                Some(v4)
            }
            _ => None,
        })
        .collect()
}

fn socket() -> std::io::Result<std::net::UdpSocket> {
    let sock = crate::sys::sockopt::udp4_bind_reuse(PORT)?;
    sock.set_nonblocking(true)?;
    sock.set_multicast_loop_v4(false)?;
    Ok(sock)
}

/// The announcing and the listening loop, for the caller to spawn and own; logs and gives up
/// quietly (None) if the socket can't be had.
pub fn start(
    host: &Host,
    view: Arc<dyn LanView>,
    quic_port: u16,
) -> Option<[crate::BoxedTask<()>; 2]> {
    let sock = match socket().and_then(tokio::net::UdpSocket::from_std) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            log::warn!("LAN discovery off: UDP {PORT}: {e}");
            return None;
        }
    };
    let me = host.peer_id();
    let announce = encode(quic_port, &me);

    let (s, v) = (sock.clone(), view.clone());
    let announcing = crate::boxed(async move {
        let mut joined: Vec<Ipv4Addr> = Vec::new();
        loop {
            for ip in lan_addrs(&*v) {
                if !joined.contains(&ip) && s.join_multicast_v4(GROUP, ip).is_ok() {
                    joined.push(ip);
                }
                // One copy per interface: set the outgoing interface, then send.
                if set_multicast_if(&s, ip).is_ok() {
                    let _ = s.send_to(&announce, SocketAddrV4::new(GROUP, PORT)).await;
                }
            }
            tokio::time::sleep(INTERVAL).await;
        }
    });

    let host = host.clone();
    let listening = crate::boxed(async move {
        let mut last_dial: HashMap<PeerId, Instant> = HashMap::new();
        let mut buf = [0u8; 128];
        // The dials end with the loop (when its owner stops it).
        let mut dials = tokio::task::JoinSet::new();
        loop {
            while dials.try_join_next().is_some() {}
            let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                continue;
            };
            let Some((port, peer)) = decode(&buf[..n]) else {
                continue;
            };
            let SocketAddr::V4(from) = from else { continue };
            if peer == me || !view.is_known(&peer) || host.is_connected(&peer) {
                continue;
            }
            if last_dial
                .get(&peer)
                .is_some_and(|t| t.elapsed() < DIAL_BACKOFF)
            {
                continue;
            }
            last_dial.insert(peer.clone(), Instant::now());
            last_dial.retain(|_, t| t.elapsed() < DIAL_BACKOFF * 6);
            let addr =
                Multiaddr::quic(SocketAddr::new(IpAddr::V4(*from.ip()), port)).with_p2p(&peer);
            let host = host.clone();
            dials.spawn(crate::boxed(async move {
                match host.dial(&addr).await {
                    Ok(_) => log::info!("found {} on the LAN at {addr}", peer.short()),
                    Err(e) => log::debug!("LAN dial {addr}: {e}"),
                }
            }));
        }
    });
    Some([announcing, listening])
}

fn set_multicast_if(sock: &tokio::net::UdpSocket, ip: Ipv4Addr) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    crate::sys::sockopt::set_multicast_if_v4(sock.as_raw_fd(), ip)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::p2p::identity::Keypair;

    #[test]
    fn only_lan_ranges_are_announced_on() {
        for ip in [
            "192.168.1.1",
            "10.0.0.1",
            "172.20.0.1",
            "100.64.3.4",
            "169.254.1.1",
            "192.0.2.11",
        ] {
            assert!(is_local_range(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "80.211.201.49", "100.128.0.1", "127.0.0.1"] {
            assert!(!is_local_range(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn announcement_round_trips_and_garbage_is_ignored() {
        let id = Keypair::generate().peer_id();
        let b = encode(4363, &id);
        assert_eq!(&b[..6], b"AWL1\x11\x0b");
        assert_eq!(decode(&b), Some((4363, id)));
        assert_eq!(decode(b"AWL1"), None);
        assert_eq!(decode(b"XXXX\x11\x0b\x00\x24"), None);
        let mut zero_port = b.clone();
        zero_port[4] = 0;
        zero_port[5] = 0;
        assert_eq!(decode(&zero_port), None);
        assert_eq!(decode(&[b.as_slice(), &[0u8; 80]].concat()), None);
    }
}

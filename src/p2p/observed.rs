//! Our own addresses as others see them (identify's observed address). They are offered for
//! hole punching and in relay reservations, so one peer's word is not enough: an address
//! counts once a trusted peer (a friend or a bootstrap node we chose) reports it, or peers at
//! `CONFIRMATIONS` different network addresses do. Strangers with many identities from one
//! place confirm nothing. Pure and bounded.

use crate::p2p::multiaddr::Multiaddr;
use std::net::IpAddr;

/// Confirmed addresses kept (newest first).
pub const MAX_CONFIRMED: usize = 8;
/// Unconfirmed candidates kept, and observers remembered per candidate.
pub const MAX_CANDIDATES: usize = 16;
/// Distinct observer networks that confirm an address without a trusted observer.
pub const CONFIRMATIONS: usize = 3;

#[derive(Debug, Default)]
pub struct ObservedAddrs {
    confirmed: Vec<Multiaddr>,
    /// Candidate and the observer networks that reported it (oldest candidate first).
    candidates: Vec<(Multiaddr, Vec<IpAddr>)>,
}

/// The network an observer is counted by: its /24 (IPv4) or /48 (IPv6), so one host or
/// one small subnet with many identities counts once.
fn network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            IpAddr::from([o[0], o[1], o[2], 0])
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::from([s[0], s[1], s[2], 0, 0, 0, 0, 0])
        }
    }
}

impl ObservedAddrs {
    pub fn confirmed(&self) -> &[Multiaddr] {
        &self.confirmed
    }

    /// `addr` as reported by a peer at `observer` (None: not known, e.g. over a relay);
    /// `trusted` for a friend or bootstrap node. True when the confirmed list changed.
    pub fn report(&mut self, addr: Multiaddr, observer: Option<IpAddr>, trusted: bool) -> bool {
        if trusted {
            return self.confirm(addr);
        }
        let Some(net) = observer.map(network) else {
            return false;
        };
        if self.confirmed.contains(&addr) {
            return false;
        }
        let i = match self.candidates.iter().position(|(a, _)| *a == addr) {
            Some(i) => i,
            None => {
                if self.candidates.len() >= MAX_CANDIDATES {
                    self.candidates.remove(0);
                }
                self.candidates.push((addr.clone(), Vec::new()));
                self.candidates.len() - 1
            }
        };
        let seen = &mut self.candidates[i].1;
        if !seen.contains(&net) {
            seen.push(net);
        }
        if seen.len() >= CONFIRMATIONS {
            self.candidates.remove(i);
            return self.confirm(addr);
        }
        false
    }

    fn confirm(&mut self, addr: Multiaddr) -> bool {
        if self.confirmed.first() == Some(&addr) {
            return false;
        }
        self.candidates.retain(|(a, _)| *a != addr);
        self.confirmed.retain(|a| *a != addr);
        self.confirmed.insert(0, addr);
        self.confirmed.truncate(MAX_CONFIRMED);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(port: u16) -> Multiaddr {
        Multiaddr::quic(([203, 0, 113, 5], port).into())
    }

    #[test]
    fn strangers_alone_cannot_fill_the_list() {
        let mut o = ObservedAddrs::default();
        // 100 identities from one network, each reporting a different fake address.
        for port in 1..=100u16 {
            o.report(
                a(port),
                Some(IpAddr::from([198, 51, 100, (port % 250) as u8])),
                false,
            );
        }
        assert!(o.confirmed().is_empty());
        // Three networks agreeing confirm it.
        for net in [1u8, 2, 3] {
            o.report(a(4363), Some(IpAddr::from([192, 0, net, 1])), false);
        }
        assert_eq!(o.confirmed(), &[a(4363)]);
        // A trusted peer's word is enough.
        assert!(o.report(a(5000), None, true));
        assert_eq!(o.confirmed()[0], a(5000));
        assert!(
            !o.report(a(6000), None, false),
            "no observer address: ignored"
        );
    }
}

//! Which of a peer's connections carries its traffic (new streams, datagrams), and which
//! duplicate of a simultaneous dial is closed. Pure: tests drive it with plain facts.
//!
//! When both nodes dial each other at once, each ends up with the same two QUIC connections
//! (ours and theirs, over the same pair of sockets). "The newest" can then name a different
//! connection on each side: each node sends on its own choice, and neither's ACKs can ride on
//! the other's packets, so a request and its reply cost a QUIC ACK-only packet in each
//! direction as well. Of such a pair, the connection dialled by the smaller peer ID wins, on
//! both sides alike, and the other one is closed once its streams had time to finish.

use std::time::{Duration, Instant};

/// Two connections of opposite direction set up within this of each other came from one
/// simultaneous dial (both nodes measure nearly the same times: within a round trip).
pub(super) const SIMULTANEOUS: Duration = Duration::from_secs(5);

/// What the choice needs to know of a connection.
#[derive(Clone, Copy, Debug)]
pub(in crate::p2p) struct Facts {
    pub quic: bool,
    pub tcp: bool,
    /// Dialled by whichever of the two nodes has the smaller peer ID.
    pub by_smaller: bool,
    /// When it was set up here.
    pub since: Instant,
}

/// Whether `by_smaller` holds for a connection we dialled (`outbound`) to `peer` from `local`.
pub(super) fn dialled_by_smaller<T: Ord>(local: &T, peer: &T, outbound: bool) -> bool {
    (local < peer) == outbound
}

fn simultaneous(a: &Facts, b: &Facts) -> bool {
    a.by_smaller != b.by_smaller
        && a.since.max(b.since).duration_since(a.since.min(b.since)) < SIMULTANEOUS
}

/// Index of the connection that carries traffic (the list oldest first): the newest QUIC one
/// (it carries datagrams and has no head-of-line blocking) unless it has a simultaneous twin
/// that the smaller peer ID dialled; else the newest TCP one; else the newest (relayed).
pub(super) fn pick<T>(conns: &[T], facts: impl Fn(&T) -> Facts) -> Option<usize> {
    let newest =
        |want: &dyn Fn(&Facts) -> bool| (0..conns.len()).rev().find(|&i| want(&facts(&conns[i])));
    if let Some(q) = newest(&|f| f.quic) {
        let fq = facts(&conns[q]);
        let twin = (0..conns.len())
            .rev()
            .find(|&i| i != q && facts(&conns[i]).quic && simultaneous(&facts(&conns[i]), &fq));
        return Some(match twin {
            Some(t) if facts(&conns[t]).by_smaller => t,
            _ => q,
        });
    }
    newest(&|f| f.tcp).or_else(|| conns.len().checked_sub(1))
}

/// Indices of the QUIC connections to close because `chosen` is their simultaneous twin.
pub(super) fn duplicates<T>(conns: &[T], chosen: usize, facts: impl Fn(&T) -> Facts) -> Vec<usize> {
    let Some(c) = conns.get(chosen).map(&facts) else {
        return Vec::new();
    };
    (0..conns.len())
        .filter(|&i| i != chosen && facts(&conns[i]).quic && simultaneous(&facts(&conns[i]), &c))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quic(by_smaller: bool, since: Instant) -> Facts {
        Facts {
            quic: true,
            tcp: false,
            by_smaller,
            since,
        }
    }

    /// Both sides of a simultaneous dial pick the same connection whatever order they set the
    /// two up in, and close the same one.
    #[test]
    fn both_sides_of_a_simultaneous_dial_choose_the_same_connection() {
        let t = Instant::now();
        let ms = |n| t + Duration::from_millis(n);
        // The same two connections, X dialled by the smaller ID, Y by the larger, seen by a
        // node that set X up first and by one that set Y up first.
        let (x, y) = (quic(true, ms(0)), quic(false, ms(3)));
        let x_first = [x, y];
        let y_first = [quic(false, ms(0)), quic(true, ms(2))];
        assert_eq!(pick(&x_first, |f| *f), Some(0), "X, though Y is newer");
        assert_eq!(pick(&y_first, |f| *f), Some(1), "X, the newer here");
        assert_eq!(duplicates(&x_first, 0, |f| *f), vec![1]);
        assert_eq!(duplicates(&y_first, 1, |f| *f), vec![0]);
    }

    /// A connection set up long after another one is a new path (a changed address, a
    /// reconnect), not a twin: the newest carries traffic, whoever dialled it, and nothing is
    /// closed for it.
    #[test]
    fn a_later_connection_is_a_new_path_not_a_twin() {
        let t = Instant::now();
        let later = t + SIMULTANEOUS + Duration::from_secs(1);
        let conns = [quic(true, t), quic(false, later)];
        assert_eq!(pick(&conns, |f| *f), Some(1));
        assert!(duplicates(&conns, 1, |f| *f).is_empty());
        // Two of our own dials are never twins either.
        let ours = [quic(true, t), quic(true, t + Duration::from_millis(1))];
        assert_eq!(pick(&ours, |f| *f), Some(1));
        assert!(duplicates(&ours, 1, |f| *f).is_empty());
    }

    #[test]
    fn quic_before_tcp_before_relayed() {
        let t = Instant::now();
        let tcp = Facts {
            quic: false,
            tcp: true,
            by_smaller: true,
            since: t,
        };
        let relayed = Facts { tcp: false, ..tcp };
        assert_eq!(pick(&[tcp, relayed], |f| *f), Some(0));
        assert_eq!(pick(&[relayed, quic(false, t), tcp], |f| *f), Some(1));
        assert_eq!(pick(&[relayed], |f| *f), Some(0));
        assert_eq!(pick::<Facts>(&[], |f| *f), None);
        assert!(dialled_by_smaller(&1, &2, true));
        assert!(!dialled_by_smaller(&1, &2, false));
        assert!(dialled_by_smaller(&2, &1, false));
    }
}

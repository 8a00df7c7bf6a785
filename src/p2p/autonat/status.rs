//! Whether we are reachable from outside, from the answers of peers that dialled us back.
//! Pure: the driver feeds answers and asks when to probe next.
//!
//! The latest answer of each of the last `WINDOW` peers counts: `CONFIDENCE` successes from
//! distinct peers make us `Public`, as many failures `Private`, anything else `Unknown`.
//! Answers that say nothing about us (the server's own trouble, a broken stream) are ignored.

use crate::p2p::identity::PeerId;
use std::time::{Duration, Instant};

pub const CONFIDENCE: usize = 3;
/// Peers whose latest answer is kept.
const WINDOW: usize = 5;
/// Time between probes once settled; after our observed addresses changed or while unsure.
pub const REPROBE: Duration = Duration::from_secs(15 * 60);
pub const AFTER_CHANGE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reachability {
    #[default]
    Unknown,
    Public,
    Private,
}

impl Reachability {
    pub fn as_str(self) -> &'static str {
        match self {
            Reachability::Unknown => "unknown",
            Reachability::Public => "public",
            Reachability::Private => "private",
        }
    }
}

/// One server's verdict on a dial-back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// It reached us.
    Reached,
    /// It tried and failed, or refused to try.
    Failed,
}

pub struct Status {
    /// Latest answer per peer, oldest first.
    answers: Vec<(PeerId, Answer)>,
    current: Reachability,
    next_probe: Instant,
}

impl Status {
    /// The first probe is due at `first`.
    pub fn new(first: Instant) -> Self {
        Status {
            answers: Vec::new(),
            current: Reachability::Unknown,
            next_probe: first,
        }
    }

    pub fn reachability(&self) -> Reachability {
        self.current
    }

    /// Records `peer`'s answer; returns the new reachability when it changed.
    pub fn record(&mut self, peer: &PeerId, answer: Answer) -> Option<Reachability> {
        self.answers.retain(|(p, _)| p != peer);
        self.answers.push((peer.clone(), answer));
        if self.answers.len() > WINDOW {
            self.answers.remove(0);
        }
        let count = |a| self.answers.iter().filter(|(_, x)| *x == a).count();
        let new = if count(Answer::Reached) >= CONFIDENCE {
            Reachability::Public
        } else if count(Answer::Failed) >= CONFIDENCE {
            Reachability::Private
        } else {
            Reachability::Unknown
        };
        (new != std::mem::replace(&mut self.current, new)).then_some(new)
    }

    pub fn due(&self, now: Instant) -> bool {
        now >= self.next_probe
    }

    /// A probe round ran at `now`. Settled, the next is a re-probe much later; unsure (too
    /// few answers yet, e.g. servers still connecting), soon.
    pub fn probed(&mut self, now: Instant) {
        self.next_probe = now
            + match self.current {
                Reachability::Unknown => AFTER_CHANGE,
                _ => REPROBE,
            };
    }

    /// Our observed addresses changed: probe again soon.
    pub fn addrs_changed(&mut self, now: Instant) {
        self.next_probe = self.next_probe.min(now + AFTER_CHANGE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::p2p::identity::Keypair;

    fn peers(n: usize) -> Vec<PeerId> {
        (0..n).map(|_| Keypair::generate().peer_id()).collect()
    }

    #[test]
    fn three_distinct_successes_make_public() {
        let p = peers(3);
        let mut s = Status::new(Instant::now());
        assert_eq!(s.record(&p[0], Answer::Reached), None);
        // The same peer twice is one voice.
        assert_eq!(s.record(&p[0], Answer::Reached), None);
        assert_eq!(s.record(&p[1], Answer::Reached), None);
        assert_eq!(s.reachability(), Reachability::Unknown);
        assert_eq!(s.record(&p[2], Answer::Reached), Some(Reachability::Public));
        assert_eq!(s.reachability().as_str(), "public");
    }

    #[test]
    fn three_failures_make_private_and_mixed_is_unknown() {
        let p = peers(4);
        let mut s = Status::new(Instant::now());
        s.record(&p[0], Answer::Failed);
        s.record(&p[1], Answer::Failed);
        assert_eq!(s.record(&p[2], Answer::Failed), Some(Reachability::Private));
        // One peer changing its mind leaves two failures: no longer sure.
        assert_eq!(
            s.record(&p[2], Answer::Reached),
            Some(Reachability::Unknown)
        );
        assert_eq!(s.record(&p[3], Answer::Failed), Some(Reachability::Private));
    }

    #[test]
    fn old_answers_fall_out_of_the_window() {
        let p = peers(8);
        let mut s = Status::new(Instant::now());
        for q in &p[..3] {
            s.record(q, Answer::Reached);
        }
        assert_eq!(s.reachability(), Reachability::Public);
        for q in &p[3..6] {
            s.record(q, Answer::Failed);
        }
        // Window of 5: two successes and three failures left.
        assert_eq!(s.reachability(), Reachability::Private);
    }

    #[test]
    fn schedules_reprobes_and_hurries_after_a_change() {
        let t = Instant::now();
        let mut s = Status::new(t);
        assert!(s.due(t));
        s.probed(t);
        assert!(s.due(t + AFTER_CHANGE), "unsure: again soon");
        for p in peers(3) {
            s.record(&p, Answer::Reached);
        }
        s.probed(t);
        assert!(!s.due(t + REPROBE - Duration::from_secs(1)));
        assert!(s.due(t + REPROBE));
        s.addrs_changed(t);
        assert!(!s.due(t + Duration::from_secs(59)));
        assert!(s.due(t + AFTER_CHANGE));
    }
}

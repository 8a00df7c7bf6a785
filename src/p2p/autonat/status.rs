//! Whether we are reachable from outside, from the answers of peers that dialled us back,
//! and whom to ask when. Pure: the driver offers the eligible servers at each tick, asks the
//! ones picked and feeds their answers.
//!
//! The latest answer of each of the last `WINDOW` peers counts: `CONFIDENCE` successes from
//! distinct peers make us `Public`, as many failures `Private`, anything else `Unknown`.
//! Answers that say nothing about us (the server's own trouble, a broken stream) are ignored.
//!
//! Every dial-back costs both sides a full QUIC handshake, so a peer once asked is not asked
//! again for `REPROBE`, whatever it answered, unless our observed addresses changed. Settled,
//! a round runs every `REPROBE`; unsure, a server not asked within `REPROBE` is asked at once
//! (it just connected, or was still connecting at the first round), and with fewer than
//! `CONFIDENCE` servers nothing more happens until `REPROBE`.

use crate::p2p::identity::PeerId;
use std::time::{Duration, Instant};

pub const CONFIDENCE: usize = 3;
/// Peers whose latest answer is kept.
const WINDOW: usize = 5;
/// Peers remembered as asked; the oldest is forgotten first. Servers are trusted peers, so
/// this bounds a list that configuration already bounds.
const ASKED: usize = 64;
/// Time between probes once settled, and before a peer is asked again.
pub const REPROBE: Duration = Duration::from_secs(15 * 60);
/// After our observed addresses changed: everyone may be asked again this much later.
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
    /// Peers asked, least recently asked first, with when they may be asked again.
    asked: Vec<(PeerId, Instant)>,
    current: Reachability,
    /// The next round; while unsure, any tick after the first round.
    next_probe: Instant,
}

impl Status {
    /// The first probe is due at `first`.
    pub fn new(first: Instant) -> Self {
        Status {
            answers: Vec::new(),
            asked: Vec::new(),
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

    /// Whether a round may run at `now` (whether `pick` may pick anyone).
    pub fn due(&self, now: Instant) -> bool {
        now >= self.next_probe
    }

    /// Up to `max` of the eligible `servers` to ask at `now`, never asked or asked longest ago
    /// first, none asked within `REPROBE` (or since the last address change); they count as
    /// asked from now on, whatever they will answer.
    pub fn pick(&mut self, now: Instant, servers: &[PeerId], max: usize) -> Vec<PeerId> {
        if !self.due(now) {
            return Vec::new();
        }
        // Each server's place in `asked` (None: never asked), looked up once.
        let mut free: Vec<(Option<usize>, &PeerId)> = servers
            .iter()
            .map(|p| (self.asked.iter().position(|(q, _)| q == p), p))
            .filter(|(i, _)| i.is_none_or(|i| self.asked[i].1 <= now))
            .collect();
        free.sort_by_key(|(i, _)| *i);
        let mut out: Vec<PeerId> = Vec::new();
        for (_, p) in free {
            if out.len() < max && !out.contains(p) {
                out.push(p.clone());
            }
        }
        for p in &out {
            self.asked.retain(|(q, _)| q != p);
            self.asked.push((p.clone(), now + REPROBE));
        }
        let over = self.asked.len().saturating_sub(ASKED);
        self.asked.drain(..over);
        out
    }

    /// A round ran at `now`. Settled, the next is a re-probe much later; unsure, every tick
    /// may ask a server not asked yet.
    pub fn probed(&mut self, now: Instant) {
        self.next_probe = match self.current {
            Reachability::Unknown => now,
            _ => now + REPROBE,
        };
    }

    /// Our observed addresses changed: probe again soon, and everyone may be asked again.
    pub fn addrs_changed(&mut self, now: Instant) {
        let soon = now + AFTER_CHANGE;
        self.next_probe = self.next_probe.min(soon);
        for (_, again) in &mut self.asked {
            *again = (*again).min(soon);
        }
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

    const SEC: Duration = Duration::from_secs(1);

    /// One tick of the driver: pick, every one picked answers `answer`, the round ends.
    fn round(s: &mut Status, now: Instant, servers: &[PeerId], answer: Answer) -> Vec<PeerId> {
        let asked = s.pick(now, servers, 3);
        for p in &asked {
            s.record(p, answer);
        }
        s.probed(now);
        asked
    }

    #[test]
    fn nothing_before_the_first_round() {
        let t = Instant::now();
        let p = peers(1);
        let mut s = Status::new(t + 20 * SEC);
        assert!(!s.due(t + 10 * SEC));
        assert!(s.pick(t + 10 * SEC, &p, 3).is_empty());
        assert_eq!(s.pick(t + 20 * SEC, &p, 3), p);
    }

    #[test]
    fn one_friend_only_is_asked_once_then_after_reprobe() {
        let t = Instant::now();
        let f = peers(1);
        let mut s = Status::new(t);
        assert_eq!(round(&mut s, t, &f, Answer::Reached), f);
        assert_eq!(
            s.reachability(),
            Reachability::Unknown,
            "one voice is not enough"
        );
        // Unsure, yet the friend is not asked every tick, nor after a minute.
        for k in 1..90 {
            let now = t + 10 * k * SEC;
            assert!(
                round(&mut s, now, &f, Answer::Reached).is_empty(),
                "asked at {k}0 s"
            );
        }
        assert!(round(&mut s, t + REPROBE - SEC, &f, Answer::Reached).is_empty());
        assert_eq!(round(&mut s, t + REPROBE, &f, Answer::Reached), f);
        assert!(round(&mut s, t + REPROBE + AFTER_CHANGE, &f, Answer::Reached).is_empty());
    }

    #[test]
    fn a_server_that_fails_to_answer_counts_as_asked() {
        let t = Instant::now();
        let p = peers(2);
        let mut s = Status::new(t);
        // Nothing recorded: the answers said nothing about us.
        assert_eq!(s.pick(t, &p, 3), p);
        s.probed(t);
        assert!(s.pick(t + 10 * SEC, &p, 3).is_empty());
        assert!(s.pick(t + AFTER_CHANGE, &p, 3).is_empty());
    }

    #[test]
    fn a_server_that_connects_later_is_asked_at_once_while_unknown() {
        let t = Instant::now();
        let p = peers(3);
        let mut s = Status::new(t);
        assert_eq!(round(&mut s, t, &p[..2], Answer::Reached), &p[..2]);
        assert!(round(&mut s, t + 10 * SEC, &p[..2], Answer::Reached).is_empty());
        // The third connects: asked at the next tick, not a minute later.
        assert_eq!(round(&mut s, t + 20 * SEC, &p, Answer::Reached), &p[2..]);
        assert_eq!(s.reachability(), Reachability::Public);
    }

    #[test]
    fn settled_a_new_server_waits_for_the_reprobe() {
        let t = Instant::now();
        let p = peers(4);
        let mut s = Status::new(t);
        round(&mut s, t, &p[..3], Answer::Reached);
        assert_eq!(s.reachability(), Reachability::Public);
        assert!(!s.due(t + 10 * SEC));
        assert!(s.pick(t + 10 * SEC, &p, 3).is_empty());
        assert!(s.pick(t + REPROBE - SEC, &p, 3).is_empty());
        // The one never asked first, then those asked longest ago.
        assert_eq!(s.pick(t + REPROBE, &p, 3), [&p[3..], &p[..2]].concat());
    }

    #[test]
    fn more_servers_than_a_round_are_asked_in_turn() {
        let t = Instant::now();
        let p = peers(5);
        let mut s = Status::new(t);
        assert_eq!(round(&mut s, t, &p, Answer::Failed), &p[..3]);
        assert_eq!(s.reachability(), Reachability::Private);
        // Next time those not asked last time come first.
        assert_eq!(
            round(&mut s, t + REPROBE, &p, Answer::Failed),
            [&p[3..], &p[..1]].concat()
        );
    }

    #[test]
    fn an_address_change_allows_asking_everyone_again() {
        let t = Instant::now();
        let p = peers(2);
        let mut s = Status::new(t);
        round(&mut s, t, &p, Answer::Reached);
        s.addrs_changed(t + 5 * 60 * SEC);
        let changed = t + 5 * 60 * SEC;
        assert!(round(&mut s, changed + AFTER_CHANGE - SEC, &p, Answer::Reached).is_empty());
        assert_eq!(
            round(&mut s, changed + AFTER_CHANGE, &p, Answer::Reached),
            p
        );
    }

    #[test]
    fn settled_reprobes_and_hurries_after_a_change() {
        let t = Instant::now();
        let p = peers(3);
        let mut s = Status::new(t);
        round(&mut s, t, &p, Answer::Reached);
        assert!(!s.due(t + REPROBE - SEC));
        assert!(s.due(t + REPROBE));
        s.addrs_changed(t);
        assert!(!s.due(t + AFTER_CHANGE - SEC));
        assert!(s.due(t + AFTER_CHANGE));
        assert_eq!(s.pick(t + AFTER_CHANGE, &p, 3), p);
    }

    #[test]
    fn the_asked_table_is_capped() {
        let t = Instant::now();
        let p = peers(ASKED + 1);
        let mut s = Status::new(t);
        for (i, q) in p.iter().enumerate() {
            let one = std::slice::from_ref(q);
            assert_eq!(s.pick(t + i as u32 * SEC, one, 3), one);
        }
        assert_eq!(s.asked.len(), ASKED);
        // The oldest was forgotten: it may be asked again; the others may not.
        let later = t + 2 * ASKED as u32 * SEC;
        assert!(s.pick(later, &p[1..], 3).is_empty());
        assert_eq!(s.pick(later, &p, 3), &p[..1]);
    }
}

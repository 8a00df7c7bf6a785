//! Noticing a dead path in seconds instead of at the idle timeout. A peer that restarts
//! without resetting our old QUIC connection (rust-libp2p does not derive its stateless-reset
//! key from the identity, as awl and go-libp2p do) leaves us sending into a connection nobody
//! reads until the 30 s idle timeout. While we keep sending and hear nothing back for
//! `SILENCE`, the host probes the connection with a ping and closes it if that fails; the node
//! redials at once on the disconnect. `Liveness` is pure; `Host::watch_path` feeds it quinn's
//! datagram counters.

use crate::p2p::host::Link;
use crate::p2p::identity::PeerId;
use crate::p2p::Host;
use std::time::{Duration, Instant};

/// How long we may send without hearing anything before the path is probed.
pub const SILENCE: Duration = Duration::from_secs(2);
/// Datagrams sent since the last one received before silence counts: a lone ACK or
/// keep-alive that nobody answers (a quiet connection) is not a dead path.
pub const SENT_WITHOUT_REPLY: u64 = 3;
/// The probe's own timeout: a dead path is closed within SILENCE + TICK + PROBE_TIMEOUT
/// (4 s) of the last reply while we send.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(1500);
/// How often the counters are read while we send.
pub const TICK: Duration = Duration::from_millis(500);
/// How often once nothing was sent for `QUIET_READS` reads in a row (2 s): an idle router
/// wakes a quarter as often. Traffic that resumes into a dead path after a quiet spell is
/// then noticed within `QUIET_TICK` + `TICK` of its start, and closed within 4 s of it.
pub const QUIET_TICK: Duration = SILENCE;
pub const QUIET_READS: u32 = 4;

#[derive(Debug, Clone)]
pub struct Liveness {
    tx: u64,
    rx: u64,
    /// Datagrams sent since the last datagram received.
    sent_since_rx: u64,
    /// The earliest the last reply can have come: silence is never counted short.
    heard_at: Instant,
    /// The last read.
    read_at: Instant,
    /// Reads in a row that saw nothing sent.
    quiet_reads: u32,
}

impl Liveness {
    pub fn new(now: Instant, tx: u64, rx: u64) -> Self {
        Liveness {
            tx,
            rx,
            sent_since_rx: 0,
            heard_at: now,
            read_at: now,
            quiet_reads: 0,
        }
    }

    /// When to read the counters next.
    pub fn tick(&self) -> Duration {
        match self.quiet_reads >= QUIET_READS {
            true => QUIET_TICK,
            false => TICK,
        }
    }

    /// Takes the connection's total datagrams sent and received; true when the path should
    /// be probed (we keep sending and hear nothing).
    pub fn observe(&mut self, now: Instant, tx: u64, rx: u64) -> bool {
        let last_read = std::mem::replace(&mut self.read_at, now);
        self.quiet_reads = match tx == self.tx {
            true => self.quiet_reads.saturating_add(1),
            false => 0,
        };
        if rx != self.rx {
            self.rx = rx;
            self.tx = tx;
            self.sent_since_rx = 0;
            // Something came after the last read, maybe just after it (a read can be
            // QUIET_TICK ago).
            self.heard_at = last_read;
            return false;
        }
        self.sent_since_rx += tx.saturating_sub(self.tx);
        self.tx = tx;
        self.sent_since_rx >= SENT_WITHOUT_REPLY && now.duration_since(self.heard_at) >= SILENCE
    }

    /// A probe was answered: the path lives.
    pub fn heard(&mut self, now: Instant) {
        self.sent_since_rx = 0;
        self.heard_at = now;
    }
}

impl Host {
    /// Closes a direct connection whose path died (we send, nothing comes back, a ping on it
    /// fails): the disconnect makes the node redial at once instead of after the idle timeout.
    pub(in crate::p2p) async fn watch_path(&self, peer: PeerId, link: Link) {
        let Link::Quic(conn) = &link else { return };
        // QUIC's datagrams and the fast path's packets on this connection.
        let counters = |c: &quinn::Connection| {
            let s = c.stats();
            let (fast_tx, fast_rx) = self.0.fast.counts(c.stable_id());
            (s.udp_tx.datagrams + fast_tx, s.udp_rx.datagrams + fast_rx)
        };
        let (tx, rx) = counters(conn);
        let mut live = Liveness::new(Instant::now(), tx, rx);
        loop {
            tokio::time::sleep(live.tick()).await;
            if conn.close_reason().is_some() {
                return;
            }
            let (tx, rx) = counters(conn);
            if !live.observe(Instant::now(), tx, rx) {
                continue;
            }
            let answered = tokio::time::timeout(PROBE_TIMEOUT, link.ping()).await;
            if matches!(answered, Ok(Ok(()))) {
                live.heard(Instant::now());
                continue;
            }
            log::info!(
                "path to {} is dead (sending, nothing back, ping unanswered): closing it",
                peer.short()
            );
            link.close(b"path dead");
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traffic_into_silence_is_noticed_and_a_quiet_connection_is_not() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut l = Liveness::new(t0, 100, 100);
        // Normal traffic: replies keep coming.
        for i in 1..20u64 {
            assert!(!l.observe(at(i * 500), 100 + i * 10, 100 + i * 8));
        }
        // Quiet: one last ACK from us, nothing more, for a minute.
        let (tx, rx) = (100 + 19 * 10 + 1, 100 + 19 * 8);
        for i in 20..140u64 {
            assert!(
                !l.observe(at(i * 500), tx, rx),
                "a quiet connection is not dead"
            );
        }
        // Traffic again, into a dead path: noticed once SILENCE has passed since the last reply.
        let mut noticed = None;
        for i in 140..160u64 {
            if l.observe(at(i * 500), tx + (i - 139) * 5, rx) {
                noticed = Some(i * 500);
                break;
            }
        }
        assert_eq!(
            noticed,
            Some(140 * 500),
            "silence since the last reply was long over"
        );
        l.heard(at(140 * 500));
        assert!(!l.observe(at(141 * 500), tx + 200, rx));
        // Sending into silence from a fresh start: after SILENCE, not before.
        let mut l = Liveness::new(t0, 0, 0);
        assert!(!l.observe(at(1000), 10, 0));
        assert!(!l.observe(at(1500), 20, 0));
        assert!(l.observe(at(2000), 30, 0));
    }

    /// Reads the counters on the schedule `tick` gives, as `watch_path` does, for ten
    /// minutes; `tx` and `rx` give the counters at a time. Returns when the path was first
    /// found dead.
    fn first_alarm(tx: impl Fn(Duration) -> u64, rx: impl Fn(Duration) -> u64) -> Option<Duration> {
        let t0 = Instant::now();
        let mut l = Liveness::new(t0, 0, 0);
        let mut t = Duration::ZERO;
        while t < Duration::from_secs(600) {
            t += l.tick();
            if l.observe(t0 + t, tx(t), rx(t)) {
                return Some(t);
            }
        }
        None
    }

    const fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    /// Datagrams sent every `every` from `from` until `until`.
    fn flow(t: Duration, from: Duration, until: Duration, every: Duration) -> u64 {
        if t < from {
            return 0;
        }
        ((t.min(until) - from).as_millis() / every.as_millis()) as u64 + 1
    }

    #[test]
    fn an_idle_connection_is_read_a_quarter_as_often() {
        let now = Instant::now();
        let mut l = Liveness::new(now, 5, 5);
        let mut reads = 0;
        while l.tick() == TICK {
            l.observe(now, 5, 6);
            reads += 1;
        }
        assert_eq!(
            reads, QUIET_READS,
            "nothing sent for 2 s: the slow schedule"
        );
        l.observe(now, 6, 6);
        assert_eq!(l.tick(), TICK, "sending again: the fast one at once");
        assert!(QUIET_TICK > TICK && QUIET_TICK <= SILENCE);
    }

    #[test]
    fn a_dead_path_is_noticed_as_soon_on_the_slow_schedule() {
        let never = ms(u64::MAX / 4);
        // Quiet, the peer's keep-alives every 15 s, the last at `last`; from `start` we send
        // 10 datagrams a second into the dead path. Noticed within QUIET_TICK + TICK of the
        // start (SILENCE + TICK of the last reply when that is later).
        for phase in (0..15_000).step_by(250) {
            let last = ms(30_000 + phase);
            for lag in (0..4_000).step_by(100) {
                let start = last + ms(lag);
                let at = first_alarm(
                    |t| flow(t, start, never, ms(100)),
                    |t| flow(t, ms(phase), last, ms(15_000)),
                );
                let bound = (start + QUIET_TICK).max(last + SILENCE) + TICK;
                assert!(
                    at.is_some_and(|at| at > start && at <= bound),
                    "last reply {last:?}, sending from {start:?}: {at:?}, bound {bound:?}"
                );
            }
        }
        // Busy: a ping a second both ways (slower than QUIET_READS reads), then the replies
        // stop at `last`: within SILENCE + TICK of the last reply.
        for end in (10_000..11_000).step_by(50) {
            let last = ms(end);
            let at = first_alarm(
                |t| flow(t, ms(0), never, ms(1_000)),
                |t| flow(t, ms(10), last, ms(1_000)),
            );
            let reply = ms(10 + (end - 10) / 1_000 * 1_000);
            let bound = reply + SILENCE + TICK + TICK;
            assert!(
                at.is_some_and(|at| at > reply + SILENCE - TICK && at <= bound),
                "replies until {last:?}: {at:?}, bound {bound:?}"
            );
        }
        // The same flow with its replies: never an alarm.
        let healthy = first_alarm(
            |t| flow(t, ms(0), never, ms(1_000)),
            |t| flow(t, ms(10), never, ms(1_000)),
        );
        assert_eq!(healthy, None);
    }
}

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
/// (4 s) of the last reply.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(1500);
/// How often the counters are read while we send.
pub const TICK: Duration = Duration::from_millis(500);
/// How often while nothing was sent since the last read: an idle router wakes a quarter as
/// often. Traffic that resumes into a dead path after a quiet spell is then noticed at the
/// first read after it, within `QUIET_TICK` (not `TICK`), and closed within 3.5 s.
pub const QUIET_TICK: Duration = SILENCE;

#[derive(Debug, Clone)]
pub struct Liveness {
    tx: u64,
    rx: u64,
    /// Datagrams sent since the last datagram received.
    sent_since_rx: u64,
    heard_at: Instant,
    /// Whether the last read saw datagrams sent.
    sending: bool,
}

impl Liveness {
    pub fn new(now: Instant, tx: u64, rx: u64) -> Self {
        Liveness {
            tx,
            rx,
            sent_since_rx: 0,
            heard_at: now,
            sending: false,
        }
    }

    /// When to read the counters next.
    pub fn tick(&self) -> Duration {
        if self.sending {
            TICK
        } else {
            QUIET_TICK
        }
    }

    /// Takes the connection's total datagrams sent and received; true when the path should
    /// be probed (we keep sending and hear nothing).
    pub fn observe(&mut self, now: Instant, tx: u64, rx: u64) -> bool {
        self.sending = tx != self.tx;
        if rx != self.rx {
            self.rx = rx;
            self.tx = tx;
            self.sent_since_rx = 0;
            self.heard_at = now;
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
        let counters = |c: &quinn::Connection| {
            let s = c.stats();
            (s.udp_tx.datagrams, s.udp_rx.datagrams)
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

    /// Reads the counters the way `watch_path` does, on the schedule `tick` gives, while
    /// the peer answered until `heard_until` and we send 10 datagrams a second from
    /// `send_from`; returns when the path was found dead.
    fn noticed_at(heard_until: Duration, send_from: Duration) -> Duration {
        let t0 = Instant::now();
        let mut l = Liveness::new(t0, 0, 0);
        let mut t = Duration::ZERO;
        while t < Duration::from_secs(600) {
            t += l.tick();
            let rx = t.min(heard_until).as_secs() / 15; // the peer's keep-alives
            let tx = t.saturating_sub(send_from).as_millis() as u64 / 100;
            if l.observe(t0 + t, tx, rx) {
                return t;
            }
        }
        panic!("never noticed")
    }

    #[test]
    fn an_idle_connection_is_read_less_often_and_a_dead_path_is_still_noticed_in_time() {
        let mut l = Liveness::new(Instant::now(), 5, 5);
        let now = Instant::now();
        l.observe(now, 5, 6);
        assert_eq!(l.tick(), QUIET_TICK, "nothing sent: the slow schedule");
        l.observe(now, 6, 7);
        assert_eq!(l.tick(), TICK, "sending: the fast one");
        assert!(QUIET_TICK > TICK && QUIET_TICK <= SILENCE);
        // A quiet spell, then traffic into a path that died: whenever it dies and the
        // traffic starts, it is noticed within SILENCE + TICK of the last reply, as when the
        // counters were read every TICK, or within QUIET_TICK of the traffic, whichever is
        // later (plus a TICK: the keep-alive is heard at the read after it).
        for heard in (30_000..32_000).step_by(100) {
            for start in (0..3_000).step_by(100) {
                let heard = Duration::from_millis(heard);
                let send_from = heard + Duration::from_millis(start);
                let at = noticed_at(heard, send_from);
                let bound = (send_from + QUIET_TICK).max(heard + SILENCE + TICK) + TICK;
                assert!(at > send_from, "not before the traffic");
                assert!(
                    at <= bound,
                    "heard until {heard:?}, sending from {send_from:?}: noticed at {at:?}"
                );
            }
        }
    }
}

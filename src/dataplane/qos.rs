//! Per-peer queueing: interactive packets go ahead of bulk ones, and the bulk queue keeps its
//! delay bounded with CoDel (RFC 8289) instead of filling up.
//!
//! `classify` and `Codel` are pure (time comes in as an argument) so they are tested without I/O;
//! `PeerQueue` wires them to two bounded tokio channels.

use super::pool::PacketBuf;
use crate::mesh::tunnel::GatewayDir;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Packets of the interactive class waiting per peer; they are small and rare, so few suffice.
pub const INTERACTIVE_QUEUE: usize = 64;
/// After this many interactive packets in a row, one bulk packet goes (no starvation).
const INTERACTIVE_BURST: u32 = 32;
/// Packets this small are ACKs, handshakes, games and VoIP: interactive.
const SMALL_PACKET: usize = 128;

/// CoDel's acceptable standing queue delay and its observation window (RFC 8289 defaults).
const TARGET: Duration = Duration::from_millis(5);
const INTERVAL: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Interactive,
    Bulk,
}

/// The class of an IPv4 packet: DSCP EF/VA/CS6/CS7, ICMP, DNS and small packets are
/// interactive; everything else is bulk.
pub fn classify(pkt: &[u8]) -> Class {
    if pkt.len() <= SMALL_PACKET || pkt.len() < 20 {
        return Class::Interactive;
    }
    let dscp = pkt[1] >> 2;
    // EF (46), VOICE-ADMIT (44), CS6 (48), CS7 (56): network control and real-time.
    if matches!(dscp, 44 | 46 | 48 | 56) {
        return Class::Interactive;
    }
    let proto = pkt[9];
    if proto == 1 {
        return Class::Interactive;
    }
    let ihl = usize::from(pkt[0] & 0x0f) * 4;
    let first_fragment = u16::from_be_bytes([pkt[6], pkt[7]]) & 0x1fff == 0;
    if (proto == 6 || proto == 17) && first_fragment && pkt.len() >= ihl + 4 {
        let sport = u16::from_be_bytes([pkt[ihl], pkt[ihl + 1]]);
        let dport = u16::from_be_bytes([pkt[ihl + 2], pkt[ihl + 3]]);
        if sport == 53 || dport == 53 {
            return Class::Interactive;
        }
    }
    Class::Bulk
}

/// CoDel's dequeue-side state: decides, from how long the packet at the head waited, whether to
/// drop it. Drops start once the delay stayed above `TARGET` for an `INTERVAL`, and then come
/// closer together (interval / √count) until the delay falls below the target again.
#[derive(Debug, Default)]
pub struct Codel {
    /// When the delay first stayed above target (plus one interval): the earliest first drop.
    first_above: Option<Instant>,
    dropping: bool,
    drop_next: Option<Instant>,
    count: u32,
    last_count: u32,
}

impl Codel {
    /// Whether to drop a packet that waited `sojourn` and is dequeued at `now`.
    pub fn should_drop(&mut self, sojourn: Duration, now: Instant, queue_empty: bool) -> bool {
        let ok_to_drop = self.above_target(sojourn, now, queue_empty);
        if self.dropping {
            if !ok_to_drop {
                self.dropping = false;
                return false;
            }
            if self.drop_next.is_some_and(|t| now >= t) {
                self.count = self.count.saturating_add(1);
                self.drop_next = Some(self.control_law(now));
                return true;
            }
            return false;
        }
        if ok_to_drop {
            self.dropping = true;
            // Start near the previous drop rate if we were dropping recently.
            let recent = self
                .drop_next
                .is_some_and(|t| now.saturating_duration_since(t) < INTERVAL * 16);
            let delta = self.count.saturating_sub(self.last_count);
            self.count = if recent && delta > 1 { delta } else { 1 };
            self.last_count = self.count;
            self.drop_next = Some(self.control_law(now));
            return true;
        }
        false
    }

    /// The queue ran empty: the standing delay is gone, and so is the dropping state.
    pub fn queue_emptied(&mut self) {
        self.first_above = None;
        self.dropping = false;
    }

    fn above_target(&mut self, sojourn: Duration, now: Instant, queue_empty: bool) -> bool {
        if sojourn < TARGET || queue_empty {
            self.first_above = None;
            return false;
        }
        match self.first_above {
            None => {
                self.first_above = Some(now + INTERVAL);
                false
            }
            Some(t) => now >= t,
        }
    }

    fn control_law(&self, now: Instant) -> Instant {
        let div = f64::from(self.count.max(1)).sqrt();
        now + INTERVAL.div_f64(div)
    }
}

/// A packet waiting for its peer's sender task.
pub struct Queued {
    pub pkt: PacketBuf,
    pub dir: GatewayDir,
    pub at: Instant,
}

/// The producer side, kept by the data plane per peer.
#[derive(Clone)]
pub struct QueueTx {
    interactive: mpsc::Sender<Queued>,
    bulk: mpsc::Sender<Queued>,
    /// The sender task holds packets it took (between `recv` and `done`).
    busy: Arc<AtomicBool>,
}

impl QueueTx {
    /// Queues a packet in its class; gives it back when that queue is full.
    pub fn push(&self, pkt: PacketBuf, dir: GatewayDir) -> Result<(), PacketBuf> {
        let q = match classify(pkt.data()) {
            Class::Interactive => &self.interactive,
            Class::Bulk => &self.bulk,
        };
        q.try_send(Queued {
            pkt,
            dir,
            at: Instant::now(),
        })
        .map_err(|e| match e {
            mpsc::error::TrySendError::Full(q) | mpsc::error::TrySendError::Closed(q) => q.pkt,
        })
    }

    pub fn is_closed(&self) -> bool {
        self.bulk.is_closed()
    }

    /// Nothing queued and nothing taken but not yet sent: a packet sent around the queue now
    /// cannot overtake one sent through it.
    pub fn is_idle(&self) -> bool {
        !self.busy.load(Ordering::Relaxed)
            && self.interactive.capacity() == self.interactive.max_capacity()
            && self.bulk.capacity() == self.bulk.max_capacity()
    }
}

/// The consumer side, owned by the peer's sender task.
pub struct QueueRx {
    interactive: mpsc::Receiver<Queued>,
    bulk: mpsc::Receiver<Queued>,
    codel: Codel,
    burst: u32,
    /// Bulk packets CoDel dropped since the last `take_dropped`.
    dropped: u64,
    busy: Arc<AtomicBool>,
}

/// A per-peer queue pair: `bulk` packets of bulk traffic at most.
pub fn peer_queue(bulk: usize) -> (QueueTx, QueueRx) {
    let (itx, irx) = mpsc::channel(INTERACTIVE_QUEUE);
    let (btx, brx) = mpsc::channel(bulk.max(1));
    let busy = Arc::new(AtomicBool::new(false));
    (
        QueueTx {
            interactive: itx,
            bulk: btx,
            busy: busy.clone(),
        },
        QueueRx {
            interactive: irx,
            bulk: brx,
            codel: Codel::default(),
            burst: 0,
            dropped: 0,
            busy,
        },
    )
}

impl QueueRx {
    /// Waits for the next packet; `None` when every producer is gone and the queues are empty.
    /// The queue counts as busy from a packet taken until `done`.
    pub async fn recv(&mut self) -> Option<Queued> {
        let q = self.recv_inner().await;
        self.busy.store(q.is_some(), Ordering::Relaxed);
        q
    }

    /// Every packet taken so far has been handed on.
    pub fn done(&self) {
        self.busy.store(false, Ordering::Relaxed);
    }

    async fn recv_inner(&mut self) -> Option<Queued> {
        if let Some(q) = self.try_recv() {
            return Some(q);
        }
        tokio::select! {
            biased;
            Some(q) = self.interactive.recv() => Some(q),
            q = self.bulk.recv() => {
                // The queue was empty a moment ago: this one did not wait.
                self.codel.queue_emptied();
                q
            }
        }
    }

    /// The next packet if one is waiting: interactive first (a bulk one after a long burst),
    /// bulk ones through CoDel.
    pub fn try_recv(&mut self) -> Option<Queued> {
        if self.burst < INTERACTIVE_BURST {
            if let Ok(q) = self.interactive.try_recv() {
                self.burst += 1;
                return Some(q);
            }
        }
        self.burst = 0;
        loop {
            let Ok(q) = self.bulk.try_recv() else {
                return self.interactive.try_recv().ok();
            };
            let now = Instant::now();
            let sojourn = now.saturating_duration_since(q.at);
            if self.codel.should_drop(sojourn, now, self.bulk.is_empty()) {
                self.dropped += 1;
                continue;
            }
            return Some(q);
        }
    }

    /// Bulk packets dropped by CoDel since the last call.
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::pool::PacketPool;

    fn ipv4(len: usize, proto: u8, dscp: u8, sport: u16, dport: u16) -> Vec<u8> {
        let mut p = vec![0u8; len];
        p[0] = 0x45;
        p[1] = dscp << 2;
        p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        p[9] = proto;
        p[20..22].copy_from_slice(&sport.to_be_bytes());
        p[22..24].copy_from_slice(&dport.to_be_bytes());
        p
    }

    #[test]
    fn interactive_traffic_is_recognised() {
        use Class::{Bulk, Interactive};
        let cases = [
            ("TCP bulk", ipv4(1400, 6, 0, 40000, 5201), Bulk),
            ("QUIC bulk", ipv4(1400, 17, 0, 40000, 443), Bulk),
            ("EF", ipv4(1400, 17, 46, 40000, 443), Interactive),
            ("CS6", ipv4(1400, 6, 48, 179, 40000), Interactive),
            ("ICMP", ipv4(1400, 1, 0, 0, 0), Interactive),
            ("DNS", ipv4(600, 17, 0, 40000, 53), Interactive),
            ("DNS/TCP", ipv4(600, 6, 0, 53, 40000), Interactive),
            ("ACK", ipv4(52, 6, 0, 40000, 5201), Interactive),
        ];
        for (what, pkt, class) in cases {
            assert_eq!(classify(&pkt), class, "{what}");
        }
        assert_eq!(classify(&[0x45, 0, 0]), Class::Interactive, "runt");
        // A later fragment has no ports: bytes 20..24 are payload.
        let mut frag = ipv4(600, 17, 0, 40000, 53);
        frag[6..8].copy_from_slice(&100u16.to_be_bytes());
        assert_eq!(classify(&frag), Class::Bulk);
    }

    #[test]
    fn codel_lets_short_bursts_through_and_cuts_a_standing_queue() {
        let t0 = Instant::now();
        let mut c = Codel::default();
        let ms = Duration::from_millis;
        // A burst whose delay stays above target for less than an interval: no drop.
        for i in 0..50 {
            assert!(!c.should_drop(ms(20), t0 + ms(i), false));
        }
        // Delay back under target resets the clock.
        assert!(!c.should_drop(ms(1), t0 + ms(60), false));
        assert!(!c.should_drop(ms(20), t0 + ms(61), false));
        assert!(!c.should_drop(ms(20), t0 + ms(150), false));
        // Above target for a whole interval: the first drop.
        assert!(c.should_drop(ms(20), t0 + ms(161), false));
        // Then drops at interval/√count: the next one ~100 ms later, then ~71 ms.
        assert!(!c.should_drop(ms(20), t0 + ms(200), false));
        assert!(c.should_drop(ms(20), t0 + ms(262), false));
        assert!(!c.should_drop(ms(20), t0 + ms(300), false));
        assert!(c.should_drop(ms(20), t0 + ms(334), false));
        // Delay falls under target: dropping stops.
        assert!(!c.should_drop(ms(2), t0 + ms(340), false));
        assert!(!c.should_drop(ms(20), t0 + ms(341), false));
        // An empty queue never drops, whatever the head waited.
        let mut c = Codel::default();
        for i in 0..300 {
            assert!(!c.should_drop(ms(50), t0 + ms(i), true));
        }
    }

    #[tokio::test]
    async fn interactive_goes_first_without_starving_bulk() {
        let pool = PacketPool::new(256, 1500);
        let (tx, mut rx) = peer_queue(128);
        let mk = |data: Vec<u8>| {
            let mut b = pool.get().unwrap();
            b.space()[..data.len()].copy_from_slice(&data);
            b.set_len(data.len());
            b
        };
        for _ in 0..40 {
            assert!(tx
                .push(mk(ipv4(1400, 6, 0, 1, 2)), GatewayDir::None)
                .is_ok());
        }
        for _ in 0..40 {
            assert!(tx.push(mk(ipv4(84, 1, 0, 0, 0)), GatewayDir::None).is_ok());
        }
        let order: Vec<Class> = std::iter::from_fn(|| rx.try_recv())
            .map(|q| classify(q.pkt.data()))
            .collect();
        assert_eq!(order.len(), 80);
        assert!(order[..32].iter().all(|c| *c == Class::Interactive));
        assert_eq!(order[32], Class::Bulk, "one bulk packet after a long burst");
        assert!(order[33..41].iter().all(|c| *c == Class::Interactive));
        assert!(order[41..].iter().all(|c| *c == Class::Bulk));
        // A full class queue gives the packet back.
        for _ in 0..INTERACTIVE_QUEUE {
            assert!(tx.push(mk(ipv4(84, 1, 0, 0, 0)), GatewayDir::None).is_ok());
        }
        assert!(tx.push(mk(ipv4(84, 1, 0, 0, 0)), GatewayDir::None).is_err());
        assert!(rx.recv().await.is_some());
    }

    #[tokio::test]
    async fn idle_only_with_nothing_queued_or_held() {
        let pool = PacketPool::new(4, 1500);
        let (tx, mut rx) = peer_queue(8);
        assert!(tx.is_idle());
        let mut b = pool.get().unwrap();
        b.space()[..1400].copy_from_slice(&ipv4(1400, 6, 0, 1, 2));
        b.set_len(1400);
        assert!(tx.push(b, GatewayDir::None).is_ok());
        assert!(!tx.is_idle(), "a bulk packet waits");
        let held = rx.recv().await;
        assert!(held.is_some());
        assert!(!tx.is_idle(), "the sender holds it");
        rx.done();
        assert!(tx.is_idle());
    }
}

//! The sender against a fake link: datagram or stream, too-big packets, a peer gone,
//! streams that cannot open, relayed streams left for a direct path, full queues.

use super::*;
use crate::dataplane::packet::tests::build;
use crate::dataplane::pool::PacketPool;
use crate::dataplane::qos::peer_queue;
use crate::dataplane::stats::Stats;
use crate::p2p::identity::Keypair;
use std::sync::Mutex;

#[derive(Default)]
struct State {
    connected: bool,
    direct: bool,
    relayed: bool,
    /// `Some`: the peer takes datagrams up to this size.
    dgram_max: Option<usize>,
    dgram_space: usize,
    dgram_refused: bool,
    datagrams: Vec<Vec<u8>>,
    open_fails: bool,
    opened: usize,
    written: Vec<u8>,
    finished: usize,
    /// Identify has not answered yet; it does after `identify_after` (never if `None`),
    /// and then lists the datagram protocol.
    awaiting_identify: bool,
    identify_after: Option<Duration>,
}

#[derive(Clone, Default)]
struct Fake(Arc<Mutex<State>>);

impl Fake {
    fn st(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap()
    }
}

impl PeerLink for Fake {
    type Datagrams = Fake;
    type Stream = Fake;
    type Error = &'static str;
    fn datagram_path(&self) -> Option<Fake> {
        self.st().dgram_max.map(|_| self.clone())
    }
    fn awaits_identify(&self) -> bool {
        self.st().awaiting_identify
    }
    async fn identified(&self) {
        let after = self.st().identify_after;
        match after {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
        let mut s = self.st();
        s.awaiting_identify = false;
        s.dgram_max = Some(1200);
    }
    fn is_connected(&self) -> bool {
        self.st().connected
    }
    fn has_direct(&self) -> bool {
        self.st().direct
    }
    fn is_relayed(&self) -> bool {
        self.st().relayed
    }
    async fn open_stream(&self) -> Result<Fake, &'static str> {
        let mut s = self.st();
        if s.open_fails {
            return Err("refused");
        }
        s.opened += 1;
        Ok(self.clone())
    }
}

impl DatagramPath for Fake {
    type Error = &'static str;
    fn max_size(&self) -> Option<usize> {
        self.st().dgram_max
    }
    fn buffer_space(&self) -> usize {
        self.st().dgram_space
    }
    fn send(&self, d: PacketBuf) -> bool {
        let mut s = self.st();
        if s.dgram_refused {
            return false;
        }
        s.datagrams.push(d.data().to_vec());
        true
    }
    async fn send_wait(&self, d: PacketBuf) -> Result<(), &'static str> {
        match self.send(d) {
            true => Ok(()),
            false => Err("refused"),
        }
    }
}

impl TunnelStream for Fake {
    async fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.st().written.extend_from_slice(b);
        Ok(())
    }
    async fn finish(&mut self) {
        self.st().finished += 1;
    }
}

fn pool() -> PacketPool {
    PacketPool::new(32, tunnel::AWL_MAX_PACKET)
}

/// A bulk UDP packet of `len` bytes.
fn pkt(pool: &PacketPool, len: usize) -> PacketBuf {
    let p = build(17, [10, 66, 0, 1], [10, 66, 0, 2], &vec![7u8; len - 20]);
    let mut b = pool.get().unwrap();
    b.space()[..p.len()].copy_from_slice(&p);
    b.set_len(p.len());
    b
}

fn awl_peer() -> Fake {
    let f = Fake::default();
    {
        let mut s = f.st();
        s.connected = true;
        s.direct = true;
        s.dgram_max = Some(1200);
        s.dgram_space = 64 * 1024;
    }
    f
}

/// Runs the sender over `link` for `pkts` (queued before it starts) until its queue closes.
async fn drain(link: Fake, pkts: Vec<PacketBuf>) -> (Stats, PeerId) {
    let peer = Keypair::generate().peer_id();
    let stats = Stats::default();
    let (tx, rx) = peer_queue(64);
    assert_eq!(push(&tx, pkts.into_iter(), GatewayDir::None), 0);
    drop(tx);
    let task = run(link, peer.clone(), rx, stats.counters(&peer));
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the sender ends when its queue closes");
    (stats, peer)
}

#[test]
fn send_now_takes_the_datagram_path_only_when_the_packet_fits() {
    let pool = pool();
    let stats = Stats::default();
    let peer = Keypair::generate().peer_id();
    let counters = stats.counters(&peer);
    let f = awl_peer();
    // No datagram path (an AWL peer, or relayed): back to the queue.
    assert!(send_now(None::<&Fake>, &counters, pkt(&pool, 100), GatewayDir::None).is_err());
    // Fits: sent with its direction trailer.
    assert!(send_now(Some(&f), &counters, pkt(&pool, 100), GatewayDir::Return).is_ok());
    let d = f.st().datagrams.pop().unwrap();
    assert_eq!(d.len(), 101);
    assert_eq!(d[100], tunnel::dir_byte(GatewayDir::Return));
    // The trailer would not fit; then: no room in quinn's buffer.
    assert!(send_now(Some(&f), &counters, pkt(&pool, 1200), GatewayDir::None).is_err());
    f.st().dgram_space = 100;
    assert!(send_now(Some(&f), &counters, pkt(&pool, 100), GatewayDir::None).is_err());
    // Refused by the connection: taken and counted as dropped.
    f.st().dgram_space = 64 * 1024;
    f.st().dgram_refused = true;
    assert!(send_now(Some(&f), &counters, pkt(&pool, 100), GatewayDir::None).is_ok());
    let s = stats.peer_snapshot(&peer);
    assert_eq!((s.tx_packets, s.tx_datagrams, s.tx_dropped), (1, 1, 1));
}

#[tokio::test]
async fn small_packets_go_as_datagrams_big_ones_on_the_stream() {
    let pool = pool();
    let f = awl_peer();
    let pkts = vec![pkt(&pool, 100), pkt(&pool, 1500), pkt(&pool, 300)];
    let (stats, peer) = drain(f.clone(), pkts).await;
    let st = f.st();
    assert_eq!(st.datagrams.len(), 2);
    assert_eq!(st.opened, 1);
    // One record: its 8-byte header and the packet.
    assert_eq!(st.written.len(), tunnel::HEADER_LEN + 1500);
    assert_eq!(
        st.finished, 1,
        "the stream is finished when the queue closes"
    );
    let s = stats.peer_snapshot(&peer);
    assert_eq!((s.tx_packets, s.tx_datagrams, s.tx_bytes), (3, 2, 1900));
    assert_eq!(s.tx_dropped, 0);
}

#[tokio::test]
async fn a_peer_without_datagrams_gets_one_batched_stream_write() {
    let pool = pool();
    let f = awl_peer();
    f.st().dgram_max = None;
    let (stats, peer) = drain(f.clone(), vec![pkt(&pool, 100), pkt(&pool, 200)]).await;
    let st = f.st();
    assert!(st.datagrams.is_empty());
    assert_eq!(st.written.len(), 2 * tunnel::HEADER_LEN + 300);
    let s = stats.peer_snapshot(&peer);
    assert_eq!((s.tx_packets, s.tx_datagrams), (2, 0));
}

/// Just connected, identify not answered yet.
fn connecting_awl_peer(identify_after: Option<Duration>) -> Fake {
    let f = awl_peer();
    {
        let mut s = f.st();
        s.dgram_max = None;
        s.awaiting_identify = true;
        s.identify_after = identify_after;
    }
    f
}

#[tokio::test]
async fn the_first_packets_after_a_connect_wait_for_identify_not_a_stream() {
    let pool = pool();
    let f = connecting_awl_peer(Some(Duration::from_millis(20)));
    let (stats, peer) = drain(f.clone(), vec![pkt(&pool, 100), pkt(&pool, 200)]).await;
    let st = f.st();
    assert_eq!(st.opened, 0, "no tunnel stream for the identify window");
    assert_eq!(st.datagrams.len(), 2);
    let s = stats.peer_snapshot(&peer);
    assert_eq!((s.tx_packets, s.tx_datagrams, s.tx_dropped), (2, 2, 0));
}

#[tokio::test]
async fn an_identify_that_never_answers_falls_back_to_the_stream() {
    let pool = pool();
    let f = connecting_awl_peer(None);
    let t0 = std::time::Instant::now();
    let (stats, peer) = drain(f.clone(), vec![pkt(&pool, 100)]).await;
    assert!(t0.elapsed() >= IDENTIFY_WAIT);
    let st = f.st();
    assert_eq!((st.opened, st.datagrams.len()), (1, 0));
    assert_eq!(stats.peer_snapshot(&peer).tx_packets, 1);
}

#[tokio::test]
async fn without_a_connection_or_a_stream_packets_are_dropped_and_counted() {
    let pool = pool();
    let gone = awl_peer();
    {
        let mut s = gone.st();
        s.dgram_max = None;
        s.connected = false;
    }
    let (stats, peer) = drain(gone.clone(), vec![pkt(&pool, 100), pkt(&pool, 200)]).await;
    assert_eq!(gone.st().opened, 0, "connecting is not the sender's job");
    assert_eq!(stats.peer_snapshot(&peer).tx_dropped, 2);

    let refusing = awl_peer();
    {
        let mut s = refusing.st();
        s.dgram_max = None;
        s.open_fails = true;
    }
    let (stats, peer) = drain(refusing, vec![pkt(&pool, 100)]).await;
    let s = stats.peer_snapshot(&peer);
    assert_eq!((s.tx_packets, s.tx_dropped), (0, 1));
}

#[tokio::test]
async fn a_relayed_stream_is_left_once_a_direct_path_appears() {
    let pool = pool();
    let f = awl_peer();
    {
        let mut s = f.st();
        s.dgram_max = None;
        s.direct = false;
        s.relayed = true;
    }
    let peer = Keypair::generate().peer_id();
    let stats = Stats::default();
    let (tx, rx) = peer_queue(64);
    let task = tokio::spawn(run(f.clone(), peer.clone(), rx, stats.counters(&peer)));
    push(&tx, std::iter::once(pkt(&pool, 100)), GatewayDir::None);
    while stats.peer_snapshot(&peer).tx_packets < 1 {
        tokio::task::yield_now().await;
    }
    {
        let mut s = f.st();
        s.direct = true;
        s.relayed = false;
    }
    push(&tx, std::iter::once(pkt(&pool, 100)), GatewayDir::None);
    drop(tx);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    let st = f.st();
    assert_eq!(st.opened, 2, "a new stream over the direct path");
    assert_eq!(st.finished, 2);
}

#[test]
fn a_full_queue_drops_and_counts() {
    let pool = pool();
    let (tx, _rx) = peer_queue(2);
    let pkts = (0..5).map(|_| pkt(&pool, 500));
    assert_eq!(push(&tx, pkts, GatewayDir::None), 3);
}

//! Two data planes on loopback QUIC hosts: which path packets take between awl nodes.

use super::*;
use crate::dataplane::packet::tests::build;
use crate::mesh::peers::PeerTable;
use std::sync::Mutex;
use std::time::Duration;

mod burst;
mod fast_packets;
mod partial;
mod sparse;

const T: Duration = Duration::from_secs(10);
const OWN: Ipv4Addr = Ipv4Addr::new(10, 66, 0, 1);

struct Node {
    host: Host,
    dp: Arc<Dataplane>,
    to_tun: mpsc::Receiver<PacketBuf>,
    peers: SharedPeers,
}

async fn node(datagrams: bool) -> Node {
    let host = Host::loopback().await;
    let peers = Arc::new(Mutex::new(PeerTable::new(host.peer_id(), OWN, 16, 8)));
    let cfg = DataplaneConfig {
        peer_queue: 64,
        tun_queue: 64,
        datagrams,
    };
    // The host's friends are the table's known peers, as a node sets them.
    host.set_trust(crate::p2p::Trust {
        friend: crate::mesh::discovery::known_peers(peers.clone()),
        trusted_observer: Arc::new(|_| false),
    });
    let (dp, to_tun) = Dataplane::new(host.clone(), peers.clone(), PacketPool::new(64, 3586), cfg);
    dp.start();
    Node {
        host,
        dp,
        to_tun,
        peers,
    }
}

/// Makes `a` and `b` friends (b is 10.66.0.2 on a, a is 10.66.0.3 on b), connected and
/// identified both ways.
async fn befriend(a: &Node, b: &Node) {
    let (ia, ib) = (a.host.peer_id(), b.host.peer_id());
    a.peers
        .lock()
        .unwrap()
        .add(ib.clone(), None, Some(Ipv4Addr::new(10, 66, 0, 2)), true)
        .unwrap();
    b.peers
        .lock()
        .unwrap()
        .add(ia.clone(), None, Some(Ipv4Addr::new(10, 66, 0, 3)), true)
        .unwrap();
    a.host.dial(&b.host.listen_addrs()[0]).await.unwrap();
    a.host.identify(&ib).await.unwrap();
    b.host.identify(&ia).await.unwrap();
}

fn packet(pool: &PacketPool, proto: u8, payload: usize) -> PacketBuf {
    packet_to(pool, proto, payload, [10, 66, 0, 2])
}

fn packet_to(pool: &PacketPool, proto: u8, payload: usize, dst: [u8; 4]) -> PacketBuf {
    let l4 = vec![7u8; payload];
    pool.copy_of(&build(proto, OWN.octets(), dst, &l4)).unwrap()
}

/// Sends a bulk (UDP) and an interactive (ICMP) packet from a to b; returns what b's TUN got.
async fn exchange(a: &Node, b: &mut Node) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    for proto in [17, 1] {
        a.dp.route_outbound(packet(a.dp.pool(), proto, 900));
        let p = timeout(T, b.to_tun.recv()).await.unwrap().unwrap();
        got.push(p.data().to_vec());
    }
    got
}

use tokio::time::timeout;

/// a's queue to b, if a started one.
fn queue(a: &Node, b: &Node) -> Option<QueueTx> {
    let snap = a.dp.snapshot();
    let entry = snap.peer(&b.host.peer_id()).expect("b is known to a");
    let q = entry.sender.lock().tx.clone();
    q
}

/// Asserts that a sent to b and b received from a (packets, of them datagrams) `want`. The
/// receiver counts a batch after handing it to the TUN, on its packet thread: the count may
/// come a moment after the test saw the packet, so it is waited for (at most `T`).
async fn settled_counts(a: &Node, b: &Node, want: ((u64, u64), (u64, u64))) {
    settle(|| counts(a, b) == want).await;
    assert_eq!(counts(a, b), want);
}

/// What b received from a (packets, of them datagrams), once it reads `want` or `T` passed.
async fn settled_rx(a: &Node, b: &Node, want: (u64, u64)) -> (u64, u64) {
    settle(|| counts(a, b).1 == want).await;
    counts(a, b).1
}

/// Waits until `done`, at most `T`; the caller asserts.
async fn settle(done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + T;
    while !done() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// (packets, of them datagrams) a sent to b, and b received from a.
fn counts(a: &Node, b: &Node) -> ((u64, u64), (u64, u64)) {
    let sent = a.dp.stats.peer_snapshot(&b.host.peer_id());
    let recv = b.dp.stats.peer_snapshot(&a.host.peer_id());
    (
        (sent.tx_packets, sent.tx_datagrams),
        (recv.rx_packets, recv.rx_datagrams),
    )
}

#[tokio::test]
async fn awl_nodes_carry_packets_in_datagrams() {
    let a = node(true).await;
    let mut b = node(true).await;
    befriend(&a, &b).await;
    let got = exchange(&a, &mut b).await;
    for p in &got {
        // Rewritten on receipt: from a's address on b, to b's own address.
        assert_eq!(&p[12..16], &[10, 66, 0, 3]);
        assert_eq!(&p[16..20], &[10, 66, 0, 1]);
        assert_eq!(p.len(), 920);
    }
    assert_eq!(got[0][9], 17);
    assert_eq!(got[1][9], 1);
    settled_counts(&a, &b, ((2, 2), (2, 2))).await;
    // Nothing was waiting for b: both went straight to quinn, no queue or sender task needed.
    assert!(queue(&a, &b).is_none());
}

#[tokio::test]
async fn a_peer_without_datagrams_gets_the_stream_tunnel() {
    // b stands for an AWL (Go) node: it does not list the datagram protocol.
    let a = node(true).await;
    let mut b = node(false).await;
    befriend(&a, &b).await;
    assert!(!a
        .host
        .identify_info(&b.host.peer_id())
        .unwrap()
        .protocols
        .iter()
        .any(|p| p == tunnel::DATAGRAM_PROTOCOL));
    let got = exchange(&a, &mut b).await;
    assert_eq!(got.len(), 2);
    settled_counts(&a, &b, ((2, 0), (2, 0))).await;
}

#[tokio::test]
async fn packets_too_big_for_a_datagram_take_the_stream() {
    let a = node(true).await;
    let mut b = node(true).await;
    befriend(&a, &b).await;
    a.dp.route_outbound(packet(a.dp.pool(), 17, 3000));
    let p = timeout(T, b.to_tun.recv()).await.unwrap().unwrap();
    assert_eq!(p.len(), 3020);
    settled_counts(&a, &b, ((1, 0), (1, 0))).await;
    // The stream takes the queue and the sender task.
    assert!(queue(&a, &b).is_some());
}

#[tokio::test]
async fn datagrams_from_strangers_and_garbage_are_dropped_and_counted() {
    let a = node(true).await;
    let mut b = node(true).await;
    befriend(&a, &b).await;
    // A stranger with its own identity: b lists the protocol to it too, but drops its packets.
    let c = Host::start(
        crate::p2p::identity::Keypair::generate(),
        crate::p2p::HostConfig::new(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
    )
    .await
    .unwrap();
    c.dial(&b.host.listen_addrs()[0]).await.unwrap();
    c.identify(&b.host.peer_id()).await.unwrap();
    let conn = c
        .datagram_path(&b.host.peer_id(), tunnel::DATAGRAM_PROTOCOL)
        .expect("b takes datagrams");
    let mut d = build(17, [10, 66, 0, 1], [10, 66, 0, 2], &[0u8; 100]);
    d.push(0);
    conn.conn
        .send_datagram(bytes::Bytes::from(d.clone()))
        .unwrap();
    // From a friend: a bad trailer, then a good one (which must still arrive).
    let conn = a
        .host
        .datagram_path(&b.host.peer_id(), tunnel::DATAGRAM_PROTOCOL)
        .unwrap();
    let mut bad = d.clone();
    *bad.last_mut().unwrap() = 9;
    conn.conn.send_datagram(bytes::Bytes::from(bad)).unwrap();
    conn.conn.send_datagram(bytes::Bytes::from(d)).unwrap();
    let p = timeout(T, b.to_tun.recv()).await.unwrap().unwrap();
    assert_eq!(
        &p.data()[12..16],
        &[10, 66, 0, 3],
        "only the friend's packet"
    );
    // The stranger's datagram may arrive after the friend's: wait for its count.
    let stranger_counted = || b.dp.stats.global_snapshot().rx_unknown_peer_packets > 0;
    until(stranger_counted, "stranger not counted").await;
    assert_eq!(b.dp.stats.peer_snapshot(&a.host.peer_id()).rx_errors, 1);
    assert!(b.to_tun.try_recv().is_err());
    // Counters exist for configured friends only: a stranger's identity adds no entry, so
    // throwaway identities cannot grow the table.
    assert!(b.dp.stats.has_peer(&a.host.peer_id()));
    assert!(!b.dp.stats.has_peer(&c.peer_id()));
}

/// Two friends, and a's datagram path to b.
async fn friends_with_path() -> (Node, Node, crate::p2p::fastpath::DirectPath) {
    let a = node(true).await;
    let b = node(true).await;
    befriend(&a, &b).await;
    let path = a
        .host
        .datagram_path(&b.host.peer_id(), tunnel::DATAGRAM_PROTOCOL)
        .unwrap();
    (a, b, path)
}

/// A friend's socket for fast packets is opened once it is identified, not by the first
/// packet; a stranger that lists the fast path gets none (the connected sockets are capped).
#[tokio::test]
async fn a_friends_connected_socket_is_open_before_its_first_packet_and_a_strangers_never() {
    let (a, _b, path) = friends_with_path().await;
    let tx = path.fast.expect("awl nodes list the fast path");
    assert!(tx.has_direct(), "not opened at identify");
    let c = node(true).await;
    c.host.dial(&a.host.listen_addrs()[0]).await.unwrap();
    c.host.identify(&a.host.peer_id()).await.unwrap();
    let seen = async {
        while !a.host.is_connected(&c.host.peer_id()) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    timeout(T, seen).await.expect("a saw c's connection");
    a.host.identify(&c.host.peer_id()).await.unwrap();
    let to_c = a
        .host
        .datagram_path(&c.host.peer_id(), tunnel::DATAGRAM_PROTOCOL);
    let to_c = to_c.and_then(|p| p.fast).expect("c lists the fast path");
    assert!(!to_c.has_direct(), "a stranger got a connected socket");
}

#[tokio::test]
async fn between_awl_nodes_single_packets_take_the_fast_path() {
    let (a, mut b, path) = friends_with_path().await;
    assert!(path.fast.is_some(), "awl nodes list the fast path");
    let (sent, _, _) = a.host.fast_counters();
    let got = exchange(&a, &mut b).await;
    assert_eq!(got.len(), 2);
    assert_eq!(&got[1][12..16], &[10, 66, 0, 3], "rewritten as from a");
    assert_eq!(a.host.fast_counters().0 - sent, 2);
    assert_eq!(b.host.fast_counters(), (0, 2, 0));
    settled_counts(&a, &b, ((2, 2), (2, 2))).await;
}

/// A batch from the peer's queue goes as fast packets too, sealed into runs of one size
/// each (one GSO send per run): packets of mixed sizes all arrive, in order, rewritten, and
/// nothing goes by QUIC.
#[tokio::test]
async fn between_awl_nodes_a_batch_goes_as_fast_packets_in_runs() {
    let (a, mut b, path) = friends_with_path().await;
    let pool = PacketPool::new(64, 3586);
    // Runs end where a packet is larger than the run's, or after a shorter one.
    let sizes: Vec<usize> = (0..50)
        .map(|i| match i {
            0..=29 => 1000,
            30..=34 => 600,
            35 => 1100,
            _ => 1000,
        })
        .collect();
    let mut batch: Vec<PacketBuf> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let mut l4 = vec![0u8; n];
            l4[..2].copy_from_slice(&(i as u16).to_be_bytes());
            let p = build(17, [10, 66, 0, 1], [10, 66, 0, 2], &l4);
            let mut buf = pool.get().unwrap();
            buf.space()[..p.len()].copy_from_slice(&p);
            buf.space()[p.len()] = tunnel::dir_byte(GatewayDir::None);
            buf.set_len(p.len() + 1);
            buf
        })
        .collect();
    let (sent, _, _) = a.host.fast_counters();
    let mut run = crate::p2p::fastpath::Run::default();
    let tally = crate::dataplane::sender::DatagramPath::send_all(&path, &mut batch, &mut run).await;
    assert!(batch.is_empty() && run.is_empty());
    let bytes: usize = sizes.iter().map(|n| 20 + n).sum();
    assert_eq!(
        format!("{tally:?}"),
        format!("DatagramTally {{ sent: 50, bytes: {bytes}, failed: 0 }}")
    );
    for (i, &n) in sizes.iter().enumerate() {
        let p = timeout(T, b.to_tun.recv()).await.unwrap().unwrap();
        let d = p.data();
        assert_eq!(d.len(), 20 + n, "packet {i}");
        assert_eq!(&d[12..16], &[10, 66, 0, 3], "rewritten as from a");
        assert_eq!(u16::from_be_bytes([d[20], d[21]]) as usize, i, "in order");
    }
    assert_eq!(a.host.fast_counters().0 - sent, 50);
    assert_eq!(b.host.fast_counters().1, 50);
    assert!(
        path.conn.stats().frame_tx.datagram == 0,
        "nothing went by QUIC"
    );
}

/// A super-packet's segments to an idle awl peer are sealed and sent by the reader itself
/// (no queue, no sender task): all arrive in order; a segment too large for a datagram and
/// those behind it take the queue (and the tunnel stream), after the ones sent.
#[tokio::test]
async fn a_super_packets_segments_go_from_the_reader_and_what_does_not_fit_queues() {
    let (a, mut b, _path) = friends_with_path().await;
    let segment = |i: usize, n: usize| {
        let mut l4 = vec![0u8; n];
        l4[..2].copy_from_slice(&(i as u16).to_be_bytes());
        a.dp.pool()
            .copy_of(&build(6, [10, 66, 0, 1], [10, 66, 0, 2], &l4))
            .unwrap()
    };
    let mut reader = a.dp.reader();
    let (sent, _, _) = a.host.fast_counters();
    let mut segs: Vec<PacketBuf> = (0..10).map(|i| segment(i, 900)).collect();
    a.dp.route_segments(&mut reader, &mut segs, false);
    assert!(segs.is_empty());
    assert!(queue(&a, &b).is_none(), "no queue, no sender task");
    assert_eq!(a.host.fast_counters().0 - sent, 10);
    // Four that fit, then one larger than any datagram, then one that would fit again.
    let mut segs: Vec<PacketBuf> = (10..14).map(|i| segment(i, 900)).collect();
    segs.push(segment(14, 2000));
    segs.push(segment(15, 900));
    a.dp.route_segments(&mut reader, &mut segs, false);
    assert!(queue(&a, &b).is_some(), "the rest took the queue");
    let mut got = Vec::new();
    for _ in 0..16 {
        let p = timeout(T, b.to_tun.recv()).await.unwrap().unwrap();
        let d = p.data();
        assert_eq!(&d[12..16], &[10, 66, 0, 3], "rewritten as from a");
        got.push(u16::from_be_bytes([d[20], d[21]]));
    }
    // 14 takes the stream, which may overtake the fast packets (another thread reads
    // them); those arrive in order.
    got.retain(|&i| i != 14);
    let fast: Vec<u16> = (0..16).filter(|&i| i != 14).collect();
    assert_eq!(got, fast, "in order");
    assert_eq!(a.host.fast_counters().0 - sent, 15, "all but the large one");
    assert_eq!(counts(&a, &b).0, (16, 15));
}

/// The TUN reader takes turns: a real TUN device (in a network namespace of this test's
/// thread) is read by the thread while all it reads goes out on the fast path, by the
/// runtime from the first packet that needs it (here one for the service stack) or the first
/// read after the writer task wrote, and by the thread again once the hold passes without
/// either. Every packet arrives. The thread is one of the reader's own, or the fast packets'
/// thread lent the device: the same turns either way, and the thread lets go of the device
/// when the reader ends.
#[tokio::test]
async fn the_tun_reader_leaves_its_thread_for_the_runtime_while_packets_need_it() {
    tun_turns(false).await;
}

#[tokio::test]
async fn the_tun_reader_takes_the_same_turns_on_the_fast_packets_thread() {
    tun_turns(true).await;
}

/// Moves this test's thread into a network namespace of its own, where it may open TUN
/// devices; `false` (skipped) without root.
fn in_new_netns() -> bool {
    if !crate::sys::user::is_root() {
        eprintln!("skipped: needs root for a network namespace and a TUN device");
        return false;
    }
    crate::sys::user::enter_new_netns().expect("network namespace");
    true
}

/// Two friends with a fast path, in a network namespace of this test's thread (the
/// runtime's; the threads it starts share it), where a test may open TUN devices; `None`
/// (skipped) without root.
async fn friends_in_netns() -> Option<(Node, Node, crate::p2p::fastpath::DirectPath)> {
    if !in_new_netns() {
        return None;
    }
    let (a, b, path) = friends_with_path().await;
    assert!(path.fast.is_some());
    Some((a, b, path))
}

async fn tun_turns(lend: bool) {
    let Some((a, mut b, _)) = friends_in_netns().await else {
        return;
    };
    let (svc_tx, mut svc_rx) = mpsc::channel(8);
    a.dp.set_services(vec![Ipv4Addr::new(10, 66, 0, 53)], svc_tx);
    let dev = tun::open(&tun::TunConfig {
        name: "awlturns0".into(),
        address: OWN,
        prefix: 24,
        mtu: 1420,
        offload: false,
    })
    .expect("TUN");
    let dev = Arc::new(dev);
    let home = tun::Home::new(dev.clone(), a.dp.clone());
    let thread = lend.then(|| a.host.packet_thread().expect("a fast packets' thread"));
    let reader = tokio::spawn(home.clone().serve(Duration::from_millis(300), thread));
    let udp = tokio::net::UdpSocket::bind((OWN, 0)).await.expect("bind");
    let to_b = |n: u8| {
        let udp = &udp;
        async move {
            udp.send_to(&[n; 100], (Ipv4Addr::new(10, 66, 0, 2), 9))
                .await
                .expect("send");
        }
    };
    async fn got(b: &mut Node, n: u8) {
        let p = timeout(T, b.to_tun.recv()).await.expect("arrives").unwrap();
        assert!(p.data().ends_with(&[n; 100]), "packet {n}");
    }
    let fast_sent = || a.host.fast_counters().0;
    let sent0 = fast_sent();
    // a counts a fast packet after its send returns (b may have it first): waited for.
    let sent = |n| until(move || fast_sent() - sent0 == n, "a's fast packets counted");
    // 1. On the thread: out on the fast path, no turn taken.
    to_b(1).await;
    got(&mut b, 1).await;
    sent(1).await;
    assert_eq!(home.turns(), (0, 0), "read by the thread");
    // 2. A packet for the service stack needs the runtime: it takes the device.
    udp.send_to(b"dns?", (Ipv4Addr::new(10, 66, 0, 53), 53))
        .await
        .expect("send");
    let p = timeout(T, svc_rx.recv()).await.expect("service").unwrap();
    assert!(p.data().ends_with(b"dns?"));
    until(
        || home.turns().0 == 1,
        "the runtime did not take the device",
    )
    .await;
    // 3. Read in the runtime meanwhile, still sent.
    to_b(3).await;
    got(&mut b, 3).await;
    // 4. The hold passes with nothing that needs the runtime: the thread has it again,
    //    and reads without handing it over.
    until(|| home.turns().1 == 1, "the device was not given back").await;
    to_b(4).await;
    got(&mut b, 4).await;
    sent(3).await;
    assert_eq!(home.turns(), (1, 1));
    // 5. The writer task wrote (packets came in a burst): the next read, sent from the
    //    thread as ever, still hands the device over, and it comes back once the hold
    //    passes without writes.
    let (wtx, wrx) = mpsc::channel(4);
    let writer = tokio::spawn(tun::writer(dev.clone(), wrx));
    wtx.send(packet(a.dp.pool(), 17, 20)).await.expect("writer");
    until(|| wtx.capacity() == 4, "the writer did not take the packet").await;
    to_b(5).await;
    got(&mut b, 5).await;
    sent(4).await;
    until(
        || home.turns().0 == 2,
        "a write did not take the device to the runtime",
    )
    .await;
    until(|| home.turns().1 == 2, "the device was not given back").await;
    // Lent, the fast packets' thread is taken: it refuses a second job.
    if let Some(t) = a.host.packet_thread() {
        struct Nothing;
        impl crate::sys::packet_thread::Job for Nothing {
            fn step(&mut self) -> crate::sys::packet_thread::Step {
                crate::sys::packet_thread::Step::Done
            }
        }
        assert_eq!(t.lend(Box::new(Nothing)).is_err(), lend, "lent: {lend}");
    }
    reader.abort();
    writer.abort();
    // The thread's job (the one other owner of `home`) is dropped.
    until(
        || Arc::strong_count(&home) == 1,
        "the thread kept the device",
    )
    .await;
}

/// `from`'s fast path to `to` (they are friends, identified both ways).
fn fast_tx(from: &Node, to: &Node) -> Arc<crate::p2p::fastpath::Tx> {
    from.host
        .datagram_path(&to.host.peer_id(), tunnel::DATAGRAM_PROTOCOL)
        .and_then(|p| p.fast)
        .expect("fast path")
}

/// Waits (at most `T`) until `done`.
async fn until(done: impl Fn() -> bool, what: &str) {
    settle(&done).await;
    assert!(done(), "{what}");
}

/// Every buffer of `dp`'s pool, held so that nothing else can take one.
fn drain(dp: &Dataplane) -> Vec<PacketBuf> {
    std::iter::from_fn(|| dp.pool().get()).collect()
}

/// The TUN reader routes a packet from its own buffer (`route_from`): on the fast path it is
/// sealed from there, so it goes out even with every pooled buffer taken; with no room for
/// its trailer it needs a pooled copy (none to be had: dropped and counted), and with one it
/// goes as from the pool; a destination no peer has is counted.
#[tokio::test]
async fn packets_from_the_readers_buffer_need_no_pooled_buffer_on_the_fast_path() {
    let (a, mut b, path) = friends_with_path().await;
    assert!(path.fast.is_some());
    let mut reader = a.dp.reader();
    let p = build(1, OWN.octets(), [10, 66, 0, 2], &[7u8; 56]);
    let mut roomy = p.clone();
    roomy.resize(p.len() + 64, 0);

    let held = drain(&a.dp);
    let exhausted = a.dp.pool().exhausted();
    let needs = a.dp.route_from(&mut reader, &mut roomy, p.len(), false);
    assert!(matches!(needs, Needs::Nothing));
    let got = timeout(T, b.to_tun.recv()).await.unwrap().unwrap();
    assert_eq!(got.len(), p.len());
    assert_eq!(&got.data()[12..16], &[10, 66, 0, 3], "rewritten as from a");
    assert_eq!(&got.data()[20..], &p[20..]);
    assert_eq!(
        a.dp.pool().exhausted(),
        exhausted,
        "a pooled buffer was asked for"
    );
    assert_eq!(b.host.fast_counters(), (0, 1, 0));
    settled_counts(&a, &b, ((1, 1), (1, 1))).await;

    // No byte behind it for the trailer: it must be copied, and the pool is empty.
    let mut tight = p.clone();
    a.dp.route_from(&mut reader, &mut tight, p.len(), false);
    assert_eq!(a.dp.pool().exhausted(), exhausted + 1);
    assert_eq!(counts(&a, &b).0, (1, 1), "sent without a pooled copy");
    drop(held);
    a.dp.route_from(&mut reader, &mut tight, p.len(), false);
    timeout(T, b.to_tun.recv()).await.unwrap().unwrap();
    settled_counts(&a, &b, ((2, 2), (2, 2))).await;
    assert_eq!(tight, p, "the reader's buffer was written past the packet");

    let stray = build(1, OWN.octets(), [10, 66, 0, 9], &[7u8; 56]);
    let mut buf = stray.clone();
    buf.resize(stray.len() + 64, 0);
    let unroutable = a.dp.stats.global_snapshot().tx_unroutable;
    a.dp.route_from(&mut reader, &mut buf, stray.len(), false);
    assert_eq!(a.dp.stats.global_snapshot().tx_unroutable, unroutable + 1);
    assert!(b.to_tun.try_recv().is_err());
    assert_eq!(counts(&a, &b).0, (2, 2));
}

/// To an AWL peer (no datagrams) a packet from the reader's buffer takes the stream, copied
/// into a pooled buffer: with none free it is dropped and counted, never sent from the
/// reader's buffer.
#[tokio::test]
async fn packets_from_the_readers_buffer_to_an_awl_peer_are_copied_for_the_stream() {
    let a = node(true).await;
    let mut b = node(false).await;
    befriend(&a, &b).await;
    let mut reader = a.dp.reader();
    let p = build(17, OWN.octets(), [10, 66, 0, 2], &[7u8; 900]);
    let mut buf = p.clone();
    buf.resize(p.len() + 64, 0);
    let held = drain(&a.dp);
    let exhausted = a.dp.pool().exhausted();
    a.dp.route_from(&mut reader, &mut buf, p.len(), false);
    assert_eq!(a.dp.pool().exhausted(), exhausted + 1);
    drop(held);
    a.dp.route_from(&mut reader, &mut buf, p.len(), false);
    let got = timeout(T, b.to_tun.recv()).await.unwrap().unwrap();
    assert_eq!(got.len(), p.len());
    settled_counts(&a, &b, ((1, 0), (1, 0))).await;
}

//! Fast packets between two data planes: ciphers, forgeries, replays, strangers, index
//! collisions.

use super::*;

/// Waits until `b` has refused `n` fast packets.
async fn refused(b: &Node, n: u64) {
    until(|| b.host.fast_counters().2 >= n, "not refused").await;
    assert_eq!(b.host.fast_counters().2, n);
}

/// Two nodes with AES in hardware seal with AES-128-GCM, across an epoch's change of key;
/// a node without it (an older one, a router) is never sent an AES packet, and refuses one.
#[tokio::test]
async fn fast_packets_use_aes_only_where_both_ends_take_it() {
    use crate::p2p::fastpath::{aes, AES_PROTOCOL};
    if !aes::in_hardware() {
        eprintln!("skipped: no AES instructions on this CPU");
        return;
    }
    let (a, mut b, path) = friends_with_path().await;
    let tx = path.fast.clone().expect("fast path");
    assert!(a.host.protocols().iter().any(|p| p == AES_PROTOCOL));
    assert!(tx.seals_with_aes(), "both list AES");
    // The last packets of epoch 0 and the first of epoch 1: each side derives the next key.
    let epoch = 1u64 << aes::EPOCH_BITS;
    tx.set_next_counter(epoch - 2);
    let got = exchange(&a, &mut b).await;
    tx.set_next_counter(epoch);
    let more = exchange(&a, &mut b).await;
    assert_eq!(got.len() + more.len(), 4);
    assert_eq!(&more[1][12..16], &[10, 66, 0, 3]);
    assert_eq!(b.host.fast_counters(), (0, 4, 0));
    assert_eq!(
        settled_rx(&a, &b, (4, 4)).await,
        (4, 4),
        "all four came as fast packets"
    );

    // c has no AES (as a MIPS router or an older awl): d seals for it with ChaCha.
    let c = node(true).await;
    c.host.fast_table().set_aes(false);
    let mut d = node(true).await;
    assert!(!c.host.protocols().iter().any(|p| p == AES_PROTOCOL));
    befriend(&d, &c).await;
    let to_c = fast_tx(&d, &c);
    assert!(!to_c.seals_with_aes(), "c does not list AES");
    let mut c = c;
    exchange(&d, &mut c).await;
    assert_eq!(c.host.fast_counters(), (0, 2, 0));
    // Made to seal with AES anyway, d's packets are refused by c: it holds no AES key.
    to_c.peer_takes_aes(true);
    assert!(to_c.seals_with_aes());
    d.dp.route_outbound(packet(d.dp.pool(), 17, 900));
    refused(&c, 1).await;
    assert!(c.to_tun.try_recv().is_err());
    // And c's own packets to d (ChaCha: d listed AES, c has none) are taken.
    let back = c
        .host
        .datagram_path(&d.host.peer_id(), tunnel::DATAGRAM_PROTOCOL)
        .and_then(|p| p.fast)
        .expect("fast path");
    assert!(!back.seals_with_aes());
    c.dp.route_outbound(packet_to(c.dp.pool(), 17, 900, [10, 66, 0, 3]));
    timeout(T, d.to_tun.recv()).await.unwrap().unwrap();
    assert_eq!(d.host.fast_counters().2, 0);
}

#[tokio::test]
async fn forged_replayed_stale_and_strangers_fast_packets_are_refused() {
    use crate::p2p::fastpath::{self, wire};
    // a stays up (its connection holds the session). a's own keys, derived again as a WAN
    // neighbour who has none could not: the test plays a's side from another socket.
    let (_a, mut b, path) = friends_with_path().await;
    let keys = fastpath::derive(&path.conn).unwrap();
    let key = wire::Key::new(&keys.tx_key).unwrap();
    let to = path.conn.remote_address();
    let raw = std::net::UdpSocket::bind("[::]:0").unwrap();
    let mut d = build(17, [10, 66, 0, 1], [10, 66, 0, 2], &[0u8; 100]);
    d.push(0);
    let mut pkt = Vec::new();
    assert!(wire::seal(&key, keys.tx_index, 1 << 40, &d, &mut pkt));
    // Authenticated: taken from any address.
    raw.send_to(&pkt, to).unwrap();
    let p = timeout(T, b.to_tun.recv()).await.unwrap().unwrap();
    assert_eq!(&p.data()[12..16], &[10, 66, 0, 3]);
    // The same packet again; one with a flipped bit; one for nobody's index; one too short.
    raw.send_to(&pkt, to).unwrap();
    let mut forged = pkt.clone();
    forged[40] ^= 1;
    raw.send_to(&forged, to).unwrap();
    let mut nobody = pkt.clone();
    nobody[1..5].copy_from_slice(&(keys.tx_index ^ 1).to_be_bytes());
    raw.send_to(&nobody, to).unwrap();
    raw.send_to(&pkt[..20], to).unwrap();
    refused(&b, 4).await;
    assert_eq!(b.host.fast_counters().1, 1);
    // A forgery does not burn its counter: the genuine packet with that counter still opens.
    let mut genuine = Vec::new();
    assert!(wire::seal(
        &key,
        keys.tx_index,
        (1 << 40) + 5,
        &d,
        &mut genuine
    ));
    let mut forged = genuine.clone();
    forged[30] ^= 1;
    raw.send_to(&forged, to).unwrap();
    refused(&b, 5).await;
    raw.send_to(&genuine, to).unwrap();
    let p = timeout(T, b.to_tun.recv()).await.unwrap().unwrap();
    assert_eq!(&p.data()[12..16], &[10, 66, 0, 3]);
    assert_eq!(b.host.fast_counters().1, 2);
    // A stranger's packets authenticate on its own connection and are dropped by the data
    // plane, as its QUIC datagrams are.
    let c = node(true).await;
    c.host.dial(&b.host.listen_addrs()[0]).await.unwrap();
    c.host.identify(&b.host.peer_id()).await.unwrap();
    let cp = c
        .host
        .datagram_path(&b.host.peer_id(), tunnel::DATAGRAM_PROTOCOL)
        .unwrap();
    cp.fast
        .expect("b lists the fast path to strangers too")
        .send(&d, false)
        .unwrap();
    let stranger_counted = || b.dp.stats.global_snapshot().rx_unknown_peer_packets > 0;
    until(stranger_counted, "stranger not counted").await;
    assert!(!b.dp.stats.has_peer(&c.host.peer_id()));
    // Once a's connection is closed its session is gone: its keys open nothing. The host
    // marks the path closed, so the data plane's cached copy asks for a new one.
    assert!(!path.is_closed());
    path.conn.close(0u32.into(), b"bye");
    until(|| path.is_closed(), "the closed path is not marked").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    pkt.clear();
    assert!(wire::seal(&key, keys.tx_index, (1 << 40) + 6, &d, &mut pkt));
    raw.send_to(&pkt, to).unwrap();
    refused(&b, 6).await;
    assert!(b.to_tun.try_recv().is_err());
}

#[tokio::test]
async fn a_friends_truncated_packets_are_dropped_not_fatal() {
    // An IPv4 first byte and nothing after it: in a QUIC datagram and in a fast packet.
    let (a, mut b, path) = friends_with_path().await;
    let fast = path.fast.clone().expect("fast path");
    let short = [0x45u8, 0, 0];
    path.conn
        .send_datagram(bytes::Bytes::copy_from_slice(&short))
        .unwrap();
    fast.send(&short, false).unwrap();
    let dropped = || b.dp.stats.peer_snapshot(&a.host.peer_id()).rx_dropped >= 2;
    until(dropped, "short packets not counted as dropped").await;
    // Both paths still deliver.
    let mut d = build(17, [10, 66, 0, 1], [10, 66, 0, 2], &[0u8; 100]);
    d.push(0);
    fast.send(&d, false).unwrap();
    path.conn.send_datagram(bytes::Bytes::from(d)).unwrap();
    for _ in 0..2 {
        let p = timeout(T, b.to_tun.recv()).await.unwrap().unwrap();
        assert_eq!(&p.data()[12..16], &[10, 66, 0, 3]);
    }
    assert_eq!(b.dp.stats.peer_snapshot(&a.host.peer_id()).rx_dropped, 2);
}

#[tokio::test]
async fn a_receiver_index_holds_at_most_four_sessions() {
    use crate::p2p::fastpath::Derived;
    // Sessions whose exporters gave the same 32-bit receiver index (chance: one in four
    // billion per pair; a stranger cannot choose it): four share it, opened by trial, and
    // a fifth gets no fast path, so no index costs more than four trial opens per packet.
    let (a, mut b, path) = friends_with_path().await;
    let table = b.host.fast_table();
    let keys = |n: u8, rx_index: u32| Derived {
        tx_key: [n; 32],
        tx_index: 9,
        rx_key: [n; 32],
        rx_index,
        tx_aes: [n; 32],
        rx_aes: [n; 32],
    };
    let peer = a.host.peer_id();
    let mut held: Vec<_> = (1..=4)
        .map(|n| table.install_derived(&path.conn, peer.clone(), keys(n, 7)))
        .collect();
    assert!(held.iter().all(Option::is_some));
    assert!(table
        .install_derived(&path.conn, peer.clone(), keys(5, 7))
        .is_none());
    // Each of the four opens its own packets: one tried before others (opened in a copy) and
    // the last one tried (opened in place); the fifth's key opens nothing.
    let raw = std::net::UdpSocket::bind("[::]:0").unwrap();
    let mut d = build(17, [10, 66, 0, 1], [10, 66, 0, 2], &[0u8; 100]);
    d.push(0);
    for n in [3u8, 1, 5] {
        let mut pkt = Vec::new();
        let key = crate::p2p::fastpath::wire::Key::new(&[n; 32]).unwrap();
        assert!(crate::p2p::fastpath::wire::seal(&key, 7, 1, &d, &mut pkt));
        raw.send_to(&pkt, path.conn.remote_address()).unwrap();
        if n == 5 {
            refused(&b, 1).await;
        } else {
            let p = timeout(T, b.to_tun.recv()).await.unwrap().unwrap();
            assert_eq!(&p.data()[12..16], &[10, 66, 0, 3], "key {n}");
        }
    }
    // Another index is not affected; a session dropped frees its place.
    assert!(table
        .install_derived(&path.conn, peer.clone(), keys(6, 8))
        .is_some());
    held.pop();
    assert!(table
        .install_derived(&path.conn, peer, keys(7, 7))
        .is_some());
}

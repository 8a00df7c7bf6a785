//! The socket's reader and quinn's side of it, through real sockets and by hand-made batches.

use super::*;

fn meta(len: usize, stride: usize) -> RecvMeta {
    RecvMeta {
        len,
        stride,
        ..RecvMeta::default()
    }
}

/// Through real sockets: the reader opens (here: refuses, no session) the fast packet,
/// hands the other to quinn's side, and ends when quinn drops the socket.
#[tokio::test]
async fn the_reader_keeps_fast_packets_from_quinn_and_ends_with_the_socket() {
    let rx = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let to = rx.local_addr().expect("addr");
    let fast = Arc::new(Table::default());
    let quic = with_reader(
        Arc::new(ReadRegistered::new(rx).expect("register")),
        fast.clone(),
    )
    .expect("reader");
    let tx = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let mut fast_packet = [0u8; 60];
    fast_packet[0] = wire::MARKER;
    tx.send_to(&fast_packet, to).expect("send");
    tx.send_to(&[0x40; 30], to).expect("send");
    let mut slot = [0u8; MAX_DATAGRAM];
    let mut meta = [RecvMeta::default()];
    let n = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        std::future::poll_fn(|cx| quic.poll_recv(cx, &mut [IoSliceMut::new(&mut slot)], &mut meta)),
    )
    .await
    .expect("in time")
    .expect("received");
    assert_eq!((n, meta[0].len), (1, 30));
    assert_eq!(meta[0].addr, tx.local_addr().expect("addr"));
    assert!(slot[..30].iter().all(|&b| b == 0x40));
    assert_eq!(fast.counters.refused.load(Ordering::Relaxed), 1);

    let reader = Arc::downgrade(&quic.shared);
    drop(quic);
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(reader.upgrade().is_none(), "the reader outlived its socket");
}

#[test]
fn coalesced_messages_are_dealt_one_packet_per_slot_without_fast_packets() {
    let slot = 4 * MAX_DATAGRAM;
    let mut batch = Batch::new(AnonBuf::new(slot * 5).expect("mmap"), slot, 5);
    // Message 0: packets of 1200, 1200 and 600 bytes; 1: one of 100; 2: empty; 3: one
    // packet too big for quinn's slot; 4: a fast packet (refused: no session).
    for (i, b) in batch.buf[..3000].iter_mut().enumerate() {
        *b = (i / 1200) as u8 + 1;
    }
    batch.buf[slot..slot + 100].fill(9);
    batch.buf[4 * slot..4 * slot + 60].fill(wire::MARKER);
    for (i, m) in [
        meta(3000, 1200),
        meta(100, 100),
        meta(0, 0),
        meta(1500, 1500),
        meta(60, 60),
    ]
    .into_iter()
    .enumerate()
    {
        batch.metas[i] = m;
    }
    batch.count = 5;
    let fast = Table::default();
    assert_eq!(batch.open_fast(5, &fast), (6, 5));
    assert_eq!(fast.counters.refused.load(Ordering::Relaxed), 1);
    let mut slots = vec![[0u8; MAX_DATAGRAM]; 2];
    let mut metas = [RecvMeta::default(); 2];
    let mut deal = |batch: &mut Batch| {
        let mut bufs: Vec<IoSliceMut<'_>> = slots
            .iter_mut()
            .map(|s| IoSliceMut::new(&mut s[..]))
            .collect();
        let n = batch.deal(&mut bufs, &mut metas);
        let got: Vec<(usize, u8)> = (0..n).map(|i| (metas[i].len, bufs[i][0])).collect();
        got
    };
    assert_eq!(deal(&mut batch), vec![(1200, 1), (1200, 2)]);
    assert!(!batch.is_empty());
    assert_eq!(deal(&mut batch), vec![(600, 3), (100, 9)]);
    assert_eq!(deal(&mut batch), vec![]);
    assert!(batch.is_empty());
    assert!(metas.iter().all(|m| m.stride == m.len));
}

/// A ping's fast packet read together with a QUIC packet (an ACK) is still alone among
/// fast packets, so it is written to the TUN at once; two fast ones, or a GRO message, are
/// a burst's.
#[test]
fn a_fast_packet_read_with_quic_packets_counts_alone() {
    let slot = MAX_DATAGRAM;
    let mut batch = Batch::new(AnonBuf::new(slot * 3).expect("mmap"), slot, 3);
    batch.buf[0] = 0x40;
    batch.buf[slot] = wire::MARKER;
    batch.buf[2 * slot] = wire::MARKER_AES;
    for (i, m) in [meta(40, 40), meta(100, 100), meta(0, 0)]
        .into_iter()
        .enumerate()
    {
        batch.metas[i] = m;
    }
    batch.count = 3;
    assert_eq!(batch.fast_messages(3), 1, "an empty message is no packet");
    batch.metas[2] = meta(100, 100);
    assert_eq!(batch.fast_messages(3), 2);
    assert_eq!(batch.fast_messages(2), 1);
    batch.buf[slot] = 0x40;
    assert_eq!(batch.fast_messages(2), 0);
}

/// A peer's flood through a connected socket (GRO messages of 64 QUIC packets, five
/// times, 320 in all): quinn's side queue holds SIDE_CAP and drops the rest; quinn takes
/// them in order, fast packets never among them, and the queue then takes more again.
#[tokio::test]
async fn quinns_side_queue_is_capped_and_dealt_in_order() {
    let fast = Arc::new(Table::default());
    let (quic, side) = unread(fast.clone());
    let slot = 64 * 20;
    let mut batch = Batch::new(AnonBuf::new(slot).expect("mmap"), slot, 1);
    for round in 0..5u8 {
        for (i, b) in batch.buf[..slot].iter_mut().enumerate() {
            *b = match i % 20 {
                0 => 0x40,
                1 => round,
                _ => (i / 20) as u8,
            };
        }
        // One fast packet in the flood: opened (refused), never queued for quinn.
        batch.buf[20] = wire::MARKER;
        batch.metas[0] = meta(slot, 20);
        batch.count = 1;
        batch.msg = 0;
        batch.pos = 0;
        batch.open_fast(1, &fast);
        side.take_quic(&mut batch, false);
    }
    assert_eq!(lock(&side.0.handoff).side.len(), SIDE_CAP);
    let mut seen = Vec::new();
    let mut buf = [0u8; 64];
    let mut metas = [RecvMeta::default()];
    let waker = std::task::Waker::noop();
    let mut cx = Context::from_waker(waker);
    while let Poll::Ready(Ok(1)) =
        quic.poll_recv(&mut cx, &mut [IoSliceMut::new(&mut buf)], &mut metas)
    {
        assert_eq!(
            (metas[0].len, buf[0]),
            (20, 0x40),
            "a fast packet reached quinn"
        );
        seen.push((buf[1], buf[2]));
    }
    assert_eq!(seen.len(), SIDE_CAP);
    // Rounds 0..3 whole (63 each, 252), then the first four of round 4's.
    assert_eq!(seen[0], (0, 0));
    assert_eq!(seen[62], (0, 63));
    assert_eq!(seen[63], (1, 0));
    assert_eq!(seen[SIDE_CAP - 1], (4, 4));
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "out of order");
    side.take_quic(&mut batch, false);
    assert_eq!(lock(&side.0.handoff).side.len(), 0, "nothing left to take");
    batch.msg = 0;
    batch.pos = 0;
    side.take_quic(&mut batch, false);
    assert_eq!(
        lock(&side.0.handoff).side.len(),
        63,
        "emptied, it takes again"
    );
}

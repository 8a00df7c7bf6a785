//! A burst of fast packets on a node with a real TUN device (offloads on): its TCP segments
//! are joined and written by the thread that opened them, not queued for the writer task;
//! and never ahead of packets already waiting for the writer.

use super::*;

/// The `n`th of a TCP flow's data segments from a to b (10.66.0.2), `len` payload bytes each.
fn tcp_segment(pool: &PacketPool, n: u32, len: usize) -> PacketBuf {
    let mut l4 = vec![0u8; 20 + len];
    l4[..4].copy_from_slice(&[0x9c, 0x40, 0x13, 0x89]);
    l4[4..8].copy_from_slice(&(1000 + n * len as u32).to_be_bytes());
    l4[8..12].copy_from_slice(&1u32.to_be_bytes());
    l4[12] = 0x50; // 20-byte header
    l4[13] = 0x10; // ACK only
    l4[14..16].copy_from_slice(&512u16.to_be_bytes());
    for (i, b) in l4[20..].iter_mut().enumerate() {
        *b = (i as u32 + n) as u8;
    }
    let p = build(6, OWN.octets(), [10, 66, 0, 2], &l4);
    pool.copy_of(&p).expect("a pooled buffer")
}

/// (bytes, packets) the device `name` has taken from us, in this thread's namespace.
pub(super) fn device_rx(name: &str) -> (u64, u64) {
    let dev = std::fs::read_to_string("/proc/thread-self/net/dev").expect("net/dev");
    let line = dev
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(&format!("{name}:")))
        .expect("the device is listed");
    let mut f = line.split_whitespace().map(|v| v.parse::<u64>().unwrap());
    (f.next().unwrap(), f.next().unwrap())
}

/// A TUN device `name` with offloads, as b (10.66.0.2) has it.
fn vnet_tun(name: &str) -> Arc<tun::Tun> {
    let dev = tun::open(&tun::TunConfig {
        name: name.into(),
        address: Ipv4Addr::new(10, 66, 0, 2),
        prefix: 24,
        mtu: 1420,
        offload: true,
    })
    .expect("TUN");
    assert!(dev.vnet, "offloads on");
    Arc::new(dev)
}

#[tokio::test]
async fn a_burst_is_joined_and_written_by_the_thread_that_opened_it_behind_what_waits() {
    let Some((a, mut b, _)) = friends_in_netns().await else {
        return;
    };
    b.dp.set_tun(vnet_tun("awlburst0"));
    let mut reader = a.dp.reader();
    const N: u32 = 10;
    const LEN: usize = 1000;
    let burst = |first: u32| -> Vec<PacketBuf> {
        (first..first + N)
            .map(|n| tcp_segment(a.dp.pool(), n, LEN))
            .collect()
    };

    // 1. Something waits for b's writer task: the burst queues behind it, in order, and
    //    nothing reaches the device ahead of it.
    let (bytes0, packets0) = device_rx("awlburst0");
    b.dp.tun_sender()
        .try_send(packet(b.dp.pool(), 17, 100))
        .expect("queued");
    a.dp.route_segments(&mut reader, &mut burst(0), false);
    until(
        || counts(&a, &b).1 .0 == u64::from(N),
        "the burst did not arrive",
    )
    .await;
    let first = timeout(T, b.to_tun.recv()).await.unwrap().unwrap();
    assert_eq!(first.data()[9], 17, "what waited comes first");
    for n in 0..N {
        let p = timeout(T, b.to_tun.recv()).await.unwrap().unwrap();
        let seq = u32::from_be_bytes(p.data()[24..28].try_into().unwrap());
        assert_eq!(seq, 1000 + n * LEN as u32, "segment {n} in order");
    }
    assert_eq!(
        device_rx("awlburst0"),
        (bytes0, packets0),
        "nothing written past the queue"
    );

    // 2. Nothing waits: the burst's segments are joined and written to the device by b's
    //    fast packets' thread, in fewer writes than segments, every byte there; the queue
    //    gets none.
    a.dp.route_segments(&mut reader, &mut burst(N), false);
    let payload = u64::from(N) * LEN as u64;
    until(
        || device_rx("awlburst0").0 - bytes0 >= payload,
        "the burst did not reach the device",
    )
    .await;
    let (bytes, packets) = device_rx("awlburst0");
    let writes = packets - packets0;
    assert!(writes < u64::from(N), "{writes} writes for {N} segments");
    // Each write carries the flow's 40 header bytes once (and the virtio-net header, which
    // the device does not count).
    assert_eq!(bytes - bytes0, payload + 40 * writes);
    assert!(b.to_tun.try_recv().is_err(), "nothing took the queue");
    assert_eq!(counts(&a, &b).1, (2 * u64::from(N), 2 * u64::from(N)));
}

/// The writer task joins the queue's segments through the same `Burst`: a flow's contiguous
/// segments go in one write, and a gap in the sequence ends the run (what does not continue
/// it is never joined to it).
#[tokio::test]
async fn the_writer_task_joins_queued_segments_and_a_gap_ends_the_run() {
    if !in_new_netns() {
        return;
    }
    let dev = vnet_tun("awlwriter0");
    let pool = PacketPool::new(16, 3586);
    let (tx, rx) = mpsc::channel(16);
    const LEN: usize = 1000;
    // Queued before the writer first runs, so it takes all ten in one batch.
    for n in (0..5).chain(6..11) {
        tx.try_send(tcp_segment(&pool, n, LEN)).expect("queued");
    }
    let (bytes0, packets0) = device_rx("awlwriter0");
    let writer = tokio::spawn(tun::writer(dev, rx));
    let payload = 10 * LEN as u64;
    until(
        || device_rx("awlwriter0").0 - bytes0 >= payload,
        "the segments did not reach the device",
    )
    .await;
    let (bytes, packets) = device_rx("awlwriter0");
    assert_eq!(packets - packets0, 2, "one write each side of the gap");
    assert_eq!(bytes - bytes0, payload + 2 * 40);
    writer.abort();
}

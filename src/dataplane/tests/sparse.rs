//! The TUN reader's thread at a sparse pace: a lone packet is read once, not until the
//! device is dry; and the kernel's answer to a packet for the node is read before a wait.

use super::*;

/// At a sparse pace the thread reads a lone packet once and waits again, where reading the
/// device dry cost a failed read per packet; a packet behind it is not lost (the wait returns
/// at once) and a dense pace reads the device dry as before. A real TUN in a network
/// namespace, the thread's job stepped by hand.
#[tokio::test]
async fn a_lone_packet_at_a_sparse_pace_is_read_once_and_what_follows_it_is_not_lost() {
    use crate::sys::packet_thread::{Job, Step};
    let Some((a, mut b, _)) = friends_in_netns().await else {
        return;
    };
    let dev = quiet_tun("awlsparse0");
    let home = tun::Home::new(dev.clone(), a.dp.clone());
    let mut job = home.thread_job();
    let udp = std::net::UdpSocket::bind((OWN, 0)).expect("bind");
    // The kernel queues each on the device before `send_to` returns.
    let to_b = |n: u8| {
        udp.send_to(&[n; 100], (Ipv4Addr::new(10, 66, 0, 2), 9))
            .expect("send");
    };
    let dry = |s: Step| matches!(s, Step::Dry(fd) if fd == dev.fd());
    let readable = || crate::sys::wait::readable_now(dev.fd());
    async fn got(b: &mut Node, n: u8) {
        let p = timeout(T, b.to_tun.recv()).await.expect("arrives").unwrap();
        assert!(p.data().ends_with(&[n; 100]), "packet {n}");
    }
    assert!(dry(job.step()), "an empty device: the thread waits");
    // 1. Sparse: one read, and the thread waits again without a second, failing one.
    to_b(1);
    assert!(
        dry(job.step()),
        "a lone packet at a sparse pace was not read alone"
    );
    got(&mut b, 1).await;
    assert!(!readable());
    // 2. Sparse, but a second packet came behind the first: read alone too, and not lost,
    //    since the wait returns at once and the next read takes it.
    job.set_pace(false);
    to_b(2);
    to_b(3);
    assert!(dry(job.step()));
    assert!(readable(), "the packet behind it would not end the wait");
    assert!(
        !dry(job.step()),
        "read right after a read: the pace is dense"
    );
    assert!(dry(job.step()), "read dry");
    got(&mut b, 2).await;
    got(&mut b, 3).await;
    // 3. Dense: refused the shortcut; every packet is read until the device is dry.
    job.set_pace(true);
    to_b(4);
    to_b(5);
    assert!(!dry(job.step()), "a dense pace stopped after one packet");
    assert!(!dry(job.step()));
    assert!(dry(job.step()));
    got(&mut b, 4).await;
    got(&mut b, 5).await;
}

/// A TUN device with a's address and no IPv6 (its router solicitations would come at their
/// own time), in this test's namespace.
fn quiet_tun(name: &str) -> Arc<tun::Tun> {
    for k in ["all", "default"] {
        std::fs::write(format!("/proc/sys/net/ipv6/conf/{k}/disable_ipv6"), "1")
            .expect("disable IPv6 in this namespace");
    }
    Arc::new(
        tun::open(&tun::TunConfig {
            name: name.into(),
            address: OWN,
            prefix: 24,
            mtu: 1420,
            offload: false,
        })
        .expect("TUN"),
    )
}

/// A ping from b to a, alone on the fast path: a's fast packets' thread writes it to the
/// device, the kernel queues its echo reply inside that write, and the thread is told to read
/// the device before it waits (`has_work`); the reply reaches b. Refused: packets for the
/// node that came in a run (not alone) are not written by the thread, and tell it nothing.
#[tokio::test]
async fn the_answer_to_a_lone_packet_for_the_node_is_read_before_the_thread_waits() {
    use crate::sys::packet_thread::{Job, Step};
    let Some((mut a, mut b, _)) = friends_in_netns().await else {
        return;
    };
    let dev = quiet_tun("awlanswer0");
    a.dp.set_tun(dev.clone());
    let home = tun::Home::new(dev.clone(), a.dp.clone());
    let mut job = home.thread_job();
    assert!(matches!(job.step(), Step::Dry(_)), "an empty device");
    assert!(!job.has_work());
    // b is 10.66.0.1 to itself, a is 10.66.0.3 to b.
    let mut icmp = vec![8, 0, 0, 0, 0x12, 0x34, 0, 1];
    icmp.extend_from_slice(&[7; 56]);
    let sum = packet::fold(packet::sum16(&icmp, 0));
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let ping = build(1, OWN.octets(), [10, 66, 0, 3], &icmp);
    let mut buf = ping.clone();
    buf.resize(ping.len() + 256, 0);
    let mut reader = b.dp.reader();
    b.dp.route_from(&mut reader, &mut buf, ping.len(), false);
    let readable = || crate::sys::wait::readable_now(dev.fd());
    until(readable, "the echo reply was not queued on a's device").await;
    assert!(job.has_work(), "the thread was not told of the answer");
    assert!(!job.has_work(), "told twice");
    assert!(
        matches!(job.step(), Step::Dry(_)),
        "read once, at a sparse pace"
    );
    let reply = timeout(T, b.to_tun.recv()).await.expect("arrives").unwrap();
    let r = reply.data();
    assert_eq!((r[9], r[20]), (1, 0), "an ICMP echo reply");
    assert_eq!(&r[24..28], &icmp[4..8], "to b's ping");
    assert!(a.to_tun.try_recv().is_err());

    // Refused: a lone packet for the node that the kernel does not answer (an echo reply)
    // is written, and tells the thread nothing.
    let before = super::burst::device_rx("awlanswer0").1;
    icmp[0] = 0;
    icmp[2..4].fill(0);
    let sum = packet::fold(packet::sum16(&icmp, 0));
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let pong = build(1, OWN.octets(), [10, 66, 0, 3], &icmp);
    buf[..pong.len()].copy_from_slice(&pong);
    b.dp.route_from(&mut reader, &mut buf, pong.len(), false);
    until(
        || super::burst::device_rx("awlanswer0").1 > before,
        "the echo reply was not written",
    )
    .await;
    assert!(!job.has_work(), "told of an answer to an echo reply");
    // Refused: two packets for the node in one run take a's queue, not the device.
    let udp = |n: u8| {
        let mut l4 = vec![0x9c, 0x40, 0, 9, 0, 28, 0, 0];
        l4.extend_from_slice(&[n; 20]);
        a.dp.pool()
            .copy_of(&build(17, OWN.octets(), [10, 66, 0, 3], &l4))
            .expect("a pooled buffer")
    };
    let mut run = vec![udp(1), udp(2)];
    b.dp.route_segments(&mut reader, &mut run, false);
    for n in [1u8, 2] {
        let p = timeout(T, a.to_tun.recv()).await.expect("queued").unwrap();
        assert!(p.data().ends_with(&[n; 20]), "packet {n}");
    }
    assert!(!readable(), "written to the device");
    assert!(!job.has_work(), "a run told the thread of an answer");
}

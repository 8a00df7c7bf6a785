//! The TUN reader's thread at a sparse pace: a lone packet is read once, not until the
//! device is dry.

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
    // No IPv6 on the device: its router solicitations would come at their own time.
    for k in ["all", "default"] {
        std::fs::write(format!("/proc/sys/net/ipv6/conf/{k}/disable_ipv6"), "1")
            .expect("disable IPv6 in this namespace");
    }
    let dev = Arc::new(
        tun::open(&tun::TunConfig {
            name: "awlsparse0".into(),
            address: OWN,
            prefix: 24,
            mtu: 1420,
            offload: false,
        })
        .expect("TUN"),
    );
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

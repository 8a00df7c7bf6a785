//! Checksums the sender's kernel left partial (TUN offloads): sent so only to nodes that
//! list the fast path's partial checksums, completed for every other way, and written by
//! the receiver for its kernel to complete.

use super::*;
use crate::dataplane::packet::Ipv4;
use crate::p2p::fastpath::PARTIAL_PROTOCOL;

/// A UDP packet from this node to `dst` as its kernel hands it over with offloads: the
/// checksum field holds the pseudo-header sum only.
fn partial_udp(dst: [u8; 4], payload: usize) -> Vec<u8> {
    let len = 8 + payload;
    let mut l4 = vec![0x9c, 0x40, 0x27, 0x0f, (len >> 8) as u8, len as u8, 0, 0];
    l4.extend((0..payload).map(|i| (i * 7) as u8));
    let mut p = build(17, OWN.octets(), dst, &l4);
    let at = Ipv4::new_checked(&mut p).unwrap().make_l4_partial();
    assert_eq!(at, Some((20, 6)));
    p
}

/// The UDP packet `p` from `src` to `dst`, checksums whole.
fn whole(p: &[u8], src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    let mut l4 = p[20..].to_vec();
    l4[6..8].fill(0); // build() sums the field too
    build(p[9], src, dst, &l4)
}

/// `p` as b has it after the rewrite (from a's address at b, to b's own), checksums whole.
fn as_received(p: &[u8]) -> Vec<u8> {
    whole(p, [10, 66, 0, 3], OWN.octets())
}

/// `p` in a reader's buffer, with room behind it for the trailer.
fn in_reader(p: &[u8]) -> Vec<u8> {
    let mut buf = p.to_vec();
    buf.resize(p.len() + 64, 0);
    buf
}

/// To b, which lists the partial checksums, a sends the kernel's packet as it is (its
/// reader's buffer not summed), single and as a super-packet's segments; b (here without
/// offloads: its queue) completes each, and what arrives is the packet with whole
/// checksums. Refused: to c, which does not list them (an older awl), d completes the
/// checksum before it seals, and c gets the same whole packet.
#[tokio::test]
async fn partial_checksums_go_only_to_nodes_that_take_them() {
    let (a, mut b, path) = friends_with_path().await;
    assert!(a.host.protocols().iter().any(|p| p == PARTIAL_PROTOCOL));
    assert!(path.fast.as_ref().expect("fast path").takes_partial());
    let mut reader = a.dp.reader();
    let p = partial_udp([10, 66, 0, 2], 1000);
    let mut buf = in_reader(&p);
    a.dp.route_from(&mut reader, &mut buf, p.len(), true);
    let got = timeout(T, b.to_tun.recv()).await.unwrap().unwrap();
    assert_eq!(&buf[..p.len()], &p[..], "a summed a packet b completes");
    assert_eq!(got.data(), &as_received(&p)[..]);
    let mut segs: Vec<PacketBuf> = (0..3)
        .map(|n| a.dp.pool().copy_of(&partial_udp([10, 66, 0, 2], 500 + n)))
        .collect::<Option<_>>()
        .expect("pooled buffers");
    let want: Vec<Vec<u8>> = segs.iter().map(|s| as_received(s.data())).collect();
    a.dp.route_segments(&mut reader, &mut segs, true);
    for w in want {
        let got = timeout(T, b.to_tun.recv()).await.unwrap().unwrap();
        assert_eq!(got.data(), &w[..]);
    }
    assert_eq!(
        settled_rx(&a, &b, (4, 4)).await,
        (4, 4),
        "all on the fast path"
    );

    let c = node(true).await;
    c.host.fast_table().set_partial(false);
    let d = node(true).await;
    assert!(!c.host.protocols().iter().any(|p| p == PARTIAL_PROTOCOL));
    befriend(&d, &c).await;
    assert!(
        !fast_tx(&d, &c).takes_partial(),
        "c does not list partial checksums"
    );
    let mut c = c;
    let mut buf = in_reader(&p);
    d.dp.route_from(&mut d.dp.reader(), &mut buf, p.len(), true);
    let sealed = whole(&p, OWN.octets(), [10, 66, 0, 2]);
    assert_eq!(&buf[..p.len()], &sealed[..], "d sealed it complete");
    let got = timeout(T, c.to_tun.recv()).await.unwrap().unwrap();
    assert_eq!(got.data(), &as_received(&p)[..]);
}

/// b writes a partial checksum to a device with offloads behind a header that asks the
/// kernel to complete it, and the kernel takes it: the datagram reaches a socket on b.
#[tokio::test]
async fn a_partial_checksum_is_written_for_the_kernel_to_complete() {
    let Some((a, b, _)) = friends_in_netns().await else {
        return;
    };
    let dev = tun::open(&tun::TunConfig {
        name: "awlpartial0".into(),
        address: OWN,
        prefix: 24,
        mtu: 1420,
        offload: true,
    })
    .expect("TUN");
    assert!(dev.vnet, "offloads on");
    b.dp.set_tun(Arc::new(dev));
    let sock = tokio::net::UdpSocket::bind((OWN, 9999))
        .await
        .expect("bind");
    let p = partial_udp([10, 66, 0, 2], 1000);
    a.dp.route_from(&mut a.dp.reader(), &mut in_reader(&p), p.len(), true);
    let mut got = [0u8; 2000];
    let (n, from) = timeout(T, sock.recv_from(&mut got))
        .await
        .expect("the kernel took the packet")
        .expect("recv");
    assert_eq!(&got[..n], &p[28..]);
    assert_eq!(from, (Ipv4Addr::new(10, 66, 0, 3), 40000).into());
    assert_eq!(settled_rx(&a, &b, (1, 1)).await, (1, 1));
}

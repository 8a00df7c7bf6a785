//! Packet parsing, checksums and the receive-side rewrite, against packets built by hand.

use super::*;

/// The textbook sum: big-endian 16-bit words, odd byte padded.
fn sum16_naive(data: &[u8], mut acc: u32) -> u32 {
    for c in data.chunks(2) {
        acc += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    acc
}

#[test]
fn only_an_echo_request_or_a_syn_asks_the_kernel_an_answer() {
    let tcp = |flags: u8| {
        let mut l4 = [0u8; 20];
        l4[12] = 0x50;
        l4[13] = flags;
        build(PROTO_TCP, [10, 0, 0, 1], [10, 0, 0, 2], &l4)
    };
    let icmp = |kind: u8| build(PROTO_ICMP, [10, 0, 0, 1], [10, 0, 0, 2], &[kind, 0, 0, 0]);
    assert!(asks_an_answer(&icmp(8)));
    assert!(asks_an_answer(&tcp(0x02)));
    // Refused: replies, ACKs, other protocols, and anything cut short or malformed.
    assert!(!asks_an_answer(&icmp(0)));
    assert!(!asks_an_answer(&tcp(0x10)));
    assert!(!asks_an_answer(&tcp(0x12 & !0x02)));
    assert!(!asks_an_answer(&build(
        PROTO_UDP,
        [10, 0, 0, 1],
        [10, 0, 0, 2],
        &[8; 8]
    )));
    let ping = icmp(8);
    assert!(!asks_an_answer(&ping[..20]), "no ICMP header");
    let mut bad = ping.clone();
    bad[0] = 0x44;
    assert!(!asks_an_answer(&bad), "IHL under 20 bytes");
    bad[0] = 0x65;
    assert!(!asks_an_answer(&bad), "not IPv4");
    assert!(!asks_an_answer(&[]));
}

#[test]
fn sum16_matches_the_textbook_sum() {
    // Lengths around every remainder case, bytes that carry often, nonzero start values.
    let mut x = 0x1234_5678u32;
    let data: Vec<u8> = (0..300)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 3) as u8 | 0x80
        })
        .collect();
    for len in 0..data.len() {
        for start in [0u32, 1, 0xffff, 0x1_2345] {
            let d = &data[..len];
            assert_eq!(
                fold(sum16(d, start)),
                fold(sum16_naive(d, start)),
                "len {len}"
            );
        }
    }
    // Every 64-bit add carries.
    for n in [64, 1500, 4096] {
        let ones = vec![0xff; n];
        assert_eq!(fold(sum16(&ones, 0)), fold(sum16_naive(&ones, 0)), "{n}");
    }
    assert_eq!(fold(sum16(&[], 0)), 0xffff);
}

/// Builds an IPv4 packet by hand with correct checksums computed independently of the
/// code under test (straightforward big-endian word sums).
pub fn build(proto: u8, src: [u8; 4], dst: [u8; 4], l4: &[u8]) -> Vec<u8> {
    let total = 20 + l4.len();
    let mut p = vec![
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0x12,
        0x34,
        0x40,
        0,
        64,
        proto,
        0,
        0,
    ];
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(l4);
    let csum = |data: &[u8], init: u64| -> u16 {
        let mut s = init;
        for i in (0..data.len()).step_by(2) {
            let hi = u64::from(data[i]) << 8;
            let lo = data.get(i + 1).map_or(0, |&b| u64::from(b));
            s += hi | lo;
        }
        while s >> 16 != 0 {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    };
    let h = csum(&p[..20], 0);
    p[10..12].copy_from_slice(&h.to_be_bytes());
    let at = match proto {
        6 if l4.len() >= 20 => Some(36),
        17 if l4.len() >= 8 => Some(26),
        _ => None,
    };
    if let Some(at) = at {
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&src);
        pseudo.extend_from_slice(&dst);
        pseudo.extend_from_slice(&[0, proto, (l4.len() >> 8) as u8, l4.len() as u8]);
        pseudo.extend_from_slice(&p[20..]);
        let c = csum(&pseudo, 0);
        p[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }
    p
}

fn udp(payload: &[u8]) -> Vec<u8> {
    let len = 8 + payload.len();
    let mut l4 = vec![0x30, 0x39, 0x00, 0x35, (len >> 8) as u8, len as u8, 0, 0];
    l4.extend_from_slice(payload);
    l4
}

fn tcp(payload: &[u8]) -> Vec<u8> {
    let mut l4 = vec![
        0x13, 0x88, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0,
    ];
    l4.extend_from_slice(payload);
    l4
}

#[test]
fn hand_built_packets_have_valid_checksums() {
    let mut p = build(PROTO_TCP, [10, 66, 0, 2], [10, 66, 0, 1], &tcp(b"hello"));
    let ip = Ipv4::new_checked(&mut p).unwrap();
    assert!(ip.header_checksum_ok());
    assert!(ip.l4_checksum_ok());
}

#[test]
fn rewrite_matches_a_packet_built_with_the_new_addresses() {
    for (proto, l4) in [
        (PROTO_TCP, tcp(b"odd-length!")),
        (PROTO_UDP, udp(b"dns?")),
        (PROTO_ICMP, vec![8, 0, 0xf7, 0xff, 0, 0, 0, 0]),
    ] {
        let mut got = build(proto, [10, 66, 0, 1], [10, 66, 0, 9], &l4);
        rewrite(
            &mut got,
            Some(Ipv4Addr::new(10, 66, 0, 3)),
            Some(Ipv4Addr::new(10, 66, 0, 1)),
        )
        .unwrap();
        let want = build(proto, [10, 66, 0, 3], [10, 66, 0, 1], &l4);
        assert_eq!(got, want, "proto {proto}");
    }
}

#[test]
fn incremental_rewrite_gives_the_same_bytes_as_the_full_one() {
    for (proto, l4) in [
        (PROTO_TCP, tcp(b"odd-length!")),
        (PROTO_TCP, tcp(&[0xffu8; 1380])),
        (PROTO_UDP, udp(b"dns?")),
        (PROTO_UDP, udp(&[0u8; 3])),
        (PROTO_ICMP, vec![8, 0, 0xf7, 0xff, 0, 0, 0, 0]),
    ] {
        for (src, dst) in [
            ([10, 66, 0, 3], [10, 66, 0, 1]),
            ([255, 255, 255, 255], [0, 0, 0, 0]),
            ([0, 0, 0, 0], [255, 255, 255, 254]),
        ] {
            let mut got = build(proto, [10, 66, 0, 1], [10, 66, 0, 9], &l4);
            rewrite_incremental(&mut got, Some(src.into()), Some(dst.into())).unwrap();
            let want = build(proto, src, dst, &l4);
            assert_eq!(got, want, "proto {proto} {src:?} {dst:?}");
        }
    }
}

#[test]
fn only_source_or_only_destination() {
    let mut p = build(PROTO_UDP, [192, 168, 1, 5], [8, 8, 8, 8], &udp(b"x"));
    rewrite(&mut p, Some(Ipv4Addr::new(10, 66, 0, 7)), None).unwrap();
    assert_eq!(
        p,
        build(PROTO_UDP, [10, 66, 0, 7], [8, 8, 8, 8], &udp(b"x"))
    );
    rewrite(&mut p, None, Some(Ipv4Addr::new(1, 1, 1, 1))).unwrap();
    assert_eq!(
        p,
        build(PROTO_UDP, [10, 66, 0, 7], [1, 1, 1, 1], &udp(b"x"))
    );
}

#[test]
fn first_fragment_gets_an_incremental_update_and_later_ones_are_untouched() {
    let full = build(PROTO_UDP, [10, 66, 0, 1], [10, 66, 0, 2], &udp(&[7u8; 64]));
    let want = build(PROTO_UDP, [10, 66, 0, 5], [10, 66, 0, 1], &udp(&[7u8; 64]));
    // First fragment: first 24 bytes of the datagram, MF set.
    let mut frag = full[..44].to_vec();
    frag[2..4].copy_from_slice(&44u16.to_be_bytes());
    frag[6] = 0x20;
    rewrite(
        &mut frag,
        Some(Ipv4Addr::new(10, 66, 0, 5)),
        Some(Ipv4Addr::new(10, 66, 0, 1)),
    )
    .unwrap();
    assert_eq!(
        frag[26..28],
        want[26..28],
        "L4 checksum equals the one of the whole rewritten datagram"
    );
    assert!(Ipv4::new_checked(&mut frag).unwrap().header_checksum_ok());
    // Later fragment: payload bytes at ihl+6 must not change (AWL's bug corrupts them).
    let mut later = build(PROTO_UDP, [10, 66, 0, 1], [10, 66, 0, 2], &[9u8; 32]);
    later[6] = 0x00;
    later[7] = 0x03; // offset 24 bytes
    let before = later[20..].to_vec();
    rewrite(&mut later, Some(Ipv4Addr::new(10, 66, 0, 5)), None).unwrap();
    assert_eq!(later[20..], before[..]);
}

#[test]
fn malformed_packets_are_refused() {
    assert_eq!(
        rewrite(&mut [0x45; 10], None, None),
        Err(PacketError::Truncated)
    );
    assert_eq!(
        rewrite(&mut [0x60; 40], None, None),
        Err(PacketError::NotIpv4)
    );
    let mut p = build(PROTO_UDP, [1, 1, 1, 1], [2, 2, 2, 2], &udp(b""));
    p[2] = 0xff;
    assert_eq!(rewrite(&mut p, None, None), Err(PacketError::Truncated));
    let mut p = build(PROTO_UDP, [1, 1, 1, 1], [2, 2, 2, 2], &udp(b""));
    p[0] = 0x44;
    assert_eq!(rewrite(&mut p, None, None), Err(PacketError::BadHeader));
    // Truncated L4 header: header checksum fixed, no panic.
    let mut p = build(PROTO_TCP, [1, 1, 1, 1], [2, 2, 2, 2], &[0u8; 4]);
    rewrite(&mut p, Some(Ipv4Addr::new(3, 3, 3, 3)), None).unwrap();
}

/// What a kernel does with a partial checksum when the packet leaves it (skb_checksum_help):
/// sums from `start` to the end, the field as it is, and writes the result at
/// `start + offset` (a zero turned to all ones).
fn complete_as_the_kernel(p: &mut [u8], (start, offset): (u16, u16)) {
    let (start, at) = (usize::from(start), usize::from(start + offset));
    let total = usize::from(u16::from_be_bytes([p[2], p[3]]));
    let c = match fold(sum16_naive(&p[start..total], 0)) {
        0 => 0xffff,
        c => c,
    };
    p[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

/// A partial checksum, rewritten for new addresses and completed as a kernel completes it,
/// is the checksum of the packet built with those addresses; whatever the field held before
/// (the sender's kernel's partial sum, the super-packet's, garbage) does not matter. Refused:
/// protocols without one, fragments and cut headers carry none (the rewrite is then the
/// incremental one).
#[test]
fn a_partial_checksum_completed_by_the_kernel_is_the_packets_checksum() {
    let (src, dst) = ([10, 66, 0, 3], [10, 66, 0, 1]);
    for (proto, l4, at) in [
        (PROTO_TCP, tcp(b"odd-length!"), (20, 16)),
        (PROTO_TCP, tcp(&[0xffu8; 1380]), (20, 16)),
        (PROTO_UDP, udp(b"dns?"), (20, 6)),
        (PROTO_UDP, udp(&[0u8; 3]), (20, 6)),
    ] {
        let want = build(proto, src, dst, &l4);
        for junk in [[0u8, 0], [0xde, 0xad], [0xff, 0xff]] {
            let mut got = build(proto, [10, 66, 0, 1], [10, 66, 0, 9], &l4);
            let field = usize::from(at.0 + at.1);
            got[field..field + 2].copy_from_slice(&junk);
            let partial = rewrite_partial(&mut got, Some(src.into()), Some(dst.into()));
            assert_eq!(partial, Ok(Some(at)), "proto {proto}");
            assert_ne!(got, want, "the segment was not summed");
            complete_as_the_kernel(&mut got, at);
            assert_eq!(got, want, "proto {proto} junk {junk:?}");
        }
    }
    // None to carry: ICMP, a first fragment, a cut TCP header; rewritten as before.
    let icmp = vec![8, 0, 0xf7, 0xff, 0, 0, 0, 0];
    let mut p = build(PROTO_ICMP, [10, 66, 0, 1], [10, 66, 0, 9], &icmp);
    assert_eq!(
        rewrite_partial(&mut p, Some(src.into()), Some(dst.into())),
        Ok(None)
    );
    assert_eq!(p, build(PROTO_ICMP, src, dst, &icmp));
    let full = build(PROTO_UDP, [10, 66, 0, 1], [10, 66, 0, 9], &udp(&[7u8; 64]));
    let mut frag = full[..44].to_vec();
    frag[2..4].copy_from_slice(&44u16.to_be_bytes());
    frag[6] = 0x20;
    let mut incremental = frag.clone();
    assert_eq!(rewrite_partial(&mut frag, Some(src.into()), None), Ok(None));
    rewrite_incremental(&mut incremental, Some(src.into()), None).unwrap();
    assert_eq!(frag, incremental);
    let mut cut = build(PROTO_TCP, [1, 1, 1, 1], [2, 2, 2, 2], &[0u8; 12]);
    assert_eq!(rewrite_partial(&mut cut, None, None), Ok(None));
}

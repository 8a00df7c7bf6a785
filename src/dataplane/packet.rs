//! IPv4 views, Internet checksums, and AWL's receive-side address rewrite.
//!
//! AWL addresses are node-local: the receiver overwrites the source with the IP it assigned to
//! the sender and the destination with its own IP (or keeps one of them for gateway traffic),
//! then fixes the IPv4 header checksum and the TCP/UDP checksum. Never allocates.

use std::net::Ipv4Addr;

pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketError {
    Truncated,
    NotIpv4,
    BadHeader,
}

impl std::fmt::Display for PacketError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PacketError::Truncated => "truncated IP packet",
            PacketError::NotIpv4 => "not an IPv4 packet",
            PacketError::BadHeader => "malformed IPv4 header",
        })
    }
}

impl std::error::Error for PacketError {}

/// IP version from the first nibble (0 for an empty buffer).
pub fn ip_version(pkt: &[u8]) -> u8 {
    pkt.first().map_or(0, |b| b >> 4)
}

/// Whether the kernel answers this IPv4 packet for one of its own addresses as it takes it
/// in: an ICMP echo request, or a TCP segment with SYN (a SYN-ACK or a reset). A short or
/// malformed packet is not.
pub fn asks_an_answer(pkt: &[u8]) -> bool {
    let ihl = usize::from(pkt.first().map_or(0, |b| b & 0x0f)) * 4;
    match (ip_version(pkt), pkt.get(9).copied(), ihl >= 20) {
        (4, Some(PROTO_ICMP), true) => pkt.get(ihl) == Some(&8),
        (4, Some(PROTO_TCP), true) => pkt.get(ihl + 13).is_some_and(|f| f & 0x02 != 0),
        _ => false,
    }
}

/// Ones'-complement sum of `data` (odd byte padded), not yet folded or inverted.
///
/// Eight bytes per step: native-endian 64-bit words added with their carries counted apart
/// (a carry out of bit 63 is worth 1 in ones'-complement arithmetic, as 2^64 ≡ 1 mod
/// 2^16 - 1: RFC 1071 §2's end-around carry), folded once and byte-swapped at the end
/// (ones'-complement sums don't depend on byte order). One add and one add-with-carry per
/// step where splitting each word into 32-bit halves took about eight instructions. This is
/// the hottest loop of the data plane (every TCP segment cut from a super-packet).
pub fn sum16(data: &[u8], acc: u32) -> u32 {
    // Whole 8-byte arrays, not a closure over slices: at opt-level "z" the closure and its
    // slice indexing were called out of line, about 6k instructions per 1400 B packet.
    let (words, mut rest) = data.as_chunks::<8>();
    let mut wide = 0u64;
    let mut carries = 0u64;
    for w in words {
        let (s, c) = wide.overflowing_add(u64::from_ne_bytes(*w));
        wide = s;
        carries += u64::from(c);
    }
    let (s, c) = wide.overflowing_add(carries);
    let wide = s + u64::from(c);
    let mut sum = (wide & 0xffff_ffff) + (wide >> 32);
    if let Some((w, r)) = rest.split_first_chunk::<4>() {
        sum += u64::from(u32::from_ne_bytes(*w));
        rest = r;
    }
    if let Some((w, r)) = rest.split_first_chunk::<2>() {
        sum += u64::from(u16::from_ne_bytes(*w));
        rest = r;
    }
    if let [last] = rest {
        sum += u64::from(u16::from_ne_bytes([*last, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    acc.wrapping_add(u32::from(u16::from_be(sum as u16)))
}

/// Folds a 32-bit ones'-complement sum and inverts it.
pub fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// A checked view of an IPv4 packet: the header is complete and `total length` fits.
pub struct Ipv4<'a> {
    buf: &'a mut [u8],
    ihl: usize,
    total: usize,
}

impl<'a> Ipv4<'a> {
    pub fn new_checked(buf: &'a mut [u8]) -> Result<Self, PacketError> {
        if buf.len() < 20 {
            return Err(PacketError::Truncated);
        }
        if buf[0] >> 4 != 4 {
            return Err(PacketError::NotIpv4);
        }
        let ihl = usize::from(buf[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
        if ihl < 20 || total < ihl {
            return Err(PacketError::BadHeader);
        }
        if total > buf.len() {
            return Err(PacketError::Truncated);
        }
        Ok(Ipv4 { buf, ihl, total })
    }

    pub fn src(&self) -> Ipv4Addr {
        Ipv4Addr::new(self.buf[12], self.buf[13], self.buf[14], self.buf[15])
    }

    pub fn dst(&self) -> Ipv4Addr {
        Ipv4Addr::new(self.buf[16], self.buf[17], self.buf[18], self.buf[19])
    }

    pub fn protocol(&self) -> u8 {
        self.buf[9]
    }

    pub fn total_len(&self) -> usize {
        self.total
    }

    /// Fragment offset in bytes; more-fragments flag.
    pub fn fragment(&self) -> (usize, bool) {
        let v = u16::from_be_bytes([self.buf[6], self.buf[7]]);
        (usize::from(v & 0x1fff) * 8, v & 0x2000 != 0)
    }

    pub fn set_src(&mut self, a: Ipv4Addr) {
        self.buf[12..16].copy_from_slice(&a.octets());
    }

    pub fn set_dst(&mut self, a: Ipv4Addr) {
        self.buf[16..20].copy_from_slice(&a.octets());
    }

    pub fn header_checksum_ok(&self) -> bool {
        fold(sum16(&self.buf[..self.ihl], 0)) == 0
    }

    pub fn fill_header_checksum(&mut self) {
        self.buf[10] = 0;
        self.buf[11] = 0;
        let c = fold(sum16(&self.buf[..self.ihl], 0));
        self.buf[10..12].copy_from_slice(&c.to_be_bytes());
    }

    /// Offset of the TCP/UDP checksum field, if this packet carries a whole L4 header.
    fn l4_checksum_offset(&self) -> Option<usize> {
        let off = match self.protocol() {
            PROTO_TCP => 16,
            PROTO_UDP => 6,
            _ => return None,
        };
        let need = if self.protocol() == PROTO_TCP { 20 } else { 8 };
        (self.total - self.ihl >= need).then_some(self.ihl + off)
    }

    fn pseudo_header_sum(&self, l4_len: usize) -> u32 {
        let mut acc = sum16(&self.buf[12..20], 0);
        acc = acc.wrapping_add(u32::from(self.protocol()));
        acc.wrapping_add(l4_len as u32)
    }

    /// Recomputes the whole TCP/UDP checksum (unfragmented packets only).
    pub fn fill_l4_checksum(&mut self) {
        let (offset, more) = self.fragment();
        if offset != 0 || more {
            return;
        }
        let Some(at) = self.l4_checksum_offset() else {
            return;
        };
        let proto = self.protocol();
        self.buf[at] = 0;
        self.buf[at + 1] = 0;
        let l4_len = self.total - self.ihl;
        let acc = sum16(
            &self.buf[self.ihl..self.total],
            self.pseudo_header_sum(l4_len),
        );
        let mut c = fold(acc);
        if proto == PROTO_UDP && c == 0 {
            c = 0xffff; // 0 means "no checksum" in UDP
        }
        self.buf[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }

    pub fn l4_checksum_ok(&self) -> bool {
        let Some(at) = self.l4_checksum_offset() else {
            return true;
        };
        if self.protocol() == PROTO_UDP && self.buf[at] == 0 && self.buf[at + 1] == 0 {
            return true;
        }
        let l4_len = self.total - self.ihl;
        fold(sum16(
            &self.buf[self.ihl..self.total],
            self.pseudo_header_sum(l4_len),
        )) == 0
    }

    /// RFC 1624 update of the L4 checksum after the addresses changed from `old` (8 bytes:
    /// src ‖ dst). Used for the first fragment, whose checksum covers data we don't have.
    fn adjust_l4_checksum(&mut self, old: [u8; 8]) {
        let (offset, _) = self.fragment();
        if offset != 0 {
            return;
        }
        let Some(at) = self.l4_checksum_offset() else {
            return;
        };
        let cur = u16::from_be_bytes([self.buf[at], self.buf[at + 1]]);
        if self.protocol() == PROTO_UDP && cur == 0 {
            return;
        }
        // HC' = ~(~HC + ~m + m')
        let mut acc = u32::from(!cur);
        for c in old.chunks_exact(2) {
            acc = acc.wrapping_add(u32::from(!u16::from_be_bytes([c[0], c[1]])));
        }
        acc = sum16(&self.buf[12..20], acc);
        let mut c = fold(acc);
        if self.protocol() == PROTO_UDP && c == 0 {
            // 0 means "no checksum" in UDP; the same sum is sent as all ones.
            c = 0xffff;
        }
        self.buf[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }
}

/// AWL's receive-side rewrite: replace source and/or destination and fix the checksums —
/// the whole TCP/UDP checksum for an unfragmented packet (as AWL does), an incremental update
/// for a first fragment, nothing for later fragments (they carry no L4 header).
pub fn rewrite(
    pkt: &mut [u8],
    src: Option<Ipv4Addr>,
    dst: Option<Ipv4Addr>,
) -> Result<(), PacketError> {
    rewrite_with(pkt, src, dst, true)
}

/// The rewrite with an incremental L4 checksum update (RFC 1624) instead of summing the whole
/// segment: for packets from awl nodes, which send only complete checksums (their TUN has no
/// offloads). An AWL sender's packets keep the full recompute AWL's receivers do.
pub fn rewrite_incremental(
    pkt: &mut [u8],
    src: Option<Ipv4Addr>,
    dst: Option<Ipv4Addr>,
) -> Result<(), PacketError> {
    rewrite_with(pkt, src, dst, false)
}

fn rewrite_with(
    pkt: &mut [u8],
    src: Option<Ipv4Addr>,
    dst: Option<Ipv4Addr>,
    full: bool,
) -> Result<(), PacketError> {
    let mut ip = Ipv4::new_checked(pkt)?;
    let mut old = [0u8; 8];
    old.copy_from_slice(&ip.buf[12..20]);
    if let Some(s) = src {
        ip.set_src(s);
    }
    if let Some(d) = dst {
        ip.set_dst(d);
    }
    ip.fill_header_checksum();
    match ip.fragment() {
        (0, false) if full => ip.fill_l4_checksum(),
        _ => ip.adjust_l4_checksum(old),
    }
    Ok(())
}

#[cfg(test)]
pub mod tests {
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
}

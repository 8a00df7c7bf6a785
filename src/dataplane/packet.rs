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

    /// Recomputes the whole TCP/UDP checksum (unfragmented packets only): made partial, then
    /// completed as a kernel completes it.
    pub fn fill_l4_checksum(&mut self) {
        let Some((start, offset)) = self.make_l4_partial() else {
            return;
        };
        let (start, at) = (usize::from(start), usize::from(start + offset));
        let mut c = fold(sum16(&self.buf[start..self.total], 0));
        if self.protocol() == PROTO_UDP && c == 0 {
            c = 0xffff; // 0 means "no checksum" in UDP
        }
        self.buf[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }

    /// Makes the TCP/UDP checksum partial, as a kernel leaves it for an offload
    /// (CHECKSUM_PARTIAL): the pseudo-header sum, not inverted, in the field, and the sum over
    /// the segment left to whoever completes it. Returns where the segment starts and the
    /// field's offset in it (a virtio-net header's `csum_start`, `csum_offset`); `None`, with
    /// nothing changed, for other protocols, fragments and a cut L4 header.
    pub fn make_l4_partial(&mut self) -> Option<(u16, u16)> {
        if self.fragment() != (0, false) {
            return None;
        }
        let at = self.l4_checksum_offset()?;
        let partial = !fold(self.pseudo_header_sum(self.total - self.ihl));
        self.buf[at..at + 2].copy_from_slice(&partial.to_be_bytes());
        Some((self.ihl as u16, (at - self.ihl) as u16))
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
    rewrite_with(pkt, src, dst, L4::Full).map(|_| ())
}

/// The rewrite with an incremental L4 checksum update (RFC 1624) instead of summing the whole
/// segment: for packets from awl nodes, which send only complete checksums (their TUN has no
/// offloads). An AWL sender's packets keep the full recompute AWL's receivers do.
pub fn rewrite_incremental(
    pkt: &mut [u8],
    src: Option<Ipv4Addr>,
    dst: Option<Ipv4Addr>,
) -> Result<(), PacketError> {
    rewrite_with(pkt, src, dst, L4::Incremental).map(|_| ())
}

/// The rewrite of a packet whose TCP/UDP checksum its sender (an awl node) left partial:
/// made partial again for the new addresses, without summing the segment. `Some((start,
/// offset))` where the packet now carries a partial checksum, for a virtio-net header that
/// asks the kernel to complete it; `None` where it has none to carry (not TCP or UDP, a
/// fragment), and the rewrite was `rewrite_incremental`'s.
pub fn rewrite_partial(
    pkt: &mut [u8],
    src: Option<Ipv4Addr>,
    dst: Option<Ipv4Addr>,
) -> Result<Option<(u16, u16)>, PacketError> {
    rewrite_with(pkt, src, dst, L4::Partial)
}

/// How a rewrite sets the TCP/UDP checksum.
#[derive(Clone, Copy, PartialEq, Eq)]
enum L4 {
    Full,
    Incremental,
    Partial,
}

fn rewrite_with(
    pkt: &mut [u8],
    src: Option<Ipv4Addr>,
    dst: Option<Ipv4Addr>,
    l4: L4,
) -> Result<Option<(u16, u16)>, PacketError> {
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
    if l4 == L4::Partial {
        if let Some(at) = ip.make_l4_partial() {
            return Ok(Some(at));
        }
    }
    match ip.fragment() {
        (0, false) if l4 == L4::Full => ip.fill_l4_checksum(),
        _ => ip.adjust_l4_checksum(old),
    }
    Ok(None)
}

#[cfg(test)]
pub mod tests;

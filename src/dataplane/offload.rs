//! Linux TUN offloads. With `IFF_VNET_HDR` and `TUNSETOFFLOAD` (checksum + TSO for IPv4), the
//! kernel hands us a TCP flow as "super-packets" of up to 64 KB, each behind a 10-byte
//! virtio-net header: one read instead of ~45, and the kernel skips its own segmentation. We cut
//! them into MSS-sized segments here (what the peer's TUN expects) and complete the checksums
//! the kernel left partial. Pure functions; `tun.rs` does the I/O.

use crate::dataplane::packet::Ipv4;

/// The legacy virtio-net header: flags, gso_type, hdr_len, gso_size, csum_start, csum_offset.
pub const HDR_LEN: usize = 10;
const F_NEEDS_CSUM: u8 = 1;
const F_DATA_VALID: u8 = 2;
/// The header of one ordinary packet written to the TUN: no segmentation, and its checksums
/// need no check (CHECKSUM_UNNECESSARY). Every packet we write came through the tunnel's
/// AEAD, which already proves it arrived as sent (or from our own service stack); kernel
/// WireGuard marks its decrypted packets the same way. The kernel skips summing each again.
pub const SINGLE_HDR: [u8; HDR_LEN] = [F_DATA_VALID, 0, 0, 0, 0, 0, 0, 0, 0, 0];

/// The header of one ordinary packet whose TCP/UDP checksum is partial (`csum_start`,
/// `csum_offset` as [`Ipv4::make_l4_partial`] gives them): the kernel completes it where the
/// packet leaves the node (or its NIC does), and skips it for the node itself.
pub fn partial_hdr((start, offset): (u16, u16)) -> [u8; HDR_LEN] {
    let mut h = [0u8; HDR_LEN];
    h[0] = F_NEEDS_CSUM;
    h[6..8].copy_from_slice(&start.to_ne_bytes());
    h[8..10].copy_from_slice(&offset.to_ne_bytes());
    h
}
const GSO_NONE: u8 = 0;
const GSO_TCPV4: u8 = 1;
const GSO_ECN: u8 = 0x80;

const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gso {
    /// One ordinary packet.
    None,
    /// A TCP/IPv4 super-packet: segments of at most `mss` payload bytes.
    TcpV4 { mss: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VnetHdr {
    /// The L4 checksum is partial (pseudo-header only) and must be completed.
    pub needs_csum: bool,
    pub gso: Gso,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffloadError {
    Truncated,
    /// A GSO type we did not enable (UDP, IPv6).
    UnknownGso(u8),
    /// A super-packet that is not TCP over IPv4 with sane headers and MSS.
    BadSuperPacket,
}

/// The header of a read and the packet behind it. Fields are in host byte order (legacy TUN
/// without `TUNSETVNETLE`/`BE`).
pub fn parse(buf: &[u8]) -> Result<(VnetHdr, &[u8]), OffloadError> {
    if buf.len() < HDR_LEN {
        return Err(OffloadError::Truncated);
    }
    let gso = match buf[1] & !GSO_ECN {
        GSO_NONE => Gso::None,
        GSO_TCPV4 => Gso::TcpV4 {
            mss: usize::from(u16::from_ne_bytes([buf[4], buf[5]])),
        },
        other => return Err(OffloadError::UnknownGso(other)),
    };
    Ok((
        VnetHdr {
            needs_csum: buf[0] & F_NEEDS_CSUM != 0,
            gso,
        },
        &buf[HDR_LEN..],
    ))
}

/// Completes a partial TCP/UDP checksum of an ordinary IPv4 packet in place (recomputed whole;
/// anything else is left as it is).
pub fn complete_checksum(pkt: &mut [u8]) {
    if let Ok(mut ip) = Ipv4::new_checked(pkt) {
        ip.fill_l4_checksum();
    }
}

/// A TCP/IPv4 super-packet, cut lazily into segments.
#[derive(Debug)]
pub struct TcpSegments<'a> {
    pkt: &'a [u8],
    ihl: usize,
    hlen: usize,
    mss: usize,
    count: usize,
}

impl<'a> TcpSegments<'a> {
    pub fn new(pkt: &'a [u8], mss: usize) -> Result<Self, OffloadError> {
        if pkt.len() < 40 || pkt[0] >> 4 != 4 || pkt[9] != 6 || mss == 0 {
            return Err(OffloadError::BadSuperPacket);
        }
        let ihl = usize::from(pkt[0] & 0x0f) * 4;
        if ihl < 20 || pkt.len() < ihl + 20 {
            return Err(OffloadError::BadSuperPacket);
        }
        let hlen = ihl + usize::from(pkt[ihl + 12] >> 4) * 4;
        if hlen < ihl + 20 || pkt.len() < hlen {
            return Err(OffloadError::BadSuperPacket);
        }
        // The IP total length of a super-packet is not reliable (it may not fit 16 bits):
        // the read's length is.
        let payload = pkt.len() - hlen;
        Ok(TcpSegments {
            pkt,
            ihl,
            hlen,
            mss,
            count: payload.div_ceil(mss).max(1),
        })
    }

    pub fn count(&self) -> usize {
        self.count
    }

    /// The largest segment, headers included.
    pub fn max_len(&self) -> usize {
        self.hlen + self.mss.min(self.pkt.len() - self.hlen)
    }

    /// Writes segment `i` into `out`: headers copied, IP length, ID and checksum, TCP sequence
    /// number, flags (FIN/PSH only on the last, CWR only on the first) and checksum set —
    /// complete, or `partial` (the pseudo-header sum: summing the segment is left to whoever
    /// sends it where that is needed, `complete_checksum`). Returns its length, or `None`
    /// past the last segment or when `out` is too small.
    pub fn write(&self, i: usize, out: &mut [u8], partial: bool) -> Option<usize> {
        if i >= self.count {
            return None;
        }
        let (ihl, hlen) = (self.ihl, self.hlen);
        let start = hlen + i * self.mss;
        let end = (start + self.mss).min(self.pkt.len());
        let n = hlen + (end - start);
        if out.len() < n {
            return None;
        }
        out[..hlen].copy_from_slice(&self.pkt[..hlen]);
        out[hlen..n].copy_from_slice(&self.pkt[start..end]);
        out[2..4].copy_from_slice(&(n as u16).to_be_bytes());
        let id = u16::from_be_bytes([self.pkt[4], self.pkt[5]]).wrapping_add(i as u16);
        out[4..6].copy_from_slice(&id.to_be_bytes());
        let seq = u32::from_be_bytes([
            self.pkt[ihl + 4],
            self.pkt[ihl + 5],
            self.pkt[ihl + 6],
            self.pkt[ihl + 7],
        ])
        .wrapping_add((i * self.mss) as u32);
        out[ihl + 4..ihl + 8].copy_from_slice(&seq.to_be_bytes());
        if i + 1 != self.count {
            out[ihl + 13] &= !(TCP_FIN | TCP_PSH);
        }
        if i != 0 {
            out[ihl + 13] &= !TCP_CWR;
        }
        let mut ip = Ipv4::new_checked(&mut out[..n]).ok()?;
        ip.fill_header_checksum();
        match partial {
            true => ip.make_l4_partial().map(|_| ())?,
            false => ip.fill_l4_checksum(),
        }
        Some(n)
    }
}

/// Write-side coalescing (GRO in userspace): consecutive TCP/IPv4 segments of one flow, as they
/// arrive from a peer, are written to the TUN as one super-packet, so the kernel runs its IP
/// and TCP receive path once per 64 KB instead of once per segment. Only strictly contiguous,
/// plain data segments merge; anything else ends the run and goes alone.
#[derive(Debug, Default)]
pub struct Coalescer {
    /// The super-packet being built, behind room for its virtio-net header.
    buf: Vec<u8>,
    /// Header length (IP + TCP) and payload size of the first segment (the GSO size).
    hlen: usize,
    mss: usize,
    segments: usize,
    next_seq: u32,
    /// The last segment was short or carried PSH: nothing may follow it.
    closed: bool,
    /// The first segment's checksum is partial (only a run of one is written as it is).
    partial: bool,
}

/// Largest super-packet (IP total length is 16 bits) and segments per super-packet.
const MAX_SUPER: usize = 65535;
const MAX_SEGMENTS: usize = 64;

impl Coalescer {
    /// Segments in the current run (0: empty).
    pub fn segments(&self) -> usize {
        self.segments
    }

    /// Adds `pkt` to the current run if it continues it; `false` means the caller must flush
    /// the run first (then `push` starts a new one, unless the packet can't be merged at all).
    /// `partial`: its TCP checksum is partial (a run of several gets one partial checksum
    /// whatever its segments had).
    pub fn push(&mut self, pkt: &[u8], partial: bool) -> bool {
        let Some(seg) = Segment::parse(pkt) else {
            return false;
        };
        if self.segments == 0 {
            self.buf.clear();
            self.buf.resize(HDR_LEN, 0);
            self.buf.extend_from_slice(pkt);
            self.hlen = seg.hlen;
            self.mss = seg.payload;
            self.segments = 1;
            self.next_seq = seg.seq.wrapping_add(seg.payload as u32);
            self.closed = seg.psh;
            self.partial = partial;
            return true;
        }
        let first = &self.buf[HDR_LEN..HDR_LEN + self.hlen];
        let continues = !self.closed
            && seg.hlen == self.hlen
            && seg.payload <= self.mss
            && seg.seq == self.next_seq
            && self.segments < MAX_SEGMENTS
            && self.buf.len() - HDR_LEN + seg.payload <= MAX_SUPER
            // Same addresses, TOS, TTL, protocol (IP bytes 1, 8-9, 12-19); same ports, ACK
            // number, window and options (TCP bytes 0-3, 8-11, 14-15, 20..).
            && pkt[1] == first[1]
            && pkt[8..10] == first[8..10]
            && pkt[12..20] == first[12..20]
            && pkt[20..24] == first[20..24]
            && pkt[28..32] == first[28..32]
            && pkt[34..36] == first[34..36]
            && pkt[40..self.hlen] == first[40..self.hlen];
        if !continues {
            return false;
        }
        self.buf.extend_from_slice(&pkt[self.hlen..]);
        self.segments += 1;
        self.next_seq = seg.seq.wrapping_add(seg.payload as u32);
        self.closed = seg.psh || seg.payload < self.mss;
        if seg.psh {
            self.buf[HDR_LEN + 33] |= TCP_PSH;
        }
        true
    }

    /// The finished run with its virtio-net header, ready for one write; the run is emptied.
    /// A single segment goes out as an ordinary packet, its checksum as it came.
    pub fn finish(&mut self) -> &[u8] {
        let n = std::mem::take(&mut self.segments);
        if n == 0 {
            return &[];
        }
        let total = self.buf.len() - HDR_LEN;
        let hdr: [u8; HDR_LEN] = if n == 1 && self.partial {
            // A plain segment (`Segment::parse`): 20-byte IP header, TCP's field at 16.
            partial_hdr((20, 16))
        } else if n == 1 {
            SINGLE_HDR
        } else {
            let ip = &mut self.buf[HDR_LEN..];
            ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
            // CHECKSUM_PARTIAL, as a fast packet's: the kernel (or the NIC it forwards to)
            // completes it. The run's first segment parsed, so the view does.
            if let Ok(mut v) = Ipv4::new_checked(ip) {
                v.fill_header_checksum();
                v.make_l4_partial();
            }
            let mut h = partial_hdr((20, 16));
            h[1] = GSO_TCPV4;
            h[2..4].copy_from_slice(&(self.hlen as u16).to_ne_bytes());
            h[4..6].copy_from_slice(&(self.mss as u16).to_ne_bytes());
            h
        };
        self.buf[..HDR_LEN].copy_from_slice(&hdr);
        &self.buf
    }
}

/// What coalescing needs to know of a TCP/IPv4 data segment.
struct Segment {
    hlen: usize,
    payload: usize,
    seq: u32,
    psh: bool,
}

impl Segment {
    /// Plain data segments only: IPv4 without options, not fragmented, TCP with only ACK (and
    /// PSH) set, some payload, a length that matches the IP header.
    fn parse(pkt: &[u8]) -> Option<Segment> {
        if pkt.len() < 40 || pkt[0] != 0x45 || pkt[9] != 6 {
            return None;
        }
        if usize::from(u16::from_be_bytes([pkt[2], pkt[3]])) != pkt.len() {
            return None;
        }
        // Not a fragment: offset 0 and no more-fragments flag.
        if u16::from_be_bytes([pkt[6], pkt[7]]) & 0x3fff != 0 {
            return None;
        }
        let hlen = 20 + usize::from(pkt[32] >> 4) * 4;
        let flags = pkt[33];
        if hlen < 40 || pkt.len() <= hlen || flags & !TCP_PSH != 0x10 {
            return None;
        }
        Some(Segment {
            hlen,
            payload: pkt.len() - hlen,
            seq: u32::from_be_bytes([pkt[24], pkt[25], pkt[26], pkt[27]]),
            psh: flags & TCP_PSH != 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::packet::tests::build;
    use crate::dataplane::packet::{fold, sum16};

    /// A TCP header with sequence number `seq` and `flags`, then `payload`.
    fn tcp(seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut t = vec![0u8; 20];
        t[0..2].copy_from_slice(&40000u16.to_be_bytes());
        t[2..4].copy_from_slice(&5201u16.to_be_bytes());
        t[4..8].copy_from_slice(&seq.to_be_bytes());
        t[12] = 5 << 4;
        t[13] = flags;
        t.extend_from_slice(payload);
        t
    }

    fn hdr(flags: u8, gso_type: u8, gso_size: u16) -> Vec<u8> {
        let mut h = vec![flags, gso_type];
        h.extend_from_slice(&54u16.to_ne_bytes());
        h.extend_from_slice(&gso_size.to_ne_bytes());
        h.extend_from_slice(&20u16.to_ne_bytes());
        h.extend_from_slice(&16u16.to_ne_bytes());
        h
    }

    #[test]
    fn headers_are_parsed() {
        let mut b = hdr(1, GSO_TCPV4 | GSO_ECN, 1380);
        b.extend_from_slice(&[0x45, 0]);
        let (h, rest) = parse(&b).unwrap();
        assert_eq!(
            h,
            VnetHdr {
                needs_csum: true,
                gso: Gso::TcpV4 { mss: 1380 }
            }
        );
        assert_eq!(rest, &[0x45, 0]);
        assert_eq!(parse(&hdr(0, 0, 0)).unwrap().0.gso, Gso::None);
        assert_eq!(parse(&hdr(0, 3, 1000)), Err(OffloadError::UnknownGso(3)));
        assert_eq!(parse(&[0; 9]), Err(OffloadError::Truncated));
    }

    #[test]
    fn a_super_packet_becomes_the_segments_the_kernel_would_have_sent() {
        let data: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
        let src = [10, 66, 0, 1];
        let dst = [10, 66, 0, 2];
        // PSH|ACK|FIN|CWR on the super-packet; its checksum field is garbage (partial).
        let mut sup = build(6, src, dst, &tcp(1000, 0x80 | 0x19, &data));
        sup[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
        sup[36] ^= 0x55;
        let segs = TcpSegments::new(&sup, 1400).unwrap();
        assert_eq!(segs.count(), 3);
        assert_eq!(segs.max_len(), 1440);
        let mut out = vec![0u8; 1500];
        let mut got = Vec::new();
        for i in 0..segs.count() {
            let n = segs.write(i, &mut out, false).unwrap();
            got.push(out[..n].to_vec());
            // Left partial, it completes to the same segment (as the peer's kernel will).
            let mut partial = vec![0u8; 1500];
            assert_eq!(segs.write(i, &mut partial, true), Some(n));
            partial.truncate(n);
            assert_ne!(partial, out[..n]);
            complete_checksum(&mut partial);
            assert_eq!(partial, out[..n], "segment {i} left partial");
        }
        assert!(segs.write(3, &mut out, false).is_none());
        let chunks = [&data[..1400], &data[1400..2800], &data[2800..]];
        let flags = [0x80 | 0x10, 0x10, 0x19];
        for (i, seg) in got.iter().enumerate() {
            let mut want = build(
                6,
                src,
                dst,
                &tcp(1000 + 1400 * i as u32, flags[i], chunks[i]),
            );
            // Same ID sequence as the kernel's software GSO; checksums recomputed by build().
            want[4..6].copy_from_slice(&(0x1234 + i as u16).to_be_bytes());
            let mut ip = Ipv4::new_checked(&mut want).unwrap();
            ip.fill_header_checksum();
            assert_eq!(seg, &want, "segment {i}");
        }
        // Too small an output buffer is refused, not overrun.
        assert!(segs.write(0, &mut [0u8; 100], false).is_none());
    }

    /// The segments of a 3000-byte super-packet (PSH|ACK on the last), as a peer sends them.
    fn segments() -> Vec<Vec<u8>> {
        let data: Vec<u8> = (0..3000u32).map(|i| (i * 13) as u8).collect();
        let sup = build(6, [10, 66, 0, 3], [10, 66, 0, 1], &tcp(77, 0x18, &data));
        let segs = TcpSegments::new(&sup, 1400).unwrap();
        let mut out = vec![0u8; 1500];
        (0..segs.count())
            .map(|i| {
                let n = segs.write(i, &mut out, false).unwrap();
                out[..n].to_vec()
            })
            .collect()
    }

    #[test]
    fn contiguous_segments_are_written_as_one_super_packet() {
        let segs = segments();
        let mut c = Coalescer::default();
        for s in &segs {
            assert!(c.push(s, false));
        }
        assert_eq!(c.segments(), 3);
        let out = c.finish().to_vec();
        assert_eq!(c.segments(), 0);
        let (h, sup) = parse(&out).unwrap();
        assert_eq!(
            h,
            VnetHdr {
                needs_csum: true,
                gso: Gso::TcpV4 { mss: 1400 }
            }
        );
        assert_eq!(sup.len(), 3040);
        assert_eq!(u16::from_be_bytes([sup[2], sup[3]]), 3040);
        assert_eq!(sup[33], 0x18, "PSH of the last segment kept");
        // The kernel completes the partial checksum over the TCP bytes; the result must be
        // the packet's true checksum.
        let mut done = sup.to_vec();
        let c = fold(sum16(&done[20..], 0));
        done[36..38].copy_from_slice(&c.to_be_bytes());
        let ip = Ipv4::new_checked(&mut done).unwrap();
        assert!(ip.header_checksum_ok());
        assert!(ip.l4_checksum_ok());
        // And cutting it again gives back the very segments.
        let again = TcpSegments::new(sup, 1400).unwrap();
        let mut buf = vec![0u8; 1500];
        for (i, s) in segs.iter().enumerate() {
            let n = again.write(i, &mut buf, false).unwrap();
            assert_eq!(&buf[..n], &s[..], "segment {i}");
        }
    }

    #[test]
    fn anything_but_the_next_segment_of_the_flow_ends_the_run() {
        let segs = segments();
        let mut c = Coalescer::default();
        assert!(c.push(&segs[0], false));
        assert!(!c.push(&segs[2], false), "a gap in the sequence");
        let mut other_port = segs[1].clone();
        other_port[20] ^= 1;
        assert!(!c.push(&other_port, false), "another flow");
        let mut fin = segs[1].clone();
        fin[33] |= TCP_FIN;
        assert!(!c.push(&fin, false), "FIN");
        assert!(
            !Coalescer::default().push(&fin, false),
            "FIN never starts a run"
        );
        assert!(c.push(&segs[1], false));
        assert!(c.push(&segs[2], false));
        // After a short or PSH segment, nothing more.
        let mut more = segs[2].clone();
        more[24..28].copy_from_slice(&(77u32 + 3000).to_be_bytes());
        assert!(!c.push(&more, false));
        // One segment alone goes out as an ordinary packet behind a zero header.
        let mut c = Coalescer::default();
        assert!(c.push(&segs[0], false));
        let out = c.finish();
        assert_eq!(&out[..HDR_LEN], &SINGLE_HDR);
        assert_eq!(&out[HDR_LEN..], &segs[0][..]);
        assert!(c.finish().is_empty());
        // With a partial checksum, behind a header that asks the kernel to complete it.
        assert!(c.push(&segs[0], true));
        let out = c.finish();
        let (h, _) = parse(out).unwrap();
        assert_eq!((h.needs_csum, h.gso), (true, Gso::None));
        assert_eq!(&out[..HDR_LEN], &partial_hdr((20, 16)));
    }

    /// What a peer sends reaches the coalescer after the AEAD, so a friend can still send
    /// anything: a segment that lies about its lengths, a fragment, or an IPv4 header with
    /// options never starts or joins a run (it goes out alone, as written), and nothing
    /// panics, whatever its bytes.
    #[test]
    fn malformed_segments_never_join_a_run() {
        let segs = segments();
        let mut hostile = Vec::new();
        let mut m = segs[1].clone();
        m[32] = 0xf0; // TCP header of 60 bytes, longer than the packet holds with payload
        m.truncate(50);
        m[2..4].copy_from_slice(&50u16.to_be_bytes());
        hostile.push(m);
        let mut m = segs[1].clone();
        m[2..4].copy_from_slice(&9000u16.to_be_bytes()); // total length beyond the packet
        hostile.push(m);
        let mut m = segs[1].clone();
        m[6] |= 0x20; // more fragments
        hostile.push(m);
        let mut m = segs[1].clone();
        m[0] = 0x46; // IP options
        hostile.push(m);
        hostile.push(segs[1][..39].to_vec()); // shorter than two headers
        hostile.push(segs[1][..40].to_vec()); // headers only, no payload
        for (i, m) in hostile.iter().enumerate() {
            assert!(!Coalescer::default().push(m, false), "{i} starts a run");
            let mut c = Coalescer::default();
            assert!(c.push(&segs[0], false));
            assert!(!c.push(m, false), "{i} joins a run");
            assert_eq!(c.segments(), 1);
        }
        // Any bytes at all: refused or joined, never a panic.
        let mut c = Coalescer::default();
        for len in 0..120usize {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 + len) as u8 | 0x40).collect();
            let _ = c.push(&junk, false);
        }
    }

    #[test]
    fn malformed_super_packets_are_refused() {
        let ok = build(6, [1, 1, 1, 1], [2, 2, 2, 2], &tcp(1, 0x10, &[1; 100]));
        assert!(TcpSegments::new(&ok, 0).is_err(), "zero MSS");
        assert!(TcpSegments::new(&ok[..39], 50).is_err(), "truncated");
        let udp = build(17, [1, 1, 1, 1], [2, 2, 2, 2], &[0u8; 100]);
        assert!(TcpSegments::new(&udp, 50).is_err(), "not TCP");
        let mut bad = ok.clone();
        bad[32] = 15 << 4; // TCP header of 60 bytes in a shorter packet
        bad.truncate(70);
        assert!(TcpSegments::new(&bad, 50).is_err(), "header past the end");
    }

    #[test]
    fn partial_checksums_are_completed() {
        let good = build(
            17,
            [10, 0, 0, 1],
            [10, 0, 0, 2],
            &[0, 53, 0, 53, 0, 12, 0, 0, 1, 2, 3, 4],
        );
        let mut partial = good.clone();
        partial[26] = 0x12;
        partial[27] = 0x34;
        complete_checksum(&mut partial);
        assert_eq!(partial, good);
    }
}

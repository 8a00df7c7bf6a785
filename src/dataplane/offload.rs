//! Linux TUN offloads. With `IFF_VNET_HDR` and `TUNSETOFFLOAD` (checksum + TSO for IPv4), the
//! kernel hands us a TCP flow as "super-packets" of up to 64 KB, each behind a 10-byte
//! virtio-net header: one read instead of ~45, and the kernel skips its own segmentation. We cut
//! them into MSS-sized segments here (what the peer's TUN expects) and complete the checksums
//! the kernel left partial. Pure functions; `tun.rs` does the I/O.

use crate::packet::Ipv4;

/// The legacy virtio-net header: flags, gso_type, hdr_len, gso_size, csum_start, csum_offset.
pub const HDR_LEN: usize = 10;
const F_NEEDS_CSUM: u8 = 1;
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
    /// number, flags (FIN/PSH only on the last, CWR only on the first) and checksum set.
    /// Returns its length, or `None` past the last segment or when `out` is too small.
    pub fn write(&self, i: usize, out: &mut [u8]) -> Option<usize> {
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
        ip.fill_l4_checksum();
        Some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::tests::build;

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
            let n = segs.write(i, &mut out).unwrap();
            got.push(out[..n].to_vec());
        }
        assert!(segs.write(3, &mut out).is_none());
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
        assert!(segs.write(0, &mut [0u8; 100]).is_none());
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

//! One `recvmmsg(2)` on a UDP socket set up by quinn-udp (ECN, destination address and GRO
//! control messages on), into fixed slots of one buffer, decoded into quinn's `RecvMeta`.
//!
//! quinn-udp's own receive zeroes headers for 32 messages on every call (~500 instructions per
//! read), which at a ping's pace is a read of one datagram; here the headers are set up once
//! ([`Receiver`]) and a read restores only those of the messages it got.

use quinn::udp::{EcnCodepoint, RecvMeta};
use std::io;
use std::mem::{size_of, MaybeUninit};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

/// The most messages one call reads.
pub const MAX_MESSAGES: usize = 32;
/// Room for the control messages of one datagram: ECN, destination address, GRO size.
const CONTROL_LEN: usize = 128;

/// `cmsghdr` needs the alignment of `size_t`.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct Control(MaybeUninit<[u8; CONTROL_LEN]>);

/// The headers of one `recvmmsg`, kept between calls: each points at its own name, control
/// and iovec slots once and for all, and a call only restores what the kernel wrote back for
/// the messages it filled. Writing all of them per call touched 2.5 KB of stack per read:
/// at a ping's pace, a read of one datagram.
pub struct Receiver(Box<Slots>);

struct Slots {
    hdrs: [libc::mmsghdr; MAX_MESSAGES],
    iovs: [libc::iovec; MAX_MESSAGES],
    names: [MaybeUninit<libc::sockaddr_storage>; MAX_MESSAGES],
    controls: [Control; MAX_MESSAGES],
    /// The buffer and slot size the iovecs point into, and for how many slots (none yet:
    /// null).
    base: *mut u8,
    slot: usize,
    slots: usize,
}

// SAFETY: the pointers lead into the box itself, and into the caller's buffer, which every
// call names again (and the iovecs are pointed at it again if it moved).
unsafe impl Send for Receiver {}

impl Default for Receiver {
    fn default() -> Self {
        Self::new()
    }
}

impl Receiver {
    pub fn new() -> Self {
        // SAFETY: all-zero mmsghdrs and iovecs are valid (null pointers, zero lengths).
        let (hdrs, iovs) = unsafe { (std::mem::zeroed(), std::mem::zeroed()) };
        Receiver(Box::new(Slots {
            hdrs,
            iovs,
            names: [MaybeUninit::uninit(); MAX_MESSAGES],
            controls: [Control(MaybeUninit::uninit()); MAX_MESSAGES],
            base: std::ptr::null_mut(),
            slot: 0,
            slots: 0,
        }))
    }

    /// Reads up to `metas.len()` datagrams (or coalesced GRO messages) into consecutive slots
    /// of `slot` bytes of `buf`; message `i`'s bytes are `buf[i * slot..][..metas[i].len]`.
    /// Returns how many were read. A message from an address family other than IPv4 or IPv6
    /// comes back with `len` 0.
    pub fn recvmmsg(
        &mut self,
        fd: RawFd,
        buf: &mut [u8],
        slot: usize,
        metas: &mut [RecvMeta],
    ) -> io::Result<usize> {
        let s = &mut *self.0;
        let count = metas
            .len()
            .min(MAX_MESSAGES)
            .min(buf.len().checked_div(slot).unwrap_or(0));
        if count == 0 {
            return Ok(0);
        }
        let base = buf.as_mut_ptr();
        if s.base != base || s.slot != slot || s.slots < count {
            // (Each header points at its own slots in the box, which never moves.)
            let slots = (buf.len() / slot).min(MAX_MESSAGES);
            for i in 0..slots {
                s.iovs[i] = libc::iovec {
                    // SAFETY: i * slot + slot <= buf.len() (slots <= buf.len() / slot).
                    iov_base: unsafe { base.add(i * slot) }.cast(),
                    iov_len: slot,
                };
                let h = &mut s.hdrs[i].msg_hdr;
                h.msg_name = s.names[i].as_mut_ptr().cast();
                h.msg_iov = &mut s.iovs[i];
                h.msg_iovlen = 1;
                h.msg_control = s.controls[i].0.as_mut_ptr().cast();
                restore(h);
            }
            (s.base, s.slot, s.slots) = (base, slot, slots);
        }
        // SAFETY: the first `count` headers point at live buffers of the lengths they state:
        // their own slots in the box, and slots of `buf` (count <= s.slots, pointed at this
        // `buf` above), all outliving the call.
        let n =
            unsafe { libc::recvmmsg(fd, s.hdrs.as_mut_ptr(), count as _, 0, std::ptr::null_mut()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = (n as usize).min(count);
        for ((h, name), meta) in s.hdrs[..n].iter_mut().zip(&s.names).zip(metas.iter_mut()) {
            let len = (h.msg_len as usize).min(slot);
            // SAFETY: the kernel wrote the source address into the name (its length in
            // msg_namelen); a family we do not know is not read further.
            let addr = unsafe { source(name.as_ptr(), h.msg_hdr.msg_namelen as usize) };
            let (ecn, dst_ip, stride) = decode_control(&h.msg_hdr);
            restore(&mut h.msg_hdr);
            *meta = match addr {
                Some(addr) => RecvMeta {
                    addr,
                    len,
                    stride: stride.unwrap_or(len),
                    ecn: EcnCodepoint::from_bits(ecn),
                    dst_ip,
                },
                None => RecvMeta {
                    len: 0,
                    stride: 0,
                    ..RecvMeta::default()
                },
            };
        }
        Ok(n)
    }
}

/// The lengths the kernel overwrites in a header it filled, back to the room there is.
fn restore(h: &mut libc::msghdr) {
    h.msg_namelen = size_of::<libc::sockaddr_storage>() as _;
    h.msg_controllen = CONTROL_LEN as _;
    h.msg_flags = 0;
}

/// The sender's address.
///
/// # Safety
/// `name` points at `len` bytes the kernel wrote as a socket address.
unsafe fn source(name: *const libc::sockaddr_storage, len: usize) -> Option<SocketAddr> {
    let family = libc::c_int::from((*name).ss_family);
    if family == libc::AF_INET && len >= size_of::<libc::sockaddr_in>() {
        let a = &*name.cast::<libc::sockaddr_in>();
        Some(SocketAddr::V4(SocketAddrV4::new(
            Ipv4Addr::from(a.sin_addr.s_addr.to_ne_bytes()),
            u16::from_be(a.sin_port),
        )))
    } else if family == libc::AF_INET6 && len >= size_of::<libc::sockaddr_in6>() {
        let a = &*name.cast::<libc::sockaddr_in6>();
        Some(SocketAddr::V6(SocketAddrV6::new(
            Ipv6Addr::from(a.sin6_addr.s6_addr),
            u16::from_be(a.sin6_port),
            a.sin6_flowinfo,
            a.sin6_scope_id,
        )))
    } else {
        None
    }
}

/// ECN bits, destination address and GRO segment size from one message's control data, as
/// quinn-udp reads them.
fn decode_control(h: &libc::msghdr) -> (u8, Option<IpAddr>, Option<usize>) {
    let mut ecn = 0u8;
    let mut dst_ip = None;
    let mut stride = None;
    if h.msg_control.is_null() {
        return (ecn, dst_ip, stride);
    }
    // SAFETY: the CMSG_* walk stays within msg_control[..msg_controllen], which the kernel
    // filled; each message's data is read unaligned at its stated type only when its
    // length covers that type.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            let level = (*c).cmsg_level;
            let kind = (*c).cmsg_type;
            let data = libc::CMSG_DATA(c);
            let room = ((*c).cmsg_len as usize).saturating_sub(data.offset_from(c.cast()) as usize);
            match (level, kind) {
                (libc::IPPROTO_IP, libc::IP_TOS | libc::IP_RECVTOS) if room >= 1 => ecn = *data,
                (libc::IPPROTO_IPV6, libc::IPV6_TCLASS) if room >= size_of::<libc::c_int>() => {
                    ecn = std::ptr::read_unaligned(data.cast::<libc::c_int>()) as u8;
                }
                (libc::IPPROTO_IP, libc::IP_PKTINFO) if room >= size_of::<libc::in_pktinfo>() => {
                    let p = std::ptr::read_unaligned(data.cast::<libc::in_pktinfo>());
                    dst_ip = Some(IpAddr::V4(Ipv4Addr::from(p.ipi_addr.s_addr.to_ne_bytes())));
                }
                (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO)
                    if room >= size_of::<libc::in6_pktinfo>() =>
                {
                    let p = std::ptr::read_unaligned(data.cast::<libc::in6_pktinfo>());
                    dst_ip = Some(IpAddr::V6(Ipv6Addr::from(p.ipi6_addr.s6_addr)));
                }
                (libc::SOL_UDP, libc::UDP_GRO) if room >= size_of::<libc::c_int>() => {
                    let s = std::ptr::read_unaligned(data.cast::<libc::c_int>());
                    stride = usize::try_from(s).ok().filter(|&s| s > 0);
                }
                _ => {}
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    (ecn, dst_ip, stride)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn reads_several_datagrams_with_their_source_and_destination() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        rx.set_nonblocking(true).expect("nonblocking");
        // What quinn-udp turns on: the destination address and the TOS byte.
        let fd = rx.as_raw_fd();
        super::super::sockopt::setsockopt_int(fd, libc::IPPROTO_IP, libc::IP_PKTINFO, 1)
            .expect("pktinfo");
        super::super::sockopt::setsockopt_int(fd, libc::IPPROTO_IP, libc::IP_RECVTOS, 1)
            .expect("recvtos");
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        super::super::sockopt::setsockopt_int(tx.as_raw_fd(), libc::IPPROTO_IP, libc::IP_TOS, 2)
            .expect("tos");
        let to = rx.local_addr().expect("addr");
        tx.send_to(&[1; 100], to).expect("send");
        tx.send_to(&[2; 7], to).expect("send");
        let slot = 256;
        let mut buf = vec![0u8; 4 * slot];
        let mut metas = [RecvMeta::default(); 4];
        let mut reader = Receiver::new();
        let n = reader
            .recvmmsg(fd, &mut buf, slot, &mut metas)
            .expect("recv");
        assert_eq!(n, 2);
        assert_eq!((metas[0].len, metas[0].stride), (100, 100));
        assert_eq!((metas[1].len, metas[1].stride), (7, 7));
        assert!(buf[..100].iter().all(|&b| b == 1));
        assert!(buf[slot..slot + 7].iter().all(|&b| b == 2));
        for m in &metas[..2] {
            assert_eq!(m.addr, tx.local_addr().expect("addr"));
            assert_eq!(m.dst_ip, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
            assert_eq!(m.ecn, Some(EcnCodepoint::Ect0));
        }
        // Nothing left: the socket says so instead of waiting.
        let e = reader
            .recvmmsg(fd, &mut buf, slot, &mut metas)
            .expect_err("empty");
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        // A datagram longer than its slot is cut to the slot.
        tx.send_to(&[3; 300], to).expect("send");
        let n = reader
            .recvmmsg(fd, &mut buf, slot, &mut metas[..1])
            .expect("recv");
        assert_eq!((n, metas[0].len), (1, slot));
        // The same headers again, after reads that filled them: each message has its full
        // name and control room back (its source, destination and ECN read again), and
        // another buffer, with slots of another size, is the one read into.
        // (One more control message per datagram: it fits only in the room restored.)
        super::super::sockopt::setsockopt_int(fd, libc::IPPROTO_IP, libc::IP_RECVTTL, 1)
            .expect("recvttl");
        tx.send_to(&[4; 50], to).expect("send");
        tx.send_to(&[5; 60], to).expect("send");
        let mut other = vec![0u8; 2 * 128];
        let n = reader
            .recvmmsg(fd, &mut other, 128, &mut metas)
            .expect("recv");
        assert_eq!(n, 2, "two slots of the new buffer");
        assert_eq!((metas[0].len, metas[1].len), (50, 60));
        assert!(other[..50].iter().all(|&b| b == 4));
        assert!(other[128..188].iter().all(|&b| b == 5));
        assert!(
            buf[..50].iter().all(|&b| b == 3),
            "the old buffer was written"
        );
        for m in &metas[..2] {
            assert_eq!(m.addr, tx.local_addr().expect("addr"));
            assert_eq!(m.dst_ip, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
            assert_eq!(m.ecn, Some(EcnCodepoint::Ect0));
        }
    }
}

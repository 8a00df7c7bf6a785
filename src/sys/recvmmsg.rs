//! One `recvmmsg(2)` on a UDP socket set up by quinn-udp (ECN, destination address and GRO
//! control messages on), into fixed slots of one buffer, decoded into quinn's `RecvMeta`.
//!
//! quinn-udp's own receive zeroes headers for 32 messages on every call (~500 instructions per
//! read), which at a ping's pace is a read of one datagram; here only the headers of the
//! messages asked for are written.

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

/// Reads up to `metas.len()` datagrams (or coalesced GRO messages) into consecutive slots of
/// `slot` bytes of `buf`; message `i`'s bytes are `buf[i * slot..][..metas[i].len]`. Returns
/// how many were read. A message from an address family other than IPv4 or IPv6 comes back
/// with `len` 0.
pub fn recvmmsg(
    fd: RawFd,
    buf: &mut [u8],
    slot: usize,
    metas: &mut [RecvMeta],
) -> io::Result<usize> {
    let count = metas
        .len()
        .min(MAX_MESSAGES)
        .min(buf.len().checked_div(slot).unwrap_or(0));
    if count == 0 {
        return Ok(0);
    }
    let mut names = [MaybeUninit::<libc::sockaddr_storage>::uninit(); MAX_MESSAGES];
    let mut controls = [Control(MaybeUninit::uninit()); MAX_MESSAGES];
    let mut iovs = [MaybeUninit::<libc::iovec>::uninit(); MAX_MESSAGES];
    let mut hdrs = [MaybeUninit::<libc::mmsghdr>::uninit(); MAX_MESSAGES];
    let base = buf.as_mut_ptr();
    for i in 0..count {
        let iov = iovs[i].write(libc::iovec {
            // SAFETY: i * slot + slot <= buf.len() (count <= buf.len() / slot).
            iov_base: unsafe { base.add(i * slot) }.cast(),
            iov_len: slot,
        });
        // SAFETY: an all-zero mmsghdr is valid (null pointers, zero lengths); the fields the
        // call reads are set below, whatever their C types on this libc.
        let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
        h.msg_hdr.msg_name = names[i].as_mut_ptr().cast();
        h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as _;
        h.msg_hdr.msg_iov = iov;
        h.msg_hdr.msg_iovlen = 1;
        h.msg_hdr.msg_control = controls[i].0.as_mut_ptr().cast();
        h.msg_hdr.msg_controllen = CONTROL_LEN as _;
        hdrs[i].write(h);
    }
    // SAFETY: the first `count` headers are initialised and point at live buffers (the slots of
    // `buf`, `names`, `controls`, `iovs`) of the lengths they state, all outliving the call.
    let n = unsafe {
        libc::recvmmsg(
            fd,
            hdrs.as_mut_ptr().cast(),
            count as _,
            0,
            std::ptr::null_mut(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = (n as usize).min(count);
    for i in 0..n {
        // SAFETY: written above; the kernel filled in msg_len, the name and the control data
        // (msg_controllen now says how much of it is valid).
        let h = unsafe { hdrs[i].assume_init_ref() };
        let len = (h.msg_len as usize).min(slot);
        // SAFETY: the kernel wrote the source address into the name (its length in
        // msg_namelen); a family we do not know is not read further.
        let addr = unsafe { source(names[i].as_ptr(), h.msg_hdr.msg_namelen as usize) };
        let (ecn, dst_ip, stride) = decode_control(&h.msg_hdr);
        metas[i] = match addr {
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
        let n = recvmmsg(fd, &mut buf, slot, &mut metas).expect("recv");
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
        let e = recvmmsg(fd, &mut buf, slot, &mut metas).expect_err("empty");
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        // A datagram longer than its slot is cut to the slot.
        tx.send_to(&[3; 300], to).expect("send");
        let n = recvmmsg(fd, &mut buf, slot, &mut metas[..1]).expect("recv");
        assert_eq!((n, metas[0].len), (1, slot));
    }
}

//! A send on a connected UDP socket with no control message but GSO's: any other (the TOS
//! byte, the source address, which quinn-udp always adds) makes the kernel look the route up
//! again instead of using the one the socket cached at `connect`.

use std::io;
use std::mem::size_of;
use std::os::fd::RawFd;

/// `UDP_SEGMENT` (Linux 4.18; not in every libc target's constants).
const UDP_SEGMENT: libc::c_int = 103;

/// Sends `buf` to the socket's peer without waiting: one datagram, or with `segment`, one per
/// `segment` bytes (the last may be shorter), in one call.
pub fn send_connected(fd: RawFd, buf: &[u8], segment: Option<u16>) -> io::Result<()> {
    #[repr(C, align(8))]
    struct Control([u8; 32]);
    let mut control = Control([0; 32]);
    let mut iov = libc::iovec {
        iov_base: buf.as_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: an all-zero msghdr is valid (no name, no control); the fields set below point at
    // `iov` and `control`, which outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if let Some(size) = segment {
        // SAFETY: CMSG_SPACE(2) (24 on 64-bit, 16 on 32-bit) fits the 32 bytes of `control`,
        // which is aligned for cmsghdr; the header and its u16 are written inside it.
        unsafe {
            let space = libc::CMSG_SPACE(size_of::<u16>() as u32) as usize;
            msg.msg_control = control.0.as_mut_ptr().cast();
            msg.msg_controllen = space as _;
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_UDP;
            (*c).cmsg_type = UDP_SEGMENT;
            (*c).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), size);
        }
    }
    // SAFETY: `msg` and what it points at are valid for the call.
    let n = unsafe { libc::sendmsg(fd, &msg, 0) };
    match n {
        n if n < 0 => Err(io::Error::last_os_error()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    #[test]
    fn sends_one_datagram_or_a_run_of_segments_to_the_connected_peer() {
        let rx = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let tx = UdpSocket::bind("127.0.0.1:0").expect("bind");
        tx.connect(rx.local_addr().expect("addr")).expect("connect");
        rx.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .expect("timeout");
        send_connected(tx.as_raw_fd(), &[7; 40], None).expect("send");
        // 100 bytes in segments of 30: 30, 30, 30, 10 (where the kernel has GSO).
        let gso = send_connected(tx.as_raw_fd(), &[9; 100], Some(30)).is_ok();
        let mut b = [0u8; 200];
        let (n, from) = rx.recv_from(&mut b).expect("recv");
        assert_eq!((n, b[0], from), (40, 7, tx.local_addr().expect("addr")));
        if gso {
            let lens: Vec<usize> = (0..4).map(|_| rx.recv(&mut b).expect("segment")).collect();
            assert_eq!(lens, [30, 30, 30, 10]);
        }
        // Unconnected, there is nowhere to send.
        let lone = UdpSocket::bind("127.0.0.1:0").expect("bind");
        assert!(send_connected(lone.as_raw_fd(), &[1; 4], None).is_err());
    }
}

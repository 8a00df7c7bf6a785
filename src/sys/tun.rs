//! The TUN device's raw calls: offload flags, a duplicate of its descriptor to register with
//! the reactor, and reads and writes that must not wait (the device is non-blocking;
//! `WouldBlock` comes back to the caller).

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Checksum offload and TSO for IPv4 (with ECN): the kernel skips segmenting TCP for us.
pub fn set_offload(fd: RawFd) -> io::Result<()> {
    let flags = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO_ECN;
    // SAFETY: TUNSETOFFLOAD takes an unsigned int by value; nothing is read or written through
    // a pointer, and a fd that is not a TUN device only fails.
    let rc = unsafe { libc::ioctl(fd, libc::TUNSETOFFLOAD as _, flags as libc::c_ulong) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A duplicate of `fd` (close-on-exec) that the caller owns: it shares the open device and
/// its flags (non-blocking) with `fd`.
pub fn dup(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC only reads `fd`; on success the new descriptor is ours alone,
    // so OwnedFd may close it.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `new` is a fresh, open descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// One `read(2)` into `buf`.
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: a live, writable buffer of the given length; read writes at most that many bytes.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// One `write(2)` of `buf`.
pub fn write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: a live buffer of the given length; write only reads it.
    let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// One `writev(2)` of `bufs`, in order (a header and a packet, without copying them together).
pub fn writev<const N: usize>(fd: RawFd, bufs: [&[u8]; N]) -> io::Result<usize> {
    let iov = bufs.map(|b| libc::iovec {
        iov_base: b.as_ptr() as *mut libc::c_void,
        iov_len: b.len(),
    });
    // SAFETY: every iovec points at a live buffer of its length; writev only reads them.
    let n = unsafe { libc::writev(fd, iov.as_ptr(), N as libc::c_int) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsRawFd;

    #[test]
    fn write_and_writev_reach_the_other_end() {
        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert_eq!(write(a.as_raw_fd(), b"ab").unwrap(), 2);
        assert_eq!(writev(a.as_raw_fd(), [b"cd", b"e"]).unwrap(), 3);
        drop(a);
        let mut got = String::new();
        b.read_to_string(&mut got).unwrap();
        assert_eq!(got, "abcde");
    }

    #[test]
    fn a_duplicate_reads_what_the_original_is_sent() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let d = dup(b.as_raw_fd()).unwrap();
        assert_ne!(d.as_raw_fd(), b.as_raw_fd());
        assert_eq!(write(a.as_raw_fd(), b"xyz").unwrap(), 3);
        let mut buf = [0u8; 8];
        assert_eq!(read(d.as_raw_fd(), &mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], b"xyz");
        b.set_nonblocking(true).unwrap();
        let e = read(d.as_raw_fd(), &mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "the flags are shared");
    }

    #[test]
    fn offload_on_a_socket_fails() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(set_offload(a.as_raw_fd()).is_err());
    }
}

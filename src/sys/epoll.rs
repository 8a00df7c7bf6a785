//! An epoll set that only reports, never waits: the fast packets' thread sleeps in `poll(2)` on
//! the set's descriptor (`sys::wait`) and asks the set which of its sockets are readable.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

pub struct Epoll {
    fd: OwnedFd,
}

impl Epoll {
    pub fn new() -> io::Result<Self> {
        // SAFETY: epoll_create1 takes no pointers; a valid descriptor is owned from here on.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just opened and nothing else owns it.
        Ok(Epoll {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Watches `fd` for reading (level-triggered), reported as itself. The caller keeps `fd`
    /// open until [`Epoll::remove`] (closing it removes it too).
    pub fn add(&self, fd: RawFd) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd)
    }

    /// Stops watching `fd` (not watched: nothing to do).
    pub fn remove(&self, fd: RawFd) {
        let _ = self.ctl(libc::EPOLL_CTL_DEL, fd);
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: fd as u64,
        };
        // SAFETY: `ev` is a live epoll_event for the call; a bad fd is only an error.
        let rc = unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut ev) };
        match rc {
            0 => Ok(()),
            _ => Err(io::Error::last_os_error()),
        }
    }

    /// The watched descriptors readable now, at most `out.len()` (16 at most); no wait.
    pub fn ready(&self, out: &mut [RawFd]) -> io::Result<usize> {
        let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 16];
        let max = out.len().min(evs.len());
        // SAFETY: `evs` has room for `max` events for the whole call.
        let n = unsafe { libc::epoll_wait(self.fd.as_raw_fd(), evs.as_mut_ptr(), max as _, 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            };
        }
        let n = (n as usize).min(max);
        for (o, e) in out.iter_mut().zip(&evs[..n]) {
            *o = e.u64 as RawFd;
        }
        Ok(n)
    }
}

impl AsRawFd for Epoll {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    #[test]
    fn reports_the_readable_sockets_and_forgets_a_removed_one() {
        let ep = Epoll::new().expect("epoll");
        let a = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let b = UdpSocket::bind("127.0.0.1:0").expect("bind");
        ep.add(a.as_raw_fd()).expect("add");
        ep.add(b.as_raw_fd()).expect("add");
        let mut out = [0; 4];
        assert_eq!(ep.ready(&mut out).expect("ready"), 0, "nothing sent yet");
        let tx = UdpSocket::bind("127.0.0.1:0").expect("bind");
        tx.send_to(b"x", b.local_addr().expect("addr"))
            .expect("send");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut n = 0;
        while n == 0 && std::time::Instant::now() < deadline {
            n = ep.ready(&mut out).expect("ready");
        }
        assert_eq!(&out[..n], [b.as_raw_fd()]);
        // Level-triggered: still reported until read; not at all once removed.
        assert_eq!(ep.ready(&mut out).expect("ready"), 1);
        ep.remove(b.as_raw_fd());
        assert_eq!(ep.ready(&mut out).expect("ready"), 0);
    }
}

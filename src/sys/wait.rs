//! How a packet thread sleeps: `poll(2)` on its descriptors (at most two) and an eventfd that
//! anyone may write to wake it. The thread that reads fast packets waits here instead of in
//! tokio's reactor, so a packet wakes only the thread that handles it, and no timer wheel,
//! clock read or task queue lies on its path. (An epoll set registered once measured no
//! cheaper at a ping's pace: docs/BENCHMARKS.md.)

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

pub struct Waiter {
    event: OwnedFd,
}

/// Descriptors one wait watches besides the eventfd.
pub const MAX_FDS: usize = 2;

/// What ended a wait.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Woke {
    /// [`Waiter::wake`] was called.
    pub woken: bool,
    /// Which of the descriptors, in the order given, are readable.
    pub ready: [bool; MAX_FDS],
}

impl Waiter {
    pub fn new() -> io::Result<Self> {
        // SAFETY: eventfd takes no pointers; a valid descriptor is owned from here on.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just opened and nothing else owns it.
        Ok(Waiter {
            event: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Blocks until one of `fds` (at most [`MAX_FDS`]) is readable or [`Waiter::wake`] was
    /// called since the last wait returned; a wake-up that came first is not lost (the
    /// eventfd keeps its count). A signal ends the wait early, which the caller's loop takes
    /// as a spurious wake-up. An error or hang-up on a descriptor counts as readable: the
    /// caller's next read reports it (and clears it).
    pub fn wait(&self, fds: &[RawFd]) -> io::Result<Woke> {
        let mut set = [libc::pollfd {
            fd: -1,
            events: libc::POLLIN,
            revents: 0,
        }; 1 + MAX_FDS];
        set[0].fd = self.event.as_raw_fd();
        for (slot, &fd) in set[1..].iter_mut().zip(fds) {
            slot.fd = fd;
        }
        let n = 1 + fds.len().min(MAX_FDS);
        // SAFETY: `set` is valid for `n` entries for the whole call.
        let r = unsafe { libc::poll(set.as_mut_ptr(), n as libc::nfds_t, -1) };
        let mut woke = Woke::default();
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::Interrupted => Ok(woke),
                _ => Err(e),
            };
        }
        if set[0].revents & libc::POLLIN != 0 {
            woke.woken = true;
            let mut count = 0u64;
            // SAFETY: reads 8 bytes into `count`; a failure (count already taken) is harmless.
            unsafe { libc::read(self.event.as_raw_fd(), (&mut count as *mut u64).cast(), 8) };
        }
        for (i, p) in set[1..n].iter().enumerate() {
            if p.revents & libc::POLLNVAL != 0 {
                return Err(io::Error::other("descriptor closed while waiting"));
            }
            woke.ready[i] = p.revents != 0;
        }
        Ok(woke)
    }

    /// Ends the current or the next [`Waiter::wait`].
    pub fn wake(&self) {
        let one = 1u64;
        // SAFETY: writes 8 bytes from `one`; it can only fail with the counter at its maximum,
        // when a wake-up is pending anyway.
        unsafe { libc::write(self.event.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }
}

/// Whether `fd` is readable now, without waiting (tests).
#[cfg(test)]
pub fn readable_now(fd: RawFd) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one live pollfd for the call, no wait.
    unsafe { libc::poll(&mut p, 1, 0) == 1 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    /// Whether `w.wait(fd)` returns within `limit` (on a thread, so a broken wait fails the
    /// test instead of hanging it).
    fn returns_within(w: &Arc<Waiter>, fd: Option<RawFd>, limit: Duration) -> bool {
        let (tx, rx) = std::sync::mpsc::channel();
        let w = w.clone();
        std::thread::spawn(move || {
            let _ = tx.send(w.wait(fd.as_slice()).is_ok());
        });
        rx.recv_timeout(limit).unwrap_or(false)
    }

    #[test]
    fn a_wake_before_the_wait_is_kept_and_a_readable_descriptor_ends_it() {
        let w = Arc::new(Waiter::new().expect("eventfd"));
        w.wake();
        w.wake();
        assert!(
            returns_within(&w, None, Duration::from_secs(5)),
            "the early wake-up was lost"
        );
        // The count was taken: the next wait blocks until something happens.
        let a = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        assert!(!returns_within(
            &w,
            Some(a.as_raw_fd()),
            Duration::from_millis(50)
        ));
        // (That waiting thread returns at this wake-up.)
        w.wake();
        std::thread::sleep(Duration::from_millis(20));
        a.send_to(b"x", a.local_addr().expect("addr"))
            .expect("send");
        assert!(
            returns_within(&w, Some(a.as_raw_fd()), Duration::from_secs(5)),
            "readable, still waiting"
        );
    }

    /// Two descriptors: the wait says which one is readable, and that no wake-up came.
    #[test]
    fn a_wait_on_two_descriptors_names_the_readable_one() {
        let w = Waiter::new().expect("eventfd");
        let a = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let b = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        b.send_to(b"x", b.local_addr().expect("addr"))
            .expect("send");
        let woke = w.wait(&[a.as_raw_fd(), b.as_raw_fd()]).expect("wait");
        assert_eq!(
            woke,
            Woke {
                woken: false,
                ready: [false, true]
            }
        );
        w.wake();
        let woke = w.wait(&[a.as_raw_fd()]).expect("wait");
        assert_eq!(
            woke,
            Woke {
                woken: true,
                ready: [false, false]
            },
            "the second descriptor was not watched"
        );
    }
}

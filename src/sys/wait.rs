//! How a packet thread sleeps: `poll(2)` on one descriptor and an eventfd that anyone may
//! write to wake it. The thread that reads fast packets waits here instead of in tokio's
//! reactor, so a packet wakes only the thread that handles it, and no timer wheel, clock
//! read or task queue lies on its path.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub struct Waiter {
    event: OwnedFd,
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

    /// Blocks until `fd` (if any) is readable or [`Waiter::wake`] was called since the last
    /// wait returned; a wake-up that came first is not lost (the eventfd keeps its count).
    /// A signal ends the wait early, which the caller's loop takes as a spurious wake-up.
    pub fn wait(&self, fd: Option<RawFd>) -> io::Result<()> {
        let mut fds = [
            libc::pollfd {
                fd: self.event.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: fd.unwrap_or(-1),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let n = if fd.is_some() { 2 } else { 1 };
        // SAFETY: `fds` is valid for `n` entries for the whole call.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), n, -1) };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::Interrupted => Ok(()),
                _ => Err(e),
            };
        }
        if fds[0].revents & libc::POLLIN != 0 {
            let mut count = 0u64;
            // SAFETY: reads 8 bytes into `count`; a failure (count already taken) is harmless.
            unsafe { libc::read(self.event.as_raw_fd(), (&mut count as *mut u64).cast(), 8) };
        }
        // POLLERR is left to the caller's next read, which reports the error and clears it.
        if fds[1].revents & libc::POLLNVAL != 0 {
            return Err(io::Error::other("descriptor closed while waiting"));
        }
        Ok(())
    }

    /// Ends the current or the next [`Waiter::wait`].
    pub fn wake(&self) {
        let one = 1u64;
        // SAFETY: writes 8 bytes from `one`; it can only fail with the counter at its maximum,
        // when a wake-up is pending anyway.
        unsafe { libc::write(self.event.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }
}

/// A packet thread: it sleeps in [`Waiter::wait`] on its descriptor and ends when its
/// [`PacketThread`] handle is dropped. Inside the tokio runtime's context (what it wakes or
/// spawns finds the runtime), and `SCHED_BATCH` when `batch`.
pub fn spawn_packet_thread(
    name: &str,
    stack: usize,
    batch: bool,
    body: impl FnOnce(&Control) + Send + 'static,
) -> io::Result<PacketThread> {
    let control = Arc::new(Control {
        stopped: AtomicBool::new(false),
        waiter: Waiter::new()?,
    });
    let mine = control.clone();
    let runtime = tokio::runtime::Handle::current();
    std::thread::Builder::new()
        .name(name.into())
        .stack_size(stack)
        .spawn(move || {
            let _in_runtime = runtime.enter();
            if batch {
                if let Err(e) = yield_on_wakeup() {
                    log::debug!("SCHED_BATCH not set: {e}");
                }
            }
            body(&mine);
        })?;
    Ok(PacketThread { control })
}

/// Stops its packet thread when dropped.
pub struct PacketThread {
    control: Arc<Control>,
}

impl PacketThread {
    /// Ends the thread's current or next wait without stopping it.
    pub fn wake(&self) {
        self.control.waiter.wake();
    }

    /// The thread's side, to watch it end (tests).
    #[cfg(test)]
    pub fn control_for_test(&self) -> std::sync::Weak<Control> {
        Arc::downgrade(&self.control)
    }
}

impl Drop for PacketThread {
    fn drop(&mut self) {
        self.control.stopped.store(true, Ordering::Relaxed);
        self.control.waiter.wake();
    }
}

/// What a packet thread checks between reads.
pub struct Control {
    stopped: AtomicBool,
    waiter: Waiter,
}

impl Control {
    /// The handle was dropped: end.
    pub fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }

    /// Sleeps until `fd` is readable or the thread is told to stop.
    pub fn wait(&self, fd: RawFd) -> io::Result<()> {
        self.waiter.wait(Some(fd))
    }

    /// Sleeps until [`PacketThread::wake`], or the thread is told to stop.
    pub fn sleep(&self) -> io::Result<()> {
        self.waiter.wait(None)
    }
}

/// Marks the calling thread `SCHED_BATCH`: woken while another thread runs on its CPU, it
/// waits for that one to block or use up its slice instead of preempting it. A packet
/// thread so leaves a busy runtime to finish its work (one switch for many packets), and
/// still runs at once on an idle CPU.
pub fn yield_on_wakeup() -> io::Result<()> {
    // The kernel's `struct sched_param` is one int (musl's has more fields), and the raw
    // call because musl's wrapper refuses (POSIX says per process; Linux does it per thread).
    let priority: libc::c_int = 0;
    // SAFETY: `priority` is valid for the call; tid 0 is the calling thread.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_sched_setscheduler,
            0,
            libc::SCHED_BATCH,
            &priority as *const libc::c_int,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Whether `w.wait(fd)` returns within `limit` (on a thread, so a broken wait fails the
    /// test instead of hanging it).
    fn returns_within(w: &Arc<Waiter>, fd: Option<RawFd>, limit: Duration) -> bool {
        let (tx, rx) = std::sync::mpsc::channel();
        let w = w.clone();
        std::thread::spawn(move || {
            let _ = tx.send(w.wait(fd).is_ok());
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
}

//! A packet thread: a thread of its own for one or two packet sources, asleep in
//! [`Waiter::wait`] between packets.
//!
//! Each source is a [`Job`] that reads without waiting and says what it would wait for. The
//! thread runs its own job and, when another part lends it one ([`Lender`]), that one in
//! turns with it. The TUN's reader lends its device to the fast packets' thread: on a node
//! that answers a ping through its TUN, the answer is already queued on the device when the
//! write of the request returns, so the same wake-up reads and seals it, where a thread per
//! source took two wake-ups and a switch between them (docs/BENCHMARKS.md).

use super::wait::{Waiter, MAX_FDS};
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Steps without a wait before both jobs get one whatever their last said.
const LENT_BURST: usize = 64;

/// What a [`Job`]'s step left to do.
pub enum Step {
    /// Did some work: step again.
    Busy,
    /// Nothing more until the descriptor is readable.
    Dry(RawFd),
    /// Nothing to do until the thread is woken ([`PacketThread::wake`], [`Lender::wake`]).
    Idle,
    /// Finished for good: the thread drops the job (and ends, if it was its own).
    Done,
}

/// A packet source a packet thread reads.
pub trait Job: Send {
    /// One step, without waiting. A descriptor named by [`Step::Dry`] must stay open until
    /// the job's next step.
    fn step(&mut self) -> Step;

    /// Whether the job has work no descriptor shows yet: asked before the thread waits.
    fn has_work(&self) -> bool {
        false
    }
}

/// Spawns a packet thread for `job`; it ends when `job` is done or its [`PacketThread`]
/// handle is dropped. Inside the tokio runtime's context (what it wakes or spawns finds the
/// runtime), and `SCHED_BATCH` when `batch`.
pub fn spawn_packet_thread(
    name: &str,
    stack: usize,
    batch: bool,
    job: Box<dyn Job>,
) -> io::Result<PacketThread> {
    let control = Arc::new(Control {
        stopped: AtomicBool::new(false),
        waiter: Waiter::new()?,
        lent: Mutex::new(None),
        has_lent: AtomicBool::new(false),
        occupied: AtomicBool::new(false),
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
            run(&mine, job);
        })?;
    Ok(PacketThread { control })
}

/// Stops its packet thread when dropped.
pub struct PacketThread {
    control: Arc<Control>,
}

impl PacketThread {
    /// Ends the thread's current or next wait without stopping it: every job steps again.
    pub fn wake(&self) {
        self.control.waiter.wake();
    }

    /// A handle to lend the thread a job.
    pub fn lender(&self) -> Lender {
        Lender {
            control: self.control.clone(),
        }
    }

    /// Wakes the thread (as [`PacketThread::wake`]) while it lives, without keeping it.
    pub fn waker(&self) -> Waker {
        Waker(Arc::downgrade(&self.control))
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

/// Wakes a packet thread while it lives.
#[derive(Clone)]
pub struct Waker(std::sync::Weak<Control>);

impl Waker {
    pub fn wake(&self) {
        if let Some(c) = self.0.upgrade() {
            c.waiter.wake();
        }
    }
}

/// Lends a packet thread a second job: one at a time, until that job is done.
#[derive(Clone)]
pub struct Lender {
    control: Arc<Control>,
}

impl Lender {
    /// Hands `job` to the thread; back when the thread has ended or already has a lent job.
    pub fn lend(&self, job: Box<dyn Job>) -> Result<(), Box<dyn Job>> {
        let c = &self.control;
        if c.stopped.load(Ordering::Relaxed)
            || c.occupied
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return Err(job);
        }
        *c.lent.lock().unwrap_or_else(|e| e.into_inner()) = Some(job);
        c.has_lent.store(true, Ordering::Release);
        c.waiter.wake();
        Ok(())
    }

    /// As [`PacketThread::wake`].
    pub fn wake(&self) {
        self.control.waiter.wake();
    }
}

/// What a packet thread shares with its handles.
pub struct Control {
    stopped: AtomicBool,
    waiter: Waiter,
    /// A job lent and not yet taken by the thread.
    lent: Mutex<Option<Box<dyn Job>>>,
    has_lent: AtomicBool,
    /// A lent job is in `lent` or on the thread.
    occupied: AtomicBool,
}

/// A job on the thread, and whether it may have work without a wait.
struct Slot {
    job: Box<dyn Job>,
    ready: bool,
    fd: Option<RawFd>,
}

impl Slot {
    fn new(job: Box<dyn Job>) -> Self {
        Slot {
            job,
            ready: true,
            fd: None,
        }
    }

    /// Steps the job if it may have work; false once it is done.
    fn step(&mut self) -> bool {
        if !self.ready {
            return true;
        }
        match self.job.step() {
            Step::Busy => {}
            Step::Dry(fd) => (self.ready, self.fd) = (false, Some(fd)),
            Step::Idle => (self.ready, self.fd) = (false, None),
            Step::Done => return false,
        }
        true
    }
}

/// The thread: its own job and a lent one in turns, a step each, until neither has work
/// without a wait; then one wait for either's descriptor or a wake-up.
fn run(control: &Control, own: Box<dyn Job>) {
    let mut own = Slot::new(own);
    let mut lent: Option<Slot> = None;
    let mut spins = 0;
    loop {
        if control.stopped.load(Ordering::Relaxed) {
            return;
        }
        // A load first: the swap alone would be a locked write per step, per packet.
        if control.has_lent.load(Ordering::Relaxed)
            && control.has_lent.swap(false, Ordering::Acquire)
        {
            let job = control
                .lent
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            lent = job.map(Slot::new).or(lent);
        }
        // The lent job drains first: a TUN read that found a TCP flow's data keeps reading
        // until the device is dry, and the ACKs that came meanwhile are then read in one
        // batch, as when each had a thread of its own. Every LENT_BURST steps without a wait,
        // both jobs get a read (a descriptor found dry is otherwise looked at only by `poll`),
        // so neither starves while the other always has work.
        spins += 1;
        let turn = spins >= LENT_BURST;
        if turn {
            spins = 0;
            all_ready(&mut own, &mut lent);
        }
        if (turn || !lent.as_ref().is_some_and(|l| l.ready)) && !own.step() {
            return;
        }
        if lent.as_mut().is_some_and(|l| !l.step()) {
            lent = None;
            control.occupied.store(false, Ordering::Release);
        }
        if own.ready || lent.as_ref().is_some_and(|l| l.ready) {
            continue;
        }
        if let Some(l) = lent.as_mut().filter(|l| l.job.has_work()) {
            l.ready = true;
            continue;
        }
        if own.job.has_work() {
            own.ready = true;
            continue;
        }
        let mut fds = [0; MAX_FDS];
        let mut n = 0;
        for fd in [own.fd, lent.as_ref().and_then(|l| l.fd)]
            .into_iter()
            .flatten()
        {
            fds[n] = fd;
            n += 1;
        }
        spins = 0;
        let woke = match control.waiter.wait(&fds[..n]) {
            Ok(w) => w,
            Err(e) => {
                log::error!("packet thread: waiting failed: {e}");
                return;
            }
        };
        // The ready flags follow the order the descriptors were given in.
        let mut ready = woke.ready.into_iter();
        if own.fd.is_some() {
            own.ready = ready.next().unwrap_or(false);
        }
        if let Some(l) = lent.as_mut() {
            if l.fd.is_some() {
                l.ready = ready.next().unwrap_or(false);
            }
        }
        if woke.woken {
            all_ready(&mut own, &mut lent);
        }
    }
}

/// Both jobs step again whatever their last step said.
fn all_ready(own: &mut Slot, lent: &mut Option<Slot>) {
    own.ready = true;
    if let Some(l) = lent.as_mut() {
        l.ready = true;
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
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;
    use std::sync::atomic::AtomicUsize;
    use std::time::{Duration, Instant};

    /// Reads a socket, counting datagrams; done after `last` of them (if any).
    struct Reads {
        socket: UdpSocket,
        got: Arc<AtomicUsize>,
        last: Option<usize>,
        dropped: Arc<AtomicBool>,
    }

    impl Reads {
        fn new(last: Option<usize>) -> (Self, Arc<AtomicUsize>, Arc<AtomicBool>) {
            let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
            socket.set_nonblocking(true).expect("nonblocking");
            let got = Arc::new(AtomicUsize::new(0));
            let dropped = Arc::new(AtomicBool::new(false));
            let job = Reads {
                socket,
                got: got.clone(),
                last,
                dropped: dropped.clone(),
            };
            (job, got, dropped)
        }

        fn poke(&self, tx: &UdpSocket, n: usize) {
            let to = self.socket.local_addr().expect("addr");
            for _ in 0..n {
                tx.send_to(b"x", to).expect("send");
            }
        }
    }

    impl Job for Reads {
        fn step(&mut self) -> Step {
            let mut buf = [0u8; 16];
            match self.socket.recv(&mut buf) {
                Ok(_) => {
                    let got = self.got.fetch_add(1, Ordering::Relaxed) + 1;
                    match self.last {
                        Some(last) if got >= last => Step::Done,
                        _ => Step::Busy,
                    }
                }
                Err(_) => Step::Dry(self.socket.as_raw_fd()),
            }
        }
    }

    impl Drop for Reads {
        fn drop(&mut self) {
            self.dropped.store(true, Ordering::Relaxed);
        }
    }

    /// Always has work.
    struct Busy(Arc<AtomicUsize>);

    impl Job for Busy {
        fn step(&mut self) -> Step {
            self.0.fetch_add(1, Ordering::Relaxed);
            Step::Busy
        }
    }

    fn until(done: impl Fn() -> bool, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !done() {
            assert!(Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// One thread reads its own socket and a lent one; a lent job that is done is dropped
    /// while the thread goes on, and the place is free for the next; a second job at once,
    /// or any after the thread ended, is handed back; the thread's end drops its jobs.
    #[tokio::test]
    async fn a_lent_job_runs_beside_the_own_one_one_at_a_time_and_never_after_the_end() {
        let tx = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let (own, own_got, own_dropped) = Reads::new(None);
        let own_to = own.socket.local_addr().expect("addr");
        let thread =
            spawn_packet_thread("test-packets", 64 * 1024, false, Box::new(own)).expect("thread");
        let lender = thread.lender();

        // A job that ends after 3 datagrams.
        let (first, first_got, first_dropped) = Reads::new(Some(3));
        first.poke(&tx, 2);
        let first_to = first.socket.local_addr().expect("addr");
        assert!(lender.lend(Box::new(first)).is_ok());
        let (second, _, _) = Reads::new(None);
        assert!(
            lender.lend(Box::new(second)).is_err(),
            "a second job was taken while the first runs"
        );
        until(
            || first_got.load(Ordering::Relaxed) == 2,
            "the lent job's reads",
        );
        tx.send_to(b"x", own_to).expect("send");
        until(
            || own_got.load(Ordering::Relaxed) == 1,
            "the own job's read",
        );
        assert!(!first_dropped.load(Ordering::Relaxed));
        tx.send_to(b"x", first_to).expect("send");
        until(
            || first_dropped.load(Ordering::Relaxed),
            "a finished job was kept",
        );

        // The place is free again; the thread still reads its own socket.
        let (second, second_got, _) = Reads::new(None);
        second.poke(&tx, 4);
        assert!(
            lender.lend(Box::new(second)).is_ok(),
            "the place was not freed"
        );
        until(
            || second_got.load(Ordering::Relaxed) == 4,
            "the next lent job's reads",
        );
        tx.send_to(b"x", own_to).expect("send");
        until(
            || own_got.load(Ordering::Relaxed) == 2,
            "the own job's read",
        );

        drop(thread);
        until(
            || own_dropped.load(Ordering::Relaxed),
            "the thread outlived its handle",
        );
        let (late, _, late_dropped) = Reads::new(None);
        let back = lender.lend(Box::new(late));
        assert!(back.is_err(), "a job was lent to an ended thread");
        drop(back);
        assert!(late_dropped.load(Ordering::Relaxed));
    }

    /// A job that is idle (nothing of its own to wait for) steps again at a wake-up, and
    /// not before.
    #[tokio::test]
    async fn an_idle_job_steps_again_when_the_thread_is_woken() {
        struct Idle(Arc<AtomicUsize>);
        impl Job for Idle {
            fn step(&mut self) -> Step {
                self.0.fetch_add(1, Ordering::Relaxed);
                Step::Idle
            }
        }
        let (own, _, _) = Reads::new(None);
        let thread =
            spawn_packet_thread("test-idle", 64 * 1024, true, Box::new(own)).expect("thread");
        let steps = Arc::new(AtomicUsize::new(0));
        assert!(thread.lender().lend(Box::new(Idle(steps.clone()))).is_ok());
        until(
            || steps.load(Ordering::Relaxed) > 0,
            "the lent job's first step",
        );
        // (A wake-up that came with the lending may step it once more.)
        std::thread::sleep(Duration::from_millis(50));
        let before = steps.load(Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            steps.load(Ordering::Relaxed),
            before,
            "an idle job was stepped unwoken"
        );
        thread.lender().wake();
        until(
            || steps.load(Ordering::Relaxed) == before + 1,
            "a wake-up did not step it",
        );
    }

    /// A job with work that no descriptor shows (`has_work`, asked before each wait) steps
    /// again without a wake-up, once for each time it says so.
    #[tokio::test]
    async fn a_job_with_work_no_descriptor_shows_steps_again_before_the_thread_waits() {
        struct Answers {
            steps: Arc<AtomicUsize>,
            armed: Arc<AtomicBool>,
            pending: AtomicBool,
        }
        impl Job for Answers {
            fn step(&mut self) -> Step {
                self.steps.fetch_add(1, Ordering::Relaxed);
                // A step once armed leaves work behind (as a write whose answer is queued).
                if self.armed.swap(false, Ordering::Relaxed) {
                    self.pending.store(true, Ordering::Relaxed);
                }
                Step::Idle
            }
            fn has_work(&self) -> bool {
                self.pending.swap(false, Ordering::Relaxed)
            }
        }
        let (own, _, _) = Reads::new(None);
        let thread =
            spawn_packet_thread("test-work", 64 * 1024, true, Box::new(own)).expect("thread");
        let steps = Arc::new(AtomicUsize::new(0));
        let armed = Arc::new(AtomicBool::new(false));
        let job = Answers {
            steps: steps.clone(),
            armed: armed.clone(),
            pending: AtomicBool::new(false),
        };
        assert!(thread.lender().lend(Box::new(job)).is_ok());
        until(|| steps.load(Ordering::Relaxed) > 0, "the first step");
        std::thread::sleep(Duration::from_millis(50));
        let before = steps.load(Ordering::Relaxed);
        // One wake-up, one step that leaves work: a second step with no wake-up.
        armed.store(true, Ordering::Relaxed);
        thread.lender().wake();
        until(
            || steps.load(Ordering::Relaxed) == before + 2,
            "the work left was not stepped before the wait",
        );
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            steps.load(Ordering::Relaxed),
            before + 2,
            "stepped once more"
        );
    }

    /// Lends `lent` to a thread whose own job is `own`; once the busy one of them has
    /// stepped 1000 times, each of three datagrams sent to `to` is read by the other.
    /// A job that always has work (`Busy`) beside one that reads a socket; `busy_lent`: the
    /// busy one is lent, else it is the thread's own. The reading job must still get its turns.
    fn not_starved(busy_lent: bool, what: &str) {
        let (reads, got, _) = Reads::new(None);
        let to = reads.socket.local_addr().expect("addr");
        let steps = Arc::new(AtomicUsize::new(0));
        let busy: Box<dyn Job> = Box::new(Busy(steps.clone()));
        let reads: Box<dyn Job> = Box::new(reads);
        let (own, lent) = if busy_lent {
            (reads, busy)
        } else {
            (busy, reads)
        };
        let tx = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let thread = spawn_packet_thread("test-busy", 64 * 1024, false, own).expect("thread");
        assert!(thread.lender().lend(lent).is_ok());
        until(
            || steps.load(Ordering::Relaxed) > 1000,
            "the busy job's steps",
        );
        for n in 1..=3 {
            tx.send_to(b"x", to).expect("send");
            until(|| got.load(Ordering::Relaxed) == n, what);
        }
    }

    /// A lent job that always has work (a flood on the TUN) goes first, but the thread's own
    /// reads still get a step every `LENT_BURST` of its steps.
    #[tokio::test]
    async fn a_busy_lent_job_does_not_starve_the_own_one() {
        not_starved(true, "the own job was starved");
    }

    /// Nor does a busy own job (a flood of fast packets) starve a lent one found dry.
    #[tokio::test]
    async fn a_busy_own_job_does_not_starve_the_lent_one() {
        not_starved(false, "the lent job was starved");
    }
}

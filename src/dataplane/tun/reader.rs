//! The device's reader: a packet thread and a runtime task that take turns ([`reader`]).

use super::super::offload::{self, Gso};
use super::super::pool::PacketBuf;
use super::super::snapshot::Reader;
use super::super::{Dataplane, Needs};
use super::Tun;
use crate::sys::packet_thread::{spawn_packet_thread, Job, Lender, PacketThread, Step};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};
use tokio::io::Interest;
use tokio::sync::Notify;

/// The runtime gives the device back to the thread at the end of the first such period
/// without a packet that needed it (so 1–2 s after the last one): a tick per period, no
/// clock read per packet.
const HOLD: Duration = Duration::from_secs(1);

/// The reader thread's stack: its deepest path is a packet sealed and sent to a peer.
const STACK: usize = 256 * 1024;

/// Reads the device and routes what it reads. Two readers take turns, one at a time:
///
/// - a packet thread (asleep in `poll(2)`) while all it reads is sent from there: a single
///   packet to an idle awl node, sealed and sent on the fast path, so a ping wakes no
///   runtime. That thread is the fast packets' (`thread`, lent the device as a second job),
///   so a ping answered through the device wakes one thread on the answering node; one of
///   its own (`awl-tun`) where there is none;
/// - this task, from the first packet that needs the runtime ([`Needs::Runtime`]: an AWL
///   peer's stream, a busy queue, the service stack) or the first read after the writer
///   task wrote (packets came in a burst: what they make the kernel send back, a TCP flow's
///   ACKs, is read in the writer's wake-up), until [`HOLD`] passes without either. Handing
///   each such packet across threads cost the stream tunnel a fifth of its throughput, and
///   reading a TCP flow's ACKs on the thread added 80 % to the receiver's context switches
///   (docs/BENCHMARKS.md), so while such traffic runs the runtime reads.
///
/// Without a thread (none could start), this task reads alone.
pub async fn reader(tun: Arc<Tun>, dp: Arc<Dataplane>, thread: Option<Lender>) {
    let home = Home::new(tun, dp);
    home.serve(HOLD, thread).await;
}

/// The reader's state, waiting in the slot of the side whose turn it is.
pub(in crate::dataplane) struct Home {
    thread_turn: Mutex<Option<Reading>>,
    runtime_turn: Mutex<Option<Reading>>,
    to_runtime: Notify,
    /// Turns taken by the runtime, and given back.
    handoffs: AtomicUsize,
    handbacks: AtomicUsize,
    /// The runtime's side has ended: the thread's side ends at its next step.
    closed: AtomicBool,
}

/// The thread the device's turns are read on.
enum Side {
    Own(PacketThread),
    /// Lent: it is told to drop the job when this ends.
    Lent(Lender, Arc<Home>),
}

impl Side {
    fn wake(&self) {
        match self {
            Side::Own(t) => t.wake(),
            Side::Lent(l, _) => l.wake(),
        }
    }
}

impl Drop for Side {
    fn drop(&mut self) {
        if let Side::Lent(l, home) = self {
            home.closed.store(true, Ordering::Relaxed);
            l.wake();
        }
    }
}

impl Home {
    pub(in crate::dataplane) fn new(tun: Arc<Tun>, dp: Arc<Dataplane>) -> Arc<Self> {
        Arc::new(Home {
            thread_turn: Mutex::new(Some(Reading::new(tun, dp))),
            runtime_turn: Mutex::new(None),
            to_runtime: Notify::new(),
            handoffs: AtomicUsize::new(0),
            handbacks: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
        })
    }

    /// The runtime's side; lends the thread's side to `lend_to` or starts a thread of its
    /// own, which stops (or drops the job) when this future is dropped.
    pub(in crate::dataplane) async fn serve(
        self: Arc<Self>,
        hold: Duration,
        lend_to: Option<Lender>,
    ) {
        let job: Box<dyn Job> = Box::new(OnThread {
            home: self.clone(),
            held: None,
            waited: false,
            last: None,
        });
        let job = match lend_to {
            Some(l) => match l.lend(job) {
                Ok(()) => Ok(Side::Lent(l, self.clone())),
                Err(job) => Err(job),
            },
            None => Err(job),
        };
        let thread = match job {
            Ok(side) => Some(side),
            Err(job) => match spawn_packet_thread("awl-tun", STACK, false, job) {
                Ok(t) => Some(Side::Own(t)),
                Err(e) => {
                    log::warn!("TUN reader thread not started, reading in the runtime: {e}");
                    let r = take(&self.thread_turn);
                    *lock(&self.runtime_turn) = r;
                    None
                }
            },
        };
        let hold = thread.as_ref().map(|_| hold);
        loop {
            let Some(mut r) = take(&self.runtime_turn) else {
                self.to_runtime.notified().await;
                continue;
            };
            if let Err(e) = r.in_runtime(hold).await {
                read_failed(&e);
                return;
            }
            *lock(&self.thread_turn) = Some(r);
            self.handbacks.fetch_add(1, Ordering::Relaxed);
            if let Some(t) = &thread {
                t.wake();
            }
        }
    }

    /// The thread's side as a job of its own, to step by hand (tests).
    #[cfg(test)]
    pub(in crate::dataplane) fn thread_job(self: &Arc<Self>) -> OnThread {
        OnThread {
            home: self.clone(),
            held: None,
            waited: false,
            last: None,
        }
    }

    /// Turns the runtime took, and gave back.
    #[cfg(test)]
    pub(in crate::dataplane) fn turns(&self) -> (usize, usize) {
        (
            self.handoffs.load(Ordering::Relaxed),
            self.handbacks.load(Ordering::Relaxed),
        )
    }
}

/// The thread's side, a packet thread's job: reads while it is its turn, hands the device
/// to the runtime after a packet that needed it.
pub(in crate::dataplane) struct OnThread {
    home: Arc<Home>,
    held: Option<Reading>,
    /// The last step ended in a wait (the device was dry).
    waited: bool,
    /// When the last read right after a wait found a packet.
    last: Option<Instant>,
}

/// A lone packet read right after a wait, more than this after the last such read, is taken
/// as the only one: the thread waits again instead of reading the device dry (a read that
/// fails per packet at a ping's pace). `poll` returns at once if more came; denser traffic
/// reads until the device is dry.
const SPARSE: Duration = Duration::from_micros(500);

impl OnThread {
    /// As if the last read after a wait had been now (`true`: traffic is dense) or never.
    #[cfg(test)]
    pub(in crate::dataplane) fn set_pace(&mut self, dense: bool) {
        self.last = dense.then(Instant::now);
    }

    /// Whether traffic is sparse: the clock is read once per wake-up, not per packet.
    fn sparse(&mut self) -> bool {
        let now = Instant::now();
        let gap = self.last.is_none_or(|t| now.duration_since(t) > SPARSE);
        self.last = Some(now);
        gap
    }
}

impl Job for OnThread {
    fn has_work(&self) -> bool {
        self.held
            .as_ref()
            .is_some_and(|r| r.tun.answer.swap(false, Ordering::Relaxed))
    }

    fn step(&mut self) -> Step {
        let home = &self.home;
        if home.closed.load(Ordering::Relaxed) {
            return Step::Done;
        }
        let r = match self.held.as_mut() {
            Some(r) => r,
            None => match take(&home.thread_turn) {
                Some(r) => self.held.insert(r),
                None => return Step::Idle,
            },
        };
        let waited = std::mem::take(&mut self.waited);
        match r.once() {
            Ok(Needs::Nothing) if !r.tun.wrote.load(Ordering::Relaxed) => {
                let fd = r.tun.fd();
                self.waited = waited && r.single && self.sparse();
                match self.waited {
                    true => Step::Dry(fd),
                    false => Step::Busy,
                }
            }
            Ok(_) => {
                *lock(&home.runtime_turn) = self.held.take();
                home.handoffs.fetch_add(1, Ordering::Relaxed);
                home.to_runtime.notify_one();
                Step::Idle
            }
            Err(e) if crate::sys::would_block(&e) => {
                self.waited = true;
                Step::Dry(r.tun.fd())
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Step::Busy,
            Err(e) => {
                read_failed(&e);
                Step::Done
            }
        }
    }
}

/// Either side's end: the device failed.
#[cold]
fn read_failed(e: &io::Error) {
    log::error!("TUN read failed: {e}");
}

fn lock(m: &Mutex<Option<Reading>>) -> std::sync::MutexGuard<'_, Option<Reading>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn take(m: &Mutex<Option<Reading>>) -> Option<Reading> {
    lock(m).take()
}

/// A reader's buffers and cached snapshot, which move between the thread and the task.
struct Reading {
    tun: Arc<Tun>,
    dp: Arc<Dataplane>,
    snap: Reader,
    /// Where every read goes: with offloads, sized for the largest (a 64 KB super-packet
    /// and its header); without, for a pooled buffer's packet and its trailer.
    big: Vec<u8>,
    segments: Vec<PacketBuf>,
    /// The last read was one packet (not a super-packet).
    single: bool,
}

impl Reading {
    fn new(tun: Arc<Tun>, dp: Arc<Dataplane>) -> Self {
        let big = match tun.vnet {
            true => offload::HDR_LEN + 65535,
            false => dp.pool().buffer_size() + 1,
        };
        Reading {
            snap: dp.reader(),
            tun,
            dp,
            big: vec![0u8; big],
            segments: Vec::new(),
            single: false,
        }
    }

    /// Reads in the runtime until `hold` passes without a packet that needed it (or for
    /// good without `hold`); an error only when the device fails.
    async fn in_runtime(&mut self, hold: Option<Duration>) -> io::Result<()> {
        let io = crate::sys::asyncfd::register(self.tun.fd.try_clone()?, Interest::READABLE)?;
        let mut tick = hold.map(|h| {
            let mut t = tokio::time::interval_at(tokio::time::Instant::now() + h, h);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        // Since the packet that brought the device here, nothing has needed the runtime.
        let mut needed = false;
        std::future::poll_fn(|cx| loop {
            // `poll_read_ready` keeps one waker, where `readable()` would queue a waiter
            // node per wait (~400 instructions per packet more); it also spends the task's
            // budget, so a busy device still yields to other tasks.
            let Poll::Ready(ready) = io.poll_read_ready(cx) else {
                // The clock is looked at only when the device is idle: polling the timer per
                // packet spent a second unit of the task's budget on each (more yields under
                // load). A device busy for good keeps the runtime, as it did before the thread.
                if let Some(t) = tick.as_mut() {
                    if t.poll_tick(cx).is_ready() {
                        let wrote = self.tun.wrote.swap(false, Ordering::Relaxed);
                        if !needed && !wrote {
                            return Poll::Ready(Ok(()));
                        }
                        needed = false;
                        continue;
                    }
                }
                return Poll::Pending;
            };
            let mut ready = ready?;
            // `try_io` clears the readiness on WouldBlock, so the next wait is epoll's.
            match ready.try_io(|_| self.once()) {
                Ok(Ok(Needs::Runtime)) => needed = true,
                Ok(Ok(Needs::Nothing)) | Err(_) => {}
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(e)) => return Poll::Ready(Err(e)),
            }
        })
        .await
    }

    /// One read without waiting, and what its packets needed; WouldBlock when the device
    /// has nothing.
    fn once(&mut self) -> io::Result<Needs> {
        if self.tun.vnet {
            return self.once_vnet();
        }
        // Into the reader's own buffer: copied into a pooled one only if it is not sent at
        // once (with the pool empty, the device is still drained).
        let n = crate::sys::tun::read(self.tun.fd(), &mut self.big)?;
        self.single = true;
        Ok(self.dp.route_from(&mut self.snap, &mut self.big, n, false))
    }

    /// With offloads: one read may be a TCP super-packet, cut here into MTU-sized segments.
    fn once_vnet(&mut self) -> io::Result<Needs> {
        let n = crate::sys::tun::read(self.tun.fd(), &mut self.big)?;
        let dp = &self.dp;
        self.single = false;
        let Ok((hdr, pkt)) = offload::parse(&self.big[..n]) else {
            dp.stats.global(|g| g.tx_unroutable += 1);
            return Ok(Needs::Nothing);
        };
        match hdr.gso {
            Gso::None => {
                // Routed from where it was read: a copy only if it is not sent at once. A
                // partial checksum is completed only where it cannot go partial.
                self.single = true;
                let len = pkt.len();
                let pkt = &mut self.big[offload::HDR_LEN..];
                Ok(dp.route_from(&mut self.snap, pkt, len, hdr.needs_csum))
            }
            Gso::TcpV4 { mss } => {
                let Ok(segs) = offload::TcpSegments::new(pkt, mss) else {
                    dp.stats.global(|g| g.tx_unroutable += 1);
                    return Ok(Needs::Nothing);
                };
                dp.stats.global(|g| g.tun_super_packets += 1);
                for i in 0..segs.count() {
                    let Some(mut buf) = dp.pool().get() else {
                        break;
                    };
                    match segs.write(i, buf.space(), true) {
                        Some(len) => {
                            buf.set_len(len);
                            self.segments.push(buf);
                        }
                        None => {
                            dp.stats.global(|g| g.tx_too_big += 1);
                            break;
                        }
                    }
                }
                Ok(dp.route_segments(&mut self.snap, &mut self.segments, true))
            }
        }
    }
}

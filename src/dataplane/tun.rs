//! The TUN device: opened with the `tun` crate, read by a thread or a task in turn
//! ([`reader`]) and written by a task (and by the fast-packet thread), which connect it to
//! the data plane. Reads and writes go straight to a duplicate of the device's descriptor,
//! not through the crate's async wrapper: that one zeroed a 1.5 KB stack buffer and waited
//! for readiness twice on every read (2,200 instructions per packet).

use super::offload::{self, Gso};
use super::pool::PacketBuf;
use super::snapshot::Reader;
use super::{Dataplane, Needs};
use crate::sys::packet_thread::{spawn_packet_thread, Job, Lender, PacketThread, Step};
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::{mpsc, Notify};

pub struct TunConfig {
    pub name: String,
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub mtu: u16,
    /// Ask for TSO/checksum offloads (virtio-net header on every read and write).
    pub offload: bool,
}

/// An open TUN device.
pub struct Tun {
    /// Keeps the interface (and the crate's control socket) open.
    _dev: ::tun::Device,
    /// A non-blocking duplicate of the device's descriptor: read by the reader (registered
    /// with the reactor only while the runtime reads), written by the writer task and the
    /// fast-packet thread.
    fd: OwnedFd,
    /// Reads and writes carry a virtio-net header: the kernel may hand us TCP super-packets.
    pub vnet: bool,
    /// The writer task wrote since the reader last looked: packets arrive in bursts, and
    /// what they make the kernel send back (a TCP flow's ACKs) is best read by the runtime,
    /// in the wake-up that wrote them, than by the thread in one of its own.
    wrote: AtomicBool,
}

impl Tun {
    pub(super) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Marks a write by the writer task (looked at before stored: the reader clears it
    /// about once a second, so the line stays shared, not bounced, while bursts run).
    fn mark_written(&self) {
        if !self.wrote.load(Ordering::Relaxed) {
            self.wrote.store(true, Ordering::Relaxed);
        }
    }

    /// Writes `buf`, waiting while the device refuses. Writability is watched only for such
    /// a wait (a duplicate registered for writes until then): registered for good, each
    /// packet the kernel takes from the device would wake the runtime for nothing, and
    /// packets the fast-packet thread writes would wake it too.
    async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        let mut waiting: Option<AsyncFd<OwnedFd>> = None;
        loop {
            match write_fd(self.fd(), buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                r => return r,
            }
            let io = match waiting {
                Some(ref io) => io,
                None => waiting.insert(crate::sys::asyncfd::register(
                    self.fd.try_clone()?,
                    Interest::WRITABLE,
                )?),
            };
            io.writable().await?.clear_ready();
        }
    }
}

pub fn open(cfg: &TunConfig) -> Result<Tun, String> {
    let mut c = ::tun::Configuration::default();
    let netmask = Ipv4Addr::from(if cfg.prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(cfg.prefix))
    });
    c.tun_name(&cfg.name)
        .address(cfg.address)
        .netmask(netmask)
        .mtu(cfg.mtu)
        .up();
    if cfg.offload {
        c.platform_config(|p| {
            p.vnet_hdr(true);
        });
    }
    let dev =
        ::tun::create(&c).map_err(|e| format!("cannot create TUN device {}: {e}", cfg.name))?;
    if cfg.offload {
        if let Err(e) = set_offload(dev.as_raw_fd()) {
            // Still correct: every read is then one ordinary packet behind a header.
            log::info!("TUN offloads not available: {e}");
        }
    }
    let fd = dev
        .set_nonblock()
        .and_then(|()| crate::sys::tun::dup(dev.as_raw_fd()))
        .map_err(|e| format!("cannot open TUN device {}: {e}", cfg.name))?;
    Ok(Tun {
        _dev: dev,
        fd,
        vnet: cfg.offload,
        wrote: AtomicBool::new(false),
    })
}

/// Checksum offload and TSO for IPv4 (with ECN): the kernel skips segmenting TCP for us.
/// Not IPv6 (the mesh drops it) and not UDP (AWL peers could not take a UDP super-packet).
fn set_offload(fd: RawFd) -> io::Result<()> {
    crate::sys::tun::set_offload(fd)
}

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
pub(super) struct Home {
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
    pub(super) fn new(tun: Arc<Tun>, dp: Arc<Dataplane>) -> Arc<Self> {
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
    pub(super) async fn serve(self: Arc<Self>, hold: Duration, lend_to: Option<Lender>) {
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
    pub(super) fn thread_job(self: &Arc<Self>) -> OnThread {
        OnThread {
            home: self.clone(),
            held: None,
            waited: false,
            last: None,
        }
    }

    /// Turns the runtime took, and gave back.
    #[cfg(test)]
    pub(super) fn turns(&self) -> (usize, usize) {
        (
            self.handoffs.load(Ordering::Relaxed),
            self.handbacks.load(Ordering::Relaxed),
        )
    }
}

/// The thread's side, a packet thread's job: reads while it is its turn, hands the device
/// to the runtime after a packet that needed it.
pub(super) struct OnThread {
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
    pub(super) fn set_pace(&mut self, dense: bool) {
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
        Ok(self.dp.route_from(&mut self.snap, &mut self.big, n))
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
                // Routed from where it was read: a copy only if it is not sent at once.
                self.single = true;
                let len = pkt.len();
                let pkt = &mut self.big[offload::HDR_LEN..];
                if hdr.needs_csum {
                    offload::complete_checksum(&mut pkt[..len]);
                }
                Ok(dp.route_from(&mut self.snap, pkt, len))
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
                    match segs.write(i, buf.space()) {
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
                Ok(dp.route_segments(&mut self.snap, &mut self.segments))
            }
        }
    }
}

/// Writes packets from the mesh to the device.
pub async fn writer(tun: Arc<Tun>, mut rx: mpsc::Receiver<PacketBuf>) {
    if tun.vnet {
        return writer_vnet(&tun, rx).await;
    }
    while let Some(p) = rx.recv().await {
        if let Err(e) = tun.send(p.data()).await {
            log::debug!("TUN write failed: {e}");
        }
        tun.mark_written();
    }
}

/// Writes one packet now, from outside the writer task; WouldBlock if the device is full.
pub fn write_now(tun: &Tun, pkt: &[u8]) -> io::Result<()> {
    let fd = tun.fd();
    if tun.vnet {
        write_vnet(fd, pkt)
    } else {
        write_fd(fd, pkt)
    }
    .map(|_| ())
}

/// One `write(2)` of `buf`, without waiting.
fn write_fd(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    crate::sys::tun::write(fd, buf)
}

/// Packets taken from the queue at once for coalescing; only what is already waiting, so
/// nothing is held back.
const WRITE_BATCH: usize = 64;

/// With offloads: runs of one TCP flow's segments are written as one super-packet.
async fn writer_vnet(dev: &Tun, mut rx: mpsc::Receiver<PacketBuf>) {
    let run = Burst::default();
    let mut batch: Vec<PacketBuf> = Vec::with_capacity(WRITE_BATCH);
    while let Some(p) = rx.recv().await {
        batch.push(p);
        while batch.len() < WRITE_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        for p in batch.drain(..) {
            written(run.push(dev, p.data()));
        }
        written(run.flush(dev));
        dev.mark_written();
    }
}

/// A burst's segments joined before they are written: by the writer task, and by the thread
/// that opened a burst of fast packets (no copy into a pooled buffer, no queue, no runtime
/// wake-up per burst), which writes the run when a packet does not continue it and at the
/// end of each read (`fastpath::Table::end_batch`). A TUN never refuses a write for want of
/// room (its send buffer is unlimited: `INT_MAX` at open, which we never lower), so the
/// writes do not wait; one that fails loses what it held, as a full queue would.
#[derive(Default)]
pub struct Burst(Mutex<offload::Coalescer>);

impl Burst {
    /// `pkt` joins the run; or the run is written and `pkt` starts the next one, or goes
    /// alone if it cannot start one.
    pub fn push(&self, tun: &Tun, pkt: &[u8]) -> io::Result<()> {
        let mut run = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if run.push(pkt) {
            return Ok(());
        }
        let written = write_run(tun, &mut run);
        let pkt_written = match run.push(pkt) {
            true => Ok(()),
            false => write_vnet(tun.fd(), pkt).map(|_| ()),
        };
        written.and(pkt_written)
    }

    /// Writes the run, if any.
    pub fn flush(&self, tun: &Tun) -> io::Result<()> {
        write_run(tun, &mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

fn write_run(tun: &Tun, run: &mut offload::Coalescer) -> io::Result<()> {
    match run.segments() {
        0 => Ok(()),
        _ => write_fd(tun.fd(), run.finish()).map(|_| ()),
    }
}

/// Whether a write to the device went through; a failed one is logged (its packets are
/// lost, as from a full queue).
pub fn written(r: io::Result<()>) -> bool {
    match r {
        Ok(()) => true,
        Err(e) => {
            log::debug!("TUN write failed: {e}");
            false
        }
    }
}

/// One packet behind `SINGLE_HDR` (no segmentation), without copying it.
fn write_vnet(fd: RawFd, pkt: &[u8]) -> io::Result<usize> {
    crate::sys::tun::writev(fd, [&offload::SINGLE_HDR[..], pkt])
}

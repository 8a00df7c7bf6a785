//! The TUN device: opened with the `tun` crate, read by a thread or a task in turn
//! ([`reader`]) and written by a task (and by the fast-packet thread), which connect it to
//! the data plane. Reads and writes go straight to a duplicate of the device's descriptor,
//! not through the crate's async wrapper: that one zeroed a 1.5 KB stack buffer and waited
//! for readiness twice on every read (2,200 instructions per packet).

use super::offload;
use super::pool::PacketBuf;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::mpsc;

mod reader;
pub use reader::reader;
#[cfg(test)]
pub(super) use reader::Home;

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
    /// The fast packets' thread wrote a lone packet for this node itself: what the kernel
    /// answers (an echo reply, a TCP handshake's reply) it queues on the device inside that
    /// write, so the thread reads the device before it waits (a `poll` less per round trip).
    answer: AtomicBool,
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

    /// Marks a lone packet for this node, written by the fast packets' thread.
    pub(super) fn mark_for_node(&self) {
        self.answer.store(true, Ordering::Relaxed);
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
        answer: AtomicBool::new(false),
    })
}

/// Checksum offload and TSO for IPv4 (with ECN): the kernel skips segmenting TCP for us.
/// Not IPv6 (the mesh drops it) and not UDP (AWL peers could not take a UDP super-packet).
fn set_offload(fd: RawFd) -> io::Result<()> {
    crate::sys::tun::set_offload(fd)
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
/// `partial`: its checksum is partial, at (`csum_start`, `csum_offset`) — only where the
/// device has offloads (`Tun::vnet`: the caller's check).
pub fn write_now(tun: &Tun, pkt: &[u8], partial: Option<(u16, u16)>) -> io::Result<()> {
    let fd = tun.fd();
    if tun.vnet {
        write_vnet(fd, pkt, partial)
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
            written(run.push(dev, p.data(), None));
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
    /// alone if it cannot start one. `partial`: as for [`write_now`].
    pub fn push(&self, tun: &Tun, pkt: &[u8], partial: Option<(u16, u16)>) -> io::Result<()> {
        let mut run = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if run.push(pkt, partial.is_some()) {
            return Ok(());
        }
        let written = write_run(tun, &mut run);
        let pkt_written = match run.push(pkt, partial.is_some()) {
            true => Ok(()),
            false => write_vnet(tun.fd(), pkt, partial).map(|_| ()),
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

/// One packet behind `SINGLE_HDR`, or the header of a partial checksum (no segmentation),
/// without copying it.
fn write_vnet(fd: RawFd, pkt: &[u8], partial: Option<(u16, u16)>) -> io::Result<usize> {
    let hdr = partial.map_or(offload::SINGLE_HDR, offload::partial_hdr);
    crate::sys::tun::writev(fd, [&hdr[..], pkt])
}

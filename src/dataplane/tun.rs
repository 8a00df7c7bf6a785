//! The TUN device: opened with the `tun` crate, read by a thread of its own and written by a
//! task (and by the fast-packet thread), which connect it to the data plane. Reads and
//! writes go straight to a duplicate of the device's descriptor, not through the crate's
//! async wrapper: that one zeroed a 1.5 KB stack buffer and waited for readiness twice on
//! every read (2,200 instructions per packet). The reader sleeps in `poll(2)`
//! (`sys::wait`), not in tokio's reactor: a packet read wakes no timer wheel, clock read or
//! task queue.

use super::offload::{self, Gso};
use super::pool::PacketBuf;
use super::Dataplane;
use crate::sys::wait::{spawn_packet_thread, Control, PacketThread};
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::mpsc;

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
    /// A non-blocking duplicate of the device's descriptor: read by the reader thread,
    /// written by the writer task and the fast-packet thread.
    fd: OwnedFd,
    /// Reads and writes carry a virtio-net header: the kernel may hand us TCP super-packets.
    pub vnet: bool,
}

impl Tun {
    fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
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
    })
}

/// Checksum offload and TSO for IPv4 (with ECN): the kernel skips segmenting TCP for us.
/// Not IPv6 (the mesh drops it) and not UDP (AWL peers could not take a UDP super-packet).
fn set_offload(fd: RawFd) -> io::Result<()> {
    crate::sys::tun::set_offload(fd)
}

/// The reader thread's stack: its deepest path is a packet sealed and sent to a peer.
const STACK: usize = 256 * 1024;

/// Reads the device on a thread of its own, which routes and sends what it reads: a packet
/// for an awl node whose queue is idle is sealed and sent from this thread (a ping's, or a
/// TCP super-packet's segments as one run), so neither wakes the runtime; the rest goes to
/// the peers' queues, whose sender tasks run in the runtime. Ends when the handle drops.
pub fn start_reader(tun: Arc<Tun>, dp: Arc<Dataplane>) -> io::Result<PacketThread> {
    spawn_packet_thread("awl-tun", STACK, false, move |control| {
        if tun.vnet {
            read_vnet(&tun, &dp, control)
        } else {
            read_plain(&tun, &dp, control)
        }
    })
}

/// Calls `read` until it fails for good or the thread is stopped, sleeping while the device
/// has nothing.
fn each_read(tun: &Tun, control: &Control, mut read: impl FnMut(RawFd) -> io::Result<()>) {
    loop {
        if control.stopped() {
            return;
        }
        match read(tun.fd()) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if let Err(e) = control.wait(tun.fd()) {
                    log::error!("TUN: waiting failed: {e}");
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                log::error!("TUN read failed: {e}");
                return;
            }
        }
    }
}

/// Without offloads: each read straight into a pooled buffer.
fn read_plain(tun: &Tun, dp: &Arc<Dataplane>, control: &Control) {
    let mut scratch = vec![0u8; dp.pool().buffer_size()];
    let mut snap = dp.reader();
    each_read(tun, control, |fd| {
        match dp.pool().get() {
            Some(mut buf) => {
                let n = crate::sys::tun::read(fd, buf.space())?;
                buf.set_len(n);
                dp.route_with(&mut snap, buf);
            }
            // Pool empty: keep draining the device so the kernel queue doesn't stall.
            None => {
                crate::sys::tun::read(fd, &mut scratch)?;
            }
        }
        Ok(())
    })
}

/// With offloads: one read may be a TCP super-packet, cut here into MTU-sized segments.
fn read_vnet(tun: &Tun, dp: &Arc<Dataplane>, control: &Control) {
    // One fixed buffer for the largest read (64 KB super-packet and its header).
    let mut big = vec![0u8; offload::HDR_LEN + 65535];
    let mut segments: Vec<PacketBuf> = Vec::new();
    let mut snap = dp.reader();
    each_read(tun, control, |fd| {
        let n = crate::sys::tun::read(fd, &mut big)?;
        let Ok((hdr, pkt)) = offload::parse(&big[..n]) else {
            dp.stats.global(|g| g.tx_unroutable += 1);
            return Ok(());
        };
        match hdr.gso {
            Gso::None => {
                let Some(mut buf) = dp.pool().get() else {
                    return Ok(());
                };
                let Some(space) = buf.space().get_mut(..pkt.len()) else {
                    dp.stats.global(|g| g.tx_too_big += 1);
                    return Ok(());
                };
                space.copy_from_slice(pkt);
                buf.set_len(pkt.len());
                if hdr.needs_csum {
                    offload::complete_checksum(buf.data_mut());
                }
                dp.route_with(&mut snap, buf);
            }
            Gso::TcpV4 { mss } => {
                let Ok(segs) = offload::TcpSegments::new(pkt, mss) else {
                    dp.stats.global(|g| g.tx_unroutable += 1);
                    return Ok(());
                };
                dp.stats.global(|g| g.tun_super_packets += 1);
                for i in 0..segs.count() {
                    let Some(mut buf) = dp.pool().get() else {
                        break;
                    };
                    match segs.write(i, buf.space()) {
                        Some(len) => {
                            buf.set_len(len);
                            segments.push(buf);
                        }
                        None => {
                            dp.stats.global(|g| g.tx_too_big += 1);
                            break;
                        }
                    }
                }
                dp.route_segments(&mut snap, &mut segments);
            }
        }
        Ok(())
    })
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
    let mut run = offload::Coalescer::default();
    let mut batch: Vec<PacketBuf> = Vec::with_capacity(WRITE_BATCH);
    let mut joined = Vec::new();
    while let Some(p) = rx.recv().await {
        batch.push(p);
        while batch.len() < WRITE_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        for p in batch.drain(..) {
            if run.push(p.data()) {
                continue;
            }
            if run.segments() > 0 {
                write_raw(dev, run.finish()).await;
            }
            if !run.push(p.data()) {
                write_one(dev, p.data(), &mut joined).await;
            }
        }
        if run.segments() > 0 {
            write_raw(dev, run.finish()).await;
        }
    }
}

/// One ordinary packet, its checksums marked as checked (see `offload::SINGLE_HDR`).
async fn write_one(dev: &Tun, pkt: &[u8], joined: &mut Vec<u8>) {
    match write_vnet(dev.fd(), pkt) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            joined.clear();
            joined.extend_from_slice(&offload::SINGLE_HDR);
            joined.extend_from_slice(pkt);
            if let Err(e) = dev.send(joined).await {
                log::debug!("TUN write failed: {e}");
            }
        }
        Err(e) => log::debug!("TUN write failed: {e}"),
        Ok(_) => {}
    }
}

/// A buffer that already starts with its virtio-net header.
async fn write_raw(dev: &Tun, buf: &[u8]) {
    if let Err(e) = dev.send(buf).await {
        log::debug!("TUN write failed: {e}");
    }
}

/// One packet behind `SINGLE_HDR` (no segmentation), without copying it.
fn write_vnet(fd: RawFd, pkt: &[u8]) -> io::Result<usize> {
    crate::sys::tun::writev(fd, [&offload::SINGLE_HDR[..], pkt])
}

//! The TUN device: opened with the `tun` crate, read and written by two tasks that connect it
//! to the data plane's queues. Reads and writes go straight to a duplicate of the device's
//! descriptor registered with the reactor, not through the crate's async wrapper: that one
//! zeroed a 1.5 KB stack buffer and waited for readiness twice on every read (2,200
//! instructions per packet).

use super::offload::{self, Gso};
use super::pool::PacketBuf;
use super::Dataplane;
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
    /// A duplicate of the device's descriptor, registered for reads only.
    io: AsyncFd<OwnedFd>,
    /// Reads and writes carry a virtio-net header: the kernel may hand us TCP super-packets.
    pub vnet: bool,
}

impl Tun {
    fn fd(&self) -> RawFd {
        self.io.get_ref().as_raw_fd()
    }

    /// One packet (or super-packet) into `buf`, waiting until there is one. Only the reader
    /// task calls this: `poll_read_ready` keeps one waker, where `readable()` would queue a
    /// waiter node per wait (~400 instructions per packet more).
    async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        std::future::poll_fn(|cx| loop {
            let mut ready = std::task::ready!(self.io.poll_read_ready(cx))?;
            // `try_io` clears the readiness on WouldBlock, so the next wait is epoll's.
            if let Ok(r) = ready.try_io(|fd| crate::sys::tun::read(fd.get_ref().as_raw_fd(), buf)) {
                return std::task::Poll::Ready(r);
            }
        })
        .await
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
                    self.io.get_ref().try_clone()?,
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
    let io = dev
        .set_nonblock()
        .and_then(|()| crate::sys::tun::dup(dev.as_raw_fd()))
        .and_then(|fd| crate::sys::asyncfd::register(fd, Interest::READABLE))
        .map_err(|e| format!("cannot register TUN device {}: {e}", cfg.name))?;
    Ok(Tun {
        _dev: dev,
        io,
        vnet: cfg.offload,
    })
}

/// Checksum offload and TSO for IPv4 (with ECN): the kernel skips segmenting TCP for us.
/// Not IPv6 (the mesh drops it) and not UDP (AWL peers could not take a UDP super-packet).
fn set_offload(fd: RawFd) -> io::Result<()> {
    crate::sys::tun::set_offload(fd)
}

/// Reads packets from the device into pooled buffers and routes them.
pub async fn reader(tun: Arc<Tun>, dp: Arc<Dataplane>) {
    if tun.vnet {
        return reader_vnet(&tun, &dp).await;
    }
    let dev = &tun;
    let mut scratch = vec![0u8; dp.pool().buffer_size()];
    let mut snap = dp.reader();
    loop {
        match dp.pool().get() {
            Some(mut buf) => match dev.recv(buf.space()).await {
                Ok(n) => {
                    buf.set_len(n);
                    dp.route_with(&mut snap, buf);
                }
                Err(e) => {
                    log::error!("TUN read failed: {e}");
                    return;
                }
            },
            None => {
                // Pool empty: keep draining the device so the kernel queue doesn't stall.
                if dev.recv(&mut scratch).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// With offloads: one read may be a TCP super-packet, cut here into MTU-sized segments.
async fn reader_vnet(dev: &Tun, dp: &Arc<Dataplane>) {
    // One fixed buffer for the largest read (64 KB super-packet and its header).
    let mut big = vec![0u8; offload::HDR_LEN + 65535];
    let mut segments: Vec<PacketBuf> = Vec::new();
    let mut snap = dp.reader();
    loop {
        let n = match dev.recv(&mut big).await {
            Ok(n) => n,
            Err(e) => {
                log::error!("TUN read failed: {e}");
                return;
            }
        };
        let Ok((hdr, pkt)) = offload::parse(&big[..n]) else {
            dp.stats.global(|g| g.tx_unroutable += 1);
            continue;
        };
        match hdr.gso {
            Gso::None => {
                let Some(mut buf) = dp.pool().get() else {
                    continue;
                };
                let Some(space) = buf.space().get_mut(..pkt.len()) else {
                    dp.stats.global(|g| g.tx_too_big += 1);
                    continue;
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
                    continue;
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

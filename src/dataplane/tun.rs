//! The TUN device: opened with the `tun` crate, read and written by two tasks that connect it
//! to the data plane's queues.

use super::pool::PacketBuf;
use super::Dataplane;
use std::net::Ipv4Addr;
use std::sync::Arc;
use tokio::sync::mpsc;

pub struct TunConfig {
    pub name: String,
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub mtu: u16,
}

pub fn open(cfg: &TunConfig) -> Result<Arc<::tun::AsyncDevice>, String> {
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
    let dev = ::tun::create_as_async(&c)
        .map_err(|e| format!("cannot create TUN device {}: {e}", cfg.name))?;
    Ok(Arc::new(dev))
}

/// Reads packets from the device into pooled buffers and routes them.
pub async fn reader(dev: Arc<::tun::AsyncDevice>, dp: Arc<Dataplane>) {
    let mut scratch = vec![0u8; dp.pool().buffer_size()];
    loop {
        match dp.pool().get() {
            Some(mut buf) => match dev.recv(buf.space()).await {
                Ok(n) => {
                    buf.set_len(n);
                    dp.route_outbound(buf);
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

/// Writes packets from the mesh to the device.
pub async fn writer(dev: Arc<::tun::AsyncDevice>, mut rx: mpsc::Receiver<PacketBuf>) {
    while let Some(p) = rx.recv().await {
        if let Err(e) = dev.send(p.data()).await {
            log::debug!("TUN write failed: {e}");
        }
    }
}

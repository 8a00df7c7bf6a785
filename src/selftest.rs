//! `awl selftest`: two in-process nodes over loopback QUIC, no TUN or root needed.
//!
//! Meant for qemu-user runs of cross-built binaries, where endianness and atomics bugs of a
//! target would show up as a failed handshake, a garbled frame or a hang.

use crate::identity::Keypair;
use crate::p2p::{Host, HostConfig};
use std::time::{Duration, Instant};

const TEST_PROTOCOL: &str = "/awl/selftest/1/";

pub async fn run() -> Result<String, String> {
    let start = Instant::now();
    let step = |what: &str, e: &dyn std::fmt::Display| format!("{what}: {e}");
    let cfg = HostConfig::new("127.0.0.1:0".parse().map_err(|e| step("addr", &e))?);
    let a = Host::start(Keypair::generate(), cfg.clone())
        .await
        .map_err(|e| step("start A", &e))?;
    let b = Host::start(Keypair::generate(), cfg)
        .await
        .map_err(|e| step("start B", &e))?;
    let mut inbound = b.register(TEST_PROTOCOL, 4);
    let addr = b
        .listen_addrs()
        .first()
        .cloned()
        .ok_or("B has no address")?
        .with_p2p(&b.peer_id());
    let peer = a.dial(&addr).await.map_err(|e| step("dial", &e))?;
    if peer != b.peer_id() {
        return Err("dial returned the wrong peer".into());
    }
    let info = a.identify(&peer).await.map_err(|e| step("identify", &e))?;
    if !info.protocols.iter().any(|p| p == TEST_PROTOCOL) {
        return Err("identify lacks the registered protocol".into());
    }
    let rtt = a.ping(&peer).await.map_err(|e| step("ping", &e))?;

    // A multi-byte payload with big numbers catches byte-order mistakes.
    let payload: Vec<u8> = (0u32..4096)
        .flat_map(|i| (i.wrapping_mul(2_654_435_761)).to_be_bytes())
        .collect();
    let mut s = a
        .open_stream(&peer, &[TEST_PROTOCOL])
        .await
        .map_err(|e| step("open stream", &e))?;
    s.send
        .write_all(&payload)
        .await
        .map_err(|e| step("write", &e))?;
    s.send.finish().map_err(|e| step("finish", &e))?;
    let mut got = tokio::time::timeout(Duration::from_secs(10), inbound.recv())
        .await
        .map_err(|e| step("accept", &e))?
        .ok_or("no inbound stream")?;
    let data = got
        .recv
        .read_to_end(1 << 20)
        .await
        .map_err(|e| step("read", &e))?;
    if data != payload {
        return Err("payload corrupted in transit".into());
    }
    a.shutdown();
    b.shutdown();
    Ok(format!(
        "selftest OK: handshake, identify, ping ({:.1} ms), {} byte stream in {:.0} ms",
        rtt.as_secs_f64() * 1e3,
        payload.len(),
        start.elapsed().as_secs_f64() * 1e3
    ))
}

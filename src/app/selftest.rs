//! `awl selftest`: two in-process nodes over loopback QUIC, no TUN or root needed.
//!
//! Runs the real code paths: libp2p handshake, identify and ping; AWL auth (invite with
//! auto-accept), status (both sides confirmed), and the tunnel with the receive-side rewrite
//! and checksums. Meant for qemu-user runs of cross-built binaries, where endianness and
//! atomics bugs of a target show up as a failed handshake, a garbled frame or a hang.

use crate::app::node::Node;
use crate::config::Config;
use crate::dataplane::packet;
use crate::p2p::identity::Keypair;
use crate::p2p::{Host, HostConfig};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

type TunQueue = tokio::sync::mpsc::Receiver<crate::dataplane::pool::PacketBuf>;

const WAIT: Duration = Duration::from_secs(20);

/// A node without a TUN, and the queue of packets that would go to it.
async fn node(
    dir: &std::path::Path,
    name: &str,
    auto_accept: bool,
) -> Result<(Arc<Node>, TunQueue), String> {
    let mut cfg = Config::default();
    cfg.main.name = name.into();
    cfg.main.auto_accept = auto_accept;
    cfg.main.use_default_bootstrap = false;
    cfg.main.packet_pool = 64;
    let host = Host::start(
        Keypair::generate(),
        HostConfig::new("127.0.0.1:0".parse().map_err(|_| "addr")?),
    )
    .await
    .map_err(|e| format!("start {name}: {e}"))?;
    let data = dir.join(name);
    std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
    match Node::new(host, cfg, data.join("config"), &data, None) {
        (node, Some(queue)) => Ok((node, queue)),
        (_, None) => Err("no TUN queue".into()),
    }
}

async fn until<F: Fn() -> bool>(what: &str, f: F) -> Result<(), String> {
    let end = Instant::now() + WAIT;
    while !f() {
        if Instant::now() > end {
            return Err(format!("timed out: {what}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// An ICMP echo request with a payload whose bytes encode their own position, big-endian.
fn icmp_echo(src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let payload: Vec<u8> = (0u16..200)
        .flat_map(|i| (i.wrapping_mul(0x9e37)).to_be_bytes())
        .collect();
    let total = 20 + 8 + payload.len();
    let mut p = vec![
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        1,
        0x40,
        0,
        64,
        packet::PROTO_ICMP,
        0,
        0,
    ];
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let mut icmp = vec![8, 0, 0, 0, 0x12, 0x34, 0, 1];
    icmp.extend_from_slice(&payload);
    let c = packet::fold(packet::sum16(&icmp, 0));
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(&icmp);
    let h = packet::fold(packet::sum16(&p[..20], 0));
    p[10..12].copy_from_slice(&h.to_be_bytes());
    p
}

pub async fn run() -> Result<String, String> {
    let start = Instant::now();
    // The fast path's cipher on this target (MIPS: our own) against ring's.
    crate::p2p::fastpath::wire::check_cipher()?;
    let dir = std::env::temp_dir().join(format!("awl-selftest-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (a, _a_tun) = node(&dir, "a", false).await?;
    let (b, mut b_tun) = node(&dir, "b", true).await?;
    let b_id = b.host.peer_id();
    let a_id = a.host.peer_id();

    // libp2p: handshake, identify, ping.
    let b_addr = b
        .host
        .listen_addrs()
        .first()
        .cloned()
        .ok_or("B has no address")?;
    a.invite(&b_id, Some("b".into()), None, Some(b_addr))
        .await
        .map_err(|e| e.to_string())?;
    until("QUIC connection", || a.host.is_connected(&b_id)).await?;
    let info = a
        .host
        .identify(&b_id)
        .await
        .map_err(|e| format!("identify: {e}"))?;
    if !info
        .protocols
        .iter()
        .any(|p| p == crate::mesh::tunnel::PROTOCOL)
    {
        return Err("identify lacks the tunnel protocol".into());
    }
    let rtt = a.host.ping(&b_id).await.map_err(|e| format!("ping: {e}"))?;

    // AWL: auth (B auto-accepts) and status (both confirmed).
    let confirmed = |n: &Arc<Node>, p: &crate::p2p::identity::PeerId| {
        n.peers
            .lock()
            .map(|t| t.get(p).is_some_and(|k| k.confirmed))
            .unwrap_or(false)
    };
    until("B accepts A's invite", || confirmed(&b, &a_id)).await?;
    until("A sees B confirmed", || confirmed(&a, &b_id)).await?;
    let b_name = a
        .peers
        .lock()
        .map_err(|_| "lock")?
        .get(&b_id)
        .map(|p| p.name.clone())
        .unwrap_or_default();
    if b_name != "b" {
        return Err(format!("status carried name '{b_name}', expected 'b'"));
    }

    // Tunnel: A sends B an ICMP echo to B's address on A; B receives it rewritten.
    let (b_ip_at_a, a_own) = {
        let t = a.peers.lock().map_err(|_| "lock")?;
        (
            t.get(&b_id).map(|p| p.ip).ok_or("B unknown on A")?,
            t.own_ip(),
        )
    };
    let sent = icmp_echo(a_own, b_ip_at_a);
    let mut buf = a.dp.pool().get().ok_or("pool empty")?;
    buf.space()[..sent.len()].copy_from_slice(&sent);
    buf.set_len(sent.len());
    a.dp.route_outbound(buf);
    let mut got = tokio::time::timeout(WAIT, b_tun.recv())
        .await
        .map_err(|_| "tunnel packet never arrived")?
        .ok_or("tunnel closed")?;
    let (a_ip_at_b, b_own) = {
        let t = b.peers.lock().map_err(|_| "lock")?;
        (
            t.get(&a_id).map(|p| p.ip).ok_or("A unknown on B")?,
            t.own_ip(),
        )
    };
    let data = got.data_mut();
    let ip = packet::Ipv4::new_checked(data).map_err(|e| e.to_string())?;
    if ip.src() != a_ip_at_b || ip.dst() != b_own || !ip.header_checksum_ok() {
        return Err(format!(
            "rewrite wrong: {} -> {} (want {a_ip_at_b} -> {b_own})",
            ip.src(),
            ip.dst()
        ));
    }
    if data[20..] != sent[20..] {
        return Err("payload corrupted in transit".into());
    }

    a.host.shutdown();
    b.host.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(format!(
        "selftest OK: fast-path cipher, QUIC+TLS handshake, identify, ping ({:.1} ms), auth, status, tunnel + rewrite; {:.0} ms",
        rtt.as_secs_f64() * 1e3,
        start.elapsed().as_secs_f64() * 1e3
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn selftest_passes() {
        let msg = super::run().await.unwrap();
        assert!(msg.starts_with("selftest OK"), "{msg}");
    }

    /// Garbage on every protocol a known peer can reach: each bad stream is closed (no hang),
    /// it is counted where there is a counter, and the node keeps serving everything else.
    #[tokio::test]
    async fn malformed_input_closes_only_that_stream() {
        let dir = std::env::temp_dir().join(format!("awl-badinput-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (a, _a_tun) = node(&dir, "a", false).await.unwrap();
        let (b, mut b_tun) = node(&dir, "b", true).await.unwrap();
        let (a_id, b_id) = (a.host.peer_id(), b.host.peer_id());
        let b_addr = b.host.listen_addrs()[0].clone();
        a.invite(&b_id, Some("b".into()), None, Some(b_addr))
            .await
            .unwrap();
        let confirmed = |n: &Arc<Node>, p: &crate::p2p::identity::PeerId| {
            n.peers
                .lock()
                .map(|t| t.get(p).is_some_and(|k| k.confirmed))
                .unwrap_or(false)
        };
        until("confirmed", || confirmed(&b, &a_id) && confirmed(&a, &b_id))
            .await
            .unwrap();
        let b_ip_at_a = a.peers.lock().unwrap().get(&b_id).unwrap().ip;
        let a_own = a.peers.lock().unwrap().own_ip();

        let mut oversized = Vec::new();
        oversized.extend_from_slice(&(1u64 << 20).to_be_bytes());
        oversized.extend_from_slice(&[0u8; 64]);
        let cases: Vec<(&str, Vec<u8>)> = vec![
            (crate::mesh::tunnel::PROTOCOL, oversized),
            (crate::mesh::tunnel::PROTOCOL, vec![0xff; 8]),
            (
                crate::mesh::messages::STATUS_PROTOCOL,
                b"{not json at all\n".to_vec(),
            ),
            (crate::mesh::messages::AUTH_PROTOCOL, vec![b'{'; 200_000]),
            (
                crate::p2p::identify::PUSH_PROTOCOL,
                vec![0x85, 0x01, 0xff, 0xff],
            ),
            (crate::p2p::dcutr::PROTOCOL, vec![0x03, 0x08, 0x07, 0x00]),
            (crate::p2p::ping::PROTOCOL, vec![1, 2, 3]),
        ];
        for (proto, junk) in cases {
            let mut s = a.host.open_stream(&b_id, &[proto]).await.unwrap();
            let _ = s.send.write_all(&junk).await;
            s.send.finish().await;
            let end = tokio::time::timeout(
                Duration::from_secs(10),
                crate::p2p::stream::read_to_end(&mut s.recv, 1 << 16),
            )
            .await;
            assert!(end.is_ok(), "{proto}: the bad stream was left hanging");
            // Everything else still works: ping and a tunnel packet.
            a.host.ping(&b_id).await.unwrap();
            let pkt = icmp_echo(a_own, b_ip_at_a);
            let mut buf = a.dp.pool().get().unwrap();
            buf.space()[..pkt.len()].copy_from_slice(&pkt);
            buf.set_len(pkt.len());
            a.dp.route_outbound(buf);
            tokio::time::timeout(WAIT, b_tun.recv())
                .await
                .unwrap_or_else(|_| panic!("tunnel dead after bad {proto} input"))
                .unwrap();
        }
        let errors = b.dp.stats.peer_snapshot(&a_id).rx_errors;
        assert!(errors >= 2, "malformed tunnel streams counted: {errors}");
        assert!(confirmed(&b, &a_id), "still friends");
        a.host.shutdown();
        b.host.shutdown();
        let _ = std::fs::remove_dir_all(&dir);
    }
}

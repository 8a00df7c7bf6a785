//! Prometheus text exposition (format 0.0.4) of the node's counters and gauges: served by the
//! control API (`awl metrics`) and at `/metrics` on the service address.

use crate::app::node::Node;
use crate::dataplane::stats::PeerStats;
use std::fmt::Write;
use std::sync::atomic::Ordering;

/// A label value with `\`, `"` and newlines escaped.
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Out(String);

impl Out {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP awl_{name} {help}\n# TYPE awl_{name} {kind}");
    }

    fn val(&mut self, name: &str, labels: &str, v: impl std::fmt::Display) {
        if labels.is_empty() {
            let _ = writeln!(self.0, "awl_{name} {v}");
        } else {
            let _ = writeln!(self.0, "awl_{name}{{{labels}}} {v}");
        }
    }

    fn one(&mut self, name: &str, kind: &str, help: &str, v: impl std::fmt::Display) {
        self.head(name, kind, help);
        self.val(name, "", v);
    }
}

pub fn render(node: &Node) -> String {
    let mut o = Out(String::with_capacity(4096));
    o.one(
        "uptime_seconds",
        "gauge",
        "Seconds since the daemon started.",
        node.uptime().as_secs(),
    );
    let (direct, relayed) = node.host.connection_counts();
    o.head("connections", "gauge", "Open libp2p connections by path.");
    o.val("connections", "path=\"direct\"", direct);
    o.val("connections", "path=\"relayed\"", relayed);
    o.one(
        "tcp_connections",
        "gauge",
        "Direct connections over TCP (counted in connections{path=\"direct\"} too).",
        node.host.tcp_connection_count(),
    );
    let c = node.host.counters();
    o.one(
        "handshake_failures_total",
        "counter",
        "Inbound QUIC/TLS and TCP (TLS, yamux) handshakes that failed or timed out: garbage, half-open, too slow.",
        c.handshake_failures.load(Ordering::Relaxed),
    );
    o.one(
        "refused_connections_total",
        "counter",
        "Inbound connections refused: handshakes in progress, or no slot for an unknown peer.",
        c.refused_connections.load(Ordering::Relaxed),
    );
    o.one(
        "evicted_connections_total",
        "counter",
        "Unknown peers' connections closed to make room for a known peer.",
        c.evicted_connections.load(Ordering::Relaxed),
    );
    o.one(
        "refused_circuits_total",
        "counter",
        "Relayed connections refused: not from a relay we hold a reservation with, or no slot.",
        c.refused_circuits.load(Ordering::Relaxed),
    );
    o.one(
        "rate_limited_streams_total",
        "counter",
        "Inbound streams reset by the per-peer rate limit.",
        c.rate_limited_streams.load(Ordering::Relaxed),
    );
    o.one(
        "autonat_refused_total",
        "counter",
        "AutoNAT dial-back requests refused: a stranger, an address on another IP, too often.",
        c.autonat_refused.load(Ordering::Relaxed),
    );
    let (sent, received, refused) = node.host.fast_counters();
    o.head(
        "fast_packets_total",
        "counter",
        "Tunnel packets on the fast path between awl nodes, by direction; refused: forged, replayed or for no session.",
    );
    o.val("fast_packets_total", "dir=\"sent\"", sent);
    o.val("fast_packets_total", "dir=\"received\"", received);
    o.val("fast_packets_total", "dir=\"refused\"", refused);
    o.one(
        "busy_streams_total",
        "counter",
        "Inbound streams reset because their handler queue was full.",
        c.busy_streams.load(Ordering::Relaxed),
    );
    o.one(
        "relay_reservations",
        "gauge",
        "Relay reservations we hold.",
        node.discovery.reservations().len(),
    );
    o.one(
        "bootstrap_connected",
        "gauge",
        "Bootstrap peers connected.",
        node.discovery.connected_bootstrap().len(),
    );
    let pool = node.dp.pool();
    o.one(
        "pool_buffers",
        "gauge",
        "Packet buffers in the pool.",
        pool.capacity(),
    );
    o.one(
        "pool_buffers_created",
        "gauge",
        "Packet buffers allocated so far (created on demand, kept).",
        pool.created(),
    );
    o.one(
        "pool_buffers_free",
        "gauge",
        "Packet buffers free.",
        pool.available(),
    );
    o.one(
        "pool_exhausted_total",
        "counter",
        "Times a packet found the pool empty.",
        pool.exhausted(),
    );
    let g = node.dp.stats.global_snapshot();
    o.one(
        "tx_unroutable_total",
        "counter",
        "Packets from the TUN with no peer to go to.",
        g.tx_unroutable,
    );
    o.one(
        "tx_too_big_total",
        "counter",
        "Packets too big for AWL peers.",
        g.tx_too_big,
    );
    o.one(
        "rx_unknown_peer_streams_total",
        "counter",
        "Tunnel streams from unknown peers, closed unread.",
        g.rx_unknown_peer_streams,
    );
    o.one(
        "rx_unknown_peer_packets_total",
        "counter",
        "Tunnel datagrams from unknown peers, dropped.",
        g.rx_unknown_peer_packets,
    );
    o.one(
        "tun_super_packets_total",
        "counter",
        "TCP super-packets read from the TUN (TSO offload) and cut into segments.",
        g.tun_super_packets,
    );

    struct Row {
        labels: String,
        connected: bool,
        relayed: bool,
        rtt: Option<f64>,
        s: PeerStats,
    }
    let rows: Vec<Row> = {
        let t = node.peers.lock().unwrap_or_else(|e| e.into_inner());
        t.iter()
            .map(|p| Row {
                labels: format!("peer=\"{}\",alias=\"{}\"", p.peer_id, esc(&p.alias)),
                connected: node.host.is_connected(&p.peer_id),
                relayed: node.host.is_relayed(&p.peer_id),
                rtt: node.rtt(&p.peer_id).map(|d| d.as_secs_f64()),
                s: node.dp.stats.peer_snapshot(&p.peer_id),
            })
            .collect()
    };
    o.one("peers_known", "gauge", "Known peers.", rows.len());
    o.head("peer_connected", "gauge", "1 when connected to the peer.");
    for r in &rows {
        o.val("peer_connected", &r.labels, u8::from(r.connected));
    }
    o.head(
        "peer_relayed",
        "gauge",
        "1 when the path to the peer goes through a relay.",
    );
    for r in rows.iter().filter(|r| r.connected) {
        o.val("peer_relayed", &r.labels, u8::from(r.relayed));
    }
    o.head(
        "peer_rtt_seconds",
        "gauge",
        "Last measured round-trip time to the peer.",
    );
    for r in &rows {
        if let Some(rtt) = r.rtt {
            o.val("peer_rtt_seconds", &r.labels, format!("{rtt:.6}"));
        }
    }
    type Field = (&'static str, &'static str, fn(&PeerStats) -> u64);
    let fields: [Field; 10] = [
        ("peer_tx_packets_total", "Packets sent to the peer.", |s| {
            s.tx_packets
        }),
        ("peer_tx_bytes_total", "Bytes sent to the peer.", |s| {
            s.tx_bytes
        }),
        (
            "peer_tx_dropped_total",
            "Packets for the peer dropped (queue full, no stream).",
            |s| s.tx_dropped,
        ),
        (
            "peer_rx_packets_total",
            "Packets received from the peer.",
            |s| s.rx_packets,
        ),
        (
            "peer_rx_bytes_total",
            "Bytes received from the peer.",
            |s| s.rx_bytes,
        ),
        (
            "peer_rx_dropped_total",
            "Packets from the peer dropped.",
            |s| s.rx_dropped,
        ),
        (
            "peer_rx_errors_total",
            "Malformed tunnel streams from the peer.",
            |s| s.rx_errors,
        ),
        (
            "peer_tx_datagrams_total",
            "Packets sent to the peer in QUIC datagrams (awl peers) instead of a stream.",
            |s| s.tx_datagrams,
        ),
        (
            "peer_rx_datagrams_total",
            "Packets received from the peer in QUIC datagrams.",
            |s| s.rx_datagrams,
        ),
        (
            "peer_tx_delay_dropped_total",
            "Bulk packets for the peer dropped by CoDel (queue delay stayed above 5 ms).",
            |s| s.tx_delay_dropped,
        ),
    ];
    for (name, help, get) in fields {
        o.head(name, "counter", help);
        for r in &rows {
            o.val(name, &r.labels, get(&r.s));
        }
    }
    o.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(esc("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}

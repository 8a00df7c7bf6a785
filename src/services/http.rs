//! The HTTP status endpoint: `GET /` (or `/status`) returns the node and its peers as JSON.
//! HTTP/1.0-style: one request per connection, then close. Pure request parsing and
//! response building.

pub const MAX_REQUEST: usize = 2048;

/// Keys of the control API's status that LAN hosts do not get over HTTP: underlay addresses
/// (ours: listen, observed, relay circuits and the relays we use; a peer's: its public
/// IP:port). A LAN host sees peer IDs, names, aliases, mesh IPs, online state, path kind,
/// round-trip time and traffic counters; where a friend lives on the internet stays with root.
pub const NODE_PRIVATE: &[&str] = &["listen_addrs", "observed_addrs", "circuit_addrs", "relays"];
pub const PEER_PRIVATE: &[&str] = &["remote_addr"];

/// The status as served to LAN hosts: `node` and `peers` with the underlay addresses removed.
pub fn lan_view(mut node: serde_json::Value, mut peers: serde_json::Value) -> String {
    if let Some(o) = node.as_object_mut() {
        for k in NODE_PRIVATE {
            o.remove(*k);
        }
    }
    for p in peers.as_array_mut().into_iter().flatten() {
        if let Some(o) = p.as_object_mut() {
            for k in PEER_PRIVATE {
                o.remove(*k);
            }
        }
    }
    serde_json::json!({ "node": node, "peers": peers }).to_string()
}

#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    Incomplete,
    Request { path: String },
}

/// Parses the request line once the headers are complete.
pub fn parse_request(buf: &[u8]) -> Parsed {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Parsed::Incomplete;
    };
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut words = head.lines().next().unwrap_or("").split_whitespace();
    match (words.next(), words.next()) {
        (Some("GET") | Some("HEAD"), Some(path)) => Parsed::Request {
            path: path.to_string(),
        },
        _ => Parsed::Request {
            path: String::new(),
        },
    }
}

pub fn response(code: u16, ctype: &str, body: &[u8]) -> Vec<u8> {
    let reason = match code {
        200 => "OK",
        404 => "Not Found",
        _ => "Bad Request",
    };
    let mut out = format!(
        "HTTP/1.0 {code} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// The response for `path`; `status` renders the JSON document, `metrics` the Prometheus text.
pub fn route(
    path: &str,
    status: impl FnOnce() -> String,
    metrics: impl FnOnce() -> String,
) -> Vec<u8> {
    match path.split('?').next().unwrap_or("") {
        "/metrics" => response(200, "text/plain; version=0.0.4", metrics().as_bytes()),
        "/" | "/status" | "/status.json" => {
            let mut body = status().into_bytes();
            body.push(b'\n');
            response(200, "application/json", &body)
        }
        "" => response(400, "text/plain", b"bad request\n"),
        _ => response(404, "text/plain", b"not found; try /status\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_routes() {
        assert_eq!(
            parse_request(b"GET / HTTP/1.1\r\nHost: x\r\n"),
            Parsed::Incomplete
        );
        assert_eq!(
            parse_request(b"GET /status?x=1 HTTP/1.1\r\nHost: x\r\n\r\n"),
            Parsed::Request {
                path: "/status?x=1".into()
            }
        );
        let ok = route("/status?x=1", || "{\"a\":1}".into(), || unreachable!());
        let text = String::from_utf8(ok).unwrap();
        assert!(text.starts_with("HTTP/1.0 200 OK\r\n"));
        assert!(text.contains("Content-Length: 8\r\n"));
        assert!(text.ends_with("{\"a\":1}\n"));
        assert!(
            String::from_utf8(route("/nope", || unreachable!(), || unreachable!()))
                .unwrap()
                .starts_with("HTTP/1.0 404")
        );
        let Parsed::Request { path } = parse_request(b"POST / HTTP/1.1\r\n\r\n") else {
            panic!()
        };
        assert!(
            String::from_utf8(route(&path, || unreachable!(), || unreachable!()))
                .unwrap()
                .starts_with("HTTP/1.0 400")
        );
    }

    #[test]
    fn lan_hosts_do_not_see_underlay_addresses() {
        let node = serde_json::json!({"peer_id": "12D3KooWa", "mesh_ip": "10.66.0.1",
            "listen_addrs": ["/ip4/198.51.100.7/udp/4363/quic-v1"],
            "observed_addrs": ["/ip4/198.51.100.7/udp/4363/quic-v1"],
            "circuit_addrs": ["/ip4/203.0.113.1/udp/6150/quic-v1/p2p/x/p2p-circuit"],
            "relays": [{"peer_id": "x"}]});
        let peers = serde_json::json!([{"peer_id": "12D3KooWb", "alias": "office",
            "ip": "10.66.0.2", "connected": true, "path": "direct",
            "remote_addr": "/ip4/192.0.2.77/udp/4363/quic-v1"}]);
        let v = lan_view(node, peers);
        for hidden in [
            "198.51.100.7",
            "203.0.113.1",
            "192.0.2.77",
            "relays",
            "remote_addr",
        ] {
            assert!(!v.contains(hidden), "{hidden} in {v}");
        }
        for shown in [
            "12D3KooWb",
            "office",
            "10.66.0.2",
            "\"connected\":true",
            "direct",
        ] {
            assert!(v.contains(shown), "{shown} missing from {v}");
        }
    }
}

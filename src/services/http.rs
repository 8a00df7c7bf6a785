//! The HTTP status endpoint: `GET /` (or `/status`) returns the node and its peers as JSON.
//! HTTP/1.0-style: one request per connection, then close. Pure request parsing and
//! response building.

pub const MAX_REQUEST: usize = 2048;

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
}

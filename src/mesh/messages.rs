//! AWL's auth and status messages: one newline-terminated JSON object each way, Go field names.
//!
//! Go's `encoding/json` matches keys case-insensitively and ignores unknown ones, and the other
//! side waits for our reply without half-closing, so objects are parsed as soon as they are
//! complete, keys are folded to lower case, and extra fields (v0.19 invite tokens, awl's own
//! extensions) are ignored.

use serde_json::{Map, Value};
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt};

pub const AUTH_PROTOCOL: &str = "/awl/0.3.0/auth/";
pub const STATUS_PROTOCOL: &str = "/awl/0.3.0/status/";
/// Far above any real message; a peer sending more is cut off.
pub const MAX_MESSAGE: usize = 16 * 1024;

/// `PeerStatusInfo`, sent both ways on the status protocol.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusInfo {
    pub name: String,
    pub declined: bool,
    pub allow_using_as_exit_node: bool,
    pub vpn_gateway_server_enabled: bool,
    /// awl extension `AwlRoutes`: LAN prefixes the sender exports to this recipient. AWL
    /// ignores unknown keys, so it is only sent when non-empty.
    pub routes: Vec<crate::base::prefix::Prefix>,
}

/// Auth request (inviter → invitee).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthRequest {
    pub name: String,
}

/// Auth response (invitee → inviter).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthResponse {
    pub confirmed: bool,
    pub declined: bool,
}

/// A JSON object with lower-cased keys.
#[derive(Debug)]
pub struct Fields(Map<String, Value>);

impl Fields {
    pub fn from_value(v: Value) -> io::Result<Self> {
        match v {
            Value::Object(m) => Ok(Fields(
                m.into_iter()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v))
                    .collect(),
            )),
            _ => Err(invalid("expected a JSON object")),
        }
    }

    /// Go decodes a missing field as the zero value; a wrong type is an error.
    pub fn bool(&self, key: &str) -> io::Result<bool> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(invalid(key)),
        }
    }

    pub fn string(&self, key: &str) -> io::Result<String> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(invalid(key)),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("bad AWL message: {what}"),
    )
}

impl StatusInfo {
    pub fn to_json(&self) -> Value {
        let mut v = serde_json::json!({
            "Name": self.name,
            "Declined": self.declined,
            "AllowUsingAsExitNode": self.allow_using_as_exit_node,
            "VPNGatewayServerEnabled": self.vpn_gateway_server_enabled,
        });
        if !self.routes.is_empty() {
            v["AwlRoutes"] = self.routes.iter().map(|r| r.to_string()).collect();
        }
        v
    }

    pub fn from_fields(f: &Fields) -> io::Result<Self> {
        // Routes we can't parse are skipped: the rest of the status still counts.
        let routes = match f.get("awlroutes") {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|r| r.as_str()?.parse().ok())
                .take(64)
                .collect(),
            _ => Vec::new(),
        };
        Ok(StatusInfo {
            name: peer_text(&f.string("name")?),
            declined: f.bool("declined")?,
            allow_using_as_exit_node: f.bool("allowusingasexitnode")?,
            vpn_gateway_server_enabled: f.bool("vpngatewayserverenabled")?,
            routes,
        })
    }
}

/// Longest name we keep from a peer (the `alias` option's limit, so an accepted request's
/// name is always a valid alias).
pub const MAX_NAME_CHARS: usize = 64;

/// A name a peer gave itself, made safe to store and show: control characters (newlines,
/// escapes) and bidirectional overrides (which can make a name read as another) removed,
/// surrounding space trimmed, at most `MAX_NAME_CHARS` characters. HTML escaping is the
/// viewer's job; this only keeps the text one printable line of bounded length.
pub fn peer_text(raw: &str) -> String {
    let bidi = |c: char| matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    raw.chars()
        .filter(|c| !c.is_control() && !bidi(*c))
        .collect::<String>()
        .trim()
        .chars()
        .take(MAX_NAME_CHARS)
        .collect::<String>()
        .trim_end()
        .to_string()
}

impl AuthRequest {
    pub fn to_json(&self) -> Value {
        serde_json::json!({ "Name": self.name })
    }

    pub fn from_fields(f: &Fields) -> io::Result<Self> {
        Ok(AuthRequest {
            name: peer_text(&f.string("name")?),
        })
    }
}

impl AuthResponse {
    pub fn to_json(&self) -> Value {
        serde_json::json!({ "Confirmed": self.confirmed, "Declined": self.declined })
    }

    pub fn from_fields(f: &Fields) -> io::Result<Self> {
        Ok(AuthResponse {
            confirmed: f.bool("confirmed")?,
            declined: f.bool("declined")?,
        })
    }
}

/// Go's `Encoder.Encode`: compact JSON and a newline.
pub fn encode_line(v: &Value) -> Vec<u8> {
    let mut out = serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec());
    out.push(b'\n');
    out
}

/// Reads exactly one JSON object, returning as soon as it is complete (no EOF needed).
pub async fn read_object<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Fields> {
    let mut buf = Vec::with_capacity(128);
    let mut chunk = [0u8; 512];
    loop {
        let n = r.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "stream ended before a complete JSON object",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > MAX_MESSAGE {
            return Err(invalid("message too large"));
        }
        if let Some(v) = complete_object(&buf)? {
            return Fields::from_value(v);
        }
    }
}

/// `Some` when `buf` starts with a complete JSON value; `None` when more bytes are needed.
pub fn complete_object(buf: &[u8]) -> io::Result<Option<Value>> {
    let mut it = serde_json::Deserializer::from_slice(buf).into_iter::<Value>();
    match it.next() {
        None => Ok(None),
        Some(Ok(v)) => Ok(Some(v)),
        Some(Err(e)) if e.is_eof() => Ok(None),
        Some(Err(e)) => Err(invalid(&e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_encodes_like_go() {
        let s = StatusInfo {
            name: "router".into(),
            ..Default::default()
        };
        assert_eq!(
            String::from_utf8(encode_line(&s.to_json())).unwrap(),
            "{\"AllowUsingAsExitNode\":false,\"Declined\":false,\"Name\":\"router\",\"VPNGatewayServerEnabled\":false}\n"
        );
    }

    #[test]
    fn reference_examples_decode() {
        // The examples of awl-protocol.md §3.2 and §3.3.
        let f = Fields::from_value(serde_json::from_str(r#"{"Name":"router","Declined":false,"AllowUsingAsExitNode":false,"VPNGatewayServerEnabled":false}"#).unwrap()).unwrap();
        assert_eq!(
            StatusInfo::from_fields(&f).unwrap(),
            StatusInfo {
                name: "router".into(),
                ..Default::default()
            }
        );
        let f = Fields::from_value(serde_json::from_str(r#"{"Declined":true}"#).unwrap()).unwrap();
        assert!(StatusInfo::from_fields(&f).unwrap().declined);
        let f = Fields::from_value(
            serde_json::from_str(r#"{"Confirmed":true,"Declined":false}"#).unwrap(),
        )
        .unwrap();
        assert_eq!(
            AuthResponse::from_fields(&f).unwrap(),
            AuthResponse {
                confirmed: true,
                declined: false
            }
        );
    }

    #[test]
    fn routes_extension_round_trips_and_is_absent_when_empty() {
        let s = StatusInfo {
            name: "r".into(),
            routes: vec!["192.168.1.0/24".parse().unwrap()],
            ..Default::default()
        };
        let v = s.to_json();
        assert_eq!(v["AwlRoutes"][0], "192.168.1.0/24");
        assert_eq!(
            StatusInfo::from_fields(&Fields::from_value(v).unwrap()).unwrap(),
            s
        );
        assert!(StatusInfo::default().to_json().get("AwlRoutes").is_none());
        let f = Fields::from_value(
            serde_json::from_str(r#"{"AwlRoutes":["bad","10.1.0.0/16",5]}"#).unwrap(),
        )
        .unwrap();
        assert_eq!(StatusInfo::from_fields(&f).unwrap().routes.len(), 1);
    }

    #[test]
    fn keys_are_case_insensitive_and_unknown_keys_ignored() {
        let f = Fields::from_value(serde_json::from_str(r#"{"nAmE":"x","allowusingasexitnode":true,"InviteToken":"abc","Routes":["10.0.0.0/8"]}"#).unwrap()).unwrap();
        let s = StatusInfo::from_fields(&f).unwrap();
        assert_eq!(s.name, "x");
        assert!(s.allow_using_as_exit_node);
        let f = Fields::from_value(serde_json::from_str(r#"{"Name":5}"#).unwrap()).unwrap();
        assert!(StatusInfo::from_fields(&f).is_err());
        assert!(Fields::from_value(serde_json::from_str("[1]").unwrap()).is_err());
    }

    #[tokio::test]
    async fn object_is_read_without_waiting_for_eof() {
        let (mut a, mut b) = tokio::io::duplex(64);
        let reader =
            crate::spawn(
                async move { read_object(&mut b).await.map(|f| f.string("name").unwrap()) },
            );
        use tokio::io::AsyncWriteExt;
        a.write_all(b"{\"Na").await.unwrap();
        tokio::task::yield_now().await;
        a.write_all(b"me\":\"slow\"}\n").await.unwrap();
        // `a` stays open: the reader must return anyway.
        assert_eq!(reader.await.unwrap().unwrap(), "slow");
        drop(a);
    }

    #[tokio::test]
    async fn garbage_and_oversized_input_fail() {
        let mut r: &[u8] = b"not json\n";
        assert!(read_object(&mut r).await.is_err());
        let big = vec![b' '; MAX_MESSAGE + 10];
        let mut r: &[u8] = &big;
        assert!(read_object(&mut r).await.is_err());
        let mut r: &[u8] = b"{\"Name\":";
        assert_eq!(
            read_object(&mut r).await.unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }

    fn parse_fields(json: &str) -> Fields {
        Fields::from_value(serde_json::from_str(json).unwrap()).unwrap()
    }

    #[test]
    fn names_from_peers_are_one_bounded_printable_line() {
        let long = "x".repeat(500);
        let f = parse_fields(&format!("{{\"Name\":\"{long}\"}}"));
        assert_eq!(
            AuthRequest::from_fields(&f).unwrap().name.chars().count(),
            MAX_NAME_CHARS
        );
        let f = parse_fields("{\"Name\":\" evil\\n\\u001b[31mname\\u202e\\t \"}");
        assert_eq!(AuthRequest::from_fields(&f).unwrap().name, "evil[31mname");
        let f = parse_fields("{\"Name\":\"<img src=x onerror=alert(1)>\"}");
        let s = StatusInfo::from_fields(&f).unwrap();
        // Kept as text (the viewer escapes it), but bounded and on one line.
        assert_eq!(s.name, "<img src=x onerror=alert(1)>");
        assert_eq!(peer_text("ünïcode ok"), "ünïcode ok");
    }
}

//! The local control API: a Unix socket (mode 0600, so root only) speaking one JSON request
//! and one JSON reply per line. The CLI and LuCI's rpcd backend are its clients.
//!
//! Request: `{"cmd":"invite","peer_id":"12D3…","alias":"x"}`.
//! Reply: `{"ok":true,"result":…}` or `{"ok":false,"error":"…"}`.

use crate::identity::PeerId;
use crate::node::Node;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

/// Requests larger than this are refused.
const MAX_REQUEST: usize = 64 * 1024;
/// Concurrent control clients.
const MAX_CLIENTS: usize = 16;

/// Binds the socket (replacing a stale one) and serves it until the process ends.
pub fn serve(node: Arc<Node>, path: &Path) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    if path.exists() {
        // A live daemon would answer; a stale socket from a killed one is removed.
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(format!(
                "{} is in use: is another awl running?",
                path.display()
            ));
        }
        let _ = std::fs::remove_file(path);
    }
    let listener = UnixListener::bind(path).map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| e.to_string())?;
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CLIENTS));
    tokio::spawn(async move {
        loop {
            let Ok((conn, _)) = listener.accept().await else {
                continue;
            };
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                continue;
            };
            let node = node.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let _ = tokio::time::timeout(Duration::from_secs(60), handle(node, conn)).await;
            });
        }
    });
    Ok(())
}

async fn handle(node: Arc<Node>, conn: UnixStream) -> std::io::Result<()> {
    let (r, mut w) = conn.into_split();
    let mut lines = BufReader::new(r.take(MAX_REQUEST as u64)).lines();
    while let Some(line) = lines.next_line().await? {
        let reply = match serde_json::from_str::<Value>(&line) {
            Ok(req) => match dispatch(&node, &req).await {
                Ok(result) => json!({"ok": true, "result": result}),
                Err(e) => json!({"ok": false, "error": e}),
            },
            Err(e) => json!({"ok": false, "error": format!("bad request: {e}")}),
        };
        let mut out = serde_json::to_vec(&reply).unwrap_or_default();
        out.push(b'\n');
        w.write_all(&out).await?;
    }
    Ok(())
}

fn arg<'a>(req: &'a Value, key: &str) -> Option<&'a str> {
    req.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn peer_arg(req: &Value) -> Result<PeerId, String> {
    arg(req, "peer_id")
        .ok_or("missing peer_id")?
        .parse::<PeerId>()
        .map_err(|e| e.to_string())
}

fn ip_arg(req: &Value) -> Result<Option<std::net::Ipv4Addr>, String> {
    arg(req, "ip")
        .map(|s| s.parse().map_err(|_| format!("bad IPv4 address '{s}'")))
        .transpose()
}

pub async fn dispatch(node: &Arc<Node>, req: &Value) -> Result<Value, String> {
    let cmd = arg(req, "cmd").ok_or("missing cmd")?;
    match cmd {
        "status" => Ok(node.status_json()),
        "peers" => Ok(node.peers_json()),
        "requests" => Ok(node.requests_json()),
        "blocked" => Ok(node.blocked_json()),
        "invite" => {
            let peer = peer_arg(req)?;
            let address = arg(req, "address")
                .map(|a| {
                    a.parse::<crate::multiaddr::Multiaddr>()
                        .map_err(|e| e.to_string())
                })
                .transpose()?;
            let p = node
                .invite(
                    &peer,
                    arg(req, "alias").map(String::from),
                    ip_arg(req)?,
                    address,
                )
                .await?;
            Ok(json!({"peer_id": p.peer_id.to_string(), "alias": p.alias, "ip": p.ip.to_string()}))
        }
        "accept" => {
            let peer = peer_arg(req)?;
            let p = node
                .accept(&peer, arg(req, "alias").map(String::from), ip_arg(req)?)
                .await?;
            Ok(json!({"peer_id": p.peer_id.to_string(), "alias": p.alias, "ip": p.ip.to_string()}))
        }
        "decline" => node.decline(&peer_arg(req)?).await.map(|_| json!({})),
        "remove" => node.remove(&peer_arg(req)?).map(|_| json!({})),
        "reload" => node.reload().map(|n| json!({"peers": n})),
        "health" => Ok(node.health_json()),
        "metrics" => Ok(Value::String(crate::metrics::render(node))),
        "logs" => {
            let n = req
                .get("lines")
                .and_then(Value::as_u64)
                .unwrap_or(100)
                .min(crate::logring::LINES as u64) as usize;
            Ok(json!(crate::logring::recent(n)))
        }
        other => Err(format!(
            "unknown command '{other}' (known: {})",
            crate::methods::names().join(", ")
        )),
    }
}

/// Client side: one raw request line, one raw reply line.
pub async fn call_raw(path: &Path, request: &str) -> Result<String, String> {
    let conn = UnixStream::connect(path).await.map_err(|e| {
        format!(
            "cannot reach the daemon at {}: {e} (is 'awl run' running?)",
            path.display()
        )
    })?;
    let (r, mut w) = conn.into_split();
    let mut line = request.trim().as_bytes().to_vec();
    line.push(b'\n');
    w.write_all(&line).await.map_err(|e| e.to_string())?;
    let mut lines = BufReader::new(r).lines();
    tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .map_err(|_| "daemon did not answer".to_string())?
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "daemon closed the connection".to_string())
}

/// Client side: one request, one reply.
pub async fn call(path: &Path, req: &Value) -> Result<Value, String> {
    let reply = call_raw(path, &req.to_string()).await?;
    let v: Value = serde_json::from_str(&reply).map_err(|e| e.to_string())?;
    if v.get("ok").and_then(Value::as_bool) == Some(true) {
        Ok(v.get("result").cloned().unwrap_or(Value::Null))
    } else {
        Err(v
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("unknown error")
            .to_string())
    }
}

/// Default socket path when the config gives none usable: next to the data for non-root runs.
pub fn socket_path(configured: &Path, data_dir: &Path) -> PathBuf {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        configured.to_path_buf()
    } else {
        data_dir.join("awl.sock")
    }
}

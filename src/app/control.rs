//! The local control API: a Unix socket (mode 0600 from the moment it exists; only root and the
//! daemon's own uid are served) speaking one JSON request and one JSON reply per line. The CLI
//! and LuCI's rpcd backend are its clients.
//!
//! Request: `{"cmd":"invite","peer_id":"12D3…","alias":"x"}`.
//! Reply: `{"ok":true,"result":…}` or `{"ok":false,"error":"…"}`.

use crate::app::node::Node;
pub use crate::app::request::{dispatch, execute, Error, Request, Response};
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

/// Why the control socket could not be had.
#[derive(Debug)]
pub enum SocketError {
    /// Its directory could not be made.
    Dir(PathBuf, std::io::Error),
    InUse(PathBuf),
    NotASocket(PathBuf),
    NoFileName(PathBuf),
    Bind(PathBuf, std::io::Error),
    Listen(std::io::Error),
}

impl std::fmt::Display for SocketError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SocketError::Dir(p, e) | SocketError::Bind(p, e) => write!(f, "{}: {e}", p.display()),
            SocketError::InUse(p) => {
                write!(f, "{} is in use: is another awl running?", p.display())
            }
            SocketError::NotASocket(p) => write!(
                f,
                "control_socket {} exists and is not a socket; refusing to replace it",
                p.display()
            ),
            SocketError::NoFileName(p) => write!(f, "control_socket {}: no file name", p.display()),
            SocketError::Listen(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SocketError {}

/// Binds the control socket without a moment where anyone but us can reach it: the socket is
/// made inside a fresh 0700 directory next to `path`, set to 0600 there and renamed into
/// place. An existing socket is replaced only when nothing answers on it (a stale one from a
/// killed daemon); anything at `path` that is not a socket is left alone and refused.
pub fn bind_private(path: &Path) -> Result<std::os::unix::net::UnixListener, SocketError> {
    use std::os::unix::fs::{DirBuilderExt, FileTypeExt};
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(|e| SocketError::Dir(dir.to_path_buf(), e))?;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            // A live daemon would answer; a stale socket from a killed one is replaced.
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(SocketError::InUse(path.to_path_buf()));
            }
        }
        Ok(_) => return Err(SocketError::NotASocket(path.to_path_buf())),
        Err(_) => {}
    }
    let name = path
        .file_name()
        .ok_or_else(|| SocketError::NoFileName(path.to_path_buf()))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&tmp)
        .map_err(|e| SocketError::Dir(tmp.clone(), e))?;
    let inner = tmp.join("s");
    let bound = std::os::unix::net::UnixListener::bind(&inner)
        .and_then(|l| {
            std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o600))
                .and_then(|()| std::fs::rename(&inner, path))?;
            Ok(l)
        })
        .map_err(|e| SocketError::Bind(path.to_path_buf(), e));
    let _ = std::fs::remove_file(&inner);
    let _ = std::fs::remove_dir(&tmp);
    bound
}

/// Which file a socket path names (device, inode): tells our socket from a successor's.
pub fn socket_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let m = std::fs::symlink_metadata(path).ok()?;
    m.file_type().is_socket().then(|| (m.dev(), m.ino()))
}

/// Removes the control socket at exit if it is still ours (`ours` from `serve`): a daemon
/// started at the same path while we were shutting down has put its own there.
pub fn remove_socket(path: &Path, ours: Option<(u64, u64)>) {
    if ours.is_some() && socket_id(path) == ours {
        let _ = std::fs::remove_file(path);
    }
}

/// Who may use the control API: root and the user the daemon runs as (the mode 0600 is the
/// first fence, this the second).
pub fn peer_allowed(uid: u32, own_uid: u32) -> bool {
    uid == 0 || uid == own_uid
}

/// Binds the socket (replacing a stale one) and serves it until the process ends; returns
/// its `socket_id` for `remove_socket`.
pub fn serve(node: Arc<Node>, path: &Path) -> Result<Option<(u64, u64)>, SocketError> {
    let std_listener = bind_private(path)?;
    let id = socket_id(path);
    std_listener
        .set_nonblocking(true)
        .map_err(SocketError::Listen)?;
    let listener = UnixListener::from_std(std_listener).map_err(SocketError::Listen)?;
    let own_uid = crate::sys::user::euid();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CLIENTS));
    let owner = node.clone();
    owner.tasks.spawn(async move {
        loop {
            let Ok((conn, _)) = listener.accept().await else {
                continue;
            };
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                continue;
            };
            let uid = conn.peer_cred().map(|c| c.uid()).ok();
            if !uid.is_some_and(|u| peer_allowed(u, own_uid)) {
                log::warn!("control socket: refused a client with uid {uid:?}");
                node.tasks.spawn(async move {
                    let _permit = permit;
                    let _ = tokio::time::timeout(Duration::from_secs(2), refuse(conn)).await;
                });
                continue;
            }
            let n = node.clone();
            node.tasks.spawn(async move {
                let _permit = permit;
                let _ = tokio::time::timeout(Duration::from_secs(60), handle(n, conn)).await;
            });
        }
    });
    Ok(id)
}

/// A client we do not serve: its request line is read (so it sees the answer rather than a
/// broken pipe) and answered with an error.
async fn refuse(conn: UnixStream) -> std::io::Result<()> {
    let (r, mut w) = conn.into_split();
    let mut line = String::new();
    let _ = BufReader::new(r.take(MAX_REQUEST as u64))
        .read_line(&mut line)
        .await;
    w.write_all(b"{\"ok\":false,\"error\":\"permission denied\"}\n")
        .await
}

async fn handle(node: Arc<Node>, conn: UnixStream) -> std::io::Result<()> {
    let (r, mut w) = conn.into_split();
    let mut lines = BufReader::new(r.take(MAX_REQUEST as u64)).lines();
    while let Some(line) = lines.next_line().await? {
        let reply = match serde_json::from_str::<Value>(&line) {
            Ok(req) => match dispatch(&node, &req).await {
                Ok(result) => json!({"ok": true, "result": result}),
                Err(e) => json!({"ok": false, "error": e.to_string()}),
            },
            Err(e) => json!({"ok": false, "error": format!("bad request: {e}")}),
        };
        let mut out = serde_json::to_vec(&reply).unwrap_or_default();
        out.push(b'\n');
        w.write_all(&out).await?;
    }
    Ok(())
}

/// Why a client's call failed.
#[derive(Debug)]
pub enum CallError {
    Unreachable(PathBuf, std::io::Error),
    Io(std::io::Error),
    NoAnswer,
    Closed,
    BadReply(serde_json::Error),
    /// The daemon's answer was an error: its text.
    Refused(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Unreachable(p, e) => write!(
                f,
                "cannot reach the daemon at {}: {e} (is 'awl run' running?)",
                p.display()
            ),
            CallError::Io(e) => e.fmt(f),
            CallError::NoAnswer => f.write_str("daemon did not answer"),
            CallError::Closed => f.write_str("daemon closed the connection"),
            CallError::BadReply(e) => e.fmt(f),
            CallError::Refused(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for CallError {}

/// Client side: one raw request line, one raw reply line.
pub async fn call_raw(path: &Path, request: &str) -> Result<String, CallError> {
    let conn = UnixStream::connect(path)
        .await
        .map_err(|e| CallError::Unreachable(path.to_path_buf(), e))?;
    let (r, mut w) = conn.into_split();
    let mut line = request.trim().as_bytes().to_vec();
    line.push(b'\n');
    w.write_all(&line).await.map_err(CallError::Io)?;
    let mut lines = BufReader::new(r).lines();
    tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .map_err(|_| CallError::NoAnswer)?
        .map_err(CallError::Io)?
        .ok_or(CallError::Closed)
}

/// Client side: one request, one reply.
pub async fn call(path: &Path, req: &Value) -> Result<Value, CallError> {
    let reply = call_raw(path, &req.to_string()).await?;
    let v: Value = serde_json::from_str(&reply).map_err(CallError::BadReply)?;
    if v.get("ok").and_then(Value::as_bool) == Some(true) {
        Ok(v.get("result").cloned().unwrap_or(Value::Null))
    } else {
        Err(CallError::Refused(
            v.get("error")
                .and_then(Value::as_str)
                .unwrap_or("unknown error")
                .to_string(),
        ))
    }
}

/// Default socket path when the config gives none usable: next to the data for non-root runs.
pub fn socket_path(configured: &Path, data_dir: &Path) -> PathBuf {
    if crate::sys::user::is_root() {
        configured.to_path_buf()
    } else {
        data_dir.join("awl.sock")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("awl-ctl-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_regular_file_at_the_socket_path_is_refused_and_kept() {
        let d = tmpdir("file");
        let p = d.join("awl.sock");
        std::fs::write(&p, "precious").unwrap();
        let e = bind_private(&p).unwrap_err().to_string();
        assert!(e.contains("not a socket"), "{e}");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "precious");
        remove_socket(&p, socket_id(&p));
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "precious");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_stale_socket_is_replaced_and_a_live_one_refused() {
        let d = tmpdir("stale");
        let p = d.join("awl.sock");
        drop(std::os::unix::net::UnixListener::bind(&p).unwrap());
        let live = bind_private(&p).expect("stale socket replaced");
        assert!(bind_private(&p).unwrap_err().to_string().contains("in use"));
        drop(live);
        remove_socket(&p, socket_id(&p));
        assert!(!p.exists());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_successors_socket_is_left_in_place() {
        // A daemon still shutting down after its directory was wiped and a new daemon bound
        // the same path must not remove the new one's socket (the CLI could not reach it).
        let d = tmpdir("successor");
        let p = d.join("awl.sock");
        let old = bind_private(&p).unwrap();
        let old_id = socket_id(&p);
        assert!(old_id.is_some());
        std::fs::remove_file(&p).unwrap();
        let new = bind_private(&p).unwrap();
        remove_socket(&p, old_id);
        assert!(p.exists(), "the successor's socket was removed");
        assert!(std::os::unix::net::UnixStream::connect(&p).is_ok());
        drop((old, new));
        let _ = std::fs::remove_dir_all(&d);
    }

    /// The socket appears at its path only by rename, already 0600: there is no moment in which
    /// another local user could connect (today's main bound it in place, then chmod'ed it).
    #[test]
    fn the_socket_is_never_reachable_with_wider_permissions() {
        let d = tmpdir("race");
        let p = d.join("awl.sock");
        let watch =
            crate::sys::inotify::Watch::new(&d, libc::IN_CREATE | libc::IN_MOVED_TO).unwrap();
        let l = bind_private(&p).unwrap();
        let events = watch.events();
        drop(watch);
        drop(l);
        let at_path: Vec<_> = events.iter().filter(|(_, n)| n == "awl.sock").collect();
        assert!(!at_path.is_empty(), "{events:?}");
        assert!(
            at_path.iter().all(|(m, _)| m & libc::IN_CREATE == 0),
            "the socket was created in place: {events:?}"
        );
        let m = std::fs::symlink_metadata(&p).unwrap();
        assert!(m.file_type().is_socket());
        assert_eq!(m.permissions().mode() & 0o777, 0o600);
        // Only the socket is left: the private directory is gone.
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn only_root_and_the_daemons_uid_are_served() {
        assert!(peer_allowed(0, 0));
        assert!(peer_allowed(0, 1000));
        assert!(peer_allowed(1000, 1000));
        assert!(!peer_allowed(65534, 0));
        assert!(!peer_allowed(65534, 1000));
    }
}

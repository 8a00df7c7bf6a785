//! The peer table's state file: what survives a restart besides UCI (confirmed, declined,
//! remote names, allocated IPs, blocked peers), postcard-encoded and written rarely.

use super::PeerTable;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// What survives a restart besides UCI (postcard-encoded).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedState {
    pub version: u8,
    pub peers: BTreeMap<String, SavedPeer>,
    pub blocked: BTreeMap<String, SavedBlocked>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedPeer {
    pub ip: Option<[u8; 4]>,
    pub name: String,
    pub confirmed: bool,
    pub declined: bool,
    pub allowed_exit: bool,
    pub remote_gateway: bool,
    pub last_seen: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedBlocked {
    pub name: String,
    pub since: u64,
}

impl PeerTable {
    pub fn to_saved(&self) -> SavedState {
        SavedState {
            version: 1,
            peers: self
                .peers
                .values()
                .map(|p| {
                    (
                        p.peer_id.to_string(),
                        SavedPeer {
                            ip: Some(p.ip.octets()),
                            name: p.name.clone(),
                            confirmed: p.confirmed,
                            declined: p.declined,
                            allowed_exit: p.allowed_exit,
                            remote_gateway: p.remote_gateway,
                            last_seen: p.last_seen,
                        },
                    )
                })
                .collect(),
            blocked: self
                .blocked
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        }
    }
}

/// Reads the state file; a missing or unreadable file yields an empty state (with a log line),
/// never an error that would stop the daemon.
pub fn load_state(path: &Path) -> SavedState {
    match std::fs::read(path) {
        Ok(bytes) => postcard::from_bytes(&bytes).unwrap_or_else(|e| {
            log::warn!(
                "{}: unreadable state ({e}); starting with an empty one",
                path.display()
            );
            SavedState::default()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => SavedState::default(),
        Err(e) => {
            log::warn!("{}: {e}", path.display());
            SavedState::default()
        }
    }
}

/// Writes the state file atomically (temp file + fsync + rename).
pub fn save_state(path: &Path, state: &SavedState) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let bytes = postcard::to_stdvec(state).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(&bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

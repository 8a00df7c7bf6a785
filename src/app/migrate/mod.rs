//! Moving from AWL: AWL's `config_awl.json` (the layout v0.18 writes, `config/config.go`) turned
//! into UCI `peer` sections, node options and the daemon's state file, so a node that ran AWL
//! keeps its mesh: the same peers with the same addresses, names, exit grants and friend state.
//!
//! Everything in the file is untrusted text: names are bounded like a peer's own
//! (`peer_text`), domains must be DNS labels, addresses must fit the mesh. `plan` is pure;
//! `import` reads and writes the files, validating the whole new UCI file with the parser
//! `awl config check` uses before anything is written, and puts back what it already wrote
//! if a later write fails.

mod awl;
mod error;
mod plan;
#[cfg(test)]
mod tests;

pub use awl::{parse_awl, unix_time, AwlBlocked, AwlConfig, AwlPeer};
pub use error::Error;
pub use plan::{plan, Plan};

use crate::config::{self, PeerConfig};
use crate::mesh::messages::peer_text;
use crate::mesh::peers::{SavedBlocked, SavedPeer, SavedState};
use crate::p2p::identity::{Keypair, PeerId};
use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// Larger files are refused (AWL's file with 1024 peers is about 600 KB).
pub const MAX_FILE_BYTES: u64 = 4 << 20;
/// More known or blocked peers than this are refused (max_peers is at most 1024).
const MAX_ENTRIES: usize = 4096;
/// AWL's default port (TCP and UDP) when `listenAddresses` is empty.
pub const AWL_DEFAULT_PORT: u16 = 4363;

/// Where an import reads and writes.
pub struct Paths {
    /// The UCI file (created if missing).
    pub config: PathBuf,
    pub data_dir: PathBuf,
}

/// What `import` did.
pub struct Outcome {
    pub plan: Plan,
    /// The identity was written to the data directory (there was none).
    pub identity_written: bool,
}

/// Reads and checks everything, then (with `write`) writes the state file, the UCI file and,
/// if the data directory has none, the identity. A failure changes nothing: files already
/// written are put back. The daemon must not be running (its state would overwrite ours):
/// the caller checks that.
pub fn import(awl_text: &str, paths: &Paths, write: bool) -> Result<Outcome, Error> {
    let awl = parse_awl(awl_text)?;
    // The identity: peers know this node by AWL's.
    let key = match crate::p2p::identity::parse_import(awl_text) {
        Ok(k) => Some(k),
        Err(_) if awl.peer_id.is_none() => None,
        Err(e) => return Err(Error::Identity(e)),
    };
    if let (Some(k), Some(id)) = (&key, &awl.peer_id) {
        if &k.peer_id() != id {
            return Err(Error::KeyNotPeerId(id.clone()));
        }
    }
    let id_file = paths.data_dir.join(crate::p2p::identity::IDENTITY_FILE);
    let existing = if id_file.exists() {
        let text = std::fs::read_to_string(&id_file).map_err(|e| Error::file(&id_file, e))?;
        Some(
            Keypair::from_awl_base58(text.trim())
                .map_err(|e| Error::IdentityFile(id_file.clone(), e))?
                .peer_id(),
        )
    } else {
        None
    };
    let awl_id = key.as_ref().map(Keypair::peer_id).or(awl.peer_id.clone());
    match (&existing, &awl_id) {
        (Some(ours), Some(theirs)) if ours != theirs => {
            return Err(Error::OtherIdentity {
                ours: ours.clone(),
                theirs: theirs.clone(),
            });
        }
        (None, _) if key.is_none() => {
            return Err(Error::NoIdentity);
        }
        _ => {}
    }

    let file_name = paths.config.display().to_string();
    let old_uci = match std::fs::read_to_string(&paths.config) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::file(&paths.config, e)),
    };
    let base = old_uci
        .clone()
        .unwrap_or_else(|| "# Created by awl. Options: docs/CONFIG.md\nconfig awl 'main'\n".into());
    let state_path = paths.data_dir.join("state");
    let old_state = match std::fs::read(&state_path) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::file(&state_path, e)),
    };
    let state = match &old_state {
        Some(b) => postcard::from_bytes(b).map_err(|e| Error::State(state_path.clone(), e))?,
        None => SavedState::default(),
    };
    let plan = plan(&awl, &base, &file_name, &state)?;
    let write_identity = existing.is_none() && key.is_some();
    if !write {
        return Ok(Outcome {
            plan,
            identity_written: false,
        });
    }

    // Writes, each atomic; undone in reverse order if a later one fails.
    let restore_state = || match &old_state {
        Some(b) => {
            let tmp = state_path.with_extension("undo");
            let _ = std::fs::write(&tmp, b).and_then(|_| std::fs::rename(&tmp, &state_path));
        }
        None => {
            let _ = std::fs::remove_file(&state_path);
        }
    };
    create_private_dir(&paths.data_dir)?;
    crate::mesh::peers::save_state(&state_path, &plan.state)
        .map_err(|e| Error::file(&state_path, e))?;
    if plan.text != base || old_uci.is_none() {
        if let Some(dir) = paths.config.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Err(e) = config::write_atomic(&paths.config, &plan.text) {
            restore_state();
            return Err(Error::file(&paths.config, e));
        }
    }
    if write_identity {
        if let Some(k) = &key {
            if let Err(e) = crate::p2p::identity::store(&paths.data_dir, k) {
                match &old_uci {
                    Some(t) => {
                        let _ = config::write_atomic(&paths.config, t);
                    }
                    None => {
                        let _ = std::fs::remove_file(&paths.config);
                    }
                }
                restore_state();
                return Err(Error::StoreIdentity(paths.data_dir.clone(), e));
            }
        }
    }
    Ok(Outcome {
        plan,
        identity_written: write_identity,
    })
}

fn create_private_dir(dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::file(dir, e))
}

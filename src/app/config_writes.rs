//! The node's writes to disk: peer sections of the UCI file (checked before they are written)
//! and the state file.

use crate::app::error::WriteError;
use crate::app::node::{lock, Node};
use crate::config::{self, PeerConfig};
use crate::mesh::peers::{self, KnownPeer};
use crate::p2p::identity::PeerId;

/// On OpenWrt, tells procd that /etc/config/awl changed, as LuCI's apply does: the init
/// script reloads, so the firewall rules it derives from the peers' grants follow the file
/// (the daemon itself only re-reads it). Nothing elsewhere.
fn notify_config_change() {
    const UBUS: &str = "/bin/ubus";
    if !std::path::Path::new(UBUS).exists() {
        return;
    }
    let child = std::process::Command::new(UBUS)
        .args([
            "call",
            "service",
            "event",
            r#"{"type":"config.change","data":{"package":"awl"}}"#,
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    match child {
        // Reaped off the async runtime's thread.
        Ok(mut c) => {
            std::thread::spawn(move || c.wait());
        }
        Err(e) => log::debug!("{UBUS}: {e}"),
    }
}

impl Node {
    /// Writes `p`'s section into the UCI file, after checking the whole new file with the
    /// validator `awl config check` uses: the daemon never writes what it would refuse to load.
    pub(super) fn write_peer_section(&self, p: &KnownPeer) -> Result<(), WriteError> {
        let pc = PeerConfig {
            section: None,
            line: 0,
            peer_id: p.peer_id.clone(),
            alias: p.alias.clone(),
            ip: Some(p.ip),
            allow_exit: p.allow_exit,
            address: p.addresses.clone(),
            domain: p.domain.clone(),
            allow_lan: p.allow_lan,
            accept_routes: p.accept_routes,
            accept_route: p.accept_route.clone(),
        };
        self.rewrite_config(|text| config::upsert_peer_section(text, &pc))
    }

    pub(super) fn remove_peer_section(&self, peer: &PeerId) -> Result<(), WriteError> {
        self.rewrite_config(|text| config::remove_peer_section(text, peer))
    }

    /// One change to the UCI file: read, edit, validate, write atomically; then the running
    /// peer list follows the file (node settings stay as they run: they may be defaults the
    /// file doesn't spell out).
    pub(super) fn rewrite_config(
        &self,
        edit: impl FnOnce(&str) -> String,
    ) -> Result<(), WriteError> {
        let path = &self.config_path;
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                "# Created by awl. Options: docs/CONFIG.md\nconfig awl 'main'\n".to_string()
            }
            Err(e) => return Err(WriteError::Read(path.clone(), e)),
        };
        let new = edit(&text);
        if new == text {
            return Ok(());
        }
        let loaded =
            config::parse(&new, &path.display().to_string()).map_err(WriteError::Invalid)?;
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        config::write_atomic(path, &new).map_err(|e| WriteError::Write(path.clone(), e))?;
        lock(&self.cfg).peers = loaded.config.peers;
        notify_config_change();
        Ok(())
    }

    pub fn save_state_now(&self) {
        let state = {
            let mut t = lock(&self.peers);
            t.dirty = false;
            t.to_saved()
        };
        if let Some(dir) = self.state_path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Err(e) = peers::save_state(&self.state_path, &state) {
            log::warn!("saving {}: {e}", self.state_path.display());
        }
    }
}

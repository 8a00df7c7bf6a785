//! Stand-in for `lan.rs` in builds without the `gateway` feature (a router that only needs
//! mesh access for itself): same API, installs nothing, and says so when asked to.

use crate::base::prefix::Prefix;

pub use crate::sys::sockmark::FWMARK;
pub const EXIT_TABLE: u32 = 0x0061_776c;
pub const NFT_TABLE: &str = "awl";

pub fn is_openwrt() -> bool {
    std::path::Path::new("/etc/openwrt_release").exists()
}

/// No forwarding in this build: no LAN interfaces either.
pub fn lan_interfaces(_configured: &[String], _routes: &[Prefix], _tun: &str) -> Vec<String> {
    Vec::new()
}

pub struct Lan;

impl Lan {
    pub fn setup(
        _tun: &str,
        _mesh: Prefix,
        gatewaying: bool,
        nftables: bool,
        _snat_lan: bool,
        _exit_server: bool,
        _lans: &[String],
    ) -> Lan {
        if gatewaying || nftables {
            log::warn!("built without the 'gateway' feature: no forwarding, firewall table, LAN routes or exit node");
        }
        Lan
    }

    pub fn sync_routes(&mut self, wanted: &[Prefix]) {
        if !wanted.is_empty() {
            log::warn!(
                "built without the 'gateway' feature: {} peer route(s) not installed",
                wanted.len()
            );
        }
    }

    pub fn set_exit(&mut self, on: bool) {
        if on {
            log::warn!("built without the 'gateway' feature: exit node not used");
        }
    }

    pub fn teardown(&mut self) {}
}

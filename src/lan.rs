//! The host side of the LAN gateway: kernel routes for peers' LANs, IP forwarding, the
//! daemon's own nftables table, and policy routing for an exit node. Everything installed
//! here is removed by `teardown` (and on drop), so a stopped daemon leaves nothing behind.
//!
//! Uses the `ip` and `nft` commands (iproute2 and nftables are on every OpenWrt and Debian
//! system that can route) rather than netlink code in the binary.

use crate::routes::Prefix;
use std::process::{Command, Stdio};

/// AWL's socket mark ("awl") for its own traffic, and the routing table of the exit route.
pub const FWMARK: u32 = 0x0061_776c;
pub const EXIT_TABLE: u32 = 0x0061_776c;
const RULE_PREF: u32 = 5200;
pub const NFT_TABLE: &str = "awl";

fn run(cmd: &str, args: &[&str], stdin: Option<&str>) -> Result<(), String> {
    let mut c = Command::new(cmd);
    c.args(args).stdout(Stdio::null()).stderr(Stdio::piped());
    if stdin.is_some() {
        c.stdin(Stdio::piped());
    }
    let mut child = c.spawn().map_err(|e| format!("{cmd}: {e}"))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        use std::io::Write;
        pipe.write_all(text.as_bytes())
            .map_err(|e| format!("{cmd}: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The nftables ruleset: forwarding to/from the TUN, masquerade of LAN traffic into the mesh
/// (AWL peers accept only our mesh address as source), optional masquerade of mesh traffic
/// into the LAN/WAN, and MSS clamping to the route MTU.
pub fn nft_ruleset(tun: &str, mesh: Prefix, snat_lan: bool) -> String {
    let mut r = format!(
        "table inet {NFT_TABLE} {{\n\
         \tchain forward {{\n\
         \t\ttype filter hook forward priority filter - 5; policy accept;\n\
         \t\toifname \"{tun}\" tcp flags syn tcp option maxseg size set rt mtu\n\
         \t\tiifname \"{tun}\" tcp flags syn tcp option maxseg size set rt mtu\n\
         \t\tiifname \"{tun}\" accept\n\
         \t\toifname \"{tun}\" accept\n\
         \t}}\n\
         \tchain postrouting {{\n\
         \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
         \t\toifname \"{tun}\" ip saddr != {mesh} masquerade\n"
    );
    if snat_lan {
        r.push_str(&format!(
            "\t\tiifname \"{tun}\" oifname != \"{tun}\" masquerade\n"
        ));
    }
    r.push_str("\t}\n}\n");
    r
}

/// Whether this looks like OpenWrt, where fw4 and the package's zone do the firewall.
pub fn is_openwrt() -> bool {
    std::path::Path::new("/etc/openwrt_release").exists()
}

pub struct Lan {
    tun: String,
    nft: bool,
    exit: bool,
    routes: Vec<Prefix>,
}

impl Lan {
    /// Sets up forwarding and the firewall table as the configuration needs.
    pub fn setup(tun: &str, mesh: Prefix, gatewaying: bool, nftables: bool, snat_lan: bool) -> Lan {
        let mut lan = Lan {
            tun: tun.to_string(),
            nft: false,
            exit: false,
            routes: Vec::new(),
        };
        if gatewaying {
            match std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward") {
                Ok(v) if v.trim() == "1" => {}
                _ => match std::fs::write("/proc/sys/net/ipv4/ip_forward", "1") {
                    Ok(()) => log::info!(
                        "enabled IPv4 forwarding (net.ipv4.ip_forward=1) for the LAN gateway"
                    ),
                    Err(e) => log::error!("cannot enable IPv4 forwarding: {e}"),
                },
            }
        }
        if nftables {
            let _ = run("nft", &["delete", "table", "inet", NFT_TABLE], None);
            match run("nft", &["-f", "-"], Some(&nft_ruleset(tun, mesh, snat_lan))) {
                Ok(()) => {
                    log::info!("nftables: table inet {NFT_TABLE} installed (forward, masquerade, MSS clamp)");
                    lan.nft = true;
                }
                Err(e) => log::error!("nftables: {e}"),
            }
        }
        lan
    }

    /// Makes the kernel's routes through the TUN equal `wanted`.
    pub fn sync_routes(&mut self, wanted: &[Prefix]) {
        for r in self.routes.clone().iter().filter(|r| !wanted.contains(r)) {
            match run(
                "ip",
                &["route", "del", &r.to_string(), "dev", &self.tun],
                None,
            ) {
                Ok(()) => log::info!("route {r} via {} removed", self.tun),
                Err(e) => log::debug!("{e}"),
            }
            self.routes.retain(|x| x != r);
        }
        let new: Vec<Prefix> = wanted
            .iter()
            .filter(|r| !self.routes.contains(r))
            .copied()
            .collect();
        for r in &new {
            match run(
                "ip",
                &["route", "replace", &r.to_string(), "dev", &self.tun],
                None,
            ) {
                Ok(()) => {
                    log::info!("route {r} via {} installed", self.tun);
                    self.routes.push(*r);
                }
                Err(e) => log::error!("cannot install route {r}: {e}"),
            }
        }
    }

    /// Default route through the TUN for everything but our own (marked) QUIC traffic.
    pub fn set_exit(&mut self, on: bool) {
        if on == self.exit {
            return;
        }
        let table = EXIT_TABLE.to_string();
        let mark = format!("0x{FWMARK:x}");
        let prefs: Vec<String> = (0..3).map(|i| (RULE_PREF + 10 * i).to_string()).collect();
        // Rules left by a killed predecessor would stack up (ip rule allows duplicates).
        for p in &prefs {
            while run("ip", &["rule", "del", "pref", p], None).is_ok() {}
        }
        if on {
            let steps: [Vec<&str>; 4] = [
                vec![
                    "route", "replace", "default", "dev", &self.tun, "table", &table,
                ],
                vec![
                    "rule", "add", "pref", &prefs[0], "fwmark", &mark, "lookup", "main",
                ],
                vec![
                    "rule",
                    "add",
                    "pref",
                    &prefs[1],
                    "lookup",
                    "main",
                    "suppress_prefixlength",
                    "0",
                ],
                vec!["rule", "add", "pref", &prefs[2], "lookup", &table],
            ];
            for s in &steps {
                if let Err(e) = run("ip", s, None) {
                    log::error!("exit node routing: {e}");
                }
            }
            log::info!(
                "exit node: default route through {} (table {table}, own traffic marked {mark})",
                self.tun
            );
        } else {
            let _ = run("ip", &["route", "flush", "table", &table], None);
            log::info!("exit node: default route restored");
        }
        self.exit = on;
    }

    /// Removes everything this module installed.
    pub fn teardown(&mut self) {
        self.sync_routes(&[]);
        self.set_exit(false);
        if self.nft {
            match run("nft", &["delete", "table", "inet", NFT_TABLE], None) {
                Ok(()) => log::info!("nftables: table inet {NFT_TABLE} removed"),
                Err(e) => log::error!("nftables: {e}"),
            }
            self.nft = false;
        }
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        self.teardown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ruleset_has_forward_masquerade_and_clamp() {
        let r = nft_ruleset("awl0", "10.66.0.0/16".parse().unwrap(), true);
        assert!(r.starts_with("table inet awl {"));
        assert!(r.contains("oifname \"awl0\" ip saddr != 10.66.0.0/16 masquerade"));
        assert!(r.contains("iifname \"awl0\" oifname != \"awl0\" masquerade"));
        assert!(r.contains("maxseg size set rt mtu"));
        let no_snat = nft_ruleset("awl0", "10.66.0.0/16".parse().unwrap(), false);
        assert!(!no_snat.contains("oifname != \"awl0\" masquerade"));
        assert_eq!(r.matches('{').count(), r.matches('}').count());
    }
}

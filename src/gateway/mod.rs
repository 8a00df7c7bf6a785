//! The host side of the LAN gateway: kernel routes for peers' LANs, IP forwarding, the
//! daemon's own nftables table, and policy routing for an exit node. Everything installed
//! here is removed by `teardown` (and on drop), so a stopped daemon leaves nothing behind.
//!
//! Uses the `ip` and `nft` commands (iproute2 and nftables are on every OpenWrt and Debian
//! system that can route) rather than netlink code in the binary.

use crate::base::prefix::Prefix;
use std::process::{Command, Stdio};

/// AWL's socket mark ("awl") for its own traffic (set in `sys`), and the routing table of the
/// exit route.
pub use crate::sys::sockmark::FWMARK;
pub const EXIT_TABLE: u32 = 0x0061_776c;
const RULE_PREF: u32 = 5200;
pub const NFT_TABLE: &str = "awl";

/// A command that could not be run, or that failed.
#[derive(Debug)]
enum CmdError {
    /// Starting it or piping to it failed (the command's name).
    Io(String, std::io::Error),
    /// It exited with an error: the command line and what it wrote to stderr.
    Failed(String, String),
}

impl std::fmt::Display for CmdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CmdError::Io(cmd, e) => write!(f, "{cmd}: {e}"),
            CmdError::Failed(line, stderr) => write!(f, "{line}: {stderr}"),
        }
    }
}

fn run(cmd: &str, args: &[&str], stdin: Option<&str>) -> Result<(), CmdError> {
    let io_err = |e| CmdError::Io(cmd.to_string(), e);
    let mut c = Command::new(cmd);
    c.args(args).stdout(Stdio::null()).stderr(Stdio::piped());
    if stdin.is_some() {
        c.stdin(Stdio::piped());
    }
    let mut child = c.spawn().map_err(io_err)?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        use std::io::Write;
        pipe.write_all(text.as_bytes()).map_err(io_err)?;
    }
    let out = child.wait_with_output().map_err(io_err)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(CmdError::Failed(
            format!("{cmd} {}", args.join(" ")),
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

/// What forwarding this daemon switched on, and so must keep from opening anything else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owned {
    /// Forwarding was on already (the administrator's firewall decides) or is off.
    Nothing,
    /// Per-interface forwarding on these LAN interfaces (and the TUN): they forward into the
    /// mesh only.
    Interfaces(Vec<String>),
    /// Global IPv4 forwarding (an exit node needs its replies forwarded from any interface):
    /// only traffic to or from the TUN is forwarded.
    AllButTun,
}

fn nft_set(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    format!("{{ {} }}", quoted.join(", "))
}

/// The nftables ruleset: forwarding to/from the TUN, masquerade of LAN traffic into the mesh
/// (AWL peers accept only our mesh address as source), optional masquerade of mesh traffic
/// into the LAN/WAN, and MSS clamping to the route MTU.
///
/// Into the mesh only from `lans` (and replies); never from the WAN. From the mesh anywhere:
/// what each peer may reach is enforced per packet by the data plane (`allow_lan`,
/// `allow_exit`). The mesh addresses of this host answer only on the TUN, loopback and the
/// LAN interfaces. Forwarding this daemon switched on (`owned`) carries nothing that does not
/// go to or come from the TUN.
pub fn nft_ruleset(
    tun: &str,
    mesh: Prefix,
    snat_lan: bool,
    lans: &[String],
    owned: &Owned,
) -> String {
    let lan_refs: Vec<&str> = lans.iter().map(String::as_str).collect();
    let mut inside = vec![tun, "lo"];
    inside.extend(&lan_refs);
    let mut r = format!(
        "table inet {NFT_TABLE} {{\n\
         \tchain forward {{\n\
         \t\ttype filter hook forward priority filter - 5; policy accept;\n\
         \t\toifname \"{tun}\" tcp flags syn tcp option maxseg size set rt mtu\n\
         \t\tiifname \"{tun}\" tcp flags syn tcp option maxseg size set rt mtu\n\
         \t\tiifname \"{tun}\" accept\n"
    );
    if !lans.is_empty() {
        r.push_str(&format!(
            "\t\toifname \"{tun}\" iifname {} accept\n",
            nft_set(&lan_refs)
        ));
    }
    r.push_str(&format!(
        "\t\toifname \"{tun}\" ct state established,related accept\n\
         \t\toifname \"{tun}\" drop\n"
    ));
    match owned {
        Owned::Nothing => {}
        Owned::Interfaces(ifs) if ifs.is_empty() => {}
        Owned::Interfaces(ifs) => {
            let refs: Vec<&str> = ifs.iter().map(String::as_str).collect();
            r.push_str(&format!(
                "\t\tiifname {} ct state != {{ established, related }} drop\n",
                nft_set(&refs)
            ));
        }
        Owned::AllButTun => r.push_str("\t\tct state != { established, related } drop\n"),
    }
    r.push_str(&format!(
        "\t}}\n\
         \tchain input {{\n\
         \t\ttype filter hook input priority filter - 5; policy accept;\n\
         \t\tip daddr {mesh} iifname != {} drop\n\
         \t}}\n\
         \tchain postrouting {{\n\
         \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
         \t\toifname \"{tun}\" ip saddr != {mesh} masquerade\n",
        nft_set(&inside)
    ));
    if snat_lan {
        r.push_str(&format!(
            "\t\tiifname \"{tun}\" oifname != \"{tun}\" masquerade\n"
        ));
    }
    r.push_str("\t}\n}\n");
    r
}

/// `ip -4 -o addr show`: (interface, address, prefix length) per line.
pub fn parse_ip_addr(text: &str) -> Vec<(String, std::net::Ipv4Addr, u8)> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let i = f.iter().position(|w| *w == "inet")?;
            let name = f.get(1)?.trim_end_matches(':');
            let name = name.split('@').next()?;
            let (ip, len) = f.get(i + 1)?.split_once('/')?;
            Some((name.to_string(), ip.parse().ok()?, len.parse().ok()?))
        })
        .collect()
}

/// The LAN interfaces: the configured ones, else those holding an address inside one of the
/// exported routes (never the TUN).
pub fn lan_interfaces(configured: &[String], routes: &[Prefix], tun: &str) -> Vec<String> {
    if !configured.is_empty() {
        return configured.to_vec();
    }
    let out = Command::new("ip")
        .args(["-4", "-o", "addr", "show"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    lan_interfaces_from(&parse_ip_addr(&out), routes, tun)
}

pub fn lan_interfaces_from(
    addrs: &[(String, std::net::Ipv4Addr, u8)],
    routes: &[Prefix],
    tun: &str,
) -> Vec<String> {
    let mut v: Vec<String> = addrs
        .iter()
        .filter(|(name, ip, _)| name != tun && routes.iter().any(|r| r.contains(*ip)))
        .map(|(name, _, _)| name.clone())
        .collect();
    v.sort();
    v.dedup();
    v
}

fn sysctl_path(iface: &str) -> String {
    format!("/proc/sys/net/ipv4/conf/{iface}/forwarding")
}

fn read_flag(path: &str) -> Option<bool> {
    std::fs::read_to_string(path).ok().map(|v| v.trim() == "1")
}

/// Whether this looks like OpenWrt, where fw4 and the package's zone do the firewall.
pub fn is_openwrt() -> bool {
    std::path::Path::new("/etc/openwrt_release").exists()
}

pub struct Lan {
    tun: String,
    nft: bool,
    /// Forwarding switches we turned on (sysctl paths), turned off again at teardown.
    forwarding: Vec<String>,
    exit: bool,
    routes: Vec<Prefix>,
}

impl Lan {
    /// Sets up forwarding and the firewall table as the configuration needs.
    ///
    /// IPv4 forwarding: if it is on already, the administrator's firewall decides and our
    /// table only keeps the WAN out of the mesh. Otherwise it is switched on per interface,
    /// for the TUN and the LAN interfaces only (Linux decides by the input interface's
    /// `forwarding`), so the WAN side forwards nothing. An exit node (`exit_server`) needs its
    /// replies forwarded from any interface: then global forwarding, with our table
    /// forwarding nothing that does not go to or come from the TUN; without our table
    /// (`firewall 'none'`) that is refused with an error.
    pub fn setup(
        tun: &str,
        mesh: Prefix,
        gatewaying: bool,
        nftables: bool,
        snat_lan: bool,
        exit_server: bool,
        lans: &[String],
    ) -> Lan {
        let mut lan = Lan {
            tun: tun.to_string(),
            nft: false,
            forwarding: Vec::new(),
            exit: false,
            routes: Vec::new(),
        };
        let mut owned = Owned::Nothing;
        let global = "/proc/sys/net/ipv4/conf/all/forwarding";
        if gatewaying && read_flag(global) != Some(true) {
            if exit_server && nftables {
                match std::fs::write(global, "1") {
                    Ok(()) => {
                        log::info!("enabled IPv4 forwarding (net.ipv4.ip_forward=1) for the exit node; table inet {NFT_TABLE} forwards only traffic to and from {tun}");
                        lan.forwarding.push(global.to_string());
                        owned = Owned::AllButTun;
                    }
                    Err(e) => log::error!("cannot enable IPv4 forwarding: {e}"),
                }
            } else {
                if exit_server {
                    log::error!("gateway '1': IPv4 forwarding is off and awl installs no firewall (firewall 'none'), so it does not switch forwarding on for the exit node: set net.ipv4.ip_forward=1 and firewall WAN → LAN yourself; until then peers cannot use this node as exit");
                }
                let mut on = Vec::new();
                for ifc in std::iter::once(tun.to_string()).chain(lans.iter().cloned()) {
                    let path = sysctl_path(&ifc);
                    match read_flag(&path) {
                        Some(true) => {}
                        Some(false) => match std::fs::write(&path, "1") {
                            Ok(()) => {
                                lan.forwarding.push(path);
                                on.push(ifc);
                            }
                            Err(e) => log::error!("cannot enable IPv4 forwarding on {ifc}: {e}"),
                        },
                        None => log::error!("LAN interface {ifc} not found: no forwarding from it"),
                    }
                }
                if !on.is_empty() {
                    log::info!("enabled IPv4 forwarding on {} only (net.ipv4.conf.<if>.forwarding; the WAN side forwards nothing)", on.join(", "));
                }
                on.retain(|i| i != tun);
                owned = Owned::Interfaces(on);
            }
        }
        if gatewaying && lans.is_empty() {
            log::warn!("no LAN interface (no address inside an exported route, no lan_interface): LAN hosts cannot reach the mesh through this node");
        } else if gatewaying {
            log::info!(
                "LAN interfaces: {} (only they forward into the mesh)",
                lans.join(", ")
            );
        }
        if nftables {
            let _ = run("nft", &["delete", "table", "inet", NFT_TABLE], None);
            let rules = nft_ruleset(tun, mesh, snat_lan, lans, &owned);
            match run("nft", &["-f", "-"], Some(&rules)) {
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
        for path in std::mem::take(&mut self.forwarding) {
            match std::fs::write(&path, "0") {
                Ok(()) => log::info!("IPv4 forwarding switched off again ({path})"),
                Err(e) => log::debug!("{path}: {e}"),
            }
        }
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
        let r = nft_ruleset(
            "awl0",
            "10.66.0.0/16".parse().unwrap(),
            true,
            &["lan0".to_string()],
            &Owned::Nothing,
        );
        assert!(r.starts_with("table inet awl {"));
        assert!(r.contains("oifname \"awl0\" ip saddr != 10.66.0.0/16 masquerade"));
        assert!(r.contains("iifname \"awl0\" oifname != \"awl0\" masquerade"));
        assert!(r.contains("maxseg size set rt mtu"));
        let no_snat = nft_ruleset(
            "awl0",
            "10.66.0.0/16".parse().unwrap(),
            false,
            &[],
            &Owned::Nothing,
        );
        assert!(!no_snat.contains("oifname != \"awl0\" masquerade"));
        assert_eq!(r.matches('{').count(), r.matches('}').count());
    }

    /// Nothing from outside the LAN interfaces is forwarded into the mesh (a WAN neighbour
    /// with a route via this node reached the service address, friends and their LANs), and
    /// forwarding we switched on carries nothing that does not go through the TUN.
    #[test]
    fn only_lan_interfaces_forward_into_the_mesh() {
        let mesh = "10.66.0.0/16".parse().unwrap();
        let lans = ["lan0".to_string(), "br-lan".to_string()];
        let r = nft_ruleset("awl0", mesh, true, &lans, &Owned::Nothing);
        let rules: Vec<&str> = r.lines().map(str::trim).collect();
        let pos = |rule: &str| {
            rules
                .iter()
                .position(|l| *l == rule)
                .unwrap_or_else(|| panic!("no '{rule}' in\n{r}"))
        };
        let lan_in = pos("oifname \"awl0\" iifname { \"lan0\", \"br-lan\" } accept");
        let replies = pos("oifname \"awl0\" ct state established,related accept");
        let wan_in = pos("oifname \"awl0\" drop");
        assert!(lan_in < wan_in && replies < wan_in);
        assert!(pos("iifname \"awl0\" accept") < wan_in);
        assert!(
            !rules.contains(&"oifname \"awl0\" accept"),
            "no forward from any interface"
        );
        pos("ip daddr 10.66.0.0/16 iifname != { \"awl0\", \"lo\", \"lan0\", \"br-lan\" } drop");
        let owned = nft_ruleset(
            "awl0",
            mesh,
            true,
            &lans,
            &Owned::Interfaces(vec!["lan0".into()]),
        );
        assert!(owned.contains("iifname { \"lan0\" } ct state != { established, related } drop"));
        let exit = nft_ruleset("awl0", mesh, true, &lans, &Owned::AllButTun);
        assert!(exit.contains("\t\tct state != { established, related } drop\n"));
        assert_eq!(exit.matches('{').count(), exit.matches('}').count());
    }

    #[test]
    fn lan_interfaces_come_from_the_exported_routes() {
        let out = "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever
2: wan0@if7    inet 198.51.100.2/24 scope global wan0\\       valid_lft forever
3: lan0    inet 192.168.2.1/24 scope global lan0\\       valid_lft forever
4: awl0    inet 10.66.0.1/16 scope global awl0\\       valid_lft forever
";
        let a = parse_ip_addr(out);
        assert_eq!(
            a[1],
            ("wan0".to_string(), "198.51.100.2".parse().unwrap(), 24)
        );
        let routes = [
            "192.168.2.0/24".parse().unwrap(),
            "10.66.0.0/16".parse().unwrap(),
        ];
        assert_eq!(
            lan_interfaces_from(&a, &routes, "awl0"),
            vec!["lan0".to_string()]
        );
        assert!(lan_interfaces_from(&a, &[], "awl0").is_empty());
        assert_eq!(
            lan_interfaces(&["eth1".to_string()], &routes, "awl0"),
            vec!["eth1".to_string()]
        );
    }
}

//! Command-line parsing. Pure: turns `argv` into a [`Command`] or a usage error.

use std::path::PathBuf;

pub const USAGE: &str = "\
awl - mesh VPN node compatible with Anywherelan

Usage: awl [OPTIONS] <COMMAND>

Commands:
  run                    Run the node (foreground)
  id                     Print this node's peer ID (creates the identity on first use)
  id import <FILE|->     Import an identity: AWL's config_awl.json or the base58 key
  config check [FILE]    Validate a UCI config file; exit 1 on error
  config schema          Print the configuration schema as JSON
  config import-awl <FILE> [--write]
                         Moving from AWL: its config_awl.json's peers (alias, IP,
                         domain, exit grant, confirmed/declined, blocked), listen port,
                         name and mesh address into the UCI file and the state file;
                         the identity too if this node has none. Without --write,
                         prints the resulting UCI file and changes nothing
  status                 This node: peer ID, mesh IP, listen addresses, traffic
  peers                  Known peers: IP, connected, path, RTT, traffic
  requests               Pending incoming friend requests
  blocked                Blocked peers (declined or removed)
  invite <PEER> [ALIAS]  Invite a peer (--ip IP for a custom mesh IP,
                         --address MULTIADDR to dial it at)
  accept <PEER> [ALIAS]  Accept a friend request (--ip IP)
  decline <PEER>         Decline a friend request (blocks the peer)
  remove <PEER>          Remove a known peer (blocks it, as AWL does)
  reload                 Re-read the config file (as SIGHUP)
  health                 Health checks; exit 1 when one fails
  metrics                Prometheus metrics (also at http://<service address>/metrics)
  logs [N]               The daemon's last N log lines (default 100, at most 500)
  ctl <JSON>             Send one raw control request; print the daemon's raw reply
  rpcd list|methods      LuCI's rpcd backend: the method signatures / the method table
  rpcd call <METHOD>     Call METHOD with rpcd's JSON arguments on stdin (declared
                         parameters only; always prints one JSON reply)
  ping <MULTIADDR>       Dial a libp2p peer, identify it and ping it
  selftest               Run two in-process nodes over loopback QUIC and check them
  help                   Print this help

Options:
  -c, --config <FILE>    UCI config file (default /etc/config/awl if it exists,
                         else built-in defaults)
  -d, --data-dir <DIR>   Data directory for the identity (default: $AWL_DATA_DIR, the
                         config's data_dir, /etc/awl as root, ~/.local/share/awl otherwise)
  -s, --socket <PATH>    Control socket (default: the config's control_socket as root,
                         <data dir>/awl.sock otherwise)
      --json             Machine-readable output where supported
  -V, --version          Print version
  -h, --help             Print this help

Environment:
  RUST_LOG               Log filter; overrides the config's log_level
  AWL_DATA_DIR           Data directory (as AWL uses it)
";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Run,
    Id,
    IdImport(String),
    ConfigCheck(Option<PathBuf>),
    ConfigSchema,
    /// `awl config import-awl FILE [--write]`.
    ConfigImportAwl {
        file: String,
        write: bool,
    },
    Ping(String),
    /// A control-API request for the running daemon.
    Control(serde_json::Value),
    /// `awl ctl '<json>'`: raw request and reply (for rpcd backends and scripts).
    RawControl(String),
    /// `awl rpcd list|methods|call METHOD`: LuCI's rpcd exec backend.
    Rpcd(Rpcd),
    SelfTest,
    Help,
    Version,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rpcd {
    List,
    Methods,
    Call(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub config: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub json: bool,
    pub socket: Option<PathBuf>,
    pub command: Command,
}

pub fn parse<I: IntoIterator<Item = String>>(argv: I) -> Result<Args, String> {
    let mut config = None;
    let mut data_dir = None;
    let mut json = false;
    let mut socket = None;
    let mut ip = None;
    let mut address = None;
    let mut write = false;
    let mut words = Vec::new();
    let mut it = argv.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-c" | "--config" => config = Some(PathBuf::from(it.next().ok_or("-c needs a file")?)),
            "-d" | "--data-dir" => {
                data_dir = Some(PathBuf::from(
                    it.next().ok_or("--data-dir needs a directory")?,
                ))
            }
            "--json" => json = true,
            "--write" => write = true,
            "-s" | "--socket" => {
                socket = Some(PathBuf::from(it.next().ok_or("--socket needs a path")?))
            }
            "--ip" => ip = Some(it.next().ok_or("--ip needs an address")?),
            "--address" => address = Some(it.next().ok_or("--address needs a multiaddr")?),
            "-V" | "--version" => words.insert(0, "version".to_string()),
            "-h" | "--help" => words.insert(0, "help".to_string()),
            s if s.starts_with("--config=") => config = Some(PathBuf::from(&s[9..])),
            s if s.starts_with('-') && s != "-" => return Err(format!("unknown option '{s}'")),
            _ => words.push(a),
        }
    }
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    let command = match w.as_slice() {
        [] | ["help", ..] => Command::Help,
        ["version", ..] => Command::Version,
        ["run"] => Command::Run,
        ["id"] => Command::Id,
        ["id", "import", file] => Command::IdImport(file.to_string()),
        ["config", "check"] => Command::ConfigCheck(None),
        ["config", "check", file] => Command::ConfigCheck(Some(PathBuf::from(file))),
        ["config", "schema"] => Command::ConfigSchema,
        ["config", "import-awl", file] => Command::ConfigImportAwl {
            file: file.to_string(),
            write,
        },
        ["ping", addr] => Command::Ping(addr.to_string()),
        ["selftest"] => Command::SelfTest,
        ["logs"] => Command::Control(serde_json::json!({ "cmd": "logs", "lines": 100 })),
        ["logs", n] => Command::Control(serde_json::json!({
            "cmd": "logs",
            "lines": n.parse::<u64>().map_err(|_| format!("'{n}' is not a line count"))?,
        })),
        [cmd @ ("status" | "peers" | "requests" | "blocked" | "reload" | "health" | "metrics")] => {
            Command::Control(serde_json::json!({ "cmd": cmd }))
        }
        [cmd @ ("invite" | "accept"), peer, rest @ ..] if rest.len() <= 1 => {
            let mut req = serde_json::json!({ "cmd": cmd, "peer_id": peer });
            if let Some(alias) = rest.first() {
                req["alias"] = (*alias).into();
            }
            if let Some(ip) = &ip {
                req["ip"] = ip.as_str().into();
            }
            if let Some(a) = &address {
                req["address"] = a.as_str().into();
            }
            Command::Control(req)
        }
        ["ctl", json] => Command::RawControl(json.to_string()),
        ["rpcd", "list"] => Command::Rpcd(Rpcd::List),
        ["rpcd", "methods"] => Command::Rpcd(Rpcd::Methods),
        ["rpcd", "call", method] => Command::Rpcd(Rpcd::Call(method.to_string())),
        [cmd @ ("decline" | "remove"), peer] => {
            Command::Control(serde_json::json!({ "cmd": cmd, "peer_id": peer }))
        }
        _ => return Err(format!("unknown command '{}'", w.join(" "))),
    };
    Ok(Args {
        config,
        data_dir,
        json,
        socket,
        command,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Args, String> {
        parse(s.split_whitespace().map(String::from))
    }

    #[test]
    fn commands_and_options() {
        assert_eq!(p("run").unwrap().command, Command::Run);
        let a = p("-c /tmp/awl --json config check").unwrap();
        assert_eq!(a.config, Some(PathBuf::from("/tmp/awl")));
        assert!(a.json);
        assert_eq!(a.command, Command::ConfigCheck(None));
        assert_eq!(
            p("config check f").unwrap().command,
            Command::ConfigCheck(Some("f".into()))
        );
        assert_eq!(p("--version").unwrap().command, Command::Version);
        assert_eq!(
            p("config import-awl c.json --write").unwrap().command,
            Command::ConfigImportAwl {
                file: "c.json".into(),
                write: true
            }
        );
        assert_eq!(
            p("config import-awl c.json").unwrap().command,
            Command::ConfigImportAwl {
                file: "c.json".into(),
                write: false
            }
        );
        assert_eq!(p("run --help").unwrap().command, Command::Help);
        assert_eq!(p("").unwrap().command, Command::Help);
        assert_eq!(
            p("id import -").unwrap().command,
            Command::IdImport("-".into())
        );
        assert_eq!(
            p("peers --json").unwrap().command,
            Command::Control(serde_json::json!({"cmd": "peers"}))
        );
        assert_eq!(
            p("invite 12D3KooWX bob --ip 10.66.0.9").unwrap().command,
            Command::Control(
                serde_json::json!({"cmd": "invite", "peer_id": "12D3KooWX", "alias": "bob", "ip": "10.66.0.9"})
            )
        );
    }

    #[test]
    fn errors_are_reported() {
        assert!(p("frobnicate").is_err());
        assert!(p("run --bogus").is_err());
        assert!(p("-c").is_err());
        assert!(p("decline").is_err());
        assert!(p("invite a b c").is_err());
    }
}

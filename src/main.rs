//! The `awl` binary: argument handling and the tokio runtime; the work lives in the library.
// OS calls go through `awl::sys`.
#![deny(unsafe_code)]

use awl::app::cli::{self, Command};
use awl::config::{self, Config};
use awl::p2p::identity;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Where OpenWrt keeps the file; used when no `-c` is given and it exists.
const SYSTEM_CONFIG: &str = "/etc/config/awl";

fn main() -> ExitCode {
    let args = match cli::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("awl: {e}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    if args.command != cli::Command::Run {
        // A CLI command piped into `head` ends quietly, as other tools do, instead of
        // panicking on EPIPE (Rust ignores SIGPIPE). The daemon keeps ignoring it.
        awl::sys::signal::default_sigpipe();
    }
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("awl: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The configuration in force and where it lives.
struct Resolved {
    cfg: Config,
    /// The UCI file to re-read and to write peers to (created on first write if missing).
    path: PathBuf,
    /// Whether `path` existed and was loaded.
    from_file: bool,
    data_dir: PathBuf,
}

/// Data directory for runs on built-in defaults: `$AWL_DATA_DIR`, `/etc/awl` as root,
/// `~/.local/share/awl` otherwise.
fn default_data_dir(cfg: &Config) -> PathBuf {
    if let Some(d) = std::env::var_os("AWL_DATA_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if awl::sys::user::is_root() {
        return cfg.main.data_dir.clone();
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".local/share/awl"),
        None => cfg.main.data_dir.clone(),
    }
}

fn load_file(path: &Path) -> Result<Config, String> {
    let loaded = config::load(path).map_err(|e| e.to_string())?;
    for w in &loaded.warnings {
        eprintln!("awl: warning: {w}");
    }
    Ok(loaded.config)
}

/// `-c FILE` (must exist), else `/etc/config/awl` if present, else `<data dir>/config` if
/// present, else built-in defaults. `--data-dir` and `$AWL_DATA_DIR` override `data_dir`.
fn resolve(args: &cli::Args) -> Result<Resolved, String> {
    let defaults = Config::default();
    let (cfg, path, from_file) = if let Some(p) = &args.config {
        (load_file(p)?, p.clone(), true)
    } else if Path::new(SYSTEM_CONFIG).exists() {
        (
            load_file(Path::new(SYSTEM_CONFIG))?,
            PathBuf::from(SYSTEM_CONFIG),
            true,
        )
    } else {
        let local = args
            .data_dir
            .clone()
            .unwrap_or_else(|| default_data_dir(&defaults))
            .join("config");
        if local.exists() {
            (load_file(&local)?, local, true)
        } else {
            (defaults, local, false)
        }
    };
    let data_dir = match (
        &args.data_dir,
        std::env::var_os("AWL_DATA_DIR").filter(|d| !d.is_empty()),
    ) {
        (Some(d), _) => d.clone(),
        (None, Some(d)) => PathBuf::from(d),
        (None, None) if from_file && path != default_data_dir(&cfg).join("config") => {
            cfg.main.data_dir.clone()
        }
        (None, None) => default_data_dir(&cfg),
    };
    Ok(Resolved {
        cfg,
        path,
        from_file,
        data_dir,
    })
}

fn socket_for(args: &cli::Args, r: &Resolved) -> PathBuf {
    args.socket
        .clone()
        .unwrap_or_else(|| awl::app::control::socket_path(&r.cfg.main.control_socket, &r.data_dir))
}

fn init_logging(level: log::LevelFilter) {
    awl::app::logring::init(level);
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    // Routers have one or two slow cores: one thread does all the work.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start runtime: {e}"))
}

fn run(args: cli::Args) -> Result<(), String> {
    match args.command.clone() {
        Command::Help => {
            print!("{}", cli::USAGE);
            Ok(())
        }
        Command::Version => {
            println!("awl {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::ConfigSchema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&config::schema()).map_err(|e| e.to_string())?
            );
            Ok(())
        }
        Command::ConfigCheck(file) => {
            let path = file
                .or(args.config.clone())
                .unwrap_or_else(|| PathBuf::from(SYSTEM_CONFIG));
            let cfg = load_file(&path)?;
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({"ok": true, "file": path.display().to_string(), "peers": cfg.peers.len()})
                );
            } else {
                println!("{}: OK ({} peer(s))", path.display(), cfg.peers.len());
            }
            Ok(())
        }
        Command::Id => {
            let r = resolve(&args)?;
            let (kp, created) = identity::load_or_create(&r.data_dir).map_err(|e| e.to_string())?;
            if created {
                eprintln!("awl: created a new identity in {}", r.data_dir.display());
            }
            println!("{}", kp.peer_id());
            Ok(())
        }
        Command::IdImport(file) => {
            let r = resolve(&args)?;
            let mut text = String::new();
            if file == "-" {
                std::io::stdin()
                    .read_to_string(&mut text)
                    .map_err(|e| e.to_string())?;
            } else {
                text = std::fs::read_to_string(&file).map_err(|e| format!("{file}: {e}"))?;
            }
            let kp = identity::parse_import(&text).map_err(|e| format!("{file}: {e}"))?;
            identity::store(&r.data_dir, &kp).map_err(|e| e.to_string())?;
            println!("{}", kp.peer_id());
            Ok(())
        }
        Command::ConfigImportAwl { file, write } => import_awl(&args, &file, write),
        Command::RawControl(line) => {
            let r = resolve(&args)?;
            let socket = socket_for(&args, &r);
            println!(
                "{}",
                runtime()?
                    .block_on(awl::app::control::call_raw(&socket, &line))
                    .map_err(|e| e.to_string())?
            );
            Ok(())
        }
        Command::Rpcd(cli::Rpcd::List) => {
            println!("{}", awl::app::methods::rpcd_signatures());
            Ok(())
        }
        Command::Rpcd(cli::Rpcd::Methods) => {
            println!("{}", awl::app::methods::describe());
            Ok(())
        }
        Command::Rpcd(cli::Rpcd::Call(method)) => {
            // rpcd wants one JSON object back, whatever went wrong.
            let reply = rpcd_call(&args, &method)
                .unwrap_or_else(|e| serde_json::json!({"ok": false, "error": e}).to_string());
            println!("{reply}");
            Ok(())
        }
        Command::Control(req) if req["cmd"] == "health" => {
            let result = health(&args);
            if args.json {
                println!("{result}");
            } else {
                print_human("health", &result);
            }
            if result["ok"] != true {
                return Err("unhealthy".into());
            }
            Ok(())
        }
        Command::Control(req) => {
            let r = resolve(&args)?;
            let socket = socket_for(&args, &r);
            let result = runtime()?
                .block_on(awl::app::control::call(&socket, &req))
                .map_err(|e| e.to_string())?;
            if args.json {
                println!("{result}");
            } else {
                print_human(req["cmd"].as_str().unwrap_or(""), &result);
            }
            if req["cmd"] == "health" && result["ok"] != true {
                return Err("unhealthy".into());
            }
            Ok(())
        }
        Command::Ping(addr) => {
            init_logging(log::LevelFilter::Warn);
            let addr: awl::p2p::multiaddr::Multiaddr = addr.parse().map_err(|e| format!("{e}"))?;
            runtime()?.block_on(ping(addr, args.json))
        }
        Command::SelfTest => {
            init_logging(log::LevelFilter::Warn);
            let msg = runtime()?.block_on(awl::app::selftest::run())?;
            println!("{msg}");
            Ok(())
        }
        Command::Run => {
            let r = resolve(&args)?;
            init_logging(r.cfg.main.log_level);
            if !r.from_file {
                log::info!("no config file ({SYSTEM_CONFIG} absent, no -c): running on built-in defaults; peers will be saved to {}", r.path.display());
            }
            if !r.cfg.main.enabled {
                log::warn!("'enabled' is 0 in the config; running anyway because 'awl run' was called directly");
            }
            let socket = socket_for(&args, &r);
            runtime()?
                .block_on(awl::app::daemon::run(r.cfg, r.path, r.data_dir, socket))
                .map_err(|e| e.to_string())
        }
    }
}

/// The daemon's health checks; when it does not answer, the config file's check and
/// `daemon: not running`. A broken config file does not stop the question reaching a daemon
/// that still runs the configuration it loaded before.
fn health(args: &cli::Args) -> serde_json::Value {
    let (socket, file) = match resolve(args) {
        Ok(r) if r.from_file => (
            socket_for(args, &r),
            Ok(format!(
                "{}: OK ({} peer(s))",
                r.path.display(),
                r.cfg.peers.len()
            )),
        ),
        Ok(r) => (
            socket_for(args, &r),
            Ok(format!("{} absent: built-in defaults", r.path.display())),
        ),
        Err(e) => {
            // The file does not load, but a daemon may still run what it loaded before:
            // find its socket where the file says, as far as the file can be read.
            let file = args
                .config
                .clone()
                .unwrap_or_else(|| PathBuf::from(SYSTEM_CONFIG));
            let text = std::fs::read_to_string(file).unwrap_or_default();
            let peek = |name| config::peek_main_option(&text, name).map(PathBuf::from);
            let mut d = Config::default();
            if let Some(p) = peek("control_socket") {
                d.main.control_socket = p;
            }
            let env = std::env::var_os("AWL_DATA_DIR").filter(|d| !d.is_empty());
            let data_dir = args
                .data_dir
                .clone()
                .or(env.map(PathBuf::from))
                .or_else(|| peek("data_dir"))
                .unwrap_or_else(|| default_data_dir(&d));
            let socket = args.socket.clone().unwrap_or_else(|| {
                awl::app::control::socket_path(&d.main.control_socket, &data_dir)
            });
            (socket, Err(e))
        }
    };
    let req = serde_json::json!({"cmd": "health"});
    let reply = runtime().and_then(|rt| {
        rt.block_on(awl::app::control::call(&socket, &req))
            .map_err(|e| e.to_string())
    });
    match reply {
        Ok(v) => v,
        Err(e) => awl::app::health::offline(file, &e),
    }
}

#[cfg(not(feature = "awl-import"))]
fn import_awl(_: &cli::Args, _: &str, _: bool) -> Result<(), String> {
    Err(
        "this build has no AWL config import (the MIPS router builds leave it out): \
         run `awl config import-awl FILE` on another machine, then copy the config and the \
         state file it names (docs/MIGRATION.md); `awl id import` works here"
            .into(),
    )
}

/// `awl config import-awl FILE [--write]`: AWL's peers and settings into UCI and the state.
#[cfg(feature = "awl-import")]
fn import_awl(args: &cli::Args, file: &str, write: bool) -> Result<(), String> {
    let r = resolve(args)?;
    let mut text = String::new();
    let limit = awl::app::migrate::MAX_FILE_BYTES;
    let read = if file == "-" {
        std::io::stdin().take(limit + 1).read_to_string(&mut text)
    } else {
        std::fs::File::open(file).and_then(|f| f.take(limit + 1).read_to_string(&mut text))
    };
    read.map_err(|e| format!("{file}: {e}"))?;
    if text.len() as u64 > limit {
        return Err(format!("{file}: larger than {limit} bytes"));
    }
    let socket = socket_for(args, &r);
    if write && std::os::unix::net::UnixStream::connect(&socket).is_ok() {
        return Err(format!(
            "the daemon is running ({}): stop it first (/etc/init.d/awl stop, or systemctl stop awl), import, then start it; \
             a running daemon keeps its own peer state and would overwrite the imported one",
            socket.display()
        ));
    }
    let paths = awl::app::migrate::Paths {
        config: r.path.clone(),
        data_dir: r.data_dir.clone(),
    };
    let out =
        awl::app::migrate::import(&text, &paths, write).map_err(|e| format!("{file}: {e}"))?;
    if !write {
        print!("{}", out.plan.text);
        eprint!("{}", out.plan.summary());
        eprintln!(
            "awl: nothing written; run again with --write to write {} and {}",
            r.path.display(),
            r.data_dir.join("state").display()
        );
        return Ok(());
    }
    print!("{}", out.plan.summary());
    println!(
        "wrote {} and {}{}",
        r.path.display(),
        r.data_dir.join("state").display(),
        if out.identity_written {
            format!(" and the identity (in {})", r.data_dir.display())
        } else {
            String::new()
        }
    );
    println!(
        "make sure AWL stays stopped (docs/MIGRATION.md), then start awl (/etc/init.d/awl start, or systemctl start awl)"
    );
    Ok(())
}

/// Plain-text rendering of control replies.
fn print_human(cmd: &str, v: &serde_json::Value) {
    let s = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".into(),
        other => other.to_string(),
    };
    match cmd {
        "status" => {
            println!("peer ID    {}", s(&v["peer_id"]));
            println!("name       {}", s(&v["name"]));
            println!(
                "mesh IP    {}/{} on {}",
                s(&v["mesh_ip"]),
                s(&v["prefix"]),
                s(&v["interface"])
            );
            for a in v["listen_addrs"].as_array().into_iter().flatten() {
                println!("listen     {}", s(a));
            }
            println!(
                "peers      {} known, {} connected, {} request(s)",
                s(&v["peers_known"]),
                s(&v["peers_connected"]),
                s(&v["requests"])
            );
            println!(
                "traffic    tx {} B, rx {} B",
                s(&v["traffic"]["tx_bytes"]),
                s(&v["traffic"]["rx_bytes"])
            );
            println!("uptime     {} s", s(&v["uptime_secs"]));
        }
        "peers" => {
            println!(
                "{:<16} {:<15} {:<10} {:<9} {:<8} {:>9}  PEER ID",
                "ALIAS", "IP", "STATE", "PATH", "RTT ms", "RX/TX kB"
            );
            for p in v.as_array().into_iter().flatten() {
                let state = if p["declined"] == true {
                    "declined"
                } else if p["confirmed"] != true {
                    "invited"
                } else if p["connected"] == true {
                    "online"
                } else {
                    "offline"
                };
                let kb = |x: &serde_json::Value| x.as_u64().unwrap_or(0) / 1024;
                println!(
                    "{:<16} {:<15} {:<10} {:<9} {:<8} {:>4}/{:<4}  {}",
                    s(&p["alias"]),
                    s(&p["ip"]),
                    state,
                    s(&p["path"]),
                    s(&p["rtt_ms"]),
                    kb(&p["traffic"]["rx_bytes"]),
                    kb(&p["traffic"]["tx_bytes"]),
                    s(&p["peer_id"])
                );
            }
        }
        "metrics" => print!("{}", v.as_str().unwrap_or("")),
        "logs" => {
            for l in v.as_array().into_iter().flatten() {
                println!("{}", s(l));
            }
        }
        "health" => {
            for c in v["checks"].as_array().into_iter().flatten() {
                let mark = if c["ok"] == true { "ok  " } else { "FAIL" };
                println!("{mark} {:<12} {}", s(&c["check"]), s(&c["detail"]));
            }
        }
        "requests" | "blocked" => {
            for r in v.as_array().into_iter().flatten() {
                println!("{}  {}", s(&r["peer_id"]), s(&r["name"]));
            }
        }
        "invite" | "accept" => println!(
            "{} ({}) → {}",
            s(&v["alias"]),
            s(&v["peer_id"]),
            s(&v["ip"])
        ),
        _ => println!("ok"),
    }
}

/// rpcd's `call`: the arguments on stdin (bounded), the request built from the declared
/// parameters only, the daemon's raw reply.
fn rpcd_call(args: &cli::Args, method: &str) -> Result<String, String> {
    use std::io::Read;
    let mut input = String::new();
    std::io::stdin()
        .take(64 * 1024)
        .read_to_string(&mut input)
        .map_err(|e| format!("reading the arguments: {e}"))?;
    let req = awl::app::methods::rpcd_request(method, &input)?;
    if req["cmd"] == "health" {
        return Ok(serde_json::json!({"ok": true, "result": health(args)}).to_string());
    }
    let r = resolve(args)?;
    let socket = socket_for(args, &r);
    runtime()?
        .block_on(awl::app::control::call_raw(&socket, &req.to_string()))
        .map_err(|e| e.to_string())
}

/// `awl ping ADDR`: a throwaway identity dials, identifies and pings a peer.
async fn ping(addr: awl::p2p::multiaddr::Multiaddr, json: bool) -> Result<(), String> {
    use awl::p2p::{Host, HostConfig};
    let host = Host::start(
        identity::Keypair::generate(),
        HostConfig::new("0.0.0.0:0".parse().map_err(|_| "addr")?),
    )
    .await
    .map_err(|e| e.to_string())?;
    let peer = host.dial(&addr).await.map_err(|e| e.to_string())?;
    let info = host.identify(&peer).await.map_err(|e| e.to_string())?;
    let mut rtts = Vec::new();
    for _ in 0..3 {
        rtts.push(
            host.ping(&peer)
                .await
                .map_err(|e| e.to_string())?
                .as_secs_f64()
                * 1e3,
        );
    }
    host.shutdown();
    if json {
        let v = serde_json::json!({
            "peer_id": peer.to_string(),
            "agent_version": info.agent_version,
            "protocol_version": info.protocol_version,
            "protocols": info.protocols,
            "listen_addrs": info.listen_addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            "observed_addr": info.observed_addr.map(|a| a.to_string()),
            "rtt_ms": rtts,
        });
        println!("{v}");
    } else {
        println!(
            "peer      {peer}\nagent     {}\nprotocols {}",
            info.agent_version,
            info.protocols.join(" ")
        );
        for a in &info.listen_addrs {
            println!("listen    {a}");
        }
        println!(
            "rtt       {}",
            rtts.iter()
                .map(|r| format!("{r:.2} ms"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    // Say goodbye (CONNECTION_CLOSE) instead of leaving the peer to time the connection out.
    host.close().await;
    Ok(())
}

//! The `awl` binary as a user runs it: moving from AWL, and health without a daemon.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/config_awl.json"
);
const SELF: &str = "12D3KooWLNs9wLoh5UKLaR2z3NhkNBxZ2Rv8DxDpVgNe1ydfdtAh";
const LAPTOP: &str = "12D3KooWT3AGk19Cm96RTyzoThyiLPcJBdmktfaX1scnn6JEaUMG";

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("awl-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A config file whose data directory and control socket are inside `dir`.
fn config(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("awl.uci");
    std::fs::write(
        &path,
        format!(
            "# the router's own comment\nconfig awl 'main'\n\toption data_dir '{0}/data'\n\toption control_socket '{0}/data/awl.sock'\n{extra}",
            dir.display()
        ),
    )
    .unwrap();
    path
}

fn awl(dir: &Path, args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_awl"))
        .args(args)
        .env("AWL_DATA_DIR", dir.join("data"))
        .env("HOME", dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn import_awl_config() {
    let dir = scratch("import");
    let cfg = config(&dir, "");
    let c = cfg.to_str().unwrap();
    let before = std::fs::read_to_string(&cfg).unwrap();

    // Dry run: the new file on stdout, the summary on stderr, nothing written.
    let out = awl(&dir, &["-c", c, "config", "import-awl", FIXTURE], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let uci = text(&out.stdout);
    assert!(uci.starts_with("# the router's own comment\n"), "{uci}");
    assert!(uci.contains(&format!("config peer 'peer_{LAPTOP}'\n\toption peer_id '{LAPTOP}'\n\toption alias 'Work Laptop'\n\toption ip '10.66.0.2'\n\toption allow_exit '1'\n")), "{uci}");
    assert!(text(&out.stderr).contains("nothing written"));
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), before);
    assert!(!dir.join("data").exists());

    // A running daemon (something answers on its control socket): refused.
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let listener = std::os::unix::net::UnixListener::bind(dir.join("data/awl.sock")).unwrap();
    let out = awl(
        &dir,
        &["-c", c, "config", "import-awl", FIXTURE, "--write"],
        "",
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("the daemon is running"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), before);
    drop(listener);
    std::fs::remove_file(dir.join("data/awl.sock")).unwrap();

    // Written: the file checks, the identity is AWL's, the state keeps who confirmed.
    let out = awl(
        &dir,
        &["-c", c, "config", "import-awl", FIXTURE, "--write"],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("and the identity"),
        "{}",
        text(&out.stdout)
    );
    let out = awl(&dir, &["config", "check", c, "--json"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("\"peers\":4"),
        "{}",
        text(&out.stdout)
    );
    let out = awl(&dir, &["-c", c, "id"], "");
    assert_eq!(text(&out.stdout).trim(), SELF);
    assert!(dir.join("data/state").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn health_without_a_daemon() {
    let dir = scratch("health");
    let cfg = config(&dir, "");
    let c = cfg.to_str().unwrap();
    let out = awl(&dir, &["-c", c, "health", "--json"], "");
    assert!(!out.status.success(), "unhealthy: exit 1");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["checks"][0]["check"], "config");
    assert_eq!(v["checks"][0]["ok"], true);
    assert_eq!(v["checks"][1]["check"], "daemon");
    assert!(v["checks"][1]["detail"]
        .as_str()
        .unwrap()
        .starts_with("not running"));

    // A broken file: its line, through LuCI's rpcd backend too.
    let cfg = config(&dir, "\toption mtu 'abc'\n");
    let c = cfg.to_str().unwrap();
    let sock = dir.join("data/awl.sock");
    let s = sock.to_str().unwrap();
    let out = awl(&dir, &["-c", c, "-s", s, "rpcd", "call", "health"], "{}");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["ok"], true,
        "the call worked; the result says what is wrong"
    );
    let check = &v["result"]["checks"][0];
    assert_eq!(check["check"], "config");
    assert_eq!(check["ok"], false);
    assert!(
        check["detail"]
            .as_str()
            .unwrap()
            .contains("line 5: option 'mtu' = 'abc'"),
        "{check}"
    );
    let out = awl(&dir, &["-c", c, "-s", s, "health"], "");
    assert!(!out.status.success());
    let human = text(&out.stdout);
    assert!(
        human.contains("FAIL config") && human.contains("FAIL daemon"),
        "{human}"
    );

    // A daemon still running what it loaded before the file broke is asked: its socket is
    // found where the broken file says.
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let daemon = std::thread::spawn(move || {
        use std::io::{BufRead, Write};
        let (mut conn, _) = listener.accept().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(&conn).read_line(&mut line).unwrap();
        assert!(line.contains("health"), "{line}");
        let reply =
            r#"{"ok":true,"result":{"ok":true,"checks":[{"check":"fake","ok":true,"detail":""}]}}"#;
        conn.write_all(format!("{reply}\n").as_bytes()).unwrap();
    });
    let out = awl(&dir, &["-c", c, "health", "--json"], "");
    daemon.join().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("fake"), "{}", text(&out.stdout));
    let _ = std::fs::remove_dir_all(&dir);
}

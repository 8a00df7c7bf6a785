use super::value::validate;
use super::*;

const ID_A: &str = "12D3KooWRawPbxPtP1eZaJpumGnyWX2DcUyd3RQnydr3eAto4Az7";
const ID_B: &str = "12D3KooWGRjpNYgFssihdgTDnr5rdhdh9ruMTbeT41h1fXfGmatZ";

fn ok(text: &str) -> Loaded {
    match parse(text, "test") {
        Ok(l) => l,
        Err(e) => panic!("{e}"),
    }
}

fn bad(text: &str) -> ConfigError {
    parse(text, "/etc/config/awl").err().expect("should fail")
}

#[test]
fn defaults_parse() {
    for o in OPTIONS.iter().filter(|o| !o.default.is_empty()) {
        assert!(
            validate(o, o.default).is_ok(),
            "default of {} is invalid",
            o.name
        );
    }
    let c = Config::default();
    assert_eq!(c.main.listen_port, 4363);
    assert_eq!(c.main.address, Ipv4Addr::new(10, 66, 0, 1));
    assert_eq!(c.main.prefix, 16);
    assert_eq!(c.main.mtu, 3500);
    assert!(c.main.enabled);
    assert_eq!(c.main.interface, "awl0");
    assert_eq!(c, ok("").config);
}

#[test]
fn full_config_round_trip() {
    let text = format!(
        "# awl\nconfig awl 'main'\n\toption name 'my router'\n\toption listen_port '5000'\n\toption mtu 1420\n\toption address '10.70.0.1/24'\n\tlist bootstrap '/ip4/192.0.2.1/udp/4363/quic-v1/p2p/{ID_B}'\n\toption use_default_bootstrap 'no'\n\toption log_level 'debug'\n\toption auto_accept '1'\n\nconfig peer 'laptop'\n\toption peer_id '{ID_A}'\n\toption ip '10.70.0.9'\n\toption allow_exit 'on'\n\tlist address '/ip4/192.0.2.7/udp/4363/quic-v1'\n\tlist address '/ip6/2001:db8::7/udp/4363/quic-v1'\n\nconfig peer\n\toption peer_id '{ID_B}'\n\toption alias 'Work PC'\n"
    );
    let l = ok(&text);
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    let m = &l.config.main;
    assert_eq!(
        (m.name.as_str(), m.listen_port, m.mtu, m.prefix),
        ("my router", 5000, 1420, 24)
    );
    assert!(!m.use_default_bootstrap && m.auto_accept);
    assert_eq!(m.log_level, log::LevelFilter::Debug);
    assert_eq!(l.config.bootstrap_peers().len(), 1);
    let p = &l.config.peers;
    assert_eq!(p.len(), 2);
    assert_eq!(p[0].alias, "laptop");
    assert_eq!(p[0].ip, Some(Ipv4Addr::new(10, 70, 0, 9)));
    assert!(p[0].allow_exit);
    assert_eq!(p[0].address.len(), 2);
    assert_eq!(p[1].alias, "Work PC");
    assert_eq!(p[1].domain, "work_pc");
    assert_eq!(p[1].line, 19);
}

#[test]
fn bad_values_name_line_and_option() {
    let e = bad("config awl 'main'\n\toption name x\n\toption mtu 'abc'\n");
    assert_eq!(
        e.to_string(),
        "/etc/config/awl: line 3: option 'mtu' = 'abc': expected an integer 576..9000"
    );
    assert_eq!(bad("config awl 'main'\n\toption mtu '100'\n").line, Some(2));
    assert_eq!(
        bad("config awl 'main'\n\toption listen_port '70000'\n").line,
        Some(2)
    );
    assert_eq!(
        bad("config awl 'main'\n\toption address '10.66.0.1'\n").line,
        Some(2)
    );
    assert_eq!(
        bad("config awl 'main'\n\toption address '10.66.0.1/31'\n").line,
        Some(2)
    );
    assert_eq!(
        bad("config awl 'main'\n\toption address '10.66.0.0/16'\n").line,
        Some(2)
    );
    assert_eq!(
        bad("config awl 'main'\n\toption enabled 'maybe'\n").line,
        Some(2)
    );
    assert_eq!(
        bad("config awl 'main'\n\toption log_level 'loud'\n").line,
        Some(2)
    );
    assert_eq!(
        bad("config awl 'main'\n\toption interface 'a/b'\n").line,
        Some(2)
    );
    assert_eq!(
        bad("config awl 'main'\n\tlist bootstrap 'not-a-multiaddr'\n").line,
        Some(2)
    );
    assert_eq!(bad("config awl 'main'\n\tlist mtu '1400'\n").line, Some(2));
    assert_eq!(
        bad("config awl 'main'\n\toption data_dir 'relative'\n").line,
        Some(2)
    );
    assert_eq!(bad("config awl 'main'\n\toption mtu '1400\n").line, Some(2));
}

#[test]
fn peer_sections_are_checked() {
    assert_eq!(bad("config peer\n\toption alias 'x'\n").line, Some(1));
    assert_eq!(bad("config peer\n\toption peer_id 'hello'\n").line, Some(2));
    let twice =
        format!("config peer\n\toption peer_id '{ID_A}'\nconfig peer\n\toption peer_id '{ID_A}'\n");
    assert_eq!(bad(&twice).line, Some(4));
    let alias = format!("config peer\n\toption peer_id '{ID_A}'\n\toption alias 'x'\nconfig peer\n\toption peer_id '{ID_B}'\n\toption alias 'x'\n");
    assert!(bad(&alias).message().contains("line 1"));
    let ip = format!("config peer\n\toption peer_id '{ID_A}'\n\toption ip '10.67.0.2'\n");
    assert_eq!(bad(&ip).line, Some(3));
    let own = format!("config peer\n\toption peer_id '{ID_A}'\n\toption ip '10.66.0.1'\n");
    assert!(bad(&own).message().contains("own address"));
    let svc = format!("config peer\n\toption peer_id '{ID_A}'\n\toption ip '10.66.255.254'\n");
    assert!(
        bad(&svc).message().contains("service address"),
        "{}",
        bad(&svc).message()
    );
    let bcast = format!("config peer\n\toption peer_id '{ID_A}'\n\toption ip '10.66.255.255'\n");
    assert_eq!(bad(&bcast).line, Some(3));
    let dup_ip = format!("config peer\n\toption peer_id '{ID_A}'\n\toption ip '10.66.0.5'\nconfig peer\n\toption peer_id '{ID_B}'\n\toption ip '10.66.0.5'\n");
    assert_eq!(bad(&dup_ip).line, Some(6));
}

#[test]
fn unknown_things_are_warnings() {
    let l =
        ok("config awl 'main'\n\toption future_option '1'\nconfig widget 'w'\n\toption x 'y'\n");
    assert_eq!(l.warnings.len(), 2, "{:?}", l.warnings);
    assert!(l.warnings[0].contains("line 2"));
    assert!(l.warnings[1].contains("line 3"));
}

#[test]
fn add_and_remove_peer_keep_comments() {
    let base = "# my comment\nconfig awl 'main'\n\toption name 'r' # inline\n";
    let p = PeerConfig {
        section: None,
        line: 0,
        peer_id: ID_A.parse().unwrap(),
        alias: "it's me".into(),
        ip: Some(Ipv4Addr::new(10, 66, 0, 2)),
        allow_exit: true,
        address: vec!["/ip4/192.0.2.7/udp/4363/quic-v1".into()],
        domain: "x".into(),
        allow_lan: false,
        accept_routes: true,
        accept_route: vec![],
    };
    let with = add_peer_section(base, &p);
    assert!(with.starts_with(base.trim_end()));
    let l = ok(&with);
    assert_eq!(l.config.peers.len(), 1);
    assert_eq!(l.config.peers[0].alias, "it's me");
    assert!(l.config.peers[0].allow_exit);
    let mut q = p.clone();
    q.peer_id = ID_B.parse().unwrap();
    q.alias = "b".into();
    q.ip = None;
    let both = add_peer_section(&with, &q);
    let removed = remove_peer_section(&both, &p.peer_id);
    let l = ok(&removed);
    assert_eq!(l.config.peers.len(), 1);
    assert_eq!(l.config.peers[0].alias, "b");
    assert!(removed.contains("# my comment") && removed.contains("# inline"));
    assert_eq!(remove_peer_section(&removed, &p.peer_id), removed);
}

#[test]
fn daemon_writes_named_sections_and_replaces_in_place() {
    let base = "config awl 'main'\n\n# Bob's box\nconfig peer\n\toption peer_id '".to_string()
        + ID_A
        + "'\n\toption alias 'bob' # mine\n\n# user section\nconfig peer 'carol'\n\toption peer_id '"
        + ID_B
        + "'\n";
    let a: PeerId = ID_A.parse().unwrap();
    let mut p = ok(&base).config.peers[0].clone();
    p.allow_lan = true;
    let out = upsert_peer_section(&base, &p);
    let l = ok(&out);
    // Same order, A is now named after its ID, B's section and the comments are untouched.
    assert_eq!(l.config.peers[0].peer_id, a);
    assert_eq!(
        l.config.peers[0].section.as_deref(),
        Some(peer_section_name(&a).as_str())
    );
    assert!(l.config.peers[0].allow_lan);
    assert_eq!(l.config.peers[1].section.as_deref(), Some("carol"));
    assert!(out.contains("# Bob's box\nconfig peer 'peer_12D3"));
    assert!(
        out.contains("\n\n# user section\nconfig peer 'carol'\n"),
        "{out}"
    );
    // A user-named section keeps its name.
    let mut q = l.config.peers[1].clone();
    q.alias = "carol2".into();
    let out2 = upsert_peer_section(&out, &q);
    assert_eq!(ok(&out2).config.peers[1].section.as_deref(), Some("carol"));
    assert_eq!(ok(&out2).config.peers[1].alias, "carol2");
    // A new peer is appended, named.
    let fresh = "config awl 'main'\n";
    let added = upsert_peer_section(fresh, &p);
    assert!(added.contains(&format!("config peer '{}'", peer_section_name(&a))));
}

#[test]
fn anonymous_peer_sections_get_stable_names_once() {
    let text = format!("# top\nconfig awl 'main'\n\nconfig peer\n\toption peer_id '{ID_A}' # a\n\nconfig peer 'b'\n\toption peer_id '{ID_B}'\n");
    let named = name_peer_sections(&text);
    let a: PeerId = ID_A.parse().unwrap();
    assert_eq!(
        named,
        text.replace(
            "config peer\n",
            &format!("config peer '{}'\n", peer_section_name(&a))
        )
    );
    assert_eq!(
        name_peer_sections(&named),
        named,
        "already named: unchanged"
    );
    assert_eq!(ok(&named).config.peers.len(), 2);
}

#[test]
fn routes_are_accepted_only_when_asked_for() {
    let l = ok(&format!("config peer\n\toption peer_id '{ID_A}'\n"));
    assert!(
        !l.config.peers[0].accept_routes,
        "accept_routes defaults to off"
    );
    let l = ok(&format!("config peer\n\toption peer_id '{ID_A}'\n\toption accept_routes '1'\n\tlist accept_route '203.0.113.0/24'\n"));
    assert!(l.config.peers[0].accept_routes);
    assert_eq!(
        l.config.peers[0].accept_route,
        vec!["203.0.113.0/24".parse().unwrap()]
    );
    assert_eq!(
        bad(&format!(
            "config peer\n\toption peer_id '{ID_A}'\n\tlist accept_route '203.0.113.1/24'\n"
        ))
        .line,
        Some(3)
    );
}

#[test]
fn hostile_aliases_give_valid_domains() {
    let id: PeerId = ID_A.parse().unwrap();
    assert_eq!(domain_label("My Laptop", &id), "my_laptop");
    assert_eq!(
        domain_label("<img src=x onerror=alert(1)>", &id),
        "img_srcx_onerroralert1"
    );
    assert_eq!(
        domain_label("---", &id),
        format!("peer-{}", &ID_A[ID_A.len() - 6..]).to_lowercase()
    );
    assert_eq!(domain_label(&"a".repeat(200), &id).len(), 63);
    let l = ok(&format!(
        "config peer\n\toption peer_id '{ID_A}'\n\toption alias 'x.y;\"<b>'\n"
    ));
    assert_eq!(l.config.peers[0].domain, "xyb");
}

#[test]
fn atomic_write_keeps_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("awl-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("awl");
    write_atomic(&f, "a\n").unwrap();
    assert_eq!(
        std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
        0o644
    );
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    write_atomic(&f, "b\n").unwrap();
    let link = dir.join("link");
    std::os::unix::fs::symlink(&f, &link).unwrap();
    write_atomic(&link, "c\n").unwrap();
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "c\n");
    assert_eq!(
        std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
        0o600
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn shipped_configs_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        if let Err(err) = load(&path) {
            panic!("{err}");
        }
        n += 1;
    }
    assert!(n >= 3, "expected example configs in {}", dir.display());
}

#[test]
fn docs_describe_every_option_with_its_default() {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/CONFIG.md"))
        .unwrap();
    for o in OPTIONS {
        let row = doc
            .lines()
            .find(|l| l.starts_with(&format!("| `{}` ", o.name)));
        let Some(row) = row else {
            panic!("docs/CONFIG.md lacks a row for '{}'", o.name)
        };
        if !o.default.is_empty() {
            assert!(
                row.contains(&format!("`{}`", o.default)),
                "docs/CONFIG.md: default of '{}' should be `{}`",
                o.name,
                o.default
            );
        }
    }
}

#[test]
fn schema_lists_every_option() {
    let s = schema();
    let main = s["sections"]["awl"]["options"].as_array().unwrap();
    let mtu = main.iter().find(|o| o["name"] == "mtu").unwrap();
    assert_eq!(
        (mtu["min"].as_i64(), mtu["max"].as_i64()),
        (Some(576), Some(9000))
    );
    let total = main.len() + s["sections"]["peer"]["options"].as_array().unwrap().len();
    assert_eq!(total, OPTIONS.len());
}

#[test]
fn main_options_are_set_in_place() {
    let base = "# top\nconfig awl 'main'\n\toption name 'r' # keep me\n\toption mtu '1420'\n\n# peers\nconfig peer 'x'\n\toption peer_id '".to_string()
        + ID_A
        + "'\n";
    let out = set_main_option(&base, "name", "it's new");
    assert!(
        out.contains("\toption name 'it'\\''s new' # keep me\n"),
        "{out}"
    );
    let out = set_main_option(&out, "listen_port", "5001");
    assert!(
        out.contains("\toption mtu '1420'\n\toption listen_port '5001'\n\n# peers\n"),
        "{out}"
    );
    let out = add_main_list(
        &out,
        "bootstrap",
        "/ip4/192.0.2.1/udp/1/quic-v1/p2p/12D3KooWRawPbxPtP1eZaJpumGnyWX2DcUyd3RQnydr3eAto4Az7",
    );
    assert_eq!(
        add_main_list(
            &out,
            "bootstrap",
            "/ip4/192.0.2.1/udp/1/quic-v1/p2p/12D3KooWRawPbxPtP1eZaJpumGnyWX2DcUyd3RQnydr3eAto4Az7"
        ),
        out
    );
    let l = ok(&out);
    assert_eq!(l.config.main.name, "it's new");
    assert_eq!(l.config.main.listen_port, 5001);
    assert_eq!(l.config.main.mtu, 1420);
    assert_eq!(l.config.main.bootstrap.len(), 1);
    assert_eq!(l.config.peers.len(), 1);
    assert!(out.starts_with("# top\n") && out.ends_with(&format!("option peer_id '{ID_A}'\n")));
    // No node section: one is added at the top.
    let out = set_main_option(
        &format!("config peer\n\toption peer_id '{ID_A}'\n"),
        "listen_port",
        "7",
    );
    assert!(
        out.starts_with("config awl 'main'\n\toption listen_port '7'\n\nconfig peer\n"),
        "{out}"
    );
    assert_eq!(ok(&out).config.main.listen_port, 7);
    assert_eq!(
        set_main_option("", "name", "n"),
        "config awl 'main'\n\toption name 'n'\n"
    );
}

#[test]
fn a_domain_the_alias_would_not_give_is_written() {
    let p = PeerConfig {
        section: None,
        line: 0,
        peer_id: ID_A.parse().unwrap(),
        alias: "Work Laptop".into(),
        ip: None,
        allow_exit: false,
        address: vec![],
        domain: "work_laptop".into(),
        allow_lan: false,
        accept_routes: false,
        accept_route: vec![],
    };
    let out = upsert_peer_section("config awl 'main'\n", &p);
    assert!(!out.contains("option domain"), "derived: {out}");
    let q = PeerConfig {
        domain: "laptop".into(),
        ..p
    };
    let out = upsert_peer_section("config awl 'main'\n", &q);
    assert!(out.contains("\toption domain 'laptop'\n"), "{out}");
    assert_eq!(ok(&out).config.peers[0].domain, "laptop");
}

#[test]
fn a_broken_file_still_tells_where_the_socket_is() {
    let text = "config awl 'main'\n\toption mtu 'abc'\n\toption control_socket '/run/x.sock'\nconfig peer\n\toption control_socket '/nope'\n";
    assert!(parse(text, "t").is_err());
    assert_eq!(
        peek_main_option(text, "control_socket").as_deref(),
        Some("/run/x.sock")
    );
    assert_eq!(peek_main_option(text, "data_dir"), None);
    assert_eq!(
        peek_main_option("config awl 'main\n", "mtu"),
        None,
        "unreadable syntax"
    );
}

use super::*;
use crate::mesh::peers::{PeerTable, Relation};
use serde_json::Value;

/// config_awl.json as AWL v0.18 writes it (json.MarshalIndent of config.Config, 2-space
/// indent, map keys sorted, no trailing newline), with a pending invite, a declined peer, an
/// exit grant, a hostile name and domain, and a blocked peer.
const FIXTURE: &str = include_str!("../../../tests/fixtures/config_awl.json");
const SELF: &str = "12D3KooWLNs9wLoh5UKLaR2z3NhkNBxZ2Rv8DxDpVgNe1ydfdtAh";
const LAPTOP: &str = "12D3KooWT3AGk19Cm96RTyzoThyiLPcJBdmktfaX1scnn6JEaUMG";
const PHONE: &str = "12D3KooWK5BbEnAQNXymHSRximEs39B6LKLfppde9oiKgf5ipXvD";
const OLDPC: &str = "12D3KooWDvpcCiNK55nW64kFB68v9PFTdMMxfppKBivctXXp5jn1";
const EVIL: &str = "12D3KooWE9T5pA6hye7vQBzibo3LfSaJ6gp3UaNHAqNDDmgeuuTh";
const BLOCKED: &str = "12D3KooWEazoEQsJA5rmEPdEaY8BCybTncno4heQwsRcmJYZsJDA";
const FRESH: &str = "config awl 'main'\n";

fn id(s: &str) -> PeerId {
    s.parse().unwrap()
}

fn peer<'a>(c: &'a AwlConfig, s: &str) -> &'a AwlPeer {
    c.peers.iter().find(|p| p.peer_id == id(s)).unwrap()
}

fn fixture_with(edit: impl FnOnce(&mut Value)) -> String {
    let mut v: Value = serde_json::from_str(FIXTURE).unwrap();
    edit(&mut v);
    serde_json::to_string_pretty(&v).unwrap()
}

#[test]
fn reads_the_file_awl_v018_writes() {
    let c = parse_awl(FIXTURE).unwrap();
    assert_eq!(c.peer_id, Some(id(SELF)));
    assert_eq!(c.name, "pi-gateway");
    assert_eq!(c.listen_port, 4363, "empty listenAddresses: AWL's 4363");
    assert_eq!(c.ip_net, Some((Ipv4Addr::new(10, 66, 0, 1), 16)));
    assert_eq!(c.reconnect_interval, Some(20));
    assert!(!c.auto_accept && !c.ignore_default_bootstrap && c.bootstrap.is_empty());
    assert_eq!(c.peers.len(), 4);

    let l = peer(&c, LAPTOP);
    assert_eq!(
        (l.alias.as_str(), l.name.as_str(), l.domain.as_str()),
        ("Work Laptop", "work-laptop", "work_laptop")
    );
    assert_eq!(l.ip, Some(Ipv4Addr::new(10, 66, 0, 2)));
    assert!(l.confirmed && !l.declined && l.allow_exit && !l.allowed_exit);
    assert_eq!(
        l.last_seen, 1_796_062_445,
        "2026-11-30T21:14:05.123456789+03:00"
    );

    let p = peer(&c, PHONE);
    assert!(!p.confirmed && !p.declined, "an invite not answered yet");
    assert_eq!(p.last_seen, 0, "Go's zero time");
    assert!(peer(&c, OLDPC).declined);

    let e = peer(&c, EVIL);
    assert!(e.allowed_exit && e.remote_gateway);
    for s in [&e.name, &e.alias] {
        assert!(s.chars().count() <= 64, "{s}");
        assert!(
            !s.chars().any(|c| c.is_control() || c == '\u{202e}'),
            "{s:?}"
        );
        assert!(s.starts_with("Free VPN <script>"), "{s}");
    }
    assert_eq!(e.ip, Some(Ipv4Addr::new(10, 67, 0, 9)));

    assert_eq!(
        c.blocked,
        vec![AwlBlocked {
            peer_id: id(BLOCKED),
            name: "spammer".into(),
            since: 1_791_627_010,
        }]
    );
    assert!(
        c.notes.iter().any(|n| n.contains("socks5_exit")),
        "{:?}",
        c.notes
    );
}

#[test]
fn go_times() {
    assert_eq!(unix_time("1970-01-01T00:00:01Z"), 1);
    assert_eq!(unix_time("2000-03-01T00:00:00Z"), 951_868_800);
    assert_eq!(
        unix_time("2026-11-30T21:14:05.123456789+03:00"),
        1_796_062_445
    );
    assert_eq!(unix_time("2026-11-30T18:14:05-00:00"), 1_796_062_445);
    assert_eq!(unix_time("2026-11-30t18:14:05z"), 1_796_062_445);
    for bad in [
        "0001-01-01T00:00:00Z",
        "",
        "yesterday",
        "2026-13-01T00:00:00Z",
        "2026-11-30T18:14",
        "2026-11-30T18:14:05+3",
        "99999999999999999-01-01T00:00:00Z",
        "2026-11-30T18:14:05+9999999999:00",
        "2026-11-30T18:14:05+99:00",
        "２026-11-30T18:14:05Z",
    ] {
        assert_eq!(unix_time(bad), 0, "{bad}");
    }
}

#[test]
fn keys_match_case_insensitively_as_in_go() {
    let text = format!(
        r#"{{"P2PNODE": {{"PeerID": "{SELF}"}}, "KnownPeers": {{"{LAPTOP}": {{"PeerId": "{LAPTOP}", "Alias": "x", "IPADDR": "10.66.0.9", "Confirmed": true}}}}}}"#
    );
    let c = parse_awl(&text).unwrap();
    assert_eq!(c.peer_id, Some(id(SELF)));
    let l = peer(&c, LAPTOP);
    assert_eq!(
        (l.alias.as_str(), l.ip),
        ("x", Some(Ipv4Addr::new(10, 66, 0, 9)))
    );
    assert!(l.confirmed);
}

#[test]
fn what_is_not_an_awl_config_is_refused() {
    assert!(parse_awl("not json").is_err());
    assert!(parse_awl("[]").is_err());
    assert!(parse_awl(r#"{"foo": 1}"#).is_err());
    assert!(parse_awl(r#"{"knownPeers": []}"#).is_err());
    // Entries without a usable peer ID are skipped, not fatal.
    let c = parse_awl(r#"{"knownPeers": {"nope": {"alias": "x"}}, "blockedPeers": {"bad": {}}}"#)
        .unwrap();
    assert!(c.peers.is_empty() && c.blocked.is_empty());
    assert_eq!(c.notes.len(), 2, "{:?}", c.notes);
    // Ourselves in knownPeers is skipped.
    let own = fixture_with(|v| {
        v["knownPeers"][SELF] = serde_json::json!({"peerId": SELF, "alias": "me"});
    });
    assert_eq!(parse_awl(&own).unwrap().peers.len(), 4);
}

#[test]
fn plan_into_a_fresh_config_keeps_the_mesh() {
    let c = parse_awl(FIXTURE).unwrap();
    let plan = plan(&c, FRESH, "awl", &SavedState::default()).unwrap();
    let l = config::parse(&plan.text, "awl").unwrap().config;
    assert_eq!(l.main.name, "pi-gateway");
    assert_eq!(l.main.listen_port, 4363);
    assert_eq!(l.peers.len(), 4);
    let uci = |s: &str| l.peers.iter().find(|p| p.peer_id == id(s)).unwrap();

    let lp = uci(LAPTOP);
    assert_eq!(
        lp.section.as_deref(),
        Some(config::peer_section_name(&id(LAPTOP)).as_str())
    );
    assert_eq!(lp.alias, "Work Laptop");
    assert_eq!(lp.ip, Some(Ipv4Addr::new(10, 66, 0, 2)));
    assert_eq!(lp.domain, "work_laptop");
    assert!(lp.allow_exit && !lp.allow_lan && !lp.accept_routes);
    assert!(
        !plan.text.contains("option domain 'work_laptop'"),
        "derived, not written"
    );

    let ev = uci(EVIL);
    assert_eq!(
        ev.ip,
        Some(Ipv4Addr::new(10, 66, 0, 5)),
        "10.67.0.9 is outside 10.66.0.0/16: the next free one, written"
    );
    assert!(
        plan.notes
            .iter()
            .any(|n| n
                .contains("10.67.0.9 is taken or outside the mesh 10.66.0.1/16; 10.66.0.5 used")),
        "{:?}",
        plan.notes
    );
    assert!(ev
        .domain
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert!(ev.domain.starts_with("free_vpn_script"), "{}", ev.domain);
    assert!(!plan
        .text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t'));

    // The state keeps who confirmed, who declined, and the blocked peer.
    let s = &plan.state;
    assert!(s.peers[LAPTOP].confirmed && !s.peers[LAPTOP].declined);
    assert_eq!(s.peers[LAPTOP].ip, Some([10, 66, 0, 2]));
    assert_eq!(s.peers[LAPTOP].name, "work-laptop");
    assert!(!s.peers[PHONE].confirmed);
    assert!(s.peers[OLDPC].declined);
    assert!(s.peers[EVIL].allowed_exit && s.peers[EVIL].remote_gateway);
    assert_eq!(s.blocked[BLOCKED].name, "spammer");
    assert_eq!(plan.blocked, 1);
    assert_eq!(plan.added.len(), 4);

    // What the daemon loads from the two: the same mesh.
    let mut t = PeerTable::new(id(SELF), l.main.address, l.main.prefix, 64);
    t.load(&l.peers, &plan.state);
    let k = t.get(&id(LAPTOP)).unwrap();
    assert!(k.confirmed && k.allow_exit);
    assert_eq!(k.ip, Ipv4Addr::new(10, 66, 0, 2));
    assert!(t.get(&id(OLDPC)).unwrap().declined);
    assert!(!t.get(&id(PHONE)).unwrap().confirmed);
    assert_eq!(t.get(&id(EVIL)).unwrap().ip, Ipv4Addr::new(10, 66, 0, 5));
    assert_eq!(plan.state.peers[EVIL].ip, Some([10, 66, 0, 5]));
    assert_eq!(t.relation(&id(BLOCKED)), Relation::Blocked);
}

#[test]
fn plan_keeps_what_the_file_has() {
    let other = "12D3KooWRawPbxPtP1eZaJpumGnyWX2DcUyd3RQnydr3eAto4Az7";
    let uci = format!(
        "# my router\nconfig awl 'main'\n\toption name 'pi-gateway' # as on AWL\n\toption listen_port '4363'\n\n\
         # the laptop, set up by hand\nconfig peer 'laptop'\n\toption peer_id '{LAPTOP}'\n\toption alias 'mine'\n\toption allow_lan '1'\n\n\
         config peer\n\toption peer_id '{other}'\n\toption alias 'phone'\n\toption ip '10.66.0.3'\n"
    );
    let mut state = SavedState::default();
    state.peers.insert(
        LAPTOP.into(),
        SavedPeer {
            name: "known already".into(),
            confirmed: false,
            ..Default::default()
        },
    );
    let c = parse_awl(FIXTURE).unwrap();
    let plan = plan(&c, &uci, "awl", &state).unwrap();
    assert!(plan.options.is_empty(), "{:?}", plan.options);
    assert!(
        plan.text.starts_with(&uci),
        "existing text untouched:\n{}",
        plan.text
    );
    assert_eq!(plan.kept, vec![id(LAPTOP)]);
    assert_eq!(
        plan.state.peers[LAPTOP].name, "known already",
        "the daemon's own state wins"
    );
    let l = config::parse(&plan.text, "awl").unwrap().config;
    let phone = l.peers.iter().find(|p| p.peer_id == id(PHONE)).unwrap();
    assert_eq!(phone.alias, "phone_0", "AWL's rule for a taken alias");
    assert_eq!(
        phone.ip,
        Some(Ipv4Addr::new(10, 66, 0, 7)),
        "10.66.0.3 is taken: after the highest in use (old-pc .4, then the laptop and the hostile peer)"
    );
    assert!(plan.notes.iter().any(|n| n.contains("'phone_0'")));
    assert!(plan.notes.iter().any(|n| n.contains("10.66.0.3 is taken")));
}

#[test]
fn node_options_follow_awl() {
    let text = fixture_with(|v| {
        let n = &mut v["p2pNode"];
        n["listenAddresses"] = serde_json::json!([
            "/ip4/0.0.0.0/tcp/5000",
            "/ip4/0.0.0.0/udp/5001/quic-v1",
            "/ip6/::/udp/5001/quic-v1"
        ]);
        n["ignoreDefaultBootstrapPeers"] = true.into();
        n["autoAcceptAuthRequests"] = true.into();
        n["reconnectionIntervalSec"] = 30.into();
        n["bootstrapPeers"] = serde_json::json!([
            format!("/ip4/192.0.2.9/udp/6150/quic-v1/p2p/{OLDPC}"),
            "/ip4/192.0.2.9/udp/6150/quic-v1",
            "garbage"
        ]);
        v["vpn"]["ipNet"] = "10.77.0.1/24".into();
    });
    for bad in [
        "10.66.0.0/16",
        "10.66.255.255/16",
        "10.66.0.1/31",
        "fd00::1/64",
        "x",
    ] {
        let t = fixture_with(|v| v["vpn"]["ipNet"] = bad.into());
        let c = parse_awl(&t).unwrap();
        assert_eq!(c.ip_net, None, "{bad}");
        assert!(c.notes.iter().any(|n| n.contains("vpn.ipNet")), "{bad}");
        assert!(plan(&c, FRESH, "awl", &SavedState::default()).is_ok());
    }
    let c = parse_awl(&text).unwrap();
    let off = plan(
        &c,
        "config awl 'main'\n\toption enabled '0'\n",
        "awl",
        &SavedState::default(),
    )
    .unwrap();
    assert!(
        off.notes.iter().any(|n| n.contains("'enabled' is 0")),
        "{:?}",
        off.notes
    );
    assert_eq!(c.listen_port, 5001, "the first QUIC address");
    assert_eq!(c.bootstrap.len(), 1);
    let plan = plan(&c, FRESH, "awl", &SavedState::default()).unwrap();
    let m = config::parse(&plan.text, "awl").unwrap().config;
    assert_eq!(m.main.listen_port, 5001);
    assert_eq!(
        (m.main.address, m.main.prefix),
        (Ipv4Addr::new(10, 77, 0, 1), 24)
    );
    assert!(m.main.auto_accept && !m.main.use_default_bootstrap);
    assert_eq!(m.main.reconnect_interval, 30);
    assert_eq!(m.main.bootstrap, c.bootstrap);
    // The peers' 10.66 addresses are outside the new mesh: allocated in it instead.
    let mut ips: Vec<Ipv4Addr> = m.peers.iter().map(|p| p.ip.unwrap()).collect();
    ips.sort();
    assert_eq!(
        ips,
        (2..=5)
            .map(|i| Ipv4Addr::new(10, 77, 0, i))
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_failed_plan_says_why() {
    let c = parse_awl(FIXTURE).unwrap();
    let e = plan(
        &c,
        "config awl 'main'\n\toption mtu 'abc'\n",
        "awl",
        &SavedState::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("line 2") && e.contains("fix the configuration first"),
        "{e}"
    );
    let e = plan(
        &c,
        "config awl 'main'\n\toption max_peers '2'\n",
        "awl",
        &SavedState::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("would not load") && e.contains("max_peers"),
        "{e}"
    );
}

/// A scratch directory with a config file and a data directory.
fn scratch(name: &str) -> (PathBuf, Paths) {
    let dir = std::env::temp_dir().join(format!("awl-migrate-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let paths = Paths {
        config: dir.join("awl.uci"),
        data_dir: dir.join("data"),
    };
    (dir, paths)
}

fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                v.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    v.sort();
    v
}

#[test]
fn import_writes_config_state_and_identity() {
    let (dir, paths) = scratch("ok");
    let dry = import(FIXTURE, &paths, false).unwrap();
    assert!(snapshot(&dir).is_empty(), "a dry run writes nothing");
    assert_eq!(dry.plan.added.len(), 4);
    let out = import(FIXTURE, &paths, true).unwrap();
    assert!(out.identity_written);
    let l = config::load(&paths.config).unwrap().config;
    assert_eq!(l.peers.len(), 4);
    let state = crate::mesh::peers::load_state(&paths.data_dir.join("state"));
    assert!(state.peers[LAPTOP].confirmed);
    let (kp, created) = crate::p2p::identity::load_or_create(&paths.data_dir).unwrap();
    assert!(!created);
    assert_eq!(kp.peer_id(), id(SELF));
    // Again: nothing new, nothing lost.
    let before = snapshot(&dir);
    let again = import(FIXTURE, &paths, true).unwrap();
    assert_eq!(again.plan.kept.len(), 4);
    assert!(again.plan.added.is_empty() && !again.identity_written);
    assert_eq!(snapshot(&dir), before);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_failed_import_changes_nothing() {
    let (dir, paths) = scratch("fail");
    // Another identity here: the peers know the AWL one.
    crate::p2p::identity::store(&paths.data_dir, &Keypair::generate()).unwrap();
    std::fs::write(&paths.config, "# mine\nconfig awl 'main'\n").unwrap();
    let before = snapshot(&dir);
    let e = import(FIXTURE, &paths, true).err().unwrap().to_string();
    assert!(e.contains("awl id import"), "{e}");
    assert_eq!(snapshot(&dir), before);

    // The same identity, but the peers don't fit max_peers.
    crate::p2p::identity::store(&paths.data_dir, &Keypair::from_awl_base58(
        "5EpmdMa7AcUe5UMZdSg1UT483iTJ8zfKsKSJBHuHcHtCfcoRyzTfGEaiWgpSRz16UT3EY8NCGMiVnHPvMbwnffj3",
    )
    .unwrap())
    .unwrap();
    std::fs::write(
        &paths.config,
        "# mine\nconfig awl 'main'\n\toption max_peers '3'\n",
    )
    .unwrap();
    let before = snapshot(&dir);
    let e = import(FIXTURE, &paths, true).err().unwrap().to_string();
    assert!(e.contains("max_peers"), "{e}");
    assert_eq!(snapshot(&dir), before);

    // Not AWL's file; a key that is not the peer ID's.
    assert!(import("{}", &paths, true).is_err());
    let wrong = fixture_with(|v| v["p2pNode"]["peerId"] = LAPTOP.into());
    assert!(import(&wrong, &paths, true)
        .err()
        .unwrap()
        .to_string()
        .contains("not the key"));
    assert_eq!(snapshot(&dir), before);

    // A UCI file that can't be replaced (its temp file's name is taken by a directory): the
    // state written first is put back, the identity not written.
    std::fs::remove_file(paths.data_dir.join(crate::p2p::identity::IDENTITY_FILE)).unwrap();
    std::fs::write(&paths.config, "config awl 'main'\n").unwrap();
    let mut old = SavedState::default();
    old.blocked.insert(OLDPC.into(), SavedBlocked::default());
    crate::mesh::peers::save_state(&paths.data_dir.join("state"), &old).unwrap();
    assert!(
        import(FIXTURE, &paths, false).is_ok(),
        "only the write fails"
    );
    std::fs::create_dir_all(dir.join(".awl.uci.awl-tmp").join("x")).unwrap();
    let before = snapshot(&dir);
    let e = import(FIXTURE, &paths, true).err().unwrap().to_string();
    assert!(e.contains("awl.uci: File exists"), "{e}");
    assert_eq!(snapshot(&dir), before);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Damaged files (a byte replaced here and there): never a panic, and an import that is
/// planned always loads. (The fuzz target `awl_import` does this at length.)
#[test]
fn damaged_files_never_panic_and_plans_always_load() {
    let bytes = FIXTURE.as_bytes();
    let mut planned = 0;
    for i in (0..bytes.len()).step_by(11) {
        for b in [b'"', b'{', b'}', b'0', b'x', b'\\', b',', b' '] {
            let mut v = bytes.to_vec();
            v[i] = b;
            let Ok(text) = std::str::from_utf8(&v) else {
                continue;
            };
            let Ok(c) = parse_awl(text) else { continue };
            if let Ok(p) = plan(&c, FRESH, "awl", &SavedState::default()) {
                assert!(config::parse(&p.text, "awl").is_ok(), "{}", p.text);
                planned += 1;
            }
        }
    }
    assert!(planned > 100, "{planned}");
}

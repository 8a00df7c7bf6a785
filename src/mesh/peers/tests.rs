use super::*;
use crate::mesh::messages::StatusInfo;
use crate::p2p::identity::Keypair;

fn table() -> PeerTable {
    PeerTable::new(
        Keypair::generate().peer_id(),
        Ipv4Addr::new(10, 66, 0, 1),
        16,
        8,
    )
}

fn cfg(alias: &str, ip: Option<Ipv4Addr>) -> PeerConfig {
    PeerConfig {
        section: None,
        line: 1,
        peer_id: Keypair::generate().peer_id(),
        alias: alias.into(),
        ip,
        allow_exit: false,
        address: vec![],
        domain: alias.into(),
        allow_lan: false,
        accept_routes: true,
        accept_route: vec![],
    }
}

#[test]
fn ips_are_allocated_as_awl_does() {
    let mut t = table();
    let a = t
        .add(Keypair::generate().peer_id(), Some("a".into()), None, false)
        .unwrap();
    assert_eq!(a.ip, Ipv4Addr::new(10, 66, 0, 2));
    let b = t
        .add(
            Keypair::generate().peer_id(),
            Some("b".into()),
            Some(Ipv4Addr::new(10, 66, 0, 50)),
            false,
        )
        .unwrap();
    assert_eq!(b.ip, Ipv4Addr::new(10, 66, 0, 50));
    let c = t
        .add(Keypair::generate().peer_id(), Some("c".into()), None, false)
        .unwrap();
    assert_eq!(c.ip, Ipv4Addr::new(10, 66, 0, 51));
    assert_eq!(
        t.add(
            Keypair::generate().peer_id(),
            None,
            Some(Ipv4Addr::new(10, 66, 0, 50)),
            false
        )
        .unwrap_err(),
        PeerError::IpTaken(Ipv4Addr::new(10, 66, 0, 50))
    );
    assert!(matches!(
        t.add(
            Keypair::generate().peer_id(),
            None,
            Some(Ipv4Addr::new(10, 67, 0, 5)),
            false
        ),
        Err(PeerError::IpOutsideMesh(_))
    ));
    assert_eq!(t.broadcast(), Ipv4Addr::new(10, 66, 255, 255));
}

#[test]
fn allocation_wraps_to_the_lowest_free_address() {
    let mut t = PeerTable::new(
        Keypair::generate().peer_id(),
        Ipv4Addr::new(10, 0, 0, 1),
        30,
        8,
    );
    // /30: hosts .1 (us) and .2 only.
    assert_eq!(
        t.add(Keypair::generate().peer_id(), None, None, false)
            .unwrap()
            .ip,
        Ipv4Addr::new(10, 0, 0, 2)
    );
    assert_eq!(
        t.add(Keypair::generate().peer_id(), None, None, false)
            .unwrap_err(),
        PeerError::NoFreeIp
    );
}

#[test]
fn friend_flow_and_blocking() {
    let mut t = table();
    let stranger = Keypair::generate().peer_id();
    assert_eq!(t.relation(&stranger), Relation::Unknown);
    t.add_request(stranger.clone(), "laptop".into(), None)
        .unwrap();
    assert!(t.is_pending(&stranger));
    let p = t.add(stranger.clone(), None, None, true).unwrap();
    assert_eq!(
        p.alias, "laptop",
        "alias defaults to the name in the request"
    );
    assert!(!t.is_pending(&stranger));
    assert_eq!(t.relation(&stranger), Relation::Known);
    t.apply_status(
        &stranger,
        &StatusInfo {
            name: "laptop2".into(),
            allow_using_as_exit_node: true,
            ..Default::default()
        },
    );
    let p = t.get(&stranger).unwrap();
    assert!(p.confirmed && p.allowed_exit && p.last_seen > 0);
    assert_eq!(p.name, "laptop2");
    let with_routes = StatusInfo {
        name: "l".into(),
        routes: vec!["192.168.7.0/24".parse().unwrap()],
        ..Default::default()
    };
    t.apply_status(&stranger, &with_routes);
    assert_eq!(t.get(&stranger).unwrap().routes.len(), 1);
    let declined = StatusInfo {
        declined: true,
        ..Default::default()
    };
    t.apply_status(&stranger, &declined);
    assert!(t.get(&stranger).unwrap().declined);
    assert!(
        t.get(&stranger).unwrap().routes.is_empty(),
        "a declining peer's routes are dropped"
    );
    t.remove(&stranger).unwrap();
    assert_eq!(t.relation(&stranger), Relation::Blocked);
    // Adding again (explicit invite) unblocks.
    t.add(stranger.clone(), Some("again".into()), None, false)
        .unwrap();
    assert_eq!(t.relation(&stranger), Relation::Known);
}

#[test]
fn aliases_are_made_unique_and_pending_is_capped() {
    let mut t = PeerTable::new(
        Keypair::generate().peer_id(),
        Ipv4Addr::new(10, 66, 0, 1),
        16,
        64,
    );
    let a = t
        .add(Keypair::generate().peer_id(), Some("x".into()), None, false)
        .unwrap();
    let b = t
        .add(Keypair::generate().peer_id(), Some("x".into()), None, false)
        .unwrap();
    assert_eq!((a.alias.as_str(), b.alias.as_str()), ("x", "x_0"));
    let genuine = Keypair::generate().peer_id();
    t.add_request(
        genuine.clone(),
        "friend".into(),
        Some([192, 0, 2, 1].into()),
    )
    .unwrap();
    // One address with many identities gets a small share.
    let flood: std::net::IpAddr = [198, 51, 100, 7].into();
    let kept = (0..10)
        .filter(|_| {
            t.add_request(Keypair::generate().peer_id(), "spam".into(), Some(flood))
                .is_ok()
        })
        .count();
    assert_eq!(kept, MAX_PENDING_PER_SOURCE);
    // Many addresses fill the table, but never push out the request before the flood.
    for i in 0..MAX_PENDING_REQUESTS as u8 + 5 {
        let _ = t.add_request(
            Keypair::generate().peer_id(),
            "spam".into(),
            Some([203, 0, 113, i].into()),
        );
    }
    assert_eq!(t.pending().count(), MAX_PENDING_REQUESTS);
    assert!(t.is_pending(&genuine), "the genuine request was evicted");
    assert_eq!(
        t.add_request(Keypair::generate().peer_id(), "late".into(), None),
        Err(RequestRefused::Full)
    );
}

#[test]
fn reserved_addresses_are_never_assigned_and_failed_adds_change_nothing() {
    let mut t = table();
    t.reserve(Ipv4Addr::new(10, 66, 255, 254));
    for ip in [
        [10, 66, 255, 255],
        [10, 66, 0, 0],
        [10, 66, 0, 1],
        [10, 66, 255, 254],
    ] {
        let ip = Ipv4Addr::from(ip);
        assert_eq!(
            t.add(Keypair::generate().peer_id(), None, Some(ip), false),
            Err(PeerError::IpReserved(ip))
        );
    }
    // prepare_add does not touch the table: the caller commits after writing UCI.
    let stranger = Keypair::generate().peer_id();
    t.add_request(stranger.clone(), "x".repeat(64), None)
        .unwrap();
    let p = t.prepare_add(&stranger, None, None, true).unwrap();
    assert_eq!(t.relation(&stranger), Relation::Unknown);
    assert!(t.is_pending(&stranger));
    assert!(!p.accept_routes, "routes are opt-in");
    t.commit_add(p);
    assert_eq!(t.relation(&stranger), Relation::Known);
    // A 64-character name taken twice still makes a valid (≤ 64) alias.
    let other = Keypair::generate().peer_id();
    t.add_request(other.clone(), "x".repeat(64), None).unwrap();
    let q = t.add(other, None, None, true).unwrap();
    assert_eq!(q.alias.chars().count(), 64);
    assert!(q.alias.ends_with("_0"));
}

#[test]
fn state_survives_a_reload_and_a_file_round_trip() {
    let mut t = table();
    let peers = vec![
        cfg("fixed", Some(Ipv4Addr::new(10, 66, 0, 9))),
        cfg("dyn", None),
    ];
    t.load(&peers, &SavedState::default());
    let dyn_ip = t.get(&peers[1].peer_id).unwrap().ip;
    assert_eq!(dyn_ip, Ipv4Addr::new(10, 66, 0, 10));
    t.apply_status(
        &peers[0].peer_id,
        &StatusInfo {
            name: "n".into(),
            ..Default::default()
        },
    );
    let blocked = Keypair::generate().peer_id();
    t.block(blocked.clone(), "bad".into());

    let dir = std::env::temp_dir().join(format!("awl-state-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("state");
    save_state(&path, &t.to_saved()).unwrap();
    let saved = load_state(&path);
    let mut t2 = table();
    t2.load(&peers, &saved);
    assert_eq!(
        t2.get(&peers[1].peer_id).unwrap().ip,
        dyn_ip,
        "allocated IPs are stable"
    );
    assert!(t2.get(&peers[0].peer_id).unwrap().confirmed);
    assert_eq!(t2.relation(&blocked), Relation::Blocked);
    std::fs::write(&path, b"\xff\xff garbage").unwrap();
    assert_eq!(load_state(&path), SavedState::default());
    std::fs::remove_dir_all(&dir).unwrap();
}

use super::*;

#[test]
fn tun_failure_names_its_cause() {
    let i = interface(
        None,
        Some("cannot create TUN device awl0: No such file or directory (os error 2)"),
        "awl0",
    );
    assert!(!i.ok);
    assert!(interface(Some("awl0"), None, "awl0").ok);
    let missing = tun_cause("cannot create TUN device awl0: No such file", "awl0", false);
    assert!(
        missing.starts_with("/dev/net/tun missing: install kmod-tun"),
        "{missing}"
    );
    assert!(missing.contains("userspace mode"));
    let perm = tun_cause(
        "cannot create TUN device awl0: Operation not permitted (os error 1)",
        "awl0",
        true,
    );
    assert!(perm.contains("CAP_NET_ADMIN"), "{perm}");
    let busy = tun_cause(
        "cannot create TUN device awl0: Device or resource busy (os error 16)",
        "awl0",
        true,
    );
    assert!(busy.contains("in use by another program"), "{busy}");
    let other = tun_cause("cannot create TUN device awl0: strange", "awl0", true);
    assert!(
        other.starts_with("cannot create TUN device awl0: strange;"),
        "{other}"
    );
}

#[test]
fn listen_fallback_is_reported_with_the_port_in_use() {
    let n = Notes::default();
    n.set_listen(Some(4363), 4363);
    assert_eq!(n.get().listen_fallback, None);
    n.set_listen(Some(0), 51000);
    assert_eq!(n.get().listen_fallback, None, "0 asks for a random port");
    n.set_listen(None, 51000);
    assert_eq!(n.get().listen_fallback, None, "listen_address: no fallback");
    n.set_listen(Some(4363), 51000);
    let c = listen(n.get().listen_fallback, Some(51000));
    assert!(!c.ok);
    assert!(
        c.detail.contains("4363 is in use") && c.detail.contains("random port 51000"),
        "{}",
        c.detail
    );
    let c = listen(None, Some(4363));
    assert!(c.ok && c.detail == "UDP port 4363");
}

#[test]
fn config_reports_the_file_error_and_a_failed_reload() {
    let e = "/etc/config/awl: line 12: option 'mtu' = 'abc': expected an integer 576..9000";
    let c = config(Err(e.into()), Some(e));
    assert!(!c.ok && c.detail.starts_with(e) && c.detail.contains("not applied"));
    let c = config(Ok("/etc/config/awl: OK".into()), Some(e));
    assert!(!c.ok && c.detail.contains("last reload failed") && c.detail.contains("line 12"));
    let c = config(Ok("/etc/config/awl: OK".into()), None);
    assert!(c.ok);
    let n = Notes::default();
    n.set_reload(Err(e.into()));
    assert_eq!(n.get().reload_error.as_deref(), Some(e));
    n.set_reload(Ok(()));
    assert_eq!(n.get().reload_error, None);
}

fn reach() -> Reach {
    Reach {
        warm: true,
        use_relays: true,
        hole_punching: true,
        bootstrap_configured: 9,
        bootstrap_resolved: 5,
        bootstrap_connected: 3,
        relay_candidates: 3,
        reservations: 2,
        direct: 4,
        listen_port: Some(4363),
        ..Default::default()
    }
}

#[test]
fn relay_fails_only_when_a_reservation_is_expected() {
    assert!(relay(&reach()).ok);
    let none = Reach {
        reservations: 0,
        ..reach()
    };
    let c = relay(&none);
    assert!(
        !c.ok && c.detail.contains("no relay reservation"),
        "{}",
        c.detail
    );
    let mut public = none.clone();
    public.public = true;
    assert!(relay(&public).ok, "no reservation needed when public");
    let c = relay(&Reach {
        reservation_error: Some("QmRelay: RESERVATION_REFUSED".into()),
        ..none.clone()
    });
    assert!(c.detail.contains("RESERVATION_REFUSED"), "{}", c.detail);
    let c = relay(&Reach {
        relay_candidates: 0,
        ..none.clone()
    });
    assert!(
        !c.ok && c.detail.contains("offers relaying"),
        "{}",
        c.detail
    );
    let c = relay(&Reach {
        bootstrap_connected: 0,
        relay_candidates: 0,
        ..none.clone()
    });
    assert!(!c.ok && c.detail.contains("no bootstrap peer is connected"));
    assert!(
        relay(&Reach {
            warm: false,
            ..none.clone()
        })
        .ok,
        "warming up"
    );
    assert!(
        relay(&Reach {
            use_relays: false,
            ..none.clone()
        })
        .ok
    );
    assert!(
        relay(&Reach {
            bootstrap_configured: 0,
            ..none
        })
        .ok,
        "no bootstrap list: nothing to reserve on"
    );
}

#[test]
fn udp_heuristic() {
    assert!(udp(&reach()).ok);
    // Nothing answers over UDP although there are addresses to dial.
    let blocked = Reach {
        direct: 0,
        bootstrap_connected: 0,
        relay_candidates: 0,
        reservations: 0,
        ..reach()
    };
    let c = udp(&blocked);
    assert!(
        !c.ok && c.detail.contains("Outgoing UDP is probably blocked"),
        "{}",
        c.detail
    );
    assert!(
        c.detail.contains("no peer answered over TCP either"),
        "{}",
        c.detail
    );
    // UDP blocked but TCP gets through: still a warning, and it says what carries traffic.
    let tcp = udp(&Reach {
        tcp_only: 2,
        ..blocked.clone()
    });
    assert!(!tcp.ok, "{}", tcp.detail);
    assert!(
        tcp.detail.contains("2 peer(s) are reached over TCP"),
        "{}",
        tcp.detail
    );
    assert!(
        udp(&Reach {
            warm: false,
            ..blocked.clone()
        })
        .ok
    );
    // No address to dial (DNS down, or no bootstrap list) and no peer: not tested.
    assert!(
        udp(&Reach {
            bootstrap_resolved: 0,
            ..blocked
        })
        .ok
    );
    // Peers only through relays, and punching failed with all of them.
    let relayed = Reach {
        friends_connected: 2,
        friends_relayed: 2,
        friends_punch_failed: 2,
        ..reach()
    };
    let c = udp(&relayed);
    assert!(
        !c.ok && c.detail.contains("forward UDP 4363"),
        "{}",
        c.detail
    );
    // Punching not tried (or still trying) with one of them: no verdict yet.
    assert!(
        udp(&Reach {
            friends_punch_failed: 1,
            ..relayed.clone()
        })
        .ok
    );
    // Punching off: relayed-only is the verdict.
    let c = udp(&Reach {
        hole_punching: false,
        friends_punch_failed: 0,
        ..relayed.clone()
    });
    assert!(!c.ok && c.detail.contains("hole punching is off"));
    // One peer direct: fine, the detail says how many are relayed.
    let c = udp(&Reach {
        friends_relayed: 1,
        friends_punch_failed: 1,
        ..relayed
    });
    assert!(
        c.ok && c.detail.contains("1 of 2 connected peer(s) relayed"),
        "{}",
        c.detail
    );
}

/// The node's glue: what the daemon records reaches `awl health`.
#[tokio::test]
async fn a_node_reports_what_the_daemon_recorded() {
    let dir = std::env::temp_dir().join(format!("awl-health-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut cfg = crate::config::Config::default();
    cfg.main.use_default_bootstrap = false;
    cfg.main.packet_pool = 64;
    let host = crate::p2p::Host::start(
        crate::p2p::identity::Keypair::generate(),
        crate::p2p::HostConfig::new("127.0.0.1:0".parse().unwrap()),
    )
    .await
    .unwrap();
    let port = host.local_addr().unwrap().port();
    let path = dir.join("config");
    std::fs::write(&path, "config awl 'main'\n").unwrap();
    let (node, _tun_queue) = crate::app::node::Node::new(host, cfg, path.clone(), &dir, None);
    node.health
        .set_tun_error("cannot create TUN device awl0: Operation not permitted".into());
    node.health.set_listen(Some(4363), port);
    std::fs::write(&path, "config awl 'main'\n\toption mtu 'abc'\n").unwrap();
    assert!(node.reload().is_err());
    std::fs::write(&path, "config awl 'main'\n").unwrap();
    let v = node.health_json();
    let check = |name: &str| check_of(&v, name);
    assert_eq!(v["ok"], false);
    assert_eq!(check("interface")["ok"], false);
    let listen = check("listen");
    assert!(listen["detail"]
        .as_str()
        .unwrap()
        .contains(&format!("random port {port}")));
    let config = check("config");
    assert_eq!(config["ok"], false);
    assert!(
        config["detail"].as_str().unwrap().contains("line 2"),
        "{config}"
    );
    assert_eq!(check("relay")["ok"], true, "no bootstrap peers configured");
    assert_eq!(check("udp")["ok"], true, "warming up");
    assert!(node.reload().is_ok());
    assert_eq!(check_of(&node.health_json(), "config")["ok"], true);
    node.host.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

fn check_of(v: &Value, name: &str) -> Value {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no {name} in {v}"))
}

#[test]
fn offline_reports_config_and_daemon() {
    let v = offline(
        Err("/etc/config/awl: line 3: option 'mtu' = 'x': expected an integer 576..9000".into()),
        "cannot reach the daemon at /var/run/awl.sock: No such file or directory",
    );
    assert_eq!(v["ok"], false);
    assert_eq!(v["checks"][0]["check"], "config");
    assert_eq!(v["checks"][0]["ok"], false);
    assert!(v["checks"][0]["detail"]
        .as_str()
        .unwrap()
        .contains("line 3"));
    assert_eq!(v["checks"][1]["check"], "daemon");
    assert!(v["checks"][1]["detail"]
        .as_str()
        .unwrap()
        .starts_with("not running"));
    let v = offline(Ok("/etc/config/awl: OK (2 peer(s))".into()), "x");
    assert_eq!(v["checks"][0]["ok"], true);
    assert_eq!(v["ok"], false);
}

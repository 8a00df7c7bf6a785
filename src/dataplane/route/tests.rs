//! Routing over hand-built snapshots, published the way the node publishes them: through
//! the peer table's change hook and `set_routing`.

use super::*;
use crate::dataplane::packet::tests::build;
use crate::dataplane::snapshot::{PeerView, Published, Reader, Routing};
use crate::mesh::peers::{PeerTable, SharedPeers};
use crate::p2p::identity::{Keypair, PeerId};
use std::sync::Mutex;

const OWN: Ipv4Addr = Ipv4Addr::new(10, 66, 0, 1);

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn pkt(src: &str, dst: &str) -> Vec<u8> {
    build(17, ip(src).octets(), ip(dst).octets(), &[0u8; 8])
}

/// A table with peers a (10.66.0.2, LAN allowed) and b (10.66.0.3, exit allowed), published
/// into a fresh `Published`.
struct Mesh {
    table: SharedPeers,
    published: Arc<Published>,
    a: PeerId,
    b: PeerId,
}

fn mesh() -> Mesh {
    let mut t = PeerTable::new(Keypair::generate().peer_id(), OWN, 16, 8);
    let published = Arc::new(Published::default());
    let p = published.clone();
    t.on_change(Arc::new(move |t| p.set_peers(t)));
    let table: SharedPeers = Arc::new(Mutex::new(t));
    let (a, b) = (Keypair::generate().peer_id(), Keypair::generate().peer_id());
    let mut t = table.lock().unwrap();
    t.add(a.clone(), Some("a".into()), Some(ip("10.66.0.2")), true)
        .unwrap();
    t.add(b.clone(), Some("b".into()), Some(ip("10.66.0.3")), true)
        .unwrap();
    drop(t);
    grant(&table, &a, |p| p.allow_lan = true);
    grant(&table, &b, |p| p.allow_exit = true);
    Mesh {
        table,
        published,
        a,
        b,
    }
}

/// Changes a peer's grants as a reload does: the table is loaded again.
fn grant(table: &SharedPeers, peer: &PeerId, f: impl Fn(&mut crate::config::PeerConfig)) {
    let mut t = table.lock().unwrap();
    let saved = t.to_saved();
    let mut cfgs: Vec<crate::config::PeerConfig> = t
        .iter()
        .map(|p| crate::config::PeerConfig {
            section: None,
            line: 0,
            peer_id: p.peer_id.clone(),
            alias: p.alias.clone(),
            ip: Some(p.ip),
            allow_exit: p.allow_exit,
            address: Vec::new(),
            domain: p.domain.clone(),
            allow_lan: p.allow_lan,
            accept_routes: p.accept_routes,
            accept_route: p.accept_route.clone(),
        })
        .collect();
    cfgs.iter_mut().filter(|c| c.peer_id == *peer).for_each(f);
    t.load(&cfgs, &saved);
}

/// (peer, direction) a packet goes to, or what else happened to it.
#[derive(Debug, PartialEq)]
enum To {
    Peer(PeerId, GatewayDir),
    Broadcast,
    Service,
    Unroutable,
    TooBig,
}

fn to(s: &Snapshot, d: &[u8]) -> To {
    match route(s, d) {
        Route::Peer(p, dir) => To::Peer(p.id.clone(), dir),
        Route::Broadcast => To::Broadcast,
        Route::Service => To::Service,
        Route::Unroutable => To::Unroutable,
        Route::TooBig => To::TooBig,
    }
}

#[test]
fn mesh_ips_broadcast_and_what_is_not_routed() {
    let m = mesh();
    let s = m.published.load();
    assert_eq!(
        to(&s, &pkt("10.66.0.1", "10.66.0.2")),
        To::Peer(m.a.clone(), GatewayDir::None)
    );
    assert_eq!(
        to(&s, &pkt("10.66.0.1", "10.66.0.3")),
        To::Peer(m.b.clone(), GatewayDir::None)
    );
    // A mesh IP nobody has; the internet without an exit node.
    assert_eq!(to(&s, &pkt("10.66.0.1", "10.66.0.9")), To::Unroutable);
    assert_eq!(to(&s, &pkt("10.66.0.1", "8.8.8.8")), To::Unroutable);
    assert_eq!(to(&s, &pkt("10.66.0.1", "10.66.255.255")), To::Broadcast);
    assert_eq!(to(&s, &pkt("10.66.0.1", "255.255.255.255")), To::Broadcast);
    // IPv6, a truncated header, more than an AWL peer takes.
    let mut v6 = pkt("10.66.0.1", "10.66.0.2");
    v6[0] = 0x60;
    assert_eq!(to(&s, &v6), To::Unroutable);
    assert_eq!(to(&s, &pkt("10.66.0.1", "10.66.0.2")[..19]), To::Unroutable);
    let big = build(
        17,
        [10, 66, 0, 1],
        [10, 66, 0, 2],
        &[0u8; tunnel::AWL_MAX_PACKET - 19],
    );
    assert_eq!(to(&s, &big), To::TooBig);
}

#[test]
fn service_addresses_go_to_the_service_stack() {
    let m = mesh();
    let (tx, _rx) = tokio::sync::mpsc::channel(1);
    m.published.set_services(vec![ip("10.66.0.254")], tx);
    let s = m.published.load();
    assert_eq!(to(&s, &pkt("10.66.0.1", "10.66.0.254")), To::Service);
    assert_eq!(
        to(&s, &pkt("10.66.0.1", "10.66.0.2")),
        To::Peer(m.a.clone(), GatewayDir::None)
    );
}

#[test]
fn lan_routes_by_longest_prefix_then_the_exit_node() {
    let m = mesh();
    m.published.set_routing(Routing {
        installed: vec![
            ("192.168.0.0/16".parse().unwrap(), m.a.clone()),
            ("192.168.2.0/24".parse().unwrap(), m.b.clone()),
        ],
        exit_node: Some(m.b.clone()),
        ..Default::default()
    });
    let s = m.published.load();
    let fwd = |p: &PeerId| To::Peer(p.clone(), GatewayDir::Forward);
    assert_eq!(to(&s, &pkt("10.66.0.1", "192.168.2.5")), fwd(&m.b));
    assert_eq!(to(&s, &pkt("10.66.0.1", "192.168.3.5")), fwd(&m.a));
    assert_eq!(to(&s, &pkt("10.66.0.1", "8.8.8.8")), fwd(&m.b));
    // Never through the exit: link-local, multicast, loopback.
    for dst in ["169.254.169.254", "224.0.0.251", "127.0.0.1"] {
        assert_eq!(to(&s, &pkt("10.66.0.1", dst)), To::Unroutable, "{dst}");
    }
}

#[test]
fn replies_to_a_peer_that_came_through_us_are_tagged_return() {
    let m = mesh();
    m.published.set_routing(Routing {
        exported: vec!["192.168.1.0/24".parse().unwrap()],
        gateway: true,
        ..Default::default()
    });
    let s = m.published.load();
    // a may use our LAN, b our exit.
    assert_eq!(
        to(&s, &pkt("192.168.1.7", "10.66.0.2")),
        To::Peer(m.a.clone(), GatewayDir::Return)
    );
    assert_eq!(
        to(&s, &pkt("8.8.8.8", "10.66.0.3")),
        To::Peer(m.b.clone(), GatewayDir::Return)
    );
    // a may not use our exit: the internet's reply is not tagged for it.
    assert_eq!(
        to(&s, &pkt("8.8.8.8", "10.66.0.2")),
        To::Peer(m.a.clone(), GatewayDir::None)
    );
}

#[test]
fn forwarded_packets_enter_only_with_the_grant() {
    let m = mesh();
    m.published.set_routing(Routing {
        exported: vec!["192.168.1.0/24".parse().unwrap()],
        gateway: true,
        ..Default::default()
    });
    let s = m.published.load();
    let (a, b) = (s.peer(&m.a).unwrap(), s.peer(&m.b).unwrap());
    let fwd =
        |p: &PeerEntry, dst: &str| accepts(&s, p, GatewayDir::Forward, ip("10.66.0.2"), ip(dst));
    assert!(fwd(a, "192.168.1.20"), "a into our LAN");
    assert!(!fwd(a, "8.8.8.8"), "a may not use our exit");
    assert!(fwd(b, "8.8.8.8"), "b through our exit");
    assert!(accepts(
        &s,
        a,
        GatewayDir::None,
        ip("1.2.3.4"),
        ip("5.6.7.8")
    ));
}

/// Packets coming back from our exit node keep their source, so it must be one the exit can
/// answer for: an internet address, never another peer's mesh IP, our LAN or a LAN we route
/// to someone else (SECURITY.md: a peer cannot send with another peer's mesh source).
#[test]
fn an_exit_nodes_return_traffic_cannot_claim_mesh_or_lan_sources() {
    let m = mesh();
    let (exit, other) = (m.b.clone(), m.a.clone());
    m.published.set_routing(Routing {
        exported: vec!["192.168.1.0/24".parse().unwrap()],
        gateway: false,
        exit_node: Some(exit.clone()),
        installed: vec![
            ("192.168.2.0/24".parse().unwrap(), other.clone()),
            ("192.168.9.0/24".parse().unwrap(), exit.clone()),
        ],
    });
    let s = m.published.load();
    let ret = |peer: &PeerId, src: &str| {
        accepts(&s, s.peer(peer).unwrap(), GatewayDir::Return, ip(src), OWN)
    };
    assert!(
        ret(&exit, "8.8.8.8"),
        "the internet answering through the exit"
    );
    assert!(
        ret(&exit, "192.168.9.7"),
        "the exit's own LAN (a route we took from it)"
    );
    assert!(
        ret(&other, "192.168.2.5"),
        "another peer's LAN, from that peer"
    );
    for src in [
        "10.66.0.3",    // another peer's mesh IP
        "10.66.0.1",    // our own mesh IP
        "192.168.1.10", // a host on our LAN
        "192.168.2.5",  // another peer's LAN
        "127.0.0.1",
        "169.254.169.254",
        "224.0.0.1",
        "255.255.255.255",
        "0.0.0.0",
    ] {
        assert!(!ret(&exit, src), "{src} from the exit node");
    }
    assert!(
        !ret(&other, "8.8.8.8"),
        "only the exit node we chose returns internet traffic"
    );
    // A peer that is not our exit node and claims a source outside its routes.
    assert!(!ret(&other, "192.168.9.7"));
}

/// Every change of the peer table reaches a reader's cached snapshot: a new peer, a
/// changed address, a removed peer (whose queue is closed).
#[test]
fn table_changes_are_visible_to_routing() {
    let m = mesh();
    let mut reader = Reader::new(&m.published);
    let c = Keypair::generate().peer_id();
    assert_eq!(
        to(reader.get(&m.published), &pkt("10.66.0.1", "10.66.0.4")),
        To::Unroutable
    );
    m.table
        .lock()
        .unwrap()
        .add(c.clone(), None, Some(ip("10.66.0.4")), false)
        .unwrap();
    assert_eq!(
        to(reader.get(&m.published), &pkt("10.66.0.1", "10.66.0.4")),
        To::Peer(c.clone(), GatewayDir::None)
    );
    // A reload moves a to another address.
    grant(&m.table, &m.a, |p| p.ip = Some(ip("10.66.0.20")));
    let s = reader.get(&m.published).clone();
    assert_eq!(to(&s, &pkt("10.66.0.1", "10.66.0.2")), To::Unroutable);
    assert_eq!(
        to(&s, &pkt("10.66.0.1", "10.66.0.20")),
        To::Peer(m.a.clone(), GatewayDir::None)
    );
    // Removed: unroutable, and an older snapshot's queue refuses packets.
    let old = s.peer(&c).unwrap().sender.clone();
    m.table.lock().unwrap().remove(&c).unwrap();
    assert_eq!(
        to(reader.get(&m.published), &pkt("10.66.0.1", "10.66.0.4")),
        To::Unroutable
    );
    assert!(old.lock().closed);
    // The queue of a peer that stays carries over to the new snapshot.
    let before = s.peer(&m.b).unwrap().sender.clone();
    let after = reader.get(&m.published).peer(&m.b).unwrap().sender.clone();
    assert!(Arc::ptr_eq(&before, &after));
}

#[test]
fn a_reader_refreshes_only_when_something_was_published() {
    let m = mesh();
    let mut reader = Reader::new(&m.published);
    let first = reader.get(&m.published).clone();
    assert!(Arc::ptr_eq(&first, reader.get(&m.published)));
    m.published.set_routing(Routing::default());
    assert!(!Arc::ptr_eq(&first, reader.get(&m.published)));
}

/// The receive side keeps one `PeerView` per connection: a friend removed while connected is
/// a stranger from its next datagram on, a changed grant is seen at once, and the counters
/// stay the same across snapshots (nothing counted is lost to a republish).
#[test]
fn a_peer_view_follows_removal_grants_and_keeps_the_counters() {
    let m = mesh();
    let stranger = Keypair::generate().peer_id();
    let mut strangers = PeerView::new(&m.published, stranger.clone());
    assert!(strangers.get(&m.published).1.is_none());
    let mut view = PeerView::new(&m.published, m.a.clone());
    let (_, a) = view.get(&m.published);
    let a = a.expect("a is known");
    assert!(a.allow_lan && !a.allow_exit);
    a.counters.add(|s| s.rx_packets += 3);
    let counters = a.counters.clone();

    grant(&m.table, &m.a, |p| p.allow_exit = true);
    let (_, a) = view.get(&m.published);
    let a = a.expect("still known");
    assert!(a.allow_exit, "the new grant is seen without a new view");
    assert!(Arc::ptr_eq(&a.counters, &counters));
    assert_eq!(a.counters.snapshot().rx_packets, 3);

    m.table.lock().unwrap().remove(&m.a).unwrap();
    assert!(
        view.get(&m.published).1.is_none(),
        "a removed friend's datagrams are a stranger's"
    );
    // The stranger stays one through every republish.
    assert!(strangers.get(&m.published).1.is_none());
}

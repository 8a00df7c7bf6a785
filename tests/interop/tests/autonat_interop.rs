//! AutoNAT v1 (`/libp2p/autonat/1.0.0`) between awl and rust-libp2p over QUIC on 127.0.0.1,
//! both directions: rust-libp2p's client asks awl's server (a friend is dialled back, a
//! stranger refused unless awl serves everyone), and awl's client asks rust-libp2p servers
//! (dialled back: public; the offered address is dead: private).

use awl::p2p::autonat::{client, server, Reachability};
use awl::p2p::identity::Keypair;
use awl::p2p::multiaddr::Multiaddr as AwlAddr;
use awl::p2p::{Host, HostConfig, Trust};
use awl_interop::autonat_peer::{eager_client, loopback_server, AutonatPeer, Event};
use libp2p::autonat::v1::{
    Event as Nat, InboundProbeError, InboundProbeEvent, NatStatus, OutboundProbeError,
    OutboundProbeEvent, ResponseError,
};
use libp2p::{Multiaddr, PeerId};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn awl_host() -> Host {
    Host::start(
        Keypair::generate(),
        HostConfig::new("127.0.0.1:0".parse().unwrap()),
    )
    .await
    .expect("awl host starts")
}

fn to_awl(a: &Multiaddr) -> AwlAddr {
    a.to_string().parse().expect("awl parses the multiaddr")
}

fn to_libp2p(a: &AwlAddr) -> Multiaddr {
    a.to_string()
        .parse()
        .expect("rust-libp2p parses the multiaddr")
}

fn awl_peer_of(p: &PeerId) -> awl::p2p::identity::PeerId {
    p.to_string().parse().unwrap()
}

fn libp2p_peer_of(host: &Host) -> PeerId {
    host.peer_id().to_string().parse().unwrap()
}

fn trust(friends: Vec<awl::p2p::identity::PeerId>, observers: bool) -> Trust {
    let f = Arc::new(friends);
    let o = f.clone();
    Trust {
        friend: Arc::new(move |p| !observers && f.contains(p)),
        trusted_observer: Arc::new(move |p| observers && o.contains(p)),
    }
}

fn refused(host: &Host) -> usize {
    host.counters().autonat_refused.load(Ordering::Relaxed)
}

/// A rust-libp2p AutoNAT client; `friend` makes it `host`'s friend before it connects.
async fn client_of(host: &Host, friend: bool) -> AutonatPeer {
    let peer = AutonatPeer::spawn(eager_client()).await;
    if friend {
        host.set_trust(trust(vec![awl_peer_of(&peer.peer_id)], false));
    }
    peer.dial(to_libp2p(
        &host.listen_addrs()[0].clone().with_p2p(&host.peer_id()),
    ));
    peer
}

/// Waits for rust-libp2p's first probe through `awl` to succeed and its NAT status to turn
/// public; returns the address awl reached it at. The dial-back must have arrived as a new
/// inbound connection from `awl`, from another port than awl's listening one.
async fn probe_succeeds(peer: &AutonatPeer, awl: &Host) -> Multiaddr {
    let id = libp2p_peer_of(awl);
    let listening = to_libp2p(&awl.listen_addrs()[0]);
    // In whatever order rust-libp2p reports them.
    let (mut dialled_back, mut reached, mut status) = (false, None, None);
    while !dialled_back || reached.is_none() || status.is_none() {
        peer.wait(
            "awl's dial-back, a successful probe, public",
            Duration::from_secs(15),
            |e| {
                match e {
                    Event::Connected {
                        peer,
                        inbound: true,
                        remote,
                    } if *peer == id => {
                        assert_ne!(*remote, listening, "dial-back from the listening port");
                        dialled_back = true;
                    }
                    Event::Autonat(Nat::OutboundProbe(OutboundProbeEvent::Response {
                        peer,
                        address,
                        ..
                    })) if *peer == id => reached = Some(address.clone()),
                    Event::Autonat(Nat::OutboundProbe(OutboundProbeEvent::Error {
                        peer: Some(p),
                        error,
                        ..
                    })) if *p == id => panic!(
                    "probe failed (dialled back: {dialled_back}, answered: {reached:?}): {error:?}"
                ),
                    Event::Autonat(Nat::StatusChanged { new, .. }) => status = Some(new.clone()),
                    _ => return None,
                }
                Some(())
            },
        )
        .await;
    }
    let reached = reached.unwrap();
    assert_eq!(status, Some(NatStatus::Public(reached.clone())));
    reached
}

/// rust-libp2p's client asks awl, which counts it as a friend: awl dials it back at its
/// listen address and answers OK with that address, which rust-libp2p takes as public.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awl_dials_back_a_rust_libp2p_friend() {
    let host = awl_host().await;
    server::serve(&host, false);
    let peer = client_of(&host, true).await;
    let reached = probe_succeeds(&peer, &host).await;
    assert_eq!(reached, peer.listen_addr);
    assert_eq!(refused(&host), 0);
}

/// A stranger's request is refused with E_DIAL_REFUSED, which leaves rust-libp2p's status
/// unknown; in serving mode awl answers the stranger too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awl_refuses_a_rust_libp2p_stranger_unless_serving() {
    let host = awl_host().await;
    server::serve(&host, false);
    let peer = client_of(&host, false).await;
    let awl = libp2p_peer_of(&host);
    // Two refused probes in a row, and the status never changes in between.
    for n in 1..=2 {
        let error = peer
            .wait("a refused probe", Duration::from_secs(15), |e| match e {
                Event::Autonat(Nat::OutboundProbe(OutboundProbeEvent::Error {
                    peer: Some(p),
                    error,
                    ..
                })) if *p == awl => Some(format!("{error:?}")),
                Event::Autonat(Nat::OutboundProbe(OutboundProbeEvent::Response { .. })) => {
                    panic!("awl dialled a stranger back")
                }
                Event::Autonat(Nat::StatusChanged { new, .. }) => {
                    panic!("a refusal changed the NAT status to {new:?}")
                }
                _ => None,
            })
            .await;
        assert_eq!(
            error,
            format!(
                "{:?}",
                OutboundProbeError::Response(ResponseError::DialRefused)
            )
        );
        // At least: the next probe may have been refused meanwhile.
        assert!(
            refused(&host) >= n,
            "awl counted {} refusals",
            refused(&host)
        );
    }

    let serving = awl_host().await;
    server::serve(&serving, true);
    let peer = client_of(&serving, false).await;
    let reached = probe_succeeds(&peer, &serving).await;
    assert_eq!(reached, peer.listen_addr);
}

/// Three rust-libp2p AutoNAT servers (loopback allowed).
async fn spawn_servers() -> Vec<AutonatPeer> {
    let mut v = Vec::new();
    for _ in 0..3 {
        v.push(AutonatPeer::spawn(loopback_server()).await);
    }
    v
}

fn ids(servers: &[AutonatPeer]) -> Vec<awl::p2p::identity::PeerId> {
    servers.iter().map(|s| awl_peer_of(&s.peer_id)).collect()
}

/// awl connects to each server and waits for identify, which lists AutoNAT.
async fn connect(host: &Host, servers: &[AutonatPeer]) {
    for s in servers {
        let id = awl_peer_of(&s.peer_id);
        host.dial(&to_awl(&s.listen_addr).with_p2p(&id))
            .await
            .expect("awl dials the rust-libp2p server");
        let info = host.identify(&id).await.expect("identify");
        assert!(
            info.protocols.iter().any(|p| p == "/libp2p/autonat/1.0.0"),
            "rust-libp2p does not list AutoNAT: {:?}",
            info.protocols
        );
    }
}

/// Polls awl's verdict until it is `want`.
async fn reachability_becomes(host: &Host, want: Reachability, within: Duration) {
    let start = Instant::now();
    while host.reachability() != want {
        assert!(
            start.elapsed() < within,
            "awl's reachability stayed {} instead of {}",
            host.reachability().as_str(),
            want.as_str()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("{} after {:?}", want.as_str(), start.elapsed());
}

/// What one rust-libp2p server did with awl's request.
async fn inbound_probe(server: &AutonatPeer, awl: PeerId) -> Result<Multiaddr, String> {
    server
        .wait("awl's request", Duration::from_secs(5), |e| match e {
            Event::Autonat(Nat::InboundProbe(InboundProbeEvent::Response {
                peer,
                address,
                ..
            })) if *peer == awl => Some(Ok(address.clone())),
            Event::Autonat(Nat::InboundProbe(InboundProbeEvent::Error { peer, error, .. }))
                if *peer == awl =>
            {
                Some(Err(match error {
                    InboundProbeError::Response(r) => format!("{r:?}"),
                    InboundProbeError::InboundRequest(f) => format!("request failed: {f}"),
                }))
            }
            _ => None,
        })
        .await
}

/// awl's client asks three rust-libp2p servers to dial it back at the address they observed;
/// each dial-back reaches awl, each answers OK, and awl records itself as public.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awl_is_public_by_rust_libp2p_dial_backs() {
    let host = awl_host().await;
    assert_eq!(host.reachability(), Reachability::Unknown);
    let servers = spawn_servers().await;
    // Trusted observers (bootstrap nodes we chose): their word on our address counts.
    host.set_trust(trust(ids(&servers), true));
    connect(&host, &servers).await;
    // What they observed: our listening socket, as we dialled from it.
    let mine = host.listen_addrs()[0].clone();
    assert_eq!(client::candidates(&host), vec![mine.clone()]);
    client::start(&host);
    // The first round starts 20 s in; the three answers take moments on loopback.
    reachability_becomes(&host, Reachability::Public, Duration::from_secs(45)).await;
    let awl = libp2p_peer_of(&host);
    let expected = to_libp2p(&mine.with_p2p(&host.peer_id()));
    for s in &servers {
        assert_eq!(inbound_probe(s, awl).await, Ok(expected.clone()));
    }
}

/// awl offers only an address where nothing answers (a router mapping gone stale): each
/// rust-libp2p server fails to dial it and answers E_DIAL_ERROR, and awl records itself as
/// private.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awl_is_private_when_rust_libp2p_cannot_dial_back() {
    let host = awl_host().await;
    // Untrusted while identify runs: what the servers observe stays unconfirmed, not offered.
    let servers = spawn_servers().await;
    connect(&host, &servers).await;
    assert!(client::candidates(&host).is_empty());
    host.set_trust(trust(ids(&servers), true));
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dead: AwlAddr = format!(
        "/ip4/127.0.0.1/udp/{}/quic-v1",
        silent.local_addr().unwrap().port()
    )
    .parse()
    .unwrap();
    host.set_mapped_addrs(vec![dead.clone()]);
    assert_eq!(client::candidates(&host), vec![dead]);
    client::start(&host);
    // 20 s to the first round, then three dial-backs that each time out (5 s).
    reachability_becomes(&host, Reachability::Private, Duration::from_secs(60)).await;
    let awl = libp2p_peer_of(&host);
    for s in &servers {
        assert_eq!(
            inbound_probe(s, awl).await,
            Err(format!("{:?}", ResponseError::DialError))
        );
    }
}

//! awl's TCP transport against rust-libp2p's (TCP + libp2p TLS + yamux, as go-libp2p and so
//! AWL speak it), both directions: handshake, PeerIds, identify with TCP listen addresses,
//! ping both ways, a wrong PeerId refused.

use awl::p2p::identity::Keypair;
use awl::p2p::multiaddr::Multiaddr as AwlAddr;
use awl::p2p::{Host, HostConfig};
use awl_interop::peer::{Event, Libp2pPeer, AGENT};
use libp2p::{Multiaddr, PeerId};

async fn awl_tcp_host() -> Host {
    let mut cfg = HostConfig::new("127.0.0.1:0".parse().unwrap());
    cfg.listen_tcp = Some("127.0.0.1:0".parse().unwrap());
    Host::start(Keypair::generate(), cfg)
        .await
        .expect("awl host starts")
}

fn to_awl(a: &Multiaddr) -> AwlAddr {
    a.to_string().parse().expect("awl parses the multiaddr")
}

fn awl_tcp_addr(host: &Host) -> Multiaddr {
    let a = host
        .listen_addrs()
        .into_iter()
        .find(AwlAddr::is_tcp)
        .expect("awl listens on TCP");
    a.to_string().parse().expect("rust-libp2p parses it")
}

fn awl_peer_of(p: &PeerId) -> awl::p2p::identity::PeerId {
    p.to_string().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awl_dials_rust_libp2p_over_tcp() {
    let peer = Libp2pPeer::spawn().await;
    let host = awl_tcp_host().await;
    let them = awl_peer_of(&peer.peer_id);
    let addr = to_awl(&peer.tcp_addr).with_p2p(&them);
    assert_eq!(host.dial(&addr).await.expect("awl dials over TCP"), them);
    assert!(host.remote_addr(&them).unwrap().is_tcp());
    assert!(!host.has_quic(&them), "the connection is TCP, not QUIC");

    let info = host.identify(&them).await.expect("identify over TCP");
    assert_eq!(info.agent_version, AGENT);
    assert!(
        info.listen_addrs.contains(&to_awl(&peer.tcp_addr)),
        "{:?}",
        info.listen_addrs
    );
    host.ping(&them).await.expect("awl pings over TCP");

    let awl_id: PeerId = host.peer_id().to_string().parse().unwrap();
    let info = peer
        .wait("identify from awl over TCP", |e| match e {
            Event::Identified { peer, info } if *peer == awl_id => Some(info.clone()),
            _ => None,
        })
        .await;
    let ours = awl_tcp_addr(&host);
    assert!(
        info.listen_addrs.contains(&ours),
        "{ours} not in {:?}",
        info.listen_addrs
    );
    assert!(
        info.observed_addr
            .to_string()
            .starts_with("/ip4/127.0.0.1/tcp/"),
        "observed: {}",
        info.observed_addr
    );
    peer.wait("rust-libp2p ping to awl over TCP", |e| match e {
        Event::Pinged { peer, .. } if *peer == awl_id => Some(()),
        _ => None,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_libp2p_dials_awl_over_tcp() {
    let peer = Libp2pPeer::spawn().await;
    let host = awl_tcp_host().await;
    let awl_id: PeerId = host.peer_id().to_string().parse().unwrap();
    let addr: Multiaddr = format!("{}/p2p/{awl_id}", awl_tcp_addr(&host))
        .parse()
        .unwrap();
    peer.dial(addr);
    peer.wait("TCP connection to awl", |e| match e {
        Event::Connected { peer } if *peer == awl_id => Some(()),
        _ => None,
    })
    .await;
    let info = peer
        .wait("identify from awl", |e| match e {
            Event::Identified { peer, info } if *peer == awl_id => Some(info.clone()),
            _ => None,
        })
        .await;
    assert!(
        info.agent_version.starts_with("awl/"),
        "{}",
        info.agent_version
    );
    peer.wait("rust-libp2p ping to awl over TCP", |e| match e {
        Event::Pinged { peer, .. } if *peer == awl_id => Some(()),
        _ => None,
    })
    .await;
    let them = awl_peer_of(&peer.peer_id);
    assert!(host.is_connected(&them));
    assert!(host.remote_addr(&them).unwrap().is_tcp());
    host.ping(&them)
        .await
        .expect("awl pings back over the inbound TCP connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awl_refuses_a_tcp_peer_that_is_not_the_one_dialled() {
    let peer = Libp2pPeer::spawn().await;
    let host = awl_tcp_host().await;
    let other = Keypair::generate().peer_id();
    let addr = to_awl(&peer.tcp_addr).with_p2p(&other);
    assert!(
        host.dial(&addr).await.is_err(),
        "dial to the wrong PeerId must fail"
    );
    assert!(!host.is_connected(&awl_peer_of(&peer.peer_id)));
    assert!(!host.is_connected(&other));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_libp2p_refuses_awl_at_the_wrong_peer_id() {
    let peer = Libp2pPeer::spawn().await;
    let host = awl_tcp_host().await;
    let wrong = libp2p::identity::Keypair::generate_ed25519()
        .public()
        .to_peer_id();
    let addr: Multiaddr = format!("{}/p2p/{wrong}", awl_tcp_addr(&host))
        .parse()
        .unwrap();
    peer.dial(addr);
    peer.wait("the dial to refuse a wrong PeerId", |e| match e {
        Event::OutgoingError { .. } => Some(()),
        Event::Connected { .. } => panic!("connected to the wrong PeerId"),
        _ => None,
    })
    .await;
}

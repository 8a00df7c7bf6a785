//! awl's libp2p stack against rust-libp2p, both directions: QUIC v1 + libp2p TLS handshake,
//! PeerIds, identify fields, ping, and refusal of a peer that isn't the one dialled.

use awl::p2p::identity::Keypair;
use awl::p2p::multiaddr::Multiaddr as AwlAddr;
use awl::p2p::{Host, HostConfig};
use awl_interop::peer::{Event, Libp2pPeer, AGENT, PROTOCOL_VERSION};
use libp2p::{identity, Multiaddr, PeerId};

async fn awl_host() -> Host {
    Host::start(
        Keypair::generate(),
        HostConfig::new("127.0.0.1:0".parse().unwrap()),
    )
    .await
    .expect("awl host starts")
}

fn to_awl(a: &Multiaddr) -> AwlAddr {
    a.to_string()
        .parse()
        .expect("awl parses rust-libp2p's multiaddr")
}

fn to_libp2p(a: &AwlAddr) -> Multiaddr {
    a.to_string()
        .parse()
        .expect("rust-libp2p parses awl's multiaddr")
}

fn awl_peer_of(p: &PeerId) -> awl::p2p::identity::PeerId {
    p.to_string().parse().unwrap()
}

/// What rust-libp2p learnt about awl in identify.
fn check_awl_identify(info: &libp2p::identify::Info, host: &Host) {
    assert!(
        info.agent_version.starts_with("awl/"),
        "agent: {}",
        info.agent_version
    );
    assert_eq!(info.protocol_version, "ipfs/0.1.0");
    for p in ["/ipfs/id/1.0.0", "/ipfs/ping/1.0.0"] {
        assert!(
            info.protocols.iter().any(|x| x.as_ref() == p),
            "{p} missing from {:?}",
            info.protocols
        );
    }
    let ours = to_libp2p(&host.listen_addrs()[0]);
    assert!(
        info.listen_addrs.contains(&ours),
        "{ours} missing from {:?}",
        info.listen_addrs
    );
    assert_eq!(
        info.public_key.to_peer_id().to_string(),
        host.peer_id().to_string()
    );
    assert!(
        info.observed_addr
            .to_string()
            .starts_with("/ip4/127.0.0.1/udp/"),
        "observed: {}",
        info.observed_addr
    );
}

/// What awl learnt about rust-libp2p in identify.
async fn check_libp2p_identify(host: &Host, peer: &Libp2pPeer) {
    let info = host
        .identify(&awl_peer_of(&peer.peer_id))
        .await
        .expect("identify from rust-libp2p");
    assert_eq!(info.agent_version, AGENT);
    assert_eq!(info.protocol_version, PROTOCOL_VERSION);
    for p in ["/ipfs/id/1.0.0", "/ipfs/ping/1.0.0"] {
        assert!(
            info.protocols.iter().any(|x| x == p),
            "{p} missing from {:?}",
            info.protocols
        );
    }
    let theirs = to_awl(&peer.listen_addr);
    assert!(
        info.listen_addrs.contains(&theirs),
        "{theirs} missing from {:?}",
        info.listen_addrs
    );
    assert_eq!(
        info.public_key.unwrap().to_peer_id(),
        awl_peer_of(&peer.peer_id)
    );
    let observed = info.observed_addr.expect("observed addr");
    assert_eq!(observed.to_string(), host.listen_addrs()[0].to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awl_dials_rust_libp2p() {
    let peer = Libp2pPeer::spawn().await;
    let host = awl_host().await;
    let addr = to_awl(&peer.listen_addr).with_p2p(&awl_peer_of(&peer.peer_id));
    let got = host.dial(&addr).await.expect("awl dials rust-libp2p");
    assert_eq!(got.to_string(), peer.peer_id.to_string());

    check_libp2p_identify(&host, &peer).await;
    let rtt = host.ping(&got).await.expect("awl pings rust-libp2p");
    println!("awl -> rust-libp2p ping: {rtt:?}");

    let awl_id: PeerId = host.peer_id().to_string().parse().unwrap();
    let info = peer
        .wait("identify from awl", |e| match e {
            Event::Identified { peer, info } if *peer == awl_id => Some(info.clone()),
            _ => None,
        })
        .await;
    check_awl_identify(&info, &host);
    let rtt = peer
        .wait("rust-libp2p ping to awl", |e| match e {
            Event::Pinged { peer, rtt } if *peer == awl_id => Some(*rtt),
            Event::PingFailed { error, .. } => panic!("ping failed: {error}"),
            _ => None,
        })
        .await;
    println!("rust-libp2p -> awl ping: {rtt:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_libp2p_dials_awl() {
    let host = awl_host().await;
    let peer = Libp2pPeer::spawn().await;
    let awl_id: PeerId = host.peer_id().to_string().parse().unwrap();
    let addr = to_libp2p(&host.listen_addrs()[0].clone().with_p2p(&host.peer_id()));
    peer.dial(addr);
    peer.wait("connection to awl", |e| match e {
        Event::Connected { peer } if *peer == awl_id => Some(()),
        Event::OutgoingError { error, .. } => panic!("rust-libp2p could not connect: {error}"),
        _ => None,
    })
    .await;
    let info = peer
        .wait("identify from awl", |e| match e {
            Event::Identified { peer, info } if *peer == awl_id => Some(info.clone()),
            _ => None,
        })
        .await;
    check_awl_identify(&info, &host);
    peer.wait("rust-libp2p ping to awl", |e| match e {
        Event::Pinged { peer, .. } if *peer == awl_id => Some(()),
        Event::PingFailed { error, .. } => panic!("ping failed: {error}"),
        _ => None,
    })
    .await;

    let theirs = awl_peer_of(&peer.peer_id);
    assert!(host.is_connected(&theirs));
    check_libp2p_identify(&host, &peer).await;
    host.ping(&theirs)
        .await
        .expect("awl pings back on the inbound connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awl_refuses_wrong_peer_id() {
    let peer = Libp2pPeer::spawn().await;
    let host = awl_host().await;
    let impostor = Keypair::generate().peer_id();
    let addr = to_awl(&peer.listen_addr).with_p2p(&impostor);
    let err = host
        .dial(&addr)
        .await
        .expect_err("a different PeerId than dialled must be refused");
    println!("refused as expected: {err}");
    assert!(!host.is_connected(&awl_peer_of(&peer.peer_id)));
    assert!(!host.is_connected(&impostor));
    // And the same address with the right PeerId works, so the refusal was about identity.
    host.dial(&to_awl(&peer.listen_addr).with_p2p(&awl_peer_of(&peer.peer_id)))
        .await
        .expect("right PeerId connects");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_libp2p_detects_wrong_awl_peer_id() {
    let host = awl_host().await;
    let peer = Libp2pPeer::spawn().await;
    let wrong = identity::Keypair::generate_ed25519().public().to_peer_id();
    let addr: Multiaddr = format!("{}/p2p/{wrong}", host.listen_addrs()[0])
        .parse()
        .unwrap();
    peer.dial(addr);
    let error = peer
        .wait("outgoing connection error", |e| match e {
            Event::OutgoingError { error, .. } => Some(error.clone()),
            Event::Connected { peer } => panic!("connected to {peer} although {wrong} was dialled"),
            _ => None,
        })
        .await;
    println!("rust-libp2p refused: {error}");
    assert!(
        error.contains("WrongPeerId") || error.contains("Transport"),
        "{error}"
    );
}

#[tokio::test]
async fn peer_id_matches_rust_libp2p() {
    for seed in [
        [1u8; 32],
        [7u8; 32],
        [0xa5; 32],
        *b"awl interop fixed seed 32 bytes!",
    ] {
        let ours = Keypair::from_seed(seed).unwrap();
        let theirs = identity::Keypair::ed25519_from_bytes(seed).unwrap();
        assert_eq!(
            ours.peer_id().to_string(),
            theirs.public().to_peer_id().to_string()
        );
        // AWL's identity format is seed ‖ public key, base58.
        let raw = bs58::decode(ours.to_awl_base58()).into_vec().unwrap();
        assert_eq!(&raw[..32], &seed);
        let ed = theirs.try_into_ed25519().unwrap();
        assert_eq!(&raw[32..], &ed.public().to_bytes());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awl_to_awl() {
    let a = awl_host().await;
    let b = awl_host().await;
    let peer = a
        .dial(&b.listen_addrs()[0].clone().with_p2p(&b.peer_id()))
        .await
        .unwrap();
    assert_eq!(peer, b.peer_id());
    let info = a.identify(&peer).await.unwrap();
    assert!(info.agent_version.starts_with("awl/"));
    a.ping(&peer).await.unwrap();
    b.ping(&a.peer_id()).await.unwrap();
}

/// awl's Kademlia client asks a rust-libp2p Kademlia server (on /awl/kad/1.0.0) for a peer it
/// has never seen and gets the address the server knows for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awl_finds_a_peer_through_rust_libp2p_kademlia() {
    let target = identity::Keypair::generate_ed25519().public().to_peer_id();
    let target_addr: Multiaddr = "/ip4/192.0.2.99/udp/4444/quic-v1".parse().unwrap();
    let others: Vec<(PeerId, Multiaddr)> = (0..5)
        .map(|i| {
            (
                identity::Keypair::generate_ed25519().public().to_peer_id(),
                format!("/ip4/192.0.2.{}/udp/4363/quic-v1", 10 + i)
                    .parse()
                    .unwrap(),
            )
        })
        .collect();
    let mut entries = others.clone();
    entries.push((target, target_addr.clone()));
    let (server, server_addr) = awl_interop::peer::spawn_kad_server(entries).await;

    let host = awl_host().await;
    let seed = awl::p2p::kad::KadPeer {
        id: awl_peer_of(&server),
        addrs: vec![to_awl(&server_addr)],
        connection: awl::p2p::kad::Connection::NotConnected,
    };
    // One direct query first: the codec against rust-libp2p's.
    host.dial(&to_awl(&server_addr).with_p2p(&awl_peer_of(&server)))
        .await
        .expect("dial kad server");
    let closer = awl::p2p::kad::query(&host, &awl_peer_of(&server), &awl_peer_of(&target))
        .await
        .expect("FIND_NODE answered");
    assert!(
        closer.iter().any(|p| p.id == awl_peer_of(&target)),
        "target not among {} closer peers",
        closer.len()
    );
    assert!(
        closer.len() >= 5,
        "rust-libp2p returned {} peers",
        closer.len()
    );

    let found = awl::p2p::kad::find_peer(
        &host,
        &awl_peer_of(&target),
        vec![seed],
        std::time::Duration::from_secs(10),
    )
    .await
    .expect("lookup runs")
    .expect("target found");
    // rust-libp2p appends /p2p/<id> to the addresses it hands out.
    assert_eq!(found.addrs.len(), 1);
    assert_eq!(found.addrs[0].without_p2p(), to_awl(&target_addr));
    assert!(found.addrs[0]
        .peer_id()
        .is_none_or(|p| p == awl_peer_of(&target)));
}

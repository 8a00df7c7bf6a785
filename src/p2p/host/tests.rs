//! The host end to end on loopback: connecting, identify, ping, admission, circuits from
//! strangers, registered protocols, disconnects.

use super::*;
use crate::p2p::relay::{self, Status, StopMessage};
use crate::p2p::{admission, ping};
use tokio::io::AsyncWriteExt;

async fn host() -> Host {
    Host::loopback().await
}

#[tokio::test]
async fn two_hosts_connect_identify_and_ping() {
    let a = host().await;
    let b = host().await;
    let addr = b.listen_addrs()[0].clone().with_p2p(&b.peer_id());
    assert_eq!(a.dial(&addr).await.unwrap(), b.peer_id());
    let info = a.identify(&b.peer_id()).await.unwrap();
    assert!(
        info.agent_version.starts_with("awl/"),
        "{}",
        info.agent_version
    );
    assert!(info.protocols.iter().any(|p| p == ping::PROTOCOL));
    assert_eq!(info.listen_addrs, b.listen_addrs());
    assert_eq!(info.public_key.unwrap().to_peer_id(), b.peer_id());
    let back = b.identify(&a.peer_id()).await.unwrap();
    // A tells B the address it sees B at.
    assert_eq!(
        back.observed_addr.unwrap(),
        a.remote_addr(&b.peer_id()).unwrap()
    );
    assert!(a.ping(&b.peer_id()).await.unwrap() < Duration::from_secs(5));
    assert!(b.ping(&a.peer_id()).await.is_ok());
}

#[tokio::test]
async fn strangers_share_the_slots_and_a_friend_always_gets_in() {
    let mut cfg = HostConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)));
    cfg.max_connections = 8;
    let server = Host::start(Keypair::generate(), cfg).await.unwrap();
    let friend = host().await;
    let fid = friend.peer_id();
    server.set_trust(Trust {
        friend: Arc::new(move |p| *p == fid),
        trusted_observer: Arc::new(|_| false),
    });
    let addr = server.listen_addrs()[0].clone().with_p2p(&server.peer_id());
    let mut strangers = Vec::new();
    for _ in 0..10 {
        let h = host().await;
        let _ = h.dial(&addr).await;
        strangers.push(h);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Before: all 8 slots went to strangers and the friend was refused.
    assert_eq!(
        server.connected_peers().len(),
        admission::stranger_cap(8),
        "strangers hold at most their share"
    );
    assert_eq!(friend.dial(&addr).await.unwrap(), server.peer_id());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(server.is_connected(&friend.peer_id()));
}

#[tokio::test]
async fn circuits_only_from_relays_we_reserved_with() {
    // A stranger posing as a relay opens STOP on us: refused before any TLS.
    let a = host().await;
    let fake_relay = host().await;
    let addr = a.listen_addrs()[0].clone().with_p2p(&a.peer_id());
    fake_relay.dial(&addr).await.unwrap();
    let mut s = fake_relay
        .open_stream(&a.peer_id(), &[relay::STOP_PROTOCOL])
        .await
        .unwrap();
    let mut connect = StopMessage::status(Status::Ok);
    connect.kind = relay::StopType::Connect;
    connect.status = None;
    connect.peer = Some(fake_relay.peer_id());
    relay::write_msg(&mut s.send, &connect.encode())
        .await
        .unwrap();
    let reply = relay::read_stop(&mut s.recv).await.unwrap();
    assert_eq!(reply.status, Some(Status::PermissionDenied));
    assert_eq!(
        a.counters()
            .refused_circuits
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[tokio::test]
async fn wrong_peer_id_is_refused() {
    let a = host().await;
    let b = host().await;
    let other = Keypair::generate().peer_id();
    let addr = b.listen_addrs()[0].clone().with_p2p(&other);
    let err = a.dial(&addr).await.unwrap_err();
    assert!(err.to_string().contains("expected"), "{err}");
    assert!(!a.is_connected(&b.peer_id()));
    assert!(!a.is_connected(&other));
}

#[tokio::test]
async fn registered_protocol_gets_streams_and_unknown_is_refused() {
    let a = host().await;
    let b = host().await;
    let mut rx = b.register("/awl/test/", 4);
    a.dial(&b.listen_addrs()[0]).await.unwrap();
    assert!(a.open_stream(&b.peer_id(), &["/nope/"]).await.is_err());
    let mut s = a
        .open_stream(&b.peer_id(), &["/nope/", "/awl/test/"])
        .await
        .unwrap();
    assert_eq!(s.protocol, "/awl/test/");
    assert_eq!(hi_through(&mut s, &mut rx, &a).await, b"hi");
}

/// Writes "hi" on `s` and finishes it; what the listener's handler read from `from`.
async fn hi_through(s: &mut Stream, rx: &mut mpsc::Receiver<Stream>, from: &Host) -> Vec<u8> {
    s.send.write_all(b"hi").await.unwrap();
    s.send.finish().await;
    let mut inbound = rx.recv().await.unwrap();
    assert_eq!(inbound.peer, from.peer_id());
    crate::p2p::transport::stream::read_to_end(&mut inbound.recv, 16)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_lazy_open_writes_ahead_of_the_answer_and_negotiates_without_identify() {
    let a = host().await;
    let b = host().await;
    let mut rx = b.register("/awl/test/", 4);
    a.dial(&b.listen_addrs()[0]).await.unwrap();
    a.identify(&b.peer_id()).await.unwrap();
    let mut s = a
        .open_stream_lazy(&b.peer_id(), "/awl/test/")
        .await
        .unwrap();
    assert_eq!(s.protocol, "/awl/test/");
    assert_eq!(hi_through(&mut s, &mut rx, &a).await, b"hi");
    // The answer was not waited for: it is still unread, the header and then the echo.
    let answer = async {
        let header = crate::p2p::multistream::read_message(&mut s.recv).await?;
        let echo = crate::p2p::multistream::read_message(&mut s.recv).await?;
        std::io::Result::Ok((header, echo))
    };
    let (header, echo) = tokio::time::timeout(Duration::from_secs(2), answer)
        .await
        .expect("the answer was read by the open")
        .unwrap();
    assert_eq!(header, crate::p2p::multistream::HEADER);
    assert_eq!(echo, "/awl/test/");
    // A protocol identify did not list is negotiated: the refusal is an error at once.
    assert!(a.open_stream_lazy(&b.peer_id(), "/nope/").await.is_err());
}

#[tokio::test]
async fn disconnect_is_noticed() {
    let a = host().await;
    let b = host().await;
    let mut events = a.events();
    a.dial(&b.listen_addrs()[0]).await.unwrap();
    b.shutdown();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(HostEvent::Disconnected { peer })) => {
                assert_eq!(peer, b.peer_id());
                break;
            }
            Ok(Ok(_)) => continue,
            other => panic!("no disconnect event: {other:?}"),
        }
    }
    assert!(!a.is_connected(&b.peer_id()));
}

/// Both hosts dial each other at once: each holds two connections for a moment, both send on
/// the same one (the one the smaller peer ID dialled), and the other one is closed after the
/// grace period on both sides.
#[tokio::test]
async fn a_simultaneous_dial_settles_on_one_connection_the_same_on_both_sides() {
    let a = host().await;
    let b = host().await;
    let to_b = b.listen_addrs()[0].clone().with_p2p(&b.peer_id());
    let to_a = a.listen_addrs()[0].clone().with_p2p(&a.peer_id());
    let (ra, rb) = tokio::join!(a.dial(&to_b), b.dial(&to_a));
    assert_eq!((ra.unwrap(), rb.unwrap()), (b.peer_id(), a.peer_id()));
    // Each side's own dial and the other's accept: wait until both hold both.
    for _ in 0..100 {
        if a.connection_counts().0 == 2 && b.connection_counts().0 == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!((a.connection_counts().0, b.connection_counts().0), (2, 2));
    let chosen_inbound = |h: &Host, p: &PeerId| {
        let st = h.state();
        best(&st.conns[p]).map(|c| c.inbound).unwrap()
    };
    let (a_in, b_in) = (
        chosen_inbound(&a, &b.peer_id()),
        chosen_inbound(&b, &a.peer_id()),
    );
    assert_ne!(
        a_in, b_in,
        "one connection: dialled by one side, accepted by the other"
    );
    let smaller_is_a = a.peer_id() < b.peer_id();
    assert_eq!(!a_in, smaller_is_a, "the one the smaller peer ID dialled");
    // The duplicate closes after the grace period (1 s in tests), on both sides.
    for _ in 0..60 {
        if a.connection_counts().0 == 1 && b.connection_counts().0 == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!((a.connection_counts().0, b.connection_counts().0), (1, 1));
    assert_eq!(
        chosen_inbound(&a, &b.peer_id()),
        a_in,
        "the chosen one stayed"
    );
    assert!(a.ping(&b.peer_id()).await.is_ok());
}

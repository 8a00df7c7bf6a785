//! TCP between hosts on loopback: connecting, identify, streams, QUIC preferred over TCP,
//! and what a hostile TCP client gets (garbage, a half-open connection, a slowloris).

use super::super::*;
use crate::p2p::transport::stream::read_to_end;
use crate::p2p::{admission, ping};
use std::sync::atomic::Ordering;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn tcp_host() -> Host {
    let mut cfg = HostConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)));
    cfg.listen_tcp = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    Host::start(Keypair::generate(), cfg).await.unwrap()
}

fn tcp_addr(h: &Host) -> Multiaddr {
    let a = h
        .listen_addrs()
        .into_iter()
        .find(Multiaddr::is_tcp)
        .expect("a TCP listen address");
    a.with_p2p(&h.peer_id())
}

/// Waits until the server closes `s` (EOF or reset), at most `within`.
async fn closed_by_server(s: &mut tokio::net::TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 256];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn tcp_connects_identifies_pings_and_carries_streams() {
    let a = tcp_host().await;
    let b = tcp_host().await;
    let mut rx = b.register("/awl/test/", 4);
    assert_eq!(a.dial(&tcp_addr(&b)).await.unwrap(), b.peer_id());
    assert!(a.has_direct(&b.peer_id()));
    assert!(!a.has_quic(&b.peer_id()));
    assert!(!a.is_relayed(&b.peer_id()));
    assert!(a.remote_addr(&b.peer_id()).unwrap().is_tcp());
    // Identify lists both transports, QUIC first.
    let info = a.identify(&b.peer_id()).await.unwrap();
    assert_eq!(info.listen_addrs, b.listen_addrs());
    assert!(info.listen_addrs[0].quic_socket_addr().is_some());
    assert!(info.listen_addrs.iter().any(Multiaddr::is_tcp));
    assert!(a.ping(&b.peer_id()).await.is_ok());
    // No datagrams over TCP: the data plane falls back to streams.
    assert!(a.datagram_path(&b.peer_id(), ping::PROTOCOL).is_none());
    let mut s = a.open_stream(&b.peer_id(), &["/awl/test/"]).await.unwrap();
    s.send.write_all(b"over tcp").await.unwrap();
    s.send.finish().await;
    let mut inbound = rx.recv().await.unwrap();
    assert_eq!(inbound.peer, a.peer_id());
    assert_eq!(
        read_to_end(&mut inbound.recv, 16).await.unwrap(),
        b"over tcp"
    );
    // B's side is an inbound TCP connection from A.
    assert!(b.remote_addr(&a.peer_id()).unwrap().is_tcp());
    assert!(b.accepted_from(&a.peer_id()));
}

#[tokio::test]
async fn quic_is_preferred_once_both_exist() {
    let a = tcp_host().await;
    let b = tcp_host().await;
    a.dial(&tcp_addr(&b)).await.unwrap();
    let quic = b.listen_addrs()[0].clone().with_p2p(&b.peer_id());
    assert!(quic.quic_socket_addr().is_some());
    // A TCP connection does not stop the QUIC dial: it is the upgrade.
    a.dial(&quic).await.unwrap();
    assert!(a.has_quic(&b.peer_id()));
    assert!(a
        .remote_addr(&b.peer_id())
        .unwrap()
        .quic_socket_addr()
        .is_some());
    // And a TCP dial now is a no-op: there is a direct connection.
    assert_eq!(a.dial(&tcp_addr(&b)).await.unwrap(), b.peer_id());
    assert_eq!(a.connection_counts(), (2, 0));
}

#[tokio::test]
async fn dial_first_prefers_quic_and_falls_back_to_tcp() {
    let a = tcp_host().await;
    let b = tcp_host().await;
    // A QUIC address where nothing listens, and B's TCP address: TCP gets through.
    let dead_quic: Multiaddr = "/ip4/127.0.0.1/udp/9/quic-v1".parse().unwrap();
    let addrs = vec![dead_quic.with_p2p(&b.peer_id()), tcp_addr(&b)];
    assert!(a.dial_first(&addrs).await);
    assert!(a.remote_addr(&b.peer_id()).unwrap().is_tcp());
    // With both working, QUIC wins (TCP starts later).
    let c = tcp_host().await;
    let both = vec![
        tcp_addr(&c),
        c.listen_addrs()[0].clone().with_p2p(&c.peer_id()),
    ];
    assert!(a.dial_first(&both).await);
    assert!(a.has_quic(&c.peer_id()));
}

#[tokio::test]
async fn tcp_dial_to_the_wrong_identity_is_refused() {
    let a = tcp_host().await;
    let b = tcp_host().await;
    let other = Keypair::generate().peer_id();
    let addr = tcp_addr(&b).without_p2p().with_p2p(&other);
    assert!(a.dial(&addr).await.is_err());
    assert!(!a.is_connected(&b.peer_id()));
    assert!(!a.is_connected(&other));
}

#[tokio::test]
async fn garbage_is_closed_and_counted_and_others_still_connect() {
    let b = tcp_host().await;
    let sock = tcp_addr(&b).tcp_socket_addr().unwrap();
    let mut s = tokio::net::TcpStream::connect(sock).await.unwrap();
    s.write_all(b"\x13/multistream/1.0.0\n\xff\xff\xff\xff garbage")
        .await
        .unwrap();
    assert!(closed_by_server(&mut s, Duration::from_secs(5)).await);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while b.counters().handshake_failures.load(Ordering::Relaxed) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "not counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let a = tcp_host().await;
    assert_eq!(a.dial(&tcp_addr(&b)).await.unwrap(), b.peer_id());
}

#[tokio::test]
async fn half_open_and_slowloris_are_bounded_then_closed() {
    let b = tcp_host().await;
    let sock = tcp_addr(&b).tcp_socket_addr().unwrap();
    // One address holds at most HANDSHAKES_PER_ADDRESS handshakes: the rest are closed at once.
    let mut idle = Vec::new();
    for _ in 0..admission::HANDSHAKES_PER_ADDRESS {
        idle.push(tokio::net::TcpStream::connect(sock).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = tokio::net::TcpStream::connect(sock).await.unwrap();
    assert!(closed_by_server(&mut extra, Duration::from_secs(2)).await);
    assert!(b.counters().refused_connections.load(Ordering::Relaxed) >= 1);
    // A slowloris (one byte a second of a valid header) and the idle ones are all dropped
    // at the handshake deadline.
    let mut slow = idle.pop().unwrap();
    let trickle = crate::spawn(async move {
        for &byte in b"\x13/multistream/1.0.0\n" {
            if slow.write_all(&[byte]).await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        closed_by_server(&mut slow, Duration::from_secs(5)).await
    });
    let limit = super::HANDSHAKE_TIMEOUT + Duration::from_secs(3);
    for s in idle.iter_mut() {
        assert!(
            closed_by_server(s, limit).await,
            "half-open connection kept"
        );
    }
    assert!(trickle.await.unwrap(), "slowloris kept");
    assert!(b.counters().handshake_failures.load(Ordering::Relaxed) >= 16);
    // The slots are free again.
    let a = tcp_host().await;
    assert_eq!(a.dial(&tcp_addr(&b)).await.unwrap(), b.peer_id());
}

#[tokio::test]
async fn shutdown_stops_the_tcp_listener_and_closes_tcp_connections() {
    let a = tcp_host().await;
    let b = tcp_host().await;
    let mut events = a.events();
    let sock = tcp_addr(&b).tcp_socket_addr().unwrap();
    a.dial(&tcp_addr(&b)).await.unwrap();
    b.shutdown();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(HostEvent::Disconnected { peer })) if peer == b.peer_id() => break,
            Ok(Ok(_)) => continue,
            other => panic!("no disconnect event: {other:?}"),
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(tokio::net::TcpStream::connect(sock).await.is_err());
}

#[tokio::test]
async fn ipv6_underlay_quic_and_tcp_and_a_dual_stack_listener() {
    let v6 = |port| SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port));
    if std::net::UdpSocket::bind(v6(0)).is_err() {
        return; // no IPv6 loopback in this sandbox
    }
    let mut cfg = HostConfig::new(v6(0));
    cfg.listen_tcp = Some(v6(0));
    let b = Host::start(Keypair::generate(), cfg).await.unwrap();
    let addrs = b.listen_addrs();
    assert!(
        addrs.iter().all(|a| a.to_string().starts_with("/ip6/::1/")),
        "{addrs:?}"
    );
    // QUIC over IPv6.
    let a = tcp_host().await;
    let mut cfg = HostConfig::new(v6(0));
    cfg.listen_tcp = Some(v6(0));
    let a6 = Host::start(Keypair::generate(), cfg).await.unwrap();
    let quic = addrs[0].clone().with_p2p(&b.peer_id());
    assert_eq!(a6.dial(&quic).await.unwrap(), b.peer_id());
    assert!(a6.ping(&b.peer_id()).await.is_ok());
    // TCP over IPv6.
    let tcp = addrs.iter().find(|a| a.is_tcp()).unwrap().clone();
    let c6 = Host::start(Keypair::generate(), HostConfig::new(v6(0)))
        .await
        .unwrap();
    assert_eq!(
        c6.dial(&tcp.with_p2p(&b.peer_id())).await.unwrap(),
        b.peer_id()
    );
    assert!(c6
        .remote_addr(&b.peer_id())
        .unwrap()
        .to_string()
        .starts_with("/ip6/::1/tcp/"));
    // A dual-stack node (the daemon's default, [::]) takes an IPv4 dialler and shows it as IPv4.
    let mut cfg = HostConfig::new(SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0)));
    cfg.listen_tcp = Some(SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0)));
    let dual = Host::start(Keypair::generate(), cfg).await.unwrap();
    let port = dual.local_addr().unwrap().port();
    let to: Multiaddr = format!("/ip4/127.0.0.1/udp/{port}/quic-v1/p2p/{}", dual.peer_id())
        .parse()
        .unwrap();
    assert_eq!(a.dial(&to).await.unwrap(), dual.peer_id());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let seen = dual.remote_addr(&a.peer_id()).unwrap().to_string();
    assert!(seen.starts_with("/ip4/127.0.0.1/udp/"), "{seen}");
    // And it answers identify and ping over the mapped path (quinn maps our replies).
    assert!(dual.ping(&a.peer_id()).await.is_ok());
    let tport = dual.tcp_local_addr().unwrap().port();
    let to: Multiaddr = format!("/ip4/127.0.0.1/tcp/{tport}/p2p/{}", dual.peer_id())
        .parse()
        .unwrap();
    let d = tcp_host().await;
    assert_eq!(d.dial(&to).await.unwrap(), dual.peer_id());
}

/// A peer that completes TLS (so it has a verified identity) and then sends bytes that are
/// not yamux: that connection closes, the host's other connections carry on.
#[tokio::test]
async fn yamux_garbage_after_tls_closes_that_connection_only() {
    use crate::p2p::multistream;
    use crate::p2p::transport::{secure, tls};
    let b = tcp_host().await;
    let friend = tcp_host().await;
    friend.dial(&tcp_addr(&b)).await.unwrap();
    let mut events = b.events();
    let key = Keypair::generate();
    let cert = tls::generate(&key).unwrap();
    let sock = tcp_addr(&b).tcp_socket_addr().unwrap();
    let mut io = tokio::net::TcpStream::connect(sock).await.unwrap();
    let (mut r, mut w) = io.split();
    multistream::dialer_select(&mut r, &mut w, &[secure::TLS_PROTOCOL])
        .await
        .unwrap();
    let cfg = tls::client_config(&cert, Some(b.peer_id())).unwrap();
    let name = rustls::pki_types::ServerName::try_from("libp2p").unwrap();
    let mut tls_io = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, io)
        .await
        .unwrap();
    let (mut r, mut w) = tokio::io::split(&mut tls_io);
    multistream::dialer_select(&mut r, &mut w, &[secure::YAMUX_PROTOCOL])
        .await
        .unwrap();
    // The host counts it as connected (the handshake named the peer)…
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !b.is_connected(&key.peer_id()) {
        assert!(tokio::time::Instant::now() < deadline, "not admitted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // …then a yamux header with version 9 and a huge length: the session ends.
    w.write_all(&[9, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff])
        .await
        .unwrap();
    w.flush().await.unwrap();
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(HostEvent::Disconnected { peer })) if peer == key.peer_id() => break,
            Ok(Ok(_)) => continue,
            other => panic!("garbage did not close the connection: {other:?}"),
        }
    }
    assert!(!b.is_connected(&key.peer_id()));
    assert!(b.is_connected(&friend.peer_id()));
    assert!(friend.ping(&b.peer_id()).await.is_ok());
}

/// A stranger in the DHT hands out addresses: the wildcard (our own host), multicast and
/// port 0 are nobody's, and are not dialled, over TCP or QUIC.
#[tokio::test]
async fn wildcard_multicast_and_port_zero_addresses_are_not_dialled() {
    let a = tcp_host().await;
    let b = tcp_host().await;
    let tport = b.tcp_local_addr().unwrap().port();
    let qport = b.local_addr().unwrap().port();
    let id = b.peer_id();
    for s in [
        format!("/ip4/0.0.0.0/tcp/{tport}/p2p/{id}"),
        format!("/ip4/0.0.0.0/udp/{qport}/quic-v1/p2p/{id}"),
        format!("/ip6/::/tcp/{tport}/p2p/{id}"),
        format!("/ip4/224.0.0.1/udp/{qport}/quic-v1/p2p/{id}"),
        format!("/ip4/127.0.0.1/tcp/0/p2p/{id}"),
    ] {
        let m: Multiaddr = s.parse().unwrap();
        let err = a.dial(&m).await.unwrap_err();
        assert!(matches!(err, Error::UnsupportedAddress(_)), "{s}: {err}");
    }
    assert!(!a.is_connected(&id));
    // The same host at its real address is reachable.
    assert_eq!(a.dial(&tcp_addr(&b)).await.unwrap(), id);
}

//! AutoNAT on loopback hosts: who is answered, which addresses are dialled back, the cap on
//! dial-backs running at once (the rules alone are tested in `server`), and which of our
//! addresses a client offers.

use super::server::{self, MAX_CONCURRENT};
use super::wire::{DialResponse, Message, Status, MAX_MESSAGE, PROTOCOL};
use crate::p2p::identify::read_framed;
use crate::p2p::multiaddr::Multiaddr;
use crate::p2p::relay::write_msg;
use crate::p2p::{Host, Trust};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A server (friends only unless `everyone`) and a client connected to it; the client is
/// the server's friend when `friend`.
async fn pair(everyone: bool, friend: bool) -> (Host, Host) {
    let server = Host::loopback().await;
    let client = Host::loopback().await;
    if friend {
        let id = client.peer_id();
        server.set_trust(Trust {
            friend: Arc::new(move |p| *p == id),
            trusted_observer: Arc::new(|_| false),
        });
    }
    server::serve(&server, everyone);
    connect(&client, &server).await;
    (server, client)
}

async fn connect(client: &Host, server: &Host) {
    let addr = server.listen_addrs()[0].clone().with_p2p(&server.peer_id());
    client.dial(&addr).await.unwrap();
}

/// One DIAL from `client` asking to be dialled back at `addrs`.
async fn request(client: &Host, server: &Host, addrs: Vec<Multiaddr>) -> DialResponse {
    let mut s = client
        .open_stream(&server.peer_id(), &[PROTOCOL])
        .await
        .unwrap();
    let req = Message::Dial {
        peer: Some(client.peer_id()),
        addrs,
    };
    write_msg(&mut s.send, &req.encode()).await.unwrap();
    let body = read_framed(&mut s.recv, MAX_MESSAGE).await.unwrap();
    match Message::decode(&body).unwrap() {
        Message::DialResponse(r) => r,
        m => panic!("not a response: {m:?}"),
    }
}

fn refused(server: &Host) -> usize {
    server.counters().autonat_refused.load(Ordering::Relaxed)
}

#[tokio::test]
async fn a_friend_is_dialled_back_at_its_own_address() {
    let (server, client) = pair(false, true).await;
    let mine = client.listen_addrs()[0].clone();
    let r = request(&client, &server, vec![mine.clone()]).await;
    assert_eq!(r.status, Status::Ok, "{}", r.text);
    assert_eq!(r.addr, Some(mine));
    assert_eq!(refused(&server), 0);
}

#[tokio::test]
async fn a_stranger_is_refused_unless_serving_everyone() {
    let (server, client) = pair(false, false).await;
    let mine = client.listen_addrs()[0].clone();
    let r = request(&client, &server, vec![mine.clone()]).await;
    assert_eq!(r.status, Status::DialRefused);
    assert_eq!(r.text, "not a friend");
    assert_eq!(refused(&server), 1);

    // A node in serving mode answers everyone.
    let (server, client) = pair(true, false).await;
    let mine = client.listen_addrs()[0].clone();
    let r = request(&client, &server, vec![mine]).await;
    assert_eq!(r.status, Status::Ok, "{}", r.text);
}

#[tokio::test]
async fn only_the_ip_the_request_came_from_is_dialled() {
    let (server, client) = pair(true, true).await;
    // The client's own port, but on another host: someone else's address.
    let port = client.local_addr().unwrap().port();
    let elsewhere: Multiaddr = format!("/ip4/192.0.2.1/udp/{port}/quic-v1")
        .parse()
        .unwrap();
    let r = request(&client, &server, vec![elsewhere.clone()]).await;
    assert_eq!(r.status, Status::DialRefused);
    assert_eq!(r.text, "no address on the IP we see");
    assert_eq!(refused(&server), 1);
    // Mixed in with its own address, only its own is tried.
    let mine = client.listen_addrs()[0].clone();
    let r = request(&client, &server, vec![elsewhere, mine.clone()]).await;
    assert_eq!(r.status, Status::Ok, "{}", r.text);
    assert_eq!(r.addr, Some(mine));
}

#[tokio::test]
async fn dial_backs_in_all_are_capped_and_freed_when_done() {
    let server = Host::loopback().await;
    // Friends all: strangers from one address would be held to fewer connections.
    server.set_trust(Trust {
        friend: Arc::new(|_| true),
        trusted_observer: Arc::new(|_| false),
    });
    server::serve(&server, false);
    // A socket that never answers: each dial-back to it runs until its timeout.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let silent: Multiaddr = format!(
        "/ip4/127.0.0.1/udp/{}/quic-v1",
        silent.local_addr().unwrap().port()
    )
    .parse()
    .unwrap();
    let mut clients = Vec::new();
    for _ in 0..=MAX_CONCURRENT {
        let c = Host::loopback().await;
        connect(&c, &server).await;
        clients.push(c);
    }
    let extra = clients.pop().unwrap();
    let mut running = Vec::new();
    for c in clients {
        let (server, silent) = (server.clone(), silent.clone());
        running.push(crate::spawn(async move {
            request(&c, &server, vec![silent]).await
        }));
    }
    // Wait until all of them are being dialled back.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let mine = extra.listen_addrs()[0].clone();
    let r = request(&extra, &server, vec![mine.clone()]).await;
    assert_eq!(r.status, Status::DialRefused);
    assert_eq!(r.text, "dial-back already running");
    for j in running {
        let r = j.await.unwrap();
        assert_eq!(r.status, Status::DialError, "{}", r.text);
    }
    // Failed dial-backs free their slots too.
    let r = request(&extra, &server, vec![mine]).await;
    assert_eq!(r.status, Status::Ok, "{}", r.text);
}

#[tokio::test]
async fn we_offer_what_a_trusted_peer_saw_and_what_the_router_maps() {
    let server = Host::loopback().await;
    let client = Host::loopback().await;
    let sid = server.peer_id();
    client.set_trust(Trust {
        friend: Arc::new(|_| false),
        trusted_observer: Arc::new(move |p| *p == sid),
    });
    // Nobody has seen us yet, and listen addresses are not offered.
    assert!(super::client::candidates(&client).is_empty());
    connect(&client, &server).await;
    client.identify(&server.peer_id()).await.unwrap();
    let seen = client.listen_addrs()[0].clone();
    assert_eq!(super::client::candidates(&client), vec![seen.clone()]);
    let mapped: Multiaddr = "/ip4/203.0.113.5/udp/4363/quic-v1".parse().unwrap();
    client.set_mapped_addrs(vec![mapped.clone(), seen.clone()]);
    assert_eq!(super::client::candidates(&client), vec![seen, mapped]);
}

#[tokio::test]
async fn a_request_over_tcp_is_dialled_back_over_quic() {
    let tcp = || {
        let mut cfg = crate::p2p::HostConfig::new(([127, 0, 0, 1], 0).into());
        cfg.listen_tcp = Some(([127, 0, 0, 1], 0).into());
        Host::start(crate::p2p::identity::Keypair::generate(), cfg)
    };
    let server = tcp().await.unwrap();
    let client = tcp().await.unwrap();
    server::serve(&server, true);
    let at = server
        .listen_addrs()
        .into_iter()
        .find(Multiaddr::is_tcp)
        .unwrap();
    client.dial(&at.with_p2p(&server.peer_id())).await.unwrap();
    assert!(server.remote_addr(&client.peer_id()).unwrap().is_tcp());
    // The IP the request came from (over TCP) is what a QUIC address must be on.
    let quic = client.listen_addrs()[0].clone();
    assert!(quic.quic_socket_addr().is_some());
    let r = request(&client, &server, vec![quic.clone()]).await;
    assert_eq!(r.status, Status::Ok, "{}", r.text);
    assert_eq!(r.addr, Some(quic));
}

#[tokio::test]
async fn only_friends_that_serve_autonat_are_asked_not_strangers_that_serve_everyone() {
    let client = Host::loopback().await;
    let friend = Host::loopback().await;
    let stranger = Host::loopback().await;
    let silent_friend = Host::loopback().await;
    server::serve(&friend, false);
    server::serve(&stranger, true);
    let friends = [friend.peer_id(), silent_friend.peer_id()];
    client.set_trust(Trust {
        friend: Arc::new(move |p| friends.contains(p)),
        trusted_observer: Arc::new(|_| false),
    });
    for h in [&friend, &stranger, &silent_friend] {
        connect(&client, h).await;
        client.identify(&h.peer_id()).await.unwrap();
    }
    // The stranger lists AutoNAT as well: a verdict from it could be a lie about us.
    assert!(client.peer_lists(&stranger.peer_id(), PROTOCOL));
    assert!(!client.peer_lists(&silent_friend.peer_id(), PROTOCOL));
    assert_eq!(super::client::servers(&client), vec![friend.peer_id()]);
}

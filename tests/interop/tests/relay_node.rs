//! The `relay_node` binary: starts, prints its PeerId (derived from the seed) and listen address,
//! answers a plain rust-libp2p dialer's identify with AWL's kad protocol and the relay v2 hop
//! protocol, exits cleanly on SIGTERM, and hands out a peer's advertised `/p2p-circuit` address
//! in FIND_NODE.

use futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{DialError, NetworkBehaviour, SwarmEvent};
use libp2p::{identify, identity, kad, Multiaddr, PeerId, StreamProtocol, SwarmBuilder};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SEED: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const WAIT: Duration = Duration::from_secs(10);

/// Kills the child if the test ends early (panic).
struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(NetworkBehaviour)]
struct Dialer {
    identify: identify::Behaviour,
}

fn free_udp_port() -> u16 {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.local_addr().expect("local addr").port()
}

fn seed_peer_id() -> PeerId {
    let mut seed = [0u8; 32];
    for (i, b) in seed.iter_mut().enumerate() {
        *b = u8::from_str_radix(&SEED[2 * i..2 * i + 2], 16).unwrap();
    }
    identity::Keypair::ed25519_from_bytes(seed)
        .expect("ed25519 seed")
        .public()
        .to_peer_id()
}

/// Starts `relay_node` on 127.0.0.1 at a free UDP port with the fixed seed; returns it with the
/// PeerId and listen address from its stdout line (read off the runtime, with a deadline, so a
/// silent binary fails the test instead of hanging it).
async fn start_node() -> (Node, PeerId, Multiaddr) {
    let port = free_udp_port();
    let mut node = Node(
        Command::new(env!("CARGO_BIN_EXE_relay_node"))
            .args(["--listen", "127.0.0.1", "--port", &port.to_string()])
            .args(["--seed", SEED])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start relay_node"),
    );
    let stdout = node.0.stdout.take().expect("stdout");
    let line = tokio::time::timeout(
        WAIT,
        tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).map(|_| line)
        }),
    )
    .await
    .expect("relay_node prints its line in time")
    .expect("reader task")
    .expect("read stdout");
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields.len(), 3, "line: {line:?}");
    assert_eq!(fields[0], "relay_node", "line: {line:?}");
    let peer_id: PeerId = fields[1].parse().expect("peer id");
    let addr: Multiaddr = fields[2].parse().expect("multiaddr");
    assert_eq!(
        addr,
        format!("/ip4/127.0.0.1/udp/{port}/quic-v1")
            .parse()
            .unwrap()
    );
    (node, peer_id, addr)
}

#[tokio::test]
async fn relay_node_identifies_with_kad_and_hop() {
    let (mut node, peer_id, addr) = start_node().await;
    assert_eq!(peer_id, seed_peer_id(), "PeerId derived from the seed");

    let mut swarm = SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_quic()
        .with_behaviour(|key| Dialer {
            identify: identify::Behaviour::new(identify::Config::new(
                "ipfs/0.1.0".into(),
                key.public(),
            )),
        })
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    swarm
        .dial(addr.with(Protocol::P2p(peer_id)))
        .expect("dial relay_node");

    let info = tokio::time::timeout(WAIT, async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::Behaviour(DialerEvent::Identify(identify::Event::Received {
                    peer_id: p,
                    info,
                    ..
                })) if p == peer_id => return info,
                SwarmEvent::OutgoingConnectionError { error, .. } => {
                    panic!("dialling relay_node failed: {error}")
                }
                _ => {}
            }
        }
    })
    .await
    .expect("identify from relay_node in time");

    assert_eq!(info.agent_version, "rust-libp2p-relay/1.0");
    assert_eq!(info.protocol_version, "ipfs/0.1.0");
    assert_eq!(info.public_key.to_peer_id(), peer_id);
    for p in ["/awl/kad/1.0.0", "/libp2p/circuit/relay/0.2.0/hop"] {
        assert!(
            info.protocols.iter().any(|x| x.as_ref() == p),
            "{p} missing from {:?}",
            info.protocols
        );
    }

    // SIGTERM: exits by itself, with status 0.
    let pid = node.0.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM {pid}");
    let deadline = Instant::now() + WAIT;
    let exit = loop {
        if let Some(s) = node.0.try_wait().expect("try_wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "relay_node ignored SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        exit.success(),
        "relay_node exit status after SIGTERM: {exit}"
    );
}

#[derive(NetworkBehaviour)]
struct KadClient {
    identify: identify::Behaviour,
    kad: kad::Behaviour<kad::store::MemoryStore>,
}

/// A peer that advertises only a `/p2p-circuit` address via the relay (in identify) is handed
/// out by the relay in FIND_NODE: a Kademlia client asking the relay for it then tries exactly
/// that address.
#[tokio::test]
async fn relay_node_hands_out_advertised_circuit_address() {
    let (_node, relay_id, relay_addr) = start_node().await;
    let circuit = relay_addr
        .clone()
        .with(Protocol::P2p(relay_id))
        .with(Protocol::P2pCircuit);

    // A: advertises the circuit address (its only address) to the relay and stays connected.
    let mut a = SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_quic()
        .with_behaviour(|key| Dialer {
            identify: identify::Behaviour::new(identify::Config::new(
                "ipfs/0.1.0".into(),
                key.public(),
            )),
        })
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    let a_id = *a.local_peer_id();
    a.add_external_address(circuit.clone());
    a.dial(relay_addr.clone().with(Protocol::P2p(relay_id)))
        .expect("dial relay_node");
    tokio::spawn(async move {
        loop {
            a.select_next_some().await;
        }
    });

    // B: Kademlia client on AWL's protocol that knows only the relay.
    let mut b = SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_quic()
        .with_behaviour(|key| {
            let id = key.public().to_peer_id();
            let mut kad = kad::Behaviour::with_config(
                id,
                kad::store::MemoryStore::new(id),
                kad::Config::new(StreamProtocol::new("/awl/kad/1.0.0")),
            );
            kad.set_mode(Some(kad::Mode::Client));
            kad.add_address(&relay_id, relay_addr.clone());
            KadClient {
                identify: identify::Behaviour::new(identify::Config::new(
                    "ipfs/0.1.0".into(),
                    key.public(),
                )),
                kad,
            }
        })
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();

    // The relay learns A's address from A's identify, which may arrive after B's first query:
    // query again until B tries A.
    let want = circuit.with(Protocol::P2p(a_id));
    let tried = tokio::time::timeout(WAIT, async {
        b.behaviour_mut().kad.get_closest_peers(a_id);
        loop {
            match b.select_next_some().await {
                SwarmEvent::OutgoingConnectionError {
                    peer_id: Some(p),
                    error: DialError::Transport(errors),
                    ..
                } if p == a_id => {
                    return errors.into_iter().map(|(addr, _)| addr).collect::<Vec<_>>()
                }
                SwarmEvent::Behaviour(KadClientEvent::Kad(
                    kad::Event::OutboundQueryProgressed { step, .. },
                )) if step.last => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    b.behaviour_mut().kad.get_closest_peers(a_id);
                }
                _ => {}
            }
        }
    })
    .await
    .expect("B learns A from relay_node's FIND_NODE answer in time");
    assert_eq!(tried, vec![want]);
}

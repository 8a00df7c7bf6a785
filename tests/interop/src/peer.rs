//! A rust-libp2p node (QUIC v1 and TCP with TLS + yamux, identify, ping) driven from tests through a command channel,
//! reporting what it sees as events. Every wait has a deadline, so a broken peer fails a test
//! instead of hanging it.

use futures::StreamExt;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, identity, ping, Multiaddr, PeerId, SwarmBuilder};
use std::time::Duration;
use tokio::sync::{mpsc, Mutex};

pub const AGENT: &str = "rust-libp2p-interop/1.0";
pub const PROTOCOL_VERSION: &str = "ipfs/0.1.0";
pub const WAIT: Duration = Duration::from_secs(10);

#[derive(NetworkBehaviour)]
struct Behaviour {
    identify: identify::Behaviour,
    ping: ping::Behaviour,
}

#[derive(Debug, Clone)]
pub enum Event {
    Connected {
        peer: PeerId,
    },
    Identified {
        peer: PeerId,
        info: Box<identify::Info>,
    },
    Pinged {
        peer: PeerId,
        rtt: Duration,
    },
    PingFailed {
        peer: PeerId,
        error: String,
    },
    OutgoingError {
        peer: Option<PeerId>,
        error: String,
    },
    Closed {
        peer: PeerId,
    },
}

enum Command {
    Dial(Multiaddr),
}

pub struct Libp2pPeer {
    pub peer_id: PeerId,
    pub listen_addr: Multiaddr,
    /// Its TCP listen address (`/ip4/127.0.0.1/tcp/N`).
    pub tcp_addr: Multiaddr,
    commands: mpsc::UnboundedSender<Command>,
    events: Mutex<mpsc::UnboundedReceiver<Event>>,
}

impl Libp2pPeer {
    /// Starts a node listening on 127.0.0.1 (random UDP port).
    pub async fn spawn() -> Self {
        Self::spawn_with(identity::Keypair::generate_ed25519()).await
    }

    pub async fn spawn_with(key: identity::Keypair) -> Self {
        let mut swarm = SwarmBuilder::with_existing_identity(key)
            .with_tokio()
            .with_tcp(
                libp2p::tcp::Config::default(),
                libp2p::tls::Config::new,
                libp2p::yamux::Config::default,
            )
            .expect("tcp")
            .with_quic()
            .with_behaviour(|key| Behaviour {
                identify: identify::Behaviour::new(
                    identify::Config::new(PROTOCOL_VERSION.into(), key.public())
                        .with_agent_version(AGENT.into()),
                ),
                ping: ping::Behaviour::new(
                    ping::Config::new().with_interval(Duration::from_millis(300)),
                ),
            })
            .expect("behaviour")
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
            .build();
        swarm
            .listen_on("/ip4/127.0.0.1/udp/0/quic-v1".parse().expect("addr"))
            .expect("listen");
        swarm
            .listen_on("/ip4/127.0.0.1/tcp/0".parse().expect("addr"))
            .expect("listen tcp");
        let (mut listen_addr, mut tcp_addr) = (None, None);
        while listen_addr.is_none() || tcp_addr.is_none() {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                if address.to_string().contains("/tcp/") {
                    tcp_addr = Some(address);
                } else {
                    listen_addr = Some(address);
                }
            }
        }
        let (listen_addr, tcp_addr) = (listen_addr.expect("quic"), tcp_addr.expect("tcp"));
        let peer_id = *swarm.local_peer_id();
        let (cmd_tx, mut cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    cmd = cmd_rx.recv() => match cmd {
                        Some(Command::Dial(addr)) => {
                            if let Err(e) = swarm.dial(addr) {
                                let _ = ev_tx.send(Event::OutgoingError { peer: None, error: e.to_string() });
                            }
                        }
                        None => return,
                    },
                    ev = swarm.select_next_some() => {
                        let out = match ev {
                            SwarmEvent::ConnectionEstablished { peer_id, .. } => Some(Event::Connected { peer: peer_id }),
                            SwarmEvent::ConnectionClosed { peer_id, .. } => Some(Event::Closed { peer: peer_id }),
                            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                                Some(Event::OutgoingError { peer: peer_id, error: format!("{error:?}") })
                            }
                            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. })) => {
                                Some(Event::Identified { peer: peer_id, info: Box::new(info) })
                            }
                            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event { peer, result, .. })) => Some(match result {
                                Ok(rtt) => Event::Pinged { peer, rtt },
                                Err(e) => Event::PingFailed { peer, error: e.to_string() },
                            }),
                            _ => None,
                        };
                        if let Some(e) = out {
                            if ev_tx.send(e).is_err() {
                                return;
                            }
                        }
                    }
                }
            }
        });
        Libp2pPeer {
            peer_id,
            listen_addr,
            tcp_addr,
            commands: cmd_tx,
            events: Mutex::new(ev_rx),
        }
    }

    pub fn dial(&self, addr: Multiaddr) {
        let _ = self.commands.send(Command::Dial(addr));
    }

    /// Waits (up to 10 s) for the first event `f` accepts; panics with the events seen if none.
    pub async fn wait<T>(&self, what: &str, mut f: impl FnMut(&Event) -> Option<T>) -> T {
        let mut rx = self.events.lock().await;
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(ev)) => {
                    if let Some(t) = f(&ev) {
                        return t;
                    }
                    seen.push(ev);
                }
                Ok(None) => panic!("rust-libp2p swarm stopped while waiting for {what}"),
                Err(_) => panic!("timed out waiting for {what}; events seen: {seen:#?}"),
            }
        }
    }
}

#[derive(NetworkBehaviour)]
struct KadBehaviour {
    identify: identify::Behaviour,
    kad: libp2p::kad::Behaviour<libp2p::kad::store::MemoryStore>,
}

/// A rust-libp2p Kademlia server on AWL's protocol `/awl/kad/1.0.0` whose routing table holds
/// `entries`; it answers FIND_NODE from it. Returns its PeerId and listen address.
pub async fn spawn_kad_server(entries: Vec<(PeerId, Multiaddr)>) -> (PeerId, Multiaddr) {
    let mut swarm = SwarmBuilder::with_existing_identity(identity::Keypair::generate_ed25519())
        .with_tokio()
        .with_quic()
        .with_behaviour(|key| {
            let id = key.public().to_peer_id();
            let cfg = libp2p::kad::Config::new(libp2p::StreamProtocol::new("/awl/kad/1.0.0"));
            let mut kad = libp2p::kad::Behaviour::with_config(
                id,
                libp2p::kad::store::MemoryStore::new(id),
                cfg,
            );
            kad.set_mode(Some(libp2p::kad::Mode::Server));
            for (p, a) in &entries {
                kad.add_address(p, a.clone());
            }
            KadBehaviour {
                identify: identify::Behaviour::new(
                    identify::Config::new(PROTOCOL_VERSION.into(), key.public())
                        .with_agent_version(AGENT.into()),
                ),
                kad,
            }
        })
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    swarm
        .listen_on("/ip4/127.0.0.1/udp/0/quic-v1".parse().expect("addr"))
        .expect("listen");
    let addr = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
            break address;
        }
    };
    let id = *swarm.local_peer_id();
    tokio::spawn(async move {
        loop {
            swarm.select_next_some().await;
        }
    });
    (id, addr)
}

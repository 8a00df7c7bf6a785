//! A rust-libp2p node running AutoNAT v1 (`libp2p::autonat::v1::Behaviour`, client and server
//! in one) over QUIC on 127.0.0.1, driven from tests like `peer::Libp2pPeer`: it dials on
//! command and reports connections, identify and every AutoNAT event.

use futures::StreamExt;
use libp2p::autonat::v1 as autonat;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, identity, Multiaddr, PeerId, SwarmBuilder};
use std::time::Duration;
use tokio::sync::{mpsc, Mutex};

#[derive(NetworkBehaviour)]
struct Behaviour {
    identify: identify::Behaviour,
    autonat: autonat::Behaviour,
}

#[derive(Debug)]
pub enum Event {
    /// `inbound` with the remote's address as seen (`send_back_addr`), else the address dialled.
    Connected {
        peer: PeerId,
        inbound: bool,
        remote: Multiaddr,
    },
    Identified {
        peer: PeerId,
    },
    Autonat(autonat::Event),
    DialError(String),
}

/// A client that probes soon and often: every second, through any connected peer (loopback
/// counts), and through the same server again without waiting.
pub fn eager_client() -> autonat::Config {
    autonat::Config {
        boot_delay: Duration::from_millis(500),
        retry_interval: Duration::from_secs(1),
        refresh_interval: Duration::from_secs(1),
        throttle_server_period: Duration::ZERO,
        only_global_ips: false,
        ..Default::default()
    }
}

/// A server that answers loopback clients and does not throttle them; it never probes itself.
pub fn loopback_server() -> autonat::Config {
    autonat::Config {
        boot_delay: Duration::from_secs(3600),
        use_connected: false,
        only_global_ips: false,
        throttle_clients_global_max: 1000,
        throttle_clients_peer_max: 1000,
        throttle_clients_period: Duration::from_millis(1),
        ..Default::default()
    }
}

pub struct AutonatPeer {
    pub peer_id: PeerId,
    pub listen_addr: Multiaddr,
    dials: mpsc::UnboundedSender<Multiaddr>,
    events: Mutex<mpsc::UnboundedReceiver<Event>>,
}

impl AutonatPeer {
    /// Starts a node listening on 127.0.0.1 (random UDP port, QUIC v1).
    pub async fn spawn(config: autonat::Config) -> Self {
        let mut swarm = SwarmBuilder::with_existing_identity(identity::Keypair::generate_ed25519())
            .with_tokio()
            .with_quic()
            .with_behaviour(|key| Behaviour {
                identify: identify::Behaviour::new(
                    identify::Config::new(crate::peer::PROTOCOL_VERSION.into(), key.public())
                        .with_agent_version(crate::peer::AGENT.into()),
                ),
                autonat: autonat::Behaviour::new(key.public().to_peer_id(), config),
            })
            .expect("behaviour")
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
            .build();
        swarm
            .listen_on("/ip4/127.0.0.1/udp/0/quic-v1".parse().expect("addr"))
            .expect("listen");
        let listen_addr = loop {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                break address;
            }
        };
        let peer_id = *swarm.local_peer_id();
        let (dial_tx, mut dial_rx) = mpsc::unbounded_channel::<Multiaddr>();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let out = tokio::select! {
                    addr = dial_rx.recv() => match addr {
                        Some(a) => match swarm.dial(a) {
                            Ok(()) => continue,
                            Err(e) => Event::DialError(e.to_string()),
                        },
                        None => return,
                    },
                    ev = swarm.select_next_some() => match ev {
                        SwarmEvent::ConnectionEstablished { peer_id, endpoint, .. } => {
                            Event::Connected {
                                peer: peer_id,
                                inbound: endpoint.is_listener(),
                                remote: endpoint.get_remote_address().clone(),
                            }
                        }
                        SwarmEvent::Behaviour(BehaviourEvent::Identify(
                            identify::Event::Received { peer_id, .. },
                        )) => Event::Identified { peer: peer_id },
                        SwarmEvent::Behaviour(BehaviourEvent::Autonat(e)) => Event::Autonat(e),
                        SwarmEvent::OutgoingConnectionError { error, .. } => {
                            Event::DialError(format!("{error:?}"))
                        }
                        _ => continue,
                    },
                };
                if ev_tx.send(out).is_err() {
                    return;
                }
            }
        });
        AutonatPeer {
            peer_id,
            listen_addr,
            dials: dial_tx,
            events: Mutex::new(ev_rx),
        }
    }

    pub fn dial(&self, addr: Multiaddr) {
        let _ = self.dials.send(addr);
    }

    /// Waits up to `within` for the first event `f` accepts; panics with the events seen if none.
    pub async fn wait<T>(
        &self,
        what: &str,
        within: Duration,
        mut f: impl FnMut(&Event) -> Option<T>,
    ) -> T {
        let mut rx = self.events.lock().await;
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + within;
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

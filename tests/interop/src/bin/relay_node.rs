//! An independent rust-libp2p bootstrap + relay node for awl's end-to-end tests (run inside
//! Linux network namespaces): QUIC v1 and TCP (TLS + yamux) on the same port, identify, ping, Kademlia server on `/awl/kad/1.0.0`,
//! circuit relay v2 server with the limits of AWL's bootstrap nodes, and DCUtR.
//!
//!     relay_node --listen <ip4> --port <udp port> --seed <64 hex chars> [--verbose]
//!
//! Prints exactly one line to stdout once listening, `relay_node <peer id> <listen multiaddr>`,
//! then logs events to stderr, one line each, prefixed with seconds since start. Exits with
//! status 0 on SIGTERM or SIGINT.

use futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    dcutr, identify, identity, kad, ping, relay, Multiaddr, StreamProtocol, SwarmBuilder,
};
use std::io::Write;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};
use tokio::signal::unix::{signal, SignalKind};

const PROTOCOL_VERSION: &str = "ipfs/0.1.0";
const AGENT: &str = "rust-libp2p-relay/1.0";
const KAD_PROTOCOL: &str = "/awl/kad/1.0.0";
const USAGE: &str =
    "usage: relay_node --listen <ip4> --port <udp port> --seed <64 hex chars> [--verbose]";

#[derive(NetworkBehaviour)]
struct Behaviour {
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    kad: kad::Behaviour<kad::store::MemoryStore>,
    relay: relay::Behaviour,
    dcutr: dcutr::Behaviour,
}

struct Args {
    listen: Ipv4Addr,
    port: u16,
    seed: [u8; 32],
    verbose: bool,
}

fn parse_seed(s: &str) -> Result<[u8; 32], String> {
    if s.len() != 64 || !s.is_ascii() {
        return Err(format!(
            "--seed must be 64 hex characters, got {} characters",
            s.len()
        ));
    }
    let mut seed = [0u8; 32];
    for (i, b) in seed.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16)
            .map_err(|e| format!("--seed is not hex: {e}"))?;
    }
    Ok(seed)
}

fn parse_args() -> Result<Args, String> {
    let (mut listen, mut port, mut seed, mut verbose) = (None, None, None, false);
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--listen" => {
                let ip: Ipv4Addr = value()?.parse().map_err(|e| format!("--listen: {e}"))?;
                if ip.is_unspecified() {
                    // The listen address is also announced as the relay's external address.
                    return Err("--listen must be a concrete IPv4 address, not 0.0.0.0".into());
                }
                listen = Some(ip);
            }
            "--port" => port = Some(value()?.parse().map_err(|e| format!("--port: {e}"))?),
            "--seed" => seed = Some(parse_seed(&value()?)?),
            "--verbose" => verbose = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Args {
        listen: listen.ok_or("--listen is required")?,
        port: port.ok_or("--port is required")?,
        seed: seed.ok_or("--seed is required")?,
        verbose,
    })
}

fn relay_config() -> relay::Config {
    // Limits of AWL's bootstrap nodes; the default rate limiters are kept.
    relay::Config {
        max_reservations: 2048,
        reservation_duration: Duration::from_secs(60 * 60),
        max_circuits: 32,
        max_circuits_per_peer: 8,
        max_circuit_duration: Duration::from_secs(2 * 60),
        max_circuit_bytes: 21 << 20,
        ..relay::Config::default()
    }
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("relay_node: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(args).await {
        eprintln!("relay_node: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let log = |msg: String| eprintln!("{:.3} {msg}", start.elapsed().as_secs_f64());
    let verbose = args.verbose;

    let key = identity::Keypair::ed25519_from_bytes(args.seed)?;
    let mut swarm = SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default(),
            libp2p::tls::Config::new,
            libp2p::yamux::Config::default,
        )?
        .with_quic()
        .with_behaviour(|key| {
            let id = key.public().to_peer_id();
            let mut kad_cfg = kad::Config::new(StreamProtocol::new(KAD_PROTOCOL));
            // The node only answers; it does not crawl the peers it is told about.
            kad_cfg.set_periodic_bootstrap_interval(None);
            let mut kad =
                kad::Behaviour::with_config(id, kad::store::MemoryStore::new(id), kad_cfg);
            kad.set_mode(Some(kad::Mode::Server));
            Behaviour {
                identify: identify::Behaviour::new(
                    identify::Config::new(PROTOCOL_VERSION.into(), key.public())
                        .with_agent_version(AGENT.into()),
                ),
                ping: ping::Behaviour::new(ping::Config::new()),
                kad,
                relay: relay::Behaviour::new(id, relay_config()),
                dcutr: dcutr::Behaviour::new(id),
            }
        })?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(5 * 60)))
        .build();
    let local_id = *swarm.local_peer_id();

    let requested = Multiaddr::empty()
        .with(Protocol::Ip4(args.listen))
        .with(Protocol::Udp(args.port))
        .with(Protocol::QuicV1);
    swarm.listen_on(requested.clone())?;
    let listen_addr = loop {
        match swarm.select_next_some().await {
            SwarmEvent::NewListenAddr { address, .. } => break address,
            SwarmEvent::ListenerError { error, .. } => {
                return Err(format!("listening on {requested}: {error}").into())
            }
            SwarmEvent::ListenerClosed { reason, .. } => {
                return Err(format!("listening on {requested}: closed: {reason:?}").into())
            }
            _ => {}
        }
    };
    // Confirmed external address: it enables the relay's hop protocol and is what the relay
    // server puts in Reservation.addrs.
    swarm.add_external_address(listen_addr.clone());
    // TCP on the same port, as AWL's bootstrap nodes listen on tcp and udp 6150.
    let tcp_addr = Multiaddr::empty()
        .with(Protocol::Ip4(args.listen))
        .with(Protocol::Tcp(args.port));
    swarm.listen_on(tcp_addr.clone())?;
    swarm.add_external_address(tcp_addr);
    let circuit_addr = listen_addr
        .clone()
        .with(Protocol::P2p(local_id))
        .with(Protocol::P2pCircuit);

    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "relay_node {local_id} {listen_addr}")?;
        out.flush()?;
    }
    log(format!("listening on {listen_addr} as {local_id}"));

    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    loop {
        let event = tokio::select! {
            _ = sigterm.recv() => { log("SIGTERM, exiting".into()); return Ok(()); }
            _ = sigint.recv() => { log("SIGINT, exiting".into()); return Ok(()); }
            ev = swarm.select_next_some() => ev,
        };
        match event {
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                num_established,
                ..
            } => log(format!(
                "connected {peer_id} {} {} (connections {num_established})",
                if endpoint.is_dialer() { "to" } else { "from" },
                endpoint.get_remote_address()
            )),
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established,
                cause,
                ..
            } => log(format!(
                "disconnected {peer_id} (connections {num_established}): {}",
                cause.map_or("closed".to_string(), |c| c.to_string())
            )),
            SwarmEvent::IncomingConnectionError {
                send_back_addr,
                error,
                ..
            } => log(format!(
                "incoming connection from {send_back_addr} failed: {error}"
            )),
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                log(format!("dial {peer_id:?} failed: {error}"))
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                for addr in &info.listen_addrs {
                    swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer_id, addr.clone());
                }
                log(format!(
                    "identify {peer_id} agent={} listen=[{}] protocols=[{}]",
                    info.agent_version,
                    join(&info.listen_addrs),
                    join(&info.protocols)
                ));
            }
            SwarmEvent::Behaviour(BehaviourEvent::Relay(ev)) => match ev {
                relay::Event::ReservationReqAccepted {
                    src_peer_id,
                    renewed,
                } => {
                    swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&src_peer_id, circuit_addr.clone());
                    log(format!(
                        "reservation accepted {src_peer_id}{}",
                        if renewed { " (renewed)" } else { "" }
                    ));
                }
                relay::Event::ReservationReqDenied {
                    src_peer_id,
                    status,
                } => log(format!("reservation denied {src_peer_id}: {status:?}")),
                relay::Event::ReservationClosed { src_peer_id } => {
                    log(format!("reservation closed {src_peer_id}"))
                }
                relay::Event::ReservationTimedOut { src_peer_id } => {
                    log(format!("reservation timed out {src_peer_id}"))
                }
                relay::Event::CircuitReqAccepted {
                    src_peer_id,
                    dst_peer_id,
                } => log(format!("circuit opened {src_peer_id} -> {dst_peer_id}")),
                relay::Event::CircuitReqDenied {
                    src_peer_id,
                    dst_peer_id,
                    status,
                } => log(format!(
                    "circuit denied {src_peer_id} -> {dst_peer_id}: {status:?}"
                )),
                relay::Event::CircuitClosed {
                    src_peer_id,
                    dst_peer_id,
                    error,
                } => log(format!(
                    "circuit closed {src_peer_id} -> {dst_peer_id}{}",
                    error.map_or(String::new(), |e| format!(": {e}"))
                )),
                other => log(format!("relay {other:?}")),
            },
            SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::InboundRequest { request })) => {
                log(format!("kad inbound {request:?}"))
            }
            SwarmEvent::Behaviour(BehaviourEvent::Dcutr(dcutr::Event {
                remote_peer_id,
                result,
            })) => log(format!("dcutr {remote_peer_id}: {result:?}")),
            other if verbose => log(format!("{other:?}")),
            _ => {}
        }
    }
}

fn join<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

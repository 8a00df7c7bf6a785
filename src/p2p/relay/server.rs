//! The relay side of circuit relay v2 (hop protocol), for a node in serving mode: it keeps
//! reservations for peers behind NAT and splices circuits to them, within configured caps
//! on reservations, circuits, and each circuit's duration and bytes.

use super::wire::{self as relay, HopMessage, HopType, Limit, Reservation, Status, StopMessage};
use crate::p2p::identity::PeerId;
use crate::p2p::{Host, Stream};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Hop streams waiting for the service.
const QUEUE: usize = 32;

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_reservations: usize,
    pub max_circuits: usize,
    pub max_circuits_per_peer: usize,
    pub reservation_ttl: Duration,
    pub circuit: Limit,
}

impl Default for Limits {
    /// AWL's bootstrap relays cut a circuit at 2 min / 21 MiB.
    fn default() -> Self {
        Limits {
            max_reservations: 128,
            max_circuits: 16,
            max_circuits_per_peer: 4,
            reservation_ttl: Duration::from_secs(3600),
            circuit: Limit {
                duration_secs: 120,
                data_bytes: 21 << 20,
            },
        }
    }
}

/// Why a hop request was not served (logged; the client got a status).
#[derive(Debug)]
enum ServeError {
    Timeout,
    Io(std::io::Error),
    NotAllowed,
    UnexpectedStatus,
    ReservationsFull,
    NoPeer,
    NoReservation(PeerId),
    CircuitLimit,
    /// Opening the STOP stream to the target.
    Host(crate::p2p::Error),
    TargetAnswered(Option<Status>),
    TargetSilent,
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServeError::Timeout => f.write_str("timed out"),
            ServeError::Io(e) => write!(f, "{e}"),
            ServeError::NotAllowed => f.write_str("not allowed by policy"),
            ServeError::UnexpectedStatus => f.write_str("unexpected STATUS"),
            ServeError::ReservationsFull => f.write_str("reservations full"),
            ServeError::NoPeer => f.write_str("CONNECT without a peer"),
            ServeError::NoReservation(p) => write!(f, "no reservation for {}", p.short()),
            ServeError::CircuitLimit => f.write_str("circuit limit reached"),
            ServeError::Host(e) => write!(f, "{e}"),
            ServeError::TargetAnswered(s) => write!(f, "target answered {s:?}"),
            ServeError::TargetSilent => f.write_str("target did not answer"),
        }
    }
}

impl From<std::io::Error> for ServeError {
    fn from(e: std::io::Error) -> Self {
        ServeError::Io(e)
    }
}

/// Who may reserve and open circuits.
pub type Policy = Arc<dyn Fn(&PeerId) -> bool + Send + Sync>;

struct Service {
    host: Host,
    limits: Limits,
    policy: Policy,
    /// Peer → reservation expiry (unix seconds).
    reservations: Mutex<HashMap<PeerId, u64>>,
    circuits: AtomicUsize,
    per_peer: Mutex<HashMap<PeerId, usize>>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Starts answering `/libp2p/circuit/relay/0.2.0/hop` on `host`.
pub fn start(host: &Host, limits: Limits, policy: Policy) {
    let mut rx = host.register(relay::HOP_PROTOCOL, QUEUE);
    let svc = Arc::new(Service {
        host: host.clone(),
        limits,
        policy,
        reservations: Mutex::new(HashMap::new()),
        circuits: AtomicUsize::new(0),
        per_peer: Mutex::new(HashMap::new()),
    });
    crate::spawn(async move {
        while let Some(stream) = rx.recv().await {
            let svc = svc.clone();
            crate::spawn(async move {
                let peer = stream.peer.clone();
                if let Err(e) = svc.serve(stream).await {
                    log::debug!("relay request from {}: {e}", peer.short());
                }
            });
        }
    });
}

impl Service {
    async fn serve(self: Arc<Self>, mut s: Stream) -> Result<(), ServeError> {
        let msg = tokio::time::timeout(REQUEST_TIMEOUT, relay::read_hop(&mut s.recv))
            .await
            .map_err(|_| ServeError::Timeout)?;
        let msg = match msg {
            Ok(m) => m,
            Err(e) => {
                self.reply(&mut s, HopMessage::status(Status::MalformedMessage))
                    .await;
                return Err(e.into());
            }
        };
        if !(self.policy)(&s.peer) {
            self.reply(&mut s, HopMessage::status(Status::PermissionDenied))
                .await;
            return Err(ServeError::NotAllowed);
        }
        match msg.kind {
            HopType::Reserve => self.reserve(s).await,
            HopType::Connect => self.connect(s, msg.peer).await,
            HopType::Status => {
                self.reply(&mut s, HopMessage::status(Status::UnexpectedMessage))
                    .await;
                Err(ServeError::UnexpectedStatus)
            }
        }
    }

    async fn reply(&self, s: &mut Stream, msg: HopMessage) {
        let _ = relay::write_msg(&mut s.send, &msg.encode()).await;
    }

    async fn reserve(&self, mut s: Stream) -> Result<(), ServeError> {
        let expire = now() + self.limits.reservation_ttl.as_secs();
        let accepted = {
            let mut r = self.reservations.lock().unwrap_or_else(|e| e.into_inner());
            let t = now();
            r.retain(|_, exp| *exp > t);
            if r.len() >= self.limits.max_reservations && !r.contains_key(&s.peer) {
                false
            } else {
                r.insert(s.peer.clone(), expire);
                true
            }
        };
        if !accepted {
            self.reply(&mut s, HopMessage::status(Status::ReservationRefused))
                .await;
            return Err(ServeError::ReservationsFull);
        }
        let me = self.host.peer_id();
        let mut addrs: Vec<_> = self
            .host
            .listen_addrs()
            .into_iter()
            .chain(self.host.observed_addrs())
            .map(|a| a.with_p2p(&me))
            .collect();
        addrs.dedup();
        let mut msg = HopMessage::status(Status::Ok);
        msg.reservation = Some(Reservation { expire, addrs });
        msg.limit = Some(self.limits.circuit);
        self.reply(&mut s, msg).await;
        s.send.finish().await;
        log::info!("relay: reservation for {}", s.peer.short());
        Ok(())
    }

    fn has_reservation(&self, peer: &PeerId) -> bool {
        let r = self.reservations.lock().unwrap_or_else(|e| e.into_inner());
        r.get(peer).is_some_and(|exp| *exp > now()) && self.host.is_connected(peer)
    }

    /// Takes a circuit slot for `src` and `dst`, or says why not.
    fn take_slot(&self, src: &PeerId, dst: &PeerId) -> bool {
        let mut per = self.per_peer.lock().unwrap_or_else(|e| e.into_inner());
        let cap = self.limits.max_circuits_per_peer;
        if per.get(src).copied().unwrap_or(0) >= cap || per.get(dst).copied().unwrap_or(0) >= cap {
            return false;
        }
        if self
            .circuits
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.limits.max_circuits).then_some(n + 1)
            })
            .is_err()
        {
            return false;
        }
        *per.entry(src.clone()).or_default() += 1;
        *per.entry(dst.clone()).or_default() += 1;
        true
    }

    fn release_slot(&self, src: &PeerId, dst: &PeerId) {
        self.circuits.fetch_sub(1, Ordering::SeqCst);
        let mut per = self.per_peer.lock().unwrap_or_else(|e| e.into_inner());
        for p in [src, dst] {
            if let Some(n) = per.get_mut(p) {
                *n -= 1;
                if *n == 0 {
                    per.remove(p);
                }
            }
        }
    }

    async fn connect(&self, mut s: Stream, target: Option<PeerId>) -> Result<(), ServeError> {
        let Some(dst) = target else {
            self.reply(&mut s, HopMessage::status(Status::MalformedMessage))
                .await;
            return Err(ServeError::NoPeer);
        };
        let src = s.peer.clone();
        if !self.has_reservation(&dst) {
            self.reply(&mut s, HopMessage::status(Status::NoReservation))
                .await;
            return Err(ServeError::NoReservation(dst));
        }
        if !self.take_slot(&src, &dst) {
            self.reply(&mut s, HopMessage::status(Status::ResourceLimitExceeded))
                .await;
            return Err(ServeError::CircuitLimit);
        }
        let r = self.splice(&mut s, &src, &dst).await;
        self.release_slot(&src, &dst);
        r
    }

    async fn splice(&self, s: &mut Stream, src: &PeerId, dst: &PeerId) -> Result<(), ServeError> {
        let limit = self.limits.circuit;
        let stop = async {
            let mut t = self
                .host
                .open_stream(dst, &[relay::STOP_PROTOCOL])
                .await
                .map_err(ServeError::Host)?;
            relay::write_msg(
                &mut t.send,
                &StopMessage::connect(src, Some(limit)).encode(),
            )
            .await?;
            let reply = relay::read_stop(&mut t.recv).await?;
            if reply.status != Some(Status::Ok) {
                return Err(ServeError::TargetAnswered(reply.status));
            }
            Ok(t)
        };
        let mut t = match tokio::time::timeout(REQUEST_TIMEOUT, stop).await {
            Ok(Ok(t)) => t,
            Ok(Err(e)) => {
                self.reply(s, HopMessage::status(Status::ConnectionFailed))
                    .await;
                return Err(e);
            }
            Err(_) => {
                self.reply(s, HopMessage::status(Status::ConnectionFailed))
                    .await;
                return Err(ServeError::TargetSilent);
            }
        };
        let mut ok = HopMessage::status(Status::Ok);
        ok.limit = Some(limit);
        relay::write_msg(&mut s.send, &ok.encode()).await?;
        log::debug!("relay: circuit {} -> {}", src.short(), dst.short());
        let max = if limit.data_bytes == 0 {
            u64::MAX
        } else {
            limit.data_bytes
        };
        let both = async {
            tokio::join!(
                pipe(&mut s.recv, &mut t.send, max),
                pipe(&mut t.recv, &mut s.send, max)
            )
        };
        let (up, down) = if limit.duration_secs == 0 {
            both.await
        } else {
            tokio::time::timeout(Duration::from_secs(limit.duration_secs.into()), both)
                .await
                .unwrap_or_default()
        };
        // Whatever ended it, both sides see the circuit go.
        s.send.reset();
        t.send.reset();
        log::debug!(
            "relay: circuit {} -> {} closed ({up} B up, {down} B down)",
            src.short(),
            dst.short()
        );
        Ok(())
    }
}

/// Copies until EOF, an error or `max` bytes; returns the bytes copied.
async fn pipe<R, W>(r: &mut R, w: &mut W, max: u64) -> u64
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = [0u8; 8192];
    let mut total = 0u64;
    while total < max {
        let want = buf.len().min((max - total).min(buf.len() as u64) as usize);
        let n = match r.read(&mut buf[..want]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if w.write_all(&buf[..n]).await.is_err() {
            break;
        }
        total += n as u64;
    }
    let _ = w.shutdown().await;
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::p2p::dcutr;

    async fn host() -> Host {
        Host::loopback().await
    }

    #[tokio::test]
    async fn circuit_through_relay_then_dcutr_goes_direct() {
        let (a, b, r) = (host().await, host().await, host().await);
        let allow_all: Policy = Arc::new(|_| true);
        start(&r, Limits::default(), allow_all);
        dcutr::serve(&a);
        let r_addr = r.listen_addrs()[0].clone().with_p2p(&r.peer_id());

        // Without a reservation the relay refuses.
        let err = a.dial_relayed(&r_addr, &b.peer_id()).await.unwrap_err();
        assert!(err.to_string().contains("NoReservation"), "{err}");

        b.dial(&r_addr).await.unwrap();
        let (resv, limit) = b.reserve(&r.peer_id()).await.unwrap();
        assert!(resv.addrs.iter().all(|x| x.peer_id() == Some(r.peer_id())));
        assert_eq!(limit.unwrap().duration_secs, 120);

        let mut inbound = b.register("/awl/test/", 4);
        a.dial_relayed(&r_addr, &b.peer_id()).await.unwrap();
        assert!(a.is_relayed(&b.peer_id()));
        assert!(a.remote_addr(&b.peer_id()).unwrap().is_relayed());
        // Identify and ping run over the circuit.
        let info = a.identify(&b.peer_id()).await.unwrap();
        assert_eq!(info.public_key.unwrap().to_peer_id(), b.peer_id());
        a.ping(&b.peer_id()).await.unwrap();
        let mut s = a.open_stream(&b.peer_id(), &["/awl/test/"]).await.unwrap();
        s.send.write_all(b"relayed hello").await.unwrap();
        s.send.finish().await;
        let mut got = inbound.recv().await.unwrap();
        assert_eq!(got.peer, a.peer_id());
        let body = crate::p2p::stream::read_to_end(&mut got.recv, 64)
            .await
            .unwrap();
        assert_eq!(body, b"relayed hello");
        assert!(b.is_relayed(&a.peer_id()));

        // Hole punching is served to friends only: to a stranger, A answers nothing and
        // sends no punch datagram.
        assert!(dcutr::upgrade(&b, &a.peer_id()).await.is_err());
        assert!(!b.has_direct(&a.peer_id()));
        let friend = b.peer_id();
        a.set_trust(crate::p2p::Trust {
            friend: Arc::new(move |p| *p == friend),
            trusted_observer: Arc::new(|_| false),
        });
        // B accepted the circuit, so B starts the hole punch; on loopback it must succeed.
        let took = dcutr::upgrade(&b, &a.peer_id()).await.unwrap();
        assert!(took < Duration::from_secs(10));
        assert!(b.has_direct(&a.peer_id()));
        // A learns of B's dial when its side of the handshake completes.
        for _ in 0..50 {
            if a.has_direct(&b.peer_id()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!a.is_relayed(&b.peer_id()));
        assert!(!b.is_relayed(&a.peer_id()));
        a.ping(&b.peer_id()).await.unwrap();
    }

    #[tokio::test]
    async fn policy_and_caps_are_enforced() {
        let (a, b, r) = (host().await, host().await, host().await);
        let only_b = b.peer_id();
        start(
            &r,
            Limits {
                max_reservations: 1,
                ..Limits::default()
            },
            Arc::new(move |p| *p == only_b),
        );
        let r_addr = r.listen_addrs()[0].clone().with_p2p(&r.peer_id());
        a.dial(&r_addr).await.unwrap();
        let err = a.reserve(&r.peer_id()).await.unwrap_err();
        assert!(err.to_string().contains("PermissionDenied"), "{err}");
        b.dial(&r_addr).await.unwrap();
        b.reserve(&r.peer_id()).await.unwrap();
        // Refreshing one's own reservation is fine at the cap.
        b.reserve(&r.peer_id()).await.unwrap();
    }

    #[tokio::test]
    async fn pipe_stops_at_the_byte_limit() {
        let data = vec![7u8; 10_000];
        let mut r: &[u8] = &data;
        let mut out = Vec::new();
        assert_eq!(pipe(&mut r, &mut out, 4096).await, 4096);
        assert_eq!(out.len(), 4096);
    }
}

//! AWL's auth (friend request) and status protocols, both sides.
//!
//! Unknown peers get nothing but auth: their status and tunnel streams are closed unanswered.
//! Blocked peers get `Declined` on status and silence on auth, as AWL does.
//!
//! The initiator side (`send_auth`, `exchange_status`) returns what the peer said and changes
//! nothing: the caller applies it. The serving side reads and reports through [`FriendsHost`],
//! the few operations of the application it needs.

use crate::base::ratelimit::RateLimiter;
use crate::mesh::messages::{self, AuthRequest, AuthResponse, StatusInfo};
use crate::mesh::peers::{Relation, RequestRefused};
use crate::p2p::identity::PeerId;
use crate::p2p::{Host, Stream};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

/// AWL waits this long for the other side's JSON.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// What the serving side of auth and status needs from the application.
pub trait FriendsHost: Send + Sync {
    fn relation(&self, peer: &PeerId) -> Relation;
    /// Our status for this peer.
    fn status_for(&self, peer: &PeerId) -> StatusInfo;
    /// A known peer sent its status.
    fn apply_status(&self, peer: &PeerId, info: &StatusInfo);
    fn auto_accept(&self) -> bool;
    /// Holds a stranger's friend request (`source`: the address of its direct connection).
    fn add_request(
        &self,
        peer: PeerId,
        name: String,
        source: Option<IpAddr>,
    ) -> Result<(), RequestRefused>;
    /// Accepts a held request (auto-accept); the work is the application's and runs apart.
    fn accept_request(&self, peer: &PeerId);
}

/// Why an auth or status exchange failed.
#[derive(Debug)]
pub enum Error {
    Open(crate::p2p::Error),
    Io(std::io::Error),
    NoReply,
    RateLimited,
    NotKept(RequestRefused),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Open(e) => e.fmt(f),
            Error::Io(e) => e.fmt(f),
            Error::NoReply => f.write_str("no reply"),
            Error::RateLimited => f.write_str("friend requests rate-limited"),
            // Older requests stay: a flood must not push out the genuine one before it.
            Error::NotKept(why) => write!(f, "friend request not kept: {why:?}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}

fn reset(s: &mut Stream) {
    s.recv.stop();
    s.send.reset();
}

async fn write_json(s: &mut Stream, v: &serde_json::Value) -> Result<(), Error> {
    Ok(s.send.write_all(&messages::encode_line(v)).await?)
}

async fn read_json(s: &mut Stream) -> Result<messages::Fields, Error> {
    Ok(
        tokio::time::timeout(REPLY_TIMEOUT, messages::read_object(&mut s.recv))
            .await
            .map_err(|_| Error::NoReply)??,
    )
}

/// The IP address a peer's direct connection comes from (None when relayed).
pub fn request_source(host: &Host, peer: &PeerId) -> Option<IpAddr> {
    if host.is_relayed(peer) {
        return None;
    }
    host.remote_addr(peer)
        .and_then(|a| a.socket_addr())
        .map(|s| s.ip())
}

/// The loops serving inbound auth and status streams, for the caller to spawn and own.
pub fn serve(host: &Host, app: Arc<dyn FriendsHost>) -> [crate::BoxedTask<()>; 2] {
    [
        serve_protocol(host, app.clone(), messages::AUTH_PROTOCOL, |h, a, s| {
            Box::pin(async move { serve_auth(&h, &*a, s).await })
        }),
        serve_protocol(host, app, messages::STATUS_PROTOCOL, |_, a, s| {
            Box::pin(async move { serve_status(&*a, s).await })
        }),
    ]
}

type Handler = fn(
    Host,
    Arc<dyn FriendsHost>,
    Stream,
)
    -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), Error>> + Send>>;

/// One task per inbound stream of `protocol`, at most 16 waiting (more are reset by the host).
fn serve_protocol(
    host: &Host,
    app: Arc<dyn FriendsHost>,
    protocol: &'static str,
    handler: Handler,
) -> crate::BoxedTask<()> {
    let mut inbound = host.register(protocol, 16);
    let host = host.clone();
    crate::boxed(async move {
        // The handlers end with the loop (when its owner stops it).
        let mut handlers = tokio::task::JoinSet::new();
        while let Some(s) = inbound.recv().await {
            while handlers.try_join_next().is_some() {}
            let (h, a) = (host.clone(), app.clone());
            handlers.spawn(crate::boxed(async move {
                let peer = s.peer.clone();
                if let Err(e) = handler(h, a, s).await {
                    log::debug!("{protocol} from {}: {e}", peer.short());
                }
            }));
        }
    })
}

/// Friend requests from strangers, limited three ways: per identity (3 at once, then one per
/// 10 s), per source address (identities are free: 5, then one a minute) and in total (10,
/// then one per 10 s), so a flood of fresh identities cannot crowd out a genuine request.
struct RequestLimits {
    per_peer: RateLimiter<PeerId>,
    per_source: RateLimiter<IpAddr>,
    total: RateLimiter<()>,
}

impl RequestLimits {
    fn new() -> Self {
        RequestLimits {
            per_peer: RateLimiter::new(0.1, 3.0, 256),
            per_source: RateLimiter::new(1.0 / 60.0, 5.0, 256),
            total: RateLimiter::new(0.1, 10.0, 1),
        }
    }

    fn allow(&mut self, peer: &PeerId, source: Option<IpAddr>, now: Instant) -> bool {
        self.per_peer.allow(peer, now)
            && source.is_none_or(|ip| self.per_source.allow(&ip, now))
            && self.total.allow(&(), now)
    }
}

fn request_allowed(peer: &PeerId, source: Option<IpAddr>) -> bool {
    static LIMITS: OnceLock<Mutex<RequestLimits>> = OnceLock::new();
    LIMITS
        .get_or_init(|| Mutex::new(RequestLimits::new()))
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .allow(peer, source, Instant::now())
}

async fn serve_auth(host: &Host, app: &dyn FriendsHost, mut s: Stream) -> Result<(), Error> {
    let relation = app.relation(&s.peer);
    if relation == Relation::Blocked {
        reset(&mut s);
        return Ok(());
    }
    let source = request_source(host, &s.peer);
    if relation != Relation::Known && !request_allowed(&s.peer, source) {
        reset(&mut s);
        return Err(Error::RateLimited);
    }
    let req = AuthRequest::from_fields(&read_json(&mut s).await?)?;
    let known = relation == Relation::Known;
    let auto = app.auto_accept();
    write_json(
        &mut s,
        &AuthResponse {
            confirmed: known,
            declined: false,
        }
        .to_json(),
    )
    .await?;
    s.send.finish().await;
    if known {
        return Ok(());
    }
    app.add_request(s.peer.clone(), req.name.clone(), source)
        .map_err(Error::NotKept)?;
    if auto {
        log::info!(
            "auto-accepting friend request from {} ({:?})",
            s.peer.short(),
            req.name
        );
        app.accept_request(&s.peer);
    } else {
        log::info!(
            "friend request from {} ({:?}): accept with 'awl accept {}'",
            s.peer.short(),
            req.name,
            s.peer
        );
    }
    Ok(())
}

async fn serve_status(app: &dyn FriendsHost, mut s: Stream) -> Result<(), Error> {
    let relation = app.relation(&s.peer);
    if relation == Relation::Unknown {
        reset(&mut s);
        return Ok(());
    }
    let info = StatusInfo::from_fields(&read_json(&mut s).await?)?;
    let ours = app.status_for(&s.peer);
    write_json(&mut s, &ours.to_json()).await?;
    s.send.finish().await;
    if relation == Relation::Known {
        app.apply_status(&s.peer, &info);
    }
    Ok(())
}

/// Initiator side of the status exchange: sends `ours`, returns the peer's status and the
/// round trip (the peer's latency).
pub async fn exchange_status(
    host: &Host,
    peer: &PeerId,
    ours: &StatusInfo,
) -> Result<(StatusInfo, Duration), Error> {
    let mut s = host
        .open_stream(peer, &[messages::STATUS_PROTOCOL])
        .await
        .map_err(Error::Open)?;
    let start = Instant::now();
    write_json(&mut s, &ours.to_json()).await?;
    let reply = read_json(&mut s).await?;
    let rtt = start.elapsed();
    s.send.finish().await;
    Ok((StatusInfo::from_fields(&reply)?, rtt))
}

/// Initiator side of auth (an invite), sent under our `name`. A declined answer is for the
/// caller to record.
pub async fn send_auth(host: &Host, peer: &PeerId, name: String) -> Result<AuthResponse, Error> {
    let mut s = host
        .open_stream(peer, &[messages::AUTH_PROTOCOL])
        .await
        .map_err(Error::Open)?;
    write_json(&mut s, &AuthRequest { name }.to_json()).await?;
    let reply = AuthResponse::from_fields(&read_json(&mut s).await?)?;
    s.send.finish().await;
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::p2p::identity::Keypair;

    #[test]
    fn a_flood_of_identities_is_limited_per_source_and_in_total() {
        let mut l = RequestLimits::new();
        let t = Instant::now();
        let one: IpAddr = "192.0.2.1".parse().unwrap();
        // Fresh identities from one address: 5, then refused.
        let from_one = (0..20)
            .filter(|_| l.allow(&Keypair::generate().peer_id(), Some(one), t))
            .count();
        assert_eq!(from_one, 5);
        // Fresh identities from fresh addresses: the total caps them.
        let spread = (0..50u8)
            .filter(|i| {
                let ip = IpAddr::from([198, 51, 100, *i]);
                l.allow(&Keypair::generate().peer_id(), Some(ip), t)
            })
            .count();
        assert_eq!(spread, 5, "10 in total");
        // A minute later the budget is back in part.
        let later = t + Duration::from_secs(60);
        assert!(l.allow(
            &Keypair::generate().peer_id(),
            Some("203.0.113.9".parse().unwrap()),
            later
        ));
    }
}

//! AWL's auth (friend request) and status protocols, both sides.
//!
//! Unknown peers get nothing but auth: their status and tunnel streams are closed unanswered.
//! Blocked peers get `Declined` on status and silence on auth, as AWL does.

use crate::app::node::Node;
use crate::base::ratelimit::RateLimiter;
use crate::mesh::messages::{self, AuthRequest, AuthResponse, StatusInfo};
use crate::mesh::peers::Relation;
use crate::p2p::identity::PeerId;
use crate::p2p::Stream;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

/// AWL waits this long for the other side's JSON.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

fn reset(s: &mut Stream) {
    s.recv.stop();
    s.send.reset();
}

async fn write_json(s: &mut Stream, v: &serde_json::Value) -> Result<(), String> {
    s.send
        .write_all(&messages::encode_line(v))
        .await
        .map_err(|e| e.to_string())
}

async fn read_json(s: &mut Stream) -> Result<messages::Fields, String> {
    tokio::time::timeout(REPLY_TIMEOUT, messages::read_object(&mut s.recv))
        .await
        .map_err(|_| "no reply".to_string())?
        .map_err(|e| e.to_string())
}

/// Serves inbound auth and status streams.
pub fn start(node: &Arc<Node>) {
    serve(node, messages::AUTH_PROTOCOL, |n, s| {
        Box::pin(async move { serve_auth(&n, s).await })
    });
    serve(node, messages::STATUS_PROTOCOL, |n, s| {
        Box::pin(async move { serve_status(&n, s).await })
    });
}

type Handler =
    fn(
        Arc<Node>,
        Stream,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>;

/// One task per inbound stream of `protocol`, at most 16 waiting (more are reset by the host).
fn serve(node: &Arc<Node>, protocol: &'static str, handler: Handler) {
    let mut inbound = node.host.register(protocol, 16);
    let node = node.clone();
    crate::spawn(async move {
        while let Some(s) = inbound.recv().await {
            let n = node.clone();
            crate::spawn(async move {
                let peer = s.peer.clone();
                if let Err(e) = handler(n, s).await {
                    log::debug!("{protocol} from {}: {e}", peer.short());
                }
            });
        }
    });
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

async fn serve_auth(node: &Arc<Node>, mut s: Stream) -> Result<(), String> {
    let relation = node.relation(&s.peer);
    if relation == Relation::Blocked {
        reset(&mut s);
        return Ok(());
    }
    if relation != Relation::Known && !request_allowed(&s.peer, node.request_source(&s.peer)) {
        reset(&mut s);
        return Err("friend requests rate-limited".into());
    }
    let req = AuthRequest::from_fields(&read_json(&mut s).await?).map_err(|e| e.to_string())?;
    let known = relation == Relation::Known;
    let auto = node.auto_accept();
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
    if let Err(why) = node.add_request(s.peer.clone(), req.name.clone()) {
        // Older requests stay: a flood must not push out the genuine one before it.
        return Err(format!("friend request not kept: {why:?}"));
    }
    if auto {
        log::info!(
            "auto-accepting friend request from {} ({:?})",
            s.peer.short(),
            req.name
        );
        node.accept(&s.peer, None, None).await.map(|_| ())
    } else {
        log::info!(
            "friend request from {} ({:?}): accept with 'awl accept {}'",
            s.peer.short(),
            req.name,
            s.peer
        );
        Ok(())
    }
}

async fn serve_status(node: &Arc<Node>, mut s: Stream) -> Result<(), String> {
    let relation = node.relation(&s.peer);
    if relation == Relation::Unknown {
        reset(&mut s);
        return Ok(());
    }
    let info = StatusInfo::from_fields(&read_json(&mut s).await?).map_err(|e| e.to_string())?;
    let ours = node.status_for(&s.peer);
    write_json(&mut s, &ours.to_json()).await?;
    s.send.finish().await;
    if relation == Relation::Known {
        node.apply_status(&s.peer, &info, None);
    }
    Ok(())
}

/// Initiator side of the status exchange; records the round trip as the peer's latency.
pub async fn exchange_status(node: &Arc<Node>, peer: &PeerId) -> Result<(), String> {
    let mut s = node
        .host
        .open_stream(peer, &[messages::STATUS_PROTOCOL])
        .await
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    write_json(&mut s, &node.status_for(peer).to_json()).await?;
    let reply = read_json(&mut s).await?;
    let rtt = start.elapsed();
    s.send.finish().await;
    let info = StatusInfo::from_fields(&reply).map_err(|e| e.to_string())?;
    node.apply_status(peer, &info, Some(rtt));
    Ok(())
}

/// Initiator side of auth (an invite).
pub async fn send_auth(node: &Arc<Node>, peer: &PeerId) -> Result<AuthResponse, String> {
    let mut s = node
        .host
        .open_stream(peer, &[messages::AUTH_PROTOCOL])
        .await
        .map_err(|e| e.to_string())?;
    write_json(&mut s, &AuthRequest { name: node.name() }.to_json()).await?;
    let reply = AuthResponse::from_fields(&read_json(&mut s).await?).map_err(|e| e.to_string())?;
    s.send.finish().await;
    if reply.declined {
        node.apply_status(
            peer,
            &StatusInfo {
                declined: true,
                ..Default::default()
            },
            None,
        );
    }
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

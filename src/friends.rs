//! AWL's auth (friend request) and status protocols, both sides.
//!
//! Unknown peers get nothing but auth: their status and tunnel streams are closed unanswered.
//! Blocked peers get `Declined` on status and silence on auth, as AWL does.

use crate::identity::PeerId;
use crate::node::Node;
use crate::p2p::Stream;
use crate::peers::Relation;
use crate::proto::messages::{self, AuthRequest, AuthResponse, StatusInfo};
use std::sync::Arc;
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

/// Friend requests a stranger may send: 3 at once, then one per 10 s.
fn auth_allowed(peer: &crate::identity::PeerId) -> bool {
    use crate::ratelimit::RateLimiter;
    use std::sync::{Mutex, OnceLock};
    static LIMIT: OnceLock<Mutex<RateLimiter<crate::identity::PeerId>>> = OnceLock::new();
    LIMIT
        .get_or_init(|| Mutex::new(RateLimiter::new(0.1, 3.0, 256)))
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .allow(peer, Instant::now())
}

async fn serve_auth(node: &Arc<Node>, mut s: Stream) -> Result<(), String> {
    let relation = node.relation(&s.peer);
    if relation == Relation::Blocked {
        reset(&mut s);
        return Ok(());
    }
    if relation != Relation::Known && !auth_allowed(&s.peer) {
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
    if auto {
        log::info!(
            "auto-accepting friend request from {} ('{}')",
            s.peer.short(),
            req.name
        );
        node.add_request(s.peer.clone(), req.name);
        node.accept(&s.peer, None, None).await.map(|_| ())
    } else {
        log::info!(
            "friend request from {} ('{}'): accept with 'awl accept {}'",
            s.peer.short(),
            req.name,
            s.peer
        );
        node.add_request(s.peer.clone(), req.name);
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

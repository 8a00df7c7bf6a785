//! The exit (server) side: serves peers' streams and connects to their destinations.

use super::*;
use crate::p2p::Host;
use std::net::SocketAddr;
use tokio::net::TcpSocket;
use tokio::sync::Semaphore;
use tokio::time::timeout;

/// Serves both SOCKS5 protocols on `host`: peers `policy` allows may use us as their exit.
/// Loopback destinations are refused. Must be called inside a tokio runtime.
pub fn serve(host: &Host, policy: Policy) {
    serve_with(host, policy, false);
}

/// [`serve`] with the loopback check optional. `allow_loopback: true` lets peers reach
/// services on this host and exists for tests only (they have no other destination than
/// 127.0.0.1); production code calls [`serve`].
pub fn serve_with(host: &Host, policy: Policy, allow_loopback: bool) {
    let sessions = Arc::new(Semaphore::new(MAX_SERVER_SESSIONS));
    for protocol in [PROTOCOL_NOAUTH, PROTOCOL_LEGACY] {
        let mut inbound = host.register(protocol, STREAM_QUEUE);
        let policy = policy.clone();
        let sessions = sessions.clone();
        crate::spawn(async move {
            while let Some(mut s) = inbound.recv().await {
                if !policy(&s.peer) {
                    log::info!("socks5: peer {} may not use us as exit", s.peer.short());
                    abandon(&mut s);
                    continue;
                }
                let Ok(permit) = sessions.clone().try_acquire_owned() else {
                    log::debug!("socks5: too many sessions, refusing {}", s.peer.short());
                    abandon(&mut s);
                    continue;
                };
                crate::spawn(async move {
                    server_session(s, allow_loopback).await;
                    drop(permit);
                });
            }
        });
    }
}

/// How the exit ends a session that did not get to relaying.
enum Refusal {
    /// Answer with this reply, then close cleanly.
    Reply(Reply),
    /// Close cleanly (the answer was already sent).
    Close,
    /// Reset the stream.
    Abort(String),
}

async fn server_handshake(
    recv: &mut RecvStream,
    send: &mut SendStream,
    legacy: bool,
) -> Result<Request, Refusal> {
    if legacy {
        let methods = read_greeting(recv)
            .await
            .map_err(|e| Refusal::Abort(format!("greeting: {e}")))?;
        let method = choose_method(&methods);
        send.write_all(&[VERSION, method])
            .await
            .map_err(|e| Refusal::Abort(e.to_string()))?;
        if method != METHOD_NO_AUTH {
            return Err(Refusal::Close);
        }
    }
    let bytes = read_message(recv).await.map_err(|e| match e {
        ReadError::Parse(ParseError::Version(v)) => Refusal::Abort(format!("SOCKS version {v}")),
        ReadError::Parse(p) => Refusal::Reply(p.reply()),
        ReadError::Io(e) => Refusal::Abort(format!("request: {e}")),
    })?;
    let (request, _) = decode_request(&bytes).map_err(|p| Refusal::Reply(p.reply()))?;
    Ok(request)
}

async fn refuse(s: &mut Stream, refusal: Refusal) {
    match refusal {
        Refusal::Reply(reply) => {
            if s.send.write_all(&encode_reply(reply)).await.is_err() {
                abandon(s);
                return;
            }
            s.send.finish().await;
            s.recv.stop();
        }
        Refusal::Close => {
            s.send.finish().await;
            s.recv.stop();
        }
        Refusal::Abort(why) => {
            log::debug!("socks5: session from {} aborted: {why}", s.peer.short());
            abandon(s);
        }
    }
}

async fn server_session(mut s: Stream, allow_loopback: bool) {
    let legacy = s.protocol == PROTOCOL_LEGACY;
    let handshake = timeout(
        HANDSHAKE_TIMEOUT,
        server_handshake(&mut s.recv, &mut s.send, legacy),
    )
    .await;
    let request = match handshake {
        Ok(Ok(r)) => r,
        Ok(Err(refusal)) => return refuse(&mut s, refusal).await,
        Err(_) => return refuse(&mut s, Refusal::Abort("handshake timed out".into())).await,
    };
    if request.command != CMD_CONNECT {
        log::debug!(
            "socks5: {} asked for command {}",
            s.peer.short(),
            request.command
        );
        return refuse(&mut s, Refusal::Reply(Reply::CommandNotSupported)).await;
    }
    let tcp = match connect(&request.dst, allow_loopback).await {
        Ok(t) => t,
        Err(reply) => {
            log::debug!(
                "socks5: {} → {}: refused with {reply:?}",
                s.peer.short(),
                request.dst
            );
            return refuse(&mut s, Refusal::Reply(reply)).await;
        }
    };
    if s.send
        .write_all(&encode_reply(Reply::Succeeded))
        .await
        .is_err()
    {
        return abandon(&mut s);
    }
    log::debug!("socks5: {} → {} connected", s.peer.short(), request.dst);
    match splice(tcp, &mut s.send, &mut s.recv).await {
        Ok((up, down)) => log::debug!(
            "socks5: {} → {} done ({down} bytes out, {up} back)",
            s.peer.short(),
            request.dst
        ),
        Err(e) => {
            log::debug!("socks5: {} → {} ended: {e}", s.peer.short(), request.dst);
            abandon(&mut s);
        }
    }
}

/// Resolves (on the exit) and connects, refusing local destinations unless allowed.
async fn connect(dst: &Address, allow_loopback: bool) -> Result<TcpStream, Reply> {
    let candidates: Vec<SocketAddr> = match dst {
        Address::Ip(a) => vec![*a],
        Address::Domain(name, port) => {
            match timeout(
                CONNECT_TIMEOUT,
                tokio::net::lookup_host((name.as_str(), *port)),
            )
            .await
            {
                Ok(Ok(addrs)) => addrs.collect(),
                Ok(Err(e)) => {
                    log::debug!("socks5: cannot resolve {name}: {e}");
                    return Err(Reply::HostUnreachable);
                }
                Err(_) => return Err(Reply::HostUnreachable),
            }
        }
    };
    if candidates.is_empty() {
        return Err(Reply::HostUnreachable);
    }
    let allowed: Vec<SocketAddr> = candidates
        .into_iter()
        .filter(|a| allow_loopback || !is_local_destination(a.ip()))
        .collect();
    if allowed.is_empty() {
        return Err(Reply::NotAllowed);
    }
    let attempt = async {
        let mut last = None;
        for addr in allowed {
            match connect_marked(addr).await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no address")))
    };
    match timeout(CONNECT_TIMEOUT, attempt).await {
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(s)
        }
        Ok(Err(e)) => Err(reply_for_connect_error(&e)),
        Err(_) => Err(Reply::HostUnreachable),
    }
}

/// Connects with `SO_MARK` = [`crate::sys::sockmark::FWMARK`], so exit traffic is not routed back into
/// the mesh by our own policy rules. Without CAP_NET_ADMIN the socket is left unmarked.
async fn connect_marked(addr: SocketAddr) -> io::Result<TcpStream> {
    use std::os::fd::AsRawFd;
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Err(e) = crate::sys::sockmark::set(socket.as_raw_fd()) {
        log::debug!("socks5: SO_MARK not set: {e}");
    }
    socket.connect(addr).await
}

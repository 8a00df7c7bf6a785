//! The client side: a local SOCKS5 listener that forwards each request to the exit peer.

use super::*;
use crate::p2p::Host;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::timeout;

/// Accepts local SOCKS5 clients on `listener` forever and forwards each request to the exit
/// peer `exit` names at that moment (so a configuration reload applies to new connections).
/// The exit must be connected already; without one the client gets a failure reply.
pub async fn run_client(host: Host, listener: TcpListener, exit: ExitPeer) {
    let sessions = Arc::new(Semaphore::new(MAX_CLIENT_SESSIONS));
    loop {
        let (conn, from) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                log::warn!("socks5: accept failed: {e}");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(permit) = sessions.clone().try_acquire_owned() else {
            log::debug!("socks5: too many local connections, closing {from}");
            continue;
        };
        let host = host.clone();
        let exit = exit.clone();
        crate::spawn(async move {
            client_session(host, conn, exit).await;
            drop(permit);
        });
    }
}

/// Method negotiation and request with the local application. `Ok(None)`: it offered no
/// acceptable method (already answered).
async fn local_handshake(local: &mut TcpStream) -> Result<Option<Vec<u8>>, ReadError> {
    let methods = read_greeting(local).await?;
    let method = choose_method(&methods);
    local.write_all(&[VERSION, method]).await?;
    if method != METHOD_NO_AUTH {
        return Ok(None);
    }
    let request = read_message(local).await?;
    decode_request(&request)?;
    Ok(Some(request))
}

/// Sends the request to the exit and returns its reply, or the reply to give locally.
async fn remote_handshake(s: &mut Stream, request: &[u8]) -> Result<Vec<u8>, Reply> {
    // A stream that fails before the reply: the exit refused us (reset).
    let refused = |e: io::Error| {
        log::debug!("socks5: exit {} refused: {e}", s.peer.short());
        Reply::NotAllowed
    };
    if s.protocol == PROTOCOL_LEGACY {
        s.send
            .write_all(&[VERSION, 1, METHOD_NO_AUTH])
            .await
            .map_err(refused)?;
        let mut answer = [0u8; 2];
        s.recv.read_exact(&mut answer).await.map_err(refused)?;
        if answer != [VERSION, METHOD_NO_AUTH] {
            return Err(Reply::NotAllowed);
        }
    }
    s.send.write_all(request).await.map_err(refused)?;
    match read_message(&mut s.recv).await {
        Ok(reply) => Ok(reply),
        Err(ReadError::Io(e)) => Err(refused(e)),
        Err(ReadError::Parse(e)) => {
            log::debug!("socks5: bad reply from exit {}: {e}", s.peer.short());
            Err(Reply::GeneralFailure)
        }
    }
}

async fn reply_locally(local: &mut TcpStream, reply: Reply) {
    let _ = local.write_all(&encode_reply(reply)).await;
    let _ = local.shutdown().await;
}

async fn client_session(host: Host, mut local: TcpStream, exit: ExitPeer) {
    let request = match timeout(HANDSHAKE_TIMEOUT, local_handshake(&mut local)).await {
        Ok(Ok(Some(r))) => r,
        Ok(Ok(None)) => return,
        Ok(Err(ReadError::Parse(e))) => {
            log::debug!("socks5: bad local request: {e}");
            if !matches!(e, ParseError::Version(_)) {
                reply_locally(&mut local, e.reply()).await;
            }
            return;
        }
        Ok(Err(ReadError::Io(e))) => {
            log::debug!("socks5: local handshake: {e}");
            return;
        }
        Err(_) => return,
    };
    let Some(peer) = exit() else {
        log::debug!("socks5: no exit peer configured");
        return reply_locally(&mut local, Reply::GeneralFailure).await;
    };
    let mut s = match timeout(
        OPEN_TIMEOUT,
        host.open_stream(&peer, &[PROTOCOL_NOAUTH, PROTOCOL_LEGACY]),
    )
    .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            log::debug!("socks5: no stream to exit {}: {e}", peer.short());
            return reply_locally(&mut local, reply_for_open_error(&e)).await;
        }
        Err(_) => {
            log::debug!(
                "socks5: opening a stream to exit {} timed out",
                peer.short()
            );
            return reply_locally(&mut local, Reply::GeneralFailure).await;
        }
    };
    let reply = match timeout(REPLY_TIMEOUT, remote_handshake(&mut s, &request)).await {
        Ok(Ok(r)) => r,
        Ok(Err(reply)) => {
            abandon(&mut s);
            return reply_locally(&mut local, reply).await;
        }
        Err(_) => {
            log::debug!("socks5: exit {} did not reply in time", peer.short());
            abandon(&mut s);
            return reply_locally(&mut local, Reply::GeneralFailure).await;
        }
    };
    if local.write_all(&reply).await.is_err() {
        return abandon(&mut s);
    }
    if reply[1] != Reply::Succeeded.code() {
        let _ = local.shutdown().await;
        s.send.finish().await;
        s.recv.stop();
        return;
    }
    if let Err(e) = splice(local, &mut s.send, &mut s.recv).await {
        log::debug!("socks5: session through {} ended: {e}", peer.short());
        abandon(&mut s);
    }
}

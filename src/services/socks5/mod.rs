//! SOCKS5 exit over libp2p streams, wire-compatible with AWL's `socks5` service.
//!
//! Two protocols carry the same RFC 1928 exchange:
//! - [`PROTOCOL_NOAUTH`] (preferred): the client did the method negotiation with its local
//!   application already, so the stream starts directly with the request
//!   (`05 CMD 00 ATYP ADDR PORT`);
//! - [`PROTOCOL_LEGACY`]: the stream starts with the greeting (`05 N METHODS…`), the exit
//!   answers `05 00`, then the request follows.
//!
//! Either way the exit answers with one reply (on success exactly
//! `05 00 00 01 00 00 00 00 04 38`, a fake bind address 0.0.0.0:1080 as AWL sends), then the
//! stream carries the TCP bytes both ways, with half-close passed through.
//!
//! The exit ([`serve`]) only does CONNECT and refuses destinations on the exit host itself
//! (loopback and the unspecified address), link-local (169.254.0.0/16, fe80::/10), multicast
//! and broadcast addresses, also after resolving a name; LAN destinations are allowed. The client ([`run_client`]) is a local SOCKS5 listener that forwards each request
//! to the exit peer chosen at that moment.
//!
//! Codecs are pure functions (`encode_*`, `decode_*`, [`message_len`]); the async parts
//! read byte-exactly, so data a client pipelines after its request is never lost.

mod exit;
mod proxy;
#[cfg(test)]
mod tests;
mod wire;

pub use exit::{serve, serve_with};
pub use proxy::run_client;
pub use wire::*;

use crate::p2p::identity::PeerId;
use crate::p2p::stream::{RecvStream, SendStream};
use crate::p2p::Stream;
use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const PROTOCOL_NOAUTH: &str = "/awl/0.3.0/socks5-noauth/";
pub const PROTOCOL_LEGACY: &str = "/awl/0.3.0/socks5/";

/// Sessions the exit serves at once (both protocols together); more streams are reset.
pub const MAX_SERVER_SESSIONS: usize = 64;
/// Local connections the client handles at once; more are closed.
pub const MAX_CLIENT_SESSIONS: usize = 64;
/// Inbound streams waiting for the exit's dispatcher, per protocol.
const STREAM_QUEUE: usize = 16;
/// Time allowed for a greeting and a request to arrive (both sides).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time the exit allows for resolving a name, and then for connecting.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time the client allows for opening the stream to the exit.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// Time the client waits for the exit's reply (it may resolve, then connect).
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause after a failed `accept` (e.g. out of file descriptors) before the next one.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Whether a peer may use us as its exit.
pub type Policy = Arc<dyn Fn(&PeerId) -> bool + Send + Sync>;
/// The exit peer to use now (`None`: none configured).
pub type ExitPeer = Arc<dyn Fn() -> Option<PeerId> + Send + Sync>;

#[derive(Debug)]
enum ReadError {
    Io(io::Error),
    Parse(ParseError),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

impl From<ParseError> for ReadError {
    fn from(e: ParseError) -> Self {
        ReadError::Parse(e)
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::Parse(e) => write!(f, "{e}"),
        }
    }
}

/// Reads a greeting and returns its methods.
async fn read_greeting<R: AsyncRead + Unpin>(r: &mut R) -> Result<Vec<u8>, ReadError> {
    let mut head = [0u8; 2];
    r.read_exact(&mut head).await?;
    let mut methods = vec![0u8; greeting_methods(head)?];
    r.read_exact(&mut methods).await?;
    Ok(methods)
}

/// Reads exactly one request or reply (at most [`MAX_MESSAGE`] bytes).
async fn read_message<R: AsyncRead + Unpin>(r: &mut R) -> Result<Vec<u8>, ReadError> {
    let mut buf = vec![0u8; 5];
    r.read_exact(&mut buf).await?;
    let len = message_len(&buf)?;
    buf.resize(len, 0);
    r.read_exact(&mut buf[5..]).await?;
    Ok(buf)
}

/// Copies both ways until EOF on both; an EOF on one side shuts down the write side of the
/// other (half-close). Returns the bytes sent up (TCP → stream) and down.
async fn splice(
    tcp: TcpStream,
    send: &mut SendStream,
    recv: &mut RecvStream,
) -> io::Result<(u64, u64)> {
    let (mut tcp_read, mut tcp_write) = tcp.into_split();
    let up = async {
        let n = tokio::io::copy(&mut tcp_read, send).await?;
        send.finish().await;
        Ok::<_, io::Error>(n)
    };
    let down = async {
        let n = tokio::io::copy(recv, &mut tcp_write).await?;
        tcp_write.shutdown().await?;
        Ok::<_, io::Error>(n)
    };
    tokio::try_join!(up, down)
}

fn abandon(s: &mut Stream) {
    s.send.reset();
    s.recv.stop();
}

//! Ping `/ipfs/ping/1.0.0`: the dialer sends 32 random bytes, the listener echoes them.

use crate::p2p::host::NEGOTIATION_TIMEOUT;
use crate::p2p::identity::PeerId;
use crate::p2p::{Error, Host};
use std::io;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub const PROTOCOL: &str = "/ipfs/ping/1.0.0";
pub const SIZE: usize = 32;
/// Echoes served on one inbound stream before we close it (go-libp2p pings 5× per cycle).
const MAX_ECHOES: usize = 64;

/// One round trip on an open stream.
pub async fn ping<R, W>(r: &mut R, w: &mut W) -> io::Result<Duration>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut payload = [0u8; SIZE];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut payload)
        .map_err(|_| io::Error::other("no randomness"))?;
    let start = Instant::now();
    w.write_all(&payload).await?;
    w.flush().await?;
    let mut echo = [0u8; SIZE];
    r.read_exact(&mut echo).await?;
    if echo != payload {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "ping payload mismatch",
        ));
    }
    Ok(start.elapsed())
}

/// Serves echoes until the dialer closes its side.
pub async fn serve<R, W>(r: &mut R, w: &mut W) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = [0u8; SIZE];
    for _ in 0..MAX_ECHOES {
        match r.read_exact(&mut buf).await {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        w.write_all(&buf).await?;
        w.flush().await?;
    }
    Ok(())
}

impl Host {
    /// Round-trip time to a connected peer over `/ipfs/ping/1.0.0`.
    pub async fn ping(&self, peer: &PeerId) -> Result<Duration, Error> {
        let mut s = self.open_stream(peer, &[PROTOCOL]).await?;
        let rtt = tokio::time::timeout(NEGOTIATION_TIMEOUT, ping(&mut s.recv, &mut s.send))
            .await
            .map_err(|_| Error::Timeout("ping"))??;
        s.send.finish().await;
        Ok(rtt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn echo_round_trip() {
        let (a, b) = tokio::io::duplex(256);
        let (mut ar, mut aw) = tokio::io::split(a);
        let (mut br, mut bw) = tokio::io::split(b);
        let server = crate::spawn(async move { serve(&mut br, &mut bw).await });
        for _ in 0..3 {
            ping(&mut ar, &mut aw).await.unwrap();
        }
        drop(aw);
        drop(ar);
        server.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn wrong_echo_fails() {
        let mut r: &[u8] = &[0u8; 32];
        let mut w = Vec::new();
        assert!(ping(&mut r, &mut w).await.is_err());
    }
}

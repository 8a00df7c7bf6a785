//! The two halves of a libp2p stream, whatever carries it: a QUIC stream on a direct
//! connection, or a yamux stream inside a relayed connection (TLS over a relay circuit).
//!
//! Both implement tokio's `AsyncRead`/`AsyncWrite`, so protocol code is written once.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// A yamux stream (it implements tokio's I/O traits itself).
pub type MuxStream = super::muxer::Stream;

pub enum SendStream {
    Quic(quinn::SendStream),
    Muxed(tokio::io::WriteHalf<MuxStream>),
}

pub enum RecvStream {
    Quic(quinn::RecvStream),
    Muxed(tokio::io::ReadHalf<MuxStream>),
}

impl SendStream {
    /// Ends our side cleanly (the peer reads EOF).
    pub async fn finish(&mut self) {
        match self {
            SendStream::Quic(s) => {
                let _ = s.finish();
            }
            SendStream::Muxed(s) => {
                let _ = s.shutdown().await;
            }
        }
    }

    /// Abandons the stream: the peer sees an error, not EOF. A yamux stream is reset when
    /// it is dropped unfinished.
    pub fn reset(&mut self) {
        if let SendStream::Quic(s) = self {
            let _ = s.reset(0u32.into());
        }
    }
}

impl RecvStream {
    /// Tells the peer we read no more.
    pub fn stop(&mut self) {
        if let RecvStream::Quic(s) = self {
            let _ = s.stop(0u32.into());
        }
    }
}

/// Fills `buf`, or returns `Ok(false)` on a clean EOF before its first byte (the peer
/// finished between two records). EOF inside the record is an error.
pub async fn read_exact_or_eof<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut [u8],
) -> io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        let n = r.read(&mut buf[got..]).await?;
        if n == 0 {
            if got == 0 {
                return Ok(false);
            }
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "stream ended inside a record",
            ));
        }
        got += n;
    }
    Ok(true)
}

impl AsyncWrite for SendStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            SendStream::Quic(s) => Pin::new(s).poll_write(cx, buf).map_err(io::Error::from),
            SendStream::Muxed(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            SendStream::Quic(s) => AsyncWrite::poll_flush(Pin::new(s), cx),
            SendStream::Muxed(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            SendStream::Quic(s) => AsyncWrite::poll_shutdown(Pin::new(s), cx),
            SendStream::Muxed(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

impl AsyncRead for RecvStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            RecvStream::Quic(s) => AsyncRead::poll_read(Pin::new(s), cx, buf),
            RecvStream::Muxed(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

/// Splits a yamux stream into the halves the rest of the code uses.
pub fn split_muxed(s: MuxStream) -> (SendStream, RecvStream) {
    let (r, w) = tokio::io::split(s);
    (SendStream::Muxed(w), RecvStream::Muxed(r))
}

/// Reads at most `limit` bytes to EOF.
pub async fn read_to_end<R: AsyncRead + Unpin>(r: &mut R, limit: usize) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    r.take(limit as u64 + 1).read_to_end(&mut out).await?;
    if out.len() > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("more than {limit} bytes"),
        ));
    }
    Ok(out)
}

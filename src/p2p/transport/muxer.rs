//! A yamux session over a secured byte stream (a relayed connection), driven by one task.
//!
//! yamux's `Connection` only makes progress while polled, so a task owns it: it accepts
//! inbound streams into a bounded channel (more are reset) and opens outbound streams on
//! request. The `Handle` is what the host keeps in its connection table.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::task::Poll;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::compat::TokioAsyncReadCompatExt;

/// Inbound streams waiting for the host before new ones are reset.
const INBOUND_QUEUE: usize = 16;
/// Outbound opens waiting for the driver.
const OPEN_QUEUE: usize = 16;
/// Concurrent streams per relayed connection (go-libp2p's yamux has no cap; a circuit is
/// short-lived and capped by the relay anyway).
const MAX_STREAMS: usize = 64;
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

type OpenReply = oneshot::Sender<Result<yamux::Stream, Error>>;

/// Why a relayed connection's session could not open a stream.
#[derive(Debug)]
pub enum Error {
    Closed,
    OpenTimeout,
    Yamux(yamux::ConnectionError),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Closed => f.write_str("connection closed"),
            Error::OpenTimeout => f.write_str("timed out opening a stream"),
            Error::Yamux(e) => write!(f, "{e}"),
        }
    }
}

#[derive(Clone)]
pub struct Handle {
    open: mpsc::Sender<OpenReply>,
    close: mpsc::Sender<()>,
    closed: watch::Receiver<bool>,
}

impl Handle {
    pub async fn open(&self) -> Result<yamux::Stream, Error> {
        let (tx, rx) = oneshot::channel();
        self.open.send(tx).await.map_err(|_| Error::Closed)?;
        match tokio::time::timeout(OPEN_TIMEOUT, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(Error::Closed),
            Err(_) => Err(Error::OpenTimeout),
        }
    }

    pub fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    /// Resolves when the session has ended.
    pub async fn closed(&self) {
        let mut rx = self.closed.clone();
        let _ = rx.wait_for(|c| *c).await;
    }

    /// Ends the session (also ended when every handle is dropped).
    pub fn close(&self) {
        let _ = self.close.try_send(());
    }
}

/// Starts a yamux session on `io`. Returns the handle and the stream of inbound streams.
pub fn start<T>(io: T, client: bool) -> (Handle, mpsc::Receiver<yamux::Stream>)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut cfg = yamux::Config::default();
    cfg.set_max_num_streams(MAX_STREAMS);
    let mode = if client {
        yamux::Mode::Client
    } else {
        yamux::Mode::Server
    };
    let conn = yamux::Connection::new(io.compat(), cfg, mode);
    let (open_tx, open_rx) = mpsc::channel(OPEN_QUEUE);
    let (in_tx, in_rx) = mpsc::channel(INBOUND_QUEUE);
    let (close_tx, close_rx) = mpsc::channel(1);
    let (closed_tx, closed_rx) = watch::channel(false);
    crate::spawn(async move {
        drive(conn, open_rx, close_rx, in_tx).await;
        let _ = closed_tx.send(true);
    });
    (
        Handle {
            open: open_tx,
            close: close_tx,
            closed: closed_rx,
        },
        in_rx,
    )
}

async fn drive<T>(
    mut conn: yamux::Connection<T>,
    mut open_rx: mpsc::Receiver<OpenReply>,
    mut close_rx: mpsc::Receiver<()>,
    inbound: mpsc::Sender<yamux::Stream>,
) where
    T: futures_util::AsyncRead + futures_util::AsyncWrite + Unpin,
{
    let mut pending: VecDeque<OpenReply> = VecDeque::new();
    let mut closing = false;
    let result: Result<(), yamux::ConnectionError> = poll_fn(|cx| {
        if !closing && close_rx.poll_recv(cx).is_ready() {
            closing = true;
        }
        while !closing {
            match open_rx.poll_recv(cx) {
                Poll::Ready(Some(reply)) => pending.push_back(reply),
                Poll::Ready(None) => closing = true,
                Poll::Pending => break,
            }
        }
        if closing {
            return match conn.poll_close(cx) {
                Poll::Ready(r) => Poll::Ready(r),
                Poll::Pending => Poll::Pending,
            };
        }
        while !pending.is_empty() {
            match conn.poll_new_outbound(cx) {
                Poll::Ready(r) => {
                    if let Some(reply) = pending.pop_front() {
                        let _ = reply.send(r.map_err(Error::Yamux));
                    }
                }
                Poll::Pending => break,
            }
        }
        loop {
            match conn.poll_next_inbound(cx) {
                Poll::Ready(Some(Ok(s))) => {
                    // Full: the stream is dropped, which resets it.
                    let _ = inbound.try_send(s);
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    })
    .await;
    if let Err(e) = result {
        log::debug!("yamux session ended: {e}");
    }
    for reply in pending {
        let _ = reply.send(Err(Error::Closed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn streams_both_ways_and_close() {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let (ha, mut ina) = start(a, true);
        let (hb, mut inb) = start(b, false);
        let s = ha.open().await.unwrap();
        let (mut w, mut r) = crate::p2p::transport::stream::split_muxed(s);
        w.write_all(b"ping").await.unwrap();
        let s2 = inb.recv().await.unwrap();
        let (mut w2, mut r2) = crate::p2p::transport::stream::split_muxed(s2);
        let mut buf = [0u8; 4];
        r2.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        w2.write_all(b"pong").await.unwrap();
        w2.finish().await;
        let got = crate::p2p::transport::stream::read_to_end(&mut r, 16)
            .await
            .unwrap();
        assert_eq!(got, b"pong");
        // The other direction opens too.
        let s3 = hb.open().await.unwrap();
        let (mut w3, _r3) = crate::p2p::transport::stream::split_muxed(s3);
        w3.write_all(b"x").await.unwrap();
        assert!(ina.recv().await.is_some());
        ha.close();
        tokio::time::timeout(Duration::from_secs(5), hb.closed())
            .await
            .expect("peer sees the close");
        assert!(hb.open().await.is_err());
    }
}

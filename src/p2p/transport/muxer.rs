//! A yamux session over a secured byte stream (a relayed connection), driven by one task.
//!
//! An own small yamux (hashicorp's `spec.md`, as rust-libp2p and go-libp2p speak it) on
//! tokio I/O: the `yamux` crate with its futures I/O glue cost ~60 kB on MIPS. The driver
//! task owns the connection: it writes the frames streams queue in the shared [`Inner`] and
//! feeds it what it reads. Inbound streams go to a bounded channel (more are reset). The
//! `Handle` is what the host keeps in its connection table.

#[cfg(test)]
mod crosscheck;
mod frame;
mod session;
#[cfg(test)]
mod tests;

pub use session::Error;
use session::{go_away, Inner, GO_AWAY_NORMAL, GO_AWAY_PROTOCOL};
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, watch};

/// Inbound streams waiting for the host before new ones are reset.
const INBOUND_QUEUE: usize = 16;
/// Bytes read from the connection per read call.
const READ_CHUNK: usize = 16 * 1024;
/// Reads per driver wake-up before it yields to other tasks.
const READS_PER_POLL: usize = 16;

struct Shared(Mutex<Inner>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic aborts (panic = "abort"), so the lock is never poisoned in release.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Ends the session when the last clone of a [`Handle`] goes.
struct Owner(Arc<Shared>);

impl Drop for Owner {
    fn drop(&mut self) {
        let mut inner = self.0.lock();
        inner.closing = true;
        inner.wake_driver();
    }
}

#[derive(Clone)]
pub struct Handle {
    owner: Arc<Owner>,
    closed: watch::Receiver<bool>,
}

impl Handle {
    pub async fn open(&self) -> Result<Stream, Error> {
        let shared = &self.owner.0;
        let id = shared.lock().open()?;
        Ok(Stream {
            id,
            shared: shared.clone(),
        })
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
        let mut inner = self.owner.0.lock();
        inner.closing = true;
        inner.wake_driver();
    }
}

/// The connection under the session, boxed: one copy of the driver whatever carries it.
trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// Starts a yamux session on `io`. Returns the handle and the stream of inbound streams.
pub fn start<T>(io: T, client: bool) -> (Handle, mpsc::Receiver<Stream>)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let shared = Arc::new(Shared(Mutex::new(Inner::new(client))));
    let (in_tx, in_rx) = mpsc::channel(INBOUND_QUEUE);
    let (closed_tx, closed_rx) = watch::channel(false);
    let driver = shared.clone();
    crate::spawn(async move {
        if let Err(e) = drive(Box::new(io), &driver, &in_tx).await {
            log::debug!("yamux session ended: {e}");
        }
        driver.lock().kill();
        let _ = closed_tx.send(true);
    });
    (
        Handle {
            owner: Arc::new(Owner(shared)),
            closed: closed_rx,
        },
        in_rx,
    )
}

async fn drive(
    mut io: Box<dyn Io>,
    shared: &Arc<Shared>,
    inbound: &mpsc::Sender<Stream>,
) -> Result<(), Error> {
    let mut wbuf: Vec<u8> = Vec::new();
    let mut written = 0;
    let mut rbuf = vec![0u8; READ_CHUNK];
    let mut unflushed = false;
    let mut going_away = false;
    poll_fn(|cx| {
        let mut reads = 0;
        loop {
            let mut accepted = Vec::new();
            {
                let mut inner = shared.lock();
                if inner.dead {
                    return Poll::Ready(Err(Error::Closed));
                }
                if inner.closing && !going_away {
                    going_away = true;
                    go_away(GO_AWAY_NORMAL).encode(&mut inner.out);
                }
                if wbuf.is_empty() && !inner.out.is_empty() {
                    std::mem::swap(&mut wbuf, &mut inner.out);
                    for w in inner.blocked.drain(..) {
                        w.wake();
                    }
                }
                inner.driver = Some(cx.waker().clone());
            }
            // Write what is queued.
            let mut io = Pin::new(&mut io);
            while written < wbuf.len() {
                match io.as_mut().poll_write(cx, &wbuf[written..]) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(Error::Closed)),
                    Poll::Ready(Ok(n)) => written += n,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(Error::Io(e))),
                    Poll::Pending => break,
                }
            }
            if written > 0 && written == wbuf.len() {
                wbuf.clear();
                written = 0;
                unflushed = true;
                continue;
            }
            if unflushed {
                match io.as_mut().poll_flush(cx) {
                    Poll::Ready(Ok(())) => unflushed = false,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(Error::Io(e))),
                    Poll::Pending => {}
                }
            }
            if going_away {
                // Our go-away is out: shut the connection and end.
                if wbuf.is_empty() && !unflushed {
                    return io.as_mut().poll_shutdown(cx).map(|_| Ok(()));
                }
                return Poll::Pending;
            }
            // Read what the peer sent.
            if reads == READS_PER_POLL {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let mut rb = ReadBuf::new(&mut rbuf);
            match io.as_mut().poll_read(cx, &mut rb) {
                // The peer closed the connection: a normal end.
                Poll::Ready(Ok(())) if rb.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => {
                    reads += 1;
                    let mut inner = shared.lock();
                    if let Err(e) = inner.on_bytes(rb.filled()) {
                        if matches!(e, Error::GoAway(GO_AWAY_NORMAL)) {
                            return Poll::Ready(Ok(()));
                        }
                        // Tell the peer why, best effort (not after a partly written
                        // frame); then the session ends.
                        if !matches!(e, Error::GoAway(_)) && wbuf.is_empty() {
                            go_away(GO_AWAY_PROTOCOL).encode(&mut inner.out);
                            let out = std::mem::take(&mut inner.out);
                            drop(inner);
                            let _ = io.as_mut().poll_write(cx, &out);
                        }
                        return Poll::Ready(Err(e));
                    }
                    accepted.append(&mut inner.accepted);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(Error::Io(e))),
                Poll::Pending => return Poll::Pending,
            }
            for id in accepted {
                // Full: the stream is dropped, which resets it.
                let _ = inbound.try_send(Stream {
                    id,
                    shared: shared.clone(),
                });
            }
        }
    })
    .await
}

/// One yamux stream, read and written through tokio's I/O traits. Dropped unfinished, it is
/// reset.
pub struct Stream {
    id: u32,
    shared: Arc<Shared>,
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.shared.lock().drop_stream(self.id);
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut inner = self.shared.lock();
        let n = inner.read(self.id, buf.initialize_unfilled());
        if n > 0 {
            buf.advance(n);
            return Poll::Ready(Ok(()));
        }
        let dead = inner.dead;
        let Some(s) = inner.streams.get_mut(&self.id) else {
            return Poll::Ready(Ok(()));
        };
        if s.reset {
            Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()))
        } else if s.remote_fin || buf.remaining() == 0 {
            Poll::Ready(Ok(()))
        } else if dead {
            Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "connection closed",
            )))
        } else {
            s.reader = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        match self.shared.lock().write(self.id, buf, cx.waker()) {
            Ok(0) => Poll::Pending,
            r => Poll::Ready(r),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Queued frames are written by the driver as soon as it runs.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.shared.lock().finish(self.id);
        Poll::Ready(Ok(()))
    }
}

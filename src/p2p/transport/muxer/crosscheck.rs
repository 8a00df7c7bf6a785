//! Our yamux against rust-libp2p's (the `yamux` crate, a dev-dependency only): streams both
//! ways, more data than a window each way at once, half-close and reset.

use super::session::WINDOW;
use super::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::compat::{FuturesAsyncReadCompatExt, TokioAsyncReadCompatExt};

type TheirStream = tokio_util::compat::Compat<yamux::Stream>;

/// Drives a `yamux::Connection` on `io`: inbound streams come out of the receiver, a `()`
/// sent on the returned sender opens one outbound stream (delivered on the same receiver).
fn theirs(
    io: tokio::io::DuplexStream,
    client: bool,
) -> (mpsc::Sender<()>, mpsc::Receiver<(bool, TheirStream)>) {
    let mode = if client {
        yamux::Mode::Client
    } else {
        yamux::Mode::Server
    };
    let mut conn = yamux::Connection::new(io.compat(), yamux::Config::default(), mode);
    let (open_tx, mut open_rx) = mpsc::channel::<()>(4);
    let (tx, rx) = mpsc::channel(16);
    crate::spawn(async move {
        let mut want = 0usize;
        let _ = poll_fn(|cx| {
            while let Poll::Ready(Some(())) = open_rx.poll_recv(cx) {
                want += 1;
            }
            while want > 0 {
                match conn.poll_new_outbound(cx) {
                    Poll::Ready(Ok(s)) => {
                        want -= 1;
                        let _ = tx.try_send((true, s.compat()));
                    }
                    Poll::Ready(Err(_)) => return Poll::Ready(()),
                    Poll::Pending => break,
                }
            }
            loop {
                match conn.poll_next_inbound(cx) {
                    Poll::Ready(Some(Ok(s))) => {
                        let _ = tx.try_send((false, s.compat()));
                    }
                    Poll::Ready(_) => return Poll::Ready(()),
                    Poll::Pending => return Poll::Pending,
                }
            }
        })
        .await;
    });
    (open_tx, rx)
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ seed).collect()
}

/// Writes `out` and reads the other side's data to EOF at the same time.
async fn exchange<S>(s: S, out: Vec<u8>) -> Vec<u8>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut r, mut w) = tokio::io::split(s);
    let writer = crate::spawn(async move {
        w.write_all(&out).await.unwrap();
        w.shutdown().await.unwrap();
        w
    });
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), r.read_to_end(&mut got))
        .await
        .expect("in time")
        .unwrap();
    let _w = writer.await.unwrap();
    got
}

#[tokio::test]
async fn our_client_their_server() {
    let (a, b) = tokio::io::duplex(16 * 1024);
    let (ours, mut our_in) = start(a, true);
    let (their_open, mut their_in) = theirs(b, false);
    let big = 3 * WINDOW as usize + 1234;
    for round in 0..3u8 {
        let s = ours.open().await.unwrap();
        let mine = crate::spawn(exchange(s, pattern(big, round)));
        let (outbound, t) = their_in.recv().await.unwrap();
        assert!(!outbound);
        let got_theirs = exchange(t, pattern(big + 7, round ^ 0x55)).await;
        assert!(got_theirs == pattern(big, round));
        assert!(mine.await.unwrap() == pattern(big + 7, round ^ 0x55));
    }
    // Their side opens a stream to us.
    their_open.send(()).await.unwrap();
    let (outbound, t) = their_in.recv().await.unwrap();
    assert!(outbound);
    let theirs_done = crate::spawn(exchange(t, b"from rust-libp2p".to_vec()));
    let s = our_in.recv().await.unwrap();
    assert_eq!(exchange(s, b"from awl".to_vec()).await, b"from rust-libp2p");
    assert_eq!(theirs_done.await.unwrap(), b"from awl");
}

#[tokio::test]
async fn their_client_our_server_and_resets() {
    let (a, b) = tokio::io::duplex(16 * 1024);
    let (_ours, mut our_in) = start(a, false);
    let (their_open, mut their_in) = theirs(b, true);
    their_open.send(()).await.unwrap();
    let (_, mut t) = their_in.recv().await.unwrap();
    t.write_all(b"hello").await.unwrap();
    let mut s = our_in.recv().await.unwrap();
    let mut buf = [0u8; 5];
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"hello");
    // Dropped unfinished on our side: theirs sees the stream end abnormally or at EOF, and
    // never blocks.
    drop(s);
    let mut rest = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(5), t.read_to_end(&mut rest))
        .await
        .expect("their read ends");
    assert!(r.is_err() || rest.is_empty());
    // Two streams at once, each a window and a half each way. (With more, rust-yamux
    // against itself stalls in this echo set-up too.)
    let n = 2;
    for _ in 0..n {
        their_open.send(()).await.unwrap();
    }
    let size = WINDOW as usize * 3 / 2;
    let mut jobs = Vec::new();
    for i in 0..n {
        let (_, t) = their_in.recv().await.unwrap();
        jobs.push(crate::spawn(exchange(t, pattern(size, i as u8))));
    }
    let mut mine = Vec::new();
    for _ in 0..n {
        let s = our_in.recv().await.unwrap();
        mine.push(crate::spawn(async move {
            let (mut r, mut w) = tokio::io::split(s);
            // Echo: their data comes back.
            tokio::io::copy(&mut r, &mut w).await.unwrap();
            w.shutdown().await.unwrap();
        }));
    }
    for (i, j) in jobs.into_iter().enumerate() {
        assert!(j.await.unwrap() == pattern(size, i as u8));
    }
    for m in mine {
        m.await.unwrap();
    }
}

/// Throughput of one stream over an in-memory pipe, ours against rust-libp2p's yamux (both
/// ends the same implementation): `cargo test --release --lib muxer_throughput -- --ignored
/// --nocapture`.
#[tokio::test]
#[ignore]
async fn muxer_throughput() {
    const TOTAL: usize = 1 << 30;
    let chunk = vec![0x5au8; 64 * 1024];
    for round in 0..3 {
        // Ours.
        let (a, b) = tokio::io::duplex(64 * 1024);
        let (ha, _ia) = start(a, true);
        let (_hb, mut ib) = start(b, false);
        let t0 = std::time::Instant::now();
        let mut s = ha.open().await.unwrap();
        let c = chunk.clone();
        let w = crate::spawn(async move {
            for _ in 0..TOTAL / c.len() {
                s.write_all(&c).await.unwrap();
            }
            s.shutdown().await.unwrap();
            s
        });
        let mut r = ib.recv().await.unwrap();
        let n = tokio::io::copy(&mut r, &mut tokio::io::sink())
            .await
            .unwrap();
        drop(w.await.unwrap());
        assert_eq!(n as usize, TOTAL);
        let ours = n as f64 * 8.0 / t0.elapsed().as_secs_f64() / 1e6;
        // Theirs.
        let (a, b) = tokio::io::duplex(64 * 1024);
        let (open, mut ia) = theirs(a, true);
        let (_o, mut ib) = theirs(b, false);
        let t0 = std::time::Instant::now();
        open.send(()).await.unwrap();
        let (_, mut s) = ia.recv().await.unwrap();
        let c = chunk.clone();
        let w = crate::spawn(async move {
            for _ in 0..TOTAL / c.len() {
                s.write_all(&c).await.unwrap();
            }
            s.shutdown().await.unwrap();
            s
        });
        let (_, mut r) = ib.recv().await.unwrap();
        let n = tokio::io::copy(&mut r, &mut tokio::io::sink())
            .await
            .unwrap();
        drop(w.await.unwrap());
        assert_eq!(n as usize, TOTAL);
        let them = n as f64 * 8.0 / t0.elapsed().as_secs_f64() / 1e6;
        eprintln!("round {round}: ours {ours:.0} Mbit/s, yamux crate {them:.0} Mbit/s");
    }
}

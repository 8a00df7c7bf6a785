use super::frame::{FrameError, Header, Kind, ACK, FIN, HEADER_LEN, RST, SYN};
use super::session::{Inner, MAX_DATA_FRAME, MAX_STREAMS, WINDOW};
use super::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

fn frame(kind: Kind, flags: u16, stream: u32, length: u32) -> Vec<u8> {
    let mut v = Vec::new();
    Header::new(kind, flags, stream, length).encode(&mut v);
    v
}

async fn read_header(peer: &mut DuplexStream) -> Header {
    let mut b = [0u8; HEADER_LEN];
    tokio::time::timeout(Duration::from_secs(5), peer.read_exact(&mut b))
        .await
        .expect("a frame in time")
        .unwrap();
    Header::decode(&b).unwrap()
}

/// Our session as a server on one end, the raw other end for the test to speak frames.
fn raw_peer() -> (Handle, mpsc::Receiver<Stream>, DuplexStream) {
    let (a, b) = tokio::io::duplex(1 << 20);
    let (h, inbound) = start(a, false);
    (h, inbound, b)
}

async fn ends(h: &Handle) {
    tokio::time::timeout(Duration::from_secs(5), h.closed())
        .await
        .expect("the session ends");
}

#[test]
fn header_round_trip_and_bad_headers() {
    let h = Header::new(Kind::WindowUpdate, SYN | ACK, 0x0102_0304, 0xdead_beef);
    let mut v = Vec::new();
    h.encode(&mut v);
    assert_eq!(v, [0, 1, 0, 3, 1, 2, 3, 4, 0xde, 0xad, 0xbe, 0xef]);
    assert_eq!(Header::decode(&v.clone().try_into().unwrap()), Ok(h));
    let mut bad = [0u8; HEADER_LEN];
    bad[0] = 1;
    assert_eq!(Header::decode(&bad), Err(FrameError::Version(1)));
    bad[0] = 0;
    bad[1] = 4;
    assert_eq!(Header::decode(&bad), Err(FrameError::Kind(4)));
}

#[test]
fn send_window_limits_writes_until_credit_comes() {
    let mut s = Inner::new(true);
    let id = s.open().unwrap();
    assert_eq!(id, 1);
    s.out.clear();
    let waker = std::task::Waker::noop();
    let data = vec![7u8; MAX_DATA_FRAME];
    let mut sent = 0;
    loop {
        let n = s.write(id, &data, waker).unwrap();
        if n == 0 {
            break;
        }
        sent += n;
        s.out.clear();
    }
    assert_eq!(sent, WINDOW as usize);
    // The peer grants 100 bytes more: exactly those may go.
    s.on_bytes(&frame(Kind::WindowUpdate, 0, id, 100)).unwrap();
    assert_eq!(s.write(id, &data, waker).unwrap(), 100);
    assert_eq!(s.write(id, &data, waker).unwrap(), 0);
}

#[test]
fn receive_window_is_returned_after_half_is_read() {
    let mut s = Inner::new(false);
    let mut input = frame(Kind::WindowUpdate, SYN, 1, 0);
    input.extend(frame(Kind::Data, 0, 1, WINDOW));
    input.extend(vec![1u8; WINDOW as usize]);
    s.on_bytes(&input).unwrap();
    assert_eq!(s.accepted, [1]);
    s.out.clear();
    // The window is used up: one byte more breaks the protocol.
    let mut more = frame(Kind::Data, 0, 1, 1);
    more.push(0);
    let mut buf = vec![0u8; WINDOW as usize / 2];
    assert_eq!(s.read(1, &mut buf), WINDOW as usize / 2);
    let mut want = Vec::new();
    Header::new(Kind::WindowUpdate, 0, 1, WINDOW / 2).encode(&mut want);
    assert_eq!(s.out, want);
    s.on_bytes(&more).unwrap();
    let mut over = frame(Kind::Data, 0, 1, WINDOW / 2);
    over.extend(vec![0u8; WINDOW as usize / 2]);
    assert!(matches!(s.on_bytes(&over), Err(Error::Protocol(_))));
}

#[test]
fn frames_split_anywhere_are_read_alike() {
    let mut input = frame(Kind::WindowUpdate, SYN, 1, 0);
    input.extend(frame(Kind::Data, FIN, 1, 5));
    input.extend(b"hello");
    input.extend(frame(Kind::Ping, SYN, 0, 42));
    for cut in 0..input.len() {
        let mut s = Inner::new(false);
        s.on_bytes(&input[..cut]).unwrap();
        s.on_bytes(&input[cut..]).unwrap();
        let st = &s.streams[&1];
        assert!(st.remote_fin, "cut at {cut}");
        assert_eq!(st.recv.iter().copied().collect::<Vec<u8>>(), b"hello");
        let mut want = frame(Kind::WindowUpdate, ACK, 1, 0);
        want.extend(frame(Kind::Ping, ACK, 0, 42));
        assert_eq!(s.out, want);
    }
}

#[test]
fn bad_input_is_a_session_error() {
    let cases: [(&str, Vec<u8>); 5] = [
        ("version", vec![1; HEADER_LEN]),
        ("our own parity", frame(Kind::WindowUpdate, SYN, 2, 0)),
        ("stream 0", frame(Kind::Data, 0, 0, 0)),
        ("twice", {
            let mut v = frame(Kind::WindowUpdate, SYN, 1, 0);
            v.extend(frame(Kind::WindowUpdate, SYN, 1, 0));
            v
        }),
        ("overflow", {
            let mut v = frame(Kind::WindowUpdate, SYN, 1, 0);
            v.extend(frame(Kind::WindowUpdate, 0, 1, u32::MAX));
            v
        }),
    ];
    for (what, input) in cases {
        let mut s = Inner::new(false);
        assert!(s.on_bytes(&input).is_err(), "{what}");
    }
}

#[tokio::test]
async fn streams_both_ways_and_close() {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let (ha, mut ina) = start(a, true);
    let (hb, mut inb) = start(b, false);
    let s = ha.open().await.unwrap();
    let (mut w, mut r) = crate::p2p::stream::split_muxed(s);
    w.write_all(b"ping").await.unwrap();
    let s2 = inb.recv().await.unwrap();
    let (mut w2, mut r2) = crate::p2p::stream::split_muxed(s2);
    let mut buf = [0u8; 4];
    r2.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
    w2.write_all(b"pong").await.unwrap();
    w2.finish().await;
    let got = crate::p2p::stream::read_to_end(&mut r, 16).await.unwrap();
    assert_eq!(got, b"pong");
    // The other direction opens too.
    let s3 = hb.open().await.unwrap();
    let (mut w3, _r3) = crate::p2p::stream::split_muxed(s3);
    w3.write_all(b"x").await.unwrap();
    assert!(ina.recv().await.is_some());
    ha.close();
    ends(&hb).await;
    assert!(hb.open().await.is_err());
}

#[tokio::test]
async fn a_megabyte_through_the_windows() {
    let (a, b) = tokio::io::duplex(8 * 1024);
    let (ha, _ina) = start(a, true);
    let (_hb, mut inb) = start(b, false);
    let mut s = ha.open().await.unwrap();
    let data: Vec<u8> = (0..4 * WINDOW).map(|i| (i % 251) as u8).collect();
    let expect = data.clone();
    let writer = crate::spawn(async move {
        s.write_all(&data).await.unwrap();
        s.shutdown().await.unwrap();
        s
    });
    let mut r = inb.recv().await.unwrap();
    let mut got = Vec::new();
    r.read_to_end(&mut got).await.unwrap();
    assert!(got == expect);
    drop(writer.await.unwrap());
}

#[tokio::test]
async fn ping_is_answered() {
    let (_h, _in, mut peer) = raw_peer();
    peer.write_all(&frame(Kind::Ping, SYN, 0, 0x1234_5678))
        .await
        .unwrap();
    let h = read_header(&mut peer).await;
    assert_eq!(h, Header::new(Kind::Ping, ACK, 0, 0x1234_5678));
}

#[tokio::test]
async fn malformed_frame_closes_the_session_with_a_protocol_go_away() {
    let (h, _in, mut peer) = raw_peer();
    peer.write_all(&[0, 9, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0])
        .await
        .unwrap();
    ends(&h).await;
    assert_eq!(
        read_header(&mut peer).await,
        Header::new(Kind::GoAway, 0, 0, 1)
    );
    assert!(h.open().await.is_err());
}

#[tokio::test]
async fn data_beyond_the_window_closes_the_session() {
    let (h, mut inbound, mut peer) = raw_peer();
    peer.write_all(&frame(Kind::WindowUpdate, SYN, 1, 0))
        .await
        .unwrap();
    let s = inbound.recv().await.unwrap();
    peer.write_all(&frame(Kind::Data, 0, 1, WINDOW + 1))
        .await
        .unwrap();
    ends(&h).await;
    let mut s = s;
    let mut buf = [0u8; 1];
    assert!(s.read(&mut buf).await.is_err());
}

#[tokio::test]
async fn streams_beyond_the_cap_are_reset_and_dropped_ones_too() {
    let (_h, mut inbound, mut peer) = raw_peer();
    let mut held = Vec::new();
    for i in 0..MAX_STREAMS as u32 + 1 {
        let id = 2 * i + 1;
        peer.write_all(&frame(Kind::WindowUpdate, SYN, id, 0))
            .await
            .unwrap();
        let h = read_header(&mut peer).await;
        if (i as usize) < MAX_STREAMS {
            assert_eq!(h, Header::new(Kind::WindowUpdate, ACK, id, 0));
            held.push(inbound.recv().await.unwrap());
        } else {
            assert_eq!(h, Header::new(Kind::WindowUpdate, RST, id, 0));
        }
    }
    // Dropped without finishing: reset.
    drop(held.remove(0));
    assert_eq!(
        read_header(&mut peer).await,
        Header::new(Kind::Data, RST, 1, 0)
    );
    // Finished, then dropped: a FIN and nothing more.
    let mut s = held.remove(0);
    s.shutdown().await.unwrap();
    drop(s);
    assert_eq!(
        read_header(&mut peer).await,
        Header::new(Kind::Data, FIN, 3, 0)
    );
}

#[tokio::test]
async fn reset_by_the_peer_fails_reads_and_writes() {
    let (_h, mut inbound, mut peer) = raw_peer();
    peer.write_all(&frame(Kind::WindowUpdate, SYN, 1, 0))
        .await
        .unwrap();
    let mut s = inbound.recv().await.unwrap();
    peer.write_all(&frame(Kind::Data, RST, 1, 0)).await.unwrap();
    let mut buf = [0u8; 1];
    let e = s.read(&mut buf).await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::ConnectionReset);
    assert!(s.write_all(b"x").await.is_err());
}

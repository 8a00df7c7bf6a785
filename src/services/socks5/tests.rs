use super::*;
use crate::p2p::identity::Keypair;
use crate::p2p::Host;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio::time::timeout;

const T: Duration = Duration::from_secs(20);
const SUCCESS: [u8; 10] = [5, 0, 0, 1, 0, 0, 0, 0, 4, 0x38];

async fn host() -> Host {
    Host::loopback().await
}

/// A (client side) connected to B (exit side).
async fn pair() -> (Host, Host) {
    let a = host().await;
    let b = host().await;
    a.dial(&b.listen_addrs()[0]).await.unwrap();
    (a, b)
}

fn allow_all() -> Policy {
    Arc::new(|_: &PeerId| true)
}

async fn echo_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    crate::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            crate::spawn(async move {
                let (mut r, mut w) = s.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

/// A local SOCKS5 listener on A using `exit`.
async fn client(a: &Host, exit: Option<PeerId>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    crate::spawn(run_client(a.clone(), l, Arc::new(move || exit.clone())));
    addr
}

/// Greeting and CONNECT to `dst` through the proxy at `proxy`: the stream and the reply.
async fn socks_connect(proxy: SocketAddr, dst: Address) -> (TcpStream, Vec<u8>) {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(&[5, 2, 2, 0]).await.unwrap();
    let mut m = [0u8; 2];
    timeout(T, s.read_exact(&mut m)).await.unwrap().unwrap();
    assert_eq!(m, [5, 0]);
    let req = encode_request(&Request {
        command: CMD_CONNECT,
        dst,
    })
    .unwrap();
    s.write_all(&req).await.unwrap();
    let reply = timeout(T, read_message(&mut s)).await.unwrap().unwrap();
    (s, reply)
}

async fn assert_echoes(mut s: TcpStream) {
    s.write_all(b"hello through the exit").await.unwrap();
    // Half-close: the echo server sees EOF, finishes, and we read everything to EOF.
    s.shutdown().await.unwrap();
    let mut got = Vec::new();
    timeout(T, s.read_to_end(&mut got)).await.unwrap().unwrap();
    assert_eq!(got, b"hello through the exit");
}

#[tokio::test]
async fn connect_through_exit_echoes() {
    let (a, b) = pair().await;
    serve_with(&b, allow_all(), true);
    let echo = echo_server().await;
    let proxy = client(&a, Some(b.peer_id())).await;

    let (s, reply) = socks_connect(proxy, Address::Ip(echo)).await;
    assert_eq!(reply, SUCCESS);
    assert_echoes(s).await;

    // A domain resolved on the exit (localhost may give ::1 first: the next one is tried).
    let (s, reply) = socks_connect(proxy, Address::Domain("localhost".into(), echo.port())).await;
    assert_eq!(reply, SUCCESS);
    assert_echoes(s).await;
}

#[tokio::test]
async fn denied_peer_gets_failure_reply() {
    let (a, b) = pair().await;
    serve_with(&b, Arc::new(|_: &PeerId| false), true);
    let echo = echo_server().await;
    let proxy = client(&a, Some(b.peer_id())).await;
    let (_s, reply) = socks_connect(proxy, Address::Ip(echo)).await;
    assert_eq!(reply, encode_reply(Reply::NotAllowed));
}

#[tokio::test]
async fn loopback_destination_is_not_allowed() {
    let (a, b) = pair().await;
    serve(&b, allow_all());
    let echo = echo_server().await;
    let proxy = client(&a, Some(b.peer_id())).await;
    let (_s, reply) = socks_connect(proxy, Address::Ip(echo)).await;
    assert_eq!(reply[1], Reply::NotAllowed.code());
    let (_s, reply) = socks_connect(proxy, Address::Domain("localhost".into(), echo.port())).await;
    assert_eq!(reply[1], Reply::NotAllowed.code());
    let (_s, reply) = socks_connect(proxy, Address::Ip("0.0.0.0:1".parse().unwrap())).await;
    assert_eq!(reply[1], Reply::NotAllowed.code());
}

#[tokio::test]
async fn no_exit_configured_gets_general_failure() {
    let a = host().await;
    let proxy = client(&a, None).await;
    let (_s, reply) = socks_connect(proxy, Address::Ip("192.0.2.1:80".parse().unwrap())).await;
    assert_eq!(reply, [5, 1, 0, 1, 0, 0, 0, 0, 0, 0]);
}

#[tokio::test]
async fn local_client_without_noauth_method_is_refused() {
    let a = host().await;
    let proxy = client(&a, None).await;
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(&[5, 1, 2]).await.unwrap();
    let mut got = Vec::new();
    timeout(T, s.read_to_end(&mut got)).await.unwrap().unwrap();
    assert_eq!(got, [5, 0xff]);
}

#[tokio::test]
async fn legacy_protocol_by_hand() {
    let (a, b) = pair().await;
    serve_with(&b, allow_all(), true);
    let echo = echo_server().await;
    let mut s = a
        .open_stream(&b.peer_id(), &[PROTOCOL_LEGACY])
        .await
        .unwrap();
    assert_eq!(s.protocol, PROTOCOL_LEGACY);
    s.send.write_all(&[5, 1, 0]).await.unwrap();
    let mut m = [0u8; 2];
    timeout(T, s.recv.read_exact(&mut m))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m, [5, 0]);
    let req = encode_request(&Request {
        command: CMD_CONNECT,
        dst: Address::Ip(echo),
    })
    .unwrap();
    s.send.write_all(&req).await.unwrap();
    let mut reply = [0u8; 10];
    timeout(T, s.recv.read_exact(&mut reply))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply, SUCCESS);
    s.send.write_all(b"ping").await.unwrap();
    s.send.finish().await;
    let got = timeout(T, crate::p2p::stream::read_to_end(&mut s.recv, 64))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, b"ping");
}

#[tokio::test]
async fn noauth_stream_unsupported_command_and_address_type() {
    let (a, b) = pair().await;
    serve_with(&b, allow_all(), true);
    // The exit's whole answer to one raw request on a noauth stream.
    let answer = |req: &'static [u8]| {
        let (a, b) = (a.clone(), b.clone());
        async move {
            let mut s = a
                .open_stream(&b.peer_id(), &[PROTOCOL_NOAUTH])
                .await
                .unwrap();
            s.send.write_all(req).await.unwrap();
            timeout(T, crate::p2p::stream::read_to_end(&mut s.recv, 64))
                .await
                .unwrap()
                .unwrap()
        }
    };
    // BIND (2): command not supported.
    assert_eq!(
        answer(&[5, 2, 0, 1, 127, 0, 0, 1, 0, 80]).await,
        encode_reply(Reply::CommandNotSupported)
    );
    // ATYP 9: address type not supported.
    assert_eq!(
        answer(&[5, 1, 0, 9, 1, 2, 3, 4, 0, 80]).await,
        encode_reply(Reply::AddressTypeNotSupported)
    );
    // An empty domain name: general failure.
    assert_eq!(
        answer(&[5, 1, 0, 3, 0, 0, 80]).await,
        encode_reply(Reply::GeneralFailure)
    );
}

#[test]
fn requests_round_trip() {
    for dst in [
        Address::Ip("192.168.1.10:443".parse().unwrap()),
        Address::Ip("[2001:db8::1]:8080".parse().unwrap()),
        Address::Domain("example.com".into(), 80),
        Address::Domain("a".repeat(255), 65535),
    ] {
        let req = Request {
            command: CMD_CONNECT,
            dst,
        };
        let mut bytes = encode_request(&req).unwrap();
        assert_eq!(message_len(&bytes), Ok(bytes.len()));
        let len = bytes.len();
        // Pipelined data after the request is not consumed.
        bytes.extend_from_slice(b"GET /");
        assert_eq!(decode_request(&bytes), Ok((req, len)));
    }
    assert_eq!(
        encode_request(&Request {
            command: 1,
            dst: Address::Ip("10.0.0.1:80".parse().unwrap())
        })
        .unwrap(),
        [5, 1, 0, 1, 10, 0, 0, 1, 0, 80]
    );
    let mut domain = vec![5, 1, 0, 3, 3];
    domain.extend_from_slice(b"lan");
    domain.extend_from_slice(&[0x1f, 0x90]);
    assert_eq!(
        decode_request(&domain),
        Ok((
            Request {
                command: 1,
                dst: Address::Domain("lan".into(), 8080)
            },
            10
        ))
    );
}

#[test]
fn bad_requests_are_errors() {
    let good = [5, 1, 0, 1, 10, 0, 0, 1, 0, 80];
    for n in 0..good.len() {
        assert_eq!(
            decode_request(&good[..n]),
            Err(ParseError::Truncated),
            "{n}"
        );
    }
    assert_eq!(
        decode_request(&[4, 1, 0, 1, 10, 0, 0, 1, 0, 80]),
        Err(ParseError::Version(4))
    );
    assert_eq!(
        decode_request(&[5, 1, 0, 2, 10, 0, 0, 1, 0, 80]),
        Err(ParseError::AddressType(2))
    );
    // Empty domain.
    assert_eq!(
        decode_request(&[5, 1, 0, 3, 0, 0, 80, 0, 0, 0]),
        Err(ParseError::Domain)
    );
    // Domain shorter than its length says.
    let mut short = vec![5, 1, 0, 3, 200];
    short.extend_from_slice(&[b'a'; 100]);
    assert_eq!(decode_request(&short), Err(ParseError::Truncated));
    // Not UTF-8.
    assert_eq!(
        decode_request(&[5, 1, 0, 3, 2, 0xff, 0xfe, 0, 80]),
        Err(ParseError::Domain)
    );
    // IPv6 cut short.
    assert_eq!(
        decode_request(&[5, 1, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0]),
        Err(ParseError::Truncated)
    );
    // Over-long and empty names cannot be encoded.
    for name in ["a".repeat(256), String::new()] {
        assert_eq!(
            encode_request(&Request {
                command: 1,
                dst: Address::Domain(name, 80)
            }),
            Err(ParseError::Domain)
        );
    }
    assert_eq!(
        ParseError::AddressType(9).reply(),
        Reply::AddressTypeNotSupported
    );
    assert_eq!(ParseError::Truncated.reply(), Reply::GeneralFailure);
}

#[test]
fn replies_and_greetings() {
    assert_eq!(encode_reply(Reply::Succeeded), SUCCESS);
    assert_eq!(
        encode_reply(Reply::GeneralFailure),
        [5, 1, 0, 1, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!(encode_reply(Reply::NotAllowed)[1], 2);
    assert_eq!(encode_reply(Reply::CommandNotSupported)[1], 7);
    assert_eq!(
        decode_reply(&SUCCESS),
        Ok((0, Address::Ip("0.0.0.0:1080".parse().unwrap()), 10))
    );
    assert_eq!(greeting_methods([5, 2]), Ok(2));
    assert_eq!(greeting_methods([4, 2]), Err(ParseError::Version(4)));
    assert_eq!(choose_method(&[2, 0]), METHOD_NO_AUTH);
    assert_eq!(choose_method(&[2]), METHOD_NONE_ACCEPTABLE);
    assert_eq!(choose_method(&[]), METHOD_NONE_ACCEPTABLE);
}

#[test]
fn local_destinations() {
    for ip in [
        "127.0.0.1",
        "127.8.9.10",
        "::1",
        "0.0.0.0",
        "::",
        "::ffff:127.0.0.1",
        "0.1.2.3",
        "169.254.169.254",
        "169.254.0.1",
        "::ffff:169.254.169.254",
        "fe80::1",
        "febf::1",
        "224.0.0.1",
        "239.255.66.66",
        "255.255.255.255",
        "ff02::1",
    ] {
        assert!(is_local_destination(ip.parse().unwrap()), "{ip}");
    }
    for ip in [
        "192.168.1.1",
        "10.0.0.1",
        "8.8.8.8",
        "169.253.255.255",
        "169.255.0.1",
        "fec0::1",
        "2001:db8::1",
        "fd00::1",
        "::ffff:10.0.0.1",
    ] {
        assert!(!is_local_destination(ip.parse().unwrap()), "{ip}");
    }
    assert_eq!(
        reply_for_connect_error(&io::ErrorKind::ConnectionRefused.into()),
        Reply::ConnectionRefused
    );
    assert_eq!(
        reply_for_connect_error(&io::ErrorKind::TimedOut.into()),
        Reply::HostUnreachable
    );
    let reset = crate::p2p::Error::Io(io::ErrorKind::ConnectionReset.into());
    assert_eq!(reply_for_open_error(&reset), Reply::NotAllowed);
    let absent = crate::p2p::Error::NotConnected(Keypair::generate().peer_id());
    assert_eq!(reply_for_open_error(&absent), Reply::GeneralFailure);
}

#[tokio::test]
async fn reading_is_byte_exact_and_bounded() {
    let mut input: &[u8] = &[5, 1, 0, 3, 3, b'l', b'a', b'n', 0, 80, b'x'];
    let msg = read_message(&mut input).await.unwrap();
    assert_eq!(msg.len(), 10);
    assert_eq!(input, b"x");
    let mut bad: &[u8] = &[5, 1, 0, 7, 0, 0, 0, 0, 0, 0];
    assert!(matches!(
        read_message(&mut bad).await,
        Err(ReadError::Parse(ParseError::AddressType(7)))
    ));
    let mut greeting: &[u8] = &[5, 2, 0, 2, 9];
    assert_eq!(read_greeting(&mut greeting).await.unwrap(), [0, 2]);
    assert_eq!(greeting, [9]);
}

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

use crate::p2p::identity::PeerId;
use crate::p2p::stream::{RecvStream, SendStream};
use crate::p2p::{Host, Stream};
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::timeout;

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

pub const VERSION: u8 = 5;
pub const METHOD_NO_AUTH: u8 = 0x00;
pub const METHOD_NONE_ACCEPTABLE: u8 = 0xff;
pub const CMD_CONNECT: u8 = 1;
pub const ATYP_IPV4: u8 = 1;
pub const ATYP_DOMAIN: u8 = 3;
pub const ATYP_IPV6: u8 = 4;
/// The longest request or reply: a 255-byte domain name.
pub const MAX_MESSAGE: usize = 4 + 1 + 255 + 2;
/// The port of the fake bind address in a success reply (as AWL).
const BIND_PORT: u16 = 1080;

/// Whether a peer may use us as its exit.
pub type Policy = Arc<dyn Fn(&PeerId) -> bool + Send + Sync>;
/// The exit peer to use now (`None`: none configured).
pub type ExitPeer = Arc<dyn Fn() -> Option<PeerId> + Send + Sync>;

/// RFC 1928 reply codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Reply {
    Succeeded = 0x00,
    GeneralFailure = 0x01,
    NotAllowed = 0x02,
    NetworkUnreachable = 0x03,
    HostUnreachable = 0x04,
    ConnectionRefused = 0x05,
    CommandNotSupported = 0x07,
    AddressTypeNotSupported = 0x08,
}

impl Reply {
    pub const fn code(self) -> u8 {
        self as u8
    }
}

/// A destination (in a request) or a bound address (in a reply).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Ip(SocketAddr),
    Domain(String, u16),
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Ip(a) => write!(f, "{a}"),
            Address::Domain(name, port) => write!(f, "{name}:{port}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub command: u8,
    pub dst: Address,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Fewer bytes than the message needs.
    Truncated,
    /// Not SOCKS version 5.
    Version(u8),
    AddressType(u8),
    /// An empty, over-long (> 255 bytes) or non-UTF-8 domain name.
    Domain,
}

impl ParseError {
    /// What to answer a request that failed to parse.
    pub fn reply(self) -> Reply {
        match self {
            ParseError::AddressType(_) => Reply::AddressTypeNotSupported,
            _ => Reply::GeneralFailure,
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Truncated => write!(f, "truncated message"),
            ParseError::Version(v) => write!(f, "SOCKS version {v}, expected 5"),
            ParseError::AddressType(t) => write!(f, "unsupported address type {t}"),
            ParseError::Domain => write!(f, "bad domain name"),
        }
    }
}

impl std::error::Error for ParseError {}

/// Number of method bytes that follow the first two bytes (`VER NMETHODS`) of a greeting.
pub fn greeting_methods(head: [u8; 2]) -> Result<usize, ParseError> {
    if head[0] != VERSION {
        return Err(ParseError::Version(head[0]));
    }
    Ok(usize::from(head[1]))
}

/// The method we answer a greeting offering `methods` with: no authentication or nothing.
pub fn choose_method(methods: &[u8]) -> u8 {
    if methods.contains(&METHOD_NO_AUTH) {
        METHOD_NO_AUTH
    } else {
        METHOD_NONE_ACCEPTABLE
    }
}

/// Total length of a request or reply (`VER X RSV ATYP ADDR PORT`), from its first 5 bytes.
/// Every valid message is at least 10 bytes long, so 5 can always be read first.
pub fn message_len(head: &[u8]) -> Result<usize, ParseError> {
    if head.len() < 5 {
        return Err(ParseError::Truncated);
    }
    if head[0] != VERSION {
        return Err(ParseError::Version(head[0]));
    }
    let addr = match head[3] {
        ATYP_IPV4 => 4,
        ATYP_IPV6 => 16,
        ATYP_DOMAIN => match head[4] {
            0 => return Err(ParseError::Domain),
            n => 1 + usize::from(n),
        },
        other => return Err(ParseError::AddressType(other)),
    };
    Ok(4 + addr + 2)
}

/// Decodes `VER X RSV ATYP ADDR PORT` into (X, address, bytes used); bytes after it are left.
fn decode_message(buf: &[u8]) -> Result<(u8, Address, usize), ParseError> {
    let len = message_len(buf)?;
    if buf.len() < len {
        return Err(ParseError::Truncated);
    }
    let port = u16::from_be_bytes([buf[len - 2], buf[len - 1]]);
    let addr = &buf[4..len - 2];
    let address = match buf[3] {
        ATYP_IPV4 => {
            let octets: [u8; 4] = addr.try_into().map_err(|_| ParseError::Truncated)?;
            Address::Ip(SocketAddr::new(Ipv4Addr::from(octets).into(), port))
        }
        ATYP_IPV6 => {
            let octets: [u8; 16] = addr.try_into().map_err(|_| ParseError::Truncated)?;
            Address::Ip(SocketAddr::new(Ipv6Addr::from(octets).into(), port))
        }
        // message_len accepted only these three.
        _ => {
            let name = std::str::from_utf8(&addr[1..]).map_err(|_| ParseError::Domain)?;
            Address::Domain(name.to_string(), port)
        }
    };
    Ok((buf[1], address, len))
}

fn encode_message(second: u8, address: &Address) -> Result<Vec<u8>, ParseError> {
    let mut out = Vec::with_capacity(MAX_MESSAGE);
    out.extend_from_slice(&[VERSION, second, 0]);
    let port = match address {
        Address::Ip(SocketAddr::V4(a)) => {
            out.push(ATYP_IPV4);
            out.extend_from_slice(&a.ip().octets());
            a.port()
        }
        Address::Ip(SocketAddr::V6(a)) => {
            out.push(ATYP_IPV6);
            out.extend_from_slice(&a.ip().octets());
            a.port()
        }
        Address::Domain(name, port) => {
            let len = u8::try_from(name.len()).map_err(|_| ParseError::Domain)?;
            if len == 0 {
                return Err(ParseError::Domain);
            }
            out.push(ATYP_DOMAIN);
            out.push(len);
            out.extend_from_slice(name.as_bytes());
            *port
        }
    };
    out.extend_from_slice(&port.to_be_bytes());
    Ok(out)
}

/// `05 CMD 00 ATYP ADDR PORT`; fails on an empty or over-long domain name.
pub fn encode_request(req: &Request) -> Result<Vec<u8>, ParseError> {
    encode_message(req.command, &req.dst)
}

/// Decodes a request and returns it with the number of bytes it used.
pub fn decode_request(buf: &[u8]) -> Result<(Request, usize), ParseError> {
    let (command, dst, len) = decode_message(buf)?;
    Ok((Request { command, dst }, len))
}

/// A reply with the bind address AWL sends: 0.0.0.0:1080 on success, 0.0.0.0:0 otherwise.
pub fn encode_reply(reply: Reply) -> [u8; 10] {
    let port = if reply == Reply::Succeeded {
        BIND_PORT
    } else {
        0
    };
    let [hi, lo] = port.to_be_bytes();
    [VERSION, reply.code(), 0, ATYP_IPV4, 0, 0, 0, 0, hi, lo]
}

/// Decodes a reply into (code, bound address, bytes used).
pub fn decode_reply(buf: &[u8]) -> Result<(u8, Address, usize), ParseError> {
    decode_message(buf)
}

/// Destinations an exit refuses: its own host (loopback, and the unspecified address and
/// 0.0.0.0/8, which `connect` treats as the local host), link-local addresses (169.254.0.0/16
/// with cloud metadata services at 169.254.169.254, fe80::/10: only meaningful on the exit's
/// own links), multicast and broadcast; IPv4-mapped IPv6 forms included.
pub fn is_local_destination(ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.octets()[0] == 0
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast()
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.segments()[0] & 0xffc0 == 0xfe80
                || v6.is_multicast()
        }
    }
}

/// The reply for a failed `connect` (as go-socks5 maps them).
pub fn reply_for_connect_error(e: &io::Error) -> Reply {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => Reply::ConnectionRefused,
        io::ErrorKind::NetworkUnreachable => Reply::NetworkUnreachable,
        _ => Reply::HostUnreachable,
    }
}

/// The reply for a stream to the exit that could not be opened. A stream reset or closed
/// during protocol negotiation is the exit refusing us (it resets streams of peers it does not
/// serve, and the reset may overtake its answer); anything else is a general failure.
pub fn reply_for_open_error(e: &crate::p2p::Error) -> Reply {
    match e {
        crate::p2p::Error::Io(e)
            if matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::UnexpectedEof
                    | io::ErrorKind::BrokenPipe
            ) =>
        {
            Reply::NotAllowed
        }
        _ => Reply::GeneralFailure,
    }
}

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

// ---- exit (server) ----

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

// ---- client ----

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::p2p::identity::Keypair;

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
        let (s, reply) =
            socks_connect(proxy, Address::Domain("localhost".into(), echo.port())).await;
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
        let (_s, reply) =
            socks_connect(proxy, Address::Domain("localhost".into(), echo.port())).await;
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
}

//! The RFC 1928 messages as pure functions, and the replies chosen for errors.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

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

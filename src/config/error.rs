//! What is wrong with a configuration file, and where. The texts are the ones users see.

use super::uci::SyntaxError;
use crate::base::prefix::Prefix;
use crate::p2p::identity::PeerId;
use std::fmt;
use std::net::Ipv4Addr;

/// An error in `file`, at `line` when it is one line's fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: Option<usize>,
    pub kind: ErrorKind,
}

impl ConfigError {
    /// The message without the file and line.
    pub fn message(&self) -> String {
        self.kind.to_string()
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}: line {l}: {}", self.file, self.kind),
            None => write!(f, "{}: {}", self.file, self.kind),
        }
    }
}

impl std::error::Error for ConfigError {}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// The file could not be read (the OS's reason).
    Read(String),
    Syntax(SyntaxError),
    /// `list` used for a single option.
    NotAList(String),
    /// A value its option does not take.
    Value {
        name: String,
        value: String,
        expected: Expected,
    },
    /// The node section has no usable address (only with a broken option table).
    NoAddress,
    /// The node's address is its subnet's network or broadcast address.
    AddressNotHost(Ipv4Addr, u8),
    /// A route overlapping the mesh subnet, or a default route.
    RouteOverlaps(Prefix),
    PeerWithoutId,
    PeerTwice(PeerId),
    /// An alias taken by the peer section at `line`.
    AliasUsed {
        alias: String,
        line: usize,
    },
    /// A peer's `ip` outside the mesh subnet (network, prefix), or not a host address.
    IpOutsideMesh(Ipv4Addr, Ipv4Addr, u8),
    IpIsOwn(Ipv4Addr),
    IpIsService(Ipv4Addr),
    /// A peer's `ip` taken by the peer at `line`.
    IpUsed {
        ip: Ipv4Addr,
        line: usize,
    },
    TooManyPeers {
        peers: usize,
        max: u32,
    },
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Read(e) => write!(f, "{e}"),
            ErrorKind::Syntax(e) => write!(f, "{e}"),
            ErrorKind::NotAList(name) => {
                write!(f, "'{name}' is a single option; use 'option', not 'list'")
            }
            ErrorKind::Value {
                name,
                value,
                expected,
            } => write!(f, "option '{name}' = '{value}': {expected}"),
            ErrorKind::NoAddress => write!(f, "address: no value"),
            ErrorKind::AddressNotHost(ip, len) => write!(
                f,
                "option 'address' = '{ip}/{len}': network or broadcast address"
            ),
            ErrorKind::RouteOverlaps(r) => write!(f, "list 'route' = '{r}': overlaps the mesh subnet or is a default route (use 'gateway' for an exit node)"),
            ErrorKind::PeerWithoutId => write!(f, "peer section without option 'peer_id'"),
            ErrorKind::PeerTwice(id) => {
                write!(f, "option 'peer_id' = '{id}': this peer is listed twice")
            }
            ErrorKind::AliasUsed { alias, line } => {
                write!(f, "alias '{alias}' is already used by the peer at line {line}")
            }
            ErrorKind::IpOutsideMesh(ip, net, len) => write!(
                f,
                "option 'ip' = '{ip}': not a host address inside the mesh subnet {net}/{len}"
            ),
            ErrorKind::IpIsOwn(ip) => {
                write!(f, "option 'ip' = '{ip}': that is this node's own address")
            }
            ErrorKind::IpIsService(ip) => {
                write!(f, "option 'ip' = '{ip}': that is the node's service address")
            }
            ErrorKind::IpUsed { ip, line } => {
                write!(f, "option 'ip' = '{ip}': already used by the peer at line {line}")
            }
            ErrorKind::TooManyPeers { peers, max } => {
                write!(f, "{peers} peer sections but max_peers is {max}")
            }
        }
    }
}

/// What an option takes, said when a value does not fit (the "expected …" of a message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    Bool,
    Int {
        min: i64,
        max: i64,
    },
    Str {
        max_len: usize,
    },
    Ipv4,
    Cidr {
        min_prefix: u8,
        max_prefix: u8,
    },
    /// A network prefix; the parser's reason.
    Prefix(String),
    Path,
    /// A multiaddr; the parser's reason.
    Multiaddr(String),
    /// A peer ID; the parser's reason.
    PeerId(String),
    OneOf(&'static [&'static str]),
    Ifname,
    Label,
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expected::Bool => write!(f, "expected a boolean (0/1, yes/no, on/off, true/false)"),
            Expected::Int { min, max } => write!(f, "expected an integer {min}..{max}"),
            Expected::Str { max_len } => {
                write!(f, "expected at most {max_len} printable characters")
            }
            Expected::Ipv4 => write!(f, "expected an IPv4 address"),
            Expected::Cidr {
                min_prefix,
                max_prefix,
            } => write!(
                f,
                "expected an IPv4 address with prefix /{min_prefix}../{max_prefix}, e.g. 10.66.0.1/16"
            ),
            Expected::Prefix(e) => write!(f, "expected a network prefix: {e}"),
            Expected::Path => write!(f, "expected an absolute path"),
            Expected::Multiaddr(e) => write!(f, "expected a multiaddr ({e})"),
            Expected::PeerId(e) => write!(f, "expected a peer ID: {e}"),
            Expected::OneOf(values) => write!(f, "expected one of {}", values.join(", ")),
            Expected::Ifname => write!(
                f,
                "expected an interface name of 1..15 characters without '/', ':' or spaces"
            ),
            Expected::Label => write!(
                f,
                "expected a DNS label (letters, digits, '-', '_'; at most 63)"
            ),
        }
    }
}

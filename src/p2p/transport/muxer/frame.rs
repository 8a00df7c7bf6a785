//! yamux frame headers (hashicorp/yamux `spec.md`): 12 bytes, big-endian, then `length`
//! bytes of body for data frames only.

use std::fmt;

pub const HEADER_LEN: usize = 12;

/// Flags: SYN opens a stream (or asks for a ping reply), ACK answers it, FIN half-closes,
/// RST resets.
pub const SYN: u16 = 1;
pub const ACK: u16 = 2;
pub const FIN: u16 = 4;
pub const RST: u16 = 8;

/// Go-away codes.
pub const GO_AWAY_NORMAL: u32 = 0;
pub const GO_AWAY_PROTOCOL: u32 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `length` bytes of stream data follow.
    Data = 0,
    /// `length` is a credit added to the stream's send window.
    WindowUpdate = 1,
    /// `length` is an opaque value echoed in the reply.
    Ping = 2,
    /// `length` is the reason code; the session ends.
    GoAway = 3,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub kind: Kind,
    pub flags: u16,
    pub stream: u32,
    pub length: u32,
}

/// A header this implementation cannot read: the session is closed.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameError {
    Version(u8),
    Kind(u8),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Version(v) => write!(f, "unknown yamux version {v}"),
            FrameError::Kind(k) => write!(f, "unknown yamux frame type {k}"),
        }
    }
}

impl Header {
    pub fn new(kind: Kind, flags: u16, stream: u32, length: u32) -> Header {
        Header {
            kind,
            flags,
            stream,
            length,
        }
    }

    pub fn decode(b: &[u8; HEADER_LEN]) -> Result<Header, FrameError> {
        if b[0] != 0 {
            return Err(FrameError::Version(b[0]));
        }
        let kind = match b[1] {
            0 => Kind::Data,
            1 => Kind::WindowUpdate,
            2 => Kind::Ping,
            3 => Kind::GoAway,
            k => return Err(FrameError::Kind(k)),
        };
        Ok(Header {
            kind,
            flags: u16::from_be_bytes([b[2], b[3]]),
            stream: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            length: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        })
    }

    /// Appends the encoded header to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(0);
        out.push(self.kind as u8);
        out.extend_from_slice(&self.flags.to_be_bytes());
        out.extend_from_slice(&self.stream.to_be_bytes());
        out.extend_from_slice(&self.length.to_be_bytes());
    }

    pub fn has(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }
}

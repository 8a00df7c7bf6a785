//! The tunnel protocol `/awl/0.3.0/tunnel/`: records of an 8-byte big-endian header and a raw
//! IP packet. Bit 63 marks gateway-forward, bit 62 gateway-return, the low bits the length.
//! Both flags, or a length over 1 MiB, is a protocol error that closes the stream.

pub const PROTOCOL: &str = "/awl/0.3.0/tunnel/";
pub const HEADER_LEN: usize = 8;
/// AWL refuses longer records.
pub const MAX_RECORD: u64 = 1 << 20;
/// The largest packet an AWL receiver can hold (3600-byte buffer minus a 14-byte offset).
pub const AWL_MAX_PACKET: usize = 3586;
/// AWL batches at most this many records into one write.
pub const BATCH: usize = 100;

const FORWARD: u64 = 1 << 63;
const RETURN: u64 = 1 << 62;
const LEN_MASK: u64 = (1 << 62) - 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayDir {
    /// Ordinary mesh traffic: the receiver rewrites both addresses.
    None,
    /// Client → exit node: destination kept.
    Forward,
    /// Exit node → client: source kept.
    Return,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordError {
    BothFlags,
    TooLong(u64),
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordError::BothFlags => f.write_str("tunnel record with both gateway flags"),
            RecordError::TooLong(n) => write!(f, "tunnel record of {n} bytes (max {MAX_RECORD})"),
        }
    }
}

impl std::error::Error for RecordError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    pub dir: GatewayDir,
    pub len: usize,
}

impl RecordHeader {
    pub fn parse(b: [u8; HEADER_LEN]) -> Result<Self, RecordError> {
        let v = u64::from_be_bytes(b);
        let dir = match (v & FORWARD != 0, v & RETURN != 0) {
            (true, true) => return Err(RecordError::BothFlags),
            (true, false) => GatewayDir::Forward,
            (false, true) => GatewayDir::Return,
            (false, false) => GatewayDir::None,
        };
        let len = v & LEN_MASK;
        if len > MAX_RECORD {
            return Err(RecordError::TooLong(len));
        }
        Ok(RecordHeader {
            dir,
            len: len as usize,
        })
    }

    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let flags = match self.dir {
            GatewayDir::None => 0,
            GatewayDir::Forward => FORWARD,
            GatewayDir::Return => RETURN,
        };
        (flags | self.len as u64).to_be_bytes()
    }
}

/// Between awl nodes only (both list it in identify): one packet per QUIC DATAGRAM frame
/// (RFC 9221) instead of a record on a stream, so TCP inside does not run over a reliable,
/// ordered stream. AWL peers never see it and keep the stream tunnel.
pub const DATAGRAM_PROTOCOL: &str = "/awl-rs/tunnel-datagram/1.0.0";

/// A datagram is the IP packet followed by one byte of gateway direction (a trailer, so the
/// pooled packet buffer is sent as it is, without a copy).
pub fn dir_byte(dir: GatewayDir) -> u8 {
    match dir {
        GatewayDir::None => 0,
        GatewayDir::Forward => 1,
        GatewayDir::Return => 2,
    }
}

/// The packet and direction of a tunnel datagram.
pub fn parse_datagram(d: &[u8]) -> Result<(GatewayDir, &[u8]), DatagramError> {
    let Some((&dir, pkt)) = d.split_last() else {
        return Err(DatagramError);
    };
    let dir = match dir {
        0 => GatewayDir::None,
        1 => GatewayDir::Forward,
        2 => GatewayDir::Return,
        _ => return Err(DatagramError),
    };
    Ok((dir, pkt))
}

/// An empty datagram or an unknown direction byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatagramError;

/// Appends one record to a write batch.
pub fn push_record(out: &mut Vec<u8>, dir: GatewayDir, packet: &[u8]) {
    out.extend_from_slice(
        &RecordHeader {
            dir,
            len: packet.len(),
        }
        .encode(),
    );
    out.extend_from_slice(packet);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagram_trailer_round_trips_and_rejects_garbage() {
        for dir in [GatewayDir::None, GatewayDir::Forward, GatewayDir::Return] {
            let d = [0x45, 0, 0, 20, dir_byte(dir)];
            assert_eq!(parse_datagram(&d), Ok((dir, &d[..4])));
        }
        assert_eq!(parse_datagram(&[]), Err(DatagramError));
        assert_eq!(parse_datagram(&[0x45, 3]), Err(DatagramError));
    }

    #[test]
    fn headers_match_the_reference_bytes() {
        // From awl-protocol.md §3.1: an 84-byte ICMP echo, and the two gateway directions.
        let h = RecordHeader {
            dir: GatewayDir::None,
            len: 84,
        };
        assert_eq!(h.encode(), [0, 0, 0, 0, 0, 0, 0, 0x54]);
        let f = RecordHeader {
            dir: GatewayDir::Forward,
            len: 84,
        };
        assert_eq!(f.encode(), [0x80, 0, 0, 0, 0, 0, 0, 0x54]);
        let r = RecordHeader {
            dir: GatewayDir::Return,
            len: 84,
        };
        assert_eq!(r.encode(), [0x40, 0, 0, 0, 0, 0, 0, 0x54]);
        for h in [h, f, r] {
            assert_eq!(RecordHeader::parse(h.encode()).unwrap(), h);
        }
    }

    #[test]
    fn protocol_errors() {
        assert_eq!(
            RecordHeader::parse([0xc0, 0, 0, 0, 0, 0, 0, 1]),
            Err(RecordError::BothFlags)
        );
        assert_eq!(
            RecordHeader::parse((MAX_RECORD + 1).to_be_bytes()),
            Err(RecordError::TooLong(MAX_RECORD + 1))
        );
        assert!(RecordHeader::parse(MAX_RECORD.to_be_bytes()).is_ok());
        assert!(RecordHeader::parse([0x3f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn batch_concatenates_records() {
        let mut out = Vec::new();
        push_record(&mut out, GatewayDir::None, &[0x45, 1]);
        push_record(&mut out, GatewayDir::Return, &[0x45]);
        assert_eq!(
            out,
            [0, 0, 0, 0, 0, 0, 0, 2, 0x45, 1, 0x40, 0, 0, 0, 0, 0, 0, 1, 0x45]
        );
    }
}

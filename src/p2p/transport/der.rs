//! Minimal DER, just for libp2p's self-signed TLS certificates.
//!
//! Writing: nested TLVs built bottom-up. Reading: a cursor over TLVs that never allocates and
//! fails (instead of panicking) on any truncation or length mismatch.

pub const BOOLEAN: u8 = 0x01;
pub const INTEGER: u8 = 0x02;
pub const BIT_STRING: u8 = 0x03;
pub const OCTET_STRING: u8 = 0x04;
pub const NULL: u8 = 0x05;
pub const OID: u8 = 0x06;
pub const UTC_TIME: u8 = 0x17;
pub const GENERALIZED_TIME: u8 = 0x18;
pub const SEQUENCE: u8 = 0x30;
pub const SET: u8 = 0x31;
/// `[n]` constructed context tag.
pub const fn context(n: u8) -> u8 {
    0xa0 | n
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DerError;

/// One TLV with its content.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 4);
    out.push(tag);
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else if n < 0x100 {
        out.extend_from_slice(&[0x81, n as u8]);
    } else if n < 0x10000 {
        out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]);
    } else {
        out.extend_from_slice(&[0x83, (n >> 16) as u8, (n >> 8) as u8, n as u8]);
    }
    out.extend_from_slice(content);
    out
}

pub fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(SEQUENCE, &parts.concat())
}

/// A non-negative INTEGER from big-endian magnitude bytes.
pub fn uint(mut be: &[u8]) -> Vec<u8> {
    while be.len() > 1 && be[0] == 0 {
        be = &be[1..];
    }
    if be.first().is_some_and(|b| b & 0x80 != 0) {
        let mut v = vec![0u8];
        v.extend_from_slice(be);
        tlv(INTEGER, &v)
    } else {
        tlv(INTEGER, be)
    }
}

pub fn bit_string(bytes: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(bytes.len() + 1);
    v.push(0); // no unused bits
    v.extend_from_slice(bytes);
    tlv(BIT_STRING, &v)
}

/// A reading cursor over consecutive TLVs.
#[derive(Clone, Copy)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        Reader { rest: b }
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    pub fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// Reads the next TLV; returns `(tag, content, whole encoding)`.
    pub fn any(&mut self) -> Result<(u8, &'a [u8], &'a [u8]), DerError> {
        let b = self.rest;
        let (&tag, after_tag) = b.split_first().ok_or(DerError)?;
        let (&first, mut after_len) = after_tag.split_first().ok_or(DerError)?;
        let len = if first < 0x80 {
            first as usize
        } else {
            let n = (first & 0x7f) as usize;
            if n == 0 || n > 3 || after_len.len() < n {
                return Err(DerError);
            }
            let mut len = 0usize;
            for &byte in &after_len[..n] {
                len = len << 8 | byte as usize;
            }
            after_len = &after_len[n..];
            len
        };
        if after_len.len() < len {
            return Err(DerError);
        }
        let header = b.len() - after_len.len();
        let (content, rest) = after_len.split_at(len);
        self.rest = rest;
        Ok((tag, content, &b[..header + len]))
    }

    /// Reads the next TLV, which must have `tag`; returns its content.
    pub fn expect(&mut self, tag: u8) -> Result<&'a [u8], DerError> {
        let (t, content, _) = self.any()?;
        if t == tag {
            Ok(content)
        } else {
            Err(DerError)
        }
    }

    /// Like [`Reader::expect`] but returns the whole encoding too.
    pub fn expect_raw(&mut self, tag: u8) -> Result<(&'a [u8], &'a [u8]), DerError> {
        let (t, content, raw) = self.any()?;
        if t == tag {
            Ok((content, raw))
        } else {
            Err(DerError)
        }
    }

    /// Reads an optional TLV with `tag`.
    pub fn optional(&mut self, tag: u8) -> Result<Option<&'a [u8]>, DerError> {
        if self.peek_tag() == Some(tag) {
            self.expect(tag).map(Some)
        } else {
            Ok(None)
        }
    }
}

/// Content of a BIT STRING with no unused bits.
pub fn bit_string_bytes(content: &[u8]) -> Result<&[u8], DerError> {
    match content.split_first() {
        Some((0, rest)) => Ok(rest),
        _ => Err(DerError),
    }
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// X.509 Time: UTCTime before 2050, GeneralizedTime from 2050 on (RFC 5280 §4.1.2.5).
pub fn time(unix: i64) -> Vec<u8> {
    let (y, mo, d) = civil_from_days(unix.div_euclid(86_400));
    let secs = unix.rem_euclid(86_400);
    let (h, mi, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if (1950..2050).contains(&y) {
        tlv(
            UTC_TIME,
            format!("{:02}{mo:02}{d:02}{h:02}{mi:02}{s:02}Z", y % 100).as_bytes(),
        )
    } else {
        tlv(
            GENERALIZED_TIME,
            format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}Z").as_bytes(),
        )
    }
}

/// Parses a UTCTime or GeneralizedTime (`…Z` forms only) into Unix seconds.
pub fn parse_time(tag: u8, content: &[u8]) -> Result<i64, DerError> {
    let s = std::str::from_utf8(content).map_err(|_| DerError)?;
    let digits = s.strip_suffix('Z').ok_or(DerError)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DerError);
    }
    let num = |r: std::ops::Range<usize>| -> Result<i64, DerError> {
        digits
            .get(r)
            .ok_or(DerError)?
            .parse::<i64>()
            .map_err(|_| DerError)
    };
    let (y, rest) = match (tag, digits.len()) {
        (UTC_TIME, 12) => {
            let yy = num(0..2)?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, 2)
        }
        (GENERALIZED_TIME, 14) => (num(0..4)?, 4),
        _ => return Err(DerError),
    };
    let mo = num(rest..rest + 2)? as u32;
    let d = num(rest + 2..rest + 4)? as u32;
    let (h, mi, sec) = (
        num(rest + 4..rest + 6)?,
        num(rest + 6..rest + 8)?,
        num(rest + 8..rest + 10)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return Err(DerError);
    }
    Ok(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_and_integers() {
        assert_eq!(tlv(OCTET_STRING, &[1, 2]), [4, 2, 1, 2]);
        assert_eq!(&tlv(OCTET_STRING, &[0; 200])[..3], [4, 0x81, 200]);
        assert_eq!(&tlv(OCTET_STRING, &[0; 300])[..4], [4, 0x82, 1, 44]);
        assert_eq!(uint(&[0, 0, 5]), [2, 1, 5]);
        assert_eq!(uint(&[0x80]), [2, 2, 0, 0x80]);
    }

    #[test]
    fn times_round_trip_in_both_encodings() {
        // 2026-11-24T18:58:24Z and 2126-01-01T00:00:00Z
        for (unix, tag, text) in [
            (1_795_546_704i64, UTC_TIME, "261124185824Z"),
            (4_922_899_200, GENERALIZED_TIME, "21260101000000Z"),
        ] {
            let enc = time(unix);
            let (t, content, _) = Reader::new(&enc).any().unwrap();
            assert_eq!(t, tag);
            assert_eq!(content, text.as_bytes());
            assert_eq!(parse_time(t, content).unwrap(), unix);
        }
        assert!(parse_time(UTC_TIME, b"261324185824Z").is_err());
        assert!(parse_time(UTC_TIME, b"2611241858Z").is_err());
    }

    #[test]
    fn reader_refuses_truncation() {
        assert!(Reader::new(&[0x30, 5, 1]).any().is_err());
        assert!(Reader::new(&[0x30, 0x84, 0, 0, 0, 1]).any().is_err());
        assert!(Reader::new(&[0x30]).any().is_err());
        let mut r = Reader::new(&[0x02, 1, 7, 0x04, 0]);
        assert_eq!(r.expect(INTEGER).unwrap(), [7]);
        assert!(r.expect(INTEGER).is_err());
    }
}

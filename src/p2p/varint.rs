//! Unsigned LEB128 varints as multiformats uses them (at most 9 bytes, values below 2^63).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarintError {
    /// Ran out of input before the last byte.
    Truncated,
    /// More than 9 bytes, or a non-minimal encoding.
    Overflow,
}

pub fn encode(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Decodes one varint; returns it with the rest of the input.
pub fn decode(b: &[u8]) -> Result<(u64, &[u8]), VarintError> {
    let mut v: u64 = 0;
    for (i, &byte) in b.iter().enumerate() {
        if i >= 9 {
            return Err(VarintError::Overflow);
        }
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            if byte == 0 && i > 0 {
                return Err(VarintError::Overflow);
            }
            return Ok((v, &b[i + 1..]));
        }
    }
    Err(VarintError::Truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_encodings() {
        for (v, bytes) in [
            (0u64, &[0x00][..]),
            (1, &[0x01]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (300, &[0xac, 0x02]),
            (16384, &[0x80, 0x80, 0x01]),
        ] {
            let mut out = Vec::new();
            encode(v, &mut out);
            assert_eq!(out, bytes);
            assert_eq!(decode(bytes).unwrap(), (v, &[][..]));
        }
    }

    #[test]
    fn rejects_truncated_overlong_and_non_minimal() {
        assert_eq!(decode(&[0x80]), Err(VarintError::Truncated));
        assert_eq!(decode(&[]), Err(VarintError::Truncated));
        assert_eq!(decode(&[0xff; 10]), Err(VarintError::Overflow));
        assert_eq!(decode(&[0x81, 0x00]), Err(VarintError::Overflow));
    }
}

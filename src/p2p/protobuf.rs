//! Just enough protobuf for libp2p's messages (identify, kad, relay, dcutr).
//!
//! Writers append fields; the reader walks fields lazily and never allocates. Unknown fields
//! and the fixed-width wire types are skipped, as protobuf requires.

use super::varint;

const WIRE_VARINT: u64 = 0;
const WIRE_FIXED64: u64 = 1;
const WIRE_BYTES: u64 = 2;
const WIRE_FIXED32: u64 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeError;

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("malformed protobuf")
    }
}

impl std::error::Error for DecodeError {}

#[derive(Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn bytes(&mut self, field: u32, data: &[u8]) -> &mut Self {
        varint::encode(u64::from(field) << 3 | WIRE_BYTES, &mut self.buf);
        varint::encode(data.len() as u64, &mut self.buf);
        self.buf.extend_from_slice(data);
        self
    }

    pub fn string(&mut self, field: u32, s: &str) -> &mut Self {
        self.bytes(field, s.as_bytes())
    }

    pub fn uint(&mut self, field: u32, v: u64) -> &mut Self {
        varint::encode(u64::from(field) << 3 | WIRE_VARINT, &mut self.buf);
        varint::encode(v, &mut self.buf);
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    Uint(u64),
    Bytes(&'a [u8]),
}

impl<'a> Value<'a> {
    pub fn as_bytes(self) -> Result<&'a [u8], DecodeError> {
        match self {
            Value::Bytes(b) => Ok(b),
            Value::Uint(_) => Err(DecodeError),
        }
    }

    pub fn as_str(self) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.as_bytes()?).map_err(|_| DecodeError)
    }

    pub fn as_uint(self) -> Result<u64, DecodeError> {
        match self {
            Value::Uint(v) => Ok(v),
            Value::Bytes(_) => Err(DecodeError),
        }
    }
}

/// Iterates over `(field number, value)`; stops with an error on malformed input.
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { rest: buf }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.rest.len() < n {
            return Err(DecodeError);
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn next_field(&mut self) -> Result<Option<(u32, Value<'a>)>, DecodeError> {
        loop {
            if self.rest.is_empty() {
                return Ok(None);
            }
            let (key, rest) = varint::decode(self.rest).map_err(|_| DecodeError)?;
            self.rest = rest;
            let field = u32::try_from(key >> 3).map_err(|_| DecodeError)?;
            let value = match key & 7 {
                WIRE_VARINT => {
                    let (v, rest) = varint::decode(self.rest).map_err(|_| DecodeError)?;
                    self.rest = rest;
                    Value::Uint(v)
                }
                WIRE_BYTES => {
                    let (len, rest) = varint::decode(self.rest).map_err(|_| DecodeError)?;
                    self.rest = rest;
                    let len = usize::try_from(len).map_err(|_| DecodeError)?;
                    Value::Bytes(self.take(len)?)
                }
                WIRE_FIXED64 => {
                    self.take(8)?;
                    continue;
                }
                WIRE_FIXED32 => {
                    self.take(4)?;
                    continue;
                }
                _ => return Err(DecodeError),
            };
            return Ok(Some((field, value)));
        }
    }
}

impl<'a> Iterator for Reader<'a> {
    type Item = Result<(u32, Value<'a>), DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.next_field() {
            Ok(Some(f)) => Some(Ok(f)),
            Ok(None) => None,
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_reads_fields() {
        let mut w = Writer::default();
        w.string(5, "ipfs/0.1.0").uint(2, 300).bytes(1, &[1, 2, 3]);
        assert_eq!(&w.buf[..2], [0x2a, 10]);
        let fields: Vec<_> = Reader::new(&w.buf).collect::<Result<_, _>>().unwrap();
        assert_eq!(
            fields,
            vec![
                (5, Value::Bytes(b"ipfs/0.1.0")),
                (2, Value::Uint(300)),
                (1, Value::Bytes(&[1, 2, 3]))
            ]
        );
    }

    #[test]
    fn skips_fixed_width_fields_and_rejects_garbage() {
        // field 3 fixed32, then field 1 varint 7
        let buf = [0x1d, 1, 2, 3, 4, 0x08, 7];
        let fields: Vec<_> = Reader::new(&buf).collect::<Result<_, _>>().unwrap();
        assert_eq!(fields, vec![(1, Value::Uint(7))]);
        assert!(Reader::new(&[0x0a, 5, 1]).any(|f| f.is_err()));
        assert!(Reader::new(&[0x0b]).any(|f| f.is_err()));
    }
}

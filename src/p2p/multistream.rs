//! multistream-select 1.0: agreeing on a protocol at the start of every stream.
//!
//! Each message is `uvarint(len) ‖ text ‖ '\n'`. The dialer sends the header and its first
//! proposal in one write (no round trip for the header, as go-libp2p does); the listener echoes
//! the header, then answers each proposal with the same line or `na`. The codec functions are
//! pure; the two async drivers read byte-exactly so no protocol data after negotiation is lost.

use super::varint;
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub const HEADER: &str = "/multistream/1.0.0";
const NA: &str = "na";
const LS: &str = "ls";
/// Protocol names are short; anything longer is an attack or a bug.
pub const MAX_MESSAGE: usize = 1024;
/// Proposals a listener answers before giving up on the stream.
const MAX_PROPOSALS: usize = 16;

/// Appends one framed message.
pub fn encode(msg: &str, out: &mut Vec<u8>) {
    varint::encode(msg.len() as u64 + 1, out);
    out.extend_from_slice(msg.as_bytes());
    out.push(b'\n');
}

/// Checks and strips the trailing newline of a message body.
pub fn decode_body(body: &[u8]) -> io::Result<&str> {
    match body.split_last() {
        Some((b'\n', text)) => std::str::from_utf8(text).map_err(|_| invalid("not UTF-8")),
        _ => Err(invalid("message without trailing newline")),
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("multistream-select: {what}"),
    )
}

/// Reads one message without reading past it.
pub async fn read_message<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<String> {
    let mut len: u64 = 0;
    for i in 0..3 {
        let byte = r.read_u8().await?;
        len |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let len = len as usize;
            if len == 0 || len > MAX_MESSAGE {
                return Err(invalid("bad message length"));
            }
            let mut body = vec![0u8; len];
            r.read_exact(&mut body).await?;
            return decode_body(&body).map(str::to_owned);
        }
    }
    Err(invalid("message length too long"))
}

/// The header and one proposal, as a dialer's first write carries them.
pub fn propose(protocol: &str, out: &mut Vec<u8>) {
    encode(HEADER, out);
    encode(protocol, out);
}

/// Dialer: proposes `protocols` in order until the listener accepts one.
pub async fn dialer_select<R, W>(r: &mut R, w: &mut W, protocols: &[&str]) -> io::Result<String>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut out = Vec::with_capacity(64);
    encode(HEADER, &mut out);
    let mut header_seen = false;
    for proto in protocols {
        encode(proto, &mut out);
        w.write_all(&out).await?;
        w.flush().await?;
        out.clear();
        if !header_seen {
            if read_message(r).await? != HEADER {
                return Err(invalid("peer does not speak multistream-select 1.0"));
            }
            header_seen = true;
        }
        let answer = read_message(r).await?;
        if answer == *proto {
            return Ok(answer);
        }
        if answer != NA {
            return Err(invalid("unexpected answer to proposal"));
        }
    }
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "multistream-select: no protocol in common",
    ))
}

/// Listener: answers proposals until one is in `supported`.
pub async fn listener_select<R, W>(r: &mut R, w: &mut W, supported: &[&str]) -> io::Result<String>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    if read_message(r).await? != HEADER {
        return Err(invalid("stream does not start with the multistream header"));
    }
    let mut out = Vec::with_capacity(64);
    encode(HEADER, &mut out);
    for _ in 0..MAX_PROPOSALS {
        let proposal = read_message(r).await?;
        if supported.contains(&proposal.as_str()) {
            encode(&proposal, &mut out);
            w.write_all(&out).await?;
            w.flush().await?;
            return Ok(proposal);
        }
        if proposal == LS {
            encode_ls(supported, &mut out);
        } else {
            encode(NA, &mut out);
        }
        w.write_all(&out).await?;
        w.flush().await?;
        out.clear();
    }
    Err(invalid("too many proposals"))
}

/// `ls` answer: one message whose body is the framed protocol names.
fn encode_ls(supported: &[&str], out: &mut Vec<u8>) {
    let mut inner = Vec::new();
    for p in supported {
        encode(p, &mut inner);
    }
    varint::encode(inner.len() as u64 + 1, out);
    out.extend_from_slice(&inner);
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_bytes_match_the_spec() {
        let mut out = Vec::new();
        encode(HEADER, &mut out);
        assert_eq!(out[0], 19);
        assert_eq!(&out[1..], b"/multistream/1.0.0\n");
        out.clear();
        encode(NA, &mut out);
        assert_eq!(out, b"\x03na\n");
    }

    #[tokio::test]
    async fn dialer_and_listener_agree_after_na() {
        let (a, b) = tokio::io::duplex(4096);
        let (mut ar, mut aw) = tokio::io::split(a);
        let (mut br, mut bw) = tokio::io::split(b);
        let listener = crate::spawn(async move {
            let p = listener_select(&mut br, &mut bw, &["/ipfs/ping/1.0.0"])
                .await
                .unwrap();
            // Data after negotiation is not swallowed.
            let mut buf = [0u8; 4];
            br.read_exact(&mut buf).await.unwrap();
            (p, buf)
        });
        let got = dialer_select(&mut ar, &mut aw, &["/unknown/1", "/ipfs/ping/1.0.0"])
            .await
            .unwrap();
        assert_eq!(got, "/ipfs/ping/1.0.0");
        aw.write_all(b"data").await.unwrap();
        let (p, buf) = listener.await.unwrap();
        assert_eq!(p, "/ipfs/ping/1.0.0");
        assert_eq!(&buf, b"data");
    }

    #[tokio::test]
    async fn listener_transcript_is_byte_exact() {
        // Dialer bytes as go-libp2p sends them: header and proposal in one write.
        let mut input = Vec::new();
        encode(HEADER, &mut input);
        encode("/nope", &mut input);
        encode("ls", &mut input);
        encode("/awl/0.3.0/status/", &mut input);
        let mut r = &input[..];
        let mut w = Vec::new();
        let p = listener_select(&mut r, &mut w, &["/awl/0.3.0/status/"])
            .await
            .unwrap();
        assert_eq!(p, "/awl/0.3.0/status/");
        let mut expect = Vec::new();
        encode(HEADER, &mut expect);
        encode(NA, &mut expect);
        expect.extend_from_slice(b"\x15\x13/awl/0.3.0/status/\n\n");
        encode("/awl/0.3.0/status/", &mut expect);
        assert_eq!(w, expect);
    }

    #[tokio::test]
    async fn refuses_malformed_and_unsupported() {
        let mut w = Vec::new();
        let mut r: &[u8] = b"\x05hello";
        assert!(listener_select(&mut r, &mut w, &[]).await.is_err());
        let mut r: &[u8] = b"\xff\xff\xff\xff";
        assert!(read_message(&mut r).await.is_err());
        let mut r: &[u8] = b"\x02ab";
        assert!(read_message(&mut r).await.is_err());
        // A listener that says na to everything.
        let mut answers = Vec::new();
        encode(HEADER, &mut answers);
        encode(NA, &mut answers);
        let mut r = &answers[..];
        let err = dialer_select(&mut r, &mut w, &["/a"]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Unsupported);
    }
}

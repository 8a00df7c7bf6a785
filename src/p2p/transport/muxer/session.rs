//! The state a yamux session shares between its driver task and its streams: per-stream
//! windows and buffers, and the bytes queued for the wire. Pure logic, no I/O: the driver
//! feeds it what it reads and writes out what it queues.

use super::frame::{self, FrameError, Header, Kind, ACK, FIN, HEADER_LEN, RST, SYN};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::task::Waker;

/// The window every stream starts with, both ways (the spec's 256 KiB). We never grant more,
/// so a stream never buffers more than this.
pub const WINDOW: u32 = 256 * 1024;
/// Stream data per frame: streams take turns on the wire.
pub const MAX_DATA_FRAME: usize = 16 * 1024;
/// Queued bytes at which streams stop writing until the driver takes them.
pub const OUT_LIMIT: usize = 256 * 1024;
/// Control frames (acks, pongs, resets) may go past `OUT_LIMIT` by this much; more means the
/// peer sends them without reading ours, and the session is closed.
pub const CONTROL_SLACK: usize = 64 * 1024;
/// Concurrent streams per session (go-libp2p's yamux has no cap; a circuit is short-lived
/// and capped by the relay anyway). Inbound streams beyond it are reset.
pub const MAX_STREAMS: usize = 64;

/// Why a session ended (or a stream cannot be opened).
#[derive(Debug)]
pub enum Error {
    /// Closed by us or the peer, or the connection under it ended.
    Closed,
    TooManyStreams,
    Frame(FrameError),
    /// The peer broke the protocol.
    Protocol(&'static str),
    GoAway(u32),
    Io(std::io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Closed => f.write_str("connection closed"),
            Error::TooManyStreams => f.write_str("too many streams"),
            Error::Frame(e) => e.fmt(f),
            Error::Protocol(e) => write!(f, "yamux protocol error: {e}"),
            Error::GoAway(code) => write!(f, "peer went away (code {code})"),
            Error::Io(e) => e.fmt(f),
        }
    }
}

#[derive(Default)]
pub struct StreamState {
    /// Received, not yet read.
    pub recv: VecDeque<u8>,
    /// Credit the peer still has for sending to us.
    recv_window: u32,
    /// Read since our last window update.
    consumed: u32,
    /// Credit we have for sending.
    pub send_window: u32,
    pub local_fin: bool,
    pub remote_fin: bool,
    pub reset: bool,
    pub reader: Option<Waker>,
    pub writer: Option<Waker>,
}

impl StreamState {
    fn new(send_window: u32) -> StreamState {
        StreamState {
            recv_window: WINDOW,
            send_window,
            ..Default::default()
        }
    }

    fn wake(&mut self) {
        if let Some(w) = self.reader.take() {
            w.wake();
        }
        if let Some(w) = self.writer.take() {
            w.wake();
        }
    }
}

/// Where the reader is inside the incoming byte stream.
enum ReadState {
    Header {
        buf: [u8; HEADER_LEN],
        got: usize,
    },
    /// A data frame's body for `stream` (0: discarded), then FIN applied if `fin`.
    Body {
        stream: u32,
        left: u32,
        fin: bool,
    },
}

pub struct Inner {
    client: bool,
    next_id: u32,
    pub streams: HashMap<u32, StreamState>,
    /// Encoded frames for the driver to write.
    pub out: Vec<u8>,
    read: ReadState,
    /// Inbound streams opened by the peer since the driver last looked.
    pub accepted: Vec<u32>,
    pub driver: Option<Waker>,
    /// Streams waiting for `out` to drain.
    pub blocked: Vec<Waker>,
    /// Asked to close: a go-away is sent, then the connection is shut down.
    pub closing: bool,
    /// Ended: every stream fails.
    pub dead: bool,
}

impl Inner {
    pub fn new(client: bool) -> Inner {
        Inner {
            client,
            // Clients open odd stream ids, servers even ones.
            next_id: if client { 1 } else { 2 },
            streams: HashMap::new(),
            out: Vec::new(),
            read: ReadState::Header {
                buf: [0; HEADER_LEN],
                got: 0,
            },
            accepted: Vec::new(),
            driver: None,
            blocked: Vec::new(),
            closing: false,
            dead: false,
        }
    }

    pub fn queue(&mut self, h: Header) {
        h.encode(&mut self.out);
        self.wake_driver();
    }

    pub fn wake_driver(&mut self) {
        if let Some(w) = self.driver.take() {
            w.wake();
        }
    }

    /// Ends the session: every stream and waiting writer is woken to see it.
    pub fn kill(&mut self) {
        self.dead = true;
        for s in self.streams.values_mut() {
            s.wake();
        }
        for w in self.blocked.drain(..) {
            w.wake();
        }
    }

    /// A new outbound stream; the peer learns of it from the SYN queued here.
    pub fn open(&mut self) -> Result<u32, Error> {
        if self.dead || self.closing {
            return Err(Error::Closed);
        }
        if self.streams.len() >= MAX_STREAMS {
            return Err(Error::TooManyStreams);
        }
        let id = self.next_id;
        self.next_id = id.checked_add(2).ok_or(Error::Closed)?;
        self.streams.insert(id, StreamState::new(WINDOW));
        self.queue(Header::new(Kind::WindowUpdate, SYN, id, 0));
        Ok(id)
    }

    /// Queues up to `buf.len()` bytes of `id`'s data as allowed by its window; 0 when the
    /// caller must wait (its waker is then registered).
    pub fn write(&mut self, id: u32, buf: &[u8], waker: &Waker) -> Result<usize, std::io::Error> {
        use std::io::{Error as E, ErrorKind};
        if self.dead {
            return Err(E::new(ErrorKind::BrokenPipe, "connection closed"));
        }
        if self.out.len() >= OUT_LIMIT {
            self.blocked.push(waker.clone());
            return Ok(0);
        }
        let Some(s) = self.streams.get_mut(&id) else {
            return Err(E::new(ErrorKind::BrokenPipe, "stream closed"));
        };
        if s.reset {
            return Err(E::from(ErrorKind::ConnectionReset));
        }
        if s.local_fin {
            return Err(E::new(ErrorKind::BrokenPipe, "stream finished"));
        }
        let n = buf.len().min(MAX_DATA_FRAME).min(s.send_window as usize);
        if n == 0 {
            s.writer = Some(waker.clone());
            return Ok(0);
        }
        s.send_window -= n as u32;
        self.queue(Header::new(Kind::Data, 0, id, n as u32));
        self.out.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    /// Takes up to `max` received bytes of `id` into `dst`; grants the peer more window once
    /// half of it has been read.
    pub fn read(&mut self, id: u32, dst: &mut [u8]) -> usize {
        let Some(s) = self.streams.get_mut(&id) else {
            return 0;
        };
        let n = std::io::Read::read(&mut s.recv, dst).unwrap_or(0);
        s.consumed += n as u32;
        if s.consumed >= WINDOW / 2 && !s.remote_fin && !s.reset {
            let credit = std::mem::take(&mut s.consumed);
            s.recv_window += credit;
            self.queue(Header::new(Kind::WindowUpdate, 0, id, credit));
        }
        n
    }

    /// Half-closes our side of `id`.
    pub fn finish(&mut self, id: u32) {
        if self.dead {
            return;
        }
        if let Some(s) = self.streams.get_mut(&id) {
            if !s.local_fin && !s.reset {
                s.local_fin = true;
                self.queue(Header::new(Kind::Data, FIN, id, 0));
            }
        }
    }

    /// The stream's handle is gone: an unfinished stream is reset, one the peer has finished
    /// is finished too (as rust-libp2p's yamux does).
    pub fn drop_stream(&mut self, id: u32) {
        let Some(s) = self.streams.remove(&id) else {
            return;
        };
        if self.dead || s.reset || s.local_fin {
            return;
        }
        let flag = if s.remote_fin { FIN } else { RST };
        self.queue(Header::new(Kind::Data, flag, id, 0));
    }

    /// Processes bytes read from the connection. An error ends the session.
    pub fn on_bytes(&mut self, mut data: &[u8]) -> Result<(), Error> {
        while !data.is_empty() {
            match &mut self.read {
                ReadState::Header { buf, got } => {
                    let n = (HEADER_LEN - *got).min(data.len());
                    buf[*got..*got + n].copy_from_slice(&data[..n]);
                    *got += n;
                    data = &data[n..];
                    if *got == HEADER_LEN {
                        let h = Header::decode(buf).map_err(Error::Frame)?;
                        self.read = ReadState::Header {
                            buf: [0; HEADER_LEN],
                            got: 0,
                        };
                        self.on_header(h)?;
                    }
                }
                ReadState::Body { stream, left, fin } => {
                    let n = (*left as usize).min(data.len());
                    let (id, fin_now) = (*stream, *fin && n == *left as usize);
                    *left -= n as u32;
                    if *left == 0 {
                        self.read = ReadState::Header {
                            buf: [0; HEADER_LEN],
                            got: 0,
                        };
                    }
                    if let Some(s) = self.streams.get_mut(&id) {
                        s.recv.extend(&data[..n]);
                        if fin_now {
                            s.remote_fin = true;
                        }
                        if let Some(w) = s.reader.take() {
                            w.wake();
                        }
                    }
                    data = &data[n..];
                }
            }
        }
        if self.out.len() > OUT_LIMIT + CONTROL_SLACK {
            return Err(Error::Protocol("peer does not read"));
        }
        Ok(())
    }

    fn on_header(&mut self, h: Header) -> Result<(), Error> {
        match h.kind {
            Kind::Ping => {
                if h.has(SYN) {
                    self.queue(Header::new(Kind::Ping, ACK, 0, h.length));
                }
                Ok(())
            }
            Kind::GoAway => Err(Error::GoAway(h.length)),
            Kind::Data | Kind::WindowUpdate => self.on_stream_frame(h),
        }
    }

    fn on_stream_frame(&mut self, h: Header) -> Result<(), Error> {
        if h.stream == 0 {
            return Err(Error::Protocol("stream frame on stream 0"));
        }
        let data = h.kind == Kind::Data;
        let body = if data { h.length } else { 0 };
        let mut target = h.stream;
        if h.has(RST) {
            if let Some(s) = self.streams.get_mut(&h.stream) {
                s.reset = true;
                s.wake();
            }
            target = 0;
        } else if h.has(SYN) {
            // Peer-opened ids have the other parity than ours.
            if (h.stream % 2 == 1) == self.client {
                return Err(Error::Protocol("stream id of the wrong side"));
            }
            if self.streams.contains_key(&h.stream) {
                return Err(Error::Protocol("stream opened twice"));
            }
            if self.streams.len() >= MAX_STREAMS || self.closing {
                self.queue(Header::new(Kind::WindowUpdate, RST, h.stream, 0));
                target = 0;
            } else {
                let extra = if data { 0 } else { h.length };
                let send = WINDOW
                    .checked_add(extra)
                    .ok_or(Error::Protocol("window overflow"))?;
                self.streams.insert(h.stream, StreamState::new(send));
                self.accepted.push(h.stream);
                self.queue(Header::new(Kind::WindowUpdate, ACK, h.stream, 0));
            }
        } else if !data {
            if let Some(s) = self.streams.get_mut(&h.stream) {
                s.send_window = s
                    .send_window
                    .checked_add(h.length)
                    .ok_or(Error::Protocol("window overflow"))?;
                if let Some(w) = s.writer.take() {
                    w.wake();
                }
            }
        }
        if target != 0 {
            if let Some(s) = self.streams.get_mut(&target) {
                if body > s.recv_window {
                    return Err(Error::Protocol("data beyond the window"));
                }
                s.recv_window -= body;
                // A window update's FIN (or an empty data frame's) applies now; a data FIN
                // once its body is in.
                if h.has(FIN) && body == 0 {
                    s.remote_fin = true;
                    if let Some(w) = s.reader.take() {
                        w.wake();
                    }
                }
            } else {
                // A stream we dropped: its late data is discarded (no reset, as rust-yamux,
                // since our own reset or FIN may still be on its way).
                target = 0;
            }
        }
        if body > 0 {
            // Bodies of unknown streams are skipped unbuffered; known streams are bounded by
            // their window, checked above.
            self.read = ReadState::Body {
                stream: target,
                left: body,
                fin: h.has(FIN),
            };
        }
        Ok(())
    }
}

/// The frame the driver sends before closing.
pub fn go_away(code: u32) -> Header {
    Header::new(Kind::GoAway, 0, 0, code)
}

pub use frame::{GO_AWAY_NORMAL, GO_AWAY_PROTOCOL};

//! The sending half of a fast-path session: sealing into runs, the send, the path as
//! quinn has it, and what the peer takes (AES, partial checksums).

use super::socket::Direct;
use super::*;

/// The sending half: seals payloads for the peer's receiver index.
pub struct Tx {
    pub(super) conn: quinn::Connection,
    pub(super) socket: Arc<dyn SendSocket>,
    pub(super) key: Key,
    pub(super) index: u32,
    pub(super) state: Mutex<TxState>,
    pub(super) table: Arc<Table>,
    pub(super) count: Arc<Count>,
    /// The peer listed [`AES_PROTOCOL`] (set by [`Tx::peer_takes_aes`]).
    pub(super) peer_aes: AtomicBool,
    /// The peer listed [`PARTIAL_PROTOCOL`] (set by [`Tx::peer_takes_partial`]).
    pub(super) peer_partial: AtomicBool,
}

pub(super) struct TxState {
    /// The next counter (64 bits: it is the nonce and must never wrap).
    pub(super) next: u64,
    /// Where packets sent without waiting (`send`, `send_many`) are sealed.
    pub(super) single: Run,
    /// The connection's path as quinn last said, re-read every `PATH_REFRESH` packets.
    pub(super) path: Option<PathInfo>,
    /// Where this node seals with AES (used once the peer takes it).
    pub(super) aes: Option<aes::TxKeys>,
    /// The socket connected to the peer, for the path's address it was opened for.
    pub(super) direct: Option<Direct>,
}

/// What a send needs from the QUIC connection. Each of quinn's getters locks the
/// connection's state and reads a line of it that is cold at a ping's pace (five per packet
/// in all), so they are read together and kept for a few packets.
pub(super) struct PathInfo {
    remote: SocketAddr,
    local_ip: Option<IpAddr>,
    max_size: Option<usize>,
}

/// Packets sent on a cached path before quinn is asked again: after a migration or a
/// change of the path MTU at most this many go the old way (a fast packet to an old address
/// is lost, as a datagram would be in flight).
const PATH_REFRESH: u64 = 16;

impl Tx {
    /// Seals `payload` and sends it to the connection's current remote address, without
    /// waiting: an error if the socket refused it (full) or the counter ran out. Whether the
    /// connection is still open is the caller's check (the data plane makes it per packet
    /// for both paths); a packet sealed after the close is refused by the peer, whose
    /// session ended with it. `partial`: its checksum is partial (only where [`Tx::takes_partial`]).
    pub fn send(&self, payload: &[u8], partial: bool) -> io::Result<()> {
        // A run of one; refused (the socket buffer full), it is dropped, as a datagram would be.
        match self.send_many(std::iter::once(payload), partial) {
            1 => Ok(()),
            _ => Err(io::Error::other("fast packet not sent")),
        }
    }

    /// Seals and sends `payloads` in runs (one GSO send each) without waiting; how many
    /// went out, from the first. It stops at the first send the socket refuses (full): that
    /// run's packets and the rest did not go, for the caller to queue. `partial`: their
    /// checksums are partial (only where [`Tx::takes_partial`]).
    pub fn send_many<'a>(&self, payloads: impl Iterator<Item = &'a [u8]>, partial: bool) -> usize {
        let mut st = lock(&self.state);
        let st = &mut *st;
        let mut run = std::mem::take(&mut st.single);
        let mut sent = 0;
        let mut failed = false;
        for p in payloads {
            if !run.takes(p.len()) {
                let n = run.count;
                if self.send_locked(st, &mut run).is_err() {
                    failed = true;
                    break;
                }
                sent += n;
            }
            if self.seal_locked(st, &mut run, p, partial).is_err() {
                failed = true;
                break;
            }
        }
        if !failed {
            let n = run.count;
            if self.send_locked(st, &mut run).is_ok() {
                sent += n;
            }
        }
        run.clear();
        st.single = run;
        sent
    }

    /// Seals `payload` into `run` (the caller checked [`Run::takes`]).
    pub fn seal_into(&self, run: &mut Run, payload: &[u8]) -> io::Result<()> {
        self.seal_locked(&mut lock(&self.state), run, payload, false)
    }

    fn seal_locked(
        &self,
        st: &mut TxState,
        run: &mut Run,
        payload: &[u8],
        partial: bool,
    ) -> io::Result<()> {
        let counter = st.next;
        if counter >= wire::COUNTER_LIMIT {
            return Err(io::Error::other("fast path counter exhausted"));
        }
        let key = match st.aes.as_mut() {
            Some(k) if self.peer_aes.load(Ordering::Relaxed) => k
                .key(counter)
                .ok_or_else(|| io::Error::other("no AES key"))?,
            _ => &self.key,
        };
        st.next += 1;
        let h = wire::Sealed {
            index: self.index,
            counter,
            partial,
        };
        if !wire::seal_append(key, h, payload, &mut run.buf) {
            return Err(io::Error::other("seal failed"));
        }
        if run.count == 0 {
            run.segment = payload.len() + wire::OVERHEAD;
            run.max = self.socket.max_segments().clamp(1, 64);
        }
        run.count += 1;
        Ok(())
    }

    /// Sends a run in one send (GSO), without waiting, and empties it. `WouldBlock` (the
    /// socket buffer is full) keeps the run to send again after [`Tx::writable`]; any other
    /// error drops it.
    pub fn send_run(&self, run: &mut Run) -> io::Result<()> {
        self.send_locked(&mut lock(&self.state), run)
    }

    fn send_locked(&self, st: &mut TxState, run: &mut Run) -> io::Result<()> {
        if run.count == 0 {
            return Ok(());
        }
        // quinn is asked again as often as for single packets: when a counter in the run
        // is a multiple of PATH_REFRESH.
        let start = st.next.saturating_sub(run.count as u64);
        let refresh = start.div_ceil(PATH_REFRESH) * PATH_REFRESH < st.next;
        let (p, socket) = self.route(st, refresh);
        let sent = socket.unwrap_or(&self.socket).try_send(&Transmit {
            destination: p.remote,
            ecn: None,
            contents: &run.buf,
            segment_size: (run.count > 1).then_some(run.segment),
            src_ip: p.local_ip,
        });
        if let Err(e) = sent {
            // The path may have changed under us (an address gone): ask quinn next time.
            st.path = None;
            if e.kind() != io::ErrorKind::WouldBlock {
                run.clear();
            }
            return Err(e);
        }
        self.table
            .counters
            .sent
            .fetch_add(run.count, Ordering::Relaxed);
        self.count.sent.fetch_add(run.count, Ordering::Relaxed);
        run.clear();
        Ok(())
    }

    /// Opens the socket connected to the peer for the path as quinn has it now, as the
    /// first send would otherwise do (`Direct::for_path`: once per path, refused at the cap).
    pub fn open_direct(&self) {
        self.route(&mut lock(&self.state), true);
    }

    /// The path as quinn last said, and the socket connected to its remote address.
    fn route<'s>(
        &self,
        st: &'s mut TxState,
        refresh: bool,
    ) -> (&'s PathInfo, Option<&'s Arc<dyn SendSocket>>) {
        let p = self.path(&mut st.path, refresh);
        let connect = self.table.connect.get();
        (
            p,
            Direct::for_path(&mut st.direct, connect, p.remote, p.local_ip),
        )
    }

    /// Whether the peer takes AES-128-GCM (it lists [`AES_PROTOCOL`]); used only where this
    /// node has it too. Told once per batch of the peer's queue: written only when it
    /// changes, so the line the sealing thread reads stays shared rather than bouncing.
    pub fn peer_takes_aes(&self, takes: bool) {
        if self.peer_aes.load(Ordering::Relaxed) != takes {
            self.peer_aes.store(takes, Ordering::Relaxed);
        }
    }

    /// Whether the peer takes partial checksums (it lists [`PARTIAL_PROTOCOL`]); told as
    /// [`Tx::peer_takes_aes`] is.
    pub fn peer_takes_partial(&self, takes: bool) {
        if self.peer_partial.load(Ordering::Relaxed) != takes {
            self.peer_partial.store(takes, Ordering::Relaxed);
        }
    }

    /// Whether a packet whose checksum the kernel left partial may be sent so.
    pub fn takes_partial(&self) -> bool {
        self.peer_partial.load(Ordering::Relaxed)
    }

    /// Whether packets are sealed with AES-128-GCM now (tests).
    #[cfg(test)]
    pub fn seals_with_aes(&self) -> bool {
        self.peer_aes.load(Ordering::Relaxed) && lock(&self.state).aes.is_some()
    }

    /// Whether a socket connected to the peer is open (tests).
    #[cfg(test)]
    pub fn has_direct(&self) -> bool {
        lock(&self.state)
            .direct
            .as_ref()
            .is_some_and(|d| d.socket.is_some())
    }

    /// Sets the next packet's counter (tests: across an AES epoch).
    #[cfg(test)]
    pub fn set_next_counter(&self, next: u64) {
        lock(&self.state).next = next;
    }

    /// Resolves when the socket has room again after a send found it full.
    pub async fn writable(&self) -> io::Result<()> {
        let direct = lock(&self.state)
            .direct
            .as_ref()
            .and_then(|d| d.socket.clone());
        direct
            .unwrap_or_else(|| self.socket.clone())
            .writable()
            .await
    }

    /// The largest payload: what a QUIC datagram on the same path may carry (its overhead
    /// is at least ours), as of the last packets.
    pub fn max_size(&self) -> Option<usize> {
        self.path(&mut lock(&self.state).path, false).max_size
    }

    fn path<'a>(&self, cached: &'a mut Option<PathInfo>, refresh: bool) -> &'a PathInfo {
        if refresh {
            *cached = None;
        }
        cached.get_or_insert_with(|| PathInfo {
            remote: self.conn.remote_address(),
            local_ip: self.conn.local_ip(),
            max_size: self.conn.max_datagram_size(),
        })
    }
}

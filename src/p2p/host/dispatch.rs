//! Inbound streams and datagrams by protocol: what we answer ourselves (identify, push, ping,
//! relay stop), what goes to a registered handler, and who gets a peer's datagrams.

use super::conn::{best, Link};
use super::{bump, Error, Host, Stream, NEGOTIATION_TIMEOUT};
use crate::p2p::error::Violation;
use crate::p2p::identity::PeerId;
use crate::p2p::multiaddr::Multiaddr;
use crate::p2p::transport::stream::{RecvStream, SendStream};
use crate::p2p::{identify, multistream, ping, relay};
use futures_util::FutureExt;
use tokio::sync::mpsc;

use crate::p2p::fastpath;
pub use crate::p2p::fastpath::{DatagramHandler, DatagramSink, Datagrams, DirectPath};
/// Datagrams handed over at once, at most.
const DATAGRAM_BATCH: usize = 64;

impl Host {
    /// Protocols we answer, as listed in identify.
    pub fn protocols(&self) -> Vec<String> {
        let mut p = vec![
            identify::PROTOCOL.to_string(),
            identify::PUSH_PROTOCOL.to_string(),
            ping::PROTOCOL.to_string(),
            relay::STOP_PROTOCOL.to_string(),
        ];
        p.extend(self.state().handlers.keys().cloned());
        if let Some((proto, _)) = self.0.datagrams.get() {
            p.push(proto.clone());
            p.push(fastpath::PROTOCOL.to_string());
            if self.0.fast.takes_aes() {
                p.push(fastpath::AES_PROTOCOL.to_string());
            }
            if self.0.fast.takes_partial() {
                p.push(fastpath::PARTIAL_PROTOCOL.to_string());
            }
        }
        p
    }

    /// Inbound streams negotiated for `protocol` arrive on the returned channel (at most
    /// `capacity` waiting; more are reset).
    pub fn register(&self, protocol: &str, capacity: usize) -> mpsc::Receiver<Stream> {
        let (tx, rx) = mpsc::channel(capacity);
        self.state().handlers.insert(protocol.to_string(), tx);
        rx
    }

    /// Accepts QUIC datagrams: `handler` gets every datagram a peer sends on a direct
    /// connection, and `protocol` is listed in identify so peers know we take them. Set once;
    /// a second call is ignored. Without it datagrams are read and dropped.
    pub fn set_datagram_handler(&self, protocol: &str, handler: DatagramHandler) {
        self.0.fast.set_handler(handler.clone());
        let _ = self.0.datagrams.set((protocol.to_string(), handler));
    }

    /// Runs `f` after each read that brought the datagram handler more than one fast packet
    /// (set once): the handler may hold a burst back until then.
    pub fn set_batch_end(&self, f: Box<dyn Fn() + Send + Sync>) {
        self.0.fast.set_batch_end(f);
    }

    /// The direct QUIC connection to `peer` if the peer listed `protocol` in identify and the
    /// connection negotiated datagrams, with its fast path if the peer lists that too; `None`
    /// means: use a stream.
    pub fn datagram_path(&self, peer: &PeerId, protocol: &str) -> Option<DirectPath> {
        let st = self.state();
        let info = st.identified.get(peer)?;
        if !info.lists(protocol) {
            return None;
        }
        let conn = st.conns.get(peer).and_then(|c| best(c))?;
        match &conn.link {
            Link::Quic(c) if c.max_datagram_size().is_some() => Some(DirectPath {
                conn: c.clone(),
                fast: conn
                    .fast
                    .clone()
                    .filter(|_| info.lists(fastpath::PROTOCOL))
                    .inspect(|tx| {
                        tx.peer_takes_aes(info.lists(fastpath::AES_PROTOCOL));
                        tx.peer_takes_partial(info.lists(fastpath::PARTIAL_PROTOCOL));
                    }),
                closed: conn.closed.clone(),
            }),
            _ => None,
        }
    }

    /// Opens the socket connected to `peer` for the fast path the data plane will use (see
    /// `datagram_path`), once the peer lists it in identify: here, in the runtime, rather
    /// than in the first packet's send (a socket, bind, connect and GSO probe: most of the
    /// ~0.18 ms a fresh node's first ping took over the next ones, docs/BENCHMARKS.md). Only
    /// for friends: the sockets are capped (`connected::MAX_PEERS`), and packets go to
    /// friends only.
    pub(in crate::p2p) fn prepare_fast_path(&self, peer: &PeerId) {
        let Some((protocol, _)) = self.0.datagrams.get() else {
            return;
        };
        if !self.is_friend(peer) {
            return;
        }
        if let Some(tx) = self.datagram_path(peer, protocol).and_then(|p| p.fast) {
            tx.open_direct();
        }
    }

    /// Fast packets sent, received and refused (forged, replayed, unknown index).
    pub fn fast_counters(&self) -> (u64, u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        let c = &self.0.fast.counters;
        (
            c.sent.load(Relaxed) as u64,
            c.received.load(Relaxed) as u64,
            c.refused.load(Relaxed) as u64,
        )
    }

    /// The socket's fast-path table, for tests that install sessions by hand.
    #[cfg(test)]
    pub(crate) fn fast_table(&self) -> std::sync::Arc<crate::p2p::fastpath::Table> {
        self.0.fast.clone()
    }

    /// The fast packets' thread, to lend it the TUN's reads (None: there is no such thread).
    pub fn packet_thread(&self) -> Option<crate::sys::packet_thread::Lender> {
        self.0.fast_reader.as_ref().map(|r| r.lender())
    }

    /// Whether `peer`'s best connection could carry datagrams (direct QUIC, negotiated) but
    /// identify has not answered yet, so `datagram_path` cannot tell.
    pub fn awaits_identify(&self, peer: &PeerId) -> bool {
        let st = self.state();
        !st.identified.contains_key(peer)
            && matches!(
                st.conns.get(peer).and_then(|c| best(c)).map(|c| &c.link),
                Some(Link::Quic(c)) if c.max_datagram_size().is_some()
            )
    }

    /// Hands a direct connection's datagrams to the handler, in batches, until it closes.
    pub(super) async fn read_datagrams(&self, peer: PeerId, conn: quinn::Connection) {
        let mut batch = Vec::with_capacity(DATAGRAM_BATCH);
        let mut sink: Option<DatagramSink> = None;
        while let Ok(d) = conn.read_datagram().await {
            batch.push(d);
            // What else is already buffered, without waiting for more.
            while batch.len() < DATAGRAM_BATCH {
                match conn.read_datagram().now_or_never() {
                    Some(Ok(d)) => batch.push(d),
                    _ => break,
                }
            }
            if sink.is_none() {
                sink = self.0.datagrams.get().map(|(_, handler)| handler(&peer));
            }
            if let Some(sink) = sink.as_mut() {
                sink(Datagrams::Batch(&mut batch));
            }
            batch.clear();
        }
    }

    /// Serves an inbound stream in its own task, unless the peer opens them too fast.
    pub(super) fn spawn_serve(
        &self,
        peer: PeerId,
        mut send: SendStream,
        mut recv: RecvStream,
        observed: Option<Multiaddr>,
    ) {
        let allowed = self
            .0
            .stream_limit
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .allow(&peer, std::time::Instant::now());
        if !allowed {
            bump(&self.0.counters.rate_limited_streams);
            send.reset();
            recv.stop();
            return;
        }
        let host = self.clone();
        crate::spawn(async move {
            if let Err(e) = host.serve_stream(peer.clone(), send, recv, observed).await {
                log::debug!("inbound stream from {}: {e}", peer.short());
            }
        });
    }

    async fn serve_stream(
        &self,
        peer: PeerId,
        mut send: SendStream,
        mut recv: RecvStream,
        observed: Option<Multiaddr>,
    ) -> Result<(), Error> {
        let supported = self.protocols();
        let refs: Vec<&str> = supported.iter().map(String::as_str).collect();
        let protocol = tokio::time::timeout(
            NEGOTIATION_TIMEOUT,
            multistream::listener_select(&mut recv, &mut send, &refs),
        )
        .await
        .map_err(|_| Error::Timeout("protocol negotiation"))??;
        match protocol.as_str() {
            identify::PROTOCOL => self.answer_identify(send, observed).await?,
            identify::PUSH_PROTOCOL => self.accept_identify_push(peer, recv).await?,
            ping::PROTOCOL => {
                ping::serve(&mut recv, &mut send).await?;
                send.finish().await;
            }
            relay::STOP_PROTOCOL => self.accept_stop(peer, send, recv).await?,
            other => {
                let tx = self.state().handlers.get(other).cloned();
                let Some(tx) = tx else {
                    return Err(Violation::NoHandler(other.to_string()).into());
                };
                let stream = Stream {
                    peer,
                    protocol,
                    send,
                    recv,
                };
                if let Err(mpsc::error::TrySendError::Full(mut s)) = tx.try_send(stream) {
                    bump(&self.0.counters.busy_streams);
                    s.send.reset();
                    return Err(Violation::HandlerBusy.into());
                }
            }
        }
        Ok(())
    }
}

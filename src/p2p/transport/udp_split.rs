//! Splits what the QUIC socket reads: fast packets (`p2p::fastpath`) are opened and handed
//! on here, inside the endpoint's read, and never reach quinn; everything else does.

use crate::p2p::fastpath::{wire, Table};
use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// Fast packets handled in one read before the endpoint task yields, so a flood of them
/// cannot hold the runtime.
const BUDGET: usize = 256;

#[derive(Debug)]
pub(super) struct Split {
    pub(super) inner: Arc<dyn AsyncUdpSocket>,
    pub(super) fast: Arc<Table>,
}

impl AsyncUdpSocket for Split {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.inner.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        self.inner.try_send(transmit)
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let mut budget = BUDGET;
        loop {
            let n = match self.inner.poll_recv(cx, bufs, meta) {
                Poll::Ready(Ok(n)) => n.min(bufs.len()).min(meta.len()),
                other => return other,
            };
            let kept = self.take_fast(n, bufs, meta);
            if kept > 0 {
                return Poll::Ready(Ok(kept));
            }
            budget = budget.saturating_sub(n.max(1));
            if budget == 0 {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.inner.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.inner.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}

impl Split {
    /// Hands the fast packets among the first `n` on, and moves the others to the front;
    /// returns how many are left for quinn. A message of several coalesced packets (GRO
    /// without our `GroSocket`, when its buffer could not be mapped) is left whole to quinn,
    /// which drops a fast packet in it as not QUIC.
    fn take_fast(&self, n: usize, bufs: &mut [IoSliceMut<'_>], meta: &mut [RecvMeta]) -> usize {
        let mut kept = 0;
        for i in 0..n {
            let len = meta[i].len.min(bufs[i].len());
            let single = meta[i].stride >= len;
            if single && bufs[i].first() == Some(&wire::MARKER) {
                self.fast.receive(&mut bufs[i][..len]);
                continue;
            }
            if kept < i {
                let (front, back) = bufs.split_at_mut(i);
                if let Some(dst) = front[kept].get_mut(..len) {
                    dst.copy_from_slice(&back[0][..len]);
                    meta[kept] = meta[i];
                } else {
                    continue;
                }
            }
            kept += 1;
        }
        kept
    }
}

//! A run of fast packets for one GSO send.

use super::wire;

/// Fast packets sealed one after another into one buffer, sent with one system call (UDP
/// GSO): every packet the size of the first, the last one possibly shorter, as the kernel
/// cuts them. Kept by the sender task, so the buffer is one per peer with traffic.
#[derive(Default)]
pub struct Run {
    pub(super) buf: Vec<u8>,
    /// The size of each packet but the last.
    pub(super) segment: usize,
    pub(super) count: usize,
    /// Packets one send may carry (the socket's GSO limit, set by the first packet).
    pub(super) max: usize,
}

/// The most bytes one GSO send carries: a UDP datagram's limit, less IPv6's headers.
const RUN_BYTES: usize = 65_000;

impl Run {
    /// Whether a payload of `len` bytes may be sealed into this run: the run is empty, or
    /// the packet is no larger than the others, the last one was not shorter, and there is
    /// room. Otherwise the run must be sent first.
    pub fn takes(&self, len: usize) -> bool {
        let size = len + wire::OVERHEAD;
        self.count == 0
            || (size <= self.segment
                && self.count < self.max
                && self.buf.len() == self.count * self.segment
                && self.buf.len() + size <= RUN_BYTES)
    }

    /// Packets in the run.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Empties the run (its packets are dropped).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.count = 0;
        self.segment = 0;
    }
}

//! A bounded pool of fixed-size packet buffers.
//!
//! Memory for packets is at most `count × size`, set by configuration, whatever the traffic:
//! when all buffers are in use the packet is dropped and counted, never allocated. Buffers are
//! created on first need and then kept, so an idle node does not hold the whole pool (an idle
//! router keeps a few dozen; a loaded one reaches its working set and stays there).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

struct Inner {
    free: Mutex<Vec<Box<[u8]>>>,
    /// Buffers created so far (in use or free); never above `capacity`.
    created: AtomicUsize,
    size: usize,
    capacity: usize,
    exhausted: AtomicUsize,
}

#[derive(Clone)]
pub struct PacketPool(Arc<Inner>);

impl PacketPool {
    pub fn new(count: usize, size: usize) -> Self {
        PacketPool(Arc::new(Inner {
            free: Mutex::new(Vec::with_capacity(count)),
            created: AtomicUsize::new(0),
            size,
            capacity: count,
            exhausted: AtomicUsize::new(0),
        }))
    }

    /// A buffer holding a copy of `data`; `None` when all are in use (counted) or `data`
    /// is larger than a buffer.
    pub fn copy_of(&self, data: &[u8]) -> Option<PacketBuf> {
        if data.len() > self.0.size {
            return None;
        }
        let mut buf = self.get()?;
        buf.space()[..data.len()].copy_from_slice(data);
        buf.set_len(data.len());
        Some(buf)
    }

    /// A buffer, or `None` (counted) when all are in use.
    pub fn get(&self) -> Option<PacketBuf> {
        let mut buf = self.0.free.lock().unwrap_or_else(|e| e.into_inner()).pop();
        if buf.is_none() {
            let grew = self
                .0
                .created
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < self.0.capacity).then_some(n + 1)
                })
                .is_ok();
            if grew {
                buf = Some(vec![0u8; self.0.size].into_boxed_slice());
            }
        }
        match buf {
            Some(buf) => Some(PacketBuf {
                buf: Some(buf),
                len: 0,
                pool: self.0.clone(),
            }),
            None => {
                self.0.exhausted.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    pub fn buffer_size(&self) -> usize {
        self.0.size
    }

    pub fn capacity(&self) -> usize {
        self.0.capacity
    }

    /// Buffers a packet could get now (free ones plus those not created yet).
    pub fn available(&self) -> usize {
        self.0.free.lock().unwrap_or_else(|e| e.into_inner()).len() + self.0.capacity
            - self.0.created.load(Ordering::Acquire)
    }

    /// Buffers created so far (the pool's memory is this × the buffer size).
    pub fn created(&self) -> usize {
        self.0.created.load(Ordering::Acquire)
    }

    /// Times a packet was dropped because the pool was empty.
    pub fn exhausted(&self) -> usize {
        self.0.exhausted.load(Ordering::Relaxed)
    }
}

/// A packet in a pooled buffer; returns to the pool when dropped.
pub struct PacketBuf {
    buf: Option<Box<[u8]>>,
    len: usize,
    pool: Arc<Inner>,
}

impl PacketBuf {
    /// The whole buffer, to read into.
    pub fn space(&mut self) -> &mut [u8] {
        self.buf.as_deref_mut().unwrap_or(&mut [])
    }

    /// Bytes the buffer holds at most.
    pub fn capacity(&self) -> usize {
        self.buf.as_deref().map_or(0, <[u8]>::len)
    }

    pub fn set_len(&mut self, len: usize) {
        self.len = len.min(self.pool.size);
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn data(&self) -> &[u8] {
        self.buf.as_deref().map_or(&[], |b| &b[..self.len])
    }

    /// The packet and the byte behind it (a trailer written there without changing the
    /// length); just the packet if the buffer is full.
    pub fn data_with_trailer(&self) -> &[u8] {
        let end = (self.len + 1).min(self.capacity());
        self.buf.as_deref().map_or(&[], |b| &b[..end])
    }

    pub fn data_mut(&mut self) -> &mut [u8] {
        let len = self.len;
        self.buf.as_deref_mut().map_or(&mut [], |b| &mut b[..len])
    }
}

/// Lets a packet become `bytes::Bytes` (`Bytes::from_owner`) without a copy: the buffer goes
/// back to the pool when the last `Bytes` is dropped.
impl AsRef<[u8]> for PacketBuf {
    fn as_ref(&self) -> &[u8] {
        self.data()
    }
}

impl Drop for PacketBuf {
    fn drop(&mut self) {
        if let Some(buf) = self.buf.take() {
            self.pool
                .free
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_return_and_exhaustion_is_counted() {
        let pool = PacketPool::new(2, 64);
        let mut a = pool.get().unwrap();
        let _b = pool.get().unwrap();
        assert!(pool.get().is_none());
        assert_eq!(pool.exhausted(), 1);
        a.space()[..3].copy_from_slice(b"abc");
        a.set_len(3);
        assert_eq!(a.data(), b"abc");
        a.set_len(1000);
        assert_eq!(a.len(), 64, "length is clamped to the buffer");
        drop(a);
        assert_eq!(pool.available(), 1);
        assert!(pool.get().is_some());
    }

    #[test]
    fn buffers_are_created_on_demand_up_to_the_cap() {
        let pool = PacketPool::new(3, 64);
        assert_eq!(
            (pool.created(), pool.available()),
            (0, 3),
            "nothing allocated idle"
        );
        let a = pool.get().unwrap();
        drop(a);
        let _b = pool.get().unwrap();
        assert_eq!(pool.created(), 1, "a returned buffer is reused");
        let held: Vec<_> = (0..2).map(|_| pool.get().unwrap()).collect();
        assert_eq!(pool.created(), 3);
        assert!(pool.get().is_none(), "never more than the cap");
        drop(held);
        assert_eq!((pool.created(), pool.available()), (3, 2));
    }
}

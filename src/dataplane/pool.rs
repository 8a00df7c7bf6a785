//! A fixed pool of fixed-size packet buffers, allocated once at start.
//!
//! Memory for packets is `count × size`, set by configuration, whatever the traffic: when the
//! pool is empty the packet is dropped and counted, never allocated.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

struct Inner {
    free: Mutex<Vec<Box<[u8]>>>,
    size: usize,
    capacity: usize,
    exhausted: AtomicUsize,
}

#[derive(Clone)]
pub struct PacketPool(Arc<Inner>);

impl PacketPool {
    pub fn new(count: usize, size: usize) -> Self {
        let free = (0..count)
            .map(|_| vec![0u8; size].into_boxed_slice())
            .collect();
        PacketPool(Arc::new(Inner {
            free: Mutex::new(free),
            size,
            capacity: count,
            exhausted: AtomicUsize::new(0),
        }))
    }

    /// A buffer, or `None` (counted) when all are in use.
    pub fn get(&self) -> Option<PacketBuf> {
        let buf = self.0.free.lock().unwrap_or_else(|e| e.into_inner()).pop();
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

    pub fn available(&self) -> usize {
        self.0.free.lock().unwrap_or_else(|e| e.into_inner()).len()
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

    pub fn data_mut(&mut self) -> &mut [u8] {
        let len = self.len;
        self.buf.as_deref_mut().map_or(&mut [], |b| &mut b[..len])
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
}

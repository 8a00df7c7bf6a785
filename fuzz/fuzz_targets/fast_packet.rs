//! A fast packet as the socket reads it (`p2p::fastpath::wire`, `aes`): the header, opening
//! under a key of either cipher and under the AES epochs' keys, and the replay window fed the
//! input's counters. Never a panic; a packet opens only as sealed; a counter once marked is
//! never fresh again. Our own ChaCha20-Poly1305 (what MIPS routers open strangers' packets
//! with; built here under cargo-fuzz's `cfg(fuzzing)`) seals the bytes ring seals, opens
//! ring's packets, and refuses every forgery ring refuses.
#![no_main]
use awl::p2p::fastpath::aes::RxKeys;
use awl::p2p::fastpath::wire::{header, open, seal, Key, Replay};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(key) = Key::new(&[7; 32]) else { return };
    let Some(aes) = Key::aes(&[7; 16]) else { return };
    let mut pkt = data.to_vec();
    if let Some(h) = header(&pkt) {
        // Arbitrary bytes do not authenticate, under either cipher or any epoch's key.
        assert!(open(&key, h.counter, &mut pkt.clone()).is_none());
        assert!(open(&aes, h.counter, &mut pkt.clone()).is_none());
        if let Some(mut rx) = RxKeys::new(&[7; 32]) {
            assert!(rx.open(h.counter, &mut pkt).is_none());
        }
    }
    // The input as a payload: sealed, it opens to itself, and only under its counter.
    for key in [&key, &aes] {
        let mut sealed = Vec::new();
        assert!(seal(key, 3, 9, data, &mut sealed));
        let h = header(&sealed).map(|h| (h.index, h.counter));
        assert_eq!(h, Some((3, 9)));
        assert_eq!(open(key, 9, &mut sealed.clone()).map(|p| &*p), Some(data));
        assert!(open(key, 10, &mut sealed).is_none());
    }
    #[cfg(fuzzing)]
    own_against_ring(data);
    // The input as counters (8 bytes each, small ones and big jumps alike).
    let mut r = Replay::default();
    let mut marked = Vec::new();
    for c in data.chunks_exact(8) {
        let n = u64::from_le_bytes(c.try_into().unwrap_or_default()) >> (c[0] % 64);
        if r.fresh(n) {
            r.mark(n);
            marked.push(n);
        }
        assert!(!r.fresh(n));
    }
    assert!(marked.iter().all(|&n| !r.fresh(n)));
});

/// The input's first 32 bytes (zero-padded) as the key, its next 8 as the counter, all of it
/// as the packet and as a payload; the byte at the position the input names, flipped.
#[cfg(fuzzing)]
fn own_against_ring(data: &[u8]) {
    let mut k = [0u8; 32];
    let n = data.len().min(32);
    k[..n].copy_from_slice(&data[..n]);
    let (own, Some(ring)) = (Key::own(&k), Key::with_ring(&k)) else {
        return;
    };
    let mut c = [0u8; 8];
    let rest = data.get(32..).unwrap_or_default();
    let m = rest.len().min(8);
    c[..m].copy_from_slice(&rest[..m]);
    let counter = u64::from_le_bytes(c) >> 4;
    // Arbitrary bytes: the two agree (both refuse, unless the input is a real packet).
    let opened = |key: &Key, p: &[u8]| open(key, counter, &mut p.to_vec()).map(|p| p.to_vec());
    assert_eq!(opened(&own, data), opened(&ring, data));
    // Sealed: the same bytes; each opens the other's to the payload.
    let (mut a, mut b) = (Vec::new(), Vec::new());
    assert!(seal(&own, 1, counter, data, &mut a));
    assert!(seal(&ring, 1, counter, data, &mut b));
    assert_eq!(a, b);
    assert_eq!(opened(&own, &b).as_deref(), Some(data));
    assert_eq!(opened(&ring, &a).as_deref(), Some(data));
    // One bit flipped anywhere after the marker (the marker's own bits name the cipher and
    // the partial checksum): refused by both, under the right counter.
    let at = 1 + data.first().map_or(0, |&b| b as usize * 7) % (a.len() - 1);
    a[at] ^= 1 << (counter % 8);
    assert_eq!(opened(&own, &a), None);
    assert_eq!(opened(&ring, &a), None);
}

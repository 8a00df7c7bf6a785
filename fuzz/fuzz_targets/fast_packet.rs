//! A fast packet as the socket reads it (`p2p::fastpath::wire`, `aes`): the header, opening
//! under a key of either cipher and under the AES epochs' keys, and the replay window fed the
//! input's counters. Never a panic; a packet opens only as sealed; a counter once marked is
//! never fresh again.
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

//! The fast path's packet, pure: header, sealing and opening, and the replay window.
//!
//! ```text
//! 0        1            5                   13
//! | MARKER | index u32  | counter u64       | ciphertext … | tag (16) |
//! ```
//!
//! `index` names the receiver's session (both sides derive it from the connection's TLS
//! exporter), `counter` is the sender's packet number and the nonce (never reused under one
//! key); the header is the AEAD's associated data. The first byte has QUIC's fixed bit (0x40)
//! and long-header bit (0x80) clear: our endpoint does not offer to take greased QUIC bits,
//! so no QUIC packet to us starts like this. Its low bit names the cipher:
//! ChaCha20-Poly1305 ([`MARKER`]: any node, no key-usage limit, and on routers without AES
//! instructions the faster one), or AES-128-GCM ([`MARKER_AES`]: between two nodes with AES
//! in hardware, where it costs a third as much; keys per epoch of packets, `super::aes`).
//! Its [`PARTIAL`] bit says the payload's TCP/UDP checksum was left for the receiver's
//! kernel to complete (sent only to nodes that list `super::PARTIAL_PROTOCOL`).

#[cfg(any(target_arch = "mips", test, fuzzing))]
use super::chacha;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, CHACHA20_POLY1305};

/// The first byte of a ChaCha20-Poly1305 packet.
pub const MARKER: u8 = 0x2a;
/// The first byte of an AES-128-GCM packet.
pub const MARKER_AES: u8 = MARKER | 1;
pub const HEADER_LEN: usize = 13;
pub const TAG_LEN: usize = 16;
/// Bytes a packet adds to its payload.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;
/// A sender stops at this counter (a connection would have to carry 2^60 packets).
pub const COUNTER_LIMIT: u64 = 1 << 60;

/// Set in the first byte: the payload's TCP/UDP checksum is partial, as the sender's kernel
/// left it (CHECKSUM_PARTIAL); the receiver writes it to its TUN for its kernel to complete
/// or skip. Authenticated with the rest of the header.
pub const PARTIAL: u8 = 0x04;
/// The bits of the first byte that make a fast packet (the cipher's and [`PARTIAL`] aside).
pub const MARKER_MASK: u8 = !(1 | PARTIAL);

/// Whether a datagram's first byte is a fast packet's (either cipher).
pub fn is_fast(first: u8) -> bool {
    first & MARKER_MASK == MARKER
}

/// One direction's key, with the marker its packets carry.
pub struct Key {
    aead: Aead,
    marker: u8,
}

/// Who seals: ring, or on MIPS (where ring has no assembly) our own ChaCha20-Poly1305
/// (`super::chacha`); the bytes on the wire are the same. Not boxed: one per direction per
/// peer, read for every packet.
#[allow(clippy::large_enum_variant)]
enum Aead {
    Ring(LessSafeKey),
    #[cfg(any(target_arch = "mips", test, fuzzing))]
    Own(chacha::Key),
}

impl Key {
    /// A ChaCha20-Poly1305 key: our own on MIPS.
    #[cfg(target_arch = "mips")]
    pub fn new(bytes: &[u8; 32]) -> Option<Key> {
        Some(Key::own(bytes))
    }

    /// A ChaCha20-Poly1305 key: ring's off MIPS.
    #[cfg(not(target_arch = "mips"))]
    pub fn new(bytes: &[u8; 32]) -> Option<Key> {
        Key::with_ring(bytes)
    }

    /// A ChaCha20-Poly1305 key sealed by ring on every target (`check_cipher` holds the
    /// target's own against it).
    pub fn with_ring(bytes: &[u8; 32]) -> Option<Key> {
        UnboundKey::new(&CHACHA20_POLY1305, bytes)
            .ok()
            .map(|k| Key {
                aead: Aead::Ring(LessSafeKey::new(k)),
                marker: MARKER,
            })
    }

    /// Our own ChaCha20-Poly1305 key, whatever the target (the fuzzer holds it to ring's).
    #[cfg(any(target_arch = "mips", test, fuzzing))]
    pub fn own(bytes: &[u8; 32]) -> Key {
        Key {
            aead: Aead::Own(chacha::Key::new(bytes)),
            marker: MARKER,
        }
    }

    /// An AES-128-GCM key.
    pub fn aes(bytes: &[u8; 16]) -> Option<Key> {
        UnboundKey::new(&AES_128_GCM, bytes).ok().map(|k| Key {
            aead: Aead::Ring(LessSafeKey::new(k)),
            marker: MARKER_AES,
        })
    }
}

fn nonce_bytes(counter: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_be_bytes());
    n
}

fn nonce(counter: u64) -> Nonce {
    Nonce::assume_unique_for_key(nonce_bytes(counter))
}

/// Writes one sealed packet of `payload` into `out` (cleared first).
pub fn seal(key: &Key, index: u32, counter: u64, payload: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    seal_append(
        key,
        Sealed {
            index,
            counter,
            partial: false,
        },
        payload,
        out,
    )
}

/// What a packet's header says besides its cipher.
#[derive(Debug, Clone, Copy)]
pub struct Sealed {
    pub index: u32,
    pub counter: u64,
    /// The payload's checksum is partial ([`PARTIAL`]).
    pub partial: bool,
}

/// Appends one sealed packet of `payload` to `out` (several make one GSO send); on failure
/// `out` is as it was.
pub fn seal_append(key: &Key, h: Sealed, payload: &[u8], out: &mut Vec<u8>) -> bool {
    let Sealed {
        index,
        counter,
        partial,
    } = h;
    let start = out.len();
    out.push(key.marker | if partial { PARTIAL } else { 0 });
    out.extend_from_slice(&index.to_be_bytes());
    out.extend_from_slice(&counter.to_be_bytes());
    out.extend_from_slice(payload);
    let (header, body) = out[start..].split_at_mut(HEADER_LEN);
    match &key.aead {
        Aead::Ring(k) => {
            match k.seal_in_place_separate_tag(nonce(counter), Aad::from(&*header), body) {
                Ok(tag) => out.extend_from_slice(tag.as_ref()),
                Err(_) => {
                    out.truncate(start);
                    return false;
                }
            }
        }
        #[cfg(any(target_arch = "mips", test, fuzzing))]
        Aead::Own(k) => {
            let tag = k.seal(&nonce_bytes(counter), header, body);
            out.extend_from_slice(&tag);
        }
    }
    true
}

/// A packet's header: the receiver index, the counter, whether it is sealed with
/// AES-128-GCM (else ChaCha20-Poly1305), and whether its payload's checksum is partial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub index: u32,
    pub counter: u64,
    pub aes: bool,
    pub partial: bool,
}

/// The header of a packet that is long enough to be one.
pub fn header(pkt: &[u8]) -> Option<Header> {
    if pkt.len() < OVERHEAD || !is_fast(pkt[0]) {
        return None;
    }
    Some(Header {
        index: u32::from_be_bytes(pkt[1..5].try_into().ok()?),
        counter: u64::from_be_bytes(pkt[5..13].try_into().ok()?),
        aes: pkt[0] & !PARTIAL == MARKER_AES,
        partial: pkt[0] & PARTIAL != 0,
    })
}

/// Authenticates and decrypts `pkt` in place; the payload on success. A packet with the
/// other cipher's marker is refused unread. On failure the buffer's contents are
/// unspecified.
pub fn open<'a>(key: &Key, counter: u64, pkt: &'a mut [u8]) -> Option<&'a mut [u8]> {
    if pkt.len() < OVERHEAD || pkt[0] & !PARTIAL != key.marker {
        return None;
    }
    let (header, body) = pkt.split_at_mut(HEADER_LEN);
    match &key.aead {
        Aead::Ring(k) => k
            .open_in_place(nonce(counter), Aad::from(&*header), body)
            .ok(),
        #[cfg(any(target_arch = "mips", test, fuzzing))]
        Aead::Own(k) => {
            let (body, tag) = body.split_at_mut(body.len() - TAG_LEN);
            k.open(&nonce_bytes(counter), header, body, tag)
                .then_some(body)
        }
    }
}

/// Whether this target's ChaCha20-Poly1305 ([`Key::new`]) and ring's seal the same packets
/// and open each other's, at lengths around the block size and a packet's: `awl selftest`
/// runs it, so a qemu run of a cross build checks the target's own cipher (MIPS, both byte
/// orders) against ring's on that target.
pub fn check_cipher() -> Result<(), String> {
    let bytes: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(29) ^ 0x5c);
    match (Key::new(&bytes), Key::with_ring(&bytes)) {
        (Some(ours), Some(ring)) => cross_check(&ours, &ring),
        _ => Err("cipher: no key".into()),
    }
}

fn cross_check(ours: &Key, ring: &Key) -> Result<(), String> {
    for len in [0usize, 1, 15, 16, 17, 63, 64, 65, 200, 1_100, 1_500] {
        let payload: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
        let counter = len as u64 * 1_000_003;
        let opened = |k: &Key, p: &[u8]| open(k, counter, &mut p.to_vec()).map(|p| p.to_vec());
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let mut ok = seal(ours, 9, counter, &payload, &mut a)
            && seal(ring, 9, counter, &payload, &mut b)
            && a == b
            && opened(ring, &a).as_deref() == Some(&payload[..])
            && opened(ours, &b).as_deref() == Some(&payload[..]);
        // A forged packet (its last tag byte changed) stays shut.
        if let Some(last) = a.last_mut() {
            *last ^= 1;
        }
        ok &= opened(ours, &a).is_none();
        if !ok {
            return Err(format!("cipher: {len} B packets differ from ring's"));
        }
    }
    Ok(())
}

const WINDOW_WORDS: usize = 32;

/// Counters already accepted: the highest one and the 1,984 or more before it (RFC 6479's
/// bitmap, as WireGuard keeps it). Anything older, or seen, is refused. Marked only after a
/// packet authenticated, so forged packets cannot burn counters.
pub struct Replay {
    /// The highest counter accepted + 1 (0: none yet).
    top: u64,
    bits: [u64; WINDOW_WORDS],
}

impl Default for Replay {
    fn default() -> Self {
        Replay {
            top: 0,
            bits: [0; WINDOW_WORDS],
        }
    }
}

impl Replay {
    /// Whether `n` may still be accepted.
    pub fn fresh(&self, n: u64) -> bool {
        if n >= COUNTER_LIMIT {
            return false;
        }
        if n >= self.top {
            return true;
        }
        if (self.top - 1) / 64 - n / 64 >= WINDOW_WORDS as u64 {
            return false;
        }
        self.bits[word(n)] & bit(n) == 0
    }

    /// Records `n` (checked `fresh` first).
    pub fn mark(&mut self, n: u64) {
        if n >= self.top {
            let new = n / 64;
            match self.top.checked_sub(1).map(|t| t / 64) {
                Some(old) if new - old < WINDOW_WORDS as u64 => {
                    for w in old + 1..=new {
                        self.bits[(w % WINDOW_WORDS as u64) as usize] = 0;
                    }
                }
                _ => self.bits = [0; WINDOW_WORDS],
            }
            self.top = n + 1;
        }
        self.bits[word(n)] |= bit(n);
    }
}

fn word(n: u64) -> usize {
    ((n / 64) % WINDOW_WORDS as u64) as usize
}

fn bit(n: u64) -> u64 {
    1 << (n % 64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> Key {
        Key::new(&[b; 32]).expect("key")
    }

    /// MIPS's own ChaCha20-Poly1305 and ring's make the same packets and open each other's;
    /// forged ones are refused by both (the flip test below, with the own key).
    #[test]
    fn own_cipher_and_ring_interoperate() {
        assert_eq!(check_cipher(), Ok(()));
        let (own, ring) = (Key::own(&[3; 32]), Key::with_ring(&[3; 32]).expect("key"));
        assert_eq!(cross_check(&own, &ring), Ok(()));
        // And it sees a cipher that is not ChaCha20-Poly1305's, or another key.
        let aes = Key::aes(&[3; 16]).expect("key");
        assert!(cross_check(&aes, &ring).is_err());
        assert!(cross_check(&Key::own(&[4; 32]), &ring).is_err());
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let h = Sealed {
            index: 1,
            counter: 77,
            partial: true,
        };
        assert!(seal_append(&own, h, b"payload", &mut a));
        assert!(seal_append(&ring, h, b"payload", &mut b));
        assert_eq!(a, b);
        for i in 0..a.len() {
            let mut bad = a.clone();
            bad[i] ^= 0x01;
            let ok = header(&bad).and_then(|h| open(&own, h.counter, &mut bad).map(|_| ()));
            assert!(ok.is_none(), "flipped byte {i} accepted");
        }
        assert_eq!(open(&own, 77, &mut a[..a.len() - 1].to_vec()), None);
        assert_eq!(open(&own, 77, &mut a).map(|p| &*p), Some(&b"payload"[..]));
    }

    #[test]
    fn a_sealed_packet_opens_with_its_key_and_counter_only() {
        let mut p = Vec::new();
        assert!(seal(&key(1), 7, 42, b"an ip packet", &mut p));
        assert_eq!(p.len(), 12 + OVERHEAD);
        let h = Header {
            index: 7,
            counter: 42,
            aes: false,
            partial: false,
        };
        assert_eq!(header(&p), Some(h));
        assert_eq!(
            open(&key(1), 42, &mut p.clone()).map(|p| &*p),
            Some(&b"an ip packet"[..])
        );
        // Refused: the other direction's key, another counter, any flipped bit anywhere
        // (header included: it is authenticated), a cut packet.
        assert_eq!(open(&key(2), 42, &mut p.clone()), None);
        assert_eq!(open(&key(1), 43, &mut p.clone()), None);
        for i in 0..p.len() {
            let mut bad = p.clone();
            bad[i] ^= 0x10;
            let ok = header(&bad).and_then(|h| open(&key(1), h.counter, &mut bad).map(|_| ()));
            assert!(ok.is_none(), "flipped byte {i} accepted");
        }
        assert_eq!(open(&key(1), 42, &mut p[..p.len() - 1].to_vec()), None);
        assert_eq!(header(&p[..OVERHEAD - 1]), None);
    }

    #[test]
    fn no_quic_packet_looks_like_one() {
        // Long header (0x80) and short header (fixed bit 0x40, not greased) both set a bit
        // the marker has clear.
        assert_eq!((MARKER | MARKER_AES) & 0xc0, 0);
        for first in 0x40..=0xffu8 {
            let quic = vec![first; 60];
            assert_eq!(header(&quic), None, "{first:#x}");
        }
        // Exactly the two markers are fast packets, each with or without the partial bit.
        let fast: Vec<u8> = (0..=255u8).filter(|b| is_fast(*b)).collect();
        assert_eq!(
            fast,
            [MARKER, MARKER_AES, MARKER | PARTIAL, MARKER_AES | PARTIAL]
        );
    }

    /// The partial bit is read from the header and authenticated: flipped either way, the
    /// packet does not open (a forwarder cannot make a receiver skip or redo a checksum).
    #[test]
    fn the_partial_bit_is_told_and_authenticated() {
        for k in [key(1), Key::aes(&[1; 16]).expect("key")] {
            for partial in [false, true] {
                let mut p = Vec::new();
                let h = Sealed {
                    index: 7,
                    counter: 42,
                    partial,
                };
                assert!(seal_append(&k, h, b"an ip packet", &mut p));
                assert_eq!(header(&p).map(|h| h.partial), Some(partial));
                assert_eq!(p[0] & PARTIAL != 0, partial);
                assert!(open(&k, 42, &mut p.clone()).is_some());
                p[0] ^= PARTIAL;
                assert_eq!(header(&p).map(|h| h.partial), Some(!partial));
                assert_eq!(open(&k, 42, &mut p), None, "relabelled partial={partial}");
            }
        }
    }

    #[test]
    fn an_aes_packet_opens_with_its_key_only_and_is_told_apart_by_its_marker() {
        let aes = |b: u8| Key::aes(&[b; 16]).expect("key");
        let mut p = Vec::new();
        assert!(seal(&aes(1), 7, 42, b"an ip packet", &mut p));
        assert_eq!(p[0], MARKER_AES);
        assert_eq!(p.len(), 12 + OVERHEAD);
        assert_eq!(
            header(&p).map(|h| (h.index, h.counter, h.aes)),
            Some((7, 42, true))
        );
        assert_eq!(
            open(&aes(1), 42, &mut p.clone()).map(|p| &*p),
            Some(&b"an ip packet"[..])
        );
        assert_eq!(open(&aes(2), 42, &mut p.clone()), None);
        assert_eq!(open(&aes(1), 41, &mut p.clone()), None);
        // The marker is authenticated: relabelled, neither cipher's key takes it (a
        // ChaCha key of the same bytes refuses it unread, the AES key on the header).
        let mut relabelled = p.clone();
        relabelled[0] = MARKER;
        assert_eq!(open(&aes(1), 42, &mut relabelled.clone()), None);
        assert_eq!(open(&key(1), 42, &mut relabelled), None);
        assert_eq!(open(&key(1), 42, &mut p.clone()), None);
        let mut c = Vec::new();
        assert!(seal(&key(1), 7, 42, b"an ip packet", &mut c));
        assert_eq!(open(&aes(1), 42, &mut c), None);
    }

    #[test]
    fn a_replayed_or_too_old_counter_is_refused() {
        let mut r = Replay::default();
        assert!(r.fresh(0));
        r.mark(0);
        assert!(!r.fresh(0));
        // Out of order within the window is taken once.
        r.mark(100);
        assert!(r.fresh(50));
        r.mark(50);
        assert!(!r.fresh(50) && !r.fresh(100));
        // A jump far ahead forgets everything before the window.
        r.mark(10_000);
        assert!(!r.fresh(100) && !r.fresh(50));
        assert!(!r.fresh(10_000 - 2048));
        assert!(r.fresh(10_000 - 1900));
        r.mark(10_000 - 1900);
        assert!(!r.fresh(10_000 - 1900));
        // Every counter of a long in-order run, then each replayed: all refused.
        let mut r = Replay::default();
        for n in 0..5000 {
            assert!(r.fresh(n), "{n}");
            r.mark(n);
        }
        assert!((0..5000).all(|n| !r.fresh(n)));
        // The window moving word by word clears what it reuses.
        let mut r = Replay::default();
        r.mark(5);
        r.mark(64 * WINDOW_WORDS as u64 + 5);
        assert!(!r.fresh(5), "fell out of the window");
        assert!(r.fresh(64 * WINDOW_WORDS as u64 + 4));
        assert!(!r.fresh(COUNTER_LIMIT));
    }
}

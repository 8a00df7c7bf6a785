//! ChaCha20-Poly1305 (RFC 8439) for CPUs ring has no assembly for: MIPS.
//!
//! A router seals and opens every fast packet with ChaCha20-Poly1305. On x86_64, ARM and
//! AArch64 ring's assembly does it; on MIPS ring falls back to portable code that, at the
//! flash budget's opt-levels, takes 56.8k instructions to seal 1,100 B (`bench/aead.sh`), ~90 %
//! of a packet's cost. This is the same AEAD written for a 32-bit CPU at opt-level "z": ChaCha20
//! on sixteen words in place, Poly1305 on five 26-bit limbs (products fit in u64), index loops
//! and inlined rounds (at "z" iterators over arrays stay calls). It is bound by what it must
//! produce, not by how: RFC 8439's vectors and ring's bytes for every length up to two
//! blocks past a packet (tests below; `awl selftest` checks it on the target, so qemu runs
//! check MIPS's byte orders; `fuzz/fuzz_targets/fast_packet.rs` holds it to ring under random
//! keys, counters, payloads and forgeries). RustCrypto's `chacha20poly1305` was measured too:
//! 95.8k at "z", 48.5k with every crate at 3 (its generic glue), so not a replacement.
//!
//! Constant time: no branch or index depends on a key, keystream or tag byte; the tag is
//! compared by folding every byte, and nothing is decrypted before it matched.
// Index loops are deliberate: see the module's note on "z".
#![allow(clippy::needless_range_loop)]

/// A key, as words.
pub struct Key {
    k: [u32; 8],
}

pub const TAG_LEN: usize = 16;

/// One little-endian word: a 4-byte copy is a single (unaligned) load, where byte by byte
/// would be four loads and the shifts.
#[inline(always)]
fn le32(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

/// A quarter round on four of the block's sixteen locals (RFC 8439 §2.1).
macro_rules! quarter {
    ($a:ident, $b:ident, $c:ident, $d:ident) => {
        $a = $a.wrapping_add($b);
        $d = ($d ^ $a).rotate_left(16);
        $c = $c.wrapping_add($d);
        $b = ($b ^ $c).rotate_left(12);
        $a = $a.wrapping_add($b);
        $d = ($d ^ $a).rotate_left(8);
        $c = $c.wrapping_add($d);
        $b = ($b ^ $c).rotate_left(7);
    };
}

/// One ChaCha20 block of state `s` (RFC 8439 §2.3). The sixteen words are locals, so they
/// live in registers, not in an array copied and indexed on the stack. One copy of it in the
/// binary (seal and open, key and keystream): a call per 64 bytes costs ~1 %.
#[inline(never)]
fn block(s: &[u32; 16]) -> [u32; 16] {
    let [mut x0, mut x1, mut x2, mut x3, mut x4, mut x5, mut x6, mut x7, mut x8, mut x9, mut x10, mut x11, mut x12, mut x13, mut x14, mut x15] =
        *s;
    for _ in 0..10 {
        quarter!(x0, x4, x8, x12);
        quarter!(x1, x5, x9, x13);
        quarter!(x2, x6, x10, x14);
        quarter!(x3, x7, x11, x15);
        quarter!(x0, x5, x10, x15);
        quarter!(x1, x6, x11, x12);
        quarter!(x2, x7, x8, x13);
        quarter!(x3, x4, x9, x14);
    }
    [
        x0.wrapping_add(s[0]),
        x1.wrapping_add(s[1]),
        x2.wrapping_add(s[2]),
        x3.wrapping_add(s[3]),
        x4.wrapping_add(s[4]),
        x5.wrapping_add(s[5]),
        x6.wrapping_add(s[6]),
        x7.wrapping_add(s[7]),
        x8.wrapping_add(s[8]),
        x9.wrapping_add(s[9]),
        x10.wrapping_add(s[10]),
        x11.wrapping_add(s[11]),
        x12.wrapping_add(s[12]),
        x13.wrapping_add(s[13]),
        x14.wrapping_add(s[14]),
        x15.wrapping_add(s[15]),
    ]
}

impl Key {
    pub fn new(bytes: &[u8; 32]) -> Key {
        let mut k = [0u32; 8];
        for i in 0..8 {
            k[i] = le32(bytes, 4 * i);
        }
        Key { k }
    }

    fn state(&self, nonce: &[u8; 12]) -> [u32; 16] {
        let mut s = [0u32; 16];
        s[0] = 0x6170_7865;
        s[1] = 0x3320_646e;
        s[2] = 0x7962_2d32;
        s[3] = 0x6b20_6574;
        s[4..12].copy_from_slice(&self.k);
        for i in 0..3 {
            s[13 + i] = le32(nonce, 4 * i);
        }
        s
    }

    /// Encrypts `buf` in place; the tag over `aad` and the ciphertext.
    pub fn seal(&self, nonce: &[u8; 12], aad: &[u8], buf: &mut [u8]) -> [u8; TAG_LEN] {
        let mut s = self.state(nonce);
        let mac = Poly1305::new(&block(&s));
        s[12] = 1;
        xor_keystream(&mut s, buf);
        mac.aead(aad, buf)
    }

    /// Checks `tag` over `aad` and `buf`, then decrypts `buf` in place; false (and `buf` as
    /// it was) if the tag does not match.
    pub fn open(&self, nonce: &[u8; 12], aad: &[u8], buf: &mut [u8], tag: &[u8]) -> bool {
        let mut s = self.state(nonce);
        let want = Poly1305::new(&block(&s)).aead(aad, buf);
        if tag.len() != TAG_LEN {
            return false;
        }
        let mut diff = 0u8;
        for i in 0..TAG_LEN {
            diff |= want[i] ^ tag[i];
        }
        if diff != 0 {
            return false;
        }
        s[12] = 1;
        xor_keystream(&mut s, buf);
        true
    }
}

/// XORs `buf` with the keystream of `s` from its block counter on (RFC 8439 §2.4).
#[inline(never)]
fn xor_keystream(s: &mut [u32; 16], buf: &mut [u8]) {
    let mut at = 0;
    while at < buf.len() {
        let x = block(s);
        s[12] = s[12].wrapping_add(1);
        let n = (buf.len() - at).min(64);
        let mut i = 0;
        while i + 4 <= n {
            let v = le32(buf, at + i) ^ x[i / 4];
            buf[at + i..at + i + 4].copy_from_slice(&v.to_le_bytes());
            i += 4;
        }
        while i < n {
            buf[at + i] ^= x[i / 4].to_le_bytes()[i % 4];
            i += 1;
        }
        at += n;
    }
}

/// Poly1305 over whole 16-byte blocks (all the AEAD feeds it: its inputs are zero-padded to
/// 16), in five 26-bit limbs (RFC 8439 §2.5; the 32-bit layout of poly1305-donna).
struct Poly1305 {
    r: [u32; 5],
    h: [u32; 5],
    pad: [u32; 4],
}

const M26: u32 = 0x3ff_ffff;

impl Poly1305 {
    /// With the one-time key: the first 32 bytes of block 0's keystream.
    fn new(otk: &[u32; 16]) -> Poly1305 {
        // r, clamped (r &= 0x0ffffffc0ffffffc0ffffffc0fffffff), split into limbs from the
        // keystream's words as they are (no round trip through bytes).
        let [w0, w1, w2, w3] = [otk[0], otk[1], otk[2], otk[3]];
        let r = [
            w0 & 0x3ff_ffff,
            (w0 >> 26 | w1 << 6) & 0x3ff_ff03,
            (w1 >> 20 | w2 << 12) & 0x3ff_c0ff,
            (w2 >> 14 | w3 << 18) & 0x3f0_3fff,
            (w3 >> 8) & 0x00f_ffff,
        ];
        let pad = [otk[4], otk[5], otk[6], otk[7]];
        Poly1305 { r, h: [0; 5], pad }
    }

    /// Adds the whole 16-byte blocks of `m` (a shorter tail zero-padded to 16). The one place
    /// [`Self::block`] is inlined: a second copy would cost ~1 kB of flash on MIPS.
    #[inline(never)]
    fn update(&mut self, m: &[u8]) {
        let mut at = 0;
        let mut tail = [0u8; 16];
        while at < m.len() {
            let b = if m.len() - at >= 16 {
                &m[at..at + 16]
            } else {
                tail[..m.len() - at].copy_from_slice(&m[at..]);
                &tail[..]
            };
            self.block(b);
            at += 16;
        }
    }

    /// h = (h + block + 2^128) · r mod 2^130 − 5, partly reduced.
    #[inline(always)]
    fn block(&mut self, b: &[u8]) {
        let [r0, r1, r2, r3, r4] = self.r;
        let (s1, s2, s3, s4) = (r1 * 5, r2 * 5, r3 * 5, r4 * 5);
        let h = &mut self.h;
        let (t0, t1, t2, t3) = (le32(b, 0), le32(b, 4), le32(b, 8), le32(b, 12));
        let h0 = (h[0] + (t0 & M26)) as u64;
        let h1 = (h[1] + ((t0 >> 26 | t1 << 6) & M26)) as u64;
        let h2 = (h[2] + ((t1 >> 20 | t2 << 12) & M26)) as u64;
        let h3 = (h[3] + ((t2 >> 14 | t3 << 18) & M26)) as u64;
        let h4 = (h[4] + (t3 >> 8 | 1 << 24)) as u64;
        let (r0, r1, r2, r3, r4) = (r0 as u64, r1 as u64, r2 as u64, r3 as u64, r4 as u64);
        let (s1, s2, s3, s4) = (s1 as u64, s2 as u64, s3 as u64, s4 as u64);
        let d0 = h0 * r0 + h1 * s4 + h2 * s3 + h3 * s2 + h4 * s1;
        let mut d1 = h0 * r1 + h1 * r0 + h2 * s4 + h3 * s3 + h4 * s2;
        let mut d2 = h0 * r2 + h1 * r1 + h2 * r0 + h3 * s4 + h4 * s3;
        let mut d3 = h0 * r3 + h1 * r2 + h2 * r1 + h3 * r0 + h4 * s4;
        let mut d4 = h0 * r4 + h1 * r3 + h2 * r2 + h3 * r1 + h4 * r0;
        d1 += d0 >> 26;
        d2 += d1 >> 26;
        d3 += d2 >> 26;
        d4 += d3 >> 26;
        let mut n0 = (d0 as u32 & M26) + (d4 >> 26) as u32 * 5;
        let n1 = (d1 as u32 & M26) + (n0 >> 26);
        n0 &= M26;
        *h = [n0, n1, d2 as u32 & M26, d3 as u32 & M26, d4 as u32 & M26];
    }

    /// The AEAD's tag: `aad`, padded, `ct`, padded, then both lengths (RFC 8439 §2.8).
    fn aead(mut self, aad: &[u8], ct: &[u8]) -> [u8; TAG_LEN] {
        self.update(aad);
        self.update(ct);
        let mut lens = [0u8; 16];
        lens[..8].copy_from_slice(&(aad.len() as u64).to_le_bytes());
        lens[8..].copy_from_slice(&(ct.len() as u64).to_le_bytes());
        self.update(&lens);
        self.finish()
    }

    /// (h mod 2^130 − 5 + s) mod 2^128, little-endian.
    fn finish(self) -> [u8; TAG_LEN] {
        let [mut h0, mut h1, mut h2, mut h3, mut h4] = self.h;
        // Carry fully.
        let mut c = h1 >> 26;
        h1 &= M26;
        h2 += c;
        c = h2 >> 26;
        h2 &= M26;
        h3 += c;
        c = h3 >> 26;
        h3 &= M26;
        h4 += c;
        c = h4 >> 26;
        h4 &= M26;
        h0 += c * 5;
        c = h0 >> 26;
        h0 &= M26;
        h1 += c;
        // g = h + 5 − 2^130; take g where it did not borrow (h ≥ p), without a branch.
        let mut g0 = h0 + 5;
        c = g0 >> 26;
        g0 &= M26;
        let mut g1 = h1 + c;
        c = g1 >> 26;
        g1 &= M26;
        let mut g2 = h2 + c;
        c = g2 >> 26;
        g2 &= M26;
        let mut g3 = h3 + c;
        c = g3 >> 26;
        g3 &= M26;
        let g4 = (h4 + c).wrapping_sub(1 << 26);
        let take_g = (g4 >> 31).wrapping_sub(1);
        let keep_h = !take_g;
        h0 = (h0 & keep_h) | (g0 & take_g);
        h1 = (h1 & keep_h) | (g1 & take_g);
        h2 = (h2 & keep_h) | (g2 & take_g);
        h3 = (h3 & keep_h) | (g3 & take_g);
        h4 = (h4 & keep_h) | (g4 & take_g);
        // To four 32-bit words, plus s.
        let w = [
            h0 | h1 << 26,
            h1 >> 6 | h2 << 20,
            h2 >> 12 | h3 << 14,
            h3 >> 18 | h4 << 8,
        ];
        let mut tag = [0u8; TAG_LEN];
        let mut f = 0u64;
        for i in 0..4 {
            f += w[i] as u64 + self.pad[i] as u64;
            tag[4 * i..4 * i + 4].copy_from_slice(&(f as u32).to_le_bytes());
            f >>= 32;
        }
        tag
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len() / 2)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
            .collect()
    }

    /// RFC 8439 §2.8.2: the AEAD's test vector.
    #[test]
    fn rfc8439_aead_vector() {
        let key: [u8; 32] = hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f")
            .try_into()
            .expect("32");
        let nonce: [u8; 12] = hex("070000004041424344454647").try_into().expect("12");
        let aad = hex("50515253c0c1c2c3c4c5c6c7");
        let plain = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
        let want_ct = hex(
            "d31a8d34648e60db7b86afbc53ef7ec2 a4aded51296e08fea9e2b5a736ee62d6
             3dbea45e8ca9671282fafb69da92728b 1a71de0a9e060b2905d6a5b67ecd3b36
             92ddbd7f2d778b8c9803aee328091b58 fab324e4fad675945585808b4831d7bc
             3ff4def08e4b7a9de576d26586cec64b 6116",
        );
        let want_tag = hex("1ae10b594f09e26a7e902ecbd0600691");
        let k = Key::new(&key);
        let mut buf = plain.to_vec();
        let tag = k.seal(&nonce, &aad, &mut buf);
        assert_eq!(buf, want_ct);
        assert_eq!(tag.to_vec(), want_tag);
        assert!(k.open(&nonce, &aad, &mut buf, &tag));
        assert_eq!(&buf[..], &plain[..]);
    }

    /// The final reduction's edges, through the limbs directly (whole blocks only). The
    /// expected tags were computed with Python's big integers (the RFC's formula, nothing
    /// shared with this code).
    #[test]
    fn poly1305_reduction_edges() {
        let mac = |key: &str, msg: &[u8]| {
            let k = hex(key);
            let mut otk = [0u32; 16];
            for i in 0..8 {
                otk[i] = le32(&k, 4 * i);
            }
            let mut p = Poly1305::new(&otk);
            p.update(msg);
            p.finish().to_vec()
        };
        // h = 2^130 - 2 ≥ p: the subtraction is taken (tag 3).
        assert_eq!(
            mac(
                "0200000000000000000000000000000000000000000000000000000000000000",
                &hex("ffffffffffffffffffffffffffffffff")
            ),
            hex("03000000000000000000000000000000")
        );
        // h = p - 1: kept; h = p exactly: 0.
        let one = "0100000000000000000000000000000000000000000000000000000000000000";
        let below = hex("ffffffffffffffffffffffffffffffff fbffffffffffffffffffffffffffffff");
        assert_eq!(mac(one, &below), hex("faffffffffffffffffffffffffffffff"));
        let at = hex("ffffffffffffffffffffffffffffffff fcffffffffffffffffffffffffffffff");
        assert_eq!(mac(one, &at), hex("00000000000000000000000000000000"));
        // The largest limbs: r as large as clamping leaves it, 100 blocks of 0xff. Run
        // unoptimised (`cargo test`, overflow checks on), this also shows the limb sums fit.
        let ff = "ff".repeat(32);
        assert_eq!(
            mac(&ff, &[0xff; 1_600]),
            hex("4c22d459cb8bb25b89e20cecb6a29736")
        );
        // h + s wraps at 2^128.
        assert_eq!(
            mac(
                "02000000000000000000000000000000ffffffffffffffffffffffffffffffff",
                &hex("02000000000000000000000000000000")
            ),
            hex("03000000000000000000000000000000")
        );
    }

    /// The same bytes as ring for every length up to 1,700 (several aad lengths), and each
    /// opens the other's packets: what the fast path needs across nodes.
    #[test]
    fn same_bytes_as_ring_and_refuses_any_change() {
        use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        };
        for len in (0..=1_700)
            .step_by(7)
            .chain([63, 64, 65, 127, 128, 129, 1_500])
        {
            let key: [u8; 32] = std::array::from_fn(|_| next());
            let nonce: [u8; 12] = std::array::from_fn(|_| next());
            let aad: Vec<u8> = (0..(len % 3) * 13).map(|_| next()).collect();
            let plain: Vec<u8> = (0..len).map(|_| next()).collect();
            let rk = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &key).expect("key"));
            let mut theirs = plain.clone();
            let rtag = rk
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(&aad[..]),
                    &mut theirs,
                )
                .expect("seal");
            let k = Key::new(&key);
            let mut ours = plain.clone();
            let tag = k.seal(&nonce, &aad, &mut ours);
            assert_eq!(ours, theirs, "ciphertext, len {len}");
            assert_eq!(&tag[..], rtag.as_ref(), "tag, len {len}");
            // Ours opens ring's; ring opens ours.
            let mut a = theirs.clone();
            assert!(k.open(&nonce, &aad, &mut a, rtag.as_ref()), "len {len}");
            assert_eq!(a, plain);
            let mut b = ours.clone();
            b.extend_from_slice(&tag);
            let got = rk
                .open_in_place(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(&aad[..]),
                    &mut b,
                )
                .expect("ring opens ours");
            assert_eq!(got, &plain[..]);
            // Refused, buffer untouched: a flipped bit in the ciphertext, tag or aad, a
            // short tag.
            if len > 0 {
                let mut c = ours.clone();
                c[len / 2] ^= 1;
                let before = c.clone();
                assert!(!k.open(&nonce, &aad, &mut c, &tag));
                assert_eq!(c, before);
            }
            let mut t = tag;
            t[len % 16] ^= 0x80;
            assert!(!k.open(&nonce, &aad, &mut ours.clone(), &t));
            if !aad.is_empty() {
                let mut bad = aad.clone();
                bad[0] ^= 4;
                assert!(!k.open(&nonce, &bad, &mut ours.clone(), &tag));
            }
            assert!(!k.open(&nonce, &aad, &mut ours.clone(), &tag[..15]));
        }
    }
}

//! `aead-bench WHICH N` seals a 1,100 B packet N times (or `check`s that all three produce
//! ring's bytes). bench/aead.sh runs it with N = 0 and N = 2,000 under qemu with the counting
//! plugin and prints the difference per packet.
//! - `ring`: ring's ChaCha20-Poly1305, what awl's fast path seals with on a router.
//! - `rustcrypto`: the `chacha20poly1305` crate.
//! - `own`: awl's own ChaCha20-Poly1305 for MIPS (src/p2p/fastpath/chacha.rs, compiled in
//!   here as it is), what the fast path seals with on MIPS since it replaced ring's there.
//! - `keystream`: ChaCha20 alone (RFC 8439 §2.4), word by word, no MAC: what the cipher half
//!   could cost at opt-level "z" when written for a 32-bit CPU.
// Index loops below are deliberate: see `keystream`.
#![allow(clippy::needless_range_loop)]

use std::hint::black_box;

#[allow(dead_code)]
#[path = "../../../src/p2p/fastpath/chacha.rs"]
mod own;

const LEN: usize = 1100;
const KEY: [u8; 32] = [7; 32];
const AAD: [u8; 8] = [1; 8];

#[inline(always)]
fn quarter(x: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
    x[a] = x[a].wrapping_add(x[b]);
    x[d] = (x[d] ^ x[a]).rotate_left(16);
    x[c] = x[c].wrapping_add(x[d]);
    x[b] = (x[b] ^ x[c]).rotate_left(12);
    x[a] = x[a].wrapping_add(x[b]);
    x[d] = (x[d] ^ x[a]).rotate_left(8);
    x[c] = x[c].wrapping_add(x[d]);
    x[b] = (x[b] ^ x[c]).rotate_left(7);
}

fn word(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// XORs `buf` with the ChaCha20 keystream of `key` and `nonce`, block counter from 1 (as the
/// AEAD does for its payload).
#[inline(never)]
fn keystream(key: &[u8; 32], nonce: &[u8; 12], buf: &mut [u8]) {
    let mut s = [0u32; 16];
    s[..4].copy_from_slice(&[0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574]);
    for i in 0..8 {
        s[4 + i] = word(&key[4 * i..]);
    }
    s[12] = 1;
    for i in 0..3 {
        s[13 + i] = word(&nonce[4 * i..]);
    }
    for chunk in buf.chunks_mut(64) {
        let mut x = s;
        for _ in 0..10 {
            quarter(&mut x, 0, 4, 8, 12);
            quarter(&mut x, 1, 5, 9, 13);
            quarter(&mut x, 2, 6, 10, 14);
            quarter(&mut x, 3, 7, 11, 15);
            quarter(&mut x, 0, 5, 10, 15);
            quarter(&mut x, 1, 6, 11, 12);
            quarter(&mut x, 2, 7, 8, 13);
            quarter(&mut x, 3, 4, 9, 14);
        }
        // Index loops: at "z", iterators over arrays stay calls and copies (+30k a packet).
        for i in 0..16 {
            x[i] = x[i].wrapping_add(s[i]);
        }
        let len = chunk.len();
        let mut words = chunk.chunks_exact_mut(4);
        for (i, c) in (&mut words).enumerate() {
            let v = u32::from_le_bytes([c[0], c[1], c[2], c[3]]) ^ x[i];
            c.copy_from_slice(&v.to_le_bytes());
        }
        for (j, b) in words.into_remainder().iter_mut().enumerate() {
            *b ^= x[len / 4].to_le_bytes()[j];
        }
        s[12] = s[12].wrapping_add(1);
    }
}

fn nonce(i: usize) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&(i as u64).to_le_bytes());
    n
}

fn ring_seal(k: &ring::aead::LessSafeKey, n: [u8; 12], buf: &mut [u8]) -> [u8; 16] {
    use ring::aead::{Aad, Nonce};
    let tag = k
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(n), Aad::from(&AAD), buf)
        .expect("1,100 B is within the AEAD's limit");
    let mut t = [0u8; 16];
    t.copy_from_slice(tag.as_ref());
    t
}

fn rustcrypto_seal(
    k: &chacha20poly1305::ChaCha20Poly1305,
    n: [u8; 12],
    buf: &mut [u8],
) -> [u8; 16] {
    use chacha20poly1305::aead::AeadInPlace;
    let tag = k
        .encrypt_in_place_detached((&n).into(), &AAD, buf)
        .expect("1,100 B is within the AEAD's limit");
    tag.into()
}

fn main() {
    use chacha20poly1305::aead::KeyInit;
    let args: Vec<String> = std::env::args().collect();
    let (which, n) = match (
        args.get(1),
        args.get(2).and_then(|n| n.parse::<usize>().ok()),
    ) {
        (Some(w), Some(n)) => (w.as_str(), n),
        (Some(w), None) if w == "check" => ("check", 0),
        _ => {
            eprintln!("usage: aead-bench ring|rustcrypto|own|keystream N | check");
            std::process::exit(2);
        }
    };
    let rk = ring::aead::LessSafeKey::new(
        ring::aead::UnboundKey::new(&ring::aead::CHACHA20_POLY1305, &KEY).expect("32 B key"),
    );
    let ck = chacha20poly1305::ChaCha20Poly1305::new((&KEY).into());
    let mut buf = vec![5u8; LEN];
    match which {
        "ring" => (0..n).for_each(|i| {
            black_box(ring_seal(&rk, nonce(i), &mut buf));
        }),
        "rustcrypto" => (0..n).for_each(|i| {
            black_box(rustcrypto_seal(&ck, nonce(i), &mut buf));
        }),
        "own" => {
            let k = own::Key::new(&KEY);
            (0..n).for_each(|i| {
                black_box(k.seal(&nonce(i), &AAD, &mut buf));
            })
        }
        "keystream" => {
            (0..n).for_each(|i| keystream(black_box(&KEY), &nonce(i), black_box(&mut buf)))
        }
        "check" => {
            let plain: Vec<u8> = (0..LEN).map(|i| i as u8).collect();
            let (mut a, mut b, mut c, mut d) = (plain.clone(), plain.clone(), plain.clone(), plain);
            let ta = ring_seal(&rk, nonce(3), &mut a);
            let tb = rustcrypto_seal(&ck, nonce(3), &mut b);
            keystream(&KEY, &nonce(3), &mut c);
            let td = own::Key::new(&KEY).seal(&nonce(3), &AAD, &mut d);
            let ok = a == b && ta == tb && a == c && a == d && ta == td;
            println!("check: ring, rustcrypto, own and keystream agree: {ok}");
            std::process::exit(if ok { 0 } else { 1 });
        }
        _ => {
            eprintln!("unknown: {which}");
            std::process::exit(2);
        }
    }
    black_box(&buf);
}

//! AES-128-GCM keys for fast packets between two nodes with AES in hardware.
//!
//! With AES instructions (x86_64's AES-NI and PCLMULQDQ, aarch64's crypto extension) ring
//! seals a 1400-byte packet with AES-128-GCM in a third of ChaCha20-Poly1305's time (278
//! against 756 ns on the bench VM), and ChaCha was a third of a TCP flow's CPU. Its catch is
//! the key-usage limit: RFC 9001 §6.6 puts AES-GCM's confidentiality limit at 2^23 packets per
//! key. So each direction's key lasts one epoch of 2^22 counters, and each epoch's key comes
//! from the direction's secret (a TLS exporter output of its own label, apart from the ChaCha
//! keys) by `HKDF-Expand(secret, "awl fastpath aes-128-gcm epoch" || epoch as u64 BE, 16)`.
//!
//! The receiver holds the previous, the current and the next epoch's keys: packets reordered
//! across a boundary still open, the first packet of the next epoch moves it on, and a key is
//! derived only after a packet authenticated under the one before it, so nothing forged makes
//! it derive one. A sender two epochs ahead (4 million packets lost in a row) is refused.
//!
//! Only x86_64 and aarch64 builds have this: the other targets (MIPS, armv7) have no AES
//! instructions, never offer it, and their stub keeps the code off their flash.

pub use imp::*;

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod imp {
    use super::super::wire::{self, Key};
    use ring::hkdf;

    /// Counters per epoch, as a power of two (half the RFC's limit).
    pub const EPOCH_BITS: u32 = 22;
    const INFO: &[u8] = b"awl fastpath aes-128-gcm epoch";

    /// Whether this CPU has the instructions ring's AES-GCM needs to beat ChaCha20-Poly1305.
    pub fn in_hardware() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("aes")
                && std::arch::is_x86_feature_detected!("pclmulqdq")
        }
        #[cfg(target_arch = "aarch64")]
        {
            // std's "aes" on aarch64 is AES with PMULL.
            std::arch::is_aarch64_feature_detected!("aes")
        }
    }

    fn epoch(counter: u64) -> u64 {
        counter >> EPOCH_BITS
    }

    struct KeyLen;

    impl hkdf::KeyType for KeyLen {
        fn len(&self) -> usize {
            16
        }
    }

    fn derive(secret: &hkdf::Prk, epoch: u64) -> Option<Key> {
        let e = epoch.to_be_bytes();
        let info = [INFO, &e[..]];
        let okm = secret.expand(&info, KeyLen).ok()?;
        let mut key = [0u8; 16];
        okm.fill(&mut key).ok()?;
        Key::aes(&key)
    }

    /// A direction's secret: uniformly random (an exporter output), so it is HKDF's PRK as is.
    fn prk(secret: &[u8; 32]) -> hkdf::Prk {
        hkdf::Prk::new_less_safe(hkdf::HKDF_SHA256, secret)
    }

    /// The sending side's key of the current epoch.
    pub struct TxKeys {
        secret: hkdf::Prk,
        epoch: u64,
        key: Key,
    }

    impl TxKeys {
        pub fn new(secret: &[u8; 32]) -> Option<TxKeys> {
            let secret = prk(secret);
            let key = derive(&secret, 0)?;
            Some(TxKeys {
                secret,
                epoch: 0,
                key,
            })
        }

        /// The key to seal `counter` with (counters only grow: a new epoch's key replaces
        /// the last one's).
        pub fn key(&mut self, counter: u64) -> Option<&Key> {
            let e = epoch(counter);
            if e != self.epoch {
                self.key = derive(&self.secret, e)?;
                self.epoch = e;
            }
            Some(&self.key)
        }
    }

    /// The receiving side's keys of the previous, current and next epoch.
    pub struct RxKeys {
        secret: hkdf::Prk,
        epoch: u64,
        prev: Option<Key>,
        cur: Key,
        next: Key,
    }

    impl RxKeys {
        pub fn new(secret: &[u8; 32]) -> Option<RxKeys> {
            let secret = prk(secret);
            Some(RxKeys {
                cur: derive(&secret, 0)?,
                next: derive(&secret, 1)?,
                secret,
                epoch: 0,
                prev: None,
            })
        }

        /// Authenticates and decrypts an AES packet with `counter` in place (see
        /// [`wire::open`]); the first one of the next epoch moves the keys on.
        pub fn open<'a>(&mut self, counter: u64, pkt: &'a mut [u8]) -> Option<&'a mut [u8]> {
            let e = epoch(counter);
            if e == self.epoch {
                return wire::open(&self.cur, counter, pkt);
            }
            if e + 1 == self.epoch {
                return wire::open(self.prev.as_ref()?, counter, pkt);
            }
            if e != self.epoch + 1 {
                return None;
            }
            let payload = wire::open(&self.next, counter, pkt)?;
            if let Some(after) = derive(&self.secret, e + 1) {
                let next = std::mem::replace(&mut self.next, after);
                self.prev = Some(std::mem::replace(&mut self.cur, next));
                self.epoch = e;
            }
            Some(payload)
        }

        /// The epoch of the current key (tests).
        #[cfg(test)]
        pub fn epoch(&self) -> u64 {
            self.epoch
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        const EPOCH: u64 = 1 << EPOCH_BITS;

        fn sealed(tx: &mut TxKeys, counter: u64) -> Vec<u8> {
            let mut p = Vec::new();
            let key = tx.key(counter).expect("key");
            assert!(wire::seal(key, 9, counter, b"payload", &mut p));
            assert_eq!(p[0], wire::MARKER_AES);
            p
        }

        #[test]
        fn keys_change_each_epoch_and_the_receiver_follows_one_epoch_at_a_time() {
            let secret = [7u8; 32];
            let mut tx = TxKeys::new(&secret).expect("tx");
            let mut rx = RxKeys::new(&secret).expect("rx");
            let opens = |rx: &mut RxKeys, p: &[u8], c: u64| {
                rx.open(c, &mut p.to_vec()).map(|p| p.to_vec()) == Some(b"payload".to_vec())
            };
            // The same counter's packet differs from one epoch's key to the next's: the
            // first packet of epoch 1 does not open with epoch 0's key.
            let last0 = sealed(&mut tx, EPOCH - 1);
            let first1 = sealed(&mut tx, EPOCH);
            let mut under0 = first1.clone();
            assert_eq!(
                wire::open(&derive(&prk(&secret), 0).expect("k"), EPOCH, &mut under0),
                None
            );
            assert!(opens(&mut rx, &last0, EPOCH - 1));
            assert_eq!(rx.epoch(), 0);
            // Epoch 1's first packet moves the receiver on; epoch 0's late ones still open.
            assert!(opens(&mut rx, &first1, EPOCH));
            assert_eq!(rx.epoch(), 1);
            assert!(opens(&mut rx, &last0, EPOCH - 1));
            // Two epochs ahead is refused until the one between came.
            let first3 = sealed(&mut tx, 3 * EPOCH);
            assert!(!opens(&mut rx, &first3, 3 * EPOCH));
            assert_eq!(rx.epoch(), 1);
            let mut tx2 = TxKeys::new(&secret).expect("tx");
            let first2 = sealed(&mut tx2, 2 * EPOCH);
            assert!(opens(&mut rx, &first2, 2 * EPOCH));
            assert!(opens(&mut rx, &first3, 3 * EPOCH));
            assert_eq!(rx.epoch(), 3);
            // Epoch 1 is two behind now: refused.
            assert!(!opens(&mut rx, &first1, EPOCH));
        }

        #[test]
        fn a_forged_packet_of_the_next_epoch_does_not_move_the_receiver() {
            let secret = [3u8; 32];
            let mut tx = TxKeys::new(&secret).expect("tx");
            let mut rx = RxKeys::new(&secret).expect("rx");
            let mut forged = sealed(&mut tx, EPOCH + 5);
            forged[20] ^= 1;
            assert_eq!(rx.open(EPOCH + 5, &mut forged), None);
            assert_eq!(rx.epoch(), 0);
            // Another secret (the other direction's, another connection's) opens nothing.
            let mut other = TxKeys::new(&[4u8; 32]).expect("tx");
            assert_eq!(rx.open(3, &mut sealed(&mut other, 3)), None);
            assert!(rx.open(3, &mut sealed(&mut tx, 3)).is_some());
        }
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
mod imp {
    use super::super::wire::Key;

    pub fn in_hardware() -> bool {
        false
    }

    /// Never made on this target.
    pub enum TxKeys {}

    impl TxKeys {
        pub fn new(_secret: &[u8; 32]) -> Option<TxKeys> {
            None
        }

        pub fn key(&mut self, _counter: u64) -> Option<&Key> {
            match *self {}
        }
    }

    /// Never made on this target.
    pub enum RxKeys {}

    impl RxKeys {
        pub fn new(_secret: &[u8; 32]) -> Option<RxKeys> {
            None
        }

        pub fn open<'a>(&mut self, _counter: u64, _pkt: &'a mut [u8]) -> Option<&'a mut [u8]> {
            match *self {}
        }
    }
}

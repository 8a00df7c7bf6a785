//! libp2p TLS certificates (libp2p `tls/tls.md`): building ours and verifying a peer's.
//!
//! Each side presents one self-signed certificate with an ephemeral ECDSA P-256 key. The host's
//! Ed25519 key signs `"libp2p-tls-handshake:" ‖ SubjectPublicKeyInfo` and travels in the critical
//! extension 1.3.6.1.4.1.53594.1.1. Verification checks the self-signature, the extension
//! signature, and, when we dialled a known PeerId, that the key behind it matches.
//!
//! Clocks: routers without an RTC boot at the firmware's build date (or 1970) until NTP syncs.
//! Our certificates are valid from 1970-01-01 to 9999-12-31 (RFC 5280's "no expiration"),
//! whatever our clock says, so a go-libp2p (AWL) or rust-libp2p peer checking them against its
//! own clock accepts them; and we do not check a peer's validity dates against our clock (they
//! protect nothing here: the key is ephemeral and the host key's signature over it carries no
//! time). This departs from the spec's "valid at the time it is received", as a router must.
//! No CA, no chain, no webpki: the parser below reads only what this check needs.

use crate::p2p::identity::{Keypair, PeerId, PublicKey};
use crate::p2p::transport::der::{self, DerError};
use ring::rand::SystemRandom;
use ring::signature::{self as sig, EcdsaKeyPair, KeyPair as _};
use rustls::pki_types::CertificateDer;
use rustls::SignatureScheme;

const SIGNING_PREFIX: &[u8] = b"libp2p-tls-handshake:";

// OID contents (without tag and length).
const OID_LIBP2P_EXT: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x83, 0xa2, 0x5a, 0x01, 0x01];
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_ECDSA_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];

/// Validity of our certificates, independent of our clock: 1970-01-01T00:00:00Z (a clock
/// reset to the epoch is not before it) to 9999-12-31T23:59:59Z (RFC 5280 §4.1.2.5). go-libp2p
/// uses now − 1 h .. now + 100 years and rust-libp2p 1975 .. 4096, both of which a peer with
/// a wrong clock can refuse.
pub const NOT_BEFORE: i64 = 0;
pub const NOT_AFTER: i64 = 253_402_300_799;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertError {
    BadDer,
    UnsupportedAlgorithm,
    BadSelfSignature,
    MissingExtension,
    UnknownCriticalExtension,
    BadHostSignature,
    UnsupportedHostKey,
    ChainNotAllowed,
    WrongPeerId { expected: PeerId, got: PeerId },
}

impl std::fmt::Display for CertError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CertError::WrongPeerId { expected, got } => {
                write!(f, "peer presented {got}, expected {expected}")
            }
            // Spelled out rather than Debug: release builds may compile Debug formatting out.
            other => f.write_str(match other {
                CertError::BadDer => "malformed certificate",
                CertError::UnsupportedAlgorithm => {
                    "unsupported certificate key or signature algorithm"
                }
                CertError::BadSelfSignature => "bad certificate self-signature",
                CertError::MissingExtension => "no libp2p public key extension",
                CertError::UnknownCriticalExtension => "unknown critical extension",
                CertError::BadHostSignature => "host key signature does not verify",
                CertError::UnsupportedHostKey => "host key is not Ed25519",
                CertError::ChainNotAllowed => "more than one certificate",
                CertError::WrongPeerId { .. } => "wrong peer ID",
            }),
        }
    }
}

impl std::error::Error for CertError {}

impl From<DerError> for CertError {
    fn from(_: DerError) -> Self {
        CertError::BadDer
    }
}

/// Our certificate and its private key, made once per process.
pub struct Certificate {
    pub cert: CertificateDer<'static>,
    pub key_pkcs8: Vec<u8>,
}

fn oid(content: &[u8]) -> Vec<u8> {
    der::tlv(der::OID, content)
}

/// Builds the self-signed certificate for `host`.
pub fn generate(host: &Keypair) -> Result<Certificate, ring::error::Unspecified> {
    generate_valid(host, NOT_BEFORE, NOT_AFTER)
}

/// A certificate valid from `not_before` to `not_after` (Unix seconds).
pub(super) fn generate_valid(
    host: &Keypair,
    not_before: i64,
    not_after: i64,
) -> Result<Certificate, ring::error::Unspecified> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&sig::ECDSA_P256_SHA256_ASN1_SIGNING, &rng)?;
    let key = EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
        .map_err(|_| ring::error::Unspecified)?;

    let spki = der::seq(&[
        &der::seq(&[&oid(OID_EC_PUBLIC_KEY), &oid(OID_P256)]),
        &der::bit_string(key.public_key().as_ref()),
    ]);
    let host_sig = host.sign(&[SIGNING_PREFIX, &spki].concat());
    let signed_key = der::seq(&[
        &der::tlv(der::OCTET_STRING, &host.public().to_protobuf()),
        &der::tlv(der::OCTET_STRING, &host_sig),
    ]);
    let extension = der::seq(&[
        &oid(OID_LIBP2P_EXT),
        &der::tlv(der::BOOLEAN, &[0xff]),
        &der::tlv(der::OCTET_STRING, &signed_key),
    ]);

    let mut serial = [0u8; 16];
    ring::rand::SecureRandom::fill(&rng, &mut serial)?;
    serial[0] &= 0x7f;
    let sig_alg = der::seq(&[&oid(OID_ECDSA_SHA256)]);
    let empty_name = der::seq(&[]);
    let tbs = der::seq(&[
        &der::tlv(der::context(0), &der::uint(&[2])), // v3
        &der::uint(&serial),
        &sig_alg,
        &empty_name,
        &der::seq(&[&der::time(not_before), &der::time(not_after)]),
        &empty_name,
        &spki,
        &der::tlv(der::context(3), &der::seq(&[&extension])),
    ]);
    let signature = key.sign(&rng, &tbs)?;
    let cert = der::seq(&[&tbs, &sig_alg, &der::bit_string(signature.as_ref())]);
    Ok(Certificate {
        cert: CertificateDer::from(cert),
        key_pkcs8: pkcs8.as_ref().to_vec(),
    })
}

/// What a verified certificate tells us.
#[derive(Debug)]
pub struct VerifiedCert<'a> {
    pub peer_id: PeerId,
    pub public_key: PublicKey,
    pub spki: &'a [u8],
    pub scheme: SignatureScheme,
}

/// Parses and verifies a peer's certificate. Its validity dates are parsed but not compared
/// with our clock (see the module comment).
pub fn verify(cert: &[u8]) -> Result<VerifiedCert<'_>, CertError> {
    let mut outer = der::Reader::new(cert);
    let mut c = der::Reader::new(outer.expect(der::SEQUENCE)?);
    if !outer.is_empty() {
        return Err(CertError::BadDer);
    }
    let (tbs_content, tbs_raw) = c.expect_raw(der::SEQUENCE)?;
    let outer_alg = c.expect(der::SEQUENCE)?;
    let signature = der::bit_string_bytes(c.expect(der::BIT_STRING)?)?;

    let mut t = der::Reader::new(tbs_content);
    t.optional(der::context(0))?;
    t.expect(der::INTEGER)?;
    let inner_alg = t.expect(der::SEQUENCE)?;
    if inner_alg != outer_alg {
        return Err(CertError::BadDer);
    }
    t.expect(der::SEQUENCE)?; // issuer
    let mut validity = der::Reader::new(t.expect(der::SEQUENCE)?);
    let (tag, nb, _) = validity.any()?;
    der::parse_time(tag, nb)?;
    let (tag, na, _) = validity.any()?;
    der::parse_time(tag, na)?;
    t.expect(der::SEQUENCE)?; // subject
    let (spki_content, spki_raw) = t.expect_raw(der::SEQUENCE)?;
    let mut extensions = None;
    while let Some(tag) = t.peek_tag() {
        let (tag_read, content, _) = t.any()?;
        debug_assert_eq!(tag, tag_read);
        if tag_read == der::context(3) {
            extensions = Some(content);
        }
    }

    // Key and signature algorithms.
    let mut spki = der::Reader::new(spki_content);
    let mut key_alg = der::Reader::new(spki.expect(der::SEQUENCE)?);
    let key_bits = der::bit_string_bytes(spki.expect(der::BIT_STRING)?)?;
    let key_oid = key_alg.expect(der::OID)?;
    let curve = key_alg.optional(der::OID)?;
    let sig_oid = der::Reader::new(outer_alg).expect(der::OID)?;
    let (scheme, algorithm): (_, &'static dyn sig::VerificationAlgorithm) =
        match (key_oid, curve, sig_oid) {
            (OID_EC_PUBLIC_KEY, Some(OID_P256), OID_ECDSA_SHA256) => (
                SignatureScheme::ECDSA_NISTP256_SHA256,
                &sig::ECDSA_P256_SHA256_ASN1,
            ),
            (OID_ED25519, None, OID_ED25519) => (SignatureScheme::ED25519, &sig::ED25519),
            _ => return Err(CertError::UnsupportedAlgorithm),
        };
    sig::UnparsedPublicKey::new(algorithm, key_bits)
        .verify(tbs_raw, signature)
        .map_err(|_| CertError::BadSelfSignature)?;

    // The libp2p extension; any other critical extension is refused.
    let mut found = None;
    let mut exts = der::Reader::new(
        der::Reader::new(extensions.ok_or(CertError::MissingExtension)?).expect(der::SEQUENCE)?,
    );
    while !exts.is_empty() {
        let mut ext = der::Reader::new(exts.expect(der::SEQUENCE)?);
        let id = ext.expect(der::OID)?;
        let critical = matches!(ext.optional(der::BOOLEAN)?, Some([b]) if *b != 0);
        let value = ext.expect(der::OCTET_STRING)?;
        if id == OID_LIBP2P_EXT {
            if found.is_some() {
                return Err(CertError::BadDer);
            }
            found = Some(value);
        } else if critical {
            return Err(CertError::UnknownCriticalExtension);
        }
    }
    let mut signed_key = der::Reader::new(
        der::Reader::new(found.ok_or(CertError::MissingExtension)?).expect(der::SEQUENCE)?,
    );
    let host_key = signed_key.expect(der::OCTET_STRING)?;
    let host_sig = signed_key.expect(der::OCTET_STRING)?;
    let public_key =
        PublicKey::from_protobuf(host_key).map_err(|_| CertError::UnsupportedHostKey)?;
    if !public_key.verify(&[SIGNING_PREFIX, spki_raw].concat(), host_sig) {
        return Err(CertError::BadHostSignature);
    }
    Ok(VerifiedCert {
        peer_id: public_key.to_peer_id(),
        public_key,
        spki: spki_raw,
        scheme,
    })
}

/// The PeerId behind a connection's certificate chain (already verified during the handshake).
pub fn peer_id_of(chain: &[CertificateDer<'_>]) -> Option<PeerId> {
    match chain {
        [only] => verify(only).ok().map(|v| v.peer_id),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_certificate_verifies_and_names_the_host() {
        let host = Keypair::generate();
        let c = generate(&host).unwrap();
        let v = verify(&c.cert).unwrap();
        assert_eq!(v.peer_id, host.peer_id());
        assert_eq!(v.scheme, SignatureScheme::ECDSA_NISTP256_SHA256);
        assert_eq!(
            peer_id_of(std::slice::from_ref(&c.cert)),
            Some(host.peer_id())
        );
    }

    /// The validity of the certificate we present does not depend on our clock: a router
    /// booted at 1970 or its build date presents the same dates as one with NTP.
    #[test]
    fn our_validity_is_fixed_and_wide() {
        let c = generate(&Keypair::generate()).unwrap();
        let mut r = der::Reader::new(&c.cert);
        let mut cert = der::Reader::new(r.expect(der::SEQUENCE).unwrap());
        let mut tbs = der::Reader::new(cert.expect(der::SEQUENCE).unwrap());
        tbs.optional(der::context(0)).unwrap();
        tbs.expect(der::INTEGER).unwrap();
        tbs.expect(der::SEQUENCE).unwrap();
        tbs.expect(der::SEQUENCE).unwrap();
        let mut v = der::Reader::new(tbs.expect(der::SEQUENCE).unwrap());
        let (t1, nb, _) = v.any().unwrap();
        let (t2, na, _) = v.any().unwrap();
        assert_eq!((t1, nb), (der::UTC_TIME, &b"700101000000Z"[..]));
        assert_eq!((t2, na), (der::GENERALIZED_TIME, &b"99991231235959Z"[..]));
    }

    #[test]
    fn any_flipped_byte_is_detected() {
        let c = generate(&Keypair::generate()).unwrap();
        let good = c.cert.to_vec();
        let mut refused = 0;
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            if verify(&bad).is_err() {
                refused += 1;
            }
        }
        // A flip may land in a byte nobody checks (e.g. the serial is signed too, so it's
        // caught). Every byte is covered by the self-signature or the outer structure.
        assert_eq!(refused, good.len());
    }

    #[test]
    fn extension_signed_by_another_key_is_refused() {
        // Swap in a certificate whose extension claims a different host key.
        let a = generate(&Keypair::generate()).unwrap();
        let b_host = Keypair::generate();
        let mut bytes = a.cert.to_vec();
        let a_pub = PublicKey::from_protobuf(&{
            let v = verify(&a.cert).unwrap();
            v.public_key.to_protobuf()
        })
        .unwrap()
        .to_protobuf();
        let pos = bytes.windows(36).position(|w| w == a_pub).unwrap();
        bytes[pos..pos + 36].copy_from_slice(&b_host.public().to_protobuf());
        assert!(verify(&bytes).is_err());
    }
}

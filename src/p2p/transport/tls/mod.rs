//! libp2p TLS 1.3 for QUIC and relayed connections (libp2p `tls/tls.md`): the rustls glue.
//!
//! Each side presents one self-signed certificate (`cert`) with an ephemeral ECDSA P-256 key
//! carrying the host's Ed25519 key. Here: the verifier rustls calls for both roles (the
//! certificate's own checks, and, when we dialled a known PeerId, that the key behind it
//! matches), the trimmed crypto provider, and the client and server configs.

mod cert;

pub use cert::{generate, peer_id_of, verify, CertError, Certificate, VerifiedCert};
pub use cert::{NOT_AFTER, NOT_BEFORE};

use crate::p2p::identity::PeerId;
use ring::rand::SystemRandom;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, SubjectPublicKeyInfoDer,
    UnixTime,
};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use std::sync::Arc;

pub const ALPN: &[u8] = b"libp2p";

/// Verifies peers for both roles. As a client it may insist on one PeerId.
#[derive(Debug)]
pub struct Verifier {
    expected: Option<PeerId>,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl Verifier {
    pub fn new(expected: Option<PeerId>) -> Self {
        Verifier {
            expected,
            algorithms: ALGORITHMS,
        }
    }

    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> Result<(), rustls::Error> {
        if !intermediates.is_empty() {
            return Err(tls_error(CertError::ChainNotAllowed));
        }
        let v = verify(end_entity).map_err(tls_error)?;
        match &self.expected {
            Some(expected) if *expected != v.peer_id => Err(tls_error(CertError::WrongPeerId {
                expected: expected.clone(),
                got: v.peer_id,
            })),
            _ => Ok(()),
        }
    }

    fn tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let v = verify(cert).map_err(tls_error)?;
        // The handshake must be signed with the certificate's own scheme.
        if v.scheme != dss.scheme {
            return Err(rustls::Error::PeerMisbehaved(
                rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
            ));
        }
        rustls::crypto::verify_tls13_signature_with_raw_key(
            message,
            &SubjectPublicKeyInfoDer::from(v.spki),
            dss,
            &self.algorithms,
        )
    }
}

fn tls_error(e: CertError) -> rustls::Error {
    rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
        Arc::new(e),
    )))
}

const SCHEMES: &[SignatureScheme] = &[
    SignatureScheme::ECDSA_NISTP256_SHA256,
    SignatureScheme::ED25519,
];

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity, intermediates)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        SCHEMES.to_vec()
    }
}

impl ClientCertVerifier for Verifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity, intermediates)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        SCHEMES.to_vec()
    }
}

/// Targets whose CPUs (as routers and boards ship them) have AES instructions.
const HW_AES: bool = cfg!(any(target_arch = "x86_64", target_arch = "aarch64"));

/// Only what libp2p over QUIC needs, so the rest of ring and rustls (RSA, P-384, AES-256,
/// TLS 1.2) stays out of the binary: AES-128-GCM (QUIC's mandatory suite) and ChaCha20-Poly1305;
/// X25519 and P-256 key exchange; ECDSA P-256 and Ed25519 certificates (go-libp2p and
/// rust-libp2p use P-256).
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    use rustls::crypto::ring::{cipher_suite, kx_group};
    Arc::new(rustls::crypto::CryptoProvider {
        // Our preference decides when we are the server: AES-GCM where the CPU has AES
        // instructions, ChaCha20-Poly1305 elsewhere (MIPS and most ARM routers) — several
        // times faster in software. QUIC's Initial packets use AES-128-GCM regardless.
        cipher_suites: if HW_AES {
            vec![
                cipher_suite::TLS13_AES_128_GCM_SHA256,
                cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
            ]
        } else {
            vec![
                cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
                cipher_suite::TLS13_AES_128_GCM_SHA256,
            ]
        },
        kx_groups: vec![kx_group::X25519, kx_group::SECP256R1],
        signature_verification_algorithms: ALGORITHMS,
        secure_random: &RingRandom,
        key_provider: &EcdsaKeys,
    })
}

static ALGORITHMS: rustls::crypto::WebPkiSupportedAlgorithms =
    rustls::crypto::WebPkiSupportedAlgorithms {
        all: &[webpki::ring::ECDSA_P256_SHA256, webpki::ring::ED25519],
        mapping: &[
            (
                SignatureScheme::ECDSA_NISTP256_SHA256,
                &[webpki::ring::ECDSA_P256_SHA256],
            ),
            (SignatureScheme::ED25519, &[webpki::ring::ED25519]),
        ],
    };

#[derive(Debug)]
struct RingRandom;

impl rustls::crypto::SecureRandom for RingRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), rustls::crypto::GetRandomFailed> {
        ring::rand::SecureRandom::fill(&SystemRandom::new(), buf)
            .map_err(|_| rustls::crypto::GetRandomFailed)
    }
}

/// Our certificate key is always ECDSA P-256.
#[derive(Debug)]
struct EcdsaKeys;

impl rustls::crypto::KeyProvider for EcdsaKeys {
    fn load_private_key(
        &self,
        key: PrivateKeyDer<'static>,
    ) -> Result<Arc<dyn rustls::sign::SigningKey>, rustls::Error> {
        rustls::crypto::ring::sign::any_ecdsa_type(&key)
    }
}

/// Our certificate with its key. `with_single_cert` would run webpki over the certificate, and
/// webpki (rightly, for the web) refuses the critical libp2p extension, so build it directly.
fn certified_key(
    provider: &rustls::crypto::CryptoProvider,
    cert: &Certificate,
) -> Result<Arc<rustls::sign::SingleCertAndKey>, rustls::Error> {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pkcs8.clone()));
    let signing = provider.key_provider.load_private_key(key)?;
    let ck = rustls::sign::CertifiedKey::new(vec![cert.cert.clone()], signing);
    Ok(Arc::new(rustls::sign::SingleCertAndKey::from(ck)))
}

/// rustls server config: TLS 1.3 only, client certificates required, ALPN `libp2p`.
pub fn server_config(cert: &Certificate) -> Result<rustls::ServerConfig, rustls::Error> {
    let provider = provider();
    let resolver = certified_key(&provider, cert)?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(Arc::new(Verifier::new(None)))
        .with_cert_resolver(resolver);
    cfg.alpn_protocols = vec![ALPN.to_vec()];
    Ok(cfg)
}

/// rustls client config for one dial; `expected` pins the remote PeerId.
pub fn client_config(
    cert: &Certificate,
    expected: Option<PeerId>,
) -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = provider();
    let resolver = certified_key(&provider, cert)?;
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Verifier::new(expected)))
        .with_client_cert_resolver(resolver);
    cfg.alpn_protocols = vec![ALPN.to_vec()];
    // The spec: clients of this handshake version send no SNI.
    cfg.enable_sni = false;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::cert::generate_valid;
    use super::*;
    use crate::p2p::identity::Keypair;

    /// A peer whose clock is years ahead or behind ours (go-libp2p dates its certificates
    /// from its own clock) is accepted: validity dates are not checked against our clock.
    #[test]
    fn a_peer_with_a_wrong_clock_is_accepted() {
        let host = Keypair::generate();
        let year = 365 * 86_400;
        let now = 1_800_000_000;
        for (nb, na) in [
            (now + 5 * year, now + 105 * year), // its clock ahead of ours
            (-3600, 100 * year),                // it booted at 1970
            (now - 3 * year, now - 2 * year),   // expired by our clock
        ] {
            let c = generate_valid(&host, nb, na).unwrap();
            assert_eq!(verify(&c.cert).unwrap().peer_id, host.peer_id());
            assert!(Verifier::new(Some(host.peer_id()))
                .check(&c.cert, &[])
                .is_ok());
        }
    }

    #[test]
    fn verifier_pins_the_expected_peer() {
        let host = Keypair::generate();
        let c = generate(&host).unwrap();
        assert!(Verifier::new(Some(host.peer_id()))
            .check(&c.cert, &[])
            .is_ok());
        assert!(Verifier::new(None).check(&c.cert, &[]).is_ok());
        assert!(Verifier::new(Some(Keypair::generate().peer_id()))
            .check(&c.cert, &[])
            .is_err());
        assert!(Verifier::new(None)
            .check(&c.cert, std::slice::from_ref(&c.cert))
            .is_err());
    }
}

//! Node identity: the Ed25519 host key, libp2p `PeerId`s, and AWL's on-disk key format.
//!
//! AWL stores `base58btc(seed ‖ public key)` (64 bytes, go-libp2p's `Ed25519PrivateKey.Raw()`),
//! so an AWL identity can be imported as is. The PeerId is the identity multihash of the
//! protobuf-encoded public key, exactly as libp2p computes it for Ed25519 keys.

use std::fmt;
use std::str::FromStr;

/// Protobuf `PublicKey { Type: Ed25519 (1), Data: <32 bytes> }`, as libp2p encodes it.
const ED25519_PROTOBUF_PREFIX: [u8; 4] = [0x08, 0x01, 0x12, 0x20];
/// Multihash code of the identity hash function.
const MULTIHASH_IDENTITY: u8 = 0x00;
/// Multihash code of sha2-256 (PeerIds of RSA keys; we can print and compare them).
const MULTIHASH_SHA256: u8 = 0x12;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityError {
    Base58,
    Length(usize),
    /// The stored public half does not match the seed.
    Mismatch,
    BadPeerId(&'static str),
    UnsupportedKey,
    WeakSeed,
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityError::Base58 => write!(f, "not valid base58"),
            IdentityError::Length(n) => write!(f, "expected a 64-byte Ed25519 key, got {n} bytes"),
            IdentityError::Mismatch => write!(f, "public key does not match the private seed"),
            IdentityError::BadPeerId(why) => write!(f, "invalid peer ID: {why}"),
            IdentityError::UnsupportedKey => write!(f, "unsupported public key type"),
            IdentityError::WeakSeed => write!(f, "all-zero private key"),
        }
    }
}

impl std::error::Error for IdentityError {}

/// The node's Ed25519 host key (ring's Ed25519, which TLS links in anyway).
#[derive(Clone)]
pub struct Keypair {
    seed: [u8; 32],
    inner: std::sync::Arc<ring::signature::Ed25519KeyPair>,
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        write!(f, "Keypair({})", self.public().to_peer_id())
    }
}

impl Keypair {
    pub fn generate() -> Self {
        use ring::rand::SecureRandom;
        let rng = ring::rand::SystemRandom::new();
        loop {
            let mut seed = [0u8; 32];
            rng.fill(&mut seed).expect("system random generator");
            if let Ok(kp) = Keypair::from_seed(seed) {
                return kp;
            }
        }
    }

    /// Fails only for the all-zero seed, which is never random.
    pub fn from_seed(seed: [u8; 32]) -> Result<Self, IdentityError> {
        if seed == [0u8; 32] {
            return Err(IdentityError::WeakSeed);
        }
        let inner = ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|_| IdentityError::WeakSeed)?;
        Ok(Keypair {
            seed,
            inner: std::sync::Arc::new(inner),
        })
    }

    /// Parses AWL's `p2pNode.identity`: base58 of the 64-byte seed ‖ public key.
    pub fn from_awl_base58(text: &str) -> Result<Self, IdentityError> {
        let raw = bs58::decode(text.trim())
            .into_vec()
            .map_err(|_| IdentityError::Base58)?;
        // go-libp2p also accepts a legacy 96-byte form (seed ‖ pub ‖ pub).
        if raw.len() != 64 && raw.len() != 96 {
            return Err(IdentityError::Length(raw.len()));
        }
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&raw[..32]);
        let kp = Keypair::from_seed(seed)?;
        if kp.public().0 != raw[32..64] {
            return Err(IdentityError::Mismatch);
        }
        Ok(kp)
    }

    /// AWL's identity encoding (see [`Keypair::from_awl_base58`]).
    pub fn to_awl_base58(&self) -> String {
        let mut raw = [0u8; 64];
        raw[..32].copy_from_slice(&self.seed);
        raw[32..].copy_from_slice(&self.public().0);
        bs58::encode(&raw[..]).into_string()
    }

    pub fn public(&self) -> PublicKey {
        use ring::signature::KeyPair as _;
        let mut pk = [0u8; 32];
        pk.copy_from_slice(self.inner.public_key().as_ref());
        PublicKey(pk)
    }

    pub fn peer_id(&self) -> PeerId {
        self.public().to_peer_id()
    }

    /// A secret derived from the host key for one purpose (`label`), stable across restarts.
    pub fn derive_secret(&self, label: &str) -> [u8; 32] {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(b"awl-derive:");
        ctx.update(label.as_bytes());
        ctx.update(&self.seed);
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        out
    }

    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        let sig = self.inner.sign(msg);
        let mut out = [0u8; 64];
        out.copy_from_slice(sig.as_ref());
        out
    }
}

/// An Ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// libp2p's protobuf encoding of the key (used in identify and the TLS extension).
    pub fn to_protobuf(&self) -> [u8; 36] {
        let mut out = [0u8; 36];
        out[..4].copy_from_slice(&ED25519_PROTOBUF_PREFIX);
        out[4..].copy_from_slice(&self.0);
        out
    }

    /// Decodes libp2p's protobuf `PublicKey`; only Ed25519 is accepted.
    pub fn from_protobuf(bytes: &[u8]) -> Result<Self, IdentityError> {
        if bytes.len() != 36 || bytes[..4] != ED25519_PROTOBUF_PREFIX {
            return Err(IdentityError::UnsupportedKey);
        }
        let mut pk = [0u8; 32];
        pk.copy_from_slice(&bytes[4..]);
        Ok(PublicKey(pk))
    }

    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &self.0)
            .verify(msg, sig)
            .is_ok()
    }

    pub fn to_peer_id(&self) -> PeerId {
        let mut mh = Vec::with_capacity(38);
        mh.push(MULTIHASH_IDENTITY);
        mh.push(36);
        mh.extend_from_slice(&self.to_protobuf());
        PeerId(mh)
    }
}

/// A libp2p peer ID: the multihash bytes, printed in base58btc (`12D3KooW…`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(Vec<u8>);

impl PeerId {
    /// Parses the binary multihash form (as carried in multiaddrs and protobufs).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IdentityError> {
        match bytes {
            [MULTIHASH_IDENTITY, len, rest @ ..] => {
                if *len as usize != rest.len() || rest.len() > 42 {
                    return Err(IdentityError::BadPeerId("bad identity multihash length"));
                }
            }
            [MULTIHASH_SHA256, 32, rest @ ..] if rest.len() == 32 => {}
            _ => {
                return Err(IdentityError::BadPeerId(
                    "not an identity or sha2-256 multihash",
                ))
            }
        }
        Ok(PeerId(bytes.to_vec()))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The Ed25519 key inlined in an identity-multihash PeerId, if it is one.
    pub fn ed25519_public_key(&self) -> Option<PublicKey> {
        if self.0.len() == 38 && self.0[0] == MULTIHASH_IDENTITY && self.0[1] == 36 {
            PublicKey::from_protobuf(&self.0[2..]).ok()
        } else {
            None
        }
    }

    /// Short form for logs: the last 6 characters, as AWL and libp2p tools abbreviate.
    pub fn short(&self) -> String {
        let s = self.to_string();
        let tail = s.len().saturating_sub(6);
        format!("…{}", &s[tail..])
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&bs58::encode(&self.0).into_string())
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({self})")
    }
}

impl FromStr for PeerId {
    type Err = IdentityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Only the legacy base58 form; CIDv1 (`bafz…`) peer IDs are not used by AWL.
        if !(s.starts_with("12D3KooW") || s.starts_with("Qm")) {
            return Err(IdentityError::BadPeerId(
                "expected a base58 peer ID (12D3KooW… or Qm…)",
            ));
        }
        let bytes = bs58::decode(s)
            .into_vec()
            .map_err(|_| IdentityError::BadPeerId("not valid base58"))?;
        PeerId::from_bytes(&bytes)
    }
}

/// File name of the identity inside the data directory.
pub const IDENTITY_FILE: &str = "identity";

/// Loads the identity from `dir`, or creates one (mode 0600, atomic write) on first start.
pub fn load_or_create(dir: &std::path::Path) -> std::io::Result<(Keypair, bool)> {
    use std::io::{Error, ErrorKind};
    let path = dir.join(IDENTITY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let kp = Keypair::from_awl_base58(&text).map_err(|e| {
                Error::new(ErrorKind::InvalidData, format!("{}: {e}", path.display()))
            })?;
            Ok((kp, false))
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let kp = Keypair::generate();
            store(dir, &kp)?;
            Ok((kp, true))
        }
        Err(e) => Err(Error::new(e.kind(), format!("{}: {e}", path.display()))),
    }
}

/// Writes the identity to `dir` (created 0700 if missing) as a 0600 file, atomically.
pub fn store(dir: &std::path::Path, kp: &Keypair) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let tmp = dir.join(format!(".{IDENTITY_FILE}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(format!("{}\n", kp.to_awl_base58()).as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(IDENTITY_FILE))
}

/// Why an identity to import could not be read.
#[derive(Debug)]
pub enum ImportError {
    Json(serde_json::Error),
    NoIdentity,
    Key(IdentityError),
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImportError::Json(e) => write!(f, "not valid JSON: {e}"),
            ImportError::NoIdentity => f.write_str("no p2pNode.identity in this AWL config"),
            ImportError::Key(e) => write!(f, "{e}"),
        }
    }
}

/// Reads an identity to import: AWL's `config_awl.json` (`p2pNode.identity`) or the bare
/// base58 string.
pub fn parse_import(text: &str) -> Result<Keypair, ImportError> {
    let trimmed = text.trim();
    if trimmed.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(trimmed).map_err(ImportError::Json)?;
        let id = v
            .get("p2pNode")
            .and_then(|n| n.get("identity"))
            .and_then(|i| i.as_str())
            .ok_or(ImportError::NoIdentity)?;
        Keypair::from_awl_base58(id).map_err(ImportError::Key)
    } else {
        Keypair::from_awl_base58(trimmed).map_err(ImportError::Key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Seed [7u8; 32]; PeerId as printed by rust-libp2p 0.57
    // (`Keypair::ed25519_from_bytes([7; 32]).public().to_peer_id()`).
    const SEED7_PEER_ID: &str = "12D3KooWRawPbxPtP1eZaJpumGnyWX2DcUyd3RQnydr3eAto4Az7";

    #[test]
    fn peer_id_of_fixed_seed_matches_rust_libp2p() {
        let kp = Keypair::from_seed([7u8; 32]).unwrap();
        assert_eq!(kp.peer_id().to_string(), SEED7_PEER_ID);
        assert_eq!(
            Keypair::from_seed([0u8; 32]).unwrap_err(),
            IdentityError::WeakSeed
        );
    }

    #[test]
    fn peer_id_round_trips_through_text_and_bytes() {
        let id = Keypair::generate().peer_id();
        let text = id.to_string();
        assert!(text.starts_with("12D3KooW"), "{text}");
        let parsed: PeerId = text.parse().unwrap();
        assert_eq!(parsed, id);
        assert_eq!(PeerId::from_bytes(id.as_bytes()).unwrap(), id);
        assert!(parsed.ed25519_public_key().is_some());
    }

    #[test]
    fn awl_identity_round_trips_and_detects_corruption() {
        let kp = Keypair::generate();
        let text = kp.to_awl_base58();
        let back = Keypair::from_awl_base58(&text).unwrap();
        assert_eq!(back.peer_id(), kp.peer_id());

        let mut raw = bs58::decode(&text).into_vec().unwrap();
        raw[40] ^= 1;
        let bad = bs58::encode(&raw).into_string();
        assert_eq!(
            Keypair::from_awl_base58(&bad).unwrap_err(),
            IdentityError::Mismatch
        );
        assert!(matches!(
            Keypair::from_awl_base58("3mJr7AoUXx2Wqd"),
            Err(IdentityError::Length(_))
        ));
        assert_eq!(
            Keypair::from_awl_base58("0OIl").unwrap_err(),
            IdentityError::Base58
        );
    }

    #[test]
    fn bad_peer_ids_are_refused() {
        assert!("hello".parse::<PeerId>().is_err());
        assert!("12D3KooW".parse::<PeerId>().is_err());
        // Valid prefix, corrupted length.
        let mut s = Keypair::generate().peer_id().to_string();
        s.pop();
        assert!(s.parse::<PeerId>().is_err());
    }

    #[test]
    fn signatures_verify_only_with_the_right_key() {
        let kp = Keypair::generate();
        let sig = kp.sign(b"msg");
        assert!(kp.public().verify(b"msg", &sig));
        assert!(!kp.public().verify(b"msh", &sig));
        assert!(!Keypair::generate().public().verify(b"msg", &sig));
    }
    #[test]
    fn identity_is_created_once_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("awl-id-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (a, created) = load_or_create(&dir).unwrap();
        assert!(created);
        let (b, created) = load_or_create(&dir).unwrap();
        assert!(!created);
        assert_eq!(a.peer_id(), b.peer_id());
        let mode = std::fs::metadata(dir.join(IDENTITY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(dir.join(IDENTITY_FILE), "garbage").unwrap();
        assert!(
            load_or_create(&dir).is_err(),
            "a corrupt identity must not be replaced silently"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn awl_config_json_identity_imports() {
        let kp = Keypair::generate();
        let json = format!(
            r#"{{"p2pNode": {{"peerId": "{}", "identity": "{}"}}}}"#,
            kp.peer_id(),
            kp.to_awl_base58()
        );
        assert_eq!(parse_import(&json).unwrap().peer_id(), kp.peer_id());
        assert_eq!(
            parse_import(&kp.to_awl_base58()).unwrap().peer_id(),
            kp.peer_id()
        );
        assert!(parse_import("{}").is_err());
    }
}

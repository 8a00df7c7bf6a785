//! Why an import cannot be done; nothing was changed when one is returned.

use crate::config::ConfigError;
use crate::p2p::identity::{IdentityError, ImportError, PeerId};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub enum Error {
    NotJson(serde_json::Error),
    /// Not AWL's config file at all (which part says so).
    NotAwl(&'static str),
    /// A list (named) with more entries than are read.
    TooManyEntries(&'static str, usize),
    /// The UCI file is invalid already.
    ConfigNow(ConfigError),
    /// The UCI file with the imported node options would not load.
    NodeOptions(ConfigError),
    /// The UCI file with the imported peers would not load.
    WouldNotLoad(ConfigError),
    /// AWL's `p2pNode.identity` is unreadable (the reason).
    Identity(ImportError),
    /// AWL's key is not that of its `p2pNode.peerId` (shown).
    KeyNotPeerId(PeerId),
    /// This node has another identity than the AWL node's.
    OtherIdentity {
        ours: PeerId,
        theirs: PeerId,
    },
    /// Neither the file nor this node has an identity.
    NoIdentity,
    /// Reading or writing a file (or directory) failed.
    File(PathBuf, io::Error),
    /// The identity file in the data directory is unreadable.
    IdentityFile(PathBuf, IdentityError),
    /// The daemon's state file is unreadable.
    State(PathBuf, postcard::Error),
    /// The identity could not be written to the data directory.
    StoreIdentity(PathBuf, io::Error),
}

impl Error {
    pub(super) fn file(path: &Path, e: io::Error) -> Error {
        Error::File(path.to_path_buf(), e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotJson(e) => write!(f, "not valid JSON: {e}"),
            Error::NotAwl(why) => write!(f, "{why}"),
            Error::TooManyEntries(list, n) => write!(
                f,
                "{list} has {n} entries; at most {} are read",
                super::MAX_ENTRIES
            ),
            Error::ConfigNow(e) => write!(f, "fix the configuration first: {e}"),
            Error::NodeOptions(e) => write!(f, "the imported node options would not load: {e}"),
            Error::WouldNotLoad(e) => write!(f, "the imported configuration would not load: {e}"),
            Error::Identity(e) => write!(f, "p2pNode.identity: {e}"),
            Error::KeyNotPeerId(id) => {
                write!(f, "p2pNode.identity is not the key of p2pNode.peerId ({id})")
            }
            Error::OtherIdentity { ours, theirs } => write!(
                f,
                "this node's identity ({ours}) is not the AWL node's ({theirs}); its peers know the AWL one. \
                 Run 'awl id import FILE' first (it replaces this node's identity), then import again"
            ),
            Error::NoIdentity => write!(f, "the file has no p2pNode.identity and this node has none: import the identity first ('awl id import')"),
            Error::File(path, e) => write!(f, "{}: {e}", path.display()),
            Error::IdentityFile(path, e) => write!(f, "{}: {e}", path.display()),
            Error::State(path, e) => write!(f, "{}: unreadable state ({e})", path.display()),
            Error::StoreIdentity(dir, e) => write!(f, "identity in {}: {e}", dir.display()),
        }
    }
}

impl std::error::Error for Error {}

//! Why a change the control API asked for failed. The texts are what `awl` and LuCI show.

use crate::config::ConfigError;
use crate::mesh::peers::PeerError;
use crate::p2p::identity::PeerId;
use std::fmt;
use std::path::PathBuf;

#[derive(Debug)]
pub enum NodeError {
    Peer(PeerError),
    NoRequest(PeerId),
    /// The UCI file could not be changed.
    Write(WriteError),
    /// The UCI file does not load (reload).
    Load(ConfigError),
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeError::Peer(e) => e.fmt(f),
            NodeError::NoRequest(p) => write!(f, "no pending request from {p}"),
            NodeError::Write(e) => e.fmt(f),
            NodeError::Load(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for NodeError {}

impl From<PeerError> for NodeError {
    fn from(e: PeerError) -> Self {
        NodeError::Peer(e)
    }
}

impl From<WriteError> for NodeError {
    fn from(e: WriteError) -> Self {
        NodeError::Write(e)
    }
}

/// A failed edit of the UCI file; the file is left as it was.
#[derive(Debug)]
pub enum WriteError {
    Read(PathBuf, std::io::Error),
    /// The edited file would not load: never written.
    Invalid(ConfigError),
    Write(PathBuf, std::io::Error),
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::Read(p, e) | WriteError::Write(p, e) => write!(f, "{}: {e}", p.display()),
            WriteError::Invalid(e) => {
                write!(f, "refusing to write an invalid configuration: {e}")
            }
        }
    }
}

impl std::error::Error for WriteError {}

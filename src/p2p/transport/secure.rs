//! Upgrades a raw byte stream (a relay circuit, a TCP connection) to a libp2p connection, as
//! go-libp2p does for TCP and circuits: multistream-select `/tls/1.0.0`, a TLS 1.3 handshake with libp2p
//! certificates, multistream-select `/yamux/1.0.0`, then yamux.
//!
//! The dialer of the circuit is the TLS client and the yamux client. Noise is not offered:
//! go-libp2p lists TLS first and accepts it, and rust-libp2p peers are not our counterpart here.

use super::{muxer, tls};
use crate::p2p::identity::PeerId;
use crate::p2p::multistream;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

pub const TLS_PROTOCOL: &str = "/tls/1.0.0";
pub const YAMUX_PROTOCOL: &str = "/yamux/1.0.0";
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a circuit could not be secured.
#[derive(Debug)]
pub enum Error {
    /// multistream-select of `/tls/1.0.0` (`"security"`) or `/yamux/1.0.0` (`"muxer"`).
    Negotiation(&'static str, std::io::Error),
    Config(rustls::Error),
    Tls(std::io::Error),
    NoCertificate,
    WrongPeer,
    Timeout,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Negotiation(what, e) => write!(f, "{what} negotiation: {e}"),
            Error::Config(e) => write!(f, "{e}"),
            Error::Tls(e) => write!(f, "TLS: {e}"),
            Error::NoCertificate => f.write_str("no verified certificate"),
            Error::WrongPeer => f.write_str("wrong peer id"),
            Error::Timeout => f.write_str("timed out securing the connection"),
        }
    }
}

/// Any byte stream: the upgrade, TLS and the muxer run on this one type, so their code exists
/// once in the binary whatever carries the bytes (a relay circuit, a TCP connection): on MIPS
/// each further instantiation would cost tens of kB.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
type BoxedIo = Box<dyn Io>;

pub struct Upgraded {
    pub peer: PeerId,
    pub handle: muxer::Handle,
    pub inbound: mpsc::Receiver<muxer::Stream>,
}

async fn select<T: AsyncRead + AsyncWrite + Unpin>(
    io: T,
    dialer: bool,
    protocol: &str,
) -> std::io::Result<T> {
    let (mut r, mut w) = tokio::io::split(io);
    if dialer {
        multistream::dialer_select(&mut r, &mut w, &[protocol]).await?;
    } else {
        multistream::listener_select(&mut r, &mut w, &[protocol]).await?;
    }
    Ok(r.unsplit(w))
}

/// Runs the whole upgrade; `expected` (dialer only) is the peer the circuit should reach.
pub async fn upgrade<T>(
    io: T,
    dialer: bool,
    cert: &tls::Certificate,
    expected: Option<PeerId>,
) -> Result<Upgraded, Error>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    upgrade_boxed(Box::new(io), dialer, cert, expected).await
}

async fn upgrade_boxed(
    io: BoxedIo,
    dialer: bool,
    cert: &tls::Certificate,
    expected: Option<PeerId>,
) -> Result<Upgraded, Error> {
    let run = async {
        let io = select(io, dialer, TLS_PROTOCOL)
            .await
            .map_err(|e| Error::Negotiation("security", e))?;
        let tls_io: tokio_rustls::TlsStream<BoxedIo> = if dialer {
            let cfg = tls::client_config(cert, expected.clone()).map_err(Error::Config)?;
            let name = rustls::pki_types::ServerName::try_from("libp2p")
                .map_err(|e| Error::Config(rustls::Error::General(e.to_string())))?
                .to_owned();
            tokio_rustls::TlsConnector::from(Arc::new(cfg))
                .connect(name, io)
                .await
                .map_err(Error::Tls)?
                .into()
        } else {
            let cfg = tls::server_config(cert).map_err(Error::Config)?;
            tokio_rustls::TlsAcceptor::from(Arc::new(cfg))
                .accept(io)
                .await
                .map_err(Error::Tls)?
                .into()
        };
        let peer = tls_io
            .get_ref()
            .1
            .peer_certificates()
            .and_then(tls::peer_id_of)
            .ok_or(Error::NoCertificate)?;
        start_muxer(tls_io, peer, dialer, expected.as_ref()).await
    };
    tokio::time::timeout(UPGRADE_TIMEOUT, run)
        .await
        .map_err(|_| Error::Timeout)?
}

/// Checks the peer, negotiates yamux and starts the session.
async fn start_muxer(
    tls_io: tokio_rustls::TlsStream<BoxedIo>,
    peer: PeerId,
    dialer: bool,
    expected: Option<&PeerId>,
) -> Result<Upgraded, Error> {
    if expected.is_some_and(|e| *e != peer) {
        return Err(Error::WrongPeer);
    }
    let tls_io = select(tls_io, dialer, YAMUX_PROTOCOL)
        .await
        .map_err(|e| Error::Negotiation("muxer", e))?;
    let (handle, inbound) = muxer::start(tls_io, dialer);
    Ok(Upgraded {
        peer,
        handle,
        inbound,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::p2p::identity::Keypair;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn both_ends_upgrade_and_see_each_other() {
        let (ka, kb) = (Keypair::generate(), Keypair::generate());
        let (ca, cb) = (tls::generate(&ka).unwrap(), tls::generate(&kb).unwrap());
        let (a, b) = tokio::io::duplex(64 * 1024);
        let expect_b = kb.peer_id();
        let dial = crate::spawn(async move { upgrade(a, true, &ca, Some(expect_b)).await });
        let mut listen = upgrade(b, false, &cb, None).await.unwrap();
        let dialed = dial.await.unwrap().unwrap();
        assert_eq!(dialed.peer, kb.peer_id());
        assert_eq!(listen.peer, ka.peer_id());
        let s = dialed.handle.open().await.unwrap();
        let (mut w, _r) = crate::p2p::transport::stream::split_muxed(s);
        w.write_all(b"over tls").await.unwrap();
        let (_w2, mut r2) =
            crate::p2p::transport::stream::split_muxed(listen.inbound.recv().await.unwrap());
        let mut buf = [0u8; 8];
        r2.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"over tls");
    }

    #[tokio::test]
    async fn wrong_peer_is_refused() {
        let (ka, kb) = (Keypair::generate(), Keypair::generate());
        let (ca, cb) = (tls::generate(&ka).unwrap(), tls::generate(&kb).unwrap());
        let (a, b) = tokio::io::duplex(64 * 1024);
        let other = Keypair::generate().peer_id();
        crate::spawn(async move { upgrade(b, false, &cb, None).await });
        assert!(upgrade(a, true, &ca, Some(other)).await.is_err());
    }
}

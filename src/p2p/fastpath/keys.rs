//! A fast-path session's keys and receiver indexes, from its QUIC connection's TLS exporter.

use super::aes;

/// The TLS exporter label (RFC 8446 §7.5).
const LABEL: &[u8] = b"EXPORTER-awl-fastpath-v1";
/// The exporter label of the AES secrets (one per direction; `aes` derives each epoch's key).
const LABEL_AES: &[u8] = b"EXPORTER-awl-fastpath-aes-128-gcm-v1";

/// One connection's keys and receiver indexes, as this side uses them.
pub struct Derived {
    pub tx_key: [u8; 32],
    pub tx_index: u32,
    pub rx_key: [u8; 32],
    pub rx_index: u32,
    /// Each direction's AES secret.
    pub tx_aes: [u8; 32],
    pub rx_aes: [u8; 32],
}

/// Keys and indexes from the connection's TLS exporter; `None` before the handshake is done.
pub fn derive(conn: &quinn::Connection) -> Option<Derived> {
    let mut okm = [0u8; 72];
    conn.export_keying_material(&mut okm, LABEL, b"").ok()?;
    let k_client = <[u8; 32]>::try_from(&okm[..32]).ok()?;
    let k_server = <[u8; 32]>::try_from(&okm[32..64]).ok()?;
    let i_client = u32::from_be_bytes(okm[64..68].try_into().ok()?);
    let i_server = u32::from_be_bytes(okm[68..72].try_into().ok()?);
    let mut aes = [0u8; 64];
    // (Never used where the target has no AES: no exporter call there.)
    if aes::in_hardware() {
        conn.export_keying_material(&mut aes, LABEL_AES, b"").ok()?;
    }
    let a_client = <[u8; 32]>::try_from(&aes[..32]).ok()?;
    let a_server = <[u8; 32]>::try_from(&aes[32..]).ok()?;
    // The client seals with its key for the server's index, and the other way round.
    Some(match conn.side() {
        quinn::Side::Client => Derived {
            tx_key: k_client,
            tx_index: i_server,
            rx_key: k_server,
            rx_index: i_client,
            tx_aes: a_client,
            rx_aes: a_server,
        },
        quinn::Side::Server => Derived {
            tx_key: k_server,
            tx_index: i_client,
            rx_key: k_client,
            rx_index: i_server,
            tx_aes: a_server,
            rx_aes: a_client,
        },
    })
}

//! Stand-in for `services/` in builds without the `services` feature (no smoltcp): the same
//! API; the stack is never started and the daemon says so if the configuration asks for it.
//! The pure parts stay: the `.awl` name rules (peer names are checked against them) and the
//! HTTP status views (the control API serves them too).

use crate::dataplane::pool::{PacketBuf, PacketPool};
use crate::dataplane::Dataplane;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use tokio::sync::mpsc;

pub const INPUT_QUEUE: usize = 64;

pub struct ServiceConfig {
    pub addrs: Vec<Ipv4Addr>,
    pub upstream: Option<SocketAddr>,
    pub http: bool,
}

pub enum Output {
    Tun(mpsc::Sender<PacketBuf>),
    Mesh(Arc<Dataplane>),
}

pub fn start(
    _node: Arc<dyn super::NodeView>,
    _pool: PacketPool,
    _cfg: ServiceConfig,
    _input: mpsc::Receiver<PacketBuf>,
    _output: Output,
) -> Result<crate::BoxedTask<()>, String> {
    Err(
        "built without the 'services' feature (no DNS, HTTP status or ping on the service address)"
            .into(),
    )
}

/// The default service address: the last host address of the mesh subnet.
pub fn default_address(own: Ipv4Addr, prefix: u8) -> Ipv4Addr {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    };
    Ipv4Addr::from((u32::from(own) | !mask) - 1)
}

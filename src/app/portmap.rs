//! Keeps a port mapping on the router in front of this node while it runs (`port_mapping`):
//! maps the QUIC port, advertises the mapped address, renews at half the lease, retries when
//! the router forgot us, and removes the mapping at shutdown.

use crate::p2p::multiaddr::Multiaddr;
use crate::p2p::portmap::{advertisable, default_gateway, Mapping};
use crate::p2p::Host;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// After a failure: the router may come up later, or its user turn UPnP on.
const RETRY: Duration = Duration::from_secs(300);
/// Removing the mapping must not hold up shutdown for long.
const REMOVE_WAIT: Duration = Duration::from_secs(2);

/// The mapping the loop holds, for shutdown to remove.
#[derive(Clone, Default)]
pub struct Held(Arc<Mutex<Option<Mapping>>>);

/// The loop: one mapping for `port`, advertised by `host`.
pub async fn run(host: Host, port: u16, held: Held) {
    let mut quiet = false;
    loop {
        let wait = {
            let mut slot = held.0.lock().await;
            match slot.as_mut() {
                None => match Mapping::create(default_gateway(), port).await {
                    Ok(m) => {
                        log::info!(
                            "port mapping: {} maps {} to UDP {port} (lease {} s)",
                            m.via(),
                            m.external,
                            m.lease
                        );
                        advertise(&host, Some(&m));
                        let wait = m.renew_after();
                        *slot = Some(m);
                        quiet = false;
                        wait
                    }
                    Err(e) => {
                        // Once at info: most networks have no such router, and that is fine.
                        if quiet {
                            log::debug!("port mapping: {e}");
                        } else {
                            log::info!(
                                "port mapping: {e}; trying again every {} min",
                                RETRY.as_secs() / 60
                            );
                            quiet = true;
                        }
                        RETRY
                    }
                },
                Some(m) => match m.renew().await {
                    Ok(()) => {
                        advertise(&host, Some(m));
                        m.renew_after()
                    }
                    Err(e) => {
                        log::info!("port mapping: renewing failed ({e}); mapping again");
                        advertise(&host, None);
                        *slot = None;
                        Duration::ZERO
                    }
                },
            }
        };
        tokio::time::sleep(wait).await;
    }
}

fn advertise(host: &Host, m: Option<&Mapping>) {
    let addrs = match m {
        Some(m) if advertisable(m.external) => vec![Multiaddr::quic(SocketAddr::V4(m.external))],
        Some(m) => {
            log::warn!(
                "port mapping: the router reports {}, which peers cannot reach: not advertised",
                m.external
            );
            Vec::new()
        }
        None => Vec::new(),
    };
    host.set_mapped_addrs(addrs);
}

/// At shutdown, after the loop was stopped: the router forwards nothing to us once we are gone.
pub async fn remove(held: &Held) {
    let Some(m) = held.0.lock().await.take() else {
        return;
    };
    let (via, external) = (m.via(), m.external);
    match tokio::time::timeout(REMOVE_WAIT, m.remove()).await {
        Ok(Ok(())) => log::info!("port mapping: {via} mapping of {external} removed"),
        Ok(Err(e)) => log::warn!("port mapping: removing {external}: {e}"),
        Err(_) => log::warn!("port mapping: removing {external}: the router did not answer"),
    }
}

//! Route reconciliation: what the data plane and the kernel route beyond the mesh, recomputed
//! from the configuration and the peers' statuses whenever either changes.

use crate::app::node::{lock, Node};
use crate::dataplane;
use crate::p2p::identity::PeerId;
use std::net::Ipv4Addr;

impl Node {
    /// Recomputes routing beyond the mesh: our exported routes, peers' announced routes that
    /// pass the safety checks, and the exit node; applies them to the data plane and kernel.
    pub fn sync_routes(&self) {
        use crate::base::prefix::Prefix;
        use crate::mesh::routes::Guard;
        let cfg = lock(&self.cfg).main.clone();
        let mesh = Prefix::new(cfg.address, cfg.prefix).unwrap_or(Prefix {
            addr: cfg.address,
            len: 32,
        });
        let local: Vec<Ipv4Addr> = crate::sys::ifaddrs::local_addrs()
            .into_iter()
            .filter_map(|ip| match ip {
                std::net::IpAddr::V4(v4) if !mesh.contains(v4) => Some(v4),
                _ => None,
            })
            .collect();
        let underlay: Vec<Ipv4Addr> = self
            .host
            .connected_peers()
            .iter()
            .filter_map(|p| self.host.remote_addr(p)?.socket_addr())
            .filter_map(|s| match s.ip() {
                std::net::IpAddr::V4(v4) => Some(v4),
                _ => None,
            })
            .collect();
        let kernel = crate::mesh::routes::kernel_routes(self.tun_name.as_deref());
        let t = lock(&self.peers);
        let mut installed: Vec<(Prefix, PeerId)> = Vec::new();
        let mut refused = lock(&self.refused_routes);
        let mut still_refused = Vec::new();
        let mut peers: Vec<_> = t
            .iter()
            .filter(|p| p.accept_routes && p.confirmed && !p.declined)
            .collect();
        peers.sort_by_key(|p| p.ip);
        for p in peers {
            for r in &p.routes {
                let named: Vec<(Prefix, String)> = installed
                    .iter()
                    .map(|(q, who)| (*q, who.to_string()))
                    .collect();
                let guard = Guard {
                    mesh,
                    own_routes: &cfg.route,
                    local_addrs: &local,
                    underlay: &underlay,
                    installed: &named,
                    allowed: &p.accept_route,
                    kernel: &kernel,
                };
                match guard.check(r) {
                    Ok(()) => installed.push((*r, p.peer_id.clone())),
                    Err(why) => {
                        let key = (p.peer_id.clone(), *r);
                        if !refused.contains(&key) {
                            log::warn!(
                                "refusing route {r} from {} ({}): {why}",
                                p.alias,
                                p.peer_id.short()
                            );
                        }
                        still_refused.push(key);
                    }
                }
            }
        }
        *refused = still_refused;
        drop(refused);
        let exit_node = cfg.exit_node.as_ref().and_then(|want| {
            t.iter()
                .find(|p| p.peer_id.to_string() == *want || p.alias == *want)
                .filter(|p| p.allowed_exit && p.remote_gateway)
                .map(|p| p.peer_id.clone())
        });
        drop(t);
        self.dp.set_routing(dataplane::Routing {
            exported: cfg.route.clone(),
            gateway: cfg.gateway,
            exit_node: exit_node.clone(),
            installed: installed.clone(),
        });
        if let Some(lan) = lock(&self.lan).as_mut() {
            let prefixes: Vec<Prefix> = installed.iter().map(|(p, _)| *p).collect();
            lan.sync_routes(&prefixes);
            lan.set_exit(exit_node.is_some());
        }
    }
}

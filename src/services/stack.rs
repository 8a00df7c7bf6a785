//! The node's own services on a smoltcp interface inside the daemon: ICMP echo, DNS for the
//! `.awl` zone (UDP and TCP 53, other names forwarded upstream) and an HTTP status endpoint
//! (TCP 80), on the service address (routed into the TUN) — or, in userspace mode (no TUN),
//! on the node's own mesh address.
//!
//! Packets come in through a bounded queue and go out to the TUN or to the mesh. Socket
//! counts and buffers are fixed at start, as is the table of forwarded DNS queries.

use super::{dns, http, NodeView};

use crate::dataplane::pool::{PacketBuf, PacketPool};
use crate::dataplane::Dataplane;
use smoltcp::iface::{Config as IfaceConfig, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::socket::{tcp, udp};
use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};
use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Packets waiting for the stack.
pub const INPUT_QUEUE: usize = 64;
const MTU: usize = 1500;
const UDP_PACKETS: usize = 16;
const TCP_DNS_SOCKETS: usize = 4;
const HTTP_SOCKETS: usize = 4;
const TCP_BUFFER: usize = 4096;
/// DNS queries forwarded upstream and not yet answered, at most.
const MAX_PENDING: usize = 128;
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);
/// A TCP client gets this long to send its request.
const TCP_IDLE: Duration = Duration::from_secs(10);

pub struct ServiceConfig {
    /// Addresses the stack answers on.
    pub addrs: Vec<Ipv4Addr>,
    /// Where names outside `.awl` are forwarded; none = SERVFAIL.
    pub upstream: Option<SocketAddr>,
    pub http: bool,
}

/// Where the stack's packets go.
pub enum Output {
    /// Written to the TUN (LAN hosts and the router itself asked).
    Tun(mpsc::Sender<PacketBuf>),
    /// Routed to peers (userspace mode: peers asked).
    Mesh(Arc<Dataplane>),
}

/// A smoltcp device over two queues of pooled packet buffers: packets go in and out without
/// being copied or allocated again.
struct Queues {
    pool: PacketPool,
    rx: VecDeque<PacketBuf>,
    tx: Vec<PacketBuf>,
}

struct Rx(PacketBuf);
struct Tx<'a> {
    pool: &'a PacketPool,
    out: &'a mut Vec<PacketBuf>,
}

impl RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0.data())
    }
}

impl TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let buf = (len <= self.pool.buffer_size())
            .then(|| self.pool.get())
            .flatten();
        match buf {
            Some(mut buf) => {
                let r = f(&mut buf.space()[..len]);
                buf.set_len(len);
                self.out.push(buf);
                r
            }
            // No buffer: smoltcp still builds the packet, which is then dropped (counted by
            // the pool), as a full queue would.
            None => f(&mut vec![0u8; len]),
        }
    }
}

impl Device for Queues {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, _t: SmolInstant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let p = self.rx.pop_front()?;
        Some((
            Rx(p),
            Tx {
                pool: &self.pool,
                out: &mut self.tx,
            },
        ))
    }

    fn transmit(&mut self, _t: SmolInstant) -> Option<Self::TxToken<'_>> {
        Some(Tx {
            pool: &self.pool,
            out: &mut self.tx,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ip;
        c.max_transmission_unit = MTU;
        c
    }
}

#[derive(Clone, Copy)]
enum Client {
    Udp(udp::UdpMetadata),
    Tcp(SocketHandle),
}

/// Sockets for forwarded DNS queries: `UPSTREAM_SOCKETS` of them, each bound to a random
/// port by the kernel; a query goes out on a random one, and a socket that has carried
/// `UPSTREAM_ROTATE` queries is replaced by a fresh one (new port) once nothing waits on it.
/// A task per socket hands what arrives to the stack.
struct Upstreams {
    socks: Vec<Option<UpSock>>,
    tx: mpsc::Sender<(usize, SocketAddr, Vec<u8>)>,
    rng: ring::rand::SystemRandom,
}

/// An upstream socket, the task reading it, and how many queries it carried.
type UpSock = (Arc<tokio::net::UdpSocket>, tokio::task::JoinHandle<()>, u32);

const UPSTREAM_SOCKETS: usize = 8;
const UPSTREAM_ROTATE: u32 = 64;

impl Upstreams {
    fn new(tx: mpsc::Sender<(usize, SocketAddr, Vec<u8>)>) -> Upstreams {
        Upstreams {
            socks: (0..UPSTREAM_SOCKETS).map(|_| None).collect(),
            tx,
            rng: ring::rand::SystemRandom::new(),
        }
    }

    fn bind(&self, slot: usize) -> std::io::Result<UpSock> {
        let s = std::net::UdpSocket::bind("0.0.0.0:0")?;
        s.set_nonblocking(true)?;
        let s = Arc::new(tokio::net::UdpSocket::from_std(s)?);
        let (rx, tx) = (s.clone(), self.tx.clone());
        let task = crate::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok((n, from)) = rx.recv_from(&mut buf).await {
                let _ = tx.try_send((slot, from, buf[..n].to_vec()));
            }
        });
        Ok((s, task, 0))
    }

    /// A socket for the next query: a random slot, (re)bound as needed.
    fn pick(
        &mut self,
        waiting: impl Fn(usize) -> usize,
    ) -> Option<(usize, Arc<tokio::net::UdpSocket>)> {
        let mut b = [0u8; 1];
        ring::rand::SecureRandom::fill(&self.rng, &mut b).ok()?;
        let slot = usize::from(b[0]) % UPSTREAM_SOCKETS;
        let stale = match &self.socks[slot] {
            None => true,
            Some((_, _, uses)) => *uses >= UPSTREAM_ROTATE && waiting(slot) == 0,
        };
        if stale {
            if let Some((_, task, _)) = self.socks[slot].take() {
                task.abort();
            }
            match self.bind(slot) {
                Ok(s) => self.socks[slot] = Some(s),
                Err(e) => {
                    log::warn!("DNS forwarding: {e}");
                    return None;
                }
            }
        }
        let (sock, _, uses) = self.socks[slot].as_mut()?;
        *uses += 1;
        Some((slot, sock.clone()))
    }
}

impl Drop for Upstreams {
    fn drop(&mut self) {
        for (_, task, _) in self.socks.iter_mut().filter_map(Option::take) {
            task.abort();
        }
    }
}

/// Per TCP socket: bytes received so far and when the connection started.
#[derive(Default)]
struct TcpConn {
    buf: Vec<u8>,
    since: Option<Instant>,
    answered: bool,
}

struct Stack {
    node: Arc<dyn NodeView>,
    upstream: Option<SocketAddr>,
    iface: Interface,
    dev: Queues,
    sockets: SocketSet<'static>,
    udp: SocketHandle,
    dns_tcp: Vec<SocketHandle>,
    http: Vec<SocketHandle>,
    conns: HashMap<SocketHandle, TcpConn>,
    fwd: dns::Forwarder<Client>,
    started: Instant,
}

fn tcp_socket() -> tcp::Socket<'static> {
    tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; TCP_BUFFER]),
        tcp::SocketBuffer::new(vec![0; TCP_BUFFER]),
    )
}

/// Builds the stack; the returned task runs it (the caller spawns and owns it).
pub fn start(
    node: Arc<dyn NodeView>,
    pool: PacketPool,
    cfg: ServiceConfig,
    input: mpsc::Receiver<PacketBuf>,
    output: Output,
) -> Result<crate::BoxedTask<()>, String> {
    let Some(first) = cfg.addrs.first().copied() else {
        return Err("no service address".into());
    };
    let mut dev = Queues {
        pool,
        rx: VecDeque::new(),
        tx: Vec::new(),
    };
    let mut iface = Interface::new(
        IfaceConfig::new(HardwareAddress::Ip),
        &mut dev,
        SmolInstant::from_millis(0),
    );
    iface.update_ip_addrs(|a| {
        for ip in &cfg.addrs {
            let _ = a.push(IpCidr::new(IpAddress::Ipv4(*ip), 32));
        }
    });
    // Replies go to any source (LAN hosts, peers): everything is "via" the TUN.
    iface
        .routes_mut()
        .add_default_ipv4_route(first)
        .map_err(|_| "route table full")?;
    let mut sockets = SocketSet::new(Vec::new());
    let mut udp = udp::Socket::new(
        udp::PacketBuffer::new(
            vec![udp::PacketMetadata::EMPTY; UDP_PACKETS],
            vec![0; UDP_PACKETS * 512],
        ),
        udp::PacketBuffer::new(
            vec![udp::PacketMetadata::EMPTY; UDP_PACKETS],
            vec![0; UDP_PACKETS * 1232],
        ),
    );
    udp.bind(53).map_err(|e| format!("udp 53: {e}"))?;
    let udp = sockets.add(udp);
    let mut dns_tcp = Vec::new();
    for _ in 0..TCP_DNS_SOCKETS {
        dns_tcp.push(sockets.add(tcp_socket()));
    }
    let mut http = Vec::new();
    if cfg.http {
        for _ in 0..HTTP_SOCKETS {
            http.push(sockets.add(tcp_socket()));
        }
    }
    let mut stack = Stack {
        node,
        upstream: cfg.upstream,
        iface,
        dev,
        sockets,
        udp,
        dns_tcp,
        http,
        conns: HashMap::new(),
        fwd: dns::Forwarder::new(MAX_PENDING),
        started: Instant::now(),
    };
    stack.relisten();
    log::info!(
        "services on {}: DNS (.awl; upstream {}), {}ICMP",
        cfg.addrs
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        cfg.upstream
            .map(|u| u.to_string())
            .unwrap_or_else(|| "none".into()),
        if cfg.http { "HTTP status, " } else { "" }
    );
    Ok(crate::boxed(async move { stack.run(input, output).await }))
}

impl Stack {
    fn now(&self) -> SmolInstant {
        SmolInstant::from_millis(self.started.elapsed().as_millis() as i64)
    }

    fn relisten(&mut self) {
        for (handles, port) in [(&self.dns_tcp, 53u16), (&self.http, 80u16)] {
            for h in handles {
                let s = self.sockets.get_mut::<tcp::Socket>(*h);
                if !s.is_open() {
                    let _ = s.listen(port);
                    self.conns.remove(h);
                }
            }
        }
    }

    async fn run(mut self, mut input: mpsc::Receiver<PacketBuf>, output: Output) {
        let (ans_tx, mut answers) = mpsc::channel(64);
        let mut ups = Upstreams::new(ans_tx);
        let mut upstream = Some(&mut ups);
        loop {
            let now = self.now();
            self.iface.poll(now, &mut self.dev, &mut self.sockets);
            self.serve_udp(upstream.as_deref_mut()).await;
            self.serve_tcp(upstream.as_deref_mut()).await;
            self.relisten();
            self.iface
                .poll(self.now(), &mut self.dev, &mut self.sockets);
            self.flush(&output);
            self.expire_pending();
            let delay = self
                .iface
                .poll_delay(self.now(), &self.sockets)
                .map(|d| Duration::from_micros(d.total_micros()))
                .unwrap_or(Duration::from_secs(1))
                .min(Duration::from_secs(1));
            tokio::select! {
                p = input.recv() => match p {
                    Some(p) => {
                        self.push(p);
                        // Take what else is queued in one go.
                        while let Ok(p) = input.try_recv() {
                            self.push(p);
                        }
                    }
                    None => return,
                },
                Some((slot, from, msg)) = answers.recv() => {
                    self.answer_forwarded(slot, from, &msg);
                }
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }

    fn push(&mut self, pkt: PacketBuf) {
        if self.dev.rx.len() < INPUT_QUEUE {
            self.dev.rx.push_back(pkt);
        }
    }

    fn flush(&mut self, output: &Output) {
        for buf in self.dev.tx.drain(..) {
            match output {
                Output::Tun(tx) => {
                    let _ = tx.try_send(buf);
                }
                Output::Mesh(dp) => dp.route_outbound(buf),
            }
        }
    }

    /// Our answer to a DNS query, or `None` when it must be forwarded.
    fn local_answer(&self, msg: &[u8]) -> Result<Option<Vec<u8>>, Option<Vec<u8>>> {
        let q = match dns::parse_query(msg) {
            Ok(q) => q,
            Err(_) => return Err(dns::failure(msg, None)),
        };
        let node = &self.node;
        let a = dns::decide(
            &q,
            |label| node.dns_lookup(label),
            |ip| node.dns_reverse(ip),
            |ip| node.in_mesh(ip),
        );
        match a {
            dns::Answer::Forward => Ok(None),
            a => Ok(Some(dns::respond(msg, &q, &a))),
        }
    }

    async fn forward(
        &mut self,
        upstream: Option<&mut Upstreams>,
        msg: &[u8],
        client: Client,
    ) -> Option<Vec<u8>> {
        let q = dns::parse_query(msg).ok();
        let (Some(u), Some(to)) = (upstream, self.upstream) else {
            return dns::failure(msg, q.as_ref());
        };
        let fwd = &self.fwd;
        let Some((slot, sock)) = u.pick(|s| fwd.on_slot(s)) else {
            return dns::failure(msg, q.as_ref());
        };
        let Some(out) = self.fwd.start(slot, msg, to, client, Instant::now()) else {
            return dns::failure(msg, q.as_ref());
        };
        if sock.send_to(&out, to).await.is_err() {
            let id = u16::from_be_bytes([out[0], out[1]]);
            self.fwd.cancel(slot, id);
            return dns::failure(msg, q.as_ref());
        }
        None
    }

    fn answer_forwarded(&mut self, slot: usize, from: SocketAddr, msg: &[u8]) {
        let Some((client, out)) = self.fwd.answer(slot, from, msg) else {
            return;
        };
        self.reply(client, &out);
        self.iface
            .poll(self.now(), &mut self.dev, &mut self.sockets);
    }

    fn reply(&mut self, client: Client, msg: &[u8]) {
        match client {
            Client::Udp(meta) => {
                let s = self.sockets.get_mut::<udp::Socket>(self.udp);
                let _ = s.send_slice(msg, meta);
            }
            Client::Tcp(h) => {
                let s = self.sockets.get_mut::<tcp::Socket>(h);
                if s.may_send() {
                    let mut framed = (msg.len() as u16).to_be_bytes().to_vec();
                    framed.extend_from_slice(msg);
                    let _ = s.send_slice(&framed);
                    s.close();
                }
            }
        }
    }

    fn expire_pending(&mut self) {
        for client in self.fwd.expire(Instant::now(), FORWARD_TIMEOUT) {
            if let Client::Tcp(h) = client {
                self.sockets.get_mut::<tcp::Socket>(h).abort();
            }
        }
    }

    async fn serve_udp(&mut self, mut upstream: Option<&mut Upstreams>) {
        let mut queries = Vec::new();
        {
            let s = self.sockets.get_mut::<udp::Socket>(self.udp);
            while let Ok((data, meta)) = s.recv() {
                queries.push((data.to_vec(), meta));
            }
        }
        for (q, meta) in queries {
            let reply = match self.local_answer(&q) {
                Ok(Some(r)) => Some(r),
                Ok(None) => {
                    self.forward(upstream.as_deref_mut(), &q, Client::Udp(meta))
                        .await
                }
                Err(r) => r,
            };
            if let Some(r) = reply {
                self.reply(Client::Udp(meta), &r);
            }
        }
    }

    async fn serve_tcp(&mut self, mut upstream: Option<&mut Upstreams>) {
        let node = self.node.clone();
        for i in 0..self.http.len() {
            let h = self.http[i];
            let s = self.sockets.get_mut::<tcp::Socket>(h);
            if !s.is_active() {
                continue;
            }
            let c = self.conns.entry(h).or_default();
            let since = *c.since.get_or_insert_with(Instant::now);
            while s.can_recv() && c.buf.len() < http::MAX_REQUEST {
                let room = http::MAX_REQUEST - c.buf.len();
                let _ = s.recv(|d| {
                    let n = d.len().min(room);
                    c.buf.extend_from_slice(&d[..n]);
                    (n, ())
                });
                if room == 0 {
                    break;
                }
            }
            if c.answered {
                continue;
            }
            let resp = match http::parse_request(&c.buf) {
                http::Parsed::Incomplete
                    if c.buf.len() < http::MAX_REQUEST && since.elapsed() < TCP_IDLE =>
                {
                    continue
                }
                http::Parsed::Incomplete => http::response(400, "text/plain", b"bad request\n"),
                http::Parsed::Request { path } => {
                    http::route(&path, || node.http_status(), || node.metrics())
                }
            };
            let _ = s.send_slice(&resp);
            s.close();
            c.answered = true;
        }
        for i in 0..self.dns_tcp.len() {
            let h = self.dns_tcp[i];
            let (msg, expired) = {
                let s = self.sockets.get_mut::<tcp::Socket>(h);
                if !s.is_active() {
                    continue;
                }
                let c = self.conns.entry(h).or_default();
                let since = *c.since.get_or_insert_with(Instant::now);
                while s.can_recv() && c.buf.len() < 2 + 65535 && !c.answered {
                    let _ = s.recv(|d| {
                        let n = d.len().min(2048);
                        c.buf.extend_from_slice(&d[..n]);
                        (n, ())
                    });
                }
                let mut msg = None;
                if !c.answered && c.buf.len() >= 2 {
                    let len = u16::from_be_bytes([c.buf[0], c.buf[1]]) as usize;
                    if c.buf.len() >= 2 + len {
                        msg = Some(c.buf[2..2 + len].to_vec());
                        c.answered = true;
                    }
                }
                (msg, since.elapsed() > TCP_IDLE)
            };
            match msg {
                Some(m) => {
                    let reply = match self.local_answer(&m) {
                        Ok(Some(r)) => Some(r),
                        Ok(None) => {
                            self.forward(upstream.as_deref_mut(), &m, Client::Tcp(h))
                                .await
                        }
                        Err(r) => r,
                    };
                    if let Some(r) = reply {
                        self.reply(Client::Tcp(h), &r);
                    }
                }
                None if expired => self.sockets.get_mut::<tcp::Socket>(h).abort(),
                None => {}
            }
        }
    }
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

#[cfg(test)]
mod tests;

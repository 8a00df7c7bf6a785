//! A second socket on the QUIC port that fast packets reach and QUIC packets do not, read by
//! a thread of its own.
//!
//! At a ping's pace most of a daemon's cost per packet was tokio's, not ours: each wake-up of
//! the runtime reads the clock four times, turns the timer wheel and runs the task queue
//! (about 2,000 instructions) before the packet is touched. So the kernel sorts the port's
//! datagrams: both sockets join one `SO_REUSEPORT` group, and a four-instruction classic BPF
//! program picks the second socket for a datagram whose first byte is the fast marker, the
//! first (quinn's, read in the runtime) for the rest. The thread here sleeps in `poll(2)`,
//! opens the fast packets and delivers them to the TUN without waking the runtime, as
//! boringtun's threads do; QUIC keeps its reads in the runtime, where quinn takes them
//! without a hand-over between threads (which cost a fifth of the TCP throughput on one core
//! when one thread read both). The TUN's reader lends the thread its device while the
//! device's packets go out on the fast path (`dataplane::tun`, `sys::packet_thread`), so
//! one thread carries a ping both ways through a node.
//!
//! The thread also reads the sockets connected to one peer each (`connected`), which take
//! all of that peer's datagrams: fast packets are opened as here, QUIC packets handed to
//! quinn. It waits on one epoll set of all its sockets and asks it which are readable.
//!
//! Where the kernel refuses the program, there is no second socket and the runtime's reader
//! opens the fast packets as before. A stray non-fast datagram on the second socket
//! (impossible while the program is attached) is dropped and counted as refused.

use super::connected::{Connector, PeerSocket};
use super::dual_stack;
use super::udp::{Batch, ForQuinn};
use crate::p2p::fastpath::{wire, Table};
use crate::sys::packet_thread::{spawn_packet_thread, Job, PacketThread, Step};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The thread's stack: its deepest path is a fast packet's delivery to the TUN.
const STACK: usize = 256 * 1024;

/// Reads of a connected socket that left the set, for what the kernel gave it before.
const LAST_READS: usize = 4;

/// Stops the reader thread (and closes its socket) when dropped.
pub type FastReader = PacketThread;

/// Binds the second socket beside `main` (bound with `SO_REUSEPORT` by
/// [`dual_stack::bind_udp_shared`]), steers fast packets to it and starts its reader; None,
/// logged, where the kernel cannot (the runtime's reader then opens fast packets).
pub(super) fn start(main: &UdpSocket, fast: Arc<Table>, quinn: ForQuinn) -> Option<FastReader> {
    match try_start(main, fast, quinn) {
        Ok(r) => Some(r),
        Err(e) => {
            log::info!("fast packets are read with QUIC's (no socket of their own: {e})");
            None
        }
    }
}

fn try_start(main: &UdpSocket, fast: Arc<Table>, quinn: ForQuinn) -> io::Result<FastReader> {
    let at: SocketAddr = main.local_addr()?;
    // Both ciphers' markers, as `wire::is_fast` tells them.
    crate::sys::sockopt::steer_by_first_byte(main.as_raw_fd(), wire::MARKER, wire::MARKER_MASK)?;
    let socket = dual_stack::join_udp_shared(at)?;
    socket.set_nonblocking(true)?;
    super::mark_socket(&socket);
    // As quinn's: a burst of single packets (a UDP flow through the tunnel goes out one by
    // one on the fast path) must not overflow the default ~208 KB while the thread waits.
    super::udp::grow_receive_buffer(socket.as_raw_fd());
    // quinn-udp's set-up, as for quinn's socket: UDP GRO on where the kernel has it, so a
    // burst sent as one GSO send (the sender task's runs) is read as one message.
    let gro = quinn::udp::UdpSocketState::new((&socket).into())
        .map(|s| s.gro_segments())
        .unwrap_or(1);
    let batch = super::udp::reader_buffer(gro)?;
    let connector = Connector::new(at, socket.as_raw_fd())?;
    let job = Reader {
        socket,
        batch,
        fast: fast.clone(),
        reported: false,
        connector: connector.clone(),
        seen: 0,
        hot: -1,
        waited: false,
        peers: Vec::new(),
        quinn,
    };
    let thread = spawn_packet_thread("awl-fast", STACK, true, Box::new(job))?;
    connector.set_reader(thread.waker());
    fast.set_connect(Arc::new(connector));
    Ok(thread)
}

/// The thread's own job: the socket read into the batch, and fast packets opened there.
struct Reader {
    socket: UdpSocket,
    batch: Box<Batch>,
    fast: Arc<Table>,
    reported: bool,
    connector: Connector,
    /// The connected sockets as of the set's `seen` generation.
    seen: usize,
    /// The socket that last had packets, and whether the last step ended in a wait.
    hot: RawFd,
    waited: bool,
    peers: Vec<Arc<PeerSocket>>,
    quinn: ForQuinn,
}

impl Job for Reader {
    fn step(&mut self) -> Step {
        if self.connector.generation() != self.seen {
            self.refresh();
        }
        let set = self.connector.epoll().as_raw_fd();
        // Right after a wait, the socket that last had packets is read first, without asking
        // the set: at a ping's pace it is the one that woke us (an `epoll_wait` saved per
        // packet). After a busy step the set is asked, so every ready socket gets its turn.
        let (own, hot) = (self.socket.as_raw_fd(), self.hot);
        if std::mem::take(&mut self.waited) && (hot == own || self.knows(hot)) {
            if let Some(dry) = self.read(hot, hot != own) {
                self.waited = dry;
                return match dry {
                    true => Step::Dry(set),
                    false => Step::Busy,
                };
            }
        }
        let mut ready = [0; 16];
        let n = match self.connector.epoll().ready(&mut ready) {
            Ok(n) => n,
            Err(e) => {
                self.report(&e);
                0
            }
        };
        let mut dry = true;
        for &fd in &ready[..n] {
            let read = match fd == own {
                true => self.read(fd, false),
                false => self.read_peer(fd),
            };
            if read.is_some() {
                self.hot = fd;
            }
            dry &= read.unwrap_or(true);
        }
        // Every socket read ran dry: wait now rather than learn it from one more call
        // (poll returns at once if more came meanwhile).
        self.waited = dry;
        match dry {
            true => Step::Dry(set),
            false => Step::Busy,
        }
    }
}

impl Reader {
    /// Reads `fd` once, opens its fast packets and, from a connected socket (`quic`), hands
    /// quinn the rest; whether the socket ran dry, or `None` if nothing was read.
    fn read(&mut self, fd: RawFd, quic: bool) -> Option<bool> {
        match self.batch.read(fd) {
            Ok(n) => {
                let (_, rest) = self.batch.open_fast(n, &self.fast);
                match quic {
                    true if rest > 0 => self
                        .quinn
                        .take_quic(&mut self.batch, self.connector.dual_stack()),
                    true => {}
                    false => {
                        let refused = &self.fast.counters.refused;
                        refused.fetch_add(rest, Ordering::Relaxed);
                    }
                }
                // recvmmsg stops short only when the queue ran dry.
                Some(n < self.batch.messages())
            }
            Err(e) if crate::sys::would_block(&e) => None,
            // ECONNRESET and ECONNREFUSED (a connected socket) are undefined for UDP here
            // and can be injected by anyone (ICMP).
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset
                        | io::ErrorKind::ConnectionRefused
                        | io::ErrorKind::Interrupted
                ) =>
            {
                Some(false)
            }
            // Anything else (an error the socket was left with) is reported once and read
            // past: the kernel keeps steering fast packets here, so the thread must not end
            // while its owner lives.
            Err(e) => {
                self.report(&e);
                None
            }
        }
    }

    /// A connected socket's turn.
    fn read_peer(&mut self, fd: RawFd) -> Option<bool> {
        if !self.knows(fd) {
            self.refresh();
        }
        match self.knows(fd) {
            true => self.read(fd, true),
            // Closed before we saw it (closing took it out of the set).
            false => None,
        }
    }

    /// Takes the set's connected sockets as they are now. One that left it (its sender is
    /// gone) is read out, no longer watched, and closes here.
    fn refresh(&mut self) {
        self.seen = self.connector.generation();
        let now = self.connector.peers();
        for old in std::mem::replace(&mut self.peers, now) {
            if !self.peers.iter().any(|p| Arc::ptr_eq(p, &old)) {
                let fd = old.socket.as_raw_fd();
                for _ in 0..LAST_READS {
                    if self.read(fd, true).unwrap_or(true) {
                        break;
                    }
                }
                self.connector.epoll().remove(fd);
            }
        }
    }

    fn knows(&self, fd: RawFd) -> bool {
        self.peers.iter().any(|p| p.socket.as_raw_fd() == fd)
    }

    fn report(&mut self, e: &io::Error) {
        if !self.reported {
            log::error!("fast packet socket read failed: {e}");
            self.reported = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quinn::udp::RecvMeta;
    use std::time::{Duration, Instant};

    /// Through the kernel, on a dual-stack port: the fast packet reaches the second socket's thread
    /// (refused there: no session) and the QUIC packet the first socket; the thread ends
    /// when its owner drops it.
    #[tokio::test]
    async fn the_kernel_sends_fast_packets_to_the_second_socket_and_quic_to_the_first() {
        let main = dual_stack::bind_udp_shared("[::]:0".parse().expect("addr")).expect("bind");
        let fast = Arc::new(Table::default());
        let (_quic, quinn) = super::super::udp::unread(fast.clone());
        let reader = start(&main, fast.clone(), quinn).expect("a second socket");
        // The IPv6 wildcard, as the node listens, reached over IPv4.
        let to = SocketAddr::from(([127, 0, 0, 1], main.local_addr().expect("addr").port()));
        let tx = UdpSocket::bind("127.0.0.1:0").expect("bind");
        // Both ciphers' markers, with and without the partial bit, go to the fast socket; a
        // first byte one other bit off (0x28, 0x3a) and QUIC's go to quinn's.
        let partial = |m: u8| m | wire::PARTIAL;
        let markers = [wire::MARKER, wire::MARKER_AES, partial(wire::MARKER)];
        for marker in markers.into_iter().chain([partial(wire::MARKER_AES)]) {
            let mut fast_packet = [0u8; 60];
            fast_packet[0] = marker;
            tx.send_to(&fast_packet, to).expect("send");
            tx.send_to(&[0x40; 30], to).expect("send");
        }
        tx.send_to(&[0x28; 31], to).expect("send");
        tx.send_to(&[0x3a; 32], to).expect("send");
        main.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut buf = [0u8; 100];
        let mut got = Vec::new();
        for _ in 0..6 {
            let (n, _) = main.recv_from(&mut buf).expect("the QUIC packets");
            got.push((n, buf[0]));
        }
        assert_eq!(
            got,
            [
                (30, 0x40),
                (30, 0x40),
                (30, 0x40),
                (30, 0x40),
                (31, 0x28),
                (32, 0x3a)
            ],
            "a fast packet reached quinn's socket"
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while fast.counters.refused.load(Ordering::Relaxed) < 4 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(fast.counters.refused.load(Ordering::Relaxed), 4);

        let control = reader.control_for_test();
        drop(reader);
        while control.strong_count() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(control.strong_count(), 0, "the reader outlived its owner");
    }

    /// quinn's next packet, through `poll_recv` as quinn takes it.
    async fn from_quinn(quic: &Arc<dyn quinn::AsyncUdpSocket>) -> (RecvMeta, Vec<u8>) {
        let mut buf = [0u8; 1500];
        let mut meta = [RecvMeta::default()];
        let read = std::future::poll_fn(|cx| {
            let mut bufs = [std::io::IoSliceMut::new(&mut buf)];
            quic.poll_recv(cx, &mut bufs, &mut meta)
        });
        let n = tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .expect("quinn got nothing")
            .expect("read");
        assert_eq!(n, 1);
        (meta[0], buf[..meta[0].len].to_vec())
    }

    /// Through the kernel: a socket connected to a peer sends from the shared port (a GSO run
    /// too); it takes the peer's datagrams, and the thread hands quinn their QUIC packets
    /// with the address quinn would have read on the shared socket, and opens (here: refuses)
    /// the fast ones; a stranger's stay on the shared socket. Dropped, it closes, and the
    /// peer's datagrams take the shared socket again. Never more than MAX_PEERS are open.
    #[tokio::test]
    async fn a_connected_socket_sends_from_the_port_and_hands_quinn_its_peers_quic_packets() {
        use crate::p2p::transport::connected::MAX_PEERS;
        use quinn::udp::Transmit;
        let main = dual_stack::bind_udp_shared("[::]:0".parse().expect("addr")).expect("bind");
        let port = main.local_addr().expect("addr").port();
        let to = SocketAddr::from(([127, 0, 0, 1], port));
        let fast = Arc::new(Table::default());
        let (quic, quinn) = super::super::udp::unread(fast.clone());
        let _reader = start(&main, fast.clone(), quinn).expect("a second socket");
        let connect = fast.connect.get().cloned().expect("a connector");
        let peer = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let stranger = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let remote = dual_stack::mapped(peer.local_addr().expect("addr"));
        let local = Some(std::net::IpAddr::from([127, 0, 0, 1]));
        let sock = connect.connect(remote, local).expect("connected");
        let run = Transmit {
            destination: remote,
            ecn: None,
            contents: &[0x2c; 50],
            segment_size: Some(25),
            src_ip: local,
        };
        sock.try_send(&run).expect("send");
        peer.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut buf = [0u8; 100];
        for _ in 0..2 {
            assert_eq!(peer.recv_from(&mut buf).expect("the run"), (25, to));
        }

        peer.send_to(&[0x41; 30], to).expect("send");
        stranger.send_to(&[0x42; 31], to).expect("send");
        let mut fast_packet = [0u8; 60];
        fast_packet[0] = wire::MARKER;
        peer.send_to(&fast_packet, to).expect("send");
        peer.send_to(&[0x43; 32], to).expect("send");
        let (meta, got) = from_quinn(&quic).await;
        assert_eq!((got, meta.addr), (vec![0x41; 30], remote));
        let (_, got) = from_quinn(&quic).await;
        assert_eq!(got, vec![0x43; 32], "the fast packet was handed to quinn");
        main.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let (n, from) = main.recv_from(&mut buf).expect("the stranger's");
        assert_eq!(
            (n, from),
            (
                31,
                stranger.local_addr().map(dual_stack::mapped).expect("addr")
            )
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while fast.counters.refused.load(Ordering::Relaxed) < 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(fast.counters.refused.load(Ordering::Relaxed), 1);

        drop(sock);
        main.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let mut back = None;
        while back.is_none() && Instant::now() < deadline {
            peer.send_to(&[0x44; 33], to).expect("send");
            back = main.recv_from(&mut buf).ok();
        }
        assert_eq!(
            back.map(|(n, _)| n),
            Some(33),
            "the closed socket kept the peer's packets"
        );

        let mut open = Vec::new();
        for i in 0..MAX_PEERS + 1 {
            let remote = SocketAddr::from(([127, 0, 0, 2], 1000 + i as u16));
            open.push(connect.connect(dual_stack::mapped(remote), None));
        }
        assert_eq!(open.iter().filter(|s| s.is_some()).count(), MAX_PEERS);
        assert!(open[MAX_PEERS].is_none());
        open.truncate(1);
        let again = SocketAddr::from(([127, 0, 0, 2], 999));
        assert!(connect.connect(dual_stack::mapped(again), None).is_some());
    }
}

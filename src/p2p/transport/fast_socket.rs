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
//! Where the kernel refuses the program, there is no second socket and the runtime's reader
//! opens the fast packets as before. A stray non-fast datagram here (impossible while the
//! program is attached) is dropped and counted as refused.

use super::dual_stack;
use super::udp::Batch;
use crate::p2p::fastpath::{wire, Table};
use crate::sys::packet_thread::{spawn_packet_thread, Job, PacketThread, Step};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The thread's stack: its deepest path is a fast packet's delivery to the TUN.
const STACK: usize = 256 * 1024;

/// Stops the reader thread (and closes its socket) when dropped.
pub type FastReader = PacketThread;

/// Binds the second socket beside `main` (bound with `SO_REUSEPORT` by
/// [`dual_stack::bind_udp_shared`]), steers fast packets to it and starts its reader; None,
/// logged, where the kernel cannot (the runtime's reader then opens fast packets).
pub fn start(main: &UdpSocket, fast: Arc<Table>) -> Option<FastReader> {
    match try_start(main, fast) {
        Ok(r) => Some(r),
        Err(e) => {
            log::info!("fast packets are read with QUIC's (no socket of their own: {e})");
            None
        }
    }
}

fn try_start(main: &UdpSocket, fast: Arc<Table>) -> io::Result<FastReader> {
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
    let job = Reader {
        socket,
        batch,
        fast,
        reported: false,
    };
    spawn_packet_thread("awl-fast", STACK, true, Box::new(job))
}

/// The thread's own job: the socket read into the batch, and fast packets opened there.
struct Reader {
    socket: UdpSocket,
    batch: Box<Batch>,
    fast: Arc<Table>,
    reported: bool,
}

impl Job for Reader {
    fn step(&mut self) -> Step {
        let fd = self.socket.as_raw_fd();
        match self.batch.read(fd) {
            Ok(n) => {
                let (_, strays) = self.batch.open_fast(n, &self.fast);
                self.fast
                    .counters
                    .refused
                    .fetch_add(strays, Ordering::Relaxed);
                // recvmmsg stops short only when the queue ran dry: wait now rather than
                // learn it from one more call (poll returns at once if more came meanwhile).
                match n < self.batch.messages() {
                    true => Step::Dry(fd),
                    false => Step::Busy,
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Step::Dry(fd),
            // ECONNRESET is undefined for UDP here and can be injected by anyone (ICMP).
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset | io::ErrorKind::Interrupted
                ) =>
            {
                Step::Busy
            }
            // Anything else (an error the socket was left with) is reported once and read
            // past: the kernel keeps steering fast packets here, so the thread must not end
            // while its owner lives.
            Err(e) => {
                if !self.reported {
                    log::error!("fast packet socket read failed: {e}");
                    self.reported = true;
                }
                Step::Dry(fd)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// Through the kernel, on a dual-stack port: the fast packet reaches the second socket's thread
    /// (refused there: no session) and the QUIC packet the first socket; the thread ends
    /// when its owner drops it.
    #[tokio::test]
    async fn the_kernel_sends_fast_packets_to_the_second_socket_and_quic_to_the_first() {
        let main = dual_stack::bind_udp_shared("[::]:0".parse().expect("addr")).expect("bind");
        let fast = Arc::new(Table::default());
        let reader = start(&main, fast.clone()).expect("a second socket");
        // The IPv6 wildcard, as the node listens, reached over IPv4.
        let to = SocketAddr::from(([127, 0, 0, 1], main.local_addr().expect("addr").port()));
        let tx = UdpSocket::bind("127.0.0.1:0").expect("bind");
        // Both ciphers' markers go to the fast socket; a first byte one bit off either
        // (0x28, 0x2e) and QUIC's go to quinn's.
        for marker in [wire::MARKER, wire::MARKER_AES, wire::MARKER] {
            let mut fast_packet = [0u8; 60];
            fast_packet[0] = marker;
            tx.send_to(&fast_packet, to).expect("send");
            tx.send_to(&[0x40; 30], to).expect("send");
        }
        tx.send_to(&[0x28; 31], to).expect("send");
        tx.send_to(&[0x2e; 32], to).expect("send");
        main.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut buf = [0u8; 100];
        let mut got = Vec::new();
        for _ in 0..5 {
            let (n, _) = main.recv_from(&mut buf).expect("the QUIC packets");
            got.push((n, buf[0]));
        }
        assert_eq!(
            got,
            [(30, 0x40), (30, 0x40), (30, 0x40), (31, 0x28), (32, 0x2e)],
            "a fast packet reached quinn's socket"
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while fast.counters.refused.load(Ordering::Relaxed) < 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(fast.counters.refused.load(Ordering::Relaxed), 3);

        let control = reader.control_for_test();
        drop(reader);
        while control.strong_count() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(control.strong_count(), 0, "the reader outlived its owner");
    }
}

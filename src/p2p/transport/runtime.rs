//! quinn's runtime: tokio, with a timer that moves its entry when its deadline moves later.
//!
//! quinn's connection driver keeps one timer at the earliest of its deadlines and resets it on
//! every poll where that changed. At ping-like rates the deadline moves back and forth: loss
//! detection about 26 ms after a send, the ACK delay 25 ms after a receive, then 26 ms after
//! the next send. tokio's `Sleep::reset` to a later deadline only marks its entry: the runtime
//! still wakes at the old deadline to file it again. That is one wake-up of the daemon per
//! round trip with nothing to do (issue 22: `bench/run.sh` and `bench/pace.sh` count them).
//! Here a later deadline replaces the entry (a removal and an insertion in tokio's timer
//! wheel: cheaper than a wake-up, dearer than tokio's mark), at most once per
//! [`REFILE_EVERY`]; an earlier one resets it as tokio does. Under load quinn resets its timer
//! on nearly every poll; in between those replacements tokio's mark does, and the one wake-up
//! it can cost comes at most once per replacement.

use quinn::{AsyncTimer, AsyncUdpSocket};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::time::{sleep_until, Sleep};

/// The least time between two replacements of a timer's entry.
const REFILE_EVERY: Duration = Duration::from_millis(1);

/// quinn's runtime for the endpoints (`quinn::TokioRuntime` with [`Timer`]).
#[derive(Debug)]
pub struct Runtime;

impl quinn::Runtime for Runtime {
    fn new_timer(&self, at: Instant) -> Pin<Box<dyn AsyncTimer>> {
        Box::pin(Timer {
            sleep: Box::pin(sleep_until(at.into())),
            filed: None,
        })
    }

    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) {
        tokio::spawn(future);
    }

    /// Only for `Endpoint::rebind`: our endpoints come with their socket.
    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        super::udp::wrap(socket, None)
    }

    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }
}

#[derive(Debug)]
struct Timer {
    sleep: Pin<Box<Sleep>>,
    /// When the entry was last replaced.
    filed: Option<tokio::time::Instant>,
}

impl AsyncTimer for Timer {
    fn reset(mut self: Pin<&mut Self>, at: Instant) {
        let at = tokio::time::Instant::from_std(at);
        if at > self.sleep.deadline() {
            let now = tokio::time::Instant::now();
            if self
                .filed
                .is_none_or(|t| now.duration_since(t) >= REFILE_EVERY)
            {
                // Dropping the old entry takes it out of the wheel; the new one is filed
                // when quinn polls it, right after this.
                self.sleep.set(sleep_until(at));
                self.filed = Some(now);
                return;
            }
        }
        self.sleep.as_mut().reset(at);
    }

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context) -> Poll<()> {
        Future::poll(self.sleep.as_mut(), cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quinn::Runtime as _;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Polls once, as quinn's driver does after a reset: the timer must still be pending.
    async fn poll_once(timer: &mut Pin<Box<dyn AsyncTimer>>) {
        std::future::poll_fn(|cx| {
            assert!(timer.as_mut().poll(cx).is_pending());
            Poll::Ready(())
        })
        .await;
    }

    /// How often the runtime wakes while a timer, filed 10 ms ahead, is moved to each of
    /// `later` (ms ahead, at once, polled after each) and awaited; the fewest of three tries
    /// (a loaded machine only adds wake-ups). All deadlines stay within one 64 ms span of
    /// tokio's timer wheel, whose crossing costs a wake-up of its own.
    fn wake_ups(new_timer: impl Fn(Instant) -> Pin<Box<dyn AsyncTimer>>, later: &[u64]) -> usize {
        (0..3)
            .map(|_| {
                let count = Arc::new(AtomicUsize::new(0));
                let counter = count.clone();
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .on_thread_unpark(move || {
                        counter.fetch_add(1, Ordering::Relaxed);
                    })
                    .build()
                    .expect("runtime");
                rt.block_on(async {
                    let start = Instant::now();
                    let mut timer = new_timer(start + Duration::from_millis(10));
                    poll_once(&mut timer).await;
                    // Lets the runtime look at its wheel once, as it has in a running daemon.
                    tokio::task::yield_now().await;
                    let before = count.load(Ordering::Relaxed);
                    for &ms in later {
                        timer.as_mut().reset(start + Duration::from_millis(ms));
                        poll_once(&mut timer).await;
                    }
                    std::future::poll_fn(|cx| timer.as_mut().poll(cx)).await;
                    let last = later.last().copied().unwrap_or(10);
                    assert!(start.elapsed() >= Duration::from_millis(last));
                    count.load(Ordering::Relaxed) - before
                })
            })
            .min()
            .unwrap_or(0)
    }

    #[test]
    fn a_later_deadline_does_not_wake_the_runtime_at_the_old_one() {
        // tokio's own reset: woken at 10 ms to file the entry again, then at 40 ms. This is
        // what the timer above is for; if tokio stops doing it, the timer can go.
        let tokio_sleep = wake_ups(|at| Box::pin(sleep_until(at.into())), &[40]);
        assert_eq!(tokio_sleep, 2, "tokio's Sleep woke {tokio_sleep} times");
        let ours = wake_ups(|at| Runtime.new_timer(at), &[40]);
        assert_eq!(ours, 1, "woken {ours} times");
    }

    #[test]
    fn under_load_the_entry_is_replaced_at_most_once_per_refile_interval() {
        // Two later deadlines at once: the first replaces the entry (at 20 ms), the second
        // only marks it, so the runtime wakes at 20 ms and at 40 ms, as with tokio's Sleep.
        let ours = wake_ups(|at| Runtime.new_timer(at), &[20, 40]);
        assert_eq!(ours, 2, "woken {ours} times");
    }

    #[test]
    fn an_earlier_deadline_fires_at_the_earlier_time() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let start = Instant::now();
            let mut timer = Runtime.new_timer(start + Duration::from_secs(30));
            poll_once(&mut timer).await;
            timer.as_mut().reset(start + Duration::from_millis(20));
            std::future::poll_fn(|cx| timer.as_mut().poll(cx)).await;
            assert!(start.elapsed() < Duration::from_secs(10));
        });
    }
}

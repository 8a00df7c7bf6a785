//! Logging: env_logger's format to stderr (procd hands it to logd on OpenWrt, systemd to the
//! journal), plus an in-memory ring of the most recent lines for `awl logs` — on a router
//! without persistent logs, the last minutes of history are what a bug report needs.

use std::collections::VecDeque;
use std::sync::{Mutex, OnceLock};

/// Lines kept, and the longest line kept (longer ones are cut).
pub const LINES: usize = 500;
const MAX_LINE: usize = 400;

static RING: OnceLock<Mutex<VecDeque<String>>> = OnceLock::new();

fn ring() -> &'static Mutex<VecDeque<String>> {
    RING.get_or_init(|| Mutex::new(VecDeque::with_capacity(LINES)))
}

struct Logger {
    inner: env_logger::Logger,
}

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        self.inner.enabled(m)
    }

    fn log(&self, r: &log::Record) {
        if !self.inner.matches(r) {
            return;
        }
        self.inner.log(r);
        push(format!(
            "{} {:<5} {}: {}",
            crate::mesh::peers::now_unix(),
            r.level(),
            r.target(),
            r.args()
        ));
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

/// Adds a line to the ring (the oldest goes when it is full).
pub fn push(mut line: String) {
    if line.len() > MAX_LINE {
        let mut cut = MAX_LINE;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line.push('…');
    }
    let mut r = ring().lock().unwrap_or_else(|e| e.into_inner());
    if r.len() >= LINES {
        r.pop_front();
    }
    r.push_back(line);
}

/// The last `n` lines, oldest first.
pub fn recent(n: usize) -> Vec<String> {
    let r = ring().lock().unwrap_or_else(|e| e.into_inner());
    r.iter().skip(r.len().saturating_sub(n)).cloned().collect()
}

/// Installs the logger: `level`, QUIC and TLS internals at warn, `RUST_LOG` overrides.
pub fn init(level: log::LevelFilter) {
    let mut b = env_logger::Builder::new();
    b.filter_level(level);
    b.filter_module("quinn", log::LevelFilter::Warn.min(level));
    b.filter_module("quinn_proto", log::LevelFilter::Warn.min(level));
    b.filter_module("rustls", log::LevelFilter::Warn.min(level));
    b.filter_module("smoltcp", log::LevelFilter::Warn.min(level));
    if let Ok(filter) = std::env::var("RUST_LOG") {
        b.parse_filters(&filter);
    }
    b.format_timestamp(None);
    let inner = b.build();
    let max = inner.filter();
    if log::set_boxed_logger(Box::new(Logger { inner })).is_ok() {
        log::set_max_level(max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_is_bounded_and_keeps_the_newest() {
        for i in 0..LINES + 10 {
            push(format!("line {i}"));
        }
        let all = recent(usize::MAX);
        assert_eq!(all.len(), LINES);
        assert_eq!(all.last().unwrap(), &format!("line {}", LINES + 9));
        assert_eq!(recent(2).len(), 2);
        push("é".repeat(MAX_LINE));
        assert!(recent(1)[0].len() <= MAX_LINE + '…'.len_utf8());
    }
}

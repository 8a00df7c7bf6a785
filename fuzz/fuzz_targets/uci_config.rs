//! A UCI file (/etc/config/awl), as `awl config check` and the daemon read it.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = awl::config::uci::statements(text);
    let _ = awl::config::parse(text, "fuzz");
});
